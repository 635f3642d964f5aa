package cluster

import (
	"bytes"
	"context"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/rqlited/rqlited/command"
)

// vars are rqlite's "cluster" counters at /debug/vars (process-wide, as
// expvar is); the client-side ones of rqlite's pooled client stay 0.
var vars = func() *expvar.Map {
	m := expvar.NewMap("cluster")
	for _, k := range []string{"num_get_node_api_req", "num_get_node_api_resp", "num_execute_req",
		"num_query_req", "num_request_req", "num_backup_req", "num_load_req", "num_remove_node_req",
		"num_get_node_api_req_local", "num_notify_req", "num_join_req", "num_stepdown_req",
		"num_broadcast_hwm_req", "num_hwm_update_dropped", "num_client_retries",
		"num_get_node_api_req_retries", "num_client_load_retries", "num_client_execute_retries",
		"num_client_query_retries", "num_client_request_retries", "num_client_read_timeouts",
		"num_client_write_timeouts", "num_client_force_new_conn", "num_read_index_req"} {
		m.Add(k, 0)
	}
	return m
}()

// callCounters names the counter of each call type ("num_read_index_req"
// is ours: rqlite has no such call).
var callCounters = map[string]string{typeMeta: "num_get_node_api_req", typeJoin: "num_join_req",
	typeRemove: "num_remove_node_req", typeStepdown: "num_stepdown_req", typeNotify: "num_notify_req",
	typeReadIndex: "num_read_index_req"}

// Manager is what the service needs from the store.
type Manager interface {
	// ID and Addr identify this node (Raft ID and advertised address).
	ID() string
	Addr() string
	// Leader returns the leader's ID and Raft address, empty if unknown.
	Leader() (id, addr string)
	// ClusterID returns this node's cluster, empty if it has none yet.
	ClusterID() string
	// HasState reports whether this node already belongs to a cluster.
	HasState() (bool, error)
	// Join, Remove and Stepdown act on the leader; elsewhere they return
	// command.ErrNotLeader.
	Join(id, addr string, voter bool, clusterID string) error
	Remove(id string) error
	Stepdown(id string) error
	// ReadIndex returns the leader's commit index once a quorum has
	// confirmed that it still leads (for linearizable reads on followers);
	// askerID and askerTerm are the asking node's ID and current term.
	ReadIndex(ctx context.Context, askerID string, askerTerm uint64) (uint64, error)
}

// Authorizer decides whether the sender of a call may do what a
// permission names (package auth's Store satisfies it).
type Authorizer interface {
	Allowed(username, password string, ok bool, perm string) bool
}

// NotifyState reports this node's bootstrap parameters to notifying peers:
// its -bootstrap-expect, its bootstrap set, and whether it has already
// bootstrapped that set.
type NotifyState func() (expect int, set []string, formed bool)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	// APIURL and Version are returned by the meta call.
	APIURL  string
	Version string
	// Timeout bounds a connection's first request, from the moment the
	// service takes the connection, and, for each later request, the time
	// from its first byte to the end of its answer (default 10 s).
	Timeout time.Duration
	// IdleTimeout bounds the wait for the first byte of a connection's
	// next request after an answer (default DefaultIdleTimeout): followers
	// keep connections for their read-index calls (Client.pooledCall).
	IdleTimeout time.Duration
	// Auth, if set, checks the credentials each call carries: join and
	// notify need "join" (a read replica's join also accepts
	// "join-read-only" or "join-read-replica"), remove needs "remove",
	// stepdown "leader-ops", read-index "join" or "query". Meta needs
	// nothing.
	Auth Authorizer
}

// Service answers cluster calls arriving on ln.
type Service struct {
	ln     net.Listener
	mgr    Manager
	cfg    ServiceConfig
	logger *slog.Logger

	mu     sync.Mutex
	notify NotifyState
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewService returns a Service; Start begins serving.
func NewService(ln net.Listener, mgr Manager, cfg ServiceConfig, logger *slog.Logger) *Service {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	return &Service{ln: ln, mgr: mgr, cfg: cfg, logger: logger.With("component", "cluster"), conns: map[net.Conn]struct{}{}}
}

// SetNotifyState installs the function that describes this node's
// bootstrap parameters. Without one, the node reports -bootstrap-expect 0.
func (s *Service) SetNotifyState(f NotifyState) {
	s.mu.Lock()
	s.notify = f
	s.mu.Unlock()
}

// Start serves on goroutines owned by the Service.
func (s *Service) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.conns[c] = struct{}{}
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				s.serve(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
		}
	}()
}

// Close stops the service and waits for calls in progress.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// DefaultIdleTimeout is how long a connection may wait for its next call
// by default.
const DefaultIdleTimeout = time.Minute

func (s *Service) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(s.cfg.Timeout))
	for first := true; ; first = false {
		if !first {
			// Between calls the connection may idle; once the next call's
			// first byte is in, the call has Timeout to arrive whole and
			// be answered, so that a stalled frame is not held for the
			// idle bound.
			c.SetDeadline(time.Now().Add(s.cfg.IdleTimeout))
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			if first {
				s.logger.Debug("cluster connection sent no request", "remote", c.RemoteAddr().String(), "error", err)
			}
			return
		}
		if !first {
			c.SetDeadline(time.Now().Add(s.cfg.Timeout))
		}
		var req request
		if err := readFrame(io.MultiReader(bytes.NewReader(b[:]), c), &req); err != nil {
			s.logger.Debug("bad cluster request", "remote", c.RemoteAddr().String(), "error", err)
			return
		}
		c.SetDeadline(time.Now().Add(s.cfg.Timeout))
		resp := s.handle(&req)
		if err := writeFrame(c, resp); err != nil {
			s.logger.Debug("cluster response not sent", "remote", c.RemoteAddr().String(), "error", err)
			return
		}
	}
}

func (s *Service) handle(req *request) *response {
	if name, ok := callCounters[req.Type]; ok {
		vars.Add(name, 1)
	}
	resp := &response{ID: s.mgr.ID(), Addr: s.mgr.Addr(), ClusterID: s.mgr.ClusterID()}
	_, resp.Leader = s.mgr.Leader()
	var err error
	if !s.allowed(req) {
		s.logger.Warn("cluster call refused: credentials lack the permission", "type", req.Type, "user", req.Username, "node", req.ID)
		resp.Error = fmt.Sprintf("%s refused: user %q lacks the permission (check -join-as and the -auth file)", req.Type, req.Username)
		resp.Code = codeUnauthorized
		return resp
	}
	switch req.Type {
	case typeMeta:
		resp.APIURL, resp.Version = s.cfg.APIURL, s.cfg.Version
		vars.Add("num_get_node_api_resp", 1)
	case typeJoin:
		if req.ID == "" || req.Addr == "" {
			err = errors.New("join needs a node ID and an address")
			break
		}
		err = s.mgr.Join(req.ID, req.Addr, req.Voter, req.ClusterID)
	case typeRemove:
		err = s.mgr.Remove(req.ID)
	case typeStepdown:
		err = s.mgr.Stepdown(req.ID)
	case typeReadIndex:
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		resp.Index, err = s.mgr.ReadIndex(ctx, req.ID, req.Term)
		cancel()
	case typeNotify:
		resp.HasState, err = s.mgr.HasState()
		s.mu.Lock()
		if s.notify != nil {
			resp.Expect, resp.Set, resp.Formed = s.notify()
		}
		s.mu.Unlock()
	default:
		err = errors.New("unknown request type " + req.Type)
	}
	if err != nil {
		resp.Error = err.Error()
		switch {
		case errors.Is(err, command.ErrNotLeader):
			resp.Code = codeNotLeader
		case errors.Is(err, command.ErrClusterMismatch):
			resp.Code = codeClusterMismatch
		case errors.Is(err, command.ErrNodeNotFound):
			resp.Code = codeNotFound
		}
	}
	return resp
}

// allowed reports whether req's credentials carry the permission its type
// needs.
func (s *Service) allowed(req *request) bool {
	if s.cfg.Auth == nil {
		return true
	}
	var perms []string
	switch req.Type {
	case typeMeta:
		return true
	case typeJoin:
		perms = []string{"join"}
		if !req.Voter {
			perms = append(perms, "join-read-only", "join-read-replica")
		}
	case typeNotify:
		perms = []string{"join"}
	case typeRemove:
		perms = []string{"remove"}
	case typeStepdown:
		perms = []string{"leader-ops"}
	case typeReadIndex:
		// Only an index is revealed; the follower has already checked its
		// client's query permission. Any node credential will do.
		perms = []string{"join", "query"}
	default:
		return true // answered "unknown request type"
	}
	ok := req.Username != ""
	for _, p := range perms {
		if s.cfg.Auth.Allowed(req.Username, req.Password, ok, p) {
			return true
		}
	}
	return false
}
