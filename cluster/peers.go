package cluster

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// PeerBook is what the PeerFinder needs from the store.
type PeerBook interface {
	// ClusterID is this node's cluster ID, empty if it has none.
	ClusterID() string
	// Leader returns the leader's ID and Raft address, empty if unknown.
	Leader() (id, addr string)
	// LearnPeer records that member id now answers at addr; it reports
	// whether that was news.
	LearnPeer(id, addr string) bool
}

// PeerFinder looks for the members of this node's cluster at the addresses
// discovery gives (the -join list, DNS records) while the node has no
// leader, and tells the store where each member answers now. It is what
// lets a cluster whose nodes all came back at new addresses elect a leader:
// their Raft configurations still hold the old addresses.
type PeerFinder struct {
	Book      PeerBook
	Client    *Client
	HTTP      *http.Client
	Addresses AddressProvider
	Self      string // this node's Raft ID
	// Interval between rounds while there is no leader (default 1s).
	Interval time.Duration
	Logger   *slog.Logger
}

// Run looks for peers whenever there is no leader, until ctx ends.
func (p *PeerFinder) Run(ctx context.Context) {
	interval := p.Interval
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, leader := p.Book.Leader(); leader != "" {
			continue
		}
		p.round(ctx, interval)
	}
}

// round asks every discovered address who answers there.
func (p *PeerFinder) round(ctx context.Context, timeout time.Duration) {
	cid := p.Book.ClusterID()
	if cid == "" {
		return
	}
	targets, err := p.Addresses.Lookup(ctx)
	if err != nil {
		return
	}
	for _, t := range targets {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		addr, err := ResolveTarget(cctx, p.HTTP, t)
		var id, raftAddr, peerCID string
		if err == nil {
			id, raftAddr, peerCID, err = p.Client.Identify(cctx, addr)
		}
		cancel()
		if err != nil || id == p.Self || peerCID != cid {
			continue
		}
		if p.Book.LearnPeer(id, raftAddr) {
			p.Logger.Info("cluster member found at a new address; it is dialled there until a leader records it",
				"id", id, "addr", raftAddr)
		}
	}
}
