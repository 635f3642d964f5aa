package http

import "syscall"

// mapAnon maps n bytes of private anonymous memory. MAP_NORESERVE: only
// the pages written count against the system's commit.
func mapAnon(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
}

func unmap(b []byte) {
	syscall.Munmap(b) //nolint:errcheck // cannot fail for a map made by mapAnon
}
