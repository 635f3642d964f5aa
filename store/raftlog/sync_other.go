//go:build !linux

package raftlog

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

func preallocate(f *os.File, from, size int64) error { return writeZeros(f, from, size) }

func dropMapped(uintptr, int64) error { return nil }

// initialMmapSize is bbolt's default elsewhere (on Windows a map is as
// large as the file, so a large first map would make raft.db that large).
const initialMmapSize = 0

// offHeap returns a buffer of n bytes; elsewhere than on Linux, from the
// heap.
func offHeap(n int) ([]byte, func()) { return make([]byte, n), func() {} }
