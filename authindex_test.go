package tracker

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// TestDigestIndexOracle runs random insertions, updates and deletions
// against a map, with digests spread at random, crowded into a few home
// slots of one shard (long Robin Hood runs), and crowded at the end of a
// shard's range (runs that wrap around the table's end).
func TestDigestIndexOracle(t *testing.T) {
	const shard = uint64(5) << (64 - indexShardBits)
	spreads := []struct {
		name   string
		digest func(r *rand.Rand) uint64
	}{
		{"random", func(r *rand.Rand) uint64 { return fixDigest(r.Uint64()) }},
		{"crowded", func(r *rand.Rand) uint64 { return shard | r.Uint64N(1<<40) }},
		{"banded", func(r *rand.Rand) uint64 { return shard | r.Uint64N(1<<54) }},
		{"wrapping", func(r *rand.Rand) uint64 { return shard | (1<<(64-indexShardBits) - 1 - r.Uint64N(1<<40)) }},
		{"tiny", func(r *rand.Rand) uint64 { return 1 + r.Uint64N(300) }},
	}
	for _, stride := range []int{1, 2} {
		for _, sp := range spreads {
			t.Run(fmt.Sprintf("stride%d/%s", stride, sp.name), func(t *testing.T) {
				r := rand.New(rand.NewPCG(1, uint64(stride)))
				st := newIndexState(stride)
				want := map[uint64]uint64{}
				var keys []uint64
				check := func(step int) {
					t.Helper()
					if got := int(st.n.Load()); got != len(want) {
						t.Fatalf("step %d: n = %d; want %d", step, got, len(want))
					}
					for _, d := range keys {
						v, ok := st.get(d)
						wv, wok := want[d]
						if stride == 1 {
							wv = 0
						}
						if v != wv || ok != wok {
							t.Fatalf("step %d: get(%#x) = %d, %v; want %d, %v", step, d, v, ok, wv, wok)
						}
					}
				}
				for step := range 3000 {
					switch op := r.IntN(10); {
					case op < 6 || len(keys) == 0: // insert or update
						d := sp.digest(r)
						v := r.Uint64()
						_, had := want[d]
						if added := st.put(d, v); added == had {
							t.Fatalf("step %d: put(%#x) = %v; want %v", step, d, added, !had)
						}
						if !had {
							keys = append(keys, d)
						}
						want[d] = v
					default: // delete, sometimes a digest never stored
						d := keys[r.IntN(len(keys))]
						if op == 9 {
							d = sp.digest(r)
						}
						_, had := want[d]
						if got := st.del(d); got != had {
							t.Fatalf("step %d: del(%#x) = %v; want %v", step, d, got, had)
						}
						delete(want, d)
					}
					if step%1000 == 0 {
						check(step)
					}
				}
				check(-1)
				// Delete down to a few entries, so tables shrink.
				for d := range want {
					if len(want) <= 3 {
						break
					}
					st.del(d)
					delete(want, d)
				}
				check(-2)
				b := newIndexBuilder(stride)
				for d, v := range want {
					b.add(d, v)
				}
				st = b.build()
				check(-3)
			})
		}
	}
}

// TestDigestTableBound checks that a lookup in a table in any state, as a
// reader racing a writer may see it, ends.
func TestDigestTableBound(t *testing.T) {
	tab := newTable(16, 1)
	for i := range tab.words {
		// Every slot taken by a digest far from its home.
		tab.words[i] = uint64(i+1) << 50
	}
	if _, ok := tab.find(12345); ok {
		t.Errorf("find in a full table = true; want false")
	}
}

// TestDigestIndexConcurrent reads entries of one shard while a writer
// inserts and deletes others around them, which moves them from slot to
// slot, and grows and shrinks the table: a reader must always find them.
func TestDigestIndexConcurrent(t *testing.T) {
	const shard = uint64(3) << (64 - indexShardBits)
	var x digestIndex
	r := rand.New(rand.NewPCG(3, 4))
	digest := func() uint64 { return shard | r.Uint64N(1<<(64-indexShardBits)) }
	stable := make([]uint64, 1024)
	x.mu.Lock()
	st := x.writable(2)
	for i := range stable {
		stable[i] = digest()
		st.put(stable[i], uint64(i))
	}
	x.mu.Unlock()

	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for n := g; !stop.Load(); n++ {
				i := n % len(stable)
				if v, ok := x.state().get(stable[i]); !ok || v != uint64(i) {
					t.Errorf("get(%#x) = %d, %v; want %d, true", stable[i], v, ok, i)
					return
				}
			}
		})
	}
	var churn []uint64
	ops := 200_000
	if raceEnabled {
		ops = 10_000
	}
	for i := range ops {
		x.mu.Lock()
		if i%1000 < 600 {
			d := digest()
			if x.state().put(d, 1<<40) {
				churn = append(churn, d)
			}
		} else if len(churn) > 0 {
			j := r.IntN(len(churn))
			x.state().del(churn[j])
			churn[j] = churn[len(churn)-1]
			churn = churn[:len(churn)-1]
		}
		x.mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()
}

// A digest repeated in a reload of a set without values, whose home is the
// last slot of its table, once made the builder write past the table.
func TestIndexBuilderRepeatedLastSlot(t *testing.T) {
	const d = 0x03FF_FFFF_FFFF_FFFF // shard 0, home slot 7 of 8
	b := newIndexBuilder(1)
	b.add(d, 0)
	b.add(d, 0)
	st := b.build()
	if _, ok := st.get(d); !ok || st.n.Load() != 1 {
		t.Errorf("after adding one digest twice: found %v, %d entries; want found, 1", ok, st.n.Load())
	}
	if h := st.shards[0].tab.Load().home(d); h != 7 {
		t.Fatalf("test digest's home is slot %d; want the last slot, 7", h)
	}
}
