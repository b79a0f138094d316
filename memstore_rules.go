// The memory store's rules of an announce, the same wherever a family keeps
// its peers: the flags a peer's record holds, when a completion counts as a
// snatch, partial seeds, and the counters a stored or deleted record
// changes. The rules work on a record's meta (its tick and flags), the same
// in blocks and in the tree.
//
// A snatch is counted once per peer: snatch flags matter on leecher records
// only, since a seeder has completed and never counts a completion again,
// and a leecher that was a seeder keeps the flag, so that completing again
// does not count either.

package tracker

// newMeta returns the meta of the record an announce of class stores in
// generation gen, before the rules below add the snatch flag.
func newMeta(req *AnnounceRequest, class peerClass, gen uint32) uint8 {
	var flags uint8
	if req.Event == EventPaused && class == leech {
		flags = flagPause
	}
	return uint8(gen&genMask) | flags
}

// countStop counts the completion of a leecher that stops with nothing
// left (aria2 never sends completed): old is the meta of its record, which
// is of the other class than the one it announces when reclass is set.
func countStop(w *swarm, old uint8, reclass bool, class peerClass) {
	if reclass && class == seed && old&flagSnat == 0 {
		w.snatches++
	}
}

// refreshed returns the meta a peer announcing again in the class of its
// record (of meta old) stores, counting a completion it reports for the
// first time.
func refreshed(w *swarm, old, meta uint8, class peerClass, completed bool) uint8 {
	if class == seed {
		return meta
	}
	snat := old & flagSnat
	if completed && snat == 0 {
		w.snatches++
		snat = flagSnat
	}
	w.paused += uint32(meta&flagPause)/flagPause - uint32(old&flagPause)/flagPause
	return meta | snat
}

// reclassed returns the meta a peer whose record (of meta prev) is of the
// other class stores, counting the completion of a leecher that became a
// seeder.
func reclassed(w *swarm, prev, meta uint8, class peerClass) uint8 {
	if class == leech {
		return meta | flagSnat
	}
	if prev&flagSnat == 0 {
		w.snatches++
	}
	return meta
}

// joined returns the meta a new peer stores, counting a completion it
// reports.
func joined(w *swarm, meta uint8, class peerClass, completed bool) uint8 {
	if !completed {
		return meta
	}
	w.snatches++
	if class == leech {
		return meta | flagSnat
	}
	return meta
}

// countPeer adds a record just stored in class to the counters; hid places
// a record of the tree in its class's bucket counts.
func countPeer[S slot[S], P record[P]](sh *shard, f *family[S, P], fam addrFamily, w *swarm, id uint32, class peerClass, hid uint64, meta uint8) {
	addCount(f, fam, w, id, class, hid, 1)
	if meta&flagPause != 0 {
		w.paused++
	}
	sh.peers++
	if class == seed {
		sh.seeders++
	}
}

// uncountPeer takes a record just deleted off the counters.
func uncountPeer[S slot[S], P record[P]](sh *shard, f *family[S, P], fam addrFamily, w *swarm, id uint32, class peerClass, hid uint64, meta uint8) {
	addCount(f, fam, w, id, class, hid, -1)
	if meta&flagPause != 0 {
		w.paused--
	}
	sh.peers--
	if class == seed {
		sh.seeders--
	}
}
