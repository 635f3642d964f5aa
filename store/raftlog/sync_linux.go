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

// preallocate makes f size bytes long with its blocks reserved, using
// fallocate where the file system has it and zeros where it does not.
func preallocate(f *os.File, from, size int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, from, size-from)
	if err == nil {
		return nil
	}
	if err != syscall.EOPNOTSUPP && err != syscall.ENOSYS {
		return err
	}
	return writeZeros(f, from, size)
}
