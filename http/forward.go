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
	urls   map[string]string // leader Raft address -> API URL
}

func newForwarder(tr *http.Transport) *forwarder {
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.MaxIdleConnsPerHost = 256
	tr.MaxConnsPerHost = 0
	return &forwarder{client: &http.Client{Transport: tr}, urls: map[string]string{}}
}

// leaderURL returns the leader's Raft address and API URL, waiting briefly
// for an election in progress. ok is false when no leader can be found.
func (s *Service) leaderURL(ctx context.Context) (addr, url string, ok bool) {
	deadline := time.Now().Add(leaderWait)
	for {
		if _, addr = s.store.Leader(); addr != "" {
			break
		}
		if time.Now().After(deadline) {
			return "", "", false
		}
		select {
		case <-ctx.Done():
			return "", "", false
		case <-time.After(10 * time.Millisecond):
		}
	}
	if addr == s.store.Addr() {
		return addr, s.APIURL(), true
	}
	s.fwd.mu.Lock()
	url, cached := s.fwd.urls[addr]
	s.fwd.mu.Unlock()
	if cached {
		return addr, url, true
	}
	if s.cluster == nil {
		return "", "", false
	}
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url, _, err := s.cluster.NodeMeta(mctx, addr)
	if err != nil || url == "" {
		s.logger.Warn("leader's API address unknown", "leader", addr, "error", err)
		return "", "", false
	}
	s.fwd.mu.Lock()
	s.fwd.urls[addr] = url
	s.fwd.mu.Unlock()
	return addr, url, true
}

// forward answers a request this node cannot serve because it is not the
// leader: with ?redirect a 301 to the leader, otherwise the leader's own
// answer to the same request.
func (s *Service) forward(w http.ResponseWriter, r *http.Request, p *params) {
	if r.Header.Get(forwardedHeader) != "" {
		http.Error(w, "leader not found", http.StatusServiceUnavailable)
		return
	}
	leader, url, ok := s.leaderURL(r.Context())
	if !ok {
		http.Error(w, "leader not found", http.StatusServiceUnavailable)
		return
	}
	if leader == s.store.Addr() {
		// Leadership moved here while the request waited: serve it again.
		r.Header.Set(forwardedHeader, s.store.ID())
		s.route(w, r, p)
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
		delete(s.fwd.urls, leader)
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
	if !allow(w, r, http.MethodDelete) {
		return
	}
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
