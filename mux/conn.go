package mux

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// phase is where an accepted connection under Deadlines stands.
type phase int

const (
	phaseFirst   phase = iota // before the first request
	phaseIdle                 // between an answer and the next request
	phaseRequest              // inside a request: from its first byte to the answer
)

func (p phase) String() string {
	switch p {
	case phaseFirst:
		return "waiting for the first request"
	case phaseIdle:
		return "idle between requests"
	}
	return "inside a request"
}

// servedConn is an accepted connection under Deadlines. Its reader (the
// service) reads a request, writes the answer, then reads the next one: a
// read that returns data starts a request, a write ends it. Each read and
// write gets the deadline of its phase; a connection that misses one is
// closed.
type servedConn struct {
	net.Conn
	d      Deadlines
	first  time.Time // by when the first request must start
	logger *slog.Logger

	mu    sync.Mutex
	phase phase
}

func newServedConn(c net.Conn, d Deadlines, logger *slog.Logger) *servedConn {
	return &servedConn{Conn: c, d: d, first: time.Now().Add(d.First), logger: logger}
}

// Read reads with the deadline of the current phase. A connection that
// sends nothing more between requests reads as ended (io.EOF), as if the
// peer had closed it; one that stalls inside a request gets the timeout.
func (c *servedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	ph := c.phase
	c.mu.Unlock()
	var dl time.Time
	switch {
	case ph == phaseFirst && c.d.First > 0:
		dl = c.first
	case ph == phaseIdle && c.d.Idle > 0:
		dl = time.Now().Add(c.d.Idle)
	case ph == phaseRequest && c.d.Stall > 0:
		dl = time.Now().Add(c.d.Stall)
	}
	c.Conn.SetReadDeadline(dl)
	n, err := c.Conn.Read(p)
	if n > 0 && ph != phaseRequest {
		c.mu.Lock()
		if c.phase == ph {
			c.phase = phaseRequest
		}
		c.mu.Unlock()
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.Conn.Close()
		c.logger.Debug("inter-node connection closed: no data in time", "remote", c.RemoteAddr().String(), "phase", ph.String())
		if n == 0 && ph != phaseRequest {
			return 0, io.EOF
		}
		return n, fmt.Errorf("inter-node connection stalled %s: %w", ph, err)
	}
	return n, err
}

// Write writes an answer, which ends the request it answers.
func (c *servedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.phase = phaseIdle
	c.mu.Unlock()
	var dl time.Time
	if c.d.Stall > 0 {
		dl = time.Now().Add(c.d.Stall)
	}
	c.Conn.SetWriteDeadline(dl)
	n, err := c.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.Conn.Close()
		c.logger.Debug("inter-node connection closed: answer not taken in time", "remote", c.RemoteAddr().String())
	}
	return n, err
}

// dialedConn is a dialed connection under Deadlines.Redial. Before a write
// that follows a pause of Redial or more, with no read waiting (so no
// request is half answered), it dials a new connection and closes the old
// one, which the other node may be about to close as idle. Its user sees
// one connection throughout: hashicorp/raft keeps spare connections in a
// pool and would otherwise fail one request on each that the other node
// had closed.
type dialedConn struct {
	layer  *Layer
	addr   string
	redial time.Duration

	mu       sync.Mutex
	conn     net.Conn
	last     time.Time // end of the last read or write
	reads    int       // reads in progress
	rdl, wdl time.Time // deadlines set by the user
	closed   bool
}

// renewTimeout bounds a renewal when the user has set no write deadline.
const renewTimeout = 10 * time.Second

// current returns the connection to write on, renewed first if it has
// been idle for Redial.
func (c *dialedConn) current() (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.reads > 0 || time.Since(c.last) < c.redial {
		return c.conn, nil
	}
	timeout := renewTimeout
	if !c.wdl.IsZero() {
		if timeout = time.Until(c.wdl); timeout <= 0 {
			return c.conn, nil // the write fails on its deadline anyway
		}
	}
	nc, err := c.layer.dial(c.addr, timeout)
	c.conn.Close()
	if err != nil {
		return nil, fmt.Errorf("renew idle connection to %s: %w", c.addr, err)
	}
	nc.SetReadDeadline(c.rdl)
	nc.SetWriteDeadline(c.wdl)
	c.conn, c.last = nc, time.Now()
	return nc, nil
}

func (c *dialedConn) Write(p []byte) (int, error) {
	conn, err := c.current()
	if err != nil {
		return 0, err
	}
	n, err := conn.Write(p)
	c.mu.Lock()
	c.last = time.Now()
	c.mu.Unlock()
	return n, err
}

func (c *dialedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	c.reads++
	conn := c.conn
	c.mu.Unlock()
	n, err := conn.Read(p)
	c.mu.Lock()
	c.reads--
	c.last = time.Now()
	c.mu.Unlock()
	return n, err
}

func (c *dialedConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.conn.Close()
}

func (c *dialedConn) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.LocalAddr()
}

func (c *dialedConn) RemoteAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn.RemoteAddr()
}

func (c *dialedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl, c.wdl = t, t
	return c.conn.SetDeadline(t)
}

func (c *dialedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl = t
	return c.conn.SetReadDeadline(t)
}

func (c *dialedConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wdl = t
	return c.conn.SetWriteDeadline(t)
}
