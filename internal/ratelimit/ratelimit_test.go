package ratelimit

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	l := New[string](1, 3, 100) // 1/s, burst 3
	now := time.Unix(1000, 0)
	for i := range 3 {
		if !l.Allow(now, "a") {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	if l.Allow(now, "a") {
		t.Error("request past the burst allowed")
	}
	if !l.Allow(now, "b") {
		t.Error("another key shares a's bucket")
	}
	if !l.Allow(now.Add(time.Second), "a") {
		t.Error("a second later one request should be allowed again")
	}
	if l.Allow(now.Add(time.Second), "a") {
		t.Error("only one token refills per second")
	}
}

// held returns the number of keys l holds a bucket for.
func held[K comparable](l *Limiter[K]) int {
	n := 0
	for i := range l.shards {
		n += len(l.shards[i].m)
	}
	return n
}

// shardOf returns the shard of key k.
func shardOf[K comparable](l *Limiter[K], k K) *shard[K] {
	return &l.shards[maphash.Comparable(l.seed, k)%numShards]
}

func TestIdleKeysDropped(t *testing.T) {
	const maxKeys = numShards * 4
	l := New[int](10, 2, maxKeys)
	now := time.Unix(1000, 0)
	for k := range 10 * maxKeys {
		if !l.Allow(now.Add(time.Duration(k)*time.Second), k) {
			t.Fatalf("key %d refused; its first request should pass", k)
		}
	}
	if n := held(l); n > maxKeys {
		t.Errorf("holding %d keys; want at most %d", n, maxKeys)
	}
	// Once every bucket has refilled, a new key arriving at a full shard
	// clears it of all of them and takes a bucket of its own.
	later := now.Add(time.Duration(10*maxKeys+10) * time.Second)
	full := 0
	for k := 10 * maxKeys; full < numShards && k < 20*maxKeys; k++ {
		sh := shardOf(l, k)
		if len(sh.m) < l.perCap {
			continue
		}
		full++
		l.Allow(later, k)
		if _, ok := sh.m[k]; len(sh.m) != 1 || !ok {
			t.Fatalf("a new key at a shard full of idle keys: the shard holds %d keys, the new one %v; want it alone", len(sh.m), ok)
		}
	}
	if full == 0 {
		t.Fatal("no shard was full")
	}
}

func TestFloodSharesOverflow(t *testing.T) {
	const maxKeys = numShards
	l := New[int](1, 1, maxKeys)
	now := time.Unix(1000, 0)
	allowed := 0
	// Many new keys at one instant: every bucket is busy, none can be
	// dropped, so new keys share the overflow buckets and most are refused.
	for k := range 100 * maxKeys {
		if l.Allow(now, k) {
			allowed++
		}
	}
	if n := held(l); n > maxKeys {
		t.Errorf("holding %d keys; want at most %d", n, maxKeys)
	}
	if limit := maxKeys + numShards*overflowFactor; allowed > limit {
		t.Errorf("a flood of new keys got %d requests through; want at most %d", allowed, limit)
	}
}

func TestStringKeysCloned(t *testing.T) {
	l := New[string](1, 1, 10)
	buf := []byte("passkey-one and more bytes of a request line")
	key := string(buf[:11])
	l.Allow(time.Unix(0, 0), key)
	for i := range l.shards {
		for k := range l.shards[i].m {
			if k != "passkey-one" {
				t.Errorf("stored key %q", k)
			}
		}
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	l := New[netip.Addr](1000, 1000000, 100)
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(1, 0)
	l.Allow(now, a)
	if n := testing.AllocsPerRun(100, func() { l.Allow(now, a) }); n != 0 {
		t.Errorf("Allow for a known key allocates %.0f times", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New[netip.Addr](1e9, 1e9, 1<<20)
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		addrs[i] = netip.MustParseAddr(fmt.Sprintf("10.0.%d.%d", i>>8, i&255))
	}
	now := time.Unix(1, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Allow(now, addrs[i&4095])
		i++
	}
}
