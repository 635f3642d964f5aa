package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

func testConfig(dir string) Config {
	c := DefaultConfig(dir)
	c.JournalSize = 64 << 10
	c.FlushBytes = 16 << 10
	c.FlushInterval = time.Hour // tests flush explicitly or by size
	return c
}

func mustOpen(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// crash drops the store as a kill -9 would: no flush, no Close work.
func (s *Store) crash() {
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeFiles()
}

func entry(i uint64, size int) *raft.Log {
	data := bytes.Repeat([]byte{byte(i)}, size)
	return &raft.Log{Index: i, Term: i/10 + 1, Type: raft.LogCommand, Data: data,
		AppendedAt: time.Unix(1700000000, int64(i)).UTC()}
}

func checkLog(t *testing.T, s *Store, want *raft.Log) {
	t.Helper()
	var got raft.Log
	if err := s.GetLog(want.Index, &got); err != nil {
		t.Fatalf("GetLog(%d): %v", want.Index, err)
	}
	if got.Index != want.Index || got.Term != want.Term || got.Type != want.Type ||
		!bytes.Equal(got.Data, want.Data) || !bytes.Equal(got.Extensions, want.Extensions) ||
		!got.AppendedAt.Equal(want.AppendedAt) {
		t.Fatalf("GetLog(%d) = %+v, want %+v", want.Index, got, *want)
	}
}

func checkBounds(t *testing.T, s *Store, first, last uint64) {
	t.Helper()
	f, err1 := s.FirstIndex()
	l, err2 := s.LastIndex()
	if err1 != nil || err2 != nil || f != first || l != last {
		t.Fatalf("bounds = %d..%d (%v, %v), want %d..%d", f, l, err1, err2, first, last)
	}
}

func TestEntryEncoding(t *testing.T) {
	for _, l := range []*raft.Log{
		{Index: 1},
		{Index: 1 << 60, Term: 7, Type: raft.LogConfiguration, Data: []byte("x"), Extensions: []byte("ext")},
		{Index: 3, Term: 1, Type: raft.LogNoop, AppendedAt: time.Unix(5, 6)},
		entry(99, 5000),
	} {
		var got raft.Log
		if err := decodeEntry(appendEntry(nil, l), &got); err != nil {
			t.Fatal(err)
		}
		if got.Index != l.Index || got.Term != l.Term || got.Type != l.Type || !bytes.Equal(got.Data, l.Data) ||
			!bytes.Equal(got.Extensions, l.Extensions) || !got.AppendedAt.Equal(l.AppendedAt) {
			t.Fatalf("round trip %+v -> %+v", l, got)
		}
	}
	enc := appendEntry(nil, entry(5, 10))
	for n := range len(enc) {
		var l raft.Log
		if err := decodeEntry(enc[:n], &l); err == nil {
			t.Fatalf("truncated entry (%d of %d bytes) decoded", n, len(enc))
		}
	}
}

func TestStoreGetReopen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testConfig(dir))
	checkBounds(t, s, 0, 0)
	var l raft.Log
	if err := s.GetLog(1, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog on empty log: %v, want ErrLogNotFound", err)
	}
	var all []*raft.Log
	for i := uint64(1); i <= 300; i += 3 {
		batch := []*raft.Log{entry(i, 100), entry(i+1, 0), entry(i+2, 700)}
		if err := s.StoreLogs(batch); err != nil {
			t.Fatal(err)
		}
		all = append(all, batch...)
	}
	checkBounds(t, s, 1, 300)
	for _, l := range all {
		checkLog(t, s, l)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, testConfig(dir))
	defer s.Close()
	checkBounds(t, s, 1, 300)
	for _, l := range all {
		checkLog(t, s, l)
	}
}

// An acknowledged append survives a crash at any point of the journal's
// life: before any flush, with a frozen journal, after rotations.
func TestCrashReplay(t *testing.T) {
	for _, n := range []int{1, 10, 60, 61, 200, 777} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			s := mustOpen(t, testConfig(dir))
			for i := 1; i <= n; i++ {
				if err := s.StoreLogs([]*raft.Log{entry(uint64(i), 1000)}); err != nil {
					t.Fatal(err)
				}
			}
			s.crash()
			s = mustOpen(t, testConfig(dir))
			defer s.Close()
			checkBounds(t, s, 1, uint64(n))
			for i := 1; i <= n; i++ {
				checkLog(t, s, entry(uint64(i), 1000))
			}
		})
	}
}

// A frame torn by a crash during its write was never acknowledged; the
// replay keeps everything before it and nothing from it.
func TestTornFrame(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testConfig(dir))
	for i := uint64(1); i <= 5; i++ {
		if err := s.StoreLogs([]*raft.Log{entry(i, 500)}); err != nil {
			t.Fatal(err)
		}
	}
	j := s.active
	off := j.off
	s.crash()
	// Half of a sixth frame.
	frame, _ := encodeFrame(j.gen, []*raft.Log{entry(6, 500)})
	f, err := os.OpenFile(j.f.Name(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(frame[:len(frame)/2], off)
	f.Close()
	s = mustOpen(t, testConfig(dir))
	defer s.Close()
	checkBounds(t, s, 1, 5)
	var l raft.Log
	if err := s.GetLog(6, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("torn entry 6: %v", err)
	}
}

// After a tail is deleted and rewritten with entries of the same size, the
// old frames further along the journal must not come back at replay.
func TestStaleFramesIgnored(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testConfig(dir))
	for i := uint64(1); i <= 20; i++ {
		if err := s.StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: []byte("old-entry")}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRange(3, 20); err != nil {
		t.Fatal(err)
	}
	for i := uint64(3); i <= 5; i++ {
		if err := s.StoreLogs([]*raft.Log{{Index: i, Term: 2, Data: []byte("new-entry")}}); err != nil {
			t.Fatal(err)
		}
	}
	s.crash()
	s = mustOpen(t, testConfig(dir))
	defer s.Close()
	checkBounds(t, s, 1, 5)
	for i := uint64(3); i <= 5; i++ {
		checkLog(t, s, &raft.Log{Index: i, Term: 2, Data: []byte("new-entry")})
	}
}

func TestDeleteRange(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testConfig(dir))
	defer s.Close()
	for i := uint64(1); i <= 100; i++ {
		if err := s.StoreLogs([]*raft.Log{entry(i, 300)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteRange(1, 40); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 41, 100)
	if err := s.DeleteRange(90, 100); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 41, 89)
	var l raft.Log
	for _, i := range []uint64{1, 40, 90, 100} {
		if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Fatalf("deleted %d: %v", i, err)
		}
	}
	checkLog(t, s, entry(41, 300))
	checkLog(t, s, entry(89, 300))
	if err := s.DeleteRange(41, 89); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 0, 0)
	// A gap, as after a snapshot is installed.
	if err := s.StoreLogs([]*raft.Log{entry(500, 10)}); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, 500, 500)
}

func TestLargeEntryBypassesJournal(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testConfig(dir))
	small, big := entry(1, 100), entry(2, 200<<10)
	if err := s.StoreLogs([]*raft.Log{small}); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs([]*raft.Log{big}); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs([]*raft.Log{entry(3, 100)}); err != nil {
		t.Fatal(err)
	}
	// Encoded outside the heap and unmapped after the commit: what bbolt
	// stored must not depend on that memory.
	huge := entry(4, offHeapMin+1)
	if err := s.StoreLogs([]*raft.Log{huge, entry(5, 100)}); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, huge)
	s.crash()
	s = mustOpen(t, testConfig(dir))
	defer s.Close()
	checkBounds(t, s, 1, 5)
	checkLog(t, s, small)
	checkLog(t, s, big)
	checkLog(t, s, entry(3, 100))
	checkLog(t, s, huge)
	checkLog(t, s, entry(5, 100))
}

func TestFrameEncoding(t *testing.T) {
	logs := []*raft.Log{entry(1, 0), entry(2, 200), entry(300, 5000),
		{Index: 1 << 40, Term: 1 << 33, Type: raft.LogConfiguration, Data: []byte("c"), Extensions: []byte("ext"), AppendedAt: time.Unix(-3, 0)}}
	frame, entries := encodeFrame(7, logs)
	if len(frame) != frameSize(logs) {
		t.Fatalf("frame of %d bytes, frameSize %d", len(frame), frameSize(logs))
	}
	gen, size, ok := frameAt(frame)
	if !ok || gen != 7 || size != len(frame) {
		t.Fatalf("frameAt = %d, %d, %v; want 7, %d, true", gen, size, ok, len(frame))
	}
	got, err := frameEntries(frame)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range logs {
		want := encodeEntry(l)
		if len(want) != entryLen(l) || !bytes.Equal(got[i], want) || !bytes.Equal(entries[i], want) {
			t.Fatalf("entry %d: frame holds %x, returned %x, want %x (entryLen %d)", i, got[i], entries[i], want, entryLen(l))
		}
	}
	setFrameGen(frame, 9)
	if gen, _, ok := frameAt(frame); !ok || gen != 9 {
		t.Fatalf("after setFrameGen(9): frameAt = %d, %v", gen, ok)
	}
}

// The newest entry is served from memory, sharing the appender's data:
// raft's leader reads it every CommitTimeout for every follower.
func TestNewestEntryShared(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testConfig(dir))
	defer s.Close()
	older, newest := entry(1, 100<<10), entry(2, 100<<10) // over the journal: stored straight in bbolt
	if err := s.StoreLogs([]*raft.Log{older, newest}); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(2, &l); err != nil {
		t.Fatal(err)
	}
	if &l.Data[0] != &newest.Data[0] || cap(l.Data) != len(l.Data) {
		t.Fatal("the newest entry was not served from the appended data")
	}
	checkLog(t, s, newest)
	if !raceEnabled {
		if allocs := testing.AllocsPerRun(20, func() { s.GetLog(2, &l) }); allocs != 0 {
			t.Fatalf("reading the newest entry allocated %v times", allocs)
		}
	}
	if err := s.GetLog(1, &l); err != nil {
		t.Fatal(err)
	}
	if &l.Data[0] == &older.Data[0] {
		t.Fatal("an older entry was served from memory")
	}
	checkLog(t, s, older)

	// A small newest entry, in the journal, is served from memory too.
	small := entry(3, 10)
	if err := s.StoreLogs([]*raft.Log{small}); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(3, &l); err != nil || &l.Data[0] != &small.Data[0] {
		t.Fatalf("GetLog(3): %v, shared %v", err, err == nil && &l.Data[0] == &small.Data[0])
	}
	// A deleted tail is gone, and the new newest entry is read from the log.
	if err := s.DeleteRange(2, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(3, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(3) after deleting it: %v", err)
	}
	if err := s.GetLog(2, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("GetLog(2) after deleting it: %v", err)
	}
	checkLog(t, s, older)
	replaced := entry(2, 50)
	replaced.Term = 99
	if err := s.StoreLogs([]*raft.Log{replaced}); err != nil {
		t.Fatal(err)
	}
	checkLog(t, s, replaced)
}

func TestStable(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testConfig(dir))
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 0 {
		t.Fatalf("missing uint64 = %d, %v", v, err)
	}
	if v, err := s.Get([]byte("x")); err != nil || len(v) != 0 {
		t.Fatalf("missing key = %q, %v", v, err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("x"), []byte("y")); err != nil {
		t.Fatal(err)
	}
	s.crash()
	s = mustOpen(t, testConfig(dir))
	defer s.Close()
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("CurrentTerm = %d, %v", v, err)
	}
	if v, err := s.Get([]byte("x")); err != nil || string(v) != "y" {
		t.Fatalf("x = %q, %v", v, err)
	}
}

func TestOldFormatRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := bbolt.Open(filepath.Join(dir, BoltName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket(oldLogBucket); return err })
	db.Close()
	if _, err := Open(testConfig(dir)); !errors.Is(err, ErrOldFormat) {
		t.Fatalf("Open of a raft-boltdb file: %v, want ErrOldFormat", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{Dir: "x", JournalSize: 1000, FlushBytes: 10, FlushInterval: time.Second},
		{Dir: "x", JournalSize: 1 << 20, FlushBytes: 2 << 20, FlushInterval: time.Second},
		{Dir: "x", JournalSize: 1 << 20, FlushBytes: 1 << 10},
	} {
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
	if err := DefaultConfig("x").Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestDifferential runs random appends, deletes, flushes and crashes
// against raft's in-memory store and compares every entry after each
// step.
func TestDifferential(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	s := mustOpen(t, testConfig(dir))
	defer func() { s.Close() }()
	ref := raft.NewInmemStore()
	var next uint64 = 1
	for step := range 400 {
		switch op := rng.IntN(20); {
		case op < 13: // append a batch
			n := 1 + rng.IntN(8)
			var batch []*raft.Log
			for range n {
				size := rng.IntN(3000)
				if rng.IntN(20) == 0 {
					size = 70 << 10 // over the journal: the batch goes straight to bbolt
				}
				batch = append(batch, entry(next, size))
				next++
			}
			if err := s.StoreLogs(batch); err != nil {
				t.Fatal(err)
			}
			ref.StoreLogs(batch)
		case op < 15: // compact the head
			first, _ := ref.FirstIndex()
			last, _ := ref.LastIndex()
			if last > first {
				to := first + uint64(rng.IntN(int(last-first)))
				s.DeleteRange(first, to)
				ref.DeleteRange(first, to)
			}
		case op < 16: // conflict: drop a tail
			first, _ := ref.FirstIndex()
			last, _ := ref.LastIndex()
			if last > first {
				from := last - uint64(rng.IntN(int(min(last-first, 10))))
				s.DeleteRange(from, last)
				ref.DeleteRange(from, last)
				next = from
			}
		case op < 18:
			if err := s.flush(); err != nil {
				t.Fatal(err)
			}
		default:
			s.crash()
			s = mustOpen(t, testConfig(dir))
		}
		rf, _ := ref.FirstIndex()
		rl, _ := ref.LastIndex()
		checkBounds(t, s, rf, rl)
		if rl == 0 {
			continue
		}
		for i := rf; i <= rl; i++ {
			var want raft.Log
			if err := ref.GetLog(i, &want); err != nil {
				t.Fatalf("step %d: reference lost %d", step, i)
			}
			checkLog(t, s, &want)
		}
	}
}

// Appends, reads, flushes and compactions from several goroutines, as
// raft's leader loop, replication and snapshotting do (run with -race).
func TestConcurrent(t *testing.T) {
	s := mustOpen(t, testConfig(t.TempDir()))
	defer s.Close()
	const n = 3000
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(3)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := uint64(1); i <= n; i += 2 {
			if err := s.StoreLogs([]*raft.Log{entry(i, 200), entry(i+1, 50)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			if last == 0 {
				continue
			}
			var l raft.Log
			i := last
			if err := s.GetLog(i, &l); err != nil || l.Index != i {
				t.Errorf("GetLog(%d) (first %d) = %d, %v", i, first, l.Index, err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			if last, _ := s.LastIndex(); last > 500 {
				first, _ := s.FirstIndex()
				if first < last-400 {
					if err := s.DeleteRange(first, last-400); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}
	}()
	wg.Wait()
	checkLog(t, s, entry(n, 50))
}

// TestCompactionInChunks: deleting a long flushed prefix (as after a
// snapshot) takes several transactions while appends go on; the bounds
// move along, nothing after the range is touched, and a crash in the
// middle or a reopen afterwards leaves a log that starts later, never one
// with a gap.
func TestCompactionInChunks(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, testConfig(dir))
	const n = 5*deleteChunk + 17
	for i := uint64(1); i <= n; i++ {
		if err := s.StoreLogs([]*raft.Log{entry(i, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	// Entries still in a journal make it a one-transaction delete
	// (the flusher only runs once 16 KiB are waiting).
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs([]*raft.Log{entry(n+1, 10), entry(n+2, 10)}); err != nil {
		t.Fatal(err)
	}
	if !s.flushedPrefix(1, n) {
		t.Fatal("a flushed prefix was not taken for one")
	}
	if s.flushedPrefix(1, n+1) || s.flushedPrefix(1, n+2) || s.flushedPrefix(2, n) {
		t.Fatal("a range with a journalled entry, up to the last entry, or not from the first, was taken for a flushed prefix")
	}
	if err := s.DeleteRange(n+1, n+2); err != nil { // as a follower drops a conflicting suffix
		t.Fatal(err)
	}
	checkBounds(t, s, 1, n)
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	if !s.flushedPrefix(1, n-10) {
		t.Fatal("a flushed prefix was not taken for one")
	}
	appended := make(chan error, 1)
	go func() { // appends while the compaction runs
		for i := uint64(n + 1); i <= n+200; i++ {
			if err := s.StoreLogs([]*raft.Log{entry(i, 100)}); err != nil {
				appended <- err
				return
			}
		}
		appended <- nil
	}()
	if err := s.DeleteRange(1, n-10); err != nil {
		t.Fatal(err)
	}
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	checkBounds(t, s, n-9, n+200)
	var l raft.Log
	if err := s.GetLog(n-10, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted entry %d: %v", n-10, err)
	}
	for i := uint64(n - 9); i <= n+200; i++ {
		checkLog(t, s, entry(i, 100))
	}
	s.crash()
	s = mustOpen(t, testConfig(dir))
	defer s.Close()
	checkBounds(t, s, n-9, n+200)
	checkLog(t, s, entry(n+200, 100))
}
