// Package etcd keeps rqlited's leader key in etcd, bound to a lease.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/rqlited/rqlited/disco"
	"github.com/rqlited/rqlited/internal/tlsconfig"
)

// Config is the -disco-config of -disco-mode etcd-kv: clientv3's own JSON
// (durations in nanoseconds), as in rqlite, so every key rqlite accepts
// (endpoints, username, password, dial-timeout, ...) still works, plus
// "tls_config".
type Config struct {
	clientv3.Config
	// TLSConfig is how rqlited verifies etcd and presents itself to it;
	// the keys are those of the consul-kv tls_config.
	TLSConfig *TLSConfig `json:"tls_config,omitempty"`
}

// TLSConfig is the "tls_config" object of the etcd -disco-config. Files are
// re-read when they change, so certificates can be rotated without a
// restart; the *_pem forms are fixed at start.
type TLSConfig struct {
	CAFile             string `json:"ca_file,omitempty"`
	CAPem              string `json:"ca_pem,omitempty"`
	CertFile           string `json:"cert_file,omitempty"`
	CertPEM            string `json:"cert_pem,omitempty"`
	KeyFile            string `json:"key_file,omitempty"`
	KeyPEM             string `json:"key_pem,omitempty"`
	ServerName         string `json:"server_name,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

// LeaseTTL is how long the leader key outlives the leader that stops
// renewing it.
const LeaseTTL = 10 * time.Second

// Client implements disco.KV on etcd. The key is /<disco-key>/leader.
type Client struct {
	cfg  clientv3.Config
	key  string
	diag *tlsDiag // nil without TLS

	connMu sync.Mutex
	cli    *clientv3.Client
	closed bool

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

// scheme returns the lower-case scheme of an endpoint, "" for host:port.
func scheme(ep string) string {
	if i := strings.Index(ep, "://"); i > 0 {
		return strings.ToLower(ep[:i])
	}
	if strings.HasPrefix(ep, "unixs:") {
		return "unixs"
	}
	if strings.HasPrefix(ep, "unix:") {
		return "unix"
	}
	return ""
}

// New checks the configuration and connects to etcd. A store that is down
// at boot is not an error: the connection is retried on use, and the
// caller retries. A store that refuses the username and password is.
func New(cfg Config, key string) (*Client, error) {
	cc, diag, err := clientConfigDiag(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cc, diag: diag, key: "/" + strings.Trim(key, "/") + "/leader"}
	if cc.Username == "" {
		// clientv3.New does not contact etcd without credentials.
		if _, err := c.conn(context.Background()); err != nil {
			return nil, err
		}
		return c, nil
	}
	// With credentials clientv3.New authenticates, waiting up to the dial
	// timeout: a refusal is final, an unreachable store is retried.
	if _, err := c.conn(context.Background()); err != nil && errors.Is(err, errAuth) {
		return nil, err
	}
	return c, nil
}

// errAuth marks a refused username or password.
var errAuth = errors.New("etcd refused the username or password")

// conn returns the etcd client, creating it if an earlier attempt failed.
func (c *Client) conn(ctx context.Context) (*clientv3.Client, error) {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.cli != nil {
		return c.cli, nil
	}
	if c.closed {
		return nil, errors.New("etcd: client closed")
	}
	cc := c.cfg
	if dl, ok := ctx.Deadline(); ok && cc.Username != "" {
		cc.DialTimeout = min(cc.DialTimeout, max(time.Until(dl), time.Millisecond))
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		if errors.Is(err, rpctypes.ErrAuthFailed) || errors.Is(err, rpctypes.ErrUserEmpty) || errors.Is(err, rpctypes.ErrUserNotFound) {
			return nil, fmt.Errorf("%w (user %q, -disco-config \"username\" and \"password\"): %v", errAuth, cc.Username, err)
		}
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(cc.Endpoints, ","), c.diag.annotate(err))
	}
	c.cli = cli
	return cli, nil
}

// clientConfig validates cfg and turns it into clientv3's configuration.
func clientConfig(cfg Config) (clientv3.Config, error) {
	cc, _, err := clientConfigDiag(cfg)
	return cc, err
}

// clientConfigDiag is clientConfig, also returning where the TLS
// credentials record their latest failure (nil without TLS).
func clientConfigDiag(cfg Config) (clientv3.Config, *tlsDiag, error) {
	cc := cfg.Config
	cc.Endpoints = endpoints(cfg)
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"dial-timeout", cc.DialTimeout}, {"dial-keep-alive-time", cc.DialKeepAliveTime}, {"dial-keep-alive-timeout", cc.DialKeepAliveTimeout},
		{"auto-sync-interval", cc.AutoSyncInterval}, {"backoff-wait-between", cc.BackoffWaitBetween}} {
		if d.v < 0 {
			return cc, nil, fmt.Errorf("etcd -disco-config %q is negative (durations are in nanoseconds)", d.key)
		}
	}
	if cc.DialTimeout == 0 {
		cc.DialTimeout = 2 * time.Second
	}
	cc.Logger = zap.NewNop()
	cc.LogConfig = nil
	if (cc.Username == "") != (cc.Password == "") {
		// clientv3 silently skips authentication unless both are set.
		return cc, nil, errors.New("etcd -disco-config: \"username\" and \"password\" go together: set both or neither (is an environment variable in the password unset?)")
	}
	https := false
	schemes := map[string]bool{}
	for _, ep := range cc.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return cc, nil, errors.New("etcd: empty endpoint in -disco-config")
		}
		s := scheme(ep)
		schemes[s] = true
		https = https || s == "https" || s == "unixs"
	}
	secure := https || cfg.TLSConfig != nil || cc.TLS != nil
	if secure && schemes["http"] {
		// clientv3 picks TLS or not by the first endpoint's scheme, for all.
		return cc, nil, fmt.Errorf("etcd -disco-config: endpoints %q use http:// (plaintext) while TLS is on (https:// or tls_config): use https:// for every endpoint", cc.Endpoints)
	}
	if cfg.TLSConfig != nil && cc.TLS != nil {
		return cc, nil, errors.New("etcd -disco-config: use \"tls_config\", not both it and \"TLS\"")
	}
	if cc.TLS != nil {
		// clientv3's own TLS object, as rqlite accepted it: used as given.
		return cc, nil, nil
	}
	if !secure {
		return cc, nil, nil
	}
	t := cfg.TLSConfig
	if t == nil {
		t = &TLSConfig{} // https:// without tls_config: the system roots
	}
	tlsFor, err := t.clientTLS()
	if err != nil {
		return cc, nil, err
	}
	diag := &tlsDiag{}
	// clientv3 wants a *tls.Config to turn TLS on; the connections use the
	// credentials below, which verify each endpoint's own host name.
	tc := tlsFor(t.ServerName)
	cc.TLS = tc
	cc.DialOptions = append(append([]grpc.DialOption(nil), cc.DialOptions...),
		grpc.WithTransportCredentials(&perHostTLS{tlsFor: tlsFor, diag: diag}))
	return cc, diag, nil
}

// clientTLS returns the client TLS configuration for a connection to a
// host: it verifies the server's certificate for server_name, or else for
// that host. Files go through tlsconfig.Source, so rotated files are
// picked up.
func (t *TLSConfig) clientTLS() (func(host string) *tls.Config, error) {
	for _, p := range []struct{ file, pem, name string }{
		{t.CAFile, t.CAPem, "ca"}, {t.CertFile, t.CertPEM, "cert"}, {t.KeyFile, t.KeyPEM, "key"},
	} {
		if p.file != "" && p.pem != "" {
			return nil, fmt.Errorf("etcd -disco-config tls_config: set %s_file or %s_pem, not both", p.name, p.name)
		}
	}
	files := disco.TLSFiles{CAFile: t.CAFile, CertFile: t.CertFile, CertPEM: t.CertPEM, KeyFile: t.KeyFile, KeyPEM: t.KeyPEM}
	if err := files.CheckPair("etcd"); err != nil {
		return nil, err
	}
	if (t.CertFile != "") != (t.KeyFile != "") {
		return nil, errors.New("etcd -disco-config tls_config: give the certificate and key both as files or both as PEM")
	}
	if err := files.CheckFiles("etcd"); err != nil {
		return nil, err
	}
	src, err := tlsconfig.NewSource(tlsconfig.Files{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile})
	if err != nil {
		return nil, fmt.Errorf("etcd -disco-config tls_config: %w", err)
	}
	var cert *tls.Certificate
	if t.CertPEM != "" {
		c, err := tls.X509KeyPair([]byte(t.CertPEM), []byte(t.KeyPEM))
		if err != nil {
			return nil, fmt.Errorf("etcd -disco-config tls_config.cert_pem and key_pem: %w", err)
		}
		cert = &c
	}
	var pool *x509.CertPool
	if t.CAPem != "" {
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(t.CAPem)) {
			return nil, errors.New("etcd -disco-config tls_config.ca_pem holds no PEM certificate")
		}
	}
	forHost := src.ClientFor(tlsconfig.ClientOptions{ServerName: t.ServerName, NoVerify: t.InsecureSkipVerify})
	return func(host string) *tls.Config {
		c := forHost(host)
		if cert != nil {
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		if pool != nil && !t.InsecureSkipVerify {
			name := t.ServerName
			if name == "" {
				name = host
			}
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("server presented no certificate")
				}
				if name == "" {
					return errors.New("no server name to verify the certificate against")
				}
				opts := x509.VerifyOptions{Roots: pool, DNSName: name, Intermediates: x509.NewCertPool()}
				for _, ic := range cs.PeerCertificates[1:] {
					opts.Intermediates.AddCert(ic)
				}
				_, err := cs.PeerCertificates[0].Verify(opts)
				return err
			}
		}
		return c
	}, nil
}

// perHostTLS is gRPC's TLS with a configuration made for each connection,
// so that the server's certificate is checked against the host of the
// endpoint dialed (one client may have several endpoints, and crypto/tls
// sends no server name for IP addresses).
//
// It also keeps the latest TLS failure in diag: gRPC retries connections
// quietly and reports only a deadline, which says nothing about a
// certificate the server refused.
type perHostTLS struct {
	tlsFor func(host string) *tls.Config
	diag   *tlsDiag
}

func (p *perHostTLS) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	host := authority
	if h, _, err := net.SplitHostPort(authority); err == nil {
		host = h
	}
	conn, info, err := credentials.NewTLS(p.tlsFor(host)).ClientHandshake(ctx, authority, raw)
	if err != nil {
		err = fmt.Errorf("TLS handshake with etcd %s: %w", authority, err)
		if strings.Contains(err.Error(), "certificate is valid for") {
			err = fmt.Errorf("%w (set tls_config.server_name if the certificate names another host)", err)
		}
		p.diag.set(err)
		return nil, nil, err
	}
	return &diagConn{Conn: conn, diag: p.diag}, info, nil
}

func (p *perHostTLS) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("etcd: client credentials only")
}

func (p *perHostTLS) Info() credentials.ProtocolInfo {
	return credentials.NewTLS(p.tlsFor("")).Info()
}

func (p *perHostTLS) Clone() credentials.TransportCredentials {
	return &perHostTLS{tlsFor: p.tlsFor, diag: p.diag}
}

// OverrideServerName is part of gRPC's (deprecated) interface; the name to
// verify is tls_config.server_name.
func (p *perHostTLS) OverrideServerName(string) error { return nil }

// tlsDiag remembers the latest TLS failure talking to etcd.
type tlsDiag struct {
	mu  sync.Mutex
	err error
}

func (d *tlsDiag) set(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
}

// annotate adds the latest TLS failure to err, a timeout or unavailability
// that would otherwise not say why.
func (d *tlsDiag) annotate(err error) error {
	if d == nil || err == nil {
		return err
	}
	d.mu.Lock()
	last := d.err
	d.mu.Unlock()
	if last == nil {
		return err
	}
	return fmt.Errorf("%w (last TLS error: %v)", err, last)
}

// diagConn records a TLS alert from the server after the handshake: with
// TLS 1.3 a refused client certificate shows up on the first read.
type diagConn struct {
	net.Conn
	diag *tlsDiag
}

func (c *diagConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	var oe *net.OpError
	switch {
	case err != nil && errors.As(err, &oe) && oe.Op == "remote error":
		c.diag.set(fmt.Errorf("etcd refused the connection: %w (is tls_config.cert_file a client certificate etcd trusts?)", err))
	case err == nil && n > 0:
		c.diag.set(nil)
	}
	return n, err
}

// Key returns the leader key.
func (c *Client) Key() string { return c.key }

// Get implements disco.KV.
func (c *Client) Get(ctx context.Context) (disco.Entry, error) {
	cli, err := c.conn(ctx)
	if err != nil {
		return disco.Entry{}, err
	}
	resp, err := cli.Get(ctx, c.key)
	if err != nil {
		return disco.Entry{}, fmt.Errorf("etcd get %s: %w", c.key, c.diag.annotate(err))
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
	cli, err := c.conn(ctx)
	if err != nil {
		return 0, err
	}
	g, err := cli.Grant(ctx, int64(LeaseTTL/time.Second))
	if err != nil {
		return 0, fmt.Errorf("etcd lease: %w", c.diag.annotate(err))
	}
	kctx, cancel := context.WithCancel(context.Background())
	ch, err := cli.KeepAlive(kctx, g.ID)
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
	cli, err := c.conn(ctx)
	if err != nil {
		return false, err
	}
	resp, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(c.key, string(b), clientv3.WithLease(lease))).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd write %s: %w", c.key, c.diag.annotate(err))
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

// membersPrefix is /<disco-key>/members/.
func (c *Client) membersPrefix() string {
	return strings.TrimSuffix(c.key, "leader") + "members/"
}

// PutMember implements disco.KV.
func (c *Client) PutMember(ctx context.Context, r disco.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	cli, err := c.conn(ctx)
	if err != nil {
		return err
	}
	key := c.membersPrefix() + r.ID
	if _, err := cli.Put(ctx, key, string(b)); err != nil {
		return fmt.Errorf("etcd write %s: %w", key, c.diag.annotate(err))
	}
	return nil
}

// Members implements disco.KV.
func (c *Client) Members(ctx context.Context) ([]disco.Record, error) {
	cli, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := cli.Get(ctx, c.membersPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd list %s: %w", c.membersPrefix(), c.diag.annotate(err))
	}
	var out []disco.Record
	for _, kv := range resp.Kvs {
		var r disco.Record
		if json.Unmarshal(kv.Value, &r) == nil && r.Addr != "" {
			out = append(out, r)
		}
	}
	return out, nil
}

// Watch implements disco.KV.
func (c *Client) Watch(ctx context.Context, version uint64) error {
	cli, err := c.conn(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wc := cli.Watch(ctx, c.key, clientv3.WithRev(int64(version)+1))
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
	c.connMu.Lock()
	cli := c.cli
	c.closed = true
	c.connMu.Unlock()
	var err error
	if cli != nil {
		err = cli.Close()
	}
	c.wg.Wait()
	return err
}
