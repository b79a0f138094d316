package accounting_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/accountingtest"
	"github.com/annuaire/tracker/trackertest"
)

const token = "s3cret-admin-token"

type admin struct {
	t   *testing.T
	srv *httptest.Server
}

func newAdmin(t *testing.T, e *env) *admin {
	srv := httptest.NewServer(accounting.NewAdminHandler(e.l, e.tr, token))
	t.Cleanup(srv.Close)
	return &admin{t, srv}
}

// do sends a request and returns the status and the decoded JSON body.
func (a *admin) do(method, path, body string, auth ...string) (int, map[string]any) {
	a.t.Helper()
	code, raw := a.raw(method, path, body, auth...)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		a.t.Fatalf("%s %s: %d with a body that is not a JSON object: %q", method, path, code, raw)
	}
	return code, m
}

func (a *admin) raw(method, path, body string, auth ...string) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if len(auth) > 0 {
		req.Header.Set("Authorization", auth[0])
	}
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		a.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, raw
}

func (a *admin) want(method, path, body string, status int) map[string]any {
	a.t.Helper()
	code, m := a.do(method, path, body)
	if code != status {
		a.t.Fatalf("%s %s %s: %d %v; want %d", method, path, body, code, m, status)
	}
	if status >= 400 {
		if msg, _ := m["error"].(string); msg == "" {
			a.t.Errorf("%s %s: %d without an error message: %v", method, path, code, m)
		}
	}
	return m
}

func TestAdminAPI(t *testing.T) {
	e := newEnv(t, accounting.Config{})
	a := newAdmin(t, e)
	pk := accountingtest.Passkey(10)
	ih := trackertest.Hash(5).String()

	a.want("PUT", "/api/v1/users/10", `{"passkey": "`+pk+`", "upload_factor": 200}`, 200)
	a.want("PUT", "/api/v1/torrents/"+ih, `{"download_factor": 0}`, 200)
	if err := e.announce(10, trackertest.Hash(5), 1, 0, 0, 1000, tracker.EventStarted); err != nil {
		t.Fatalf("announce after registering by the API: %v", err)
	}
	if err := e.announce(10, trackertest.Hash(5), 1, 500, 1000, 0, tracker.EventCompleted); err != nil {
		t.Fatal(err)
	}
	e.mustAnnounce(10, 2, 0, 0, 0, tracker.EventStarted) // a seeder on torrent 1

	u := a.want("GET", "/api/v1/users/10", "", 200)
	for k, v := range map[string]float64{"id": 10, "uploaded": 1000, "downloaded": 0, "raw_uploaded": 500, "raw_downloaded": 1000, "snatches": 1, "seeding": 2, "leeching": 0} {
		if u[k] != v {
			t.Errorf("GET user: %s = %v; want %v (%v)", k, u[k], v, u)
		}
	}
	code, raw := a.raw("GET", "/api/v1/users/10/torrents", "")
	var rows []map[string]any
	if err := json.Unmarshal(raw, &rows); code != 200 || err != nil || len(rows) != 2 {
		t.Fatalf("GET history: %d %s; want two rows", code, raw)
	}
	row := rows[0]
	if row["info_hash"] != trackertest.Hash(1).String() {
		row = rows[1]
	}
	if row["info_hash"] != trackertest.Hash(1).String() || row["seed_time"] != 0.0 || row["completed_at"] != nil || row["active"] != true {
		t.Errorf("history row of torrent 1: %v", row)
	}
	for _, k := range []string{"first_seen", "last_seen"} {
		if _, err := time.Parse(time.RFC3339, row[k].(string)); err != nil {
			t.Errorf("history %s: %v", k, err)
		}
	}
	tt := a.want("GET", "/api/v1/torrents/"+ih, "", 200)
	for k, v := range map[string]float64{"seeders": 1, "leechers": 0, "snatches": 1, "uploaded": 1000, "downloaded": 0} {
		if tt[k] != v {
			t.Errorf("GET torrent: %s = %v; want %v (%v)", k, tt[k], v, tt)
		}
	}

	// Rotation: the old passkey stops working at once; a passkey in use is
	// a conflict.
	a.want("PUT", "/api/v1/users/11", `{"passkey": "`+accountingtest.Passkey(11)+`", "can_leech": false}`, 200)
	a.want("PUT", "/api/v1/users/11", `{"passkey": "`+pk+`"}`, 409)
	a.want("PUT", "/api/v1/users/10", `{"passkey": "`+accountingtest.Passkey(12)+`"}`, 200)
	if _, err := e.l.ValidatePasskey(ctx, pk); !errors.Is(err, tracker.ErrInvalidPasskey) {
		t.Errorf("the old passkey after rotation: %v; want ErrInvalidPasskey", err)
	}
	if id, err := e.l.ValidatePasskey(ctx, accountingtest.Passkey(11)); err != nil || id.UserID != 11 {
		t.Errorf("user 11's passkey: %+v, %v", id, err)
	}

	// Deletion: clients read the reason.
	a.want("DELETE", "/api/v1/torrents/"+ih+"?reason=nuked:+bad+encode", "", 200)
	err := e.announce(11, trackertest.Hash(5), 3, 0, 0, 0, tracker.EventStarted)
	if te, ok := errors.AsType[*tracker.Error](err); !ok || te.Reason != "unregistered torrent: nuked: bad encode" {
		t.Errorf("announce of a deleted torrent: %v", err)
	}
	a.want("DELETE", "/api/v1/users/11", "", 200)
	a.want("GET", "/api/v1/users/11", "", 404)
	if _, err := e.l.ValidatePasskey(ctx, accountingtest.Passkey(11)); !errors.Is(err, tracker.ErrInvalidPasskey) {
		t.Errorf("a deleted user's passkey: %v", err)
	}
}

func TestAdminErrors(t *testing.T) {
	e := newEnv(t, accounting.Config{})
	a := newAdmin(t, e)
	ih := trackertest.Hash(1).String()
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic " + token, "bearer " + token} {
		if code, m := a.do("GET", "/api/v1/users/1", "", auth); code != 401 || m["error"] == nil {
			t.Errorf("Authorization %q: %d %v; want 401 with an error", auth, code, m)
		}
	}
	if code, _ := a.do("GET", "/api/v1/users/1", "", "Bearer "+token); code != 200 {
		t.Errorf("the right token: %d", code)
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"GET", "/api/v1/users/99", "", 404},
		{"GET", "/api/v1/users/99/torrents", "", 404},
		{"DELETE", "/api/v1/users/99", "", 404},
		{"GET", "/api/v1/torrents/" + trackertest.Hash(99).String(), "", 404},
		{"DELETE", "/api/v1/torrents/" + trackertest.Hash(99).String(), "", 404},
		{"GET", "/api/v1/users/abc", "", 400},
		{"GET", "/api/v1/users/0", "", 400},
		{"GET", "/api/v1/users/-1", "", 400},
		{"GET", "/api/v1/torrents/1234", "", 400},
		{"GET", "/api/v1/torrents/" + strings.Repeat("zz", 20), "", 400},
		{"PUT", "/api/v1/users/5", `{"passkey": "short"}`, 400},
		{"PUT", "/api/v1/users/5", `{"can_leech": true}`, 400},
		{"PUT", "/api/v1/users/5", `{"passkey": "` + accountingtest.Passkey(5) + `", "upload_factor": 1001}`, 400},
		{"PUT", "/api/v1/users/5", `{"passkey": "` + accountingtest.Passkey(5) + `", "upload_factor": -1}`, 400},
		{"PUT", "/api/v1/users/5", `{"passkey": "` + accountingtest.Passkey(5) + `", "ratio": 2}`, 400},
		{"PUT", "/api/v1/users/5", `{"passkey": "` + accountingtest.Passkey(5) + `"} {}`, 400},
		{"PUT", "/api/v1/users/5", `[1, 2]`, 400},
		{"PUT", "/api/v1/users/5", ``, 400},
		{"PUT", "/api/v1/users/5", `{"passkey": `, 400},
		{"PUT", "/api/v1/users/5", `{"passkey": "` + strings.Repeat("a", 5000) + `"}`, 413},
		{"PUT", "/api/v1/torrents/" + ih, `{"upload_factor": 70000}`, 400},
		{"PUT", "/api/v1/torrents/" + strings.Repeat("0", 40), `{}`, 400},
		{"DELETE", "/api/v1/torrents/" + ih + "?reason=" + strings.Repeat("x", 201), "", 400},
		{"POST", "/api/v1/users/5", `{}`, 405},
		{"PATCH", "/api/v1/torrents/" + ih, `{}`, 405},
		{"PUT", "/api/v1/users/5/torrents", `{}`, 405},
		{"GET", "/api/v1/swarms", "", 404},
		{"GET", "/", "", 404},
		{"GET", "/api/v1/users/1/torrents/x", "", 404},
	} {
		a.want(tc.method, tc.path, tc.body, tc.status)
	}
	// A backend that fails is a 503, with an error body.
	e.b.Close()
	a.want("GET", "/api/v1/users/1", "", 503)
	a.want("PUT", "/api/v1/users/6", `{"passkey": "`+accountingtest.Passkey(6)+`"}`, 503)

	// No token configured: nothing is allowed.
	srv := httptest.NewServer(accounting.NewAdminHandler(e.l, e.tr, ""))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/users/1", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("a handler with no token: %d; want 401", resp.StatusCode)
	}
}
