package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/command"
)

// membership is one Raft configuration, read once. Every question the
// store asks of a configuration (who is in it, who votes, how many vote)
// goes through it, instead of each caller scanning the server list.
type membership struct{ servers []raft.Server }

// latestMembership reads r's latest configuration: committed or not, the
// one Raft counts votes with.
func latestMembership(r *raft.Raft) (membership, error) {
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return membership{}, err
	}
	return membership{servers: f.Configuration().Servers}, nil
}

// members returns the running node's latest configuration.
func (s *Store) members() (membership, error) {
	r, err := s.raftNode()
	if err != nil {
		return membership{}, err
	}
	return latestMembership(r)
}

// server returns the entry of the member id.
func (m membership) server(id string) (raft.Server, bool) {
	for _, srv := range m.servers {
		if string(srv.ID) == id {
			return srv, true
		}
	}
	return raft.Server{}, false
}

// has reports whether id is a member.
func (m membership) has(id string) bool {
	_, ok := m.server(id)
	return ok
}

// isVoter reports whether id is a member with a vote.
func (m membership) isVoter(id string) bool {
	srv, ok := m.server(id)
	return ok && srv.Suffrage == raft.Voter
}

// voters counts the members with a vote.
func (m membership) voters() int {
	n := 0
	for _, srv := range m.servers {
		if srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}

// list returns the members as the command package describes them (nil if
// there are none).
func (m membership) list() []command.Server {
	var out []command.Server
	for _, srv := range m.servers {
		out = append(out, command.Server{ID: string(srv.ID), Addr: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
	}
	return out
}

// Term returns the current Raft term (0 if the store is not open).
func (s *Store) Term() uint64 {
	r, err := s.raftNode()
	if err != nil {
		return 0
	}
	return r.CurrentTerm()
}

// ClusterID returns the identity of the cluster this node belongs to, empty
// until the first leader has committed one.
func (s *Store) ClusterID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fsm == nil {
		return ""
	}
	return s.fsm.getClusterID()
}

// newClusterID returns a random 128-bit ID in UUID form.
func newClusterID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Bootstrap forms a new cluster of exactly servers, if this node has no
// state. Every node of a bootstrap-expect set calls it with the same list,
// which is how they all end up in one cluster.
func (s *Store) Bootstrap(servers []command.Server) error {
	r, err := s.raftNode()
	if err != nil {
		return err
	}
	cfg := raft.Configuration{}
	for _, srv := range servers {
		suf := raft.Voter
		if !srv.Voter {
			suf = raft.Nonvoter
		}
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(srv.ID), Address: raft.ServerAddress(srv.Addr), Suffrage: suf})
	}
	if err := r.BootstrapCluster(cfg).Error(); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	s.logger.Info("bootstrapped new cluster", "servers", len(servers))
	// One member, the voter with the lowest ID, starts the first election
	// at once, so a new cluster has a leader in milliseconds rather than
	// after a heartbeat timeout of one to two seconds.
	lowest := ""
	for _, srv := range servers {
		if srv.Voter && (lowest == "" || srv.ID < lowest) {
			lowest = srv.ID
		}
	}
	if lowest == s.cfg.NodeID {
		s.campaign()
	}
	return nil
}

// campaign makes this node start an election now, by sending itself the
// TimeoutNow message Raft uses for leadership transfer. It is only used
// when no leader exists: on a cluster that was just bootstrapped, or on a
// single-voter cluster that restarts. Raft's voting rules keep it safe.
func (s *Store) campaign() {
	if _, leader := s.Leader(); leader != "" {
		return
	}
	var resp raft.TimeoutNowResponse
	req := &raft.TimeoutNowRequest{RPCHeader: raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(s.cfg.NodeID), Addr: []byte(s.cfg.Addr)}}
	if err := s.trans.TimeoutNow(raft.ServerID(s.cfg.NodeID), raft.ServerAddress(s.cfg.Addr), req, &resp); err != nil {
		s.logger.Debug("could not start an early election", "error", err)
	}
}

// campaignIfAlone starts an election at once if this node is the only
// voter of its cluster (a single-node cluster restarting).
func (s *Store) campaignIfAlone() {
	m, err := s.members()
	if err != nil {
		return
	}
	if m.voters() == 1 && m.isVoter(s.cfg.NodeID) {
		s.campaign()
	}
}

// Join adds the node id at addr to the cluster. It must run on the leader.
// Joining is idempotent: a member with the same ID and address is left as it
// is; the same ID at a new address (or a new ID at a known address) replaces
// the old entry. A node that already belongs to another cluster (clusterID
// set and different) is refused.
func (s *Store) Join(id, addr string, voter bool, clusterID string) error {
	r, err := s.raftNode()
	if err != nil {
		return err
	}
	if r.State() != raft.Leader {
		return ErrNotLeader
	}
	if mine := s.ClusterID(); clusterID != "" && mine != "" && clusterID != mine {
		return fmt.Errorf("%w: the joining node is in cluster %s, this is cluster %s", command.ErrClusterMismatch, clusterID, mine)
	}
	m, err := latestMembership(r)
	if err != nil {
		return err
	}
	for _, srv := range m.servers {
		sameID, sameAddr := string(srv.ID) == id, string(srv.Address) == addr
		if !sameID && !sameAddr {
			continue
		}
		if sameID && sameAddr && (srv.Suffrage == raft.Voter) == voter {
			s.logger.Info("join: node is already a member", "node-id", id, "addr", addr)
			storeVars.Add("num_ignored_joins", 1)
			return nil
		}
		if srv.ID == raft.ServerID(s.cfg.NodeID) {
			return fmt.Errorf("address %s belongs to the leader (%s): a joining node needs its own address", addr, s.cfg.NodeID)
		}
		if err := r.RemoveServer(srv.ID, 0, 0).Error(); err != nil {
			return fmt.Errorf("remove old entry of %s before join: %w", srv.ID, err)
		}
		s.logger.Info("join: replaced old entry", "node-id", srv.ID, "old-addr", srv.Address, "new-addr", addr)
	}
	var af raft.IndexFuture
	if voter {
		af = r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0)
	} else {
		af = r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 0)
	}
	if err := af.Error(); err != nil {
		if err == raft.ErrNotLeader {
			return ErrNotLeader
		}
		return fmt.Errorf("add %s: %w", id, err)
	}
	s.logger.Info("node joined", "node-id", id, "addr", addr, "voter", voter)
	storeVars.Add("num_joins", 1)
	return nil
}

// Remove takes the node id out of the cluster. It must run on the leader.
func (s *Store) Remove(id string) error {
	r, err := s.raftNode()
	if err != nil {
		return err
	}
	if r.State() != raft.Leader {
		return ErrNotLeader
	}
	m, err := s.members()
	if err != nil {
		return err
	}
	if !m.has(id) {
		return fmt.Errorf("%w: %s", command.ErrNodeNotFound, id)
	}
	if err := r.RemoveServer(raft.ServerID(id), 0, 0).Error(); err != nil {
		if err == raft.ErrNotLeader {
			return ErrNotLeader
		}
		return fmt.Errorf("remove %s: %w", id, err)
	}
	s.logger.Info("node removed", "node-id", id)
	return nil
}

// IsMember reports whether id is in the cluster configuration.
func (s *Store) IsMember(id string) bool {
	m, err := s.members()
	return err == nil && m.has(id)
}

// watch runs on its own goroutine while the store is open. As leader it
// makes sure the cluster has an ID, and it reaps nodes unreachable for
// longer than the configured timeouts.
func (s *Store) watch(r *raft.Raft, done <-chan struct{}) {
	obsCh := make(chan raft.Observation, 64)
	obs := raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation, raft.LeaderObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(obs)
	defer r.DeregisterObserver(obs)
	failing := map[raft.ServerID]time.Time{} // peer -> last contact
	wasMember := false
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case o := <-obsCh:
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				storeVars.Add("failed_heartbeat_observed", 1)
				if _, ok := failing[d.PeerID]; !ok {
					failing[d.PeerID] = d.LastContact
				}
			case raft.ResumedHeartbeatObservation:
				delete(failing, d.PeerID)
			}
			if _, ok := o.Data.(raft.LeaderObservation); !ok {
				continue
			}
			storeVars.Add("leader_changes_observed", 1)
			// A new leader records the cluster ID at once rather than at
			// the next tick: a client may write (or snapshot) already.
		case <-t.C:
		}
		if s.cfg.RemoveShutdown {
			member := s.IsMember(s.cfg.NodeID)
			if wasMember && !member {
				s.logger.Warn("this node was removed from the cluster: shutting down (-raft-remove-shutdown)")
				close(s.removed)
				return
			}
			wasMember = wasMember || member
		}
		if r.State() != raft.Leader {
			clear(failing)
			if addr, _ := r.LeaderWithID(); addr != "" {
				// A leader exists: it records members' new addresses, and
				// a learnt address could only go stale here from now on.
				s.addrs.clear()
			}
			continue
		}
		if s.fsm.getClusterID() == "" {
			c := &command.Command{Type: command.TypeClusterID, Data: []byte(newClusterID())}
			if _, _, err := s.propose(context.Background(), c); err != nil {
				s.logger.Warn("could not record cluster ID", "error", err)
			}
		}
		s.fixAddresses(r)
		s.reap(failing)
	}
}

// reap removes peers that have failed heartbeats for longer than the reap
// timeout of their kind (voter or read replica), if that timeout is set.
func (s *Store) reap(failing map[raft.ServerID]time.Time) {
	if len(failing) == 0 || (s.cfg.ReapTimeout == 0 && s.cfg.ReapReadOnlyTimeout == 0) {
		return
	}
	m, err := s.members()
	if err != nil {
		return
	}
	for _, srv := range m.list() {
		last, ok := failing[raft.ServerID(srv.ID)]
		if !ok {
			continue
		}
		timeout := s.cfg.ReapTimeout
		if !srv.Voter {
			timeout = s.cfg.ReapReadOnlyTimeout
		}
		if timeout == 0 || time.Since(last) < timeout {
			continue
		}
		s.logger.Warn("reaping unreachable node", "node-id", srv.ID, "voter", srv.Voter, "last-contact", last)
		if err := s.Remove(srv.ID); err != nil {
			s.logger.Warn("reap failed", "node-id", srv.ID, "error", err)
			storeVars.Add("nodes_reaped_failed", 1)
			continue
		}
		storeVars.Add("nodes_reaped_ok", 1)
		delete(failing, raft.ServerID(srv.ID))
	}
}
