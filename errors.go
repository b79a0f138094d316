package tracker

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Kind sorts client-visible failures for [Stats] and for callers that act
// on a class of failure rather than on its text.
type Kind uint8

// The failure kinds.
const (
	// KindOther is any failure a user-supplied policy returned without a kind.
	KindOther Kind = iota
	// KindBadRequest is a malformed or out-of-range request.
	KindBadRequest
	// KindTorrent is a torrent the tracker does not serve.
	KindTorrent
	// KindPasskey is a missing or unknown passkey.
	KindPasskey
	// KindClient is a client (peer-id prefix or user agent) that is refused.
	KindClient
	// KindRateLimited is a client over its request rate.
	KindRateLimited
	// KindCapacity is a store that has reached its configured bound.
	KindCapacity
	// KindInternal is an internal error: the client sees a generic text.
	// A policy's *Error whose Kind is none of these counts as one.
	KindInternal
	// KindUnavailable is a request the tracker could not answer in time:
	// too many requests were waiting for a policy or the store, or the
	// request's deadline ([Config.RequestTimeout]) passed. The client
	// should retry.
	KindUnavailable
	numKinds
)

var kindNames = [numKinds]string{
	KindOther:       "other",
	KindBadRequest:  "bad_request",
	KindTorrent:     "torrent",
	KindPasskey:     "passkey",
	KindClient:      "client",
	KindRateLimited: "rate_limited",
	KindCapacity:    "capacity",
	KindInternal:    "internal",
	KindUnavailable: "unavailable",
}

// String returns the kind's name as [Stats.Failures] uses it, such as
// "rate_limited".
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// RetryNever, as [Error.RetryIn], tells the client never to retry (BEP 31).
const RetryNever time.Duration = -1

// Error is a failure the client is told about: Reason goes on the wire, as
// the HTTP "failure reason" or the text of a UDP error packet. Any other
// error returned inside the tracker is logged and the client gets a generic
// message, so internal details never reach peers.
//
// Policies return an *Error (or wrap one) to choose what the client reads;
// the package's sentinels are *Error values that errors.Is matches.
type Error struct {
	// Kind sorts the failure for statistics.
	Kind Kind
	// Reason is the text for the client. Clients act on some texts:
	// Transmission stops announcing a torrent on "unregistered torrent".
	Reason string
	// RetryIn, when positive, asks the client to wait this long before
	// retrying (BEP 31, sent in whole minutes); RetryNever asks it never to.
	RetryIn time.Duration
}

// Error returns the reason with the package prefix.
func (e *Error) Error() string {
	if e == nil {
		return "tracker: <nil *Error>"
	}
	return "tracker: " + e.Reason
}

// The client-visible failures the tracker itself produces.
var (
	ErrInvalidInfoHash     = &Error{Kind: KindBadRequest, Reason: "invalid info_hash"}
	ErrInvalidPeerID       = &Error{Kind: KindBadRequest, Reason: "invalid peer_id"}
	ErrInvalidPort         = &Error{Kind: KindBadRequest, Reason: "invalid port"}
	ErrInvalidAddress      = &Error{Kind: KindBadRequest, Reason: "invalid peer address"}
	ErrInvalidCounter      = &Error{Kind: KindBadRequest, Reason: "invalid uploaded, downloaded or left"}
	ErrInvalidEvent        = &Error{Kind: KindBadRequest, Reason: "invalid event"}
	ErrNoInfoHash          = &Error{Kind: KindBadRequest, Reason: "no info_hash given"}
	ErrTooManyInfoHashes   = &Error{Kind: KindBadRequest, Reason: "too many info_hash values"}
	ErrUnregisteredTorrent = &Error{Kind: KindTorrent, Reason: "unregistered torrent"}
	ErrPasskeyRequired     = &Error{Kind: KindPasskey, Reason: "passkey required: use the announce URL from your account"}
	ErrInvalidPasskey      = &Error{Kind: KindPasskey, Reason: "invalid passkey"}
	ErrClientNotAllowed    = &Error{Kind: KindClient, Reason: "client not allowed"}
	ErrRateLimited         = &Error{Kind: KindRateLimited, Reason: "too many requests, slow down", RetryIn: time.Minute}
	ErrTooManyPeers        = &Error{Kind: KindCapacity, Reason: "tracker is full: too many peers", RetryIn: 5 * time.Minute}
	ErrTooManySwarms       = &Error{Kind: KindCapacity, Reason: "tracker is full: too many torrents", RetryIn: 5 * time.Minute}
	ErrBusy                = &Error{Kind: KindUnavailable, Reason: "tracker busy, retry", RetryIn: time.Minute}
	errInternal            = &Error{Kind: KindInternal, Reason: "internal tracker error"}
)

// ErrClosed is returned by a [Tracker] or [Store] used after Close.
var ErrClosed = errors.New("tracker: closed")

// ErrServerClosed is returned by the front-ends' Serve methods after
// Shutdown or Close. It is [http.ErrServerClosed], so that one test serves
// the UDP server and the [http.Server] of [NewHTTPServer] alike.
var ErrServerClosed = http.ErrServerClosed

// clientError returns the *Error that reaches the client for err, and
// whether err was one (false means an internal error, which the caller logs).
// A nil *Error, or one whose Kind is out of range, is a broken policy or
// store: an internal error too, never indexed by its Kind nor shown.
func clientError(err error) (*Error, bool) {
	// errors.AsType, unlike errors.As, does not allocate: failures are
	// answered on the UDP hot path too.
	if e, ok := errors.AsType[*Error](err); ok && e != nil && e.Kind < numKinds {
		return e, true
	}
	return errInternal, false
}
