package accountingtest

import (
	"context"
	"errors"
	"sync"

	"github.com/annuaire/tracker/accounting"
)

// ErrInjected is the failure a [Flaky] backend reports.
var ErrInjected = errors.New("accountingtest: injected failure")

// Flaky wraps a Backend and makes its Apply fail on demand, the ways a
// database fails: before the transaction commits (nothing is applied), or
// after (everything is, but the acknowledgement is lost and the caller
// sees an error), or for a while (an outage). Other methods pass through.
// Its methods are safe for concurrent use.
type Flaky struct {
	accounting.Backend

	mu            sync.Mutex
	before, after int
	down          bool
	calls, fails  int
	records       int
	keepOpen      bool
}

// NewFlaky returns a Flaky over b that fails nothing until told to.
func NewFlaky(b accounting.Backend) *Flaky { return &Flaky{Backend: b} }

// FailBefore makes the next n calls to Apply fail without applying
// anything.
func (f *Flaky) FailBefore(n int) {
	f.mu.Lock()
	f.before = n
	f.mu.Unlock()
}

// FailAfter makes the next n calls to Apply apply their batch and then
// report a failure.
func (f *Flaky) FailAfter(n int) {
	f.mu.Lock()
	f.after = n
	f.mu.Unlock()
}

// SetDown makes every call to Apply fail without applying anything while
// down is true.
func (f *Flaky) SetDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

// KeepOpen makes Close a no-op, so that the backend outlives a Ledger
// (a crashed process's backend, reopened by the next).
func (f *Flaky) KeepOpen() {
	f.mu.Lock()
	f.keepOpen = true
	f.mu.Unlock()
}

// Calls returns how many times Apply was called, and how many of those
// calls failed.
func (f *Flaky) Calls() (calls, failed int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.fails
}

// Records returns how many records the calls to Apply that succeeded
// carried.
func (f *Flaky) Records() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.records
}

// Apply applies batch, or fails as set.
func (f *Flaky) Apply(ctx context.Context, batch []accounting.Record) error {
	f.mu.Lock()
	f.calls++
	fail := f.down || f.before > 0
	after := !fail && f.after > 0
	switch {
	case f.down:
	case f.before > 0:
		f.before--
	case f.after > 0:
		f.after--
	}
	if fail || after {
		f.fails++
	}
	f.mu.Unlock()
	if fail {
		return ErrInjected
	}
	if err := f.Backend.Apply(ctx, batch); err != nil {
		return err
	}
	if after {
		return ErrInjected
	}
	f.mu.Lock()
	f.records += len(batch)
	f.mu.Unlock()
	return nil
}

// Close closes the backend, unless KeepOpen was called.
func (f *Flaky) Close() error {
	f.mu.Lock()
	keep := f.keepOpen
	f.mu.Unlock()
	if keep {
		return nil
	}
	return f.Backend.Close()
}
