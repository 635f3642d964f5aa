package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/db"
)

// propose replicates c and returns the FSM's response and the log index.
func (s *Store) propose(ctx context.Context, c *command.Command) (*fsmResponse, uint64, error) {
	r, err := s.raftNode()
	if err != nil {
		return nil, 0, err
	}
	if r.State() != raft.Leader {
		return nil, 0, ErrNotLeader
	}
	c.Time = time.Now()
	var seed [8]byte
	rand.Read(seed[:])
	c.Seed = binary.LittleEndian.Uint64(seed[:])
	// One allocation of exactly the entry's size: a large write is not
	// copied again as the buffer grows.
	b, err := command.Encode(nil, c)
	if err != nil {
		return nil, 0, err
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	f := r.Apply(b, timeout)
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			// Refused before the entry reached the log: safe to forward.
			return nil, 0, ErrNotLeader
		case errors.Is(err, raft.ErrLeadershipLost):
			// In the log, not committed: another leader may commit it.
			return nil, 0, command.ErrLeadershipLost
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, 0, fmt.Errorf("%w: write not committed within %v", ErrTimeout, timeout)
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, 0, ErrNotOpen
		}
		return nil, 0, err
	}
	resp := f.Response().(*fsmResponse)
	return resp, f.Index(), resp.err
}

// Execute replicates the write statements of req and returns one result per
// statement, plus the Raft index of the write.
func (s *Store) Execute(ctx context.Context, req *command.Request) ([]command.Result, uint64, error) {
	if err := db.CheckPragmas(req); err != nil {
		return nil, 0, err
	}
	resp, idx, err := s.propose(ctx, &command.Command{Type: command.TypeExecute, Request: *req})
	if err != nil {
		return nil, 0, err
	}
	return resp.results, idx, nil
}

// Query serves the read statements of req at the consistency level in opts.
// The index is set only for strong reads, which go through the log.
func (s *Store) Query(ctx context.Context, req *command.Request, opts command.QueryOptions) ([]command.Result, uint64, error) {
	return s.read(ctx, req, opts, db.ModeQuery, command.TypeQuery)
}

// Request serves a mix of reads and writes. A request with any write, or at
// level strong, goes through the log; otherwise it is a read at opts.Level.
func (s *Store) Request(ctx context.Context, req *command.Request, opts command.QueryOptions) ([]command.Result, uint64, error) {
	if err := db.CheckPragmas(req); err != nil {
		return nil, 0, err
	}
	ro, err := s.readOnly(ctx, req)
	if err != nil {
		return nil, 0, err
	}
	if !ro && opts.Level != command.Strong {
		opts.Level = command.Strong
	}
	return s.read(ctx, req, opts, db.ModeRequest, command.TypeRequest)
}

func (s *Store) readOnly(ctx context.Context, req *command.Request) (bool, error) {
	d, err := s.database()
	if err != nil {
		return false, err
	}
	return d.ReadOnly(ctx, req)
}

func (s *Store) database() (*db.DB, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.open {
		return nil, ErrNotOpen
	}
	return s.db, nil
}

func (s *Store) read(ctx context.Context, req *command.Request, opts command.QueryOptions, mode db.Mode, strongType command.Type) ([]command.Result, uint64, error) {
	if err := db.CheckPragmas(req); err != nil {
		return nil, 0, err
	}
	r, err := s.raftNode()
	if err != nil {
		return nil, 0, err
	}
	level := opts.Level
	if level == command.Auto {
		level = command.Weak
		if !s.isVoter() {
			level = command.None
		}
	}
	switch level {
	case command.Strong:
		resp, idx, err := s.propose(ctx, &command.Command{Type: strongType, Request: *req})
		if err != nil {
			return nil, 0, err
		}
		return resp.results, idx, nil
	case command.None:
		if opts.Freshness > 0 && r.State() != raft.Leader {
			if err := s.checkFresh(r, opts.Freshness, opts.FreshnessStrict); err != nil {
				return nil, 0, err
			}
		}
	case command.Weak:
		if r.State() != raft.Leader {
			return nil, 0, ErrNotLeader
		}
		if err := s.waitReady(ctx, opts.LinearizableTimeout); err != nil {
			return nil, 0, err
		}
	case command.Linearizable:
		if r.State() != raft.Leader {
			if err := s.followerReadIndex(ctx, opts.LinearizableTimeout); err != nil {
				return nil, 0, err
			}
			break
		}
		if err := s.readIndex(ctx, r, opts.LinearizableTimeout); err != nil {
			return nil, 0, err
		}
	}
	d, err := s.database()
	if err != nil {
		return nil, 0, err
	}
	if opts.DBTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.DBTimeout)
		defer cancel()
	}
	res, err := d.Query(ctx, mode, req)
	return res, 0, err
}

func (s *Store) checkFresh(r *raft.Raft, freshness time.Duration, strict bool) error {
	if time.Since(r.LastContact()) > freshness {
		return ErrStaleRead
	}
	if strict {
		applied, at := s.fsm.appliedIndex()
		if r.CommitIndex() > applied && time.Since(at) > freshness {
			return ErrStaleRead
		}
	}
	return nil
}

// readIndex implements Raft's read-index protocol (section 6.4 of the Raft
// thesis): note the commit index, confirm with a quorum that this node is
// still the leader, then wait until the state machine has applied everything
// up to the noted index.
func (s *Store) readIndex(ctx context.Context, r *raft.Raft, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	idx, err := s.confirmedIndex(ctx, r, deadline.C, "", 0)
	if err != nil {
		return err
	}
	return s.waitApplied(ctx, idx, deadline.C)
}

// confirmedIndex is the leader's half of the read-index protocol: the commit
// index, noted before a quorum confirmed that this node still leads. A new
// leader first waits until it has committed an entry of its own term, since
// until then its commit index may be behind. askerID and askerTerm name
// the follower the index is for and its term (see ReadIndex); empty and 0
// for a read on this node.
func (s *Store) confirmedIndex(ctx context.Context, r *raft.Raft, deadline <-chan time.Time, askerID string, askerTerm uint64) (uint64, error) {
	if r.State() != raft.Leader {
		return 0, ErrNotLeader
	}
	term := r.CurrentTerm()
	idx := r.CommitIndex()
	for !s.committedInTerm(idx, term) {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-deadline:
			return 0, fmt.Errorf("%w: leader has not committed an entry in its term", ErrTimeout)
		case <-time.After(time.Millisecond):
		}
		if r.State() != raft.Leader || r.CurrentTerm() != term {
			return 0, ErrNotLeader
		}
		idx = r.CommitIndex()
	}
	voters, selfVoter, askerVotes := s.voters(r, askerID)
	how := confirmationFor(voters, selfVoter, askerVotes, askerTerm, term)
	switch how {
	case confirmRefused:
		return 0, ErrNotLeader
	case confirmByRound:
		if err := r.VerifyLeader().Error(); err != nil {
			return 0, ErrNotLeader
		}
	default: // sole voter, or confirmed by the asker
		if r.State() != raft.Leader {
			return 0, ErrNotLeader
		}
	}
	s.readConfirms[how].Add(1)
	if r.CurrentTerm() != term {
		return 0, ErrStaleRead
	}
	return idx, nil
}

// confirmation is how a leader confirms that it still leads before it
// answers with a read index.
type confirmation int

const (
	// confirmRefused: this leader is removing itself (its latest
	// configuration no longer lists it as a voter). hashicorp/raft's
	// VerifyLeader would still count its own vote towards the remaining
	// voters' quorum, so with one voter left it would confirm without
	// asking anyone, while that voter may already have elected itself.
	confirmRefused confirmation = iota
	// confirmSoleVoter: no other node can lead while this one is the only
	// voter, so there is no quorum to ask (VerifyLeader would answer at
	// once, after a round trip through the leader loop).
	confirmSoleVoter
	// confirmByAsker: this leader and the asking voter are a majority, and
	// the asker was in this leader's term after its reads arrived; that
	// stands in for a round of heartbeats (the argument is on ReadIndex).
	confirmByAsker
	// confirmByRound: a round of heartbeats to the voters (VerifyLeader).
	confirmByRound
	numConfirmations
)

var confirmationNames = [numConfirmations]string{"refused", "sole_voter", "asker", "heartbeat_round"}

// confirmationFor decides how a leader in term with voters voters in its
// latest configuration confirms a read index. selfVoter: this node is one
// of them; askerVotes: the asking follower is another one (askerTerm is its
// term, 0 for a read on this node).
func confirmationFor(voters int, selfVoter, askerVotes bool, askerTerm, term uint64) confirmation {
	switch {
	case !selfVoter:
		return confirmRefused
	case voters == 1:
		return confirmSoleVoter
	case askerVotes && askerTerm == term && voters <= 3:
		return confirmByAsker
	default:
		return confirmByRound
	}
}

// readConfirmStats is the "read_confirmations" section of the store's
// stats: how many read indexes this node confirmed, and how.
func (s *Store) readConfirmStats() map[string]any {
	m := make(map[string]any, numConfirmations-1)
	for how := confirmSoleVoter; how < numConfirmations; how++ {
		m[confirmationNames[how]] = s.readConfirms[how].Load()
	}
	return m
}

// voters counts the voters in the latest configuration (the one Raft
// counts votes with, committed or not) and reports whether this node is
// one of them, and whether the node askerID (if not empty) is another one.
func (s *Store) voters(r *raft.Raft, askerID string) (n int, self, askerVotes bool) {
	m, err := latestMembership(r)
	if err != nil {
		return 0, false, false
	}
	return m.voters(), m.isVoter(s.cfg.NodeID), askerID != "" && askerID != s.cfg.NodeID && m.isVoter(askerID)
}

// waitApplied waits until this node's state machine reflects every entry
// up to idx. On a follower the entries may not be known to be committed
// yet: the wait starts once the local commit index has reached idx (the
// leader's confirmation round carries its commit index, so that is
// normally already the case).
func (s *Store) waitApplied(ctx context.Context, idx uint64, deadline <-chan time.Time) error {
	r, err := s.raftNode()
	if err != nil {
		return err
	}
	for r.CommitIndex() < idx {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("%w: index %d not committed here yet", ErrTimeout, idx)
		case <-time.After(time.Millisecond):
		}
	}
	target := s.fsm.lastStateChange(idx)
	select {
	case <-s.fsm.waitFor(target):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-deadline:
		return fmt.Errorf("%w: index %d: timeout waiting for fsm", ErrTimeout, target)
	}
}

// ReadIndex is the leader's answer to a follower's read-index call: the
// commit index confirmed by a quorum. A follower that has applied up to it
// can serve a linearizable read from its own database.
//
// askerID and askerTerm are the asking follower's Raft ID and the term it
// was in after the reads it serves arrived. When the asker is a voter in
// this leader's term and the two of them are a majority of the voters
// (three voters or fewer), the asker's term stands in for a round of
// heartbeats. The argument: a voter grants a vote only in the term it
// moves to first, so a voter still in term T has voted for no leader of a
// later term. This node, leading in term T, has not either. Every majority
// of the voters (of the latest configuration, and of the committed one
// before it, which differs from it by one server) holds this node or the
// asker, so no leader of a later term existed when the reads began, and
// what one commits afterwards is concurrent with them. The commit index noted now
// covers every write acknowledged before they began: by this node, or by
// an earlier leader (this node has committed an entry of its own term, so
// its commit index covers theirs).
//
// What this relies on in hashicorp/raft: a node sets its new term (stable
// store, then memory) before it grants a vote in it, pre-votes change no
// term, and the leader changes the configuration only once the previous
// change is committed. The asker's ID and term are taken as sent: a caller
// that lies about them (it needs the credentials for the call) only gets
// a weaker answer for its own reads.
func (s *Store) ReadIndex(ctx context.Context, askerID string, askerTerm uint64) (uint64, error) {
	r, err := s.raftNode()
	if err != nil {
		return 0, err
	}
	timeout := s.cfg.ApplyTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	return s.confirmedIndex(ctx, r, deadline.C, askerID, askerTerm)
}

// Ready reports whether the local database reflects at least everything
// this node's log held when it started (after a restart, the log is
// replayed once the node has a leader).
func (s *Store) Ready() bool {
	if s.caughtUp.Load() {
		return true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.open {
		return false
	}
	applied, _ := s.fsm.appliedIndex()
	ok := applied >= s.bootIndex || applied >= s.fsm.lastStateChange(s.bootIndex)
	if ok {
		s.caughtUp.Store(true) // once caught up, the start-up log is never un-applied
	}
	return ok
}

// waitReady waits (at most timeout, default 10s) until Ready.
func (s *Store) waitReady(ctx context.Context, timeout time.Duration) error {
	if s.Ready() {
		return nil
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	s.mu.RLock()
	target := s.fsm.lastStateChange(s.bootIndex)
	f := s.fsm
	s.mu.RUnlock()
	select {
	case <-f.waitFor(target):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return fmt.Errorf("%w: the log is still being replayed (index %d)", ErrTimeout, target)
	}
}

// committedInTerm reports whether the entry at idx belongs to term.
func (s *Store) committedInTerm(idx, term uint64) bool {
	var l raft.Log
	if err := s.fsm.logs.GetLog(idx, &l); err != nil {
		return false
	}
	return l.Term == term
}

func (s *Store) isVoter() bool {
	m, err := s.members()
	return err == nil && m.isVoter(s.cfg.NodeID)
}

// Load replaces the database with the SQLite file image in data, through
// the log so every node loads it. The image is checked first (header, size,
// quick_check, see db.CheckFile), so a damaged or truncated file is refused
// with an error wrapping db.ErrNotSQLite and never reaches the log. For a
// file of any size, see LoadFrom.
func (s *Store) Load(ctx context.Context, data []byte) (uint64, error) {
	if !db.IsSQLiteFile(data) {
		return 0, db.ErrNotSQLite
	}
	tmp, err := s.leaderScratch()
	if err != nil {
		return 0, err
	}
	p, err := writeTemp(tmp, "check-*.db", func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return 0, err
	}
	err = db.CheckFile(p)
	os.Remove(p)
	if err != nil {
		return 0, err
	}
	_, idx, err := s.propose(ctx, &command.Command{Type: command.TypeLoad, Data: data})
	return idx, err
}

// Backup writes a consistent copy of the database to w.
func (s *Store) Backup(ctx context.Context, w io.Writer, opts command.BackupOptions) error {
	if !opts.NoLeader && !s.IsLeader() {
		return ErrNotLeader
	}
	if err := s.waitReady(ctx, 0); err != nil {
		return err
	}
	d, err := s.database()
	if err != nil {
		return err
	}
	if opts.Format == command.BackupSQL {
		return d.Dump(ctx, w, opts.Tables)
	}
	p, err := tempName(s.fsm.tmp, "backup-*.db")
	if err != nil {
		return err
	}
	defer os.Remove(p)
	if err := d.BackupTo(ctx, p, opts.Vacuum); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// Snapshot forces a snapshot and log truncation, keeping trailing entries
// in the log (0: the configured TrailingLogs).
func (s *Store) Snapshot(trailing uint64) error {
	r, err := s.raftNode()
	if err != nil {
		return err
	}
	// Raft's no-op entries never reach the FSM, so compare with the FSM's
	// own index: nothing new means no command since the last snapshot.
	applied, _ := s.fsm.appliedIndex()
	if snaps, err := s.snaps.List(); err == nil && len(snaps) > 0 && snaps[0].Index >= applied {
		return ErrNothingNew
	}
	if trailing > 0 {
		rc := r.ReloadableConfig()
		old := rc.TrailingLogs
		rc.TrailingLogs = trailing
		if err := r.ReloadConfig(rc); err != nil {
			return err
		}
		defer func() {
			rc.TrailingLogs = old
			r.ReloadConfig(rc)
		}()
	}
	if err := r.Snapshot().Error(); err != nil {
		if errors.Is(err, raft.ErrNothingNewToSnapshot) {
			return ErrNothingNew
		}
		return err
	}
	return nil
}
