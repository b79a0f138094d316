//go:build unix

package interop

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/annuaire/tracker/internal/bencode"
)

// Torrent is a single-file torrent made for a test: random content on disk
// and its metainfo.
type Torrent struct {
	// File is the .torrent, announcing to the URL the torrent was made with.
	File string
	// ContentDir holds the content as Name: a seeder's save path.
	ContentDir string
	// Name is the content file's name, in ContentDir and in the metainfo.
	Name string
	// Size is the content's length in bytes.
	Size int
	// PieceLength is the length of a piece in bytes.
	PieceLength int
	// Private tells whether the info dict has private=1 (BEP 27).
	Private bool
	// InfoHash is the v1 info hash: SHA-1 of the info dict.
	InfoHash [20]byte
	// V2 is the SHA-256 of the info dict of a hybrid torrent (BEP 52);
	// zero for a v1-only torrent.
	V2 [32]byte

	meta     []byte // the metainfo as written to File
	announce string // its announce URL
}

// Hybrid reports whether tor is a hybrid v1+v2 torrent.
func (tor *Torrent) Hybrid() bool { return tor.V2 != [32]byte{} }

// TrackerHashes returns the info hashes a tracker sees for tor: the v1 hash,
// then for a hybrid torrent the first 20 bytes of the v2 hash.
func (tor *Torrent) TrackerHashes() [][20]byte {
	hs := [][20]byte{tor.InfoHash}
	if tor.Hybrid() {
		hs = append(hs, [20]byte(tor.V2[:20]))
	}
	return hs
}

// Content returns the content of tor as it is on disk in ContentDir.
func (tor *Torrent) Content() ([]byte, error) {
	return os.ReadFile(filepath.Join(tor.ContentDir, tor.Name))
}

// MakeTorrent writes size random bytes in a new directory under dir and a v1
// torrent of them that announces to announceURL, with private=1 in its info
// dict if private is set. It is written here in Go and needs no client.
func MakeTorrent(t testing.TB, dir, announceURL string, size int, private bool) *Torrent {
	t.Helper()
	tor, data := newContent(t, dir, size, private)
	pieceLen := tor.PieceLength
	var pieces []byte
	for off := 0; off < size; off += pieceLen {
		sum := sha1.Sum(data[off:min(off+pieceLen, size)])
		pieces = append(pieces, sum[:]...)
	}
	info := encodeInfo(size, tor.Name, pieceLen, pieces, private)
	tor.InfoHash = sha1.Sum(info)
	tor.meta = metainfo(announceURL, []entry{{"info", info}})
	tor.announce = announceURL
	if err := os.WriteFile(tor.File, tor.meta, 0o644); err != nil {
		t.Fatalf("interop: writing torrent: %v", err)
	}
	return tor
}

// encodeInfo returns the bencoded info dict of a single-file v1 torrent,
// keys in raw-byte order as BEP 3 requires.
func encodeInfo(size int, name string, pieceLen int, pieces []byte, private bool) []byte {
	b := []byte{'d'}
	b = appendInt(appendString(b, "length"), size)
	b = appendString(appendString(b, "name"), name)
	b = appendInt(appendString(b, "piece length"), pieceLen)
	b = appendString(appendString(b, "pieces"), string(pieces))
	if private {
		b = appendInt(appendString(b, "private"), 1)
	}
	return append(b, 'e')
}

// MakeHybridTorrent is like [MakeTorrent] but makes a hybrid v1+v2 torrent
// (BEP 52) with libtorrent's create_torrent. It skips t when libtorrent's
// Python module is missing.
func MakeHybridTorrent(t testing.TB, dir, announceURL string, size int, private bool) *Torrent {
	t.Helper()
	requireLibtorrent(t)
	tor, _ := newContent(t, dir, size, private)
	cfg, err := json.Marshal(map[string]any{
		"role":       "make",
		"path":       filepath.Join(tor.ContentDir, tor.Name),
		"out":        tor.File,
		"announce":   announceURL,
		"private":    private,
		"hybrid":     true,
		"piece_size": pieceLength(size),
	})
	if err != nil {
		t.Fatal(err)
	}
	script := sessionScript(t)
	if out, err := runCommand(t, pythonPath, script, string(cfg)); err != nil {
		t.Fatalf("interop: making a hybrid torrent with libtorrent: %v\n%s", err, out)
	}
	meta, err := os.ReadFile(tor.File)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := dictEntries(meta)
	if err != nil {
		t.Fatalf("interop: libtorrent wrote a torrent that does not decode: %v", err)
	}
	i := slices.IndexFunc(entries, func(e entry) bool { return e.key == "info" })
	if i < 0 {
		t.Fatal("interop: libtorrent wrote a torrent without an info dict")
	}
	tor.InfoHash = sha1.Sum(entries[i].raw)
	tor.V2 = sha256.Sum256(entries[i].raw)
	tor.meta = meta
	tor.announce = announceURL
	return tor
}

// newContent makes the content directory and its random file, and fills
// the fields of a Torrent that do not depend on the metainfo.
func newContent(t testing.TB, dir string, size int, private bool) (*Torrent, []byte) {
	t.Helper()
	if size <= 0 {
		t.Fatalf("interop: torrent size %d; want > 0", size)
	}
	var id [4]byte
	rand.Read(id[:])
	name := "data-" + hex.EncodeToString(id[:]) + ".bin"
	contentDir := filepath.Join(dir, "content-"+hex.EncodeToString(id[:]))
	if err := os.MkdirAll(contentDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, size)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(contentDir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return &Torrent{
		File:        filepath.Join(dir, name+".torrent"),
		ContentDir:  contentDir,
		Name:        name,
		Size:        size,
		PieceLength: pieceLength(size),
		Private:     private,
	}, data
}

// pieceLength picks a power of two of at least 16 KiB that keeps the torrent
// near 256 pieces.
func pieceLength(size int) int {
	n := 16 << 10
	for size/n > 256 {
		n *= 2
	}
	return n
}

// writeTorrent writes the metainfo of tor, announcing to announceURL alone,
// as a new file in dir and returns its path. The info dict, so the info
// hash, is unchanged.
func writeTorrent(dir string, tor *Torrent, announceURL string) (string, error) {
	entries, err := dictEntries(tor.meta)
	if err != nil {
		return "", fmt.Errorf("decoding %s: %w", tor.File, err)
	}
	entries = slices.DeleteFunc(entries, func(e entry) bool {
		return e.key == "announce" || e.key == "announce-list"
	})
	path := filepath.Join(dir, tor.Name+".torrent")
	return path, os.WriteFile(path, metainfo(announceURL, entries), 0o644)
}

// entry is a key of a bencoded dict and its raw bencoded value.
type entry struct {
	key string
	raw []byte
}

// metainfo encodes a metainfo dict: announce plus the given entries, in
// raw-byte key order.
func metainfo(announceURL string, entries []entry) []byte {
	entries = append(slices.Clone(entries), entry{"announce", appendString(nil, announceURL)})
	slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare([]byte(a.key), []byte(b.key)) })
	b := []byte{'d'}
	for _, e := range entries {
		b = appendString(b, e.key)
		b = append(b, e.raw...)
	}
	return append(b, 'e')
}

func appendString(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	return append(b, s...)
}

func appendInt(b []byte, n int) []byte {
	b = append(b, 'i')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, 'e')
}

// dictEntries splits the top-level bencoded dict b into its entries. The
// dict must be canonical bencode, as BEP 3 asks of metainfo files.
func dictEntries(b []byte) ([]entry, error) {
	s := bencode.NewScanner(b)
	d, _ := s.Dict()
	var entries []entry
	for d.Next() {
		start := s.Offset()
		s.Skip()
		entries = append(entries, entry{string(d.Key()), b[start:s.Offset()]})
	}
	if !s.End() {
		return nil, s.Err()
	}
	return entries, nil
}
