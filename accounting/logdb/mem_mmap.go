//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package logdb

import "syscall"

// allocBytes returns n zeroed bytes outside the Go heap: the tables are
// large and pointer-free, so the garbage collector need neither scan them
// nor count them when it sizes the heap.
func allocBytes(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

// freeBytes returns memory from allocBytes to the system.
func freeBytes(b []byte) { syscall.Munmap(b) }
