//go:build unix

package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"time"
)

// credential is the user the server runs as when the process is root;
// nil runs it as the process's own user.
type credential struct {
	uid, gid uint32
}

// serverUser returns the user to run the server as: none unless the
// process is root, then postgres (which Debian's package creates) or
// nobody.
func serverUser() (*credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil && uid != 0 {
			return &credential{uid: uint32(uid), gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("pgtest: running as root, and neither user postgres nor nobody exists to run the server as")
}

func (c *credential) own(path string) error {
	if c == nil {
		return nil
	}
	return os.Chown(path, int(c.uid), int(c.gid))
}

func (c *credential) apply(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if c != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.uid, Gid: c.gid}
	}
}

// process is a running server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProcess starts the server in its own process group. On Linux it is
// killed if the test process dies first.
func startProcess(path string, args []string, dir string, log *os.File, cred *credential) (*process, error) {
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
	cred.apply(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks for a fast shutdown (SIGINT, as pg_ctl stop -m fast) and
// waits for the server's exit; past timeout, it kills the process group.
func (p *process) stop(timeout time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("pgtest: the server did not stop within %v; killed", timeout)
	}
}

// kill ends the server and its children at once.
func (p *process) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}
