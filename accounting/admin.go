package accounting

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/annuaire/tracker"
)

// MaxAdminBody is the largest request body the admin API reads, in bytes.
const MaxAdminBody = 4096

// NewAdminHandler returns the admin API of a Ledger: JSON over HTTP, for a
// site that runs the tracker as a separate server. Every request carries
// "Authorization: Bearer " and token; with an empty token every request is
// refused. The routes, at the root of the URL the handler is given (mount
// it under a prefix with [http.StripPrefix]):
//
//	PUT    /api/v1/users/{id}           {"passkey": "...", "can_leech": true, "upload_factor": 100, "download_factor": 100}
//	GET    /api/v1/users/{id}           totals: uploaded, downloaded (credited), raw_*, snatches, seeding, leeching
//	DELETE /api/v1/users/{id}
//	GET    /api/v1/users/{id}/torrents  history rows
//	PUT    /api/v1/torrents/{info hash} {"upload_factor": 100, "download_factor": 0}
//	GET    /api/v1/torrents/{info hash} seeders, leechers, snatches, uploaded, downloaded
//	DELETE /api/v1/torrents/{info hash}?reason=...
//
// In a PUT, missing factors are 100 and a missing can_leech is true; a
// PUT of a user with a new passkey rotates it (the old one stops working
// at once), and a passkey another user holds is a 409. Info hashes are 40
// hex digits, times RFC 3339, seed time in seconds. Changes apply to the
// next announce. Failures are 4xx with a body {"error": "..."}: 400 for
// bad input, 401 for a wrong token, 404 for an unknown user or torrent,
// 405 for another method, 413 for a body over MaxAdminBody; a backend
// that fails is a 503.
//
// Seeders and leechers come from t's live swarm, through [Tracker.Scrape]
// (the Ledger lets the handler's scrapes through whatever passkeys t
// requires, if it is t's PasskeyValidator); if t is nil, from the
// backend's active peers.
func NewAdminHandler(l *Ledger, t *tracker.Tracker, token string) http.Handler {
	h := &adminHandler{l: l, t: t, hasToken: token != ""}
	h.token = sha256.Sum256([]byte(token))
	return h
}

type adminHandler struct {
	l        *Ledger
	t        *tracker.Tracker
	token    [32]byte
	hasToken bool
}

func (h *adminHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="annuaire admin"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/")
	parts := strings.Split(rest, "/")
	switch {
	case ok && len(parts) == 2 && parts[0] == "users":
		h.routeUser(w, r, parts[1])
	case ok && len(parts) == 3 && parts[0] == "users" && parts[2] == "torrents":
		if allow(w, r, http.MethodGet) {
			id, ok := parseUserID(w, parts[1])
			if ok {
				h.getHistory(w, r, id)
			}
		}
	case ok && len(parts) == 2 && parts[0] == "torrents":
		h.routeTorrent(w, r, parts[1])
	default:
		writeError(w, http.StatusNotFound, "no such route: the API is under /api/v1/users and /api/v1/torrents")
	}
}

func (h *adminHandler) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	sum := sha256.Sum256([]byte(got))
	return h.hasToken && ok && subtle.ConstantTimeCompare(sum[:], h.token[:]) == 1
}

// allow answers 405 unless r's method is one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed here: use "+strings.Join(methods, ", "))
	return false
}

func parseUserID(w http.ResponseWriter, s string) (uint64, bool) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("user id %.40q: want a positive decimal integer", s))
		return 0, false
	}
	return id, true
}

func (h *adminHandler) routeUser(w http.ResponseWriter, r *http.Request, idText string) {
	if !allow(w, r, http.MethodGet, http.MethodPut, http.MethodDelete) {
		return
	}
	id, ok := parseUserID(w, idText)
	if !ok {
		return
	}
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		u, err := h.l.User(ctx, id)
		if err != nil {
			h.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, userTotalsJSON{u.ID, u.Uploaded, u.Downloaded, u.RawUploaded, u.RawDownloaded, u.Snatches, u.Seeding, u.Leeching})
	case http.MethodPut:
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		u, err := decodeUser(id, body)
		if err == nil {
			err = h.l.PutUser(ctx, u)
		}
		if err != nil {
			h.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, userJSON{u.ID, u.CanLeech, u.UpFactor, u.DownFactor})
	case http.MethodDelete:
		if err := h.l.DeleteUser(ctx, id); err != nil {
			h.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	}
}

func (h *adminHandler) getHistory(w http.ResponseWriter, r *http.Request, id uint64) {
	rows, err := h.l.UserTorrents(r.Context(), id)
	if err != nil {
		h.fail(w, err)
		return
	}
	out := make([]historyJSON, len(rows))
	for i, row := range rows {
		out[i] = historyJSON{
			InfoHash: row.InfoHash.String(), Uploaded: row.Uploaded, Downloaded: row.Downloaded,
			RawUploaded: row.RawUploaded, RawDownloaded: row.RawDownloaded,
			SeedTime: int64(row.SeedTime / time.Second), Active: row.Active,
			FirstSeen: rfc3339(row.FirstSeen), LastSeen: rfc3339(row.LastSeen), CompletedAt: rfc3339(row.CompletedAt),
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// rfc3339 formats t in UTC, or returns nil for the zero time.
func rfc3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}

func (h *adminHandler) routeTorrent(w http.ResponseWriter, r *http.Request, hashText string) {
	if !allow(w, r, http.MethodGet, http.MethodPut, http.MethodDelete) {
		return
	}
	ih, err := tracker.ParseInfoHash(hashText)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("info hash %.48q: want 40 hex digits", hashText))
		return
	}
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		h.getTorrent(w, r, ih)
	case http.MethodPut:
		body, ok := readBody(w, r)
		if !ok {
			return
		}
		t, err := decodeTorrent(ih, body)
		if err == nil {
			err = h.l.PutTorrent(ctx, t)
		}
		if err != nil {
			h.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, torrentJSON{ih.String(), t.UpFactor, t.DownFactor})
	case http.MethodDelete:
		reason := r.URL.Query().Get("reason")
		if err := h.l.DeleteTorrent(ctx, ih, reason); err != nil {
			h.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"info_hash": ih.String(), "deleted": true, "reason": reason})
	}
}

func (h *adminHandler) getTorrent(w http.ResponseWriter, r *http.Request, ih tracker.InfoHash) {
	tt, err := h.l.Torrent(r.Context(), ih)
	if err != nil {
		h.fail(w, err)
		return
	}
	seeders, leechers := tt.Seeders, tt.Leechers
	if h.t != nil {
		ctx := context.WithValue(r.Context(), adminScrape{}, h.l)
		resp, err := h.t.Scrape(ctx, &tracker.ScrapeRequest{InfoHashes: []tracker.InfoHash{ih}, Passkey: adminPasskey})
		if err != nil {
			status := http.StatusServiceUnavailable
			if errors.Is(err, tracker.ErrRateLimited) {
				status = http.StatusTooManyRequests
			}
			writeError(w, status, "reading the swarm: "+err.Error())
			return
		}
		seeders, leechers = int64(resp.Files[0].Complete), int64(resp.Files[0].Incomplete)
	}
	writeJSON(w, http.StatusOK, torrentTotalsJSON{ih.String(), seeders, leechers, tt.Snatches, tt.Uploaded, tt.Downloaded})
}

// fail answers err from the Ledger.
func (h *adminHandler) fail(w http.ResponseWriter, err error) {
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		writeError(w, http.StatusBadRequest, ve.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrPasskeyInUse):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, "backend unavailable: "+err.Error())
	}
}

// readBody reads a request body of at most MaxAdminBody bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAdminBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", MaxAdminBody))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		return nil, false
	}
	return body, true
}

type userBody struct {
	Passkey        *string `json:"passkey"`
	CanLeech       *bool   `json:"can_leech"`
	UploadFactor   *uint16 `json:"upload_factor"`
	DownloadFactor *uint16 `json:"download_factor"`
}

type torrentBody struct {
	UploadFactor   *uint16 `json:"upload_factor"`
	DownloadFactor *uint16 `json:"download_factor"`
}

// decodeStrict decodes one JSON object from body into v, refusing unknown
// fields and anything after the object.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return &ValidationError{"body", "empty: want a JSON object"}
		}
		return &ValidationError{"body", err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &ValidationError{"body", "more than one JSON value"}
	}
	return nil
}

func factorOr100(f *uint16) uint16 {
	if f == nil {
		return 100
	}
	return *f
}

// decodeUser decodes the body of a PUT of user id, defaults applied, and
// validates it.
func decodeUser(id uint64, body []byte) (User, error) {
	var b userBody
	if err := decodeStrict(body, &b); err != nil {
		return User{}, err
	}
	if b.Passkey == nil {
		return User{}, &ValidationError{"passkey", "missing"}
	}
	u := User{ID: id, Passkey: *b.Passkey, CanLeech: b.CanLeech == nil || *b.CanLeech, UpFactor: factorOr100(b.UploadFactor), DownFactor: factorOr100(b.DownloadFactor)}
	return u, validUser(u)
}

// decodeTorrent decodes the body of a PUT of torrent ih, defaults
// applied, and validates it.
func decodeTorrent(ih tracker.InfoHash, body []byte) (Torrent, error) {
	var b torrentBody
	if err := decodeStrict(body, &b); err != nil {
		return Torrent{}, err
	}
	t := Torrent{InfoHash: ih, UpFactor: factorOr100(b.UploadFactor), DownFactor: factorOr100(b.DownloadFactor)}
	return t, validTorrent(t)
}

type userJSON struct {
	ID             uint64 `json:"id"`
	CanLeech       bool   `json:"can_leech"`
	UploadFactor   uint16 `json:"upload_factor"`
	DownloadFactor uint16 `json:"download_factor"`
}

type userTotalsJSON struct {
	ID            uint64 `json:"id"`
	Uploaded      int64  `json:"uploaded"`
	Downloaded    int64  `json:"downloaded"`
	RawUploaded   int64  `json:"raw_uploaded"`
	RawDownloaded int64  `json:"raw_downloaded"`
	Snatches      int64  `json:"snatches"`
	Seeding       int64  `json:"seeding"`
	Leeching      int64  `json:"leeching"`
}

type historyJSON struct {
	InfoHash      string  `json:"info_hash"`
	Uploaded      int64   `json:"uploaded"`
	Downloaded    int64   `json:"downloaded"`
	RawUploaded   int64   `json:"raw_uploaded"`
	RawDownloaded int64   `json:"raw_downloaded"`
	SeedTime      int64   `json:"seed_time"`
	FirstSeen     *string `json:"first_seen"`
	LastSeen      *string `json:"last_seen"`
	CompletedAt   *string `json:"completed_at"`
	Active        bool    `json:"active"`
}

type torrentJSON struct {
	InfoHash       string `json:"info_hash"`
	UploadFactor   uint16 `json:"upload_factor"`
	DownloadFactor uint16 `json:"download_factor"`
}

type torrentTotalsJSON struct {
	InfoHash   string `json:"info_hash"`
	Seeders    int64  `json:"seeders"`
	Leechers   int64  `json:"leechers"`
	Snatches   int64  `json:"snatches"`
	Uploaded   int64  `json:"uploaded"`
	Downloaded int64  `json:"downloaded"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the reply"}`)
	}
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
