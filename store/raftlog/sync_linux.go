package raftlog

import (
	"os"
	"syscall"
)

// initialMmapSize is bbolt's first map of raft.db: 1 GiB of address space
// on 64-bit builds, bbolt's default (grow as needed) on 32-bit ones, where
// address space is scarce.
const initialMmapSize = (1 << 30) * int(^uintptr(0)>>63)

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

// dropMapped tells the kernel this process no longer needs the pages of
// the read-only shared map of size bytes at addr (bbolt's map of raft.db):
// they leave the process's resident set and stay in the page cache, from
// which the next read maps them again. Nothing is lost: the map is of the
// file, read-only, and shared.
func dropMapped(addr uintptr, size int64) error {
	if size <= 0 {
		return nil
	}
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(size), syscall.MADV_DONTNEED)
	if errno != 0 {
		return errno
	}
	return nil
}

// offHeap returns a buffer of n bytes outside the Go heap, and the
// function that unmaps it: memory that goes back to the system the moment
// it is freed instead of waiting for a garbage collection. Should the map
// fail, the buffer comes from the heap.
func offHeap(n int) ([]byte, func()) {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, n), func() {}
	}
	return b, func() { syscall.Munmap(b) } //nolint:errcheck // cannot fail for a map made here
}
