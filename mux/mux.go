// Package mux shares one TCP listener between several services. Each
// connection starts with one header byte that names the service it is for
// (Raft, the cluster service, ...), so a node needs only one inter-node port.
package mux

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Header bytes of the services carried on the inter-node port.
const (
	HeaderRaft    byte = 1
	HeaderCluster byte = 2
)

// ErrClosed is returned by Accept once the mux or the layer is closed.
var ErrClosed = errors.New("mux closed")

// Deadlines bound the connections of one service whose protocol is a
// sequence of requests, each sent by the dialing side and answered before
// the next (Raft's), so that a peer that stalls cannot hold a connection,
// and its goroutine and buffers, for ever. A zero field is no bound.
type Deadlines struct {
	// First bounds the wait, after the header byte, for the first byte of
	// the first request.
	First time.Duration
	// Stall bounds every pause inside a request (from its first byte until
	// the answer is written) and every write of an answer.
	Stall time.Duration
	// Idle bounds the wait for the next request once an answer is written.
	Idle time.Duration
	// Redial replaces a dialed connection that has been idle this long by a
	// new one before its next request, so that the other node's Idle never
	// closes a connection a request is about to use. Keep it well below
	// Idle.
	Redial time.Duration
}

// RaftDeadlines are the Deadlines of the Raft layer by default.
// hashicorp/raft sends its first request as soon as it has dialed, and a
// leader sends every follower an AppendEntries at least every commit
// timeout and a heartbeat every tenth of the heartbeat timeout, each on a
// pooled connection: only spare pooled connections stay idle, and Redial
// renews them before use. Inside a request hashicorp/raft's own deadline
// (10 s, longer only for snapshots, which stream without pause) is
// shorter than Stall.
var RaftDeadlines = Deadlines{First: 10 * time.Second, Stall: 30 * time.Second, Idle: 5 * time.Minute, Redial: 2 * time.Minute}

// Mux reads the header byte of each accepted connection and hands the
// connection to the Layer registered for that byte. A connection must send
// its header byte (after the TLS handshake, if any) within 10 s; those of
// the Raft layer are then bounded by RaftDeadlines (see SetDeadlines).
type Mux struct {
	ln            net.Listener
	logger        *slog.Logger
	headerTimeout time.Duration

	// serverTLS and clientTLS, when set, wrap every connection in TLS
	// before the header byte: accepted ones as a server, dialed ones as a
	// client.
	serverTLS *tls.Config
	clientTLS func(host string) *tls.Config

	mu        sync.Mutex
	layers    map[byte]*Layer
	deadlines map[byte]Deadlines
	closed    bool
	wg        sync.WaitGroup
}

// New returns a Mux over ln. Call Serve to start it.
func New(ln net.Listener, logger *slog.Logger) *Mux {
	return &Mux{ln: ln, logger: logger.With("component", "mux"), headerTimeout: 10 * time.Second, layers: map[byte]*Layer{},
		deadlines: map[byte]Deadlines{HeaderRaft: RaftDeadlines}}
}

// SetDeadlines sets the Deadlines of the connections of header h, accepted
// and dialed (the zero Deadlines: none). Call it before Serve and before
// the layer dials.
func (m *Mux) SetDeadlines(h byte, d Deadlines) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deadlines[h] = d
	if l, ok := m.layers[h]; ok {
		l.deadlines = d
	}
}

// NewTLS returns a Mux whose connections are all TLS: server configures
// the accepting side, client gives the dialing side's configuration for the
// host dialed (which it should verify the certificate against). A peer that does not
// complete the handshake (no certificate, a wrong one, plain TCP) never
// reaches Raft or the cluster service.
func NewTLS(ln net.Listener, server *tls.Config, client func(host string) *tls.Config, logger *slog.Logger) *Mux {
	m := New(ln, logger)
	m.serverTLS, m.clientTLS = server, client
	return m
}

// Layer returns the listener for connections whose header is h; its Dial
// opens connections to another node's Layer for the same header.
func (m *Mux) Layer(h byte) *Layer {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.layers[h]; ok {
		return l
	}
	l := &Layer{header: h, addr: m.ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{}), tls: m.clientTLS,
		deadlines: m.deadlines[h]}
	m.layers[h] = l
	return l
}

// Addr returns the address the mux listens on.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Serve accepts connections until Close. It starts the goroutines it owns
// and returns at once.
func (m *Mux) Serve() {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			c, err := m.ln.Accept()
			if err != nil {
				m.mu.Lock()
				closed := m.closed
				m.mu.Unlock()
				if closed || errors.Is(err, net.ErrClosed) {
					return
				}
				m.logger.Warn("accept failed", "error", err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.route(c)
			}()
		}
	}()
}

func (m *Mux) route(c net.Conn) {
	c.SetDeadline(time.Now().Add(m.headerTimeout))
	if m.serverTLS != nil {
		tc := tls.Server(c, m.serverTLS)
		if err := tc.Handshake(); err != nil {
			m.logger.Warn("inter-node TLS handshake failed: connection refused", "remote", c.RemoteAddr().String(), "error", err)
			c.Close()
			return
		}
		c = tc
	}
	var h [1]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	m.mu.Lock()
	l, ok := m.layers[h[0]]
	var d Deadlines
	if ok {
		d = l.deadlines
	}
	m.mu.Unlock()
	if !ok {
		m.logger.Warn("connection with unknown header refused", "header", h[0], "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	if d != (Deadlines{}) {
		c = newServedConn(c, d, m.logger)
	}
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// Close stops accepting, closes every layer and waits for the goroutines.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	for _, l := range m.layers {
		l.Close()
	}
	m.mu.Unlock()
	err := m.ln.Close()
	m.wg.Wait()
	return err
}

// Layer is a net.Listener for one service plus a Dial for the same service on
// other nodes. It satisfies the stream layer that Raft's transport needs.
type Layer struct {
	header byte
	addr   net.Addr
	conns  chan net.Conn
	once   sync.Once
	done   chan struct{}
	tls    func(host string) *tls.Config
	// deadlines bound accepted connections (set by the Mux before they
	// are routed) and renew dialed ones.
	deadlines Deadlines
}

// Accept waits for the next connection for this layer.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

// Close stops Accept; the underlying listener belongs to the Mux.
func (l *Layer) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr returns the mux's listening address.
func (l *Layer) Addr() net.Addr { return l.addr }

// Dial connects to address and sends this layer's header byte. With
// Deadlines.Redial set, the connection renews itself (dials again) before a
// request that follows a pause of that length.
func (l *Layer) Dial(address string, timeout time.Duration) (net.Conn, error) {
	c, err := l.dial(address, timeout)
	if err != nil || l.deadlines.Redial <= 0 {
		return c, err
	}
	return &dialedConn{layer: l, addr: address, redial: l.deadlines.Redial, conn: c, last: time.Now()}, nil
}

func (l *Layer) dial(address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", address, timeout)
	if err != nil {
		return nil, err
	}
	if l.tls != nil {
		host, _, _ := net.SplitHostPort(address)
		tc := tls.Client(c, l.tls(host))
		tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", address, err)
		}
		tc.SetDeadline(time.Time{})
		c = tc
	}
	if _, err := c.Write([]byte{l.header}); err != nil {
		c.Close()
		return nil, fmt.Errorf("send header to %s: %w", address, err)
	}
	return c, nil
}
