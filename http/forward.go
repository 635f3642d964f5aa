package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// forwardedHeader marks a request a follower sent on to the leader. A node
// that gets such a request while it is not the leader answers 503 instead of
// forwarding again, so a request never travels in a loop during an election.
const forwardedHeader = "X-Rqlited-Forwarded-By"

// leaderWait is how long a request waits for an election in progress to
// produce a leader before it is answered 503 "leader not found".
const leaderWait = 2 * time.Second

// forwarder sends requests on to the leader's HTTP API and remembers each
// leader's API URL.
type forwarder struct {
	client *http.Client
	mu     sync.Mutex
	urls   map[memberKey]string // API URLs of leaders
	// lastRefusal is when a leader outside the Raft configuration was last
	// logged, so that a peer posing as leader cannot flood the log.
	lastRefusal time.Time
}

func newForwarder(tr *http.Transport) *forwarder {
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.MaxIdleConnsPerHost = 256
	tr.MaxConnsPerHost = 0
	return &forwarder{client: &http.Client{Transport: tr}, urls: map[memberKey]string{}}
}

// memberMeta is what forwarding needs of the Cluster, beyond NodeMeta: the
// API URL of member id, asked of the node at its Raft address and refused
// unless that node answers as id. cluster.Client satisfies it; without it
// nothing is forwarded.
type memberMeta interface {
	MemberAPIURL(ctx context.Context, id, raftAddr string) (string, error)
}

// memberKey names a member: its Raft ID and address.
type memberKey struct{ id, addr string }

// leaderMember returns the leader's Raft ID and address if the leader is
// a server in this node's current Raft configuration: the address and, if
// the leader gave one, the ID must both match one server. Anyone who can
// send this node a Raft message can claim to lead (hashicorp/raft takes
// the claim from any AppendEntries of a newer term), so a claim alone is
// never enough to send a client's credentials somewhere.
func (s *Service) leaderMember() (id, addr string, ok bool) {
	id, addr = s.store.Leader()
	if addr == "" {
		return "", "", false
	}
	if addr == s.store.Addr() {
		return s.store.ID(), addr, true
	}
	servers, err := s.store.Servers()
	if err != nil {
		return "", "", false
	}
	for _, srv := range servers {
		if srv.Addr == addr && (id == "" || srv.ID == id) {
			return srv.ID, srv.Addr, true
		}
	}
	s.fwd.mu.Lock()
	quiet := time.Since(s.fwd.lastRefusal) < time.Minute
	if !quiet {
		s.fwd.lastRefusal = time.Now()
	}
	s.fwd.mu.Unlock()
	if !quiet {
		s.logger.Warn("the node named as leader is not in this node's Raft configuration, so requests are not forwarded to it "+
			"(a member at a new address not yet recorded, or a peer posing as leader: see -node-verify-client in DOC/SECURITY.md)",
			"leader_id", id, "leader_addr", addr)
	}
	return "", "", false
}

// leaderURL returns the leader's Raft ID, address and API URL, waiting
// briefly for an election in progress. ok is false when no leader can be found.
// The leader must be a member of this node's Raft configuration, and its
// API URL is asked of the node at that member's address, which must answer
// as that member (see DOC/SECURITY.md for what this does and does not
// prove without node TLS).
// A failed call for the API URL is tried again up to retries times.
func (s *Service) leaderURL(ctx context.Context, retries int) (id, addr, url string, ok bool) {
	deadline := time.Now().Add(leaderWait)
	for {
		if id, addr, ok = s.leaderMember(); ok {
			break
		}
		if time.Now().After(deadline) {
			return "", "", "", false
		}
		select {
		case <-ctx.Done():
			return "", "", "", false
		case <-time.After(10 * time.Millisecond):
		}
	}
	if addr == s.store.Addr() {
		return id, addr, s.APIURL(), true
	}
	key := memberKey{id, addr}
	s.fwd.mu.Lock()
	url, cached := s.fwd.urls[key]
	s.fwd.mu.Unlock()
	if cached {
		return id, addr, url, true
	}
	mm, isMM := s.cluster.(memberMeta)
	if !isMM {
		return "", "", "", false // no cluster client (tests), or one that cannot check who answers
	}
	var err error
	for attempt := 0; attempt <= retries; attempt++ {
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		url, err = mm.MemberAPIURL(mctx, id, addr)
		cancel()
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		s.logger.Warn("leader's API address unknown", "leader_id", id, "leader", addr, "error", err)
		return "", "", "", false
	}
	s.fwd.mu.Lock()
	s.fwd.urls[key] = url
	s.fwd.mu.Unlock()
	return id, addr, url, true
}

// forward answers a request this node cannot serve because it is not the
// leader: with ?redirect a 301 to the leader, otherwise the leader's own
// answer to the same request.
func (s *Service) forward(w http.ResponseWriter, r *http.Request, p *params) {
	if r.Header.Get(forwardedHeader) != "" {
		http.Error(w, "leader not found", http.StatusServiceUnavailable)
		return
	}
	leaderID, leader, url, ok := s.leaderURL(r.Context(), p.retries)
	if !ok {
		status := http.StatusServiceUnavailable
		if p.redirect {
			// rqlite cannot form the Location: its redirect fails with 500.
			status = http.StatusInternalServerError
		}
		http.Error(w, "leader not found", status)
		return
	}
	if leader == s.store.Addr() {
		// Leadership moved here while the request waited: serve it again.
		r.Header.Set(forwardedHeader, s.store.ID())
		s.route(w, r, p, lookupRoute(r.URL.Path))
		return
	}
	if p.redirect {
		loc := strings.TrimRight(url, "/") + r.URL.Path
		if r.URL.RawQuery != "" {
			loc += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, loc, http.StatusMovedPermanently)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	target := strings.TrimRight(url, "/") + r.URL.RequestURI()
	var resp *http.Response
	var err error
	for attempt := 0; attempt <= p.retries; attempt++ {
		var req *http.Request
		req, err = http.NewRequestWithContext(ctx, r.Method, target, bytes.NewReader(p.body))
		if err != nil {
			break
		}
		for _, h := range []string{"Content-Type", "Authorization"} {
			if v := r.Header.Get(h); v != "" {
				req.Header.Set(h, v)
			}
		}
		req.Header.Set(forwardedHeader, s.store.ID())
		if resp, err = s.fwd.client.Do(req); err == nil {
			break
		}
		// Retry only a request that never left: one that reached the
		// leader may have been applied, and a second copy would apply
		// twice.
		var opErr *net.OpError
		if !errors.As(err, &opErr) || opErr.Op != "dial" {
			break
		}
	}
	if err != nil {
		s.fwd.mu.Lock()
		delete(s.fwd.urls, memberKey{leaderID, leader})
		s.fwd.mu.Unlock()
		http.Error(w, "leader not found: forwarding to "+leader+" failed: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Location", "Content-Encoding"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.Header().Set("X-RQLITE-SERVED-BY", leader)
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (s *Service) handleRemove(w http.ResponseWriter, r *http.Request, p *params) {
	var body map[string]any
	if err := json.Unmarshal(p.body, &body); err != nil {
		http.Error(w, "invalid JSON body: expected {\"id\":\"<node id>\"}", http.StatusBadRequest)
		return
	}
	id, ok := body["id"].(string)
	if len(body) != 1 || !ok || id == "" {
		http.Error(w, "request body must be exactly {\"id\":\"<node id>\"}", http.StatusBadRequest)
		return
	}
	if err := s.store.Remove(id); err != nil {
		s.writeStoreError(w, r, p, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}
