package main

import (
	"context"
	"encoding/binary"
	"path/filepath"

	"github.com/annuaire/tracker/accounting"
	bolt "go.etcd.io/bbolt"
)

// boltJournal is the journal as bbolt buckets: one read-write transaction
// per batch (bbolt syncs the data pages, then the meta page), fixed-size
// little-endian values.
type boltJournal struct {
	db    *bolt.DB
	rules accounting.Rules
}

var bucketNames = [][]byte{[]byte("users"), []byte("torrents"), []byte("history"), []byte("baselines")}

func openBolt(dir string, rules accounting.Rules) (*boltJournal, error) {
	db, err := bolt.Open(filepath.Join(dir, "ledger.bolt"), 0o600, &bolt.Options{NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, n := range bucketNames {
			if _, err := tx.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &boltJournal{db: db, rules: rules}, nil
}

func (j *boltJournal) Close() error { return j.db.Close() }

// add adds the int64 deltas to the fields of the value under key.
func add(b *bolt.Bucket, key []byte, fields int, deltas ...int64) ([]byte, error) {
	v := make([]byte, 8*fields)
	if old := b.Get(key); old != nil {
		copy(v, old)
	}
	for i, d := range deltas {
		binary.LittleEndian.PutUint64(v[8*i:], binary.LittleEndian.Uint64(v[8*i:])+uint64(d))
	}
	return v, b.Put(key, v)
}

func (j *boltJournal) Apply(ctx context.Context, batch []accounting.Record) error {
	return j.db.Update(func(tx *bolt.Tx) error {
		users, torrents := tx.Bucket(bucketNames[0]), tx.Bucket(bucketNames[1])
		history, baselines := tx.Bucket(bucketNames[2]), tx.Bucket(bucketNames[3])
		for i := range batch {
			r := &batch[i]
			key := make([]byte, 0, 48)
			key = binary.BigEndian.AppendUint64(key, r.User)
			key = append(key, r.InfoHash[:]...)
			key = append(key, r.PeerID[:]...)
			var b accounting.Baseline
			old := baselines.Get(key)
			if old != nil {
				b = accounting.Baseline{
					Uploaded: int64(binary.LittleEndian.Uint64(old)), Downloaded: int64(binary.LittleEndian.Uint64(old[8:])),
					Left: int64(binary.LittleEndian.Uint64(old[16:])), Time: int64(binary.LittleEndian.Uint64(old[24:])),
					Key: binary.LittleEndian.Uint32(old[32:]), Stopped: old[36] != 0,
				}
			}
			d := accounting.Credit(b, old != nil, r, j.rules)
			if d.Stale {
				continue
			}
			nb := d.Baseline
			v := make([]byte, 37)
			binary.LittleEndian.PutUint64(v, uint64(nb.Uploaded))
			binary.LittleEndian.PutUint64(v[8:], uint64(nb.Downloaded))
			binary.LittleEndian.PutUint64(v[16:], uint64(nb.Left))
			binary.LittleEndian.PutUint64(v[24:], uint64(nb.Time))
			binary.LittleEndian.PutUint32(v[32:], nb.Key)
			if nb.Stopped {
				v[36] = 1
			}
			if err := baselines.Put(key, v); err != nil {
				return err
			}
			// history: up, down, rawup, rawdown, seed, first, last, completed
			hk := key[:28:28]
			h := make([]byte, 64)
			fresh := true
			if old := history.Get(hk); old != nil {
				copy(h, old)
				fresh = false
			}
			le := binary.LittleEndian
			for f, dv := range []int64{d.Up, d.Down, d.RawUp, d.RawDown, int64(d.SeedTime)} {
				le.PutUint64(h[8*f:], le.Uint64(h[8*f:])+uint64(dv))
			}
			if fresh || int64(le.Uint64(h[40:])) > r.Time {
				le.PutUint64(h[40:], uint64(r.Time))
			}
			if int64(le.Uint64(h[48:])) < r.Time {
				le.PutUint64(h[48:], uint64(r.Time))
			}
			snatch := int64(0)
			if d.Snatch && le.Uint64(h[56:]) == 0 {
				le.PutUint64(h[56:], uint64(r.Time)|1)
				snatch = 1
			}
			if err := history.Put(hk, h); err != nil {
				return err
			}
			if _, err := add(users, key[:8:8], 5, d.Up, d.Down, d.RawUp, d.RawDown, snatch); err != nil {
				return err
			}
			if _, err := add(torrents, key[8:28:28], 3, d.Up, d.Down, snatch); err != nil {
				return err
			}
		}
		return nil
	})
}
