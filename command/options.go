package command

import (
	"errors"
	"fmt"
	"time"
)

// Errors shared by the packages that serve requests (store, http, cluster),
// so each can test for them with errors.Is without importing the others.
var (
	// ErrNotLeader is returned when an operation needs the leader.
	ErrNotLeader = errors.New("not leader")
	// ErrStaleRead is returned when a read cannot meet its freshness bound
	// or leadership changed while it was served.
	ErrStaleRead = errors.New("stale read")
	// ErrDisallowedPragma is returned for requests with a PRAGMA that would
	// break replication or durability (journal_mode, synchronous, ...).
	ErrDisallowedPragma = errors.New("disallowed pragma")
	// ErrNothingNew is returned by a snapshot request when nothing changed
	// since the last snapshot.
	ErrNothingNew = errors.New("nothing new to snapshot")
	// ErrTimeout is returned when an operation did not finish in time.
	ErrTimeout = errors.New("timeout")
	// ErrLeadershipLost is returned when the leader lost leadership after
	// appending a write to its log but before the write committed: the new
	// leader may still commit it, so the outcome is unknown. Such a write
	// must not be retried or forwarded automatically (it could apply twice).
	ErrLeadershipLost = errors.New("leadership lost while the write was in flight: it may or may not have been applied")
	// ErrNotSQLite is returned for a load whose data is not a SQLite file.
	ErrNotSQLite = errors.New("invalid SQLite data")
	// ErrNodeNotFound is returned when removing a node that is not a member.
	ErrNodeNotFound = errors.New("node not found")
	// ErrClusterMismatch is returned when a node with state asks to join a
	// cluster other than its own.
	ErrClusterMismatch = errors.New("node belongs to a different cluster")
	// ErrBootTimeout is returned when no cluster was formed or joined before
	// -bootstrap-expect-timeout.
	ErrBootTimeout = errors.New("boot timeout: no cluster was formed or joined in time")
)

// BootTimeout returns ErrBootTimeout with the deadline and, if there was
// one, the last problem seen while waiting.
func BootTimeout(timeout time.Duration, lastProblem string) error {
	if lastProblem != "" {
		return fmt.Errorf("%w after %v (last problem: %s)", ErrBootTimeout, timeout, lastProblem)
	}
	return fmt.Errorf("%w after %v", ErrBootTimeout, timeout)
}

// QueryOptions control how a read is served.
type QueryOptions struct {
	Level Level
	// Freshness bounds staleness for level None on a follower: the read
	// fails with ErrStaleRead if the leader was last heard from longer ago.
	Freshness time.Duration
	// FreshnessStrict also fails the read if this node knows of committed
	// entries it has not applied and its last apply is older than Freshness.
	FreshnessStrict bool
	// DBTimeout interrupts local SQLite reads that run longer (0: no limit).
	DBTimeout time.Duration
	// LinearizableTimeout bounds the wait for the state machine to catch up
	// with the read index (0: 10s).
	LinearizableTimeout time.Duration
}

// BackupFormat selects what a backup writes.
type BackupFormat int

const (
	// BackupBinary is a SQLite database file.
	BackupBinary BackupFormat = iota
	// BackupSQL is a SQL text dump.
	BackupSQL
)

// BackupOptions control a backup.
type BackupOptions struct {
	Format BackupFormat
	// Vacuum makes a binary backup as small as possible.
	Vacuum bool
	// Tables limits a SQL dump to these tables.
	Tables []string
	// NoLeader serves the backup from this node even if it is a follower.
	NoLeader bool
}

// Server is one member of the cluster configuration.
type Server struct {
	ID    string
	Addr  string // Raft address
	Voter bool
}
