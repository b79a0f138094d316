// The memory store's expiry: the sweeper goroutine advances the store's
// clock and visits one shard at a time, removing stale peers and the swarms
// left with nothing worth keeping.

package tracker

import "time"

// sweepBatch is how many swarms or records a sweep visits each time it
// takes a shard's lock.
const sweepBatch = 512

// sweeper keeps the store's clock and visits every shard once per cycle,
// one shard at a time. One ticker does both, so the clock has one writer.
func (s *MemoryStore) sweeper(cycle time.Duration) {
	defer close(s.done)
	// A shard every period, and the clock at least once a second.
	period := max(cycle/time.Duration(len(s.shards)), time.Millisecond)
	every := max(1, int((period+time.Second-1)/time.Second))
	tk := time.NewTicker(period / time.Duration(every))
	defer tk.Stop()
	i, n := 0, 0
	for {
		select {
		case <-s.stop:
			return
		case t := <-tk.C:
			s.advance(t)
			if n++; n == every {
				n = 0
				s.sweep(&s.shards[i])
				i = (i + 1) & int(s.mask)
			}
		}
	}
}

// advance moves the store's clock to the tick of t, and never back: ticks
// delivered late, or out of order, leave it where it is. It returns the
// clock.
func (s *MemoryStore) advance(t time.Time) uint32 {
	now := s.now(t)
	for {
		cur := s.clock.Load()
		if now <= cur || s.clock.CompareAndSwap(cur, now) {
			return max(now, cur)
		}
	}
}

// since returns the ticks from then to now, or 0 if then is later (a swarm
// announced to at a tick the sweep has not read yet).
func since(now, then uint32) uint32 {
	if then > now {
		return 0
	}
	return now - then
}

// sweep removes a shard's stale peers, and its empty swarms that have
// nothing worth keeping, taking the lock for a bounded batch at a time. It
// reads the time from the store's clock.
func (s *MemoryStore) sweep(sh *shard) {
	now := s.clock.Load()
	sweepFamily(s, sh, &sh.v4, inet4, now)
	sweepFamily(s, sh, &sh.v6, inet6, now)
	for id := 0; ; {
		sh.mu.Lock()
		// A batch visits sweepBatch swarms or records, whichever comes
		// first.
		for work := 0; id < len(sh.swarms) && work < sweepBatch; id++ {
			w := &sh.swarms[id]
			if w.seen == 0 {
				continue
			}
			work++
			if w.blk[inet4] != inTree {
				work += sweepBlock(s, sh, &sh.v4, inet4, w, uint32(id), now)
			}
			if w.blk[inet6] != inTree {
				work += sweepBlock(s, sh, &sh.v6, inet6, w, uint32(id), now)
			}
			if w.peers() == 0 && (w.snatches == 0 || since(now, w.seen) > s.swarmTTL) {
				s.dropSwarm(sh, uint32(id))
			}
		}
		done := id >= len(sh.swarms)
		if done {
			// Give back the room of blocks freed since the swarms shrank.
			sh.v4.slab.compactIfFree(sh.swarms, inet4, 16)
			sh.v6.slab.compactIfFree(sh.swarms, inet6, 16)
		}
		sh.mu.Unlock()
		if done {
			return
		}
	}
}

// stale reports whether a record last seen at the tick in meta has outlived
// the TTL at tick now.
func (s *MemoryStore) stale(meta uint16, now uint32) bool {
	age := (uint16(now) - meta>>2) & seenMask
	return uint32(age) > s.ttl && age <= seenMask-futureTicks
}

// sweepBlock removes the stale peers of a family's block and returns the
// number of records it looked at.
func sweepBlock[P record[P]](s *MemoryStore, sh *shard, f *family[P], fam addrFamily, w *swarm, id uint32, now uint32) int {
	blk := f.block(w, fam)
	removed := false
	for i := len(blk) - 1; i >= 0; i-- {
		if p := blk[i]; s.stale(p.recMeta(), now) {
			f.removeAt(w, fam, i)
			uncountPeer(sh, f, fam, w, id, p)
			s.npeers.Add(-1)
			blk = blk[:len(blk)-1]
			removed = true
		}
	}
	if removed {
		f.shrink(sh.swarms, w, fam)
	}
	return len(blk)
}

func sweepFamily[P record[P]](s *MemoryStore, sh *shard, f *family[P], fam addrFamily, now uint32) {
	var zero P
	cursor := uint64(0)
	for {
		more := false
		sh.mu.Lock()
		f.scratch = f.scratch[:0]
		visited := 0
		f.tree.AscendGreaterOrEqual(zero.probe(cursor), func(p P) bool {
			if visited == sweepBatch {
				cursor, more = p.recKey(), true
				return false
			}
			visited++
			if s.stale(p.recMeta(), now) {
				f.scratch = append(f.scratch, p)
			}
			return true
		})
		for _, p := range f.scratch {
			id := swarmOf(p.recKey())
			f.tree.Delete(p)
			uncountPeer(sh, f, fam, &sh.swarms[id], id, p)
			s.npeers.Add(-1)
		}
		// Only once the whole batch is out of the tree: a swarm's records
		// still in the batch must not move to its block.
		for _, p := range f.scratch {
			id := swarmOf(p.recKey())
			f.toBlock(sh.swarms, &sh.swarms[id], fam, id)
		}
		sh.mu.Unlock()
		if !more {
			return
		}
	}
}
