package trackertest

import (
	"math"
	"testing"
)

// The tail probabilities against values from statistical tables.
func TestTails(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"chi-square 3.841, df 1", chiSquareSF(3.841458820694124, 1), 0.05},
		{"chi-square 18.307, df 10", chiSquareSF(18.307038053275146, 10), 0.05},
		{"chi-square 124.342, df 100", chiSquareSF(124.34211340400407, 100), 0.05},
		{"chi-square 27.877, df 9", chiSquareSF(27.877164871256568, 9), 0.001},
		{"chi-square 1, df 10", chiSquareSF(1, 10), 0.9998278843700441},
		{"chi-square 0.5, df 1", chiSquareSF(0.5, 1), 0.4795001221869535},
		{"chi-square 0", chiSquareSF(0, 4), 1},
		{"binomial 3 of 10 at 1/2", binomialSF(3, 10, 0.5), 0.9453125},
		{"binomial 8 of 10 at 1/2", binomialSF(8, 10, 0.5), 0.0546875},
		{"binomial 0 of 10", binomialSF(0, 10, 0.3), 1},
		{"binomial 11 of 10", binomialSF(11, 10, 0.3), 0},
		{"normal 1.96", normalSF2(1.959963984540054), 0.05},
		{"normal -1.96", normalSF2(-1.959963984540054), 0.05},
	} {
		if math.Abs(tc.got-tc.want) > 1e-9*max(1, tc.want) && math.Abs(tc.got-tc.want)/tc.want > 1e-7 {
			t.Errorf("%s: %.12g; want %.12g", tc.name, tc.got, tc.want)
		}
	}
}
