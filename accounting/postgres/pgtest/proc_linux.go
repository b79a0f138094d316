package pgtest

import "syscall"

// setDeathSignal makes the kernel stop the server (an immediate shutdown)
// if the test process dies without stopping it.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGQUIT }
