package store

import (
	"errors"
	"sync"

	"github.com/hashicorp/raft"
)

var errNoLearntAddr = errors.New("server not in the configuration")

// addrBook holds addresses of cluster members learnt outside the Raft
// configuration: when every node of a cluster comes back at a new address,
// each configuration still lists the old ones, so no vote request reaches
// anyone and no leader can be elected to record the new addresses. The
// transport dials an address from the book before the configured one; once
// a leader is elected it rewrites the configuration, and the entry goes.
type addrBook struct {
	mu sync.RWMutex
	m  map[raft.ServerID]raft.ServerAddress
	r  *raft.Raft // set once Raft runs; the configuration's addresses
	// This node (Raft encodes its own address through the provider too,
	// also before the configuration lists it).
	selfID   raft.ServerID
	selfAddr raft.ServerAddress
}

// ServerAddr implements raft.ServerAddressProvider: a learnt address, else
// the one in the latest configuration. (An error would also make the
// transport use the configured address, but it logs a warning each time.)
func (b *addrBook) ServerAddr(id raft.ServerID) (raft.ServerAddress, error) {
	b.mu.RLock()
	a, ok := b.m[id]
	r, selfID, selfAddr := b.r, b.selfID, b.selfAddr
	b.mu.RUnlock()
	if id == selfID && selfAddr != "" {
		return selfAddr, nil
	}
	if !ok && r != nil {
		if m, err := latestMembership(r); err == nil {
			if srv, found := m.server(string(id)); found {
				a, ok = srv.Address, true
			}
		}
		if ok && b.learntElsewhere(id, a) {
			// The configured address is where another member was found:
			// this one is not there any more, and asking it twice would
			// count that member's vote twice.
			return unreachable, nil
		}
	}
	if !ok {
		return "", errNoLearntAddr
	}
	if a == selfAddr {
		// Another member's (old) address is now this node's: dialling it
		// would reach this node, which would grant itself that member's
		// vote (hashicorp/raft grants a repeated vote to the same
		// candidate), so one node could elect itself alone. Nodes that
		// swap addresses make this happen.
		return unreachable, nil
	}
	return a, nil
}

// unreachable is an address no dial can reach (the mux refuses it at once:
// port 0), given for a member whose address is this node's own.
const unreachable = raft.ServerAddress("0.0.0.0:0")

// learntElsewhere reports whether addr was learnt for a member other than id.
func (b *addrBook) learntElsewhere(id raft.ServerID, addr raft.ServerAddress) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for other, a := range b.m {
		if other != id && a == addr {
			return true
		}
	}
	return false
}

func (b *addrBook) setRaft(r *raft.Raft) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.r = r
}

func (b *addrBook) setSelf(id, addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.selfID, b.selfAddr = raft.ServerID(id), raft.ServerAddress(addr)
}

func (b *addrBook) clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.m)
}

func (b *addrBook) set(id raft.ServerID, addr raft.ServerAddress) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[raft.ServerID]raft.ServerAddress{}
	}
	if b.m[id] == addr {
		return false
	}
	b.m[id] = addr
	return true
}

func (b *addrBook) drop(id raft.ServerID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, id)
}

func (b *addrBook) entries() map[raft.ServerID]raft.ServerAddress {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make(map[raft.ServerID]raft.ServerAddress, len(b.m))
	for k, v := range b.m {
		out[k] = v
	}
	return out
}

// LearnPeer records that the member with Raft ID id now answers at addr
// (found through discovery while the configuration still has another
// address for it). It reports whether that was news. IDs that are not in
// the configuration, and this node's own ID, are ignored.
func (s *Store) LearnPeer(id, addr string) bool {
	r, err := s.raftNode()
	if err != nil || id == "" || addr == "" || id == s.cfg.NodeID {
		return false
	}
	m, err := latestMembership(r)
	if err != nil {
		return false
	}
	srv, ok := m.server(id)
	if !ok {
		return false
	}
	if string(srv.Address) == addr {
		s.addrs.drop(srv.ID)
		return false
	}
	return s.addrs.set(srv.ID, raft.ServerAddress(addr))
}

// fixAddresses runs on the leader: it rewrites configuration entries whose
// member was found at another address (see addrBook), including this
// node's own entry if it came back at a new address.
func (s *Store) fixAddresses(r *raft.Raft) {
	m, err := latestMembership(r)
	if err != nil {
		return
	}
	book := s.addrs.entries()
	for _, srv := range m.servers {
		want := book[srv.ID]
		if srv.ID == raft.ServerID(s.cfg.NodeID) {
			want = raft.ServerAddress(s.cfg.Addr)
		}
		if want == "" {
			continue
		}
		if want == srv.Address {
			s.addrs.drop(srv.ID)
			continue
		}
		var err error
		switch {
		case srv.ID == raft.ServerID(s.cfg.NodeID):
			// No replication runs to the leader itself, so its entry can
			// be rewritten in place.
			err = r.AddVoter(srv.ID, want, 0, s.cfg.ApplyTimeout).Error()
		default:
			// Remove and add again: rewriting the address of a peer that
			// is being replicated to races in hashicorp/raft 1.7
			// (startStopReplication writes the peer while the replication
			// goroutine reads it). Not through Join, which also drops any
			// other member at the new address: with nodes that swapped
			// addresses, that member is alive and only waits for its own
			// entry to be rewritten.
			err = r.RemoveServer(srv.ID, 0, s.cfg.ApplyTimeout).Error()
			if err == nil {
				if srv.Suffrage == raft.Voter {
					err = r.AddVoter(srv.ID, want, 0, s.cfg.ApplyTimeout).Error()
				} else {
					err = r.AddNonvoter(srv.ID, want, 0, s.cfg.ApplyTimeout).Error()
				}
			}
		}
		if err != nil {
			s.logger.Warn("could not record a member's new address", "id", srv.ID, "old", srv.Address, "new", want, "error", err)
			return
		}
		s.logger.Info("recorded a member's new address", "id", srv.ID, "old", srv.Address, "new", want)
		s.addrs.drop(srv.ID)
	}
}
