// The memory store's rules of an announce, the same wherever a family keeps
// its peers: the record a peer stores, when a completion counts as a
// snatch, partial seeds, and the counters a stored or deleted record
// changes.
//
// A snatch is counted once per peer: snatch flags matter on leecher records
// only, since a seeder has completed and never counts a completion again,
// and a leecher that was a seeder keeps the flag, so that completing again
// does not count either.

package tracker

import "net/netip"

// newRecord returns the record an announce of class stores, before the
// rules below add the snatch flag.
func newRecord[P record[P]](key uint64, ap netip.AddrPort, req *AnnounceRequest, class peerClass, now uint32) P {
	var zero P
	var flags uint16
	if req.Event == EventPaused && class == leech {
		flags = flagPause
	}
	return zero.with(key, ap, uint16(now&seenMask)<<2|flags)
}

// countStop counts the completion of a leecher that stops with nothing
// left (aria2 never sends completed); old is its record, key the key of
// the class it announces.
func countStop[P record[P]](w *swarm, old P, key uint64, class peerClass) {
	if old.recKey() != key && class == seed && old.recMeta()&flagSnat == 0 {
		w.snatches++
	}
}

// refreshed returns what a peer announcing again in the class of its
// record old stores, counting a completion it reports for the first time.
func refreshed[P record[P]](w *swarm, old, rec P, class peerClass, completed bool) P {
	if class == seed {
		return rec
	}
	snat := old.recMeta() & flagSnat
	if completed && snat == 0 {
		w.snatches++
		snat = flagSnat
	}
	w.paused += uint32(rec.recMeta()&flagPause)>>1 - uint32(old.recMeta()&flagPause)>>1
	return rec.withMeta(rec.recMeta() | snat)
}

// reclassed returns what a peer whose record prev is of the other class
// stores, counting the completion of a leecher that became a seeder.
func reclassed[P record[P]](w *swarm, prev, rec P, class peerClass) P {
	if class == leech {
		return rec.withMeta(rec.recMeta() | flagSnat)
	}
	if prev.recMeta()&flagSnat == 0 {
		w.snatches++
	}
	return rec
}

// joined returns what a new peer stores, counting a completion it reports.
func joined[P record[P]](w *swarm, rec P, class peerClass, completed bool) P {
	if !completed {
		return rec
	}
	w.snatches++
	if class == leech {
		return rec.withMeta(rec.recMeta() | flagSnat)
	}
	return rec
}

// countPeer adds a record just stored in class to the counters.
func countPeer[P record[P]](sh *shard, f *family[P], fam addrFamily, w *swarm, id uint32, class peerClass, hid uint64, meta uint16) {
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
func uncountPeer[P record[P]](sh *shard, f *family[P], fam addrFamily, w *swarm, id uint32, old P) {
	key := old.recKey()
	class := peerClass(key>>hidBits) & 1
	addCount(f, fam, w, id, class, key&hidMask, -1)
	if old.recMeta()&flagPause != 0 {
		w.paused--
	}
	sh.peers--
	if class == seed {
		sh.seeders--
	}
}
