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

// Mux reads the header byte of each accepted connection and hands the
// connection to the Layer registered for that byte.
type Mux struct {
	ln            net.Listener
	logger        *slog.Logger
	headerTimeout time.Duration

	// serverTLS and clientTLS, when set, wrap every connection in TLS
	// before the header byte: accepted ones as a server, dialed ones as a
	// client.
	serverTLS *tls.Config
	clientTLS func(host string) *tls.Config

	mu     sync.Mutex
	layers map[byte]*Layer
	closed bool
	wg     sync.WaitGroup
}

// New returns a Mux over ln. Call Serve to start it.
func New(ln net.Listener, logger *slog.Logger) *Mux {
	return &Mux{ln: ln, logger: logger.With("component", "mux"), headerTimeout: 10 * time.Second, layers: map[byte]*Layer{}}
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
	l := &Layer{header: h, addr: m.ln.Addr(), conns: make(chan net.Conn), done: make(chan struct{}), tls: m.clientTLS}
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
	m.mu.Unlock()
	if !ok {
		m.logger.Warn("connection with unknown header refused", "header", h[0], "remote", c.RemoteAddr().String())
		c.Close()
		return
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

// Dial connects to address and sends this layer's header byte.
func (l *Layer) Dial(address string, timeout time.Duration) (net.Conn, error) {
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
