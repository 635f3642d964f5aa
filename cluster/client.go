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
	// isMember, if set, says whether a Raft address is a member of this
	// node's configuration (see SetMemberCheck).
	isMember func(raftAddr string) bool

	// maxIdle is how long a kept-alive connection may wait for its next
	// call; one idle longer is closed instead of used.
	maxIdle time.Duration

	mu     sync.Mutex
	idle   map[string][]idleConn // kept-alive connections for pooledCall
	closed bool
}

// idleConn is a kept-alive connection and when it was put aside.
type idleConn struct {
	conn  net.Conn
	since time.Time
}

// maxIdlePerAddr bounds the kept-alive connections to one node.
const maxIdlePerAddr = 4

// clientMaxIdle is how long the client keeps a connection between calls:
// well under the service's IdleTimeout (DefaultIdleTimeout), so that the
// client drops a connection before the other node closes it under a call.
const clientMaxIdle = DefaultIdleTimeout / 2

// needsCredentials reports whether a call of type t carries the -join-as
// credentials: only those the receiver authorises (see Service.allowed).
// Meta, which anyone may make, never does, so that a node does not hand
// the password to whoever answers at an address it asks about.
func needsCredentials(t string) bool {
	switch t {
	case typeJoin, typeNotify, typeRemove, typeStepdown, typeReadIndex:
		return true
	}
	return false
}

// SetCredentials makes the calls that need them (join, notify, remove,
// stepdown, read-index; never meta) carry the credentials f returns, for
// receivers that run with -auth. Call it before the Client is used.
func (c *Client) SetCredentials(f func() (username, password string, ok bool)) {
	c.creds = f
}

// ErrNotMember is returned for a call that only a cluster member should
// receive (remove, stepdown, read-index) when the address it would go to
// is not in this node's Raft configuration.
var ErrNotMember = errors.New("not a member of this node's Raft configuration")

// memberOnly reports whether a call of type t is one this node makes as a
// member of a cluster, to the leader it follows: it then carries the
// -join-as credentials only to a member. Join and notify come from a node
// that has no configuration yet, so their targets cannot be checked.
func memberOnly(t string) bool {
	switch t {
	case typeRemove, typeStepdown, typeReadIndex:
		return true
	}
	return false
}

// SetMemberCheck makes remove, stepdown and read-index calls, and the
// hops they take to a leader, go only to Raft addresses f accepts (this
// node's Raft configuration): a peer that poses as leader to this node
// is not sent the -join-as credentials. Call it before the Client is used.
func (c *Client) SetMemberCheck(f func(raftAddr string) bool) {
	c.isMember = f
}

// NewClient returns a Client; timeout bounds each call (connect, send and
// answer) unless the context ends sooner.
func NewClient(d Dialer, timeout time.Duration) *Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Client{dialer: d, timeout: timeout, maxIdle: clientMaxIdle}
}

// Close closes the kept-alive connections. The Client can still make
// calls afterwards; they are not kept.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, conns := range c.idle {
		for _, ic := range conns {
			ic.conn.Close()
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
	c.expireIdle(time.Now())
	conns := c.idle[addr]
	if len(conns) == 0 {
		return nil, false
	}
	ic := conns[len(conns)-1]
	c.idle[addr] = conns[:len(conns)-1]
	return ic.conn, true
}

func (c *Client) putIdle(addr string, conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.expireIdle(now)
	if c.closed || len(c.idle[addr]) >= maxIdlePerAddr {
		conn.Close()
		return
	}
	if c.idle == nil {
		c.idle = map[string][]idleConn{}
	}
	c.idle[addr] = append(c.idle[addr], idleConn{conn: conn, since: now})
}

// expireIdle closes the kept-alive connections, to every node, that have
// waited longer than maxIdle. Connections are appended as they are put
// aside, so the oldest come first. Called with c.mu held.
func (c *Client) expireIdle(now time.Time) {
	for addr, conns := range c.idle {
		n := 0
		for n < len(conns) && now.Sub(conns[n].since) > c.maxIdle {
			conns[n].conn.Close()
			n++
		}
		switch {
		case n == len(conns):
			delete(c.idle, addr)
		case n > 0:
			c.idle[addr] = append(conns[:0], conns[n:]...)
		}
	}
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
	req.Username, req.Password = "", ""
	if c.creds != nil && needsCredentials(req.Type) {
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
		if c.isMember != nil && memberOnly(req.Type) && !c.isMember(addr) {
			return nil, fmt.Errorf("%s to %s refused: %w", req.Type, addr, ErrNotMember)
		}
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

// ErrNotThatNode is returned by MemberAPIURL when the node answering at an
// address is not the member the caller expects there.
var ErrNotThatNode = errors.New("the node answering is not the expected member")

// MemberAPIURL returns the HTTP API URL of member id, asking the node at
// raftAddr (the member's address in the Raft configuration). It fails
// with ErrNotThatNode unless the node that answers says it is id. Without
// node TLS that is the answerer's own word: see DOC/SECURITY.md for what
// it does and does not prove.
func (c *Client) MemberAPIURL(ctx context.Context, id, raftAddr string) (string, error) {
	resp, err := c.call(ctx, raftAddr, &request{Type: typeMeta})
	if err != nil {
		return "", err
	}
	if err := respError(resp); err != nil {
		return "", err
	}
	if resp.ID != id {
		return "", fmt.Errorf("%w: %s answers as %q, not %q", ErrNotThatNode, raftAddr, resp.ID, id)
	}
	if resp.APIURL == "" {
		return "", fmt.Errorf("member %s at %s reported no API URL", id, raftAddr)
	}
	return resp.APIURL, nil
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
