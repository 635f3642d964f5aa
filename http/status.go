package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
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

// AddStatus adds a section to /status, computed by f on each request. A
// name with dots ("http.cluster") places the section inside another one,
// merged with what that one already holds there. It must be called before
// Start.
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

// nodeInfo is one entry of /nodes (and the body of GET /leader), with
// rqlite's fields: api_addr and time are set only for a node that answered,
// error only for one that did not.
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

// errNoResponse is rqlite's text for a node that did not answer in time.
const errNoResponse = "timeout waiting for node to respond"

// probe asks the node srv for its API URL and version. As in rqlite, a node
// is marked leader only if it answered.
func (s *Service) probe(ctx context.Context, srv command.Server, leaderAddr string, retries int) nodeInfo {
	n := nodeInfo{ID: srv.ID, Addr: srv.Addr, Voter: srv.Voter}
	start := time.Now()
	switch {
	case srv.ID == s.store.ID():
		n.APIAddr, n.Version = s.APIURL(), s.cfg.Build.Version
	case s.cluster == nil:
		n.Error = "cluster service not available"
		return n
	default:
		api, ver, err := s.cluster.NodeMeta(ctx, srv.Addr)
		// ?retries: further attempts while the request's time lasts.
		for i := 0; err != nil && i < retries && ctx.Err() == nil; i++ {
			api, ver, err = s.cluster.NodeMeta(ctx, srv.Addr)
		}
		if err != nil {
			n.Error = err.Error()
			if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
				n.Error = errNoResponse
			}
			return n
		}
		n.APIAddr, n.Version = api, ver
	}
	d := time.Since(start)
	n.Reachable, n.Leader = true, srv.Addr == leaderAddr
	n.Time, n.TimeS = d.Seconds(), d.String()
	return n
}

// probeAll probes servers in parallel; the result is sorted by ID.
func (s *Service) probeAll(ctx context.Context, servers []command.Server, leaderAddr string, retries int) []nodeInfo {
	nodes := make([]nodeInfo, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i] = s.probe(ctx, srv, leaderAddr, retries)
		}()
	}
	wg.Wait()
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	return nodes
}

// handleNodes serves /nodes: the voters (all members with ?nonvoters),
// each probed, keyed by ID, or as {"nodes": [...]} with ?ver=2.
func (s *Service) handleNodes(w http.ResponseWriter, r *http.Request, p *params) {
	servers, err := s.store.Servers()
	if err != nil {
		code := http.StatusInternalServerError
		if isNotOpen(err) {
			code = http.StatusServiceUnavailable
		}
		http.Error(w, "store nodes: "+err.Error(), code)
		return
	}
	kept := servers[:0:0]
	for _, srv := range servers {
		if srv.Voter || p.nonVoters {
			kept = append(kept, srv)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	_, leaderAddr := s.store.Leader()
	nodes := s.probeAll(ctx, kept, leaderAddr, p.retries)
	var body any
	if p.v.Get("ver") == "2" {
		body = map[string][]nodeInfo{"nodes": nodes}
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

// isNotOpen reports whether err says the store is not open (rqlite: 503).
func isNotOpen(err error) bool { return strings.Contains(err.Error(), "not open") }

func (s *Service) handleLeader(w http.ResponseWriter, r *http.Request, p *params) {
	if r.Method == http.MethodPost {
		s.handleStepdown(w, r, p)
		return
	}
	id, addr := s.store.Leader()
	if addr == "" {
		http.Error(w, "leader not found", http.StatusServiceUnavailable)
		return
	}
	// As in rqlite, the leader is reported as a voter.
	srv := command.Server{ID: id, Addr: addr, Voter: true}
	ctx, cancel := context.WithTimeout(r.Context(), p.timeout)
	defer cancel()
	b, _ := json.Marshal(s.probe(ctx, srv, addr, p.retries))
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

// handleStatus serves /status with rqlite's sections, keys and JSON types
// (ours may add keys). ?key=a.b returns the value at that dot path, as
// rqlite does: {} when a key is missing, and the value reached when the
// path runs into something that is not an object.
func (s *Service) handleStatus(w http.ResponseWriter, r *http.Request, p *params) {
	httpVars.Add("num_status", 1)
	storeStats, err := s.store.Stats()
	if err != nil {
		http.Error(w, "store stats: "+err.Error(), http.StatusInternalServerError)
		return
	}
	status := map[string]any{
		"build":   s.buildStats(),
		"http":    s.httpStats(),
		"node":    s.nodeStats(),
		"os":      osStats(),
		"runtime": runtimeStats(),
		"network": networkStats(),
		"store":   storeStats,
	}
	names := make([]string, 0, len(s.sections))
	for name := range s.sections {
		names = append(names, name)
	}
	sort.Strings(names) // "http" before "http.cluster"
	for _, name := range names {
		setSection(status, strings.Split(name, "."), s.sections[name]())
	}
	b, err := json.Marshal(status)
	if err == nil && p.v.Get("key") != "" {
		b, err = subJSON(b, strings.Split(p.v.Get("key"), "."))
	}
	if err != nil {
		http.Error(w, "JSON marshal: "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, p, http.StatusOK, b)
}

// setSection puts v at path in m, merging it into a map already there.
func setSection(m map[string]any, path []string, v map[string]any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	last := path[len(path)-1]
	if old, ok := m[last].(map[string]any); ok {
		for k, x := range v {
			old[k] = x
		}
		return
	}
	m[last] = v
}

// subJSON walks keys through the JSON object b as rqlite's /status?key
// does.
func subJSON(b []byte, keys []string) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var cur any
	if err := dec.Decode(&cur); err != nil {
		return nil, err
	}
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			break
		}
		if cur, ok = m[k]; !ok {
			return []byte("{}"), nil
		}
	}
	return json.Marshal(cur)
}

func (s *Service) buildStats() map[string]any {
	b := s.cfg.Build
	return map[string]any{
		"version":            b.Version,
		"commit":             b.Commit,
		"build_time":         b.BuildTime,
		"compiler_toolchain": runtime.Compiler,
		"compiler_command":   "unknown",
		// Ours.
		"compiler": b.Compiler,
		"sqlite3":  b.SQLite,
	}
}

func (s *Service) httpStats() map[string]any {
	q := s.queue.Stats()
	q["max_size"] = q["capacity"]
	if _, ok := q["sequence_number"]; !ok {
		q["sequence_number"] = int64(0)
	}
	tls := map[string]any{"enabled": "false"}
	if c := s.cfg.TLS; c != nil {
		tls = map[string]any{"enabled": "true", "client_auth": c.ClientAuth.String(), "next_protos": c.NextProtos}
	}
	m := map[string]any{
		"bind_addr": s.ln.Addr().String(),
		"auth":      enabled(s.cfg.Auth != nil),
		"cluster":   map[string]any{"timeout": "", "local_node_addr": s.store.Addr()},
		"queue":     map[string]any{"_default": q},
		"tls":       tls,
		// Ours.
		"adv_addr": s.cfg.AdvAddr,
		"api_url":  s.APIURL(),
	}
	if s.cfg.AllowOrigin != "" {
		m["allow_origin"] = s.cfg.AllowOrigin
	}
	return m
}

func (s *Service) nodeStats() map[string]any {
	return map[string]any{
		"start_time":   s.start,
		"current_time": time.Now(),
		"uptime":       time.Since(s.start).String(),
	}
}

func osStats() map[string]any {
	m := map[string]any{"pid": os.Getpid(), "ppid": os.Getppid(), "page_size": os.Getpagesize()}
	if exe, err := os.Executable(); err == nil {
		m["executable"] = exe
	}
	if host, err := os.Hostname(); err == nil {
		m["hostname"] = host
	}
	return m
}

func runtimeStats() map[string]any {
	_, k8s := os.LookupEnv("KUBERNETES_SERVICE_HOST")
	return map[string]any{
		"GOOS": runtime.GOOS, "GOARCH": runtime.GOARCH, "GOMAXPROCS": runtime.GOMAXPROCS(0),
		"num_cpu": runtime.NumCPU(), "num_goroutine": runtime.NumGoroutine(), "version": runtime.Version(),
		"kubernetes_hint": k8s,
	}
}

// networkStats describes the host's interfaces, as rqlite's "network"
// section does.
func networkStats() map[string]any {
	ifs, err := net.Interfaces()
	if err != nil {
		return map[string]any{}
	}
	m := make(map[string]any, len(ifs))
	for _, i := range ifs {
		addrs := []map[string]string{}
		if as, err := i.Addrs(); err == nil {
			for _, a := range as {
				addrs = append(addrs, map[string]string{"address": a.String()})
			}
		}
		m[i.Name] = map[string]any{"flags": i.Flags.String(), "hardware_address": i.HardwareAddr.String(), "addresses": addrs}
	}
	return m
}

func enabled(on bool) string {
	if on {
		return "enabled"
	}
	return "disabled"
}
