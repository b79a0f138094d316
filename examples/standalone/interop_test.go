//go:build unix

package main

import (
	"context"
	"testing"
	"time"

	"github.com/annuaire/tracker/internal/interop"
)

// TestLibtorrentAccounting: a libtorrent download through the private
// tracker with -db, each side with the passkey of its own user. The
// seeder's user is credited what libtorrent uploaded, the leecher's what
// it downloaded, each within a piece, and the leecher's user snatched the
// torrent once.
func TestLibtorrentAccounting(t *testing.T) {
	dir := t.TempDir()
	args := append(privateArgs(dir+"/db", writeToken(t, dir), "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"), "-interval", "5s")
	p := start(t, nil, args...)
	adm := &admin{t: t, addr: p.addr("admin"), token: adminToken}
	seederKey, leecherKey := passkeyOf("libtorrent-seeder"), passkeyOf("libtorrent-leecher")
	adm.putUser(1, seederKey, 100, 100)
	adm.putUser(2, leecherKey, 100, 100)
	const size = 4 << 20
	base := "http://" + p.addr("http") + "/announce/"
	tor := interop.MakeTorrent(t, t.TempDir(), base+seederKey, size, true)
	adm.putTorrent(tor.InfoHash, 100, 100)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := interop.Libtorrent(ctx, t, interop.Scenario{Torrent: tor, LeecherTracker: base + leecherKey})
	if err != nil {
		t.Fatal(err)
	}
	seeder, leecher := adm.user(1), adm.user(2)
	t.Logf("downloaded %d bytes in %v (pieces of %d bytes); libtorrent: seeder uploaded %d, leecher downloaded %d; credited: seeder's user %d up, leecher's user %d down",
		size, res.Elapsed.Round(time.Millisecond), tor.PieceLength, res.Seeder.Uploaded, res.Leecher.Downloaded, seeder.Uploaded, leecher.Downloaded)
	if res.Leecher.Downloaded < size {
		t.Errorf("libtorrent's leecher says it downloaded %d bytes of %d", res.Leecher.Downloaded, size)
	}
	within := func(who string, got, want int64) {
		t.Helper()
		if d := got - want; d < -int64(tor.PieceLength) || d > int64(tor.PieceLength) {
			t.Errorf("%s credited %d bytes; libtorrent counted %d: %+d, more than a piece (%d bytes)", who, got, want, d, tor.PieceLength)
		}
	}
	within("the seeder's user", seeder.Uploaded, res.Seeder.Uploaded)
	within("the leecher's user", leecher.Downloaded, res.Leecher.Downloaded)
	if seeder.Downloaded != 0 || seeder.Snatches != 0 {
		t.Errorf("the seeder's user: %+v; want nothing downloaded nor snatched", seeder)
	}
	if leecher.Snatches != 1 {
		t.Errorf("the leecher's user: %d snatches; want 1", leecher.Snatches)
	}
	if tt := adm.torrent(tor.InfoHash); tt.Snatches != 1 || tt.Uploaded != seeder.Uploaded+leecher.Uploaded || tt.Downloaded != leecher.Downloaded {
		t.Errorf("torrent: %+v; want 1 snatch and the users' credits", tt)
	}
}
