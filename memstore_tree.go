// The memory store's announces on a family whose peers are in the shard's
// B-tree: the swarms too large for a block.

package tracker

import "net/netip"

// announceTree is announceIn for a family whose peers are in the tree. A
// re-announce in the same class (the steady state) costs one descent of
// the tree to replace the record and one to walk the reply.
func announceTree[P record[P]](s *MemoryStore, sh *shard, f *family[P], fam addrFamily, w *swarm, id uint32, hid uint64, ap netip.AddrPort, req *AnnounceRequest, resp *AnnounceResponse, now uint32) error {
	var zero P
	class := leech
	if req.Left == 0 {
		class = seed
	}
	key := classBase(id, class) | hid
	otherKey := classBase(id, 1-class) | hid

	if req.Event == EventStopped {
		old, ok := f.tree.Delete(zero.probe(key))
		if !ok {
			old, ok = f.tree.Delete(zero.probe(otherKey))
		}
		if ok {
			countStop(w, old, key, class)
			uncountPeer(sh, f, fam, w, id, old)
			s.npeers.Add(-1)
			f.toBlock(sh.swarms, w, fam, id)
		}
		return nil
	}

	completed := req.Event == EventCompleted
	rec := newRecord[P](key, ap, req, class, now)
	if old, replaced := f.tree.ReplaceOrInsert(rec); replaced {
		if st := refreshed(w, old, rec, class, completed); st != rec {
			f.tree.ReplaceOrInsert(st)
		}
	} else {
		// The peer is new to this class: it may have changed class.
		prev, moved := f.tree.Delete(zero.probe(otherKey))
		st := rec
		switch {
		case moved:
			uncountPeer(sh, f, fam, w, id, prev)
			st = reclassed(w, prev, rec, class)
		case s.maxPeers >= 0 && s.npeers.Load() >= s.maxPeers:
			f.tree.Delete(rec)
			return ErrTooManyPeers
		default:
			s.npeers.Add(1)
			st = joined(w, rec, class, completed)
		}
		if st != rec {
			f.tree.ReplaceOrInsert(st)
		}
		countPeer(sh, f, fam, w, id, class, hid, rec.recMeta())
	}
	return sampleTree(f, fam, w, id, class, key, req.NumWant, resp)
}
