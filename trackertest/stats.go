// The statistics of the sampling checks: tail probabilities of the
// chi-square and binomial distributions, computed with the standard
// library only.

package trackertest

import "math"

// alpha is the probability, under the hypothesis that a store samples
// uniformly, with which one statistical check fails anyway. The suite runs
// about ten of them, so a correct store fails a run about once in 100,000.
const alpha = 1e-6

// chiSquareSF returns P(X >= x) for X chi-square distributed with df
// degrees of freedom.
func chiSquareSF(x float64, df int) float64 {
	return gammaQ(float64(df)/2, x/2)
}

// chiSquare returns Pearson's statistic of observed counts against
// expected ones, and its degrees of freedom (the cells less one).
func chiSquare(observed []int, expected []float64) (float64, int) {
	x := 0.0
	for i, o := range observed {
		d := float64(o) - expected[i]
		x += d * d / expected[i]
	}
	return x, len(observed) - 1
}

// gammaQ is the regularized upper incomplete gamma function Q(a, x): by
// its power series below a+1, where the series converges fast, and by its
// continued fraction (evaluated with the modified Lentz method) above.
func gammaQ(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	front := math.Exp(a*math.Log(x) - x - lg) // x^a e^-x / Γ(a)
	if x < a+1 {
		term := 1 / a
		sum := term
		for n := 1.0; n < 10000; n++ {
			term *= x / (a + n)
			sum += term
			if term < sum*1e-16 {
				break
			}
		}
		return max(0, 1-front*sum)
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	f := d
	for i := 1.0; i < 10000; i++ {
		an := -i * (i - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		step := d * c
		f *= step
		if math.Abs(step-1) < 1e-16 {
			break
		}
	}
	return front * f
}

// binomialSF returns P(X >= k) for X binomially distributed with n trials
// of probability p, summing the terms in log space.
func binomialSF(k, n int, p float64) float64 {
	if k <= 0 {
		return 1
	}
	if k > n {
		return 0
	}
	lp, lq := math.Log(p), math.Log1p(-p)
	ln, _ := math.Lgamma(float64(n + 1))
	sum := 0.0
	for i := k; i <= n; i++ {
		li, _ := math.Lgamma(float64(i + 1))
		lr, _ := math.Lgamma(float64(n - i + 1))
		sum += math.Exp(ln - li - lr + float64(i)*lp + float64(n-i)*lq)
	}
	return min(1, sum)
}

// normalSF2 returns P(|Z| >= z) for a standard normal Z.
func normalSF2(z float64) float64 {
	return math.Erfc(math.Abs(z) / math.Sqrt2)
}
