package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rqlited/rqlited/command"
)

// Client calls the cluster service of other nodes.
type Client struct {
	dialer  Dialer
	timeout time.Duration
	// creds returns the -join-as user's credentials (ok false: none).
	creds func() (username, password string, ok bool)
}

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

func (c *Client) call(ctx context.Context, addr string, req *request) (*response, error) {
	timeout := c.timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	if c.creds != nil {
		if u, p, ok := c.creds(); ok {
			req.Username, req.Password = u, p
		}
	}
	conn, err := c.dialer.Dial(addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if err := writeFrame(conn, req); err != nil {
		return nil, fmt.Errorf("send %s to %s: %w", req.Type, addr, err)
	}
	var resp response
	if err := readFrame(conn, &resp); err != nil {
		return nil, fmt.Errorf("%s at %s: %w", req.Type, addr, err)
	}
	return &resp, nil
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
	addr := target
	for hop := 0; hop < 3; hop++ {
		resp, err := c.call(ctx, addr, req)
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
// confirmed by a quorum round. It satisfies store.ReadIndexer.
func (c *Client) ReadIndex(ctx context.Context, target string) (uint64, error) {
	resp, err := c.leaderCall(ctx, target, &request{Type: typeReadIndex})
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
