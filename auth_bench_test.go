package tracker

import (
	"context"
	"encoding/hex"
	"iter"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The size of a large private tracker's lists, as T411 had them.
const (
	benchPasskeys = 2_000_000
	benchTorrents = 700_000
)

// randomPasskeys yields n random passkeys of 32 hex digits from a stream
// fixed by seed, with user ids 1 to n. Every keep-th passkey is also
// passed to sample, when not nil.
func randomPasskeys(seed uint64, n int, keep int, sample func(string, uint64)) iter.Seq2[string, uint64] {
	return func(yield func(string, uint64) bool) {
		r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
		var raw [16]byte
		for i := range n {
			for j := 0; j < len(raw); j += 8 {
				v := r.Uint64()
				for k := range 8 {
					raw[j+k] = byte(v >> (8 * k))
				}
			}
			p, user := hex.EncodeToString(raw[:]), uint64(i+1)
			if sample != nil && i%keep == 0 {
				sample(p, user)
			}
			if !yield(p, user) {
				return
			}
		}
	}
}

// randomHashes yields n random info hashes from a stream fixed by seed.
// Every keep-th is also passed to sample, when not nil.
func randomHashes(seed uint64, n int, keep int, sample func(InfoHash)) iter.Seq[InfoHash] {
	return func(yield func(InfoHash) bool) {
		r := rand.New(rand.NewPCG(seed, 0x51afd7ed558ccd))
		for i := range n {
			var h InfoHash
			for j := 0; j < len(h); j++ {
				h[j] = byte(r.Uint32())
			}
			if sample != nil && i%keep == 0 {
				sample(h)
			}
			if !yield(h) {
				return
			}
		}
	}
}

// BenchmarkAuthMemory reports the heap a PasskeySet of 2,000,000 random
// passkeys and a TorrentList of 700,000 random info hashes take, per
// entry, once loaded. Run it with -benchtime 1x.
func BenchmarkAuthMemory(b *testing.B) {
	for b.Loop() {
		before := heapInUse()
		s := NewPasskeySet()
		s.Replace(randomPasskeys(1, benchPasskeys, 0, nil))
		mid := heapInUse()
		l := NewTorrentAllowList()
		l.Replace(randomHashes(2, benchTorrents, 0, nil))
		after := heapInUse()
		if s.Len() != benchPasskeys || l.Len() != benchTorrents {
			b.Fatalf("Len() = %d, %d; want %d, %d", s.Len(), l.Len(), benchPasskeys, benchTorrents)
		}
		b.ReportMetric(float64(mid-before)/benchPasskeys, "bytes/passkey")
		b.ReportMetric(float64(after-mid)/benchTorrents, "bytes/torrent")
		runtime.KeepAlive(s)
		runtime.KeepAlive(l)
	}
}

// benchAuth holds full-size lists, built once for all benchmarks, and
// samples of their entries to look up. The sampled passkeys are laid end
// to end in one string, so that reading the next one costs little, as
// reading a passkey just parsed from a request does: the benchmark measures
// the lookup.
var benchAuth = sync.OnceValue(func() (a struct {
	passkeys *PasskeySet
	keys     string // passkeys of 32 bytes, end to end
	torrents *TorrentList
	hashes   []InfoHash
}) {
	var keys strings.Builder
	a.passkeys = NewPasskeySet()
	a.passkeys.Replace(randomPasskeys(1, benchPasskeys, 8, func(p string, _ uint64) { keys.WriteString(p) }))
	a.keys = keys.String()
	a.torrents = NewTorrentAllowList()
	a.torrents.Replace(randomHashes(2, benchTorrents, 4, func(h InfoHash) { a.hashes = append(a.hashes, h) }))
	return a
})

// BenchmarkValidatePasskey looks up passkeys in a set of 2,000,000, from
// every core at once: known passkeys, and unknown ones of the same shape.
func BenchmarkValidatePasskey(b *testing.B) {
	a := benchAuth()
	var v PasskeyValidator = a.passkeys
	var unknown strings.Builder
	for p := range randomPasskeys(3, len(a.keys)/32, 0, nil) {
		unknown.WriteString(p)
	}
	for _, bc := range []struct {
		name string
		keys string
		ok   bool
	}{{"known", a.keys, true}, {"unknown", unknown.String(), false}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				n := len(bc.keys) / 32
				i := rand.IntN(n)
				for pb.Next() {
					if i++; i == n {
						i = 0
					}
					if _, err := v.ValidatePasskey(ctx, bc.keys[32*i:32*i+32]); (err == nil) != bc.ok {
						b.Errorf("ValidatePasskey = %v", err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAllowTorrent looks up info hashes in an allow-list of 700,000,
// from every core at once.
func BenchmarkAllowTorrent(b *testing.B) {
	a := benchAuth()
	var f TorrentFilter = a.torrents
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := rand.IntN(len(a.hashes))
		for pb.Next() {
			if i++; i == len(a.hashes) {
				i = 0
			}
			if err := f.AllowTorrent(ctx, a.hashes[i], Identity{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAllowClient looks up peer ids in an allow-list of 200 prefixes,
// from every core at once.
func BenchmarkAllowClient(b *testing.B) {
	var prefixes []string
	for i := range 200 {
		prefixes = append(prefixes, "-"+string(rune('A'+i%26))+string(rune('a'+i/26))+"1000-")
	}
	var f ClientFilter = NewClientAllowList(prefixes...)
	ids := make([]PeerID, 64)
	for i := range ids {
		copy(ids[i][:], prefixes[i*3])
		copy(ids[i][8:], "abcdefghijkl")
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := 0
		for pb.Next() {
			if err := f.AllowClient(ctx, ids[i&63], ""); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
