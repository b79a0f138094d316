//go:build unix

package redisstore_test

// Benchmarks on the shared redis-server: announces in swarms of 10 and of
// 10,000 peers, from parallel goroutines, with what Redis spent on them
// (commands and CPU per announce, from INFO), and Redis's memory per peer.
//
//	go test -run '^$' -bench . -benchtime 20000x ./redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/redisstore"
	"github.com/annuaire/tracker/trackertest"
	"github.com/redis/go-redis/v9"
)

// redisInfo returns the fields of INFO section.
func redisInfo(t testing.TB, c *redis.Client, section string) map[string]string {
	t.Helper()
	s, err := c.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string)
	for line := range strings.SplitSeq(s, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// redisCPU returns the CPU time Redis has used, in seconds.
func redisCPU(t testing.TB, c *redis.Client) float64 {
	m := redisInfo(t, c, "cpu")
	user, _ := strconv.ParseFloat(m["used_cpu_user"], 64)
	sys, _ := strconv.ParseFloat(m["used_cpu_sys"], 64)
	return user + sys
}

// redisCalls returns the commands Redis has run, scripts' included,
// EVALSHA and EVAL themselves not.
func redisCalls(t testing.TB, c *redis.Client) int {
	total := 0
	for k, v := range redisInfo(t, c, "commandstats") {
		if !strings.HasPrefix(k, "cmdstat_") || k == "cmdstat_evalsha" || k == "cmdstat_eval" || k == "cmdstat_info" {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(v, "calls="), ",")
		n, _ := strconv.Atoi(calls)
		total += n
	}
	return total
}

func benchmarkAnnounce(b *testing.B, swarms, peersPer int) {
	c := newClient(b)
	// A generous timeout: the figures are about Redis's work, and a busy
	// machine can stall a process for more than the default.
	s, err := redisstore.New(redisstore.Config{Client: c, Prefix: prefix(), Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	// Fill: 10% seeders.
	req := func(i int) *tracker.AnnounceRequest {
		return &tracker.AnnounceRequest{
			InfoHash: trackertest.Hash(i % swarms), PeerID: trackertest.ID(i), Addr: trackertest.Addr4(i),
			Left: int64(min(1, i%10)), NumWant: 50,
		}
	}
	for i := range swarms * peersPer {
		if err := s.Announce(ctx, req(i), &tracker.AnnounceResponse{}); err != nil {
			b.Fatal(err)
		}
	}
	c.ConfigResetStat(ctx)
	cpu := redisCPU(b, c)
	var next atomic.Int64
	b.SetParallelism(16) // requests in flight: the round trips overlap
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		resp := &tracker.AnnounceResponse{}
		for pb.Next() {
			i := int(next.Add(7919)) % (swarms * peersPer)
			resp.Peers = resp.Peers[:0]
			if err := s.Announce(ctx, req(i), resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(redisCalls(b, c))/float64(b.N), "redis-cmds/op")
	b.ReportMetric((redisCPU(b, c)-cpu)*1e6/float64(b.N), "redis-cpu-µs/op")
	_, v, _ := strings.Cut(redisInfo(b, c, "commandstats")["cmdstat_evalsha"], "usec_per_call=")
	perCall, _, _ := strings.Cut(v, ",")
	us, _ := strconv.ParseFloat(perCall, 64)
	b.ReportMetric(us, "redis-script-µs/op")
}

func BenchmarkAnnounceSmall(b *testing.B) { benchmarkAnnounce(b, 2000, 10) }
func BenchmarkAnnounceLarge(b *testing.B) { benchmarkAnnounce(b, 2, 10000) }

// BenchmarkPeerMemory reports Redis's memory per peer after peers join
// swarms of a given size.
func BenchmarkPeerMemory(b *testing.B) {
	for _, size := range []int{10, 1000} {
		b.Run(fmt.Sprintf("swarms of %d", size), func(b *testing.B) {
			c := newClient(b)
			s, err := redisstore.New(redisstore.Config{Client: c, Prefix: prefix(), Timeout: 10 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			const peers = 100_000
			used := func() float64 {
				v, _ := strconv.ParseFloat(redisInfo(b, c, "memory")["used_memory"], 64)
				return v
			}
			for range b.N {
				before := used()
				base := next.Add(peers)
				for i := range peers {
					r := &tracker.AnnounceRequest{
						InfoHash: trackertest.Hash(int(base) + i/size), PeerID: trackertest.ID(i), Addr: trackertest.Addr4(i),
						Left: int64(min(1, i%10)), Event: tracker.EventStarted,
					}
					if err := s.Announce(ctx, r, &tracker.AnnounceResponse{}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric((used()-before)/peers, "bytes/peer")
			}
		})
	}
}

var next atomic.Int64
