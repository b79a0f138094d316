package accounting

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/annuaire/tracker"
)

// FuzzAdminDecode: the admin API's request decoding never panics, refuses
// with a *ValidationError, and whatever it accepts is valid and decodes
// back the same once encoded.
func FuzzAdminDecode(f *testing.F) {
	for _, seed := range []string{
		`{"passkey": "abcdefghijklmnopqrstuvwxyz012345", "can_leech": true, "upload_factor": 100, "download_factor": 100}`,
		`{"passkey": "abcdefghijklmnopqrstuvwxyz012345"}`,
		`{"passkey": "abcdefghijklmnopqrstuvwxyz012345", "can_leech": false, "upload_factor": 1000, "download_factor": 0}`,
		`{"upload_factor": 100, "download_factor": 0}`,
		`{}`, ``, `null`, `[]`, `{"passkey": null}`, `{"upload_factor": 1e3}`, `{"upload_factor": 65536}`,
		`{"passkey": "abc"} trailing`, `{"PASSKEY": "abcdefghijklmnopqrstuvwxyz012345"}`, "{\"passkey\": \"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	ih := tracker.InfoHash{1}
	f.Fuzz(func(t *testing.T, body []byte) {
		var ve *ValidationError
		u, err := decodeUser(7, body)
		switch {
		case err != nil && !errors.As(err, &ve):
			t.Fatalf("decodeUser(%q): %v; want a *ValidationError", body, err)
		case err == nil:
			if validUser(u) != nil || u.ID != 7 {
				t.Fatalf("decodeUser(%q) accepted %+v", body, u)
			}
			again, _ := json.Marshal(userBody{&u.Passkey, &u.CanLeech, &u.UpFactor, &u.DownFactor})
			if u2, err := decodeUser(7, again); err != nil || u2 != u {
				t.Fatalf("decodeUser(%q) = %+v; encoded and decoded again: %+v, %v", body, u, u2, err)
			}
		}
		tt, err := decodeTorrent(ih, body)
		switch {
		case err != nil && !errors.As(err, &ve):
			t.Fatalf("decodeTorrent(%q): %v; want a *ValidationError", body, err)
		case err == nil && (validTorrent(tt) != nil || tt.InfoHash != ih || tt.Deleted):
			t.Fatalf("decodeTorrent(%q) accepted %+v", body, tt)
		}
	})
}
