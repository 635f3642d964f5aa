package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/rqlited/rqlited/command"
)

// Client calls the cluster service of other nodes.
type Client struct {
	dialer  Dialer
	timeout time.Duration
	// creds returns the -join-as user's credentials (ok false: none).
	creds func() (username, password string, ok bool)

	mu     sync.Mutex
	idle   map[string][]net.Conn // kept-alive connections for pooledCall
	closed bool
}

// maxIdlePerAddr bounds the kept-alive connections to one node.
const maxIdlePerAddr = 4

// SetCredentials makes every call carry the credentials f returns, for
// receivers that run with -auth. Call it before the Client is used.
func (c *Client) SetCredentials(f func() (username, password string, ok bool)) {
	c.creds = f
}

// NewClient returns a Client; timeout bounds each call (connect, send and
// answer) unless the context ends sooner.
func NewClient(d Dialer, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Client{dialer: d, timeout: timeout}
}

// Close closes the kept-alive connections. The Client can still make
// calls afterwards; they are not kept.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, conns := range c.idle {
		for _, conn := range conns {
			conn.Close()
		}
	}
	c.idle = nil
	return nil
}

// pooledCall is call over a kept-alive connection, for frequent calls (a
// follower's read-index calls). A kept connection the other side has
// closed is retried once on a new one: only idempotent calls come here.
func (c *Client) pooledCall(ctx context.Context, addr string, req *request) (*response, error) {
	for attempt := 0; ; attempt++ {
		var conn net.Conn
		var reused bool
		if attempt == 0 {
			conn, reused = c.takeIdle(addr) // the retry dials afresh
		}
		resp, err := c.exchange(ctx, addr, conn, req)
		if err == nil {
			if resp.conn != nil {
				c.putIdle(addr, resp.conn)
			}
			return resp.resp, nil
		}
		if !reused || attempt > 0 || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (c *Client) takeIdle(addr string) (net.Conn, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conns := c.idle[addr]
	if len(conns) == 0 {
		return nil, false
	}
	conn := conns[len(conns)-1]
	c.idle[addr] = conns[:len(conns)-1]
	return conn, true
}

func (c *Client) putIdle(addr string, conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.idle[addr]) >= maxIdlePerAddr {
		conn.Close()
		return
	}
	if c.idle == nil {
		c.idle = map[string][]net.Conn{}
	}
	c.idle[addr] = append(c.idle[addr], conn)
}

type exchanged struct {
	resp *response
	conn net.Conn
}

// exchange sends req on conn (dialling addr if conn is nil) and reads the
// answer. On error the connection is closed.
func (c *Client) exchange(ctx context.Context, addr string, conn net.Conn, req *request) (*exchanged, error) {
	timeout := c.timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		if conn != nil {
			c.putIdle(addr, conn)
		}
		return nil, context.DeadlineExceeded
	}
	if c.creds != nil {
		if u, p, ok := c.creds(); ok {
			req.Username, req.Password = u, p
		}
	}
	if conn == nil {
		var err error
		if conn, err = c.dialer.Dial(addr, timeout); err != nil {
			return nil, err
		}
	}
	conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := writeFrame(conn, req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("send %s to %s: %w", req.Type, addr, err)
	}
	var resp response
	if err := readFrame(conn, &resp); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s at %s: %w", req.Type, addr, err)
	}
	if !stop() {
		// The context ended just as the answer came: the deadline may be
		// in the past now, so do not keep the connection.
		conn.Close()
		return &exchanged{resp: &resp, conn: nil}, nil
	}
	conn.SetDeadline(time.Time{})
	return &exchanged{resp: &resp, conn: conn}, nil
}

func (c *Client) call(ctx context.Context, addr string, req *request) (*response, error) {
	ex, err := c.exchange(ctx, addr, nil, req)
	if err != nil {
		return nil, err
	}
	if ex.conn != nil {
		ex.conn.Close()
	}
	return ex.resp, nil
}

// respError turns an error answer into a Go error that errors.Is can test.
func respError(r *response) error {
	if r.Error == "" {
		return nil
	}
	switch r.Code {
	case codeNotLeader:
		return command.ErrNotLeader
	case codeClusterMismatch:
		return fmt.Errorf("%w: %s", command.ErrClusterMismatch, r.Error)
	case codeNotFound:
		return fmt.Errorf("%w: %s", command.ErrNodeNotFound, r.Error)
	case codeUnauthorized:
		return fmt.Errorf("%w: %s", ErrUnauthorized, r.Error)
	}
	return errors.New(r.Error)
}

// leaderCall sends req to target and, while the answer is "not leader" and
// names a leader, follows it (a few hops at most).
func (c *Client) leaderCall(ctx context.Context, target string, req *request) (*response, error) {
	return c.leaderCallWith(ctx, target, req, c.call)
}

func (c *Client) leaderCallWith(ctx context.Context, target string, req *request,
	call func(context.Context, string, *request) (*response, error)) (*response, error) {
	addr := target
	for hop := 0; hop < 3; hop++ {
		resp, err := call(ctx, addr, req)
		if err != nil {
			return nil, err
		}
		err = respError(resp)
		if errors.Is(err, command.ErrNotLeader) && resp.Leader != "" && resp.Leader != addr {
			addr = resp.Leader
			continue
		}
		return resp, err
	}
	return nil, command.ErrNotLeader
}

// Join asks the cluster reachable at target to add this node.
func (c *Client) Join(ctx context.Context, target, id, addr string, voter bool, clusterID string) error {
	_, err := c.leaderCall(ctx, target, &request{Type: typeJoin, ID: id, Addr: addr, Voter: voter, ClusterID: clusterID})
	return err
}

// Remove asks the cluster reachable at target to remove node id.
func (c *Client) Remove(ctx context.Context, target, id string) error {
	_, err := c.leaderCall(ctx, target, &request{Type: typeRemove, ID: id})
	return err
}

// Stepdown asks the leader (found through target) to hand over leadership.
func (c *Client) Stepdown(ctx context.Context, target, id string) error {
	_, err := c.leaderCall(ctx, target, &request{Type: typeStepdown, ID: id})
	return err
}

// ReadIndex asks the leader (found through target) for its commit index,
// confirmed by a quorum. id and term are the asking node's Raft ID and
// current term. It satisfies store.ReadIndexer.
func (c *Client) ReadIndex(ctx context.Context, target, id string, term uint64) (uint64, error) {
	resp, err := c.leaderCallWith(ctx, target, &request{Type: typeReadIndex, ID: id, Term: term}, c.pooledCall)
	if err != nil {
		return 0, err
	}
	return resp.Index, nil
}

// Identify returns the Raft ID, advertised Raft address and cluster ID of
// the node at addr.
func (c *Client) Identify(ctx context.Context, addr string) (id, raftAddr, clusterID string, err error) {
	resp, err := c.call(ctx, addr, &request{Type: typeMeta})
	if err != nil {
		return "", "", "", err
	}
	if err := respError(resp); err != nil {
		return "", "", "", err
	}
	return resp.ID, resp.Addr, resp.ClusterID, nil
}

// NodeMeta returns the HTTP API URL and version of the node at addr.
func (c *Client) NodeMeta(ctx context.Context, addr string) (apiURL, version string, err error) {
	resp, err := c.call(ctx, addr, &request{Type: typeMeta})
	if err != nil {
		return "", "", err
	}
	return resp.APIURL, resp.Version, respError(resp)
}

// Notify tells the node at target that this node is ready to bootstrap,
// and returns what that node reports about itself.
func (c *Client) notify(ctx context.Context, target string, req *request) (*response, error) {
	req.Type = typeNotify
	resp, err := c.call(ctx, target, req)
	if err != nil {
		return nil, err
	}
	return resp, respError(resp)
}
