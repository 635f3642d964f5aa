package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ReadIndexer asks the leader at leaderAddr (its Raft address) for a read
// index: its commit index, confirmed by a quorum as the index of the
// current leader. id and term are the asking node's Raft ID and current
// term (see Store.ReadIndex for how the leader uses them). cluster.Client
// satisfies it.
type ReadIndexer interface {
	ReadIndex(ctx context.Context, leaderAddr, id string, term uint64) (uint64, error)
}

// readIndexCall is one read-index call to the leader, shared by every
// linearizable read that arrived before it started.
type readIndexCall struct {
	done chan struct{}
	idx  uint64
	err  error
}

// followerReads serves linearizable reads on a follower from its own
// database: one call to the leader for a read index, a wait until this node
// has applied up to it, then a local query. Reads that arrive while a call
// is in flight share the next one, which starts after all of them arrived:
// sharing a call that started earlier could miss a write acknowledged
// between its start and a read's arrival.
type followerReads struct {
	mu      sync.Mutex
	next    *readIndexCall
	running int // calls in flight, at most maxReadIndexCalls

	local    atomic.Uint64 // reads served here
	calls    atomic.Uint64 // read-index calls made
	fallback atomic.Uint64 // reads sent to the leader instead
}

// maxReadIndexCalls is how many read-index calls may be in flight at once.
// One gives the largest batches; two (measured) gave smaller batches and
// no more reads per second, the machine being CPU-bound by then.
const maxReadIndexCalls = 1

// followerReadIndex makes the local database current enough for a
// linearizable read. Any failure (no ReadIndexer configured, the leader
// unreachable or refusing) returns ErrNotLeader, so the read is forwarded
// to the leader as it would be without this path.
func (s *Store) followerReadIndex(ctx context.Context, timeout time.Duration) error {
	if s.cfg.ReadIndexer == nil {
		return ErrNotLeader
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	f := &s.followerReads
	f.mu.Lock()
	c := f.next
	if c == nil {
		c = &readIndexCall{done: make(chan struct{})}
		f.next = c
	}
	if f.running < maxReadIndexCalls {
		s.mu.RLock()
		if !s.open {
			s.mu.RUnlock()
			f.mu.Unlock()
			return ErrNotOpen
		}
		f.running++
		s.wg.Add(1)
		go s.runReadIndexCalls(s.done)
		s.mu.RUnlock()
	}
	f.mu.Unlock()

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	case <-deadline.C:
		f.fallback.Add(1)
		return ErrNotLeader
	}
	if c.err != nil {
		f.fallback.Add(1)
		if errors.Is(c.err, context.Canceled) && ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrNotLeader
	}
	if err := s.waitApplied(ctx, c.idx, deadline.C); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.fallback.Add(1)
		return ErrNotLeader
	}
	f.local.Add(1)
	return nil
}

// runReadIndexCalls makes read-index calls while reads wait for one. It is
// started by the first waiting read and ends when none is left; Close
// waits for it.
func (s *Store) runReadIndexCalls(done <-chan struct{}) {
	// Each call has its own bound, not the first read's: a read with a
	// short linearizable_timeout must not cut the others' call short.
	timeout := s.cfg.ApplyTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	defer s.wg.Done()
	f := &s.followerReads
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // ends with this function (cancel) or the store
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		f.mu.Lock()
		c := f.next
		if c == nil {
			f.running--
			f.mu.Unlock()
			return
		}
		f.next = nil
		f.mu.Unlock()

		// The term is read after every read sharing this call arrived:
		// it tells the leader that this node had voted for no later
		// leader by then.
		_, leader := s.Leader()
		r, err := s.raftNode()
		switch {
		case err != nil:
			c.err = err
		case leader == "":
			c.err = ErrNotLeader
		case leader == s.Addr():
			c.err = ErrNotLeader // became leader: the read takes the leader path
		default:
			term := r.CurrentTerm()
			cctx, ccancel := context.WithTimeout(ctx, timeout)
			c.idx, c.err = s.cfg.ReadIndexer.ReadIndex(cctx, leader, s.cfg.NodeID, term)
			ccancel()
			f.calls.Add(1)
		}
		close(c.done)
	}
}

// followerReadStats is the "follower_reads" section of the store's stats.
func (s *Store) followerReadStats() map[string]any {
	f := &s.followerReads
	return map[string]any{
		"enabled":          s.cfg.ReadIndexer != nil,
		"served_locally":   f.local.Load(),
		"read_index_calls": f.calls.Load(),
		"forwarded":        f.fallback.Load(),
	}
}
