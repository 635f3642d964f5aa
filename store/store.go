// Package store replicates a SQLite database with Raft.
//
// A Store owns the Raft node, its bbolt-backed log, the snapshot store and the
// db.DB that the log is applied to. Writes (and strong reads) are encoded as
// command.Command entries and applied to SQLite by the FSM on every node;
// other reads are served from the local SQLite file after the checks their
// consistency level asks for.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/db"
	"github.com/rqlited/rqlited/store/raftlog"
)

// Errors returned by Store methods.
var (
	// ErrNotOpen is returned by calls made before Open or after Close.
	ErrNotOpen = errors.New("store not open")
	// ErrNotLeader is command.ErrNotLeader.
	ErrNotLeader = command.ErrNotLeader
	// ErrStaleRead is command.ErrStaleRead.
	ErrStaleRead = command.ErrStaleRead
	// ErrNothingNew is command.ErrNothingNew.
	ErrNothingNew = command.ErrNothingNew
	// ErrDirInUse is returned by Open when another process holds the data
	// directory.
	ErrDirInUse = errors.New("data directory is in use by another rqlited")
	// ErrTimeout is command.ErrTimeout.
	ErrTimeout = command.ErrTimeout
)

// File names inside the data directory.
const (
	lockName      = "rqlited.lock"
	raftDBName    = raftlog.BoltName
	sqliteName    = "db.sqlite"
	tmpDirName    = "tmp"
	clusterIDName = "cluster_id"
)

// Layer is the network layer Raft runs over: a listener for inbound
// connections plus a way to dial other nodes. mux.Layer satisfies it.
type Layer interface {
	net.Listener
	Dial(address string, timeout time.Duration) (net.Conn, error)
}

// raftLayer adapts a Layer to raft.StreamLayer. Its Addr is the advertised
// address: Raft puts it in every message as the sender's address, and
// followers learn the leader's address from it, so it must be one that other
// nodes can dial (not the bind address, which may be 0.0.0.0).
type raftLayer struct {
	Layer
	adv advertisedAddr
}

func (l raftLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.Layer.Dial(string(a), timeout)
}

func (l raftLayer) Addr() net.Addr { return l.adv }

// advertisedAddr is a host:port that may be a name.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// Config configures a Store. Durations are wall-clock times.
type Config struct {
	// Dir is the data directory. It is created if missing.
	Dir string
	// NodeID is this node's unique, permanent Raft ID.
	NodeID string
	// Addr is the advertised Raft address other nodes dial.
	Addr string
	// Layer carries Raft traffic.
	Layer Layer

	// HeartbeatTimeout is how long a follower waits without contact from
	// the leader before it starts an election.
	HeartbeatTimeout time.Duration
	// ElectionTimeout is how long a candidate waits for votes.
	ElectionTimeout time.Duration
	// CommitTimeout is how long the leader may idle before it sends an
	// AppendEntries with the latest commit index.
	CommitTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without contact
	// from a quorum; 0 means hashicorp/raft's default (500ms).
	LeaderLeaseTimeout time.Duration
	// ApplyTimeout bounds how long a write waits to be committed.
	ApplyTimeout time.Duration

	// SnapshotThreshold is the number of log entries since the last
	// snapshot that triggers a new one.
	SnapshotThreshold uint64
	// SnapshotInterval is how often the threshold is checked.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries a snapshot leaves in the log, so
	// slightly lagging followers catch up without a snapshot.
	TrailingLogs uint64

	// NonVoter makes this node a read replica: it receives the log but
	// never votes or leads.
	NonVoter bool
	// ReapTimeout, if positive, makes the leader remove voters it has not
	// reached for that long. ReapReadOnlyTimeout does the same for read
	// replicas.
	ReapTimeout         time.Duration
	ReapReadOnlyTimeout time.Duration

	// RemoveShutdown makes Removed fire when this node is taken out of the
	// cluster, so the process can stop (-raft-remove-shutdown).
	RemoveShutdown bool

	// ForeignKeys enables SQLite foreign key constraints.
	ForeignKeys bool
	// MaxReadConns bounds concurrent read connections (0: no bound).
	MaxReadConns int
	// MaxSteps bounds the SQLite steps of one statement applied from the
	// log (0: no bound; see db.Config.MaxSteps).
	MaxSteps int64
	// MaxResultBytes bounds the memory of one statement's result rows (0:
	// no bound; see db.Config.MaxResultBytes).
	MaxResultBytes int64

	// RaftLogLevel is hashicorp/raft's log level (ERROR, WARN, INFO, DEBUG).
	RaftLogLevel string
	// LogOutput receives hashicorp/raft's log lines (default os.Stderr).
	LogOutput io.Writer
	// Logger receives this package's structured logs.
	Logger *slog.Logger
	// Fatal is called when the node must stop at once because it cannot
	// apply a committed entry the way the other replicas do (disk full,
	// I/O error, damaged database file). It must not return; nil panics.
	// On restart the database is rebuilt from the snapshot and the log.
	Fatal func(error)
	// ReadIndexer, if set, lets a follower serve linearizable reads from
	// its own database after asking the leader for a read index, instead
	// of forwarding them (see followerReads).
	ReadIndexer ReadIndexer
}

// DefaultConfig returns rqlite's defaults.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:  time.Second,
		ElectionTimeout:   time.Second,
		CommitTimeout:     50 * time.Millisecond,
		ApplyTimeout:      10 * time.Second,
		SnapshotThreshold: 8192,
		SnapshotInterval:  10 * time.Second,
		TrailingLogs:      10240,
		MaxReadConns:      256,
		MaxSteps:          db.DefaultMaxSteps,
		MaxResultBytes:    db.DefaultMaxResultBytes,
		RaftLogLevel:      "WARN",
	}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("store: data directory is required")
	case c.NodeID == "":
		return errors.New("store: node ID is required")
	case c.Addr == "":
		return errors.New("store: advertised Raft address is required")
	case c.Layer == nil:
		return errors.New("store: network layer is required")
	case c.HeartbeatTimeout < 5*time.Millisecond:
		return fmt.Errorf("store: heartbeat timeout %v is too short (minimum 5ms)", c.HeartbeatTimeout)
	case c.ElectionTimeout < 5*time.Millisecond:
		return fmt.Errorf("store: election timeout %v is too short (minimum 5ms)", c.ElectionTimeout)
	case c.CommitTimeout <= 0:
		return fmt.Errorf("store: commit timeout %v must be positive", c.CommitTimeout)
	case c.LeaderLeaseTimeout < 0:
		return fmt.Errorf("store: leader lease timeout %v must not be negative", c.LeaderLeaseTimeout)
	case c.ApplyTimeout <= 0:
		return fmt.Errorf("store: apply timeout %v must be positive", c.ApplyTimeout)
	case c.SnapshotThreshold == 0:
		return errors.New("store: snapshot threshold must be positive")
	case c.SnapshotInterval <= 0:
		return fmt.Errorf("store: snapshot interval %v must be positive", c.SnapshotInterval)
	case c.MaxReadConns < 0:
		return fmt.Errorf("store: max read connections %d must not be negative", c.MaxReadConns)
	case c.MaxResultBytes < 0:
		return fmt.Errorf("store: max result bytes %d must not be negative (0 for no limit)", c.MaxResultBytes)
	case c.MaxSteps < 0:
		return fmt.Errorf("store: max steps %d must not be negative (0 for no limit)", c.MaxSteps)
	}
	if hclog.LevelFromString(c.RaftLogLevel) == hclog.NoLevel {
		return fmt.Errorf("store: unknown Raft log level %q (use ERROR, WARN, INFO or DEBUG)", c.RaftLogLevel)
	}
	return nil
}

// Store is a SQLite database replicated by Raft.
type Store struct {
	cfg    Config
	logger *slog.Logger

	mu       sync.RWMutex // guards open and the fields set by Open
	open     bool
	lock     *os.File
	db       *db.DB
	fsm      *fsm
	raft     *raft.Raft
	boltLog  *raftlog.Store
	snaps    *raft.FileSnapshotStore
	trans    *raft.NetworkTransport
	openedAt time.Time
	// bootIndex is the last log index at Open: until the FSM has applied
	// the log up to it, the local database is older than what this node
	// already had, and the store is not ready.
	bootIndex uint64
	caughtUp  atomic.Bool
	done      chan struct{} // closed by Close to stop watch
	wg        sync.WaitGroup
	removed   chan struct{} // closed when this node is removed (RemoveShutdown)

	followerReads followerReads
	readConfirms  [numConfirmations]atomic.Uint64 // by confirmation
	addrs         addrBook
}

// New returns a Store for cfg. It does no I/O; call Open.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.LogOutput == nil {
		cfg.LogOutput = os.Stderr
	}
	return &Store{cfg: cfg, logger: cfg.Logger.With("component", "store")}, nil
}

// Open locks the data directory, opens the log, snapshots and database, and
// starts Raft. The SQLite file is rebuilt from the latest snapshot and the
// log, which are the source of truth, so a crash at any moment loses nothing
// that was committed.
func (s *Store) Open() (retErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open {
		return errors.New("store already open")
	}
	if err := os.MkdirAll(s.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDir(s.cfg.Dir)
	if err != nil {
		return err
	}
	var closers []func() error
	defer func() {
		if retErr != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
			lock.Close()
		}
	}()

	// A peers file is checked before anything in the directory changes,
	// so that a refused one leaves it exactly as it was.
	peers, err := readPeersFile(s.cfg.Dir, s.cfg.NodeID)
	if err != nil {
		return err
	}
	if peers != nil && !hasRaftFiles(s.cfg.Dir) {
		return noStateError(peers.path)
	}

	tmp := filepath.Join(s.cfg.Dir, tmpDirName)
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("clear %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	dbPath := filepath.Join(s.cfg.Dir, sqliteName)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove stale database: %w", err)
		}
	}
	d, err := db.Open(db.Config{Path: dbPath, ForeignKeys: s.cfg.ForeignKeys, MaxReadConns: s.cfg.MaxReadConns, MaxSteps: s.cfg.MaxSteps,
		MaxResultBytes: s.cfg.MaxResultBytes})
	if err != nil {
		return err
	}
	closers = append(closers, d.Close)

	lcfg := raftlog.DefaultConfig(s.cfg.Dir)
	lcfg.Logger = s.logger
	boltLog, err := raftlog.Open(lcfg)
	if err != nil {
		return fmt.Errorf("open Raft log in %s: %w", s.cfg.Dir, err)
	}
	closers = append(closers, boltLog.Close)
	// No raft.LogCache: the journal already serves recent entries from
	// memory, and the cache would keep each cached entry's whole apply
	// future alive (hashicorp/raft hands the store a pointer into it),
	// response included: about 24 MB at 1000-row batches.
	logStore := boltLog

	hl := hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Level:  hclog.LevelFromString(s.cfg.RaftLogLevel),
		Output: s.cfg.LogOutput,
	})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(s.cfg.Dir, 2, hl)
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	s.addrs.setSelf(s.cfg.NodeID, s.cfg.Addr)
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  raftLayer{Layer: s.cfg.Layer, adv: advertisedAddr(s.cfg.Addr)},
		MaxPool: 5,
		// No pipelined replication: in hashicorp/raft 1.7 a follower that
		// refuses one pipelined append (its disk is full, say) leaves the
		// leader's pipeline deadlocked, and the follower, still getting
		// heartbeats, never receives another entry (hashicorp/raft#612;
		// found by the disk-full scenario of the fault matrix).
		MaxRPCsInFlight: 1,
		// Members found at new addresses before a leader could record them.
		ServerAddressProvider: &s.addrs,
		Timeout:               10 * time.Second,
		Logger:                hl,
	})
	closers = append(closers, trans.Close)

	f := newFSM(d, tmp, logStore, filepath.Join(s.cfg.Dir, clusterIDName))
	f.fatal = s.cfg.Fatal
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.cfg.NodeID)
	rc.HeartbeatTimeout = s.cfg.HeartbeatTimeout
	rc.ElectionTimeout = s.cfg.ElectionTimeout
	rc.CommitTimeout = s.cfg.CommitTimeout
	if s.cfg.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = s.cfg.LeaderLeaseTimeout
	}
	if rc.LeaderLeaseTimeout > rc.HeartbeatTimeout {
		rc.LeaderLeaseTimeout = rc.HeartbeatTimeout
	}
	rc.SnapshotThreshold = s.cfg.SnapshotThreshold
	rc.SnapshotInterval = s.cfg.SnapshotInterval
	rc.TrailingLogs = s.cfg.TrailingLogs
	rc.MaxAppendEntries = 256
	rc.BatchApplyCh = true
	rc.Logger = hl
	if err := raft.ValidateConfig(rc); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}
	if peers != nil {
		if err := s.recoverFromPeers(peers, rc, tmp, logStore, boltLog, snaps, trans); err != nil {
			return err
		}
	}
	bootIndex, err := boltLog.LastIndex()
	if err != nil {
		return fmt.Errorf("read Raft log: %w", err)
	}
	r, err := raft.NewRaft(rc, f, logStore, stableStore{boltLog, s.cfg.Fatal}, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}

	s.addrs.setRaft(r)
	s.lock, s.db, s.fsm, s.raft, s.boltLog, s.snaps, s.trans = lock, d, f, r, boltLog, snaps, trans
	s.bootIndex = bootIndex
	s.open = true
	s.openedAt = time.Now()
	s.done = make(chan struct{})
	s.removed = make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watch(r, s.done)
	}()
	s.logger.Info("store open", "dir", s.cfg.Dir, "node-id", s.cfg.NodeID, "addr", s.cfg.Addr)
	s.mu.Unlock()
	s.campaignIfAlone()
	s.mu.Lock()
	return nil
}

// lockDir takes an exclusive, non-blocking lock on the data directory so two
// processes can never share it.
func lockDir(dir string) (*os.File, error) {
	p := filepath.Join(dir, lockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrDirInUse, dir)
		}
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return f, nil
}

// HasState reports whether the data directory already holds Raft state
// (this node belonged to a cluster before).
func (s *Store) HasState() (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.open {
		return false, ErrNotOpen
	}
	last, err := s.boltLog.LastIndex()
	if err != nil {
		return false, err
	}
	if last > 0 {
		return true, nil
	}
	snaps, err := s.snaps.List()
	return len(snaps) > 0, err
}

// BootstrapSelf forms a new single-node cluster of this node, if the node
// has no state yet. It is a no-op for a node with state.
func (s *Store) BootstrapSelf() error {
	r, err := s.raftNode()
	if err != nil {
		return err
	}
	f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		ID: raft.ServerID(s.cfg.NodeID), Address: raft.ServerAddress(s.cfg.Addr), Suffrage: raft.Voter,
	}}})
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.campaignIfAlone()
	return nil
}

// WaitForLeader blocks until a leader is known or ctx ends.
func (s *Store) WaitForLeader(ctx context.Context) (string, error) {
	r, err := s.raftNode()
	if err != nil {
		return "", err
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if addr, _ := r.LeaderWithID(); addr != "" {
			return string(addr), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for leader: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Close stops Raft and closes the log and the database. With stepDown, a
// leader of a multi-node cluster first hands leadership to another voter.
func (s *Store) Close(stepDown bool) error {
	s.mu.Lock()
	if !s.open {
		s.mu.Unlock()
		return nil
	}
	s.open = false
	close(s.done)
	// Readers see a closed store from here on; the slow part (a leadership
	// transfer, Raft's shutdown) runs without s.mu, so nothing that only
	// wants to look at the store (GET /status) waits behind it.
	r, trans, logs, d, lock := s.raft, s.trans, s.boltLog, s.db, s.lock
	s.mu.Unlock()
	s.wg.Wait() // watch may be proposing; it needs s.mu shared
	if stepDown && r.State() == raft.Leader && numVoters(r) > 1 {
		if err := r.LeadershipTransfer().Error(); err != nil {
			s.logger.Warn("leadership transfer before shutdown failed", "error", err)
		}
	}
	// A statement being applied may run for long (up to the step limit):
	// stop it, so shutting down takes seconds. Nothing more is applied.
	d.Interrupt()
	var errs []error
	if err := r.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
	}
	errs = append(errs, trans.Close(), logs.Close(), d.Close(), lock.Close())
	s.logger.Info("store closed")
	return errors.Join(errs...)
}

// Interrupt stops a statement being applied or read at its next progress
// check, and every later one: for a shutdown that must not wait for a long
// statement. After it the store applies nothing more; only Close is of use.
// It is safe to call at any time.
func (s *Store) Interrupt() {
	s.mu.RLock()
	d := s.db
	s.mu.RUnlock()
	if d != nil {
		d.Interrupt()
	}
}

func numVoters(r *raft.Raft) int {
	m, err := latestMembership(r)
	if err != nil {
		return 0
	}
	return m.voters()
}

// Removed is closed when, with RemoveShutdown, this node has been removed
// from the cluster.
func (s *Store) Removed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.removed
}

// raftNode returns the running Raft node or ErrNotOpen.
func (s *Store) raftNode() (*raft.Raft, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.open {
		return nil, ErrNotOpen
	}
	return s.raft, nil
}

// ID returns this node's ID.
func (s *Store) ID() string { return s.cfg.NodeID }

// Addr returns this node's advertised Raft address.
func (s *Store) Addr() string { return s.cfg.Addr }

// IsLeader reports whether this node is the leader.
func (s *Store) IsLeader() bool {
	r, err := s.raftNode()
	return err == nil && r.State() == raft.Leader
}

// Leader returns the leader's ID and Raft address, empty if none is known.
func (s *Store) Leader() (id, addr string) {
	r, err := s.raftNode()
	if err != nil {
		return "", ""
	}
	a, i := r.LeaderWithID()
	return string(i), string(a)
}

// Servers returns the cluster configuration.
func (s *Store) Servers() ([]command.Server, error) {
	r, err := s.raftNode()
	if err != nil {
		return nil, err
	}
	m, err := latestMembership(r)
	if err != nil {
		return nil, err
	}
	return m.list(), nil
}

// Stepdown makes the leader hand leadership to another voter (to id, if
// not empty).
func (s *Store) Stepdown(id string) error {
	r, err := s.raftNode()
	if err != nil {
		return err
	}
	if r.State() != raft.Leader {
		return ErrNotLeader
	}
	var f raft.Future
	if id == "" {
		f = r.LeadershipTransfer()
	} else {
		m, err := s.members()
		if err != nil {
			return err
		}
		srv, ok := m.server(id)
		if !ok || srv.Address == "" {
			return fmt.Errorf("node %q is not a member of the cluster", id)
		}
		f = r.LeadershipTransferToServer(srv.ID, srv.Address)
	}
	return f.Error()
}
