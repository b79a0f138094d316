//go:build unix

package interop

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pythonPath is Debian's interpreter, the one python3-libtorrent is
// installed for; another python3 earlier in PATH may lack the module.
const pythonPath = "/usr/bin/python3"

//go:embed session.py
var sessionPy []byte

// sessionScript writes the libtorrent session script in a temporary
// directory of t and returns its path.
func sessionScript(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "session.py")
	if err := os.WriteFile(path, sessionPy, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var libtorrentCheck = sync.OnceValues(func() (string, error) {
	out, err := exec.Command(pythonPath, "-c", "import libtorrent; print(libtorrent.__version__)").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s cannot import libtorrent (Debian package python3-libtorrent): %v: %s",
			pythonPath, err, bytes.TrimSpace(out))
	}
	return strings.TrimSpace(string(out)), nil
})

// requireLibtorrent skips t when libtorrent's Python module is missing.
func requireLibtorrent(t testing.TB) {
	t.Helper()
	if _, err := libtorrentCheck(); err != nil {
		missing(t, err.Error())
	}
}

// requireProgram returns the path of a program, or skips t when it is not
// installed.
func requireProgram(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, fmt.Sprintf("%s not found (Debian package %s)", name, pkg))
	}
	return path
}

// missing skips t because a client is not installed, except under CI
// (CI set), which installs every client: there a missing one fails the test
// instead of passing silently.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("interop: %s; CI must install it (scripts/debian-packages.txt)", why)
	}
	t.Skipf("interop: %s", why)
}

// runCommand runs a short command to completion, bounded to a minute, and
// returns its combined output.
func runCommand(t testing.TB, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// proc is a client or tracker process of a test, in its own process group,
// killed and reaped by the test's cleanup at the latest.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	tail  *tail
	done  chan struct{} // closed once the process is reaped
	err   error         // Wait's error, set before done is closed
}

// startProc starts cmd. Every line it prints, on stdout or stderr, goes to
// onLine when that is non-nil, then to the log tail unless onLine consumed
// it (returned true).
func startProc(t testing.TB, name string, cmd *exec.Cmd, onLine func(line string) bool) (*proc, error) {
	p := &proc{name: name, cmd: cmd, tail: newTail(80), done: make(chan struct{})}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 3 * time.Second
	fn := func(line string) {
		if onLine == nil || !onLine(line) {
			p.tail.add(line)
		}
	}
	cmd.Stdout = &lineWriter{fn: fn}
	cmd.Stderr = &lineWriter{fn: fn}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended, for error messages.
func (p *proc) exitError() string {
	if p.err == nil {
		return "exited with status 0"
	}
	return p.err.Error()
}

// stop asks the process to end with sig (or, when sig is nil, by closing
// its standard input), waits up to grace, then kills its process group.
// It reports whether the process ended by itself.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) bool {
	if p.exited() {
		return true
	}
	if sig == 0 {
		p.stdin.Close()
	} else {
		syscall.Kill(p.cmd.Process.Pid, sig)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
		p.kill()
		return false
	}
}

// kill kills the process group and waits until the process is reaped.
func (p *proc) kill() {
	if !p.exited() {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// logTail returns the last lines the process printed, indented, headed by
// its name.
func (p *proc) logTail() string {
	lines := p.tail.lines()
	if len(lines) == 0 {
		return fmt.Sprintf("--- %s printed nothing", p.name)
	}
	return fmt.Sprintf("--- last %d lines of %s:\n\t%s", len(lines), p.name, strings.Join(lines, "\n\t"))
}

// tail keeps the last lines of a log, a run of equal lines as one.
type tail struct {
	mu      sync.Mutex
	max     int
	buf     []string
	repeats int // how many times the last line came again
}

func newTail(max int) *tail { return &tail{max: max} }

func (t *tail) add(line string) {
	const maxLine = 400
	if len(line) > maxLine {
		line = line[:maxLine] + "..."
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.buf); n > 0 && t.buf[n-1] == line {
		t.repeats++
		return
	}
	if t.repeats > 0 {
		t.buf[len(t.buf)-1] += fmt.Sprintf(" (%d more times)", t.repeats)
		t.repeats = 0
	}
	if len(t.buf) == t.max {
		t.buf = append(t.buf[:0], t.buf[1:]...)
	}
	t.buf = append(t.buf, line)
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := append([]string(nil), t.buf...)
	if t.repeats > 0 {
		lines[len(lines)-1] += fmt.Sprintf(" (%d more times)", t.repeats)
	}
	return lines
}

// lineWriter calls fn with every line written to it. A carriage return ends
// a line too, as in the progress lines of command-line clients.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(string)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexAny(w.buf, "\r\n")
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(w.buf[:i])); line != "" {
			w.fn(line)
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a line without end: pass it on in parts
		w.fn(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

// waitFile polls until the file at path holds exactly want, or ctx ends, or
// done is closed.
func waitFile(ctx context.Context, path string, want []byte, done <-chan struct{}) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() == int64(len(want)) {
			if got, err := os.ReadFile(path); err == nil && bytes.Equal(got, want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return errExited
		case <-tick.C:
		}
	}
}

var errExited = errors.New("process exited")

// compareFile checks that the file at path holds want.
func compareFile(path string, want []byte) error {
	got, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading the downloaded file: %w", err)
	}
	if len(got) != len(want) {
		return fmt.Errorf("downloaded file %s has %d bytes; want %d", filepath.Base(path), len(got), len(want))
	}
	if i := firstDiff(got, want); i >= 0 {
		return fmt.Errorf("downloaded file %s differs from the original at byte %d", filepath.Base(path), i)
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// freeTCPPort returns a TCP port of host that is free at the time of the
// call.
func freeTCPPort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freeUDPPort returns a UDP port of host that is free at the time of the
// call.
func freeUDPPort(host string) (int, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}
