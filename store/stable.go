package store

import (
	"fmt"

	"github.com/hashicorp/raft"
)

// stableStore stops the node with a clear message when Raft's term or vote
// cannot be written (a read-only or failing disk). hashicorp/raft panics
// then, rightly refusing to go on: a node that forgot its vote could vote
// twice in one term.
type stableStore struct {
	raft.StableStore
	fatal func(error) // Config.Fatal; nil leaves it to Raft's panic
}

func (s stableStore) failed(key []byte, err error) error {
	if err != nil && s.fatal != nil {
		s.fatal(fmt.Errorf("this node cannot record its Raft state (%s) and stops, since a node that forgot its term or vote could vote twice "+
			"(fix the data directory, then restart it): %w", key, err))
	}
	return err
}

// Set implements raft.StableStore.
func (s stableStore) Set(key, val []byte) error {
	return s.failed(key, s.StableStore.Set(key, val))
}

// SetUint64 implements raft.StableStore.
func (s stableStore) SetUint64(key []byte, val uint64) error {
	return s.failed(key, s.StableStore.SetUint64(key, val))
}
