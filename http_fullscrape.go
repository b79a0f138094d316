package tracker

// The full scrape: the counters of every swarm, for a scrape that names no
// info_hash, built at most once per HTTPConfig.FullScrapeCache and shared
// by every client.

import (
	"bytes"
	"context"
	"slices"
	"time"
)

// httpFullBody is a built full scrape.
type httpFullBody struct {
	plain, zipped []byte // zipped is nil when the body is too small to gzip
	built         time.Time
}

// fullScrape answers a scrape that names no info_hash: it leaves the
// shared reply in st.full.
func (h *HTTPHandler) fullScrape(ctx context.Context, st *httpState, passkey string) error {
	if h.full == nil {
		return h.reject(httpErrFullScrape)
	}
	if h.t.closed.Load() {
		return h.t.fail(ErrClosed, "http full scrape")
	}
	if _, err := h.t.identify(ctx, passkey); err != nil {
		return h.t.fail(err, "http full scrape")
	}
	fb, err := h.fullScrapeBody(ctx)
	if err != nil {
		return err
	}
	st.full = fb
	return nil
}

// fullScrapeBody returns the cached full scrape, building it when it is
// missing or older than FullScrapeCache. While one request builds it, the
// others get the previous copy, or wait for this one when there is none.
func (h *HTTPHandler) fullScrapeBody(ctx context.Context) (*httpFullBody, error) {
	h.fullMu.Lock()
	fb, building := h.fullBody, h.fullBuild
	switch {
	case fb != nil && (time.Since(fb.built) < h.cfg.FullScrapeCache || building != nil):
		h.fullMu.Unlock()
		return fb, nil
	case building != nil:
		h.fullMu.Unlock()
		select {
		case <-building:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		h.fullMu.Lock()
		fb = h.fullBody
		h.fullMu.Unlock()
		if fb == nil {
			return nil, h.t.fail(httpErrUnavailable, "http full scrape")
		}
		return fb, nil
	}
	done := make(chan struct{})
	h.fullBuild = done
	h.fullMu.Unlock()

	var err error
	fb = nil
	defer func() {
		// Even if the store panics, the waiting clients are let go.
		h.fullMu.Lock()
		if fb != nil {
			h.fullBody = fb
		}
		h.fullBuild = nil
		h.fullMu.Unlock()
		close(done)
	}()
	// The build outlives a client that hangs up: others may be waiting.
	fb, err = h.buildFullScrape(context.WithoutCancel(ctx))
	if err != nil {
		e, ok := clientError(err)
		h.t.failures[e.Kind].add()
		if !ok {
			h.log.Error("tracker: http full scrape failed", "err", err)
		}
		return nil, err
	}
	return fb, nil
}

// buildFullScrape lists the store's swarms and encodes them, sorted by
// hash as bencode requires, and gzipped when the body is big enough.
func (h *HTTPHandler) buildFullScrape(ctx context.Context) (*httpFullBody, error) {
	type entry struct {
		h  InfoHash
		st ScrapeStats
	}
	limit := h.cfg.MaxFullScrape
	entries := make([]entry, 0, min(limit, 1024))
	err := h.full.ScrapeAll(ctx, func(ih InfoHash, st ScrapeStats) bool {
		if len(entries) >= limit {
			return false
		}
		entries = append(entries, entry{ih, st})
		return len(entries) < limit
	})
	if err != nil {
		return nil, err
	}
	if f := h.t.cfg.Torrents; f != nil {
		entries = slices.DeleteFunc(entries, func(e entry) bool {
			return f.AllowTorrent(ctx, e.h, Identity{}) != nil
		})
	}
	slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare(a.h[:], b.h[:]) })
	entries = slices.CompactFunc(entries, func(a, b entry) bool { return a.h == b.h })

	const perEntry = 3 + 20 + len("d8:completei0e10:downloadedi0e11:downloadersi0e10:incompletei0ee") + 16
	plain := make([]byte, 0, 64+perEntry*len(entries))
	plain = append(plain, "d5:filesd"...)
	for _, e := range entries {
		plain = appendScrapeEntry(plain, e.h, e.st)
	}
	plain = append(plain, "e5:flagsd20:min_request_interval"...)
	plain = appendInt(plain, seconds(h.t.cfg.MinScrapeInterval))
	plain = append(plain, "ee"...)
	fb := &httpFullBody{plain: plain, built: time.Now()}
	if h.gzipMin >= 0 && len(plain) >= h.gzipMin {
		z := httpBuffer{b: make([]byte, 0, len(plain)/2)}
		httpGzip(&z, plain)
		fb.zipped = slices.Clip(z.b)
	}
	return fb, nil
}
