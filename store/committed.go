package store

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Committed waits (at most timeout) until this node's database reflects
// every entry the leader had committed when it was called, and returns
// that index. The leader uses its own commit index; a follower asks the
// leader for its confirmed commit index (see ReadIndex) and, without a
// ReadIndexer, uses the commit index it has heard of.
func (s *Store) Committed(ctx context.Context, timeout time.Duration) (uint64, error) {
	r, err := s.raftNode()
	if err != nil {
		return 0, err
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	idx, err := s.leaderCommitIndex(dctx, r)
	if err != nil {
		return 0, fmt.Errorf("leader commit index: %w", err)
	}
	if err := s.waitApplied(ctx, idx, deadline.C); err != nil {
		return idx, fmt.Errorf("waiting for index %d: %w", idx, err)
	}
	return idx, nil
}

func (s *Store) leaderCommitIndex(ctx context.Context, r *raft.Raft) (uint64, error) {
	if r.State() == raft.Leader || s.cfg.ReadIndexer == nil {
		return r.CommitIndex(), nil
	}
	leader, _ := r.LeaderWithID()
	if leader == "" {
		return 0, ErrNotLeader
	}
	return s.cfg.ReadIndexer.ReadIndex(ctx, string(leader), s.cfg.NodeID, r.CurrentTerm())
}
