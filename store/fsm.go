package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/db"
)

// fsmResponse is what the FSM returns for each applied command.
type fsmResponse struct {
	results []command.Result
	err     error
}

// fsm applies the replicated log to SQLite. hashicorp/raft calls Apply,
// Snapshot and Restore from one goroutine; Persist may run concurrently with
// later Applies.
type fsm struct {
	db   *db.DB
	tmp  string // scratch directory for snapshot and load files
	logs raft.LogStore
	// idPath is the file the cluster ID is kept in, so a restarting node
	// knows its cluster before the log is replayed.
	idPath string
	// fatal stops the process (Config.Fatal).
	fatal func(error)
	// halted is set when the database was interrupted for shutdown: from
	// then on nothing is applied and no snapshot is taken, so no state
	// claims an index whose effects it lacks.
	halted atomic.Bool

	mu        sync.Mutex
	clusterID string
	index     uint64    // last log index whose effects are in SQLite
	updated   time.Time // when index last advanced
	waiters   []waiter
}

type waiter struct {
	index uint64
	ch    chan struct{}
}

func newFSM(d *db.DB, tmp string, logs raft.LogStore, idPath string) *fsm {
	f := &fsm{db: d, tmp: tmp, logs: logs, idPath: idPath}
	if b, err := os.ReadFile(idPath); err == nil {
		f.clusterID = strings.TrimSpace(string(b))
	}
	return f
}

// getClusterID returns the cluster ID, empty until one is committed.
func (f *fsm) getClusterID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.clusterID
}

// setClusterID records id, persisting it, unless an ID is already set
// (force replaces it: a restored snapshot is authoritative).
func (f *fsm) setClusterID(id string, force bool) error {
	f.mu.Lock()
	if id == "" || id == f.clusterID || (f.clusterID != "" && !force) {
		f.mu.Unlock()
		return nil
	}
	f.clusterID = id
	f.mu.Unlock()
	// Written outside f.mu (readers of the applied index and the ID take
	// it); the FSM goroutine is the only writer, so writes cannot cross.
	tmp := f.idPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f.idPath)
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) any {
	if f.halted.Load() {
		return &fsmResponse{err: ErrNotOpen}
	}
	defer func() {
		if !f.halted.Load() {
			f.setIndex(l.Index)
		}
	}()
	// Values share l.Data: hashicorp/raft never changes an entry once it
	// is appended, and parameters are only bound, never kept.
	c, err := command.DecodeShared(l.Data)
	if err != nil {
		// A corrupt entry can only come from a bug or a damaged log; every
		// replica sees the same bytes, so all of them skip it alike.
		return &fsmResponse{err: fmt.Errorf("apply log entry %d: %w", l.Index, err)}
	}
	env := db.Env{Time: c.Time, Seed: c.Seed}
	mode := db.ModeExecute
	switch c.Type {
	case command.TypeExecute, command.TypeQuery, command.TypeRequest:
		if c.Type == command.TypeQuery {
			mode = db.ModeQuery
		} else if c.Type == command.TypeRequest {
			mode = db.ModeRequest
		}
		start := time.Now()
		res, err := f.db.Apply(env, mode, &c.Request)
		countApplied(c.Type, &c.Request, res, time.Since(start))
		switch {
		case errors.Is(err, db.ErrClosed):
			// Stopped for shutdown, with nothing kept: the entry is
			// applied again from the log when the node restarts.
			f.halted.Store(true)
			return &fsmResponse{err: ErrNotOpen}
		case errors.Is(err, db.ErrEnvironment):
			f.stop(fmt.Errorf("log entry %d: %w", l.Index, err))
		}
		return &fsmResponse{results: res, err: err}
	case command.TypeLoad:
		return &fsmResponse{err: f.load(c.Data)}
	case command.TypeNoop:
		return &fsmResponse{}
	case command.TypeClusterID:
		return &fsmResponse{err: f.setClusterID(string(c.Data), false)}
	default:
		return &fsmResponse{err: fmt.Errorf("apply log entry %d: unknown command type %d", l.Index, c.Type)}
	}
}

// stop ends the process: carrying on after an entry that did not apply
// here as it did elsewhere would leave this replica with different data
// forever. A restart rebuilds the database from the snapshot and the log.
func (f *fsm) stop(err error) {
	err = fmt.Errorf("this node cannot apply committed writes and stops so that its data never diverges from the other nodes "+
		"(free disk space or fix the data directory, then restart it: it rebuilds its database from its snapshot and log): %w", err)
	if f.fatal == nil {
		panic(err)
	}
	f.fatal(err)
}

// StoreConfiguration implements raft.ConfigurationStore, so configuration
// entries advance the applied index like commands do.
func (f *fsm) StoreConfiguration(index uint64, _ raft.Configuration) { f.setIndex(index) }

func (f *fsm) load(data []byte) error {
	p, err := writeTemp(f.tmp, "load-*.db", func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	defer os.Remove(p)
	return f.db.Replace(p)
}

func (f *fsm) setIndex(i uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i <= f.index {
		return
	}
	f.index = i
	f.updated = time.Now()
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.index <= i {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	f.waiters = kept
}

// appliedIndex returns the last applied index and when it advanced.
func (f *fsm) appliedIndex() (uint64, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.index, f.updated
}

// waitFor returns a channel closed once index i is applied.
func (f *fsm) waitFor(i uint64) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	if i <= f.index {
		close(ch)
		return ch
	}
	f.waiters = append(f.waiters, waiter{index: i, ch: ch})
	return ch
}

// lastStateChange returns the highest index <= i of an entry the FSM sees
// (command or configuration). Raft's no-op and barrier entries never reach
// the FSM, so a read index that points at one must wait only for the entries
// before it.
func (f *fsm) lastStateChange(i uint64) uint64 {
	applied, _ := f.appliedIndex()
	var l raft.Log
	for ; i > applied; i-- {
		if err := f.logs.GetLog(i, &l); err != nil {
			continue // compacted: covered by a snapshot
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return i
		}
	}
	return i
}

// Snapshot implements raft.FSM. It only pins the database's current state
// in a read transaction (Apply runs on this goroutine, so that state is
// exactly the applied index); Persist copies it while writes go on.
func (f *fsm) Snapshot() (_ raft.FSMSnapshot, err error) {
	start := time.Now()
	defer func() {
		countOutcome(storeVars, "num_snapshots", "num_snapshots_failed", err)
		setDuration(storeVars, "snapshot_create_duration", time.Since(start))
	}()
	if f.halted.Load() {
		return nil, ErrNotOpen
	}
	index, _ := f.appliedIndex()
	settings, err := f.db.Settings()
	if err != nil {
		return nil, fmt.Errorf("snapshot connection settings: %w", err)
	}
	snap, err := f.db.BeginSnapshot()
	if err != nil {
		return nil, fmt.Errorf("snapshot database: %w", err)
	}
	return &fsmSnapshot{snap: snap, tmp: f.tmp, index: index, clusterID: f.getClusterID(), settings: settings}, nil
}

// Restore implements raft.FSM: it replaces the database with a snapshot.
func (f *fsm) Restore(rc io.ReadCloser) (err error) {
	defer rc.Close()
	defer func() { countOutcome(storeVars, "num_restores", "num_restores_failed", err) }()
	var hdr [10]byte
	if _, err := io.ReadFull(rc, hdr[:]); err != nil {
		return fmt.Errorf("read snapshot header: %w", err)
	}
	index := binary.LittleEndian.Uint64(hdr[:8])
	id := make([]byte, binary.LittleEndian.Uint16(hdr[8:]))
	if _, err := io.ReadFull(rc, id); err != nil {
		return fmt.Errorf("read snapshot header: %w", err)
	}
	if err := f.setClusterID(string(id), true); err != nil {
		return err
	}
	settings, head, err := readSettings(rc)
	if err != nil {
		return err
	}
	p, err := writeTemp(f.tmp, "restore-*.db", func(w io.Writer) error {
		if _, err := w.Write(head); err != nil {
			return err
		}
		_, err := io.Copy(w, rc)
		return err
	})
	if err != nil {
		return err
	}
	defer os.Remove(p)
	if err := f.db.Replace(p); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if err := f.db.ApplySettings(settings); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.mu.Lock()
	f.index = 0 // may move backwards: a snapshot from the leader replaces everything
	f.mu.Unlock()
	f.setIndex(index)
	return nil
}

// fsmSnapshot is a pinned database state waiting to be written to the
// snapshot store. The stream is a header (8-byte little-endian applied
// index, 2-byte length and the cluster ID), then, if the writer's
// connection settings differ from a new connection's, a settings block
// (settingsMagic, a 1-byte count, and per setting a 1-byte name length,
// the name and an 8-byte little-endian value), then the database file.
// The block is told from the file by its first 16 bytes; snapshots without
// settings are as before.
type fsmSnapshot struct {
	snap      *db.Snapshot
	tmp       string
	index     uint64
	clusterID string
	settings  []db.Setting
}

// settingsMagic opens the settings block; a SQLite file opens with
// "SQLite format 3\x00", also 16 bytes.
const settingsMagic = "rqlited-settings"

func appendSettings(b []byte, ss []db.Setting) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(b, settingsMagic...)
	b = append(b, byte(len(ss)))
	for _, s := range ss {
		b = append(b, byte(len(s.Name)))
		b = append(b, s.Name...)
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Value))
	}
	return b
}

// readSettings reads the settings block, if the stream has one, and
// returns the bytes of the database file it read past.
func readSettings(r io.Reader) ([]db.Setting, []byte, error) {
	head := make([]byte, len(settingsMagic))
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, nil, fmt.Errorf("read snapshot: %w", err)
	}
	if string(head) != settingsMagic {
		return nil, head, nil
	}
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, nil, fmt.Errorf("read snapshot settings: %w", err)
	}
	ss := make([]db.Setting, 0, n[0])
	for range int(n[0]) {
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, nil, fmt.Errorf("read snapshot settings: %w", err)
		}
		buf := make([]byte, int(l[0])+8)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, nil, fmt.Errorf("read snapshot settings: %w", err)
		}
		ss = append(ss, db.Setting{Name: string(buf[:l[0]]), Value: int64(binary.LittleEndian.Uint64(buf[l[0]:]))})
	}
	return ss, nil, nil
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	var size int64
	err := func() error {
		p, err := tempName(s.tmp, "snapshot-*.db")
		if err != nil {
			return err
		}
		defer os.Remove(p)
		if err := s.snap.WriteTo(p); err != nil {
			return fmt.Errorf("snapshot database: %w", err)
		}
		// The copy is complete: let checkpoints and writers' WAL reuse
		// go on while it streams.
		s.snap.Close()
		hdr := binary.LittleEndian.AppendUint64(nil, s.index)
		hdr = binary.LittleEndian.AppendUint16(hdr, uint16(len(s.clusterID)))
		hdr = append(hdr, s.clusterID...)
		hdr = appendSettings(hdr, s.settings)
		if _, err := sink.Write(hdr); err != nil {
			return err
		}
		fd, err := os.Open(p)
		if err != nil {
			return err
		}
		defer fd.Close()
		size, err = io.Copy(sink, fd)
		return err
	}()
	if err == nil {
		err = sink.Close()
	} else {
		err = errors.Join(err, sink.Cancel())
	}
	countPersist(size, time.Since(start), err)
	return err
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() { s.snap.Close() }

func tempName(dir, pattern string) (string, error) {
	fd, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	fd.Close()
	os.Remove(fd.Name())
	return fd.Name(), nil
}

// writeTemp creates a file in dir, fills it with fill and returns its path.
func writeTemp(dir, pattern string, fill func(io.Writer) error) (string, error) {
	fd, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	if err := fill(fd); err != nil {
		fd.Close()
		os.Remove(fd.Name())
		return "", err
	}
	if err := fd.Close(); err != nil {
		os.Remove(fd.Name())
		return "", err
	}
	return fd.Name(), nil
}
