package http

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/rqlited/rqlited/command"
)

// Cluster reaches other nodes. It is optional: without it, other nodes are
// reported as unreachable.
type Cluster interface {
	// NodeMeta asks the node at raftAddr for its HTTP API URL and version.
	NodeMeta(ctx context.Context, raftAddr string) (apiURL, version string, err error)
}

// SetCluster installs the cluster client used by /nodes and /leader. It must
// be called before Start.
func (s *Service) SetCluster(c Cluster) { s.cluster = c }

// SetReadyExplain installs a function that says, while there is no leader,
// what the node is waiting for (discovery phase and last problem); /readyz
// adds it as a last line. It must be called before Start.
func (s *Service) SetReadyExplain(f func() string) { s.explain = f }

// AddStatus adds a top-level section to /status, computed by f on each
// request. It must be called before Start.
func (s *Service) AddStatus(name string, f func() map[string]any) {
	if s.sections == nil {
		s.sections = map[string]func() map[string]any{}
	}
	s.sections[name] = f
}

// APIURL returns this node's advertised HTTP API URL.
func (s *Service) APIURL() string {
	if s.cfg.TLS != nil {
		return "https://" + s.cfg.AdvAddr
	}
	return "http://" + s.cfg.AdvAddr
}

// nodeInfo is one entry of /nodes, in rqlite's field order.
type nodeInfo struct {
	ID        string  `json:"id"`
	APIAddr   string  `json:"api_addr,omitempty"`
	Addr      string  `json:"addr"`
	Version   string  `json:"version"`
	Voter     bool    `json:"voter"`
	Reachable bool    `json:"reachable"`
	Leader    bool    `json:"leader"`
	Time      float64 `json:"time,omitempty"`
	TimeS     string  `json:"time_s,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// probe fills in what only the node itself knows.
func (s *Service) probe(ctx context.Context, srv command.Server, leaderAddr string) nodeInfo {
	n := nodeInfo{ID: srv.ID, Addr: srv.Addr, Voter: srv.Voter, Leader: srv.Addr == leaderAddr}
	start := time.Now()
	switch {
	case srv.ID == s.store.ID():
		n.APIAddr, n.Version, n.Reachable = s.APIURL(), s.cfg.Build.Version, true
	case s.cluster == nil:
		n.Error = "cluster service not available"
		return n
	default:
		api, ver, err := s.cluster.NodeMeta(ctx, srv.Addr)
		if err != nil {
			n.Error = err.Error()
			return n
		}
		n.APIAddr, n.Version, n.Reachable = api, ver, true
	}
	d := time.Since(start)
	n.Time, n.TimeS = d.Seconds(), d.String()
	return n
}

func (s *Service) handleNodes(w http.ResponseWriter, r *http.Request, p *params) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	servers, err := s.store.Servers()
	if err != nil {
		http.Error(w, "store nodes: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	_, leaderAddr := s.store.Leader()
	var nodes []nodeInfo
	for _, srv := range servers {
		if !srv.Voter && !p.nonVoters {
			continue
		}
		nodes = append(nodes, s.probe(ctx, srv, leaderAddr))
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	var body any
	if p.v.Get("ver") == "2" {
		body = map[string]any{"nodes": nodes}
	} else {
		m := make(map[string]nodeInfo, len(nodes))
		for _, n := range nodes {
			m[n.ID] = n
		}
		body = m
	}
	b, _ := json.Marshal(body)
	writeJSON(w, p, http.StatusOK, b)
}

func (s *Service) handleLeader(w http.ResponseWriter, r *http.Request, p *params) {
	if !allow(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	if r.Method == http.MethodPost {
		s.handleStepdown(w, r, p)
		return
	}
	id, addr := s.store.Leader()
	if addr == "" {
		http.Error(w, "leader not found", http.StatusServiceUnavailable)
		return
	}
	servers, err := s.store.Servers()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	srv := command.Server{ID: id, Addr: addr, Voter: true}
	for _, x := range servers {
		if x.ID == id {
			srv = x
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	b, _ := json.Marshal(s.probe(ctx, srv, addr))
	writeJSON(w, p, http.StatusOK, b)
}

func (s *Service) handleStepdown(w http.ResponseWriter, r *http.Request, p *params) {
	body := p.body
	var target struct {
		ID string `json:"id"`
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &target); err != nil {
			http.Error(w, "invalid JSON body: expected {\"id\":\"<node id>\"}", http.StatusBadRequest)
			return
		}
	}
	_, before := s.store.Leader()
	if err := s.store.Stepdown(target.ID); err != nil {
		s.writeStoreError(w, r, p, err)
		return
	}
	if p.wait {
		deadline := time.Now().Add(p.timeout)
		for {
			if _, now := s.store.Leader(); now != "" && now != before {
				break
			}
			if time.Now().After(deadline) {
				http.Error(w, "timeout waiting for new leader", http.StatusServiceUnavailable)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Service) handleStatus(w http.ResponseWriter, r *http.Request, p *params) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	storeStats, err := s.store.Stats()
	if err != nil {
		http.Error(w, "store stats: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	host, _ := os.Hostname()
	exe, _ := os.Executable()
	now := time.Now()
	status := map[string]any{
		"build": map[string]any{
			"version":    s.cfg.Build.Version,
			"commit":     s.cfg.Build.Commit,
			"build_time": s.cfg.Build.BuildTime,
			"compiler":   s.cfg.Build.Compiler,
			"sqlite3":    s.cfg.Build.SQLite,
		},
		"http": map[string]any{
			"bind_addr": s.ln.Addr().String(),
			"adv_addr":  s.cfg.AdvAddr,
			"api_url":   s.APIURL(),
			"auth":      enabled(s.cfg.Auth != nil),
			"tls":       enabled(s.cfg.TLS != nil),
			"queue":     s.queue.Stats(),
		},
		"node": map[string]any{
			"start_time":   s.start,
			"current_time": now,
			"uptime":       now.Sub(s.start).Round(time.Millisecond).String(),
		},
		"os": map[string]any{
			"pid": os.Getpid(), "ppid": os.Getppid(), "page_size": os.Getpagesize(),
			"executable": exe, "hostname": host,
		},
		"runtime": map[string]any{
			"GOOS": runtime.GOOS, "GOARCH": runtime.GOARCH, "GOMAXPROCS": runtime.GOMAXPROCS(0),
			"num_cpu": runtime.NumCPU(), "num_goroutine": runtime.NumGoroutine(), "version": runtime.Version(),
		},
		"store": storeStats,
	}
	for name, f := range s.sections {
		status[name] = f()
	}
	var body any = status
	if key := p.v.Get("key"); key != "" {
		body = lookupPath(status, strings.Split(key, "."))
	}
	b, err := json.Marshal(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, p, http.StatusOK, b)
}

func enabled(on bool) string {
	if on {
		return "enabled"
	}
	return "disabled"
}

// lookupPath walks a dot path through nested maps; a missing key gives {}.
func lookupPath(m map[string]any, path []string) any {
	var cur any = m
	for _, k := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return map[string]any{}
		}
		if cur, ok = mm[k]; !ok {
			return map[string]any{}
		}
	}
	return cur
}
