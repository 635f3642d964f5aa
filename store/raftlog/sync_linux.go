package raftlog

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data (and the size, if it changed) but not its
// timestamps: the journal is preallocated, so that is one device flush.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
