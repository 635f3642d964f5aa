// Package consul keeps rqlited's leader key in Consul's KV store, locked
// by a Consul session with a TTL.
package consul

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/rqlited/rqlited/disco"
)

// Config is the -disco-config of -disco-mode consul-kv, as in rqlite.
type Config struct {
	Address    string     `json:"address,omitempty"`
	Scheme     string     `json:"scheme,omitempty"`
	Datacenter string     `json:"datacenter,omitempty"`
	Token      string     `json:"token,omitempty"`
	TokenFile  string     `json:"token_file,omitempty"`
	Namespace  string     `json:"namespace,omitempty"`
	Partition  string     `json:"partition,omitempty"`
	BasicAuth  *BasicAuth `json:"basic_auth,omitempty"`
	TLSConfig  *TLSConfig `json:"tls_config,omitempty"`
}

// BasicAuth is HTTP basic authentication to Consul.
type BasicAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// TLSConfig is how rqlited verifies Consul and presents itself to it.
type TLSConfig struct {
	Address            string `json:"address,omitempty"`
	CAFile             string `json:"ca_file,omitempty"`
	CAPath             string `json:"ca_path,omitempty"`
	CAPem              string `json:"ca_pem,omitempty"`
	CertFile           string `json:"cert_file,omitempty"`
	CertPEM            string `json:"cert_pem,omitempty"`
	KeyFile            string `json:"key_file,omitempty"`
	KeyPEM             string `json:"key_pem,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

// Validate reports the first problem with c: a malformed address or
// scheme, or TLS settings over plain HTTP. It reads no files (see
// checkFiles).
func (c Config) Validate() error {
	if strings.Contains(c.Address, "://") || strings.HasPrefix(c.Address, "http") {
		return fmt.Errorf("consul address %q must be host:port: put the scheme in \"scheme\" (e.g. {\"address\":\"consul:8500\",\"scheme\":\"https\"})", c.Address)
	}
	switch c.Scheme {
	case "", "http", "https":
	default:
		return fmt.Errorf("consul -disco-config \"scheme\" %q must be \"http\" or \"https\"", c.Scheme)
	}
	if c.Scheme == "http" && c.TLSConfig != nil {
		// consul/api would silently ignore tls_config and send the token in clear.
		return errors.New("consul -disco-config has \"tls_config\" but \"scheme\" is \"http\": set \"scheme\":\"https\" (or leave scheme out)")
	}
	if t := c.TLSConfig; t != nil {
		return t.files().CheckPair("consul")
	}
	return nil
}

// files is the part of t that disco checks for every KV mode.
func (t *TLSConfig) files() disco.TLSFiles {
	return disco.TLSFiles{CAFile: t.CAFile, CAPath: t.CAPath, CertFile: t.CertFile, CertPEM: t.CertPEM, KeyFile: t.KeyFile, KeyPEM: t.KeyPEM}
}

// checkFiles reports a token or certificate file that cannot be read,
// naming its -disco-config key, or an empty token file (consul/api would
// silently send no token).
func (c Config) checkFiles() error {
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return fmt.Errorf("consul -disco-config token_file: cannot read %s: %w", c.TokenFile, disco.PathCause(err))
		}
		if strings.TrimSpace(string(b)) == "" {
			return fmt.Errorf("consul -disco-config token_file: %s is empty", c.TokenFile)
		}
	}
	if t := c.TLSConfig; t != nil {
		return t.files().CheckFiles("consul")
	}
	return nil
}

// APIConfig returns the consul/api configuration; unset fields keep the
// client's defaults (127.0.0.1:8500 and the CONSUL_HTTP_* variables).
func (c Config) APIConfig() *api.Config {
	ac := api.DefaultConfig()
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&ac.Address, c.Address)
	set(&ac.Scheme, c.Scheme)
	set(&ac.Datacenter, c.Datacenter)
	set(&ac.Token, c.Token)
	set(&ac.TokenFile, c.TokenFile)
	set(&ac.Namespace, c.Namespace)
	set(&ac.Partition, c.Partition)
	if c.BasicAuth != nil {
		ac.HttpAuth = &api.HttpBasicAuth{Username: c.BasicAuth.Username, Password: c.BasicAuth.Password}
	}
	if t := c.TLSConfig; t != nil {
		if c.Scheme == "" {
			ac.Scheme = "https" // TLS settings mean TLS
		}
		ac.TLSConfig = api.TLSConfig{Address: t.Address, CAFile: t.CAFile, CAPath: t.CAPath, CAPem: []byte(t.CAPem),
			CertFile: t.CertFile, CertPEM: []byte(t.CertPEM), KeyFile: t.KeyFile, KeyPEM: []byte(t.KeyPEM),
			InsecureSkipVerify: t.InsecureSkipVerify}
	}
	return ac
}

// SessionTTL is how long the key stays locked after its holder stops
// renewing (Consul may take up to twice as long).
const SessionTTL = 10 * time.Second

// Client implements disco.KV on Consul. The key is <disco-key>/leader.
type Client struct {
	c   *api.Client
	key string

	mu      sync.Mutex
	session string
	stop    chan struct{}
	wg      sync.WaitGroup
}

var _ disco.KV = (*Client)(nil)

// New returns a client; it does not contact Consul.
func New(cfg Config, key string) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.checkFiles(); err != nil {
		return nil, err
	}
	ac := cfg.APIConfig()
	c, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul -disco-config: %w", err)
	}
	// api.NewClient has put the token (from token_file, token or the
	// CONSUL_HTTP_TOKEN* variables) into ac.Token.
	if err := checkToken(c, ac.Token); err != nil {
		return nil, err
	}
	cl := &Client{c: c, key: strings.Trim(key, "/") + "/leader", stop: make(chan struct{})}
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		cl.renew()
	}()
	return cl, nil
}

// checkToken asks Consul about the client's ACL token, so that a token
// Consul does not know stops the node at once with a clear message instead
// of a boot timeout. Consul being unreachable, or ACLs being off, is not an
// error here.
func checkToken(c *api.Client, token string) error {
	if token == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _, err := c.ACL().TokenReadSelf((&api.QueryOptions{}).WithContext(ctx))
	var se api.StatusError
	if errors.As(err, &se) && se.Code == 403 && strings.Contains(se.Body, "ACL not found") {
		return fmt.Errorf("consul refused the ACL token (-disco-config \"token\" or \"token_file\"): %s", se.Body)
	}
	return nil
}

// Key returns the leader key.
func (c *Client) Key() string { return c.key }

// renew keeps this client's session alive; an invalidated session is
// dropped so the next write creates a new one.
func (c *Client) renew() {
	t := time.NewTicker(SessionTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		id := c.session
		c.mu.Unlock()
		if id == "" {
			continue
		}
		entry, _, err := c.c.Session().Renew(id, nil)
		if err == nil && entry == nil {
			c.mu.Lock()
			if c.session == id {
				c.session = ""
			}
			c.mu.Unlock()
		}
	}
}

func (c *Client) sessionID(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session != "" {
		return c.session, nil
	}
	id, _, err := c.c.Session().Create(&api.SessionEntry{
		Name: "rqlited " + c.key, TTL: SessionTTL.String(), Behavior: api.SessionBehaviorRelease,
		LockDelay: time.Millisecond,
	}, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("consul session: %w", err)
	}
	c.session = id
	return id, nil
}

func (c *Client) get(ctx context.Context, q *api.QueryOptions) (*api.KVPair, *api.QueryMeta, error) {
	if q == nil {
		q = &api.QueryOptions{}
	}
	p, meta, err := c.c.KV().Get(c.key, q.WithContext(ctx))
	if err != nil {
		return nil, nil, fmt.Errorf("consul get %s: %w", c.key, err)
	}
	return p, meta, nil
}

// Get implements disco.KV.
func (c *Client) Get(ctx context.Context) (disco.Entry, error) {
	p, meta, err := c.get(ctx, nil)
	if err != nil {
		return disco.Entry{}, err
	}
	if p == nil {
		return disco.Entry{Version: meta.LastIndex}, nil
	}
	var r disco.Record
	if err := json.Unmarshal(p.Value, &r); err != nil {
		return disco.Entry{Record: &disco.Record{}, Version: p.ModifyIndex}, nil
	}
	return disco.Entry{Record: &r, Version: p.ModifyIndex, Held: p.Session != ""}, nil
}

// membersPrefix is <disco-key>/members/.
func (c *Client) membersPrefix() string {
	return strings.TrimSuffix(c.key, "leader") + "members/"
}

// PutMember implements disco.KV.
func (c *Client) PutMember(ctx context.Context, r disco.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	key := c.membersPrefix() + r.ID
	if _, err := c.c.KV().Put(&api.KVPair{Key: key, Value: b}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul write %s: %w", key, err)
	}
	return nil
}

// Members implements disco.KV.
func (c *Client) Members(ctx context.Context) ([]disco.Record, error) {
	pairs, _, err := c.c.KV().List(c.membersPrefix(), (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("consul list %s: %w", c.membersPrefix(), err)
	}
	var out []disco.Record
	for _, p := range pairs {
		var r disco.Record
		if json.Unmarshal(p.Value, &r) == nil && r.Addr != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

func (c *Client) lock(ctx context.Context, r disco.Record, check *api.KVTxnOp) (bool, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	id, err := c.sessionID(ctx)
	if err != nil {
		return false, err
	}
	ops := api.TxnOps{{KV: check}, {KV: &api.KVTxnOp{Verb: api.KVLock, Key: c.key, Value: b, Session: id}}}
	ok, resp, _, err := c.c.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("consul write %s: %w", c.key, err)
	}
	if !ok && resp != nil {
		for _, e := range resp.Errors {
			if strings.Contains(e.What, "invalid session") {
				c.mu.Lock()
				if c.session == id {
					c.session = ""
				}
				c.mu.Unlock()
			}
		}
	}
	return ok, nil
}

// Create implements disco.KV.
func (c *Client) Create(ctx context.Context, r disco.Record) (bool, error) {
	return c.lock(ctx, r, &api.KVTxnOp{Verb: api.KVCheckNotExists, Key: c.key})
}

// Replace implements disco.KV. A key locked by another session (a former
// leader's) is released first by destroying that session.
func (c *Client) Replace(ctx context.Context, r disco.Record, version uint64) (bool, error) {
	p, _, err := c.get(ctx, nil)
	if err != nil {
		return false, err
	}
	if p == nil || p.ModifyIndex != version {
		return false, nil
	}
	c.mu.Lock()
	mine := c.session
	c.mu.Unlock()
	if p.Session != "" && p.Session != mine {
		if _, err := c.c.Session().Destroy(p.Session, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			return false, fmt.Errorf("consul release old leader's session: %w", err)
		}
		value := p.Value
		if p, _, err = c.get(ctx, nil); err != nil {
			return false, err
		}
		if p == nil || !bytes.Equal(p.Value, value) {
			return false, nil
		}
		version = p.ModifyIndex
	}
	return c.lock(ctx, r, &api.KVTxnOp{Verb: api.KVCheckIndex, Key: c.key, Index: version})
}

// Watch implements disco.KV with a blocking query.
func (c *Client) Watch(ctx context.Context, version uint64) error {
	wait := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		wait = max(time.Until(dl), time.Millisecond)
	}
	_, _, err := c.get(ctx, &api.QueryOptions{WaitIndex: version, WaitTime: wait})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Close stops renewing the session; it is left to expire rather than
// destroyed, so a leader's key stays locked until the next leader takes it.
func (c *Client) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	c.wg.Wait()
	return nil
}
