// Package etcd keeps rqlited's leader key in etcd, bound to a lease.
package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rqlited/rqlited/disco"
)

// Config is the -disco-config of -disco-mode etcd-kv: clientv3's own JSON
// (durations in nanoseconds), as in rqlite.
type Config clientv3.Config

// LeaseTTL is how long the leader key outlives the leader that stops
// renewing it.
const LeaseTTL = 10 * time.Second

// Client implements disco.KV on etcd. The key is /<disco-key>/leader.
type Client struct {
	cli *clientv3.Client
	key string

	mu    sync.Mutex
	lease clientv3.LeaseID
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

var _ disco.KV = (*Client)(nil)

// endpoints returns the configured endpoints (default localhost:2379).
func endpoints(c Config) []string {
	if len(c.Endpoints) == 0 {
		return []string{"localhost:2379"}
	}
	return c.Endpoints
}

// New connects to etcd. It does not wait for etcd to answer: a store that
// is down at boot is retried by the caller.
func New(cfg Config, key string) (*Client, error) {
	cc := clientv3.Config(cfg)
	cc.Endpoints = endpoints(cfg)
	if cc.DialTimeout == 0 {
		cc.DialTimeout = 2 * time.Second
	}
	cc.Logger = zap.NewNop()
	for _, ep := range cc.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return nil, errors.New("etcd: empty endpoint in -disco-config")
		}
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return &Client{cli: cli, key: "/" + strings.Trim(key, "/") + "/leader"}, nil
}

// Key returns the leader key.
func (c *Client) Key() string { return c.key }

// Get implements disco.KV.
func (c *Client) Get(ctx context.Context) (disco.Entry, error) {
	resp, err := c.cli.Get(ctx, c.key)
	if err != nil {
		return disco.Entry{}, fmt.Errorf("etcd get %s: %w", c.key, err)
	}
	if len(resp.Kvs) == 0 {
		return disco.Entry{Version: uint64(resp.Header.Revision)}, nil
	}
	kv := resp.Kvs[0]
	var r disco.Record
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		// Not ours to read: treat it as a stale key.
		return disco.Entry{Record: &disco.Record{}, Version: uint64(kv.ModRevision)}, nil
	}
	return disco.Entry{Record: &r, Version: uint64(kv.ModRevision), Held: kv.Lease != 0}, nil
}

// leaseID returns this client's lease, granting one and keeping it alive
// if needed.
func (c *Client) leaseID(ctx context.Context) (clientv3.LeaseID, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lease != 0 {
		return c.lease, nil
	}
	g, err := c.cli.Grant(ctx, int64(LeaseTTL/time.Second))
	if err != nil {
		return 0, fmt.Errorf("etcd lease: %w", err)
	}
	kctx, cancel := context.WithCancel(context.Background())
	ch, err := c.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		cancel()
		return 0, fmt.Errorf("etcd keep-alive: %w", err)
	}
	c.lease, c.stop = g.ID, cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for range ch {
		}
		// The lease is gone (etcd unreachable for longer than its TTL, or
		// Close): the next write grants a new one.
		c.mu.Lock()
		if c.lease == g.ID {
			c.lease = 0
		}
		c.mu.Unlock()
	}()
	return g.ID, nil
}

func (c *Client) put(ctx context.Context, r disco.Record, cmp clientv3.Cmp) (bool, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	lease, err := c.leaseID(ctx)
	if err != nil {
		return false, err
	}
	resp, err := c.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(c.key, string(b), clientv3.WithLease(lease))).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd write %s: %w", c.key, err)
	}
	return resp.Succeeded, nil
}

// Create implements disco.KV.
func (c *Client) Create(ctx context.Context, r disco.Record) (bool, error) {
	return c.put(ctx, r, clientv3.Compare(clientv3.CreateRevision(c.key), "=", 0))
}

// Replace implements disco.KV.
func (c *Client) Replace(ctx context.Context, r disco.Record, version uint64) (bool, error) {
	return c.put(ctx, r, clientv3.Compare(clientv3.ModRevision(c.key), "=", int64(version)))
}

// Watch implements disco.KV.
func (c *Client) Watch(ctx context.Context, version uint64) error {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wc := c.cli.Watch(ctx, c.key, clientv3.WithRev(int64(version)+1))
	select {
	case <-wc:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops renewing the lease and closes the connection. The lease is
// left to expire rather than revoked: if this node led, the key must stay
// until the next leader replaces it, or a new node could find no key and
// form a second cluster.
func (c *Client) Close() error {
	c.mu.Lock()
	stop := c.stop
	c.lease = 0
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	err := c.cli.Close()
	c.wg.Wait()
	return err
}
