package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/db"
)

// ErrNotSingleNode is returned by Boot on a node of a cluster of more than
// one node (rqlite's text).
var ErrNotSingleNode = errors.New("not single-node")

// ErrBootInProgress is returned by Boot while another boot runs.
var ErrBootInProgress = errors.New("a boot is already in progress")

// bootMu lets one boot run at a time in the process.
var bootMu sync.Mutex

// spoolBuf is the copy buffer for bodies spooled to disk: large enough for
// few system calls, small enough that memory stays flat.
const spoolBuf = 1 << 20

// Boot replaces the database of a single-node cluster with the SQLite file
// read from r, without putting the file in the log (rqlite's /boot). The
// file is copied to the data directory and checked (db.CheckFile) before
// anything changes; a file that fails is refused with an error wrapping
// db.ErrNotSQLite and the database is as it was. It returns the bytes read.
//
// The checked file becomes a Raft snapshot at a new index, one past the
// end of the log (hashicorp/raft's user restore): written and synced to
// the snapshot store, then restored into the FSM, then a no-op entry is
// committed after it. A restart rebuilds the database from that snapshot
// and the entries after it, so the booted data survives restarts. A crash
// before the snapshot is complete leaves the old state (the copy is in the
// scratch directory, which Open clears); after it, the node restarts with
// the booted data. Writes in flight when the restore starts fail.
//
// Memory stays flat whatever the file's size: the body is copied through a
// fixed buffer, checked by SQLite with its page cache, and streamed into
// the snapshot. The disk needs room for about two more copies of the file
// (checked before the restore starts: a restore that fails half-way stops
// the node).
func (s *Store) Boot(ctx context.Context, r io.Reader) (int64, error) {
	ra, f, err := s.bootTarget()
	if err != nil {
		return 0, err
	}
	if !bootMu.TryLock() {
		return 0, ErrBootInProgress
	}
	defer bootMu.Unlock()

	start := time.Now()
	path, n, err := spool(ctx, f.tmp, "boot-*.db", r)
	if err != nil {
		return n, err
	}
	defer os.Remove(path)
	s.logger.Info("boot: database file received", "bytes", n, "took", time.Since(start).Round(time.Millisecond))
	if err := db.CheckFile(path); err != nil {
		return n, fmt.Errorf("boot: %w", err)
	}
	if err := checkRoom(f.tmp, 2*n+64<<20); err != nil {
		return n, err
	}
	// The file may have taken long to arrive: check again.
	if ra, f, err = s.bootTarget(); err != nil {
		return n, err
	}
	src, err := newBootStream(ra, f, path)
	if err != nil {
		return n, err
	}
	defer src.Close()
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: src.size}
	// No timeout: Raft's timer would also cover the no-op after the
	// restore, which comes only once the file is copied twice.
	if err := ra.Restore(meta, src, 0); err != nil {
		return n, fmt.Errorf("boot: %w", err)
	}
	if snaps, err := s.snaps.List(); err == nil && len(snaps) > 0 && snaps[0].Index != src.index {
		// The FSM holds the index the stream's header named; Raft's
		// snapshot index should be the same.
		s.logger.Error("boot: the snapshot's index differs from the FSM's", "snapshot", snaps[0].Index, "fsm", src.index)
	}
	s.logger.Info("boot: database replaced", "bytes", n, "index", src.index, "took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

// bootTarget checks that this node may boot: the leader of a cluster of
// one node.
func (s *Store) bootTarget() (*raft.Raft, *fsm, error) {
	s.mu.RLock()
	open, ra, f := s.open, s.raft, s.fsm
	s.mu.RUnlock()
	if !open {
		return nil, nil, ErrNotOpen
	}
	if ra.State() != raft.Leader {
		return nil, nil, ErrNotLeader
	}
	m, err := s.members()
	if err != nil {
		return nil, nil, err
	}
	if len(m.servers) != 1 {
		return nil, nil, ErrNotSingleNode
	}
	return ra, f, nil
}

// bootStream is the snapshot stream of a boot: the FSM's snapshot header,
// then the database file. The header names the index Raft gives the
// snapshot, which is known only once Raft reads the stream: it is one past
// Raft's last index, read on the first Read, when Raft's leader loop (the
// only appender on a leader) is busy copying this stream.
type bootStream struct {
	ra        *raft.Raft
	clusterID string
	file      *os.File
	size      int64 // header plus file
	index     uint64
	hdr       io.Reader
	once      sync.Once
}

func newBootStream(ra *raft.Raft, f *fsm, path string) (*bootStream, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, err
	}
	// Unlinked now: its space goes back as soon as it is copied.
	os.Remove(path)
	id := f.getClusterID()
	return &bootStream{ra: ra, clusterID: id, file: fd, size: 10 + int64(len(id)) + st.Size()}, nil
}

func (b *bootStream) Read(p []byte) (int, error) {
	b.once.Do(func() {
		b.index = b.ra.LastIndex() + 1
		h := binary.LittleEndian.AppendUint64(nil, b.index)
		h = binary.LittleEndian.AppendUint16(h, uint16(len(b.clusterID)))
		b.hdr = bytes.NewReader(append(h, b.clusterID...))
	})
	if n, err := b.hdr.Read(p); n > 0 || err != io.EOF {
		return n, err
	}
	n, err := b.file.Read(p)
	if err == io.EOF {
		b.file.Close()
	}
	return n, err
}

func (b *bootStream) Close() error { return b.file.Close() }

// checkRoom fails unless the file system of dir has need bytes free.
func checkRoom(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // cannot tell: let the copy find out
	}
	if free := int64(st.Bavail) * int64(st.Bsize); free < need {
		return fmt.Errorf("boot: %d bytes free in %s, %d needed to install the database", free, dir, need)
	}
	return nil
}

// spool copies r into a new file in dir through a fixed buffer and returns
// its path and size. A read error from r is returned as it is (wrapped).
func spool(ctx context.Context, dir, pattern string, r io.Reader) (string, int64, error) {
	fd, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", 0, err
	}
	n, err := io.CopyBuffer(fd, ctxReader{ctx, r}, make([]byte, spoolBuf))
	if cerr := fd.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(fd.Name())
		return "", n, fmt.Errorf("copy database file: %w", err)
	}
	return fd.Name(), n, nil
}

// ctxReader stops reading once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// LoadFrom replaces the database with the SQLite file read from r, through
// the log, so every node loads it (as Load). The file is copied to the data
// directory and checked with db.CheckFile before anything is proposed, so a
// damaged or truncated file never reaches the log. before, if not nil, is
// called with the file's size once it is checked, before the entry is
// built; an error from it ends the load (the caller reserves memory there).
//
// Memory: the log entry holds the whole file (one copy in the Go heap on
// this node, built from a read-only mapping of the checked file), and
// hashicorp/raft, the log store and each follower hold it again while it
// is replicated and applied. Callers bound the size (see http/load.go).
func (s *Store) LoadFrom(ctx context.Context, r io.Reader, before func(size int64) error) (uint64, error) {
	tmp, err := s.leaderScratch()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	path, n, err := spool(ctx, tmp, "load-*.db", r)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	received := time.Since(start)
	if err := db.CheckFile(path); err != nil {
		return 0, err
	}
	if before != nil {
		if err := before(n); err != nil {
			return 0, err
		}
	}
	data, unmap, err := mapFile(path, n)
	if err != nil {
		return 0, err
	}
	defer unmap()
	checked := time.Since(start)
	_, idx, err := s.propose(ctx, &command.Command{Type: command.TypeLoad, Data: data})
	if err != nil {
		return 0, err
	}
	s.logger.Info("database loaded through the log", "bytes", n, "index", idx, "received", received.Round(time.Millisecond),
		"checked", checked.Round(time.Millisecond), "took", time.Since(start).Round(time.Millisecond))
	return idx, nil
}

// leaderScratch returns the scratch directory of a leader (ErrNotLeader on
// a follower, which forwards the load before reading it).
func (s *Store) leaderScratch() (string, error) {
	s.mu.RLock()
	open, ra, f := s.open, s.raft, s.fsm
	s.mu.RUnlock()
	if !open {
		return "", ErrNotOpen
	}
	if ra.State() != raft.Leader {
		return "", ErrNotLeader
	}
	return f.tmp, nil
}

// mapFile maps the file at path (n bytes) read-only.
func mapFile(path string, n int64) ([]byte, func(), error) {
	if n == 0 {
		return nil, func() {}, nil
	}
	fd, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer fd.Close()
	b, err := syscall.Mmap(int(fd.Fd()), 0, int(n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("map %s: %w", path, err)
	}
	return b, func() { syscall.Munmap(b) }, nil //nolint:errcheck // cannot fail for a map made here
}
