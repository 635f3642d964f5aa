// Package raftlog is the Raft log and stable store: entries live in bbolt,
// and each append is first made durable in a preallocated journal with a
// single fdatasync, from which a background flusher moves them into bbolt.
package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// File names inside Config.Dir.
const (
	BoltName = "raft.db"
	journal0 = "raft-journal-0"
	journal1 = "raft-journal-1"
)

var (
	bucketLog    = []byte("log")
	bucketStable = []byte("stable")
	bucketMeta   = []byte("meta")
	keyFormat    = []byte("format")
	keyFlushed   = []byte("flushed-generation")
	formatName   = []byte("rqlited-raftlog-1")
	oldLogBucket = []byte("logs") // raft-boltdb's, used by early development builds
)

// Errors.
var (
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("raft log closed")
	// ErrOldFormat is returned by Open for a raft.db written in another
	// format.
	ErrOldFormat = errors.New("raft.db was written in a format this version does not read")
)

// Config configures a Store.
type Config struct {
	// Dir holds raft.db and the two journal files.
	Dir string
	// JournalSize is the size of each of the two preallocated journal
	// files. An append larger than a journal goes straight to bbolt.
	JournalSize int64
	// FlushBytes is how many journal bytes wait before the flusher moves
	// them into bbolt.
	FlushBytes int64
	// FlushInterval bounds how long an entry waits in the journal.
	FlushInterval time.Duration
	// Logger receives flush failures.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration used by the store package.
func DefaultConfig(dir string) Config {
	return Config{Dir: dir, JournalSize: 4 << 20, FlushBytes: 1 << 20, FlushInterval: time.Second}
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("raftlog: Dir is empty")
	case c.JournalSize < 64<<10:
		return fmt.Errorf("raftlog: JournalSize %d is below 64 KiB", c.JournalSize)
	case c.FlushBytes <= 0 || c.FlushBytes > c.JournalSize:
		return fmt.Errorf("raftlog: FlushBytes %d must be in (0, JournalSize]", c.FlushBytes)
	case c.FlushInterval <= 0:
		return errors.New("raftlog: FlushInterval must be positive")
	}
	return nil
}

// pendingEntry is an entry that is in a journal but maybe not yet in bbolt.
type pendingEntry struct {
	gen uint64
	enc []byte
}

// journal is one of the two preallocated journal files.
type journal struct {
	f   *os.File
	gen uint64 // generation of the frames being written; 0: free
	off int64  // where the next frame goes
}

// spoil overwrites the start of a frame whose append failed, so that a
// replay can never take the unacknowledged entries for stored ones (best
// effort: the failure that spoiled the append may stop this write too).
func (j *journal) spoil() {
	j.f.WriteAt(make([]byte, frameHeader), j.off) //nolint:errcheck
}

// Store implements raft.LogStore and raft.StableStore.
//
// Locks, always taken in this order: flushMu serialises moving entries
// into bbolt and DeleteRange; wmu serialises appends and journal
// rotation; mu guards the in-memory index read by GetLog and friends.
type Store struct {
	cfg  Config
	bolt *bbolt.DB

	flushMu    sync.Mutex
	dropWarned bool // releaseMapped failed once (guarded by flushMu)

	wmu      sync.Mutex
	active   *journal // appends go here
	standby  *journal // free, or frozen: its entries are on their way into bbolt
	frozen   bool
	maxGen   uint64
	unsynced int64 // bytes in the active journal not yet flushed into bbolt

	mu      sync.RWMutex
	pending map[uint64]pendingEntry
	first   uint64
	last    uint64
	closed  bool
	closing bool // Close has begun
	// lastLog is the newest entry (index s.last) as it was appended, its
	// Data shared with the appender's; Index is 0 when it is not known.
	// hashicorp/raft's leader reads the entry before the next one it
	// sends to each follower every CommitTimeout (50-100 ms), even when
	// idle, only for its term: with a large newest entry, reading it from
	// bbolt each time copied all of it (a 60 MB write: 60 MB per
	// follower 10-20 times a second) and mapped its pages. Kept here,
	// that costs nothing, and a follower's FSM reads a large entry it has
	// just stored without a copy too.
	lastLog raft.Log

	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens (or creates) the log in cfg.Dir, moving into bbolt whatever
// the journals hold from before a crash.
func Open(cfg Config) (*Store, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.Dir, BoltName)
	bdb, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bbolt.FreelistMapType,
		// On 64-bit Linux, map 1 GiB of address space from the start
		// (not memory: only pages read are resident, and releaseMapped
		// drops those). Each time bbolt grows a smaller map it first
		// copies every key and value the write transaction holds out of
		// the old one, which at large entries made the process tens of MB
		// larger for a moment.
		InitialMmapSize: initialMmapSize,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &Store{
		cfg:     cfg,
		bolt:    bdb,
		pending: make(map[uint64]pendingEntry),
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	if err := s.init(); err != nil {
		s.closeFiles()
		return nil, err
	}
	s.wg.Add(1)
	go s.flusher()
	return s, nil
}

func (s *Store) init() error {
	var flushed uint64
	err := s.bolt.Update(func(tx *bbolt.Tx) error {
		if tx.Bucket(oldLogBucket) != nil {
			return fmt.Errorf("%w (an early development build's raft-boltdb log): move the data directory away and restore from a backup with /db/load", ErrOldFormat)
		}
		meta := tx.Bucket(bucketMeta)
		if meta != nil {
			if f := meta.Get(keyFormat); string(f) != string(formatName) {
				return fmt.Errorf("%w (format %q)", ErrOldFormat, f)
			}
			if v := meta.Get(keyFlushed); len(v) == 8 {
				flushed = binary.BigEndian.Uint64(v)
			}
		}
		for _, name := range [][]byte{bucketLog, bucketStable, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		if meta == nil {
			return tx.Bucket(bucketMeta).Put(keyFormat, formatName)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", filepath.Join(s.cfg.Dir, BoltName), err)
	}

	// Replay: frames of generations not yet flushed, oldest first.
	type replay struct {
		gen    uint64
		frames [][]byte
	}
	var todo []replay
	maxGen := flushed
	for i, name := range []string{journal0, journal1} {
		j, data, err := s.openJournal(name)
		if err != nil {
			return err
		}
		if i == 0 {
			s.active = j
		} else {
			s.standby = j
		}
		gen, frames := scanJournal(data)
		maxGen = max(maxGen, gen)
		if gen > flushed && len(frames) > 0 {
			todo = append(todo, replay{gen, frames})
		}
	}
	sort.Slice(todo, func(a, b int) bool { return todo[a].gen < todo[b].gen })
	if len(todo) > 0 {
		err := s.bolt.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket(bucketLog)
			b.FillPercent = 0.95
			for _, r := range todo {
				for _, fr := range r.frames {
					entries, err := frameEntries(fr)
					if err != nil {
						return err
					}
					if err := putEntries(b, entries); err != nil {
						return err
					}
				}
			}
			return tx.Bucket(bucketMeta).Put(keyFlushed, uint64Key(maxGen))
		})
		if err != nil {
			return fmt.Errorf("replay Raft log journal into %s: %w", BoltName, err)
		}
	}
	s.maxGen = maxGen + 1
	s.active.gen, s.active.off = s.maxGen, 0
	s.standby.gen, s.standby.off = 0, 0
	return s.loadBounds()
}

// openJournal opens a journal file, creating it and reserving its full size
// (fallocate, or zeros where the file system has no fallocate) if it is
// missing or short, and returns its contents.
func (s *Store) openJournal(name string) (*journal, []byte, error) {
	path := filepath.Join(s.cfg.Dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open Raft log journal: %w", err)
	}
	fail := func(err error) (*journal, []byte, error) {
		f.Close()
		return nil, nil, fmt.Errorf("Raft log journal %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	size := fi.Size()
	if size < s.cfg.JournalSize {
		// Reserve the space now, so a full disk shows at start, not in
		// the middle of an append, and the size never changes again.
		// (fallocate is instant; the first pass of writes over the file
		// also converts its extents, later passes are pure overwrites.
		// Writing zeros instead cost 50-250 ms at every first start.)
		if err := preallocate(f, size, s.cfg.JournalSize); err != nil {
			return fail(err)
		}
		// No fsync of the file: the fdatasync after each append also makes
		// the size durable, as data retrieval needs it. The directory
		// entry is another matter.
		if err := syncDir(s.cfg.Dir); err != nil {
			return fail(err)
		}
		size = s.cfg.JournalSize
	}
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil {
		return fail(err)
	}
	return &journal{f: f}, data, nil
}

// scanJournal returns the generation of the journal's first frame and the
// intact frames of that generation that follow one another from offset 0.
// Anything after them is an older generation or a torn, unacknowledged
// write.
func scanJournal(data []byte) (uint64, [][]byte) {
	var gen uint64
	var frames [][]byte
	for off := 0; off < len(data); {
		g, size, ok := frameAt(data[off:])
		if !ok || (gen != 0 && g != gen) {
			break
		}
		gen = g
		frames = append(frames, data[off:off+size])
		off += size
	}
	return gen, frames
}

func (s *Store) loadBounds() error {
	return s.bolt.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		first, _ := c.First()
		last, _ := c.Last()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.first, s.last = 0, 0
		if first != nil {
			s.first = binary.BigEndian.Uint64(first)
			s.last = binary.BigEndian.Uint64(last)
		}
		return nil
	})
}

// FirstIndex implements raft.LogStore.
func (s *Store) FirstIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.first, nil
}

// LastIndex implements raft.LogStore.
func (s *Store) LastIndex() (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, ErrClosed
	}
	return s.last, nil
}

// GetLog implements raft.LogStore.
func (s *Store) GetLog(index uint64, l *raft.Log) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	if index != 0 && index == s.lastLog.Index {
		*l = s.lastLog
		s.mu.RUnlock()
		return nil
	}
	p, ok := s.pending[index]
	s.mu.RUnlock()
	if ok {
		return decodeEntry(p.enc, l)
	}
	// Not pending: in bbolt, or nowhere (an entry leaves pending only
	// after its flush has committed).
	return s.bolt.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketLog).Get(uint64Key(index))
		if v == nil {
			return raft.ErrLogNotFound
		}
		return decodeEntry(append([]byte(nil), v...), l)
	})
}

// StoreLog implements raft.LogStore.
func (s *Store) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore: the entries are durable when it
// returns, after one write and one fdatasync of the active journal.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if len(logs) == 0 {
		return nil
	}
	if int64(frameSize(logs)) > s.cfg.JournalSize {
		return s.storeDirect(logs)
	}
	s.wmu.Lock()
	frame, entries := encodeFrame(s.active.gen, logs)
	for s.active.off+int64(len(frame)) > s.cfg.JournalSize {
		s.wmu.Unlock()
		if err := s.flush(); err != nil {
			return err
		}
		s.wmu.Lock()
		setFrameGen(frame, s.active.gen)
	}
	defer s.wmu.Unlock()
	j := s.active
	if _, err := j.f.WriteAt(frame, j.off); err != nil {
		j.spoil()
		return fmt.Errorf("write Raft log journal: %w", err)
	}
	if err := fdatasync(j.f); err != nil {
		j.spoil()
		return fmt.Errorf("sync Raft log journal: %w", err)
	}
	j.off += int64(len(frame))
	s.unsynced += int64(len(frame))

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	for i, l := range logs {
		s.pending[l.Index] = pendingEntry{gen: j.gen, enc: entries[i]}
	}
	if s.first == 0 {
		s.first = logs[0].Index
	}
	s.last = logs[len(logs)-1].Index
	s.setLast(logs[len(logs)-1])
	s.mu.Unlock()

	if s.unsynced >= s.cfg.FlushBytes {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// setLast records l as the newest entry. Caller holds mu for writing.
func (s *Store) setLast(l *raft.Log) {
	s.lastLog = *l
	// As GetLog would decode it from the log.
	s.lastLog.AppendedAt = time.Time{}
	if at := appendedAt(l); at != 0 {
		s.lastLog.AppendedAt = time.Unix(0, at)
	}
	// As decodeEntry: nil when empty, no capacity past the end.
	s.lastLog.Data = clip(l.Data)
	s.lastLog.Extensions = clip(l.Extensions)
}

func clip(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b[:len(b):len(b)]
}

// offHeapMin is the encoded size from which storeDirect encodes an entry
// outside the Go heap.
const offHeapMin = 1 << 20

// storeDirect writes entries too large for a journal straight into bbolt,
// together with everything pending. Each entry is encoded on its own, in
// a buffer of its size (no frame is built for them). bbolt copies values
// into its pages at the commit, after which the encodings are garbage:
// large ones are encoded outside the heap and unmapped right after, so
// that a 60 MB write does not leave 60 MB for the collector on every node
// while SQLite applies it.
func (s *Store) storeDirect(logs []*raft.Log) error {
	entries := make([][]byte, len(logs))
	for i, l := range logs {
		n := entryLen(l)
		if n < offHeapMin {
			entries[i] = encodeEntry(l)
			continue
		}
		buf, free := offHeap(n)
		defer free() // bbolt holds no reference once rewrite returns
		entries[i] = appendEntry(buf[:0], l)
	}
	return s.rewrite(func(b *bbolt.Bucket) error {
		return putEntries(b, entries)
	}, func() {
		if s.first == 0 {
			s.first = logs[0].Index
		}
		s.last = logs[len(logs)-1].Index
		s.setLast(logs[len(logs)-1])
	})
}

// rewrite stops appends, and in one bbolt transaction moves every
// journalled entry into bbolt and applies change. Then the journals start
// over and update (if set) adjusts the bounds; otherwise they are read
// back from bbolt.
func (s *Store) rewrite(change func(*bbolt.Bucket) error, update func()) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	_, vals := s.pendingSorted(func(pendingEntry) bool { return true })
	s.mu.RUnlock()
	err := s.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLog)
		b.FillPercent = 0.95
		if err := putEntries(b, vals); err != nil {
			return err
		}
		if err := change(b); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyFlushed, uint64Key(s.maxGen))
	})
	if err != nil {
		return fmt.Errorf("update Raft log %s: %w", BoltName, err)
	}
	s.releaseMapped()
	s.maxGen++
	s.active.gen, s.active.off = s.maxGen, 0
	s.standby.gen, s.standby.off = 0, 0
	s.frozen = false
	s.unsynced = 0
	s.mu.Lock()
	clear(s.pending)
	s.lastLog = raft.Log{}
	if update != nil {
		update()
	}
	s.mu.Unlock()
	if update == nil {
		return s.loadBounds()
	}
	return nil
}

// pendingSorted returns the pending entries that keep selects, by index.
// Caller holds mu.
func (s *Store) pendingSorted(keep func(pendingEntry) bool) ([]uint64, [][]byte) {
	var keys []uint64
	for idx, p := range s.pending {
		if keep(p) {
			keys = append(keys, idx)
		}
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a] < keys[b] })
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = s.pending[k].enc
	}
	return keys, vals
}

// flush moves every journalled entry into bbolt.
func (s *Store) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	if err := s.flushFrozen(); err != nil {
		return err
	}
	// Rotate: appends go on into the free standby while the entries of
	// the old active journal are committed to bbolt.
	s.wmu.Lock()
	if s.unsynced == 0 {
		s.wmu.Unlock()
		return nil
	}
	s.maxGen++
	s.active, s.standby = s.standby, s.active
	s.active.gen, s.active.off = s.maxGen, 0
	s.frozen = true
	s.unsynced = 0
	s.wmu.Unlock()
	return s.flushFrozen()
}

// flushFrozen commits the frozen journal's entries to bbolt and frees it.
// Caller holds flushMu, which keeps the standby and frozen fields still.
func (s *Store) flushFrozen() error {
	if !s.frozen {
		return nil
	}
	old := s.standby
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	keys, vals := s.pendingSorted(func(p pendingEntry) bool { return p.gen == old.gen })
	s.mu.RUnlock()
	err := s.bolt.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketLog)
		b.FillPercent = 0.95
		if err := putEntries(b, vals); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyFlushed, uint64Key(old.gen))
	})
	if err != nil {
		// The frozen journal still holds the entries durably and is not
		// reused until a later flush succeeds.
		return fmt.Errorf("move Raft log entries into %s: %w", BoltName, err)
	}
	s.releaseMapped()
	s.mu.Lock()
	for _, k := range keys {
		if p, ok := s.pending[k]; ok && p.gen == old.gen {
			delete(s.pending, k)
		}
	}
	s.mu.Unlock()
	s.wmu.Lock()
	old.gen, old.off = 0, 0
	s.frozen = false
	s.wmu.Unlock()
	return nil
}

// flusher moves entries into bbolt when enough have gathered, and at
// least every FlushInterval.
func (s *Store) flusher() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		case <-t.C:
		}
		err := s.flush()
		switch {
		case err != nil && !errors.Is(err, ErrClosed) && !failing:
			s.cfg.Logger.Error("cannot move Raft log entries from the journal into bbolt; they stay safe in the journal, "+
				"but appends will fail once it is full (free disk space)", "err", err)
			failing = true
		case err == nil && failing:
			s.cfg.Logger.Info("Raft log journal flushes work again")
			failing = false
		}
	}
}

// Close flushes the journal into bbolt (so the next Open replays
// nothing) and closes the files.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed || s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	ferr := s.flush()
	s.mu.Lock()
	s.closed = true
	s.lastLog = raft.Log{}
	s.mu.Unlock()
	err := s.closeFiles()
	if ferr != nil {
		// Nothing is lost: the journal holds the entries and the next
		// Open replays them.
		s.cfg.Logger.Warn("Raft log journal not flushed at close; it is replayed at the next start", "err", ferr)
	}
	return err
}

func (s *Store) closeFiles() error {
	var errs []error
	for _, j := range []*journal{s.active, s.standby} {
		if j != nil && j.f != nil {
			errs = append(errs, j.f.Close())
		}
	}
	errs = append(errs, s.bolt.Close())
	return errors.Join(errs...)
}

// Set implements raft.StableStore.
func (s *Store) Set(key, val []byte) error {
	return s.bolt.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketStable).Put(key, val)
	})
}

// Get implements raft.StableStore: a missing key is an empty value.
func (s *Store) Get(key []byte) ([]byte, error) {
	var v []byte
	err := s.bolt.View(func(tx *bbolt.Tx) error {
		v = append([]byte(nil), tx.Bucket(bucketStable).Get(key)...)
		return nil
	})
	return v, err
}

// SetUint64 implements raft.StableStore.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, uint64Key(val))
}

// GetUint64 implements raft.StableStore: a missing key is 0.
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil || len(v) == 0 {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable key %q holds %d bytes, not 8", errCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// putEntries stores encoded entries under their indexes.
func putEntries(b *bbolt.Bucket, entries [][]byte) error {
	for _, e := range entries {
		idx, err := entryIndex(e)
		if err != nil {
			return err
		}
		if err := b.Put(uint64Key(idx), e); err != nil {
			return err
		}
	}
	return nil
}
