// Package pgtest runs a throwaway PostgreSQL server for tests and
// benchmarks: initdb into a temporary directory, the server on a free
// loopback port with its unix socket in that directory, and no system
// service involved. When the process runs as root, which initdb refuses,
// the server runs as the unprivileged user the Debian package creates
// (postgres), or nobody.
//
// The binaries are found under /usr/lib/postgresql/<version>/bin (the
// newest version), in the directory $ANNUAIRE_POSTGRES_BIN names, or on
// PATH. [ErrNoPostgres] says they are missing: tests skip on it, except
// under CI, which installs them.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoPostgres is returned by [Start] when the PostgreSQL binaries
// (initdb, postgres) are not installed.
var ErrNoPostgres = errors.New("pgtest: PostgreSQL binaries not found (Debian package postgresql, or set ANNUAIRE_POSTGRES_BIN)")

// Config configures a [Server]. The zero value works.
type Config struct {
	// Settings are postgresql.conf settings, passed to the server as
	// -c name=value, over those Start sets (listen_addresses, port,
	// unix_socket_directories).
	Settings map[string]string
	// Log receives the server's log; if nil, it goes to a file in the
	// server's directory, which Close removes.
	Log *os.File
}

// User is the superuser of a Server's cluster; it authenticates by trust,
// and only over loopback.
const User = "annuaire"

// A Server is a PostgreSQL server of a test. Its methods are safe for
// concurrent use.
type Server struct {
	bin  string
	dir  string // owned by the server's user: data/, the socket, the log
	port int
	cfg  Config
	cred *credential

	mu   sync.Mutex
	proc *process // nil while stopped
}

// Start creates a cluster in a new temporary directory and starts a
// server on it. Close stops the server and removes the directory.
func Start(cfg Config) (*Server, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	cred, err := serverUser()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "annuaire-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{bin: bin, dir: dir, cfg: cfg, cred: cred}
	if err := cred.own(dir); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", User, "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	cred.apply(initdb)
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	// A port can be taken between the moment it is found free and the
	// moment the server binds it: try a few.
	for try := 0; ; try++ {
		if s.port, err = freePort(); err == nil {
			if err = s.Resume(); err == nil {
				return s, nil
			}
		}
		if try == 4 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
}

// findBin returns the directory of initdb and postgres.
func findBin() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("ANNUAIRE_POSTGRES_BIN"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w: no initdb and postgres in ANNUAIRE_POSTGRES_BIN=%s", ErrNoPostgres, dir)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	if path, err := exec.LookPath("initdb"); err == nil && has(filepath.Dir(path)) {
		return filepath.Dir(path), nil
	}
	return "", ErrNoPostgres
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir returns the server's directory: the cluster is in its data
// subdirectory.
func (s *Server) Dir() string { return s.dir }

// DSN returns the connection string of database db (postgres, the one
// initdb makes, or one made with CreateDatabase) for the superuser.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", User, s.port, db)
}

// Running reports whether the server is running.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil
}

// Resume starts the server again after Stop, on the same port and data,
// and returns once it accepts connections.
func (s *Server) Resume() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return nil
	}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(s.port),
		"unix_socket_directories": s.dir,
		"max_connections":         "100",
	}
	for k, v := range s.cfg.Settings {
		settings[k] = v
	}
	args := []string{"-D", s.dataDir()}
	for _, k := range slices.Sorted(mapKeys(settings)) {
		args = append(args, "-c", k+"="+settings[k])
	}
	log := s.cfg.Log
	if log == nil {
		f, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		defer f.Close()
		log = f
	}
	p, err := startProcess(filepath.Join(s.bin, "postgres"), args, s.dir, log, s.cred)
	if err != nil {
		return err
	}
	if err := s.waitReady(p); err != nil {
		p.kill()
		return err
	}
	s.proc = p
	return nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// waitReady waits until the server's postmaster.pid says it is ready, or
// it exits, or a minute passes.
func (s *Server) waitReady(p *process) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("pgtest: the server exited at start-up; its log: %s", s.logTail())
		}
		if b, err := os.ReadFile(filepath.Join(s.dataDir(), "postmaster.pid")); err == nil {
			// Line 8 is the server's status, "ready" once it accepts
			// connections.
			lines := strings.Split(string(b), "\n")
			if len(lines) > 7 && strings.TrimSpace(lines[7]) == "ready" {
				c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
				if err == nil {
					c.Close()
					return nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("pgtest: the server was not ready within a minute; its log: %s", s.logTail())
}

func (s *Server) logTail() string {
	if s.cfg.Log != nil {
		return "(in the caller's file)"
	}
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Stop shuts the server down as pg_ctl stop -m fast does (SIGINT:
// transactions in progress are rolled back, clients disconnected) and
// waits for it to exit. Its data stays, for Resume.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	err := s.proc.stop(time.Minute)
	s.proc = nil
	return err
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Stop()
	return errors.Join(err, os.RemoveAll(s.dir))
}

// CreateDatabase creates database name and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := s.Exec(ctx, "postgres", `CREATE DATABASE "`+strings.ReplaceAll(name, `"`, `""`)+`"`); err != nil {
		return "", err
	}
	return s.DSN(name), nil
}
