package db

import (
	"context"
	"errors"

	"github.com/mattn/go-sqlite3"
)

// ErrEnvironment is returned by Apply when SQLite failed for a reason
// outside the statements (the disk is full, an I/O error, the file is
// damaged or cannot be opened or written). Other replicas applied the same
// entry without it, so a node that carried on would hold different data:
// the caller must stop applying (see store's fatal handling).
var ErrEnvironment = errors.New("SQLite could not apply a write for a reason outside the statement")

// envSlot records the first environment error met while applying one
// entry.
type envSlot struct{ err error }

type envKey struct{}

func withEnvSlot(ctx context.Context) (context.Context, *envSlot) {
	s := &envSlot{}
	return context.WithValue(ctx, envKey{}, s), s
}

// isEnvironment reports whether err is SQLite failing outside the
// statement. Out-of-memory is left out on purpose: a statement can cause
// it alike on every replica, and stopping every node on it would let one
// request take the whole cluster down.
func isEnvironment(err error) bool {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrFull, sqlite3.ErrIoErr, sqlite3.ErrCantOpen, sqlite3.ErrCorrupt,
		sqlite3.ErrNotADB, sqlite3.ErrReadonly, sqlite3.ErrProtocol:
		return true
	}
	return false
}

// errText returns the text of a statement error for its result, noting an
// environment error in ctx's slot, if it has one.
func errText(ctx context.Context, err error) string {
	if s, ok := ctx.Value(envKey{}).(*envSlot); ok && s.err == nil && isEnvironment(err) {
		s.err = err
	}
	return err.Error()
}
