//go:build !unix

package pgtest

import (
	"errors"
	"os"
	"os/exec"
	"time"
)

type credential struct{}

func serverUser() (*credential, error) { return nil, nil }

func (c *credential) own(string) error { return nil }

func (c *credential) apply(*exec.Cmd) {}

type process struct{}

var errUnsupported = errors.New("pgtest: running a server is supported on Unix systems only")

func startProcess(string, []string, string, *os.File, *credential) (*process, error) {
	return nil, errUnsupported
}

func (p *process) exited() bool { return true }

func (p *process) stop(time.Duration) error { return errUnsupported }

func (p *process) kill() {}
