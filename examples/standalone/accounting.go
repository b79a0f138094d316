package main

// The private tracker with ratio accounting (-db): the embedded database,
// the Ledger over it, the import of -passkeys and -torrents into it, the
// admin API on a listener of its own, their metrics, and the memory limit
// that counts the database's tables, which live outside the Go heap.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/annuaire/tracker"
	"github.com/annuaire/tracker/accounting"
	"github.com/annuaire/tracker/accounting/logdb"
)

// defaultAdminAddr is where the admin API listens when -db is given and
// -admin is not.
const defaultAdminAddr = "127.0.0.1:6970"

// minTokenLen is the shortest admin token accepted.
const minTokenLen = 16

func defineAccountingFlags(f *flags, c *config) {
	fs := f.fs
	fs.StringVar(&c.dbDir, "db", "", "private tracker with ratio accounting, kept in the embedded database in\n"+
		"`DIR` (created if need be): announces need the passkey of a user and a\n"+
		"registered torrent, registered through the admin API (-admin); every\n"+
		"member's uploaded and downloaded bytes, snatches and seed time are kept,\n"+
		"factors applied. -passkeys and -torrents, if given, are imported: see\n"+
		"below")
	fs.StringVar(&c.spoolFile, "spool", "", "with -db, the spool `FILE`, where announces wait when the database\n"+
		"cannot take them (default DIR/spool)")
	fs.StringVar(&c.adminAddr, "admin", defaultAdminAddr, "with -db, serve the admin API (users, torrents, ratios; JSON behind a\n"+
		"bearer token) on `ADDR`, loopback only unless -admin-allow-remote; empty\n"+
		"disables it")
	fs.StringVar(&c.adminTokenFile, "admin-token-file", "", "the bearer token of the admin API, at least 16 characters, in `FILE`\n"+
		"(surrounding blanks ignored); required with -admin; re-read on SIGHUP")
	fs.BoolVar(&c.adminRemote, "admin-allow-remote", false, "let -admin listen on an address other than loopback (put TLS in front\n"+
		"of it: the token travels in the clear)")
	fs.StringVar(&f.memoryLimit, "memory-limit", "", "soft limit on the memory of the process, `SIZE` in bytes or with a\n"+
		"suffix (900MiB, 1GiB): the Go heap is held to it less the tables of -db,\n"+
		"which live outside the heap, so that the garbage collector works harder\n"+
		"rather than let the process grow past it; it wins over GOMEMLIMIT, which\n"+
		"counts the heap alone")
}

// checkAccounting validates the flags of accounting.
func (f *flags) checkAccounting(c *config) error {
	if f.memoryLimit != "" {
		n, err := parseSize(f.memoryLimit)
		if err != nil {
			return usagef("%s %q: %v", f.src("memory-limit"), f.memoryLimit, err)
		}
		c.memoryLimit = n
	}
	if c.dbDir == "" {
		for _, name := range []string{"spool", "admin", "admin-token-file", "admin-allow-remote"} {
			if f.given[name] {
				return usagef("%s needs -db", f.src(name))
			}
		}
		c.adminAddr = ""
		return nil
	}
	if c.spoolFile == "" {
		c.spoolFile = filepath.Join(c.dbDir, "spool")
	}
	switch {
	case c.adminAddr == "" && c.adminTokenFile != "":
		return usagef("%s needs the admin API, which %s turns off", f.src("admin-token-file"), f.src("admin"))
	case c.adminAddr == "":
		return nil
	case c.adminTokenFile == "":
		return usagef("-db serves the admin API on %s: give its bearer token with -admin-token-file, or turn it off with -admin \"\"", c.adminAddr)
	}
	host, _, err := net.SplitHostPort(c.adminAddr)
	if err != nil {
		return usagef("%s %q: want host:port", f.src("admin"), c.adminAddr)
	}
	if !c.adminRemote && !isLoopback(host) {
		return usagef("%s %s is not a loopback address: the admin API changes users and reads ratios; give -admin-allow-remote to serve it there", f.src("admin"), c.adminAddr)
	}
	return nil
}

// isLoopback reports whether host names a loopback address only. An empty
// host (every address) is not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// parseSize reads a size in bytes, with an optional suffix B, KiB, MiB,
// GiB or TiB (as GOMEMLIMIT takes it).
func parseSize(s string) (int64, error) {
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, errors.New("want a number of bytes, optionally with a suffix B, KiB, MiB, GiB or TiB")
	}
	return n * mult, nil
}

// accountant is the accounting of a server started with -db.
type accountant struct {
	cfg    *config
	log    *slog.Logger
	db     *logdb.DB
	ledger *accounting.Ledger

	admin   *http.Server // nil with -admin ""
	adminLn net.Listener
	handler atomic.Pointer[http.Handler] // the admin API with the token in force

	// Entries in the files last imported, for the log.
	users, torrents atomic.Int64

	stopMemory chan struct{}
	memory     sync.WaitGroup
}

// openAccounting opens the database and the Ledger over it, with the rules
// of a tracker configured as tc.
func openAccounting(cfg *config, log *slog.Logger, tc tracker.Config) (*accountant, error) {
	start := time.Now()
	db, err := logdb.Open(cfg.dbDir, accounting.RulesFor(tc), logdb.Options{})
	if err != nil {
		return nil, fmt.Errorf("-db: %w", err)
	}
	ledger, err := accounting.Open(context.Background(), db, accounting.Config{Spool: cfg.spoolFile, Logger: log})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("-db: %w", err)
	}
	st := ledger.Stats()
	log.Info("accounting opened", "db", cfg.dbDir, "spool", cfg.spoolFile, "users", st.Users, "torrents", st.Torrents,
		"took", time.Since(start).Round(time.Millisecond).String())
	return &accountant{cfg: cfg, log: log, db: db, ledger: ledger, stopMemory: make(chan struct{})}, nil
}

// lists returns the -passkeys and -torrents files as lists that import
// into the Ledger.
func (a *accountant) lists() []*list {
	var ls []*list
	if a.cfg.passkeysFile != "" {
		ls = append(ls, &list{"-passkeys", "passkeys", a.cfg.passkeysFile, a.importUsers, func() int { return int(a.users.Load()) }})
	}
	if a.cfg.torrentsFile != "" {
		ls = append(ls, &list{"-torrents", "torrents", a.cfg.torrentsFile, a.importTorrents, func() int { return int(a.torrents.Load()) }})
	}
	return ls
}

// importBatch is how many users or torrents one call of AddUsers or
// AddTorrents takes: one sync of the database each.
const importBatch = 10_000

// importUsers adds the users of a -passkeys file (a passkey and a user id
// a line) that the Ledger does not hold.
func (a *accountant) importUsers(r io.Reader) error {
	var users []accounting.User
	err := readLines(r, "passkeys", func(fields []string) error {
		if len(fields) != 2 {
			return errors.New("with -db, want a passkey and a user id")
		}
		id, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil || id == 0 {
			return fmt.Errorf("user id %q: want a positive integer", fields[1])
		}
		// A copy, so that the Ledger does not keep the whole line.
		u := accounting.User{ID: id, Passkey: strings.Clone(fields[0]), CanLeech: true, UpFactor: 100, DownFactor: 100}
		if len(u.Passkey) != accounting.PasskeyLen {
			return fmt.Errorf("passkey of %d characters: want %d letters and digits", len(u.Passkey), accounting.PasskeyLen)
		}
		users = append(users, u)
		return nil
	})
	if err != nil {
		return err
	}
	added, err := addInBatches(users, a.ledger.AddUsers)
	if err != nil {
		return err
	}
	a.users.Store(int64(len(users)))
	a.log.Info("imported users", "file", a.cfg.passkeysFile, "listed", len(users), "added", added)
	return nil
}

// importTorrents registers the info hashes of a -torrents file that the
// Ledger does not hold.
func (a *accountant) importTorrents(r io.Reader) error {
	var torrents []accounting.Torrent
	err := readLines(r, "torrents", func(fields []string) error {
		if len(fields) != 1 {
			return errors.New("want one info hash")
		}
		h, err := tracker.ParseInfoHash(fields[0])
		if err != nil {
			return err
		}
		torrents = append(torrents, accounting.Torrent{InfoHash: h, UpFactor: 100, DownFactor: 100})
		return nil
	})
	if err != nil {
		return err
	}
	added, err := addInBatches(torrents, a.ledger.AddTorrents)
	if err != nil {
		return err
	}
	a.torrents.Store(int64(len(torrents)))
	a.log.Info("imported torrents", "file", a.cfg.torrentsFile, "listed", len(torrents), "added", added)
	return nil
}

// addInBatches adds rows with add, importBatch at a time, and returns
// how many it added.
func addInBatches[T any](rows []T, add func(context.Context, []T) (int, error)) (int, error) {
	added := 0
	for chunk := range slices.Chunk(rows, importBatch) {
		n, err := add(context.Background(), chunk)
		added += n
		if err != nil {
			return added, err
		}
	}
	return added, nil
}

// readLines calls parse with the blank-separated fields of each line of r
// that holds more than blanks and a comment (from #). Errors name their
// line as a *tracker.LoadError.
func readLines(r io.Reader, what string, parse func(fields []string) error) error {
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if err := parse(fields); err != nil {
			return &tracker.LoadError{List: what, Line: n, Err: err}
		}
	}
	return sc.Err()
}

// readToken reads the admin token from its file.
func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("-admin-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < minTokenLen || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("-admin-token-file: %s: want a token of at least %d characters without blanks", file, minTokenLen)
	}
	return tok, nil
}

// listenAdmin reads the token and opens the admin API's listener, for
// tracker t.
func (a *accountant) listenAdmin(t *tracker.Tracker) error {
	if a.cfg.adminAddr == "" {
		return nil
	}
	tok, err := readToken(a.cfg.adminTokenFile)
	if err != nil {
		return err
	}
	h := accounting.NewAdminHandler(a.ledger, t, tok)
	a.handler.Store(&h)
	a.admin = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*a.handler.Load()).ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	if a.adminLn, err = net.Listen("tcp", a.cfg.adminAddr); err != nil {
		return fmt.Errorf("-admin: %w", err)
	}
	return nil
}

// reloadToken re-reads the admin token for SIGHUP; on failure the token
// in force stays.
func (a *accountant) reloadToken(t *tracker.Tracker) {
	if a.admin == nil {
		return
	}
	tok, err := readToken(a.cfg.adminTokenFile)
	if err != nil {
		a.log.Error("admin token reload failed; the previous token stays in force", "err", err)
		return
	}
	h := accounting.NewAdminHandler(a.ledger, t, tok)
	a.handler.Store(&h)
	a.log.Info("reloaded admin token", "file", a.cfg.adminTokenFile)
}

// memoryEvery is how often the heap's limit follows the tables' size.
const memoryEvery = 5 * time.Second

// minHeapLimit is the least the Go heap is given under -memory-limit.
const minHeapLimit = 64 << 20

// limitMemory holds the Go heap to limit less what tables() reports
// (nil: nothing outside the heap), until stop is closed; wg joins it.
func limitMemory(log *slog.Logger, limit int64, tables func() int64, stop <-chan struct{}, wg *sync.WaitGroup) {
	set := func() int64 {
		heap := limit
		if tables != nil {
			heap -= tables()
		}
		heap = max(heap, minHeapLimit)
		debug.SetMemoryLimit(heap)
		return heap
	}
	log.Info("memory limit", "process", limit, "go_heap", set())
	if tables == nil {
		return
	}
	wg.Go(func() {
		t := time.NewTicker(memoryEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				set()
			case <-stop:
				return
			}
		}
	})
}

// start starts what runs beside the server: the memory limit.
func (a *accountant) start() {
	if a.cfg.memoryLimit > 0 {
		limitMemory(a.log, a.cfg.memoryLimit, func() int64 { return a.db.Stats().MemoryBytes }, a.stopMemory, &a.memory)
	}
}

// shutdownAdmin stops the admin API, within ctx.
func (a *accountant) shutdownAdmin(ctx context.Context) {
	if a.admin != nil && a.admin.Shutdown(ctx) != nil {
		a.admin.Close()
	}
}

// close applies every record to the database and closes it, within ctx
// (what remains then goes to the spool). The tracker's front-ends are
// closed first.
func (a *accountant) close(ctx context.Context) error {
	close(a.stopMemory)
	a.memory.Wait()
	start := time.Now()
	err := a.ledger.Close(ctx)
	st := a.ledger.Stats()
	if err != nil {
		a.log.Error("closing the accounting", "err", err, "backlog", st.Backlog)
		return fmt.Errorf("closing the accounting: %w", err)
	}
	a.log.Info("accounting closed", "applied", st.Applied, "spooled", st.Spooled, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// closeNow closes what a start that failed half way opened.
func (a *accountant) closeNow() {
	if a.adminLn != nil {
		a.adminLn.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a.ledger.Close(ctx)
}
