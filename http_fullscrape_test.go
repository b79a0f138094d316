package tracker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// httpGatedStore is a MemoryStore whose ScrapeAll counts its calls and,
// while gate is not nil, waits for it to close.
type httpGatedStore struct {
	*MemoryStore
	mu    sync.Mutex
	calls int
	gate  chan struct{}
}

// newHTTPGatedStore returns an open gated store that the test closes.
func newHTTPGatedStore(t *testing.T) *httpGatedStore {
	ms, err := NewMemoryStore(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	return &httpGatedStore{MemoryStore: ms}
}

func (s *httpGatedStore) ScrapeAll(ctx context.Context, fn func(InfoHash, ScrapeStats) bool) error {
	s.mu.Lock()
	s.calls++
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return s.MemoryStore.ScrapeAll(ctx, fn)
}

func (s *httpGatedStore) setGate(g chan struct{}) {
	s.mu.Lock()
	s.gate = g
	s.mu.Unlock()
}

func (s *httpGatedStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// fullScrape serves a full scrape and returns its files, checking that
// they are sorted (the strict decoder does) and hold raw 20-byte keys.
func (f *httpFixture) fullScrape(target string, header ...string) map[string]any {
	f.tb.Helper()
	m := f.get(target, "10.9.9.9:1", header...)
	files, ok := m["files"].(map[string]any)
	if !ok {
		f.tb.Fatalf("full scrape: reply %v has no files", m)
	}
	for k := range files {
		if len(k) != 20 {
			f.tb.Errorf("full scrape: key %q is not a raw hash", k)
		}
	}
	return files
}

func TestHTTPFullScrape(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		synctest.Test(t, func(t *testing.T) {
			gs := newHTTPGatedStore(t)
			f := httpNewFixture(t, via, Config{Store: gs}, HTTPConfig{FullScrape: true, FullScrapeCache: time.Minute, GzipMinSize: 200})
			for i := range 30 {
				f.join(httpTestHash(200+i), 1, 1+i%3, int64(i%2))
			}
			files := f.fullScrape("/scrape")
			if len(files) != 30 {
				t.Fatalf("full scrape lists %d swarms; want 30", len(files))
			}
			for i := range 30 {
				h := httpTestHash(200 + i)
				st := httpStats(t, files, h)
				if st.Complete+st.Incomplete != 1+i%3 {
					t.Errorf("swarm %d: %+v; want %d peers", i, st, 1+i%3)
				}
			}
			// gzipped, the same list.
			if z := f.fullScrape("/scrape.php", "Accept-Encoding", "gzip"); !reflect.DeepEqual(z, files) {
				t.Errorf("gzipped full scrape differs")
			}
			w := f.do(http.MethodGet, "/scrape", "10.9.9.9:1", "Accept-Encoding", "gzip")
			if w.Header().Get("Content-Encoding") != "gzip" || w.Header().Get("Vary") != "Accept-Encoding" {
				t.Errorf("full scrape headers %v", w.Header())
			}
			if gs.count() != 1 {
				t.Errorf("%d builds; want 1 (cached)", gs.count())
			}

			// A new swarm shows only once the cache expires.
			f.join(httpTestHash(300), 1, 1, 0)
			time.Sleep(59 * time.Second)
			if files := f.fullScrape("/scrape"); len(files) != 30 {
				t.Errorf("within the cache period: %d swarms; want the cached 30", len(files))
			}
			time.Sleep(time.Second)
			if files := f.fullScrape("/scrape"); len(files) != 31 {
				t.Errorf("after the cache period: %d swarms; want 31", len(files))
			}
			if gs.count() != 2 {
				t.Errorf("%d builds; want 2", gs.count())
			}

			// While a build runs, the others get the previous copy.
			time.Sleep(time.Minute)
			f.join(httpTestHash(301), 1, 1, 0)
			gate := make(chan struct{})
			gs.setGate(gate)
			done := make(chan map[string]any)
			go func() { done <- f.fullScrape("/scrape") }()
			synctest.Wait() // the build is waiting at the gate
			for range 3 {
				if files := f.fullScrape("/scrape"); len(files) != 31 {
					t.Errorf("during a build: %d swarms; want the previous 31", len(files))
				}
			}
			close(gate)
			if files := <-done; len(files) != 32 {
				t.Errorf("the builder got %d swarms; want 32", len(files))
			}
			if gs.count() != 3 {
				t.Errorf("%d builds; want 3", gs.count())
			}
		})
	})
}

// TestHTTPFullScrapeOneBuild checks that clients arriving together with
// no cached copy share one build.
func TestHTTPFullScrapeOneBuild(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		synctest.Test(t, func(t *testing.T) {
			gs := newHTTPGatedStore(t)
			f := httpNewFixture(t, via, Config{Store: gs}, HTTPConfig{FullScrape: true})
			f.join(httpTestHash(400), 1, 2, 0)
			gate := make(chan struct{})
			gs.setGate(gate)
			var wg sync.WaitGroup
			bodies := make([]string, 5)
			for i := range bodies {
				wg.Go(func() {
					bodies[i] = f.do(http.MethodGet, "/scrape", "10.9.9.9:1").Body.String()
				})
			}
			synctest.Wait()
			close(gate)
			wg.Wait()
			if gs.count() != 1 {
				t.Errorf("%d builds for 5 clients at once; want 1", gs.count())
			}
			for _, b := range bodies {
				if b != bodies[0] || !strings.HasPrefix(b, "d5:filesd20:") {
					t.Errorf("bodies differ: %q and %q", b, bodies[0])
				}
			}
			// With no copy to serve, a waiting client that hangs up leaves
			// before the build ends.
			g := httpNewFixture(t, via, Config{Store: gs}, HTTPConfig{FullScrape: true})
			gate = make(chan struct{})
			gs.setGate(gate)
			builder := make(chan struct{})
			go func() { g.do(http.MethodGet, "/scrape", "10.9.9.9:1"); close(builder) }()
			synctest.Wait()
			ctx, cancel := context.WithCancel(context.Background())
			r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/scrape", nil)
			w := httptest.NewRecorder()
			served := make(chan struct{})
			go func() { g.h.ServeHTTP(w, r); close(served) }()
			synctest.Wait()
			select {
			case <-served:
				t.Fatalf("a client returned while the first build was running")
			default:
			}
			cancel()
			<-served
			close(gate)
			<-builder
			if gs.count() != 2 {
				t.Errorf("%d builds; want 2", gs.count())
			}
		})
	})
}

func TestHTTPFullScrapeLimits(t *testing.T) {
	httpEachVia(t, func(t *testing.T, via httpVia) {
		f := httpNewFixture(t, via, Config{
			Passkeys: PasskeyFunc(func(ctx context.Context, pk string) (Identity, error) {
				if pk == "pk" {
					return Identity{UserID: 1}, nil
				}
				return Identity{}, ErrInvalidPasskey
			}),
			Torrents: TorrentFunc(func(ctx context.Context, h InfoHash, id Identity) error {
				if h[4]%2 == 1 {
					return ErrUnregisteredTorrent
				}
				return nil
			}),
		}, HTTPConfig{FullScrape: true, MaxFullScrape: 10})
		var allowed int
		for i := range 40 {
			h := httpTestHash(500 + i)
			h[4] = byte(i)
			if i%2 == 0 {
				f.get("/announce/pk?"+httpQuery(h, httpTestPeerID(1), 6881, 0, ""), httpRemote(1))
				allowed++
			}
		}
		if r := f.failure("/scrape", "10.9.9.9:1"); r != ErrPasskeyRequired.Reason {
			t.Errorf("full scrape without passkey: %q", r)
		}
		if r := f.failure("/scrape/nope", "10.9.9.9:1"); r != ErrInvalidPasskey.Reason {
			t.Errorf("full scrape with a bad passkey: %q", r)
		}
		files := f.fullScrape("/scrape/pk")
		if len(files) != 10 {
			t.Errorf("full scrape with MaxFullScrape 10 lists %d swarms", len(files))
		}
		for k := range files {
			if k[4]%2 == 1 {
				t.Errorf("full scrape lists a refused torrent %x", k)
			}
		}
		// A store that cannot list refuses full scrapes even when enabled.
		g := httpNewFixture(t, via, Config{Store: struct{ Store }{f.store}}, HTTPConfig{FullScrape: true})
		if r := g.failure("/scrape", "10.9.9.9:1"); r != httpErrFullScrape.Reason {
			t.Errorf("full scrape of a store that cannot list: %q", r)
		}
	})
}
