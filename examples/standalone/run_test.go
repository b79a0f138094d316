package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runInProcess runs the program on loopback in this process, with
// signals sent over the returned channel, and waits until it is ready.
// The returned channel of errors yields run's result.
func runInProcess(ctx context.Context, t *testing.T, args ...string) (*logWatcher, chan<- os.Signal, <-chan error) {
	t.Helper()
	log := newLogWatcher()
	signals := make(chan os.Signal, 1)
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- run(ctx, process{
			args:      append(append([]string{}, loopback...), args...),
			lookupEnv: envOf(),
			stdout:    log,
			stderr:    log,
			signals:   signals,
		})
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Error("run did not return")
		}
	})
	log.waitFor(t, exited, 1, "ready", nil)
	return log, signals, done
}

// result waits for run's result.
func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return")
		return nil
	}
}

func TestRunReloadAndSignals(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passkeys")
	const oldKey, newKey = "old0000000000000000000000000000", "new0000000000000000000000000000"
	if err := os.WriteFile(file, []byte(oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, signals, done := runInProcess(context.Background(), t, "-passkeys", file)
	addrs := log.addrs()
	httpAddr, udpAddr := addrs["http"][0], addrs["udp"][0]
	hash := hash20("in-process")
	announce := func(pk string) string {
		return announceHTTP(t, httpAddr, "/"+pk+"/announce", hash, hash20("p-"+pk[:3]), 6881, 1)
	}
	if body := announce(oldKey); interval(body) <= 0 {
		t.Errorf("announce with the listed passkey: %q", body)
	}
	if r := newUDPClient(t, udpAddr).announce(hash, hash20("udp"), 6882, 1, "/announce?passkey="+oldKey); r.err != "" {
		t.Errorf("UDP announce with the listed passkey: error %q", r.err)
	}

	if err := os.WriteFile(file, []byte(newKey+" 42\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signals <- syscall.SIGHUP
	log.waitFor(t, nil, 1, "reloaded", map[string]any{"list": "passkeys", "count": 1})
	if body := announce(newKey); interval(body) <= 0 {
		t.Errorf("announce with the new passkey: %q", body)
	}
	if body := announce(oldKey); !strings.Contains(body, "invalid passkey") {
		t.Errorf("announce with the removed passkey: %q; want it refused", body)
	}

	signals <- syscall.SIGTERM
	if err := result(t, done); err != nil {
		t.Errorf("run after SIGTERM = %v; want nil", err)
	}
	log.waitFor(t, nil, 1, "stopped", nil)
	checkNoLeaks(t)
}

func TestRunContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	log, signals, done := runInProcess(ctx, t)
	signals <- syscall.SIGHUP // no file to reload: logged and ignored
	log.waitFor(t, nil, 1, "SIGHUP: no -passkeys, -torrents or -tls-cert file to reload", nil)
	cancel()
	if err := result(t, done); err != nil {
		t.Errorf("run after cancel = %v; want nil", err)
	}
	checkNoLeaks(t)
}

// leakMarks are frames of the goroutines a running server owns: its
// listeners, the UDP readers, the store's sweeper, the connections of its
// HTTP servers.
var leakMarks = []string{
	"standalone.(*server)",
	"tracker.(*UDPServer)",
	"tracker.(*MemoryStore)",
	"net/http.(*Server).Serve",
	"net/http.(*conn).serve",
}

// checkNoLeaks fails if goroutines of a server are still running once
// run has returned. Some may take a moment to end: it waits a little.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	var leaked []string
	for range 100 {
		leaked = leaked[:0]
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			for _, m := range leakMarks {
				if strings.Contains(g, m) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("%d goroutines still running after run returned:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
}

func TestRunHelp(t *testing.T) {
	var out, errs strings.Builder
	err := run(context.Background(), process{args: []string{"-help"}, lookupEnv: envOf(), stdout: &out, stderr: &errs})
	if err != nil || !strings.Contains(out.String(), "Usage: annuaire [flags]") || errs.Len() > 0 {
		t.Errorf("run -help = %v, stdout %.80q..., stderr %q; want nil and the help on stdout", err, out.String(), errs.String())
	}
}
