// The memory store's announces on a family whose peers are in the shard's
// B-tree: the swarms too large for a block.

package tracker

import "net/netip"

// announceTree is announceIn for a family whose peers are in the tree. A
// re-announce in the same class (the steady state) costs one descent of
// the tree to replace the record and one to walk the reply.
func announceTree[S slot[S], P record[P]](s *MemoryStore, sh *shard, f *family[S, P], fam addrFamily, w *swarm, id uint32, ident uint8, ap netip.AddrPort, req *AnnounceRequest, resp *AnnounceResponse, now uint32) error {
	var zero P
	class := leech
	if req.Left == 0 {
		class = seed
	}
	hid := s.treeHid(ap, ident)
	key := classBase(id, class) | hid
	otherKey := classBase(id, 1-class) | hid

	if req.Event == EventStopped {
		old, ok := f.tree.Delete(zero.probe(key))
		oldClass := class
		if !ok {
			old, ok = f.tree.Delete(zero.probe(otherKey))
			oldClass = 1 - class
		}
		if ok {
			countStop(w, old.recMeta(), oldClass != class, class)
			uncountPeer(sh, f, fam, w, id, oldClass, hid, old.recMeta())
			s.peerLeft(ap.Addr())
			sh.treeAddrs.add(s, sh, id, fam, ap.Addr(), -1)
			f.toBlock(s, sh, w, fam, id)
		}
		return nil
	}

	completed := req.Event == EventCompleted
	rec := zero.with(key, ap, newMeta(req, class, now/s.genTicks))
	if old, replaced := f.tree.ReplaceOrInsert(rec); replaced {
		if st := rec.withMeta(refreshed(w, old.recMeta(), rec.recMeta(), class, completed)); st != rec {
			f.tree.ReplaceOrInsert(st)
		}
	} else {
		// The peer is new to this class: it may have changed class.
		prev, moved := f.tree.Delete(zero.probe(otherKey))
		meta := rec.recMeta()
		switch {
		case moved:
			uncountPeer(sh, f, fam, w, id, 1-class, hid, prev.recMeta())
			meta = reclassed(w, prev.recMeta(), meta, class)
		case s.maxPeers >= 0 && s.npeers.Load() >= s.maxPeers:
			f.tree.Delete(rec)
			return ErrTooManyPeers
		case s.bounded && s.full(ap.Addr(), sh.treeAddrs.count(s, id, fam, ap.Addr())):
			// The address holds its share: the announce is answered,
			// its peer not added.
			f.tree.Delete(rec)
			return sampleTree(f, fam, w, id, class, key, req.NumWant, resp)
		default:
			s.peerJoined(ap.Addr())
			sh.treeAddrs.add(s, sh, id, fam, ap.Addr(), 1)
			meta = joined(w, meta, class, completed)
		}
		if st := rec.withMeta(meta); st != rec {
			f.tree.ReplaceOrInsert(st)
		}
		countPeer(sh, f, fam, w, id, class, hid, meta)
	}
	return sampleTree(f, fam, w, id, class, key, req.NumWant, resp)
}
