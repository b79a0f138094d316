// Tests of the memory store's index of swarms by info hash.

package tracker

import (
	"hash/maphash"
	"math/rand/v2"
	"testing"
)

func TestSwarmIndex(t *testing.T) {
	seed := maphash.MakeSeed()
	r := rand.New(rand.NewPCG(5, 6))
	var x swarmIndex
	var swarms swarmTable
	defer swarms.giveBack()
	live := map[InfoHash]uint32{}
	var free []uint32
	for step := range 50000 {
		h := hashN(r.IntN(3000))
		hv := maphash.Comparable(seed, h)
		id, found := x.find(&swarms, &h, hv)
		wantID, want := live[h]
		if found != want || (found && id != wantID) {
			t.Fatalf("step %d: find(%x) = %d, %v; want %d, %v", step, h[:3], id, found, wantID, want)
		}
		if found {
			x.remove(id, hv, seed, &swarms)
			delete(live, h)
			*swarms.at(id) = swarm{}
			free = append(free, id)
			continue
		}
		if n := len(free); n > 0 {
			id, free = free[n-1], free[:n-1]
		} else {
			id = swarms.push()
		}
		*swarms.at(id) = swarm{hash: h, seen: 1}
		x.insert(id, hv, seed, &swarms)
		live[h] = id
		if x.n != len(live) {
			t.Fatalf("step %d: index holds %d; want %d", step, x.n, len(live))
		}
	}
	for h, id := range live {
		if got, ok := x.find(&swarms, &h, maphash.Comparable(seed, h)); !ok || got != id {
			t.Fatalf("find(%x) = %d, %v at the end; want %d", h[:3], got, ok, id)
		}
	}
}
