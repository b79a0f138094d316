// The memory store's expiry: the sweeper goroutine advances the store's
// clock and visits one shard at a time, removing stale peers and the swarms
// left with nothing worth keeping.

package tracker

import (
	"hash/maphash"
	"slices"
	"time"
)

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
	for id := uint32(0); ; {
		sh.mu.Lock()
		if id == 0 {
			sh.idle = sh.idle[:0] // listed again by this pass
		}
		// A batch visits sweepBatch swarms or records, whichever comes
		// first.
		for work := 0; int(id) < sh.swarms.len() && work < sweepBatch; id++ {
			w := sh.swarms.at(id)
			if w.seen == 0 {
				continue
			}
			work++
			if w.blk[inet4] != inTree {
				work += sweepBlock(s, sh, &sh.v4, inet4, w, id, now)
			}
			if w.blk[inet6] != inTree {
				work += sweepBlock(s, sh, &sh.v6, inet6, w, id, now)
			}
			switch {
			case w.peers() > 0:
			case w.snatches == 0 || since(now, w.seen) > s.swarmTTL:
				s.dropSwarm(sh, id)
			default:
				// Kept for its snatch count, and the first to go when
				// the store is full.
				sh.idle = append(sh.idle, id)
			}
		}
		done := int(id) >= sh.swarms.len()
		if done {
			// Give back the room of blocks freed since the swarms shrank.
			sh.v4.slab.compactIfFree(&sh.swarms, inet4, 32)
			sh.v6.slab.compactIfFree(&sh.swarms, inet6, 32)
			sh.treeAddrs.shrink(s, sh)
			s.compactSwarms(sh, sweepBatch)
		}
		sh.mu.Unlock()
		if done {
			return
		}
	}
}

// stale reports whether a record last seen in the generation in meta has
// outlived the TTL at tick now. A generation ahead of now's (an announce
// that read the clock just after the sweep did) is fresh.
func (s *MemoryStore) stale(meta uint8, now uint32) bool {
	age := (now/s.genTicks - uint32(meta)) & genMask
	return age >= staleGens && age < newerGens
}

// sweepBlock removes the stale peers of a family's block, keeping the
// others in their order, and returns the number of records it looked at.
func sweepBlock[S slot[S], P record[P]](s *MemoryStore, sh *shard, f *family[S, P], fam addrFamily, w *swarm, id uint32, now uint32) int {
	blk := f.block(w, fam)
	nl, ns := int(w.n[fam][leech]), int(w.n[fam][seed])
	removed := 0
	// Leechers move down over the stale ones, seeders up.
	k := 0
	for i := range nl {
		if m := blk[i].recMeta(); s.stale(m, now) {
			uncountPeer(sh, f, fam, w, id, leech, 0, m)
			s.peerLeft(blk[i].addrPort().Addr())
			removed++
			continue
		}
		blk[k] = blk[i]
		k++
	}
	k = len(blk)
	for i := len(blk) - 1; i >= len(blk)-ns; i-- {
		if m := blk[i].recMeta(); s.stale(m, now) {
			uncountPeer(sh, f, fam, w, id, seed, 0, m)
			s.peerLeft(blk[i].addrPort().Addr())
			removed++
			continue
		}
		k--
		blk[k] = blk[i]
	}
	if removed > 0 {
		f.shrink(&sh.swarms, w, fam, s.maxClass)
	}
	return nl + ns
}

func sweepFamily[S slot[S], P record[P]](s *MemoryStore, sh *shard, f *family[S, P], fam addrFamily, now uint32) {
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
			uncountPeer(sh, f, fam, sh.swarms.at(id), id, peerClass(p.recKey()>>hidBits&1), p.recKey()&hidMask, p.recMeta())
			s.peerLeft(p.addrPort().Addr())
			sh.treeAddrs.add(s, sh, id, fam, p.addrPort().Addr(), -1)
		}
		// Only once the whole batch is out of the tree: a swarm's records
		// still in the batch must not move to its block.
		for _, p := range f.scratch {
			id := swarmOf(p.recKey())
			f.toBlock(s, sh, sh.swarms.at(id), fam, id)
		}
		sh.mu.Unlock()
		if !more {
			return
		}
	}
}

// compactSwarms shrinks a shard's swarm table once most of it is free,
// after a flood of torrents has come and gone: it moves up to budget swarms
// from the end of the table to free places nearer its start, then gives
// back the pages left empty at the end. Later sweeps go on where it
// stopped. It runs under the shard's lock.
func (s *MemoryStore) compactSwarms(sh *shard, budget int) {
	live := sh.index.n
	if sh.swarms.len() <= 2*live+2*swarmPageLen {
		return
	}
	target := live + live/8 + swarmPageLen // the length to reach
	var low []uint32                       // free places below target
	for _, id := range sh.free {
		if int(id) < target && id != reservedID {
			low = append(low, id)
		}
	}
	end := sh.swarms.len()
	for ; end > target && budget > 0; end-- {
		id := uint32(end - 1)
		if sh.swarms.at(id).seen == 0 {
			continue
		}
		if len(low) == 0 {
			break
		}
		to := low[len(low)-1]
		low = low[:len(low)-1]
		s.moveSwarm(sh, id, to)
		budget--
	}
	for end > 0 && sh.swarms.at(uint32(end-1)).seen == 0 {
		end--
	}
	sh.swarms.truncate(end)
	sh.free = sh.free[:0]
	for id := range uint32(end) {
		if sh.swarms.at(id).seen == 0 && id != reservedID {
			sh.free = append(sh.free, id)
		}
	}
	sh.idle = slices.DeleteFunc(sh.idle, func(id uint32) bool { return int(id) >= end })
}

// moveSwarm moves a swarm from id from to the free place to: its entry in
// the index, and the keys of its records in the trees.
func (s *MemoryStore) moveSwarm(sh *shard, from, to uint32) {
	w := sh.swarms.at(from)
	sh.index.rename(from, to, maphash.Comparable(s.seed, w.hash))
	*sh.swarms.at(to) = *w
	*w = swarm{}
	w = sh.swarms.at(to)
	if w.blk[inet4] == inTree {
		rekey(s, sh, &sh.v4, inet4, from, to)
	}
	if w.blk[inet6] == inTree {
		rekey(s, sh, &sh.v6, inet6, from, to)
	}
}

// rekey moves the records of a swarm's family in the tree from the key
// range of id from to that of id to, with their bucket counts.
func rekey[S slot[S], P record[P]](s *MemoryStore, sh *shard, f *family[S, P], fam addrFamily, from, to uint32) {
	var zero P
	f.moving = f.moving[:0]
	f.tree.AscendRange(zero.probe(swarmBase(from)), zero.probe(swarmBase(from)+1<<swarmShift), func(p P) bool {
		f.moving = append(f.moving, p)
		return true
	})
	for _, p := range f.moving {
		f.tree.Delete(p)
		a := p.addrPort().Addr()
		sh.treeAddrs.add(s, sh, from, fam, a, -1)
		f.tree.ReplaceOrInsert(zero.with(swarmBase(to)|p.recKey()&(seedBit|hidMask), p.addrPort(), p.recMeta()))
		sh.treeAddrs.add(s, sh, to, fam, a, 1)
	}
	for class := range peerClass(2) {
		if fw, ok := f.samplers[classKey(from, class)]; ok {
			delete(f.samplers, classKey(from, class))
			f.samplers[classKey(to, class)] = fw
		}
	}
}
