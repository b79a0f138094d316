package main

import (
	"context"
	"encoding/binary"
	"net/netip"
	"sync"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
)

// withTracker runs a tracker beside the journal: every batch is handed
// to a goroutine that announces it to the tracker while the journal
// applies it, the way a tracker answers announces while its ledger
// flushes. A few batches may queue for the tracker, so that Apply's
// latency is the journal's. The tracker's peers count in the process's
// RSS and its work in the process's CPU.
type withTracker struct {
	journal
	t    *tracker.Tracker
	work chan []accounting.Record
	wg   sync.WaitGroup
}

func newWithTracker(j journal) (*withTracker, error) {
	t, err := tracker.New(tracker.Config{})
	if err != nil {
		return nil, err
	}
	w := &withTracker{journal: j, t: t, work: make(chan []accounting.Record, 4)}
	w.wg.Go(func() {
		var resp tracker.AnnounceResponse
		for batch := range w.work {
			for i := range batch {
				r := &batch[i]
				var ip [4]byte
				binary.LittleEndian.PutUint32(ip[:], uint32(r.User))
				req := tracker.AnnounceRequest{InfoHash: r.InfoHash, PeerID: r.PeerID, Addr: netip.AddrPortFrom(netip.AddrFrom4(ip), 6881),
					Uploaded: r.Uploaded, Downloaded: r.Downloaded, Left: r.Left, Event: r.Event, NumWant: 50, Key: r.Key}
				resp.Peers = resp.Peers[:0]
				w.t.AnnounceInto(context.Background(), &req, &resp)
			}
		}
	})
	return w, nil
}

func (w *withTracker) Apply(ctx context.Context, batch []accounting.Record) error {
	w.work <- append([]accounting.Record(nil), batch...)
	return w.journal.Apply(ctx, batch)
}

func (w *withTracker) Close() error {
	close(w.work)
	w.wg.Wait()
	w.t.Close()
	return w.journal.Close()
}

func (w *withTracker) Report() string {
	if r, ok := w.journal.(interface{ Report() string }); ok {
		return r.Report()
	}
	return ""
}
