// Package http serves rqlite's HTTP API: /db/execute, /db/query,
// /db/request, /db/load, /db/backup, /status, /nodes, /readyz, /leader and
// /snapshot, with the same parameters, JSON shapes, status codes and error
// texts as rqlite.
package http

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/queue"
)

// Database is the data side of the store.
type Database interface {
	// Execute replicates write statements.
	Execute(ctx context.Context, req *command.Request) ([]command.Result, uint64, error)
	// Query serves reads at the requested consistency level.
	Query(ctx context.Context, req *command.Request, opts command.QueryOptions) ([]command.Result, uint64, error)
	// Request serves a mix of reads and writes.
	Request(ctx context.Context, req *command.Request, opts command.QueryOptions) ([]command.Result, uint64, error)
	// Load replaces the database with a SQLite file image.
	Load(ctx context.Context, data []byte) (uint64, error)
	// Backup writes a copy of the database.
	Backup(ctx context.Context, w io.Writer, opts command.BackupOptions) error
	// ColumnTables returns the table of each result column of the
	// statements of req (ncols[i] columns for statement i), for
	// ?qualify_columns.
	ColumnTables(ctx context.Context, req *command.Request, ncols []int) ([][]string, error)
}

// Node is the cluster side of the store.
type Node interface {
	// ID returns this node's ID.
	ID() string
	// Addr returns this node's advertised Raft address.
	Addr() string
	// Leader returns the leader's ID and Raft address (empty if unknown).
	Leader() (id, addr string)
	// Servers returns the cluster configuration.
	Servers() ([]command.Server, error)
	// Stepdown hands leadership to another voter (id, if not empty).
	Stepdown(id string) error
	// Snapshot forces a snapshot, keeping trailing log entries.
	Snapshot(trailing uint64) error
	// Stats returns the store's /status section.
	Stats() (map[string]any, error)
	// Ready reports whether the local database has caught up with the log
	// this node had when it started.
	Ready() bool
	// Remove takes a node out of the cluster (leader only).
	Remove(id string) error
	// Reap removes older snapshots now; it returns how many, and rqlite's
	// count of WAL files checkpointed.
	Reap() (snapshots, wals int, err error)
	// Committed waits, at most timeout, until the local database reflects
	// what the leader had committed when it was called.
	Committed(ctx context.Context, timeout time.Duration) (uint64, error)
}

// Authorizer decides whether a caller may do what permissions name
// (package auth's Store satisfies it): it returns nil if the caller at
// client (its IP address) may do all of perms. ok says whether the request
// carried Basic credentials at all. A refusal whose error has a
// RetryAfter() time.Duration method (repeated failed logins from client)
// is answered 429 with a Retry-After header; any other, 401.
type Authorizer interface {
	Authorize(client, username, password string, ok bool, perms ...string) error
}

// Store is everything the HTTP service needs from the store.
type Store interface {
	Database
	Node
}

// Config configures a Service.
type Config struct {
	// Addr is the address to listen on (host:port).
	Addr string
	// AdvAddr is the address clients and other nodes use (host:port);
	// empty means the listening address.
	AdvAddr string
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	MaxBodyBytes int64
	// BodyBudgetBytes bounds the bytes of request bodies (those over 64
	// KiB) being read or served at once, across all connections; a body
	// that does not fit waits up to 10 s, then gets 503 with Retry-After.
	// 0 means twice MaxBodyBytes, and at least 64 MiB.
	BodyBudgetBytes int64
	// AllowOrigin, if set, is sent as Access-Control-Allow-Origin.
	AllowOrigin string
	// Queue configures queued writes (?queue).
	Queue queue.Config
	// Build describes this binary for /status and X-RQLITE-VERSION.
	Build BuildInfo
	// ReadHeaderTimeout, IdleTimeout bound slow or idle clients.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// ReadTimeout bounds reading a whole request, body included (bodies
	// also have a minimum rate, see readBody);
	// WriteTimeout bounds writing a response (0: none, as backups of large
	// databases can take long).
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// Auth, if set, checks every request's Basic credentials against the
	// permission its path needs; failures get 401 (429 while the caller's
	// address is throttled after repeated failed logins).
	Auth Authorizer
	// TLS, if set, makes the API serve HTTPS.
	TLS *tls.Config
	// ForwardTransport, if set, carries requests forwarded to the leader
	// (it holds the TLS client settings for leaders that serve HTTPS).
	ForwardTransport *http.Transport
}

// BuildInfo identifies the running binary.
type BuildInfo struct {
	Version   string
	Commit    string
	BuildTime string
	Compiler  string
	SQLite    string
}

// DefaultConfig returns the defaults for a Service.
func DefaultConfig() Config {
	return Config{
		Addr:              "localhost:4001",
		MaxBodyBytes:      64 << 20,
		Queue:             queue.DefaultConfig(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ReadTimeout:       5 * time.Minute,
	}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.Addr == "" {
		return errors.New("http: listen address is required")
	}
	if c.MaxBodyBytes <= 0 {
		return fmt.Errorf("http: max body size %d must be positive", c.MaxBodyBytes)
	}
	if c.BodyBudgetBytes != 0 && c.BodyBudgetBytes < c.MaxBodyBytes {
		return fmt.Errorf("http: body budget %d must be 0 (default) or at least the max body size %d", c.BodyBudgetBytes, c.MaxBodyBytes)
	}
	return c.Queue.Validate()
}

// Service is the HTTP API server.
type Service struct {
	cfg    Config
	store  Store
	logger *slog.Logger
	start  time.Time

	queue   *queue.Queue
	ln      net.Listener
	srv     *http.Server
	wg      sync.WaitGroup
	cluster Cluster
	fwd     *forwarder
	// sections are extra /status sections (cluster, bootstrap, ...).
	sections map[string]func() map[string]any
	explain  func() string
	// headers go on every response; built once, as canonical keys with
	// value slices that are shared (net/http only reads them).
	headers http.Header
	// budget bounds the request bodies held at once (body.go); a body
	// waits for room at most budgetWait (0: bodyBudgetWait).
	budget     *byteBudget
	budgetWait time.Duration
	// logLoadMax bounds a SQLite file loaded through the log (load.go;
	// 0: maxLogLoad).
	logLoadMax int64
}

// New returns a Service; Start begins serving.
func New(cfg Config, store Store, logger *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.AdvAddr == "" {
		cfg.AdvAddr = cfg.Addr
	}
	if cfg.BodyBudgetBytes == 0 {
		cfg.BodyBudgetBytes = defaultBodyBudget(cfg.MaxBodyBytes)
	}
	s := &Service{cfg: cfg, store: store, logger: logger.With("component", "http"), start: time.Now(),
		budget: newByteBudget(cfg.BodyBudgetBytes)}
	s.fwd = newForwarder(cfg.ForwardTransport)
	s.headers = http.Header{}
	s.headers.Set("X-RQLITE-VERSION", cfg.Build.Version)
	s.headers.Set("Access-Control-Allow-Methods", "OPTIONS, GET, POST")
	if cfg.Auth != nil {
		s.headers.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
		s.headers.Set("Access-Control-Allow-Credentials", "true")
		s.headers.Set("WWW-Authenticate", `Basic realm="rqlite"`)
	} else {
		s.headers.Set("Access-Control-Allow-Headers", "Content-Type")
	}
	if cfg.AllowOrigin != "" {
		s.headers.Set("Access-Control-Allow-Origin", cfg.AllowOrigin)
	}
	return s, nil
}

// Start listens and serves in goroutines owned by the Service.
func (s *Service) Start() error {
	q, err := queue.New(s.cfg.Queue, func(ctx context.Context, req *command.Request) error {
		_, _, err := s.store.Execute(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		q.Close()
		return fmt.Errorf("listen on HTTP address %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	s.queue, s.ln = q, ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("HTTP server stopped", "error", err)
		}
	}()
	s.logger.Info("HTTP service listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the address the service listens on.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting requests, lets requests in flight finish (bounded
// by ctx), then flushes the write queue.
func (s *Service) Close(ctx context.Context) error {
	if s.srv == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	s.wg.Wait()
	return errors.Join(err, s.queue.Close())
}

// ServeHTTP routes a request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for k, v := range s.headers {
		h[k] = v
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	p, err := parseParams(r.URL.RawQuery)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rt := lookupRoute(r.URL.Path)
	if rt != nil && rt.body != bodyIgnored && (r.Method == http.MethodPost || r.Method == http.MethodDelete) {
		held, ok := s.admitBody(w, r, p, rt)
		if !ok {
			return
		}
		// The body and what is made of it (statements, the log entry)
		// live until the request is served.
		defer s.budget.release(held)
	}
	// The request is read: lift the read deadline, so that the server's
	// check for a vanished client does not time out (and cancel the
	// request) under a handler that runs long, such as a large backup.
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	s.route(w, r, p, rt)
}

// admitBody deals with the body of a POST or DELETE to a route that takes
// one, before the handler runs. It refuses (answering, and returning
// false) what could never be served: a caller without the permission, a
// declared length over the limit. The body is then left unread, so the
// connection is closed after the answer (net/http would otherwise wait to
// drain it). A bodyRead route's body is read into p.body; held is what it
// holds of the body budget (see readBody).
func (s *Service) admitBody(w http.ResponseWriter, r *http.Request, p *params, rt *route) (held int64, ok bool) {
	if err := s.authorize(r, rt.perms); err != nil {
		// Counted here; a caller let through is counted by route.
		countRoute(rt)
		countAuth(err)
		w.Header().Set("Connection", "close")
		refuse(w, err)
		return 0, false
	}
	if rt.body == bodyStreamed {
		return 0, true // the handler reads r.Body itself (load.go, boot.go)
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("request body too large: the limit is %d bytes", s.cfg.MaxBodyBytes), http.StatusRequestEntityTooLarge)
		return 0, false
	}
	p.body, held, ok = s.readBody(w, r)
	return held, ok
}

// Minimum body rate: a body must arrive within bodyGrace plus its declared
// length at bodyMinRate, so a client trickling a few bytes cannot hold a
// connection for the whole ReadTimeout.
const (
	bodyGrace   = 10 * time.Second
	bodyMinRate = 64 << 10 // bytes per second
)

// authorize returns nil if the caller of r has every permission in perms;
// without -auth everyone has. The caller's address is r.RemoteAddr's IP
// (X-Forwarded-For is not trusted).
func (s *Service) authorize(r *http.Request, perms []string) error {
	if s.cfg.Auth == nil {
		return nil
	}
	client := r.RemoteAddr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		client = ap.Addr().WithZone("").Unmap().String()
	}
	user, pass, ok := r.BasicAuth()
	return s.cfg.Auth.Authorize(client, user, pass, ok, perms...)
}

// refuse answers a request authorize refused: 429 with Retry-After and the
// reason if the caller is throttled, 401 otherwise.
func refuse(w http.ResponseWriter, err error) {
	var throttled interface{ RetryAfter() time.Duration }
	if errors.As(err, &throttled) {
		secs := max(int64((throttled.RetryAfter()+time.Second-1)/time.Second), 1)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	w.WriteHeader(http.StatusUnauthorized)
}

// exactBodyMax is the largest declared body length read straight into a
// buffer allocated up front; larger bodies are staged (see body.go).
const exactBodyMax = 1 << 20

// readBody reads the request body up to the configured limit, answering
// 413 for larger bodies and 503 when the body budget has no room for it
// (and returning false). held is what the body holds of the budget, to be
// released once the request is served.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request) (b []byte, held int64, ok bool) {
	n := r.ContentLength
	if n > smallBody && !s.reserve(w, r, n) {
		return nil, 0, false
	}
	if n >= 0 {
		if n > smallBody {
			held = n
		}
		d := bodyGrace + time.Duration(n/bodyMinRate)*time.Second
		if s.cfg.ReadTimeout <= 0 || d < s.cfg.ReadTimeout {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
	}
	var err error
	switch {
	case n >= 0 && n <= exactBodyMax:
		// A small declared length: read exactly that, into one allocation.
		b = make([]byte, n)
		_, err = io.ReadFull(r.Body, b)
	case n >= 0:
		// Staged, so that memory is taken only as the body arrives (a
		// client that declares a large body and sends nothing costs
		// nothing but its place in the budget) and given back at once if
		// it never completes.
		b, err = readStaged(r.Body, nil, int(n), n)
	default:
		// Unknown length (chunked). Most such bodies are small; a large
		// one holds the limit of the budget while it arrives, then what
		// it turned out to be.
		var head []byte
		var more bool
		if head, more, err = readHead(r.Body, int(min(smallBody, s.cfg.MaxBodyBytes))); err != nil || !more {
			b = head
			break
		}
		if !s.reserve(w, r, s.cfg.MaxBodyBytes) {
			return nil, 0, false
		}
		b, err = readStaged(r.Body, head, int(s.cfg.MaxBodyBytes)+1, s.cfg.MaxBodyBytes)
		held = s.cfg.MaxBodyBytes
		if err == nil {
			s.budget.release(held - int64(len(b)))
			held = int64(len(b))
		}
	}
	if err != nil {
		s.budget.release(held)
		if errors.Is(err, errBodyTooLarge) {
			w.Header().Set("Connection", "close") // the rest is left unread
			http.Error(w, fmt.Sprintf("request body too large: the limit is %d bytes", s.cfg.MaxBodyBytes), http.StatusRequestEntityTooLarge)
			return nil, 0, false
		}
		http.Error(w, "error reading request body: "+err.Error(), http.StatusBadRequest)
		return nil, 0, false
	}
	return b, held, true
}

// jsonContentType is shared by every JSON response (see Service.headers).
var jsonContentType = []string{"application/json; charset=utf-8"}

// writeJSON writes a JSON body, indented with ?pretty as rqlite does.
func writeJSON(w http.ResponseWriter, p *params, status int, body []byte) {
	if p != nil && p.pretty {
		body = indent(body)
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	w.Write(body)
}
