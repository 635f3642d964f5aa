// Package command defines the requests and results that rqlited replicates
// through the Raft log, and their compact binary encoding.
//
// The package is a leaf: it imports only the standard library, so every other
// package (db, store, http, cluster) can share these types.
package command

import (
	"time"
)

// Type identifies what a replicated Command does.
type Type uint8

// Command types. Values are part of the on-disk log format: never renumber.
const (
	// TypeExecute runs write statements (from /db/execute or queued writes).
	TypeExecute Type = 1
	// TypeQuery runs read statements through the log (level=strong).
	TypeQuery Type = 2
	// TypeRequest runs a mix of reads and writes (/db/request).
	TypeRequest Type = 3
	// TypeLoad replaces the whole database with the SQLite file in Data.
	TypeLoad Type = 4
	// TypeNoop changes nothing; it is used to commit an entry in a new term.
	TypeNoop Type = 5
	// TypeClusterID records the cluster's identity (in Data). Only the
	// first one in the log takes effect.
	TypeClusterID Type = 6
)

// String returns the lower-case name of the type.
func (t Type) String() string {
	switch t {
	case TypeExecute:
		return "execute"
	case TypeQuery:
		return "query"
	case TypeRequest:
		return "request"
	case TypeLoad:
		return "load"
	case TypeNoop:
		return "noop"
	case TypeClusterID:
		return "cluster-id"
	default:
		return "unknown"
	}
}

// Parameter is one bound value of a statement. Name is empty for positional
// parameters. Value is nil, int64, float64, bool, string or []byte.
type Parameter struct {
	Name  string
	Value any
}

// Statement is one SQL statement with its parameters.
type Statement struct {
	SQL        string
	Parameters []Parameter
}

// Request is an ordered list of statements run together.
type Request struct {
	Statements []Statement
	// Transaction runs every statement in one SQLite transaction: the first
	// error rolls back the request and later statements do not run.
	Transaction bool
}

// Command is one entry of the replicated log.
type Command struct {
	Type Type
	// Time is the leader's clock when the command was proposed. Every replica
	// uses it as SQLite's "now" while applying the command, so time functions
	// store the same value everywhere.
	Time time.Time
	// Seed seeds random() and randomblob() while applying the command, for the
	// same reason.
	Seed uint64
	// Request holds the statements of execute, query and request commands.
	Request Request
	// Data holds the SQLite database image of a load command.
	Data []byte
}

// Result is the outcome of one statement. A write fills LastInsertID and
// RowsAffected; a read (or a write with RETURNING) fills Columns, Types and
// Values. Error is set, and nothing else, when the statement failed.
type Result struct {
	LastInsertID int64
	RowsAffected int64

	// IsQuery reports that the statement returned rows (Columns is set).
	IsQuery bool
	Columns []string
	Types   []string
	// Values holds one slice per row. Cells are nil, int64, float64, bool,
	// string or []byte.
	Values [][]any

	Error string
	// Time is how long the statement took, in seconds.
	Time float64
}
