package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/annuaire/tracker"
)

// siteValidator checks passkeys against the site's API and caches the
// answers, so that the site sees about one request per passkey per TTL
// however often clients announce.
//
// The API answers GET <base>/<passkey> with 200 and a JSON body
// {"user_id": 42, "warning": "..."} for a valid passkey, and 404 for an
// unknown one. Any other answer, or none, is an outage: the announce fails
// with a generic error (and is logged) rather than telling a paying user
// that their passkey is wrong, and the outage is not cached.
type siteValidator struct {
	base   string
	client *http.Client
	ttl    time.Duration // how long a valid passkey is trusted
	negTTL time.Duration // how long an unknown passkey is remembered
	max    int           // most cached passkeys
	now    func() time.Time

	mu       sync.Mutex
	cache    map[string]cached
	inflight map[string]*lookup // one API call per passkey at a time
}

type cached struct {
	id      tracker.Identity
	valid   bool
	expires time.Time
}

type lookup struct {
	done  chan struct{}
	entry cached
	err   error
}

var _ tracker.PasskeyValidator = (*siteValidator)(nil)

func newSiteValidator(base string, client *http.Client) *siteValidator {
	return &siteValidator{
		base:     base,
		client:   client,
		ttl:      5 * time.Minute,
		negTTL:   30 * time.Second,
		max:      1_000_000,
		now:      time.Now,
		cache:    make(map[string]cached),
		inflight: make(map[string]*lookup),
	}
}

// ValidatePasskey implements tracker.PasskeyValidator.
func (v *siteValidator) ValidatePasskey(ctx context.Context, passkey string) (tracker.Identity, error) {
	now := v.now()
	v.mu.Lock()
	if c, ok := v.cache[passkey]; ok && now.Before(c.expires) {
		v.mu.Unlock()
		return c.result()
	}
	l, busy := v.inflight[passkey]
	if !busy {
		l = &lookup{done: make(chan struct{})}
		v.inflight[passkey] = l
	}
	v.mu.Unlock()

	if busy {
		select {
		case <-l.done:
		case <-ctx.Done():
			return tracker.Identity{}, ctx.Err()
		}
	} else {
		l.entry, l.err = v.fetch(ctx, passkey, now)
		v.mu.Lock()
		delete(v.inflight, passkey)
		if l.err == nil {
			v.store(passkey, l.entry, now)
		}
		v.mu.Unlock()
		close(l.done)
	}
	if l.err != nil {
		return tracker.Identity{}, l.err
	}
	return l.entry.result()
}

func (c cached) result() (tracker.Identity, error) {
	if !c.valid {
		return tracker.Identity{}, tracker.ErrInvalidPasskey
	}
	return c.id, nil
}

// store caches an answer, making room first if the cache is full: expired
// entries go, and if that is not enough, any tenth of the others.
func (v *siteValidator) store(passkey string, c cached, now time.Time) {
	if len(v.cache) >= v.max {
		for k, e := range v.cache {
			if !now.Before(e.expires) {
				delete(v.cache, k)
			}
		}
		for k := range v.cache {
			if len(v.cache) < v.max*9/10 {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[passkey] = c
}

// fetch asks the site about one passkey.
func (v *siteValidator) fetch(ctx context.Context, passkey string, now time.Time) (cached, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.base+"/"+url.PathEscape(passkey), nil)
	if err != nil {
		return cached{}, err
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return cached{}, fmt.Errorf("site API: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var body struct {
			UserID  uint64 `json:"user_id"`
			Warning string `json:"warning"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
			return cached{}, fmt.Errorf("site API: decoding the answer for a passkey: %w", err)
		}
		if body.UserID == 0 {
			return cached{}, errors.New("site API: answer without a user id")
		}
		id := tracker.Identity{UserID: body.UserID, Warning: body.Warning}
		return cached{id: id, valid: true, expires: now.Add(v.ttl)}, nil
	case http.StatusNotFound:
		return cached{expires: now.Add(v.negTTL)}, nil
	}
	return cached{}, fmt.Errorf("site API: status %s", resp.Status)
}
