//go:build system

package system_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rqlited/rqlited/internal/certtest"
)

// toolPath finds a server binary built by tools/build.sh. make test sets
// RQLITED_TOOLS, and then a missing binary is a failure; a bare `go test`
// without it skips the tests that need the server.
func toolPath(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("RQLITED_TOOLS")
	required := dir != ""
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "rqlited-tools")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		if required {
			t.Fatalf("%s not built: run tools/build.sh %s", p, dir)
		}
		t.Skipf("%s not built (run `make tools`, or `make test` which builds it)", p)
	}
	return p
}

// kvServer is a real Consul agent or etcd server run by a test.
type kvServer struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer
	args []string
	bin  string
	Addr string // host:port of the client API
	done chan struct{}
	// For servers with TLS: the scheme of the health check ("" is http)
	// and the client that passes it (nil: http.DefaultClient).
	scheme string
	client *http.Client
}

func (s *kvServer) start() {
	s.t.Helper()
	s.out = &syncBuffer{}
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	cmd, done := s.cmd, s.done
	go func() { cmd.Wait(); close(done) }()
	s.t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if s.t.Failed() {
			s.t.Logf("%s output:\n%s", filepath.Base(s.bin), s.out.String())
		}
	})
}

// Stop kills the server (a crash, as far as clients can tell).
func (s *kvServer) Stop() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// waitHealthy polls path until it answers 200.
func (s *kvServer) waitHealthy(path string) {
	s.t.Helper()
	scheme, client := "http", http.DefaultClient
	if s.scheme != "" {
		scheme = s.scheme
	}
	if s.client != nil {
		client = s.client
	}
	waitFor(s.t, 30*time.Second, filepath.Base(s.bin)+" healthy", func() bool {
		resp, err := client.Get(scheme + "://" + s.Addr + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// startEtcd runs a single-member etcd on loopback ports with its own data
// directory.
func startEtcd(t testing.TB) *kvServer {
	t.Helper()
	bin := toolPath(t, "etcd")
	client, peer := freePort(t), freePort(t)
	s := &kvServer{t: t, bin: bin, Addr: client, args: []string{
		"--data-dir", t.TempDir(), "--name", "test",
		"--listen-client-urls", "http://" + client, "--advertise-client-urls", "http://" + client,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "test=http://" + peer, "--log-level", "error",
	}}
	s.start()
	s.waitHealthy("/health")
	return s
}

// EtcdTLS serves etcd's client API over TLS with the server certificate
// Server, and with ClientCertAuth requires client certificates signed by
// the CA in CAFile. Client is a certificate the test itself uses.
type EtcdTLS struct {
	CAFile         string
	Server         certtest.Pair
	Client         certtest.Pair
	ClientCertAuth bool
}

// EtcdAuth turns on etcd authentication: a root user, and User with
// Password, whose role may read and write only keys under Prefix.
type EtcdAuth struct {
	RootPassword   string
	User, Password string
	Prefix         string
}

// EtcdOptions configure startEtcdWith.
type EtcdOptions struct {
	TLS  *EtcdTLS
	Auth *EtcdAuth
}

// clientTLS is the test's own TLS configuration for etcd.
func (o EtcdTLS) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	b, err := os.ReadFile(o.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	cert, err := tls.LoadX509KeyPair(o.Client.CertFile, o.Client.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}
}

// startEtcdWith runs a single-member etcd like startEtcd, optionally with
// TLS on the client API and with authentication on.
func startEtcdWith(t testing.TB, o EtcdOptions) *kvServer {
	t.Helper()
	if o.TLS == nil {
		s := startEtcd(t)
		if o.Auth != nil {
			s.setupEtcdAuth(o)
		}
		return s
	}
	bin := toolPath(t, "etcd")
	client, peer := freePort(t), freePort(t)
	s := &kvServer{t: t, bin: bin, Addr: client, scheme: "https", args: []string{
		"--data-dir", t.TempDir(), "--name", "test",
		"--listen-client-urls", "https://" + client, "--advertise-client-urls", "https://" + client,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "test=http://" + peer, "--log-level", "error",
		"--cert-file", o.TLS.Server.CertFile, "--key-file", o.TLS.Server.KeyFile, "--trusted-ca-file", o.TLS.CAFile,
	}}
	if o.TLS.ClientCertAuth {
		s.args = append(s.args, "--client-cert-auth")
	}
	s.client = &http.Client{Transport: &http.Transport{TLSClientConfig: o.TLS.clientTLS(t)}}
	s.start()
	s.waitHealthy("/health")
	if o.Auth != nil {
		s.setupEtcdAuth(o)
	}
	return s
}

// EtcdClient connects to s as user (no authentication if user is "").
func (s *kvServer) EtcdClient(o EtcdOptions, user, password string) *clientv3.Client {
	s.t.Helper()
	cfg := clientv3.Config{Endpoints: []string{"http://" + s.Addr}, DialTimeout: 5 * time.Second,
		Username: user, Password: password, Logger: zap.NewNop()}
	if o.TLS != nil {
		cfg.Endpoints = []string{"https://" + s.Addr}
		cfg.TLS = o.TLS.clientTLS(s.t)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		s.t.Fatalf("etcd client as %q: %v", user, err)
	}
	s.t.Cleanup(func() { cli.Close() })
	return cli
}

// setupEtcdAuth creates the root user and o.Auth's user and role, then
// turns authentication on.
func (s *kvServer) setupEtcdAuth(o EtcdOptions) {
	s.t.Helper()
	a := o.Auth
	cli := s.EtcdClient(o, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", a.RootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "rqlited"); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "rqlited", a.Prefix, clientv3.GetPrefixRangeEnd(a.Prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, a.User, a.Password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, a.User, "rqlited"); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			s.t.Fatalf("etcd auth setup step %d: %v", i+1, err)
		}
	}
}

// Restart starts a stopped server again with the same arguments and data.
func (s *kvServer) Restart(healthPath string) {
	s.start()
	s.waitHealthy(healthPath)
}

// startConsul runs a Consul agent in dev mode on loopback ports.
func startConsul(t testing.TB) *kvServer {
	t.Helper()
	return startConsulWith(t, ConsulOptions{})
}

// ConsulOptions configure startConsulWith.
type ConsulOptions struct {
	// ManagementToken, if set, turns ACLs on with default policy deny and
	// this initial management token (also the agent's own token).
	ManagementToken string
}

// startConsulWith runs a Consul agent in dev mode on loopback ports,
// optionally with ACLs enforced.
func startConsulWith(t testing.TB, o ConsulOptions) *kvServer {
	t.Helper()
	bin := toolPath(t, "consul")
	httpAddr := freePort(t)
	port := func(a string) string {
		_, p, _ := splitHostPort(a)
		return p
	}
	s := &kvServer{t: t, bin: bin, Addr: httpAddr, args: []string{
		"agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-log-level", "error",
		"-http-port", port(httpAddr), "-grpc-port", "-1", "-grpc-tls-port", "-1", "-dns-port", "-1",
		"-serf-lan-port", port(freePort(t)), "-serf-wan-port", port(freePort(t)), "-server-port", port(freePort(t)),
		"-data-dir", t.TempDir(),
	}}
	if o.ManagementToken != "" {
		s.args = append(s.args, "-hcl", fmt.Sprintf(`acl { enabled = true
default_policy = "deny"
enable_token_persistence = false
tokens { initial_management = %q
agent = %q } }`, o.ManagementToken, o.ManagementToken))
	}
	s.start()
	waitFor(t, 30*time.Second, "consul leader", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/v1/status/leader")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var b [64]byte
		n, _ := resp.Body.Read(b[:])
		return resp.StatusCode == 200 && n > 4
	})
	if o.ManagementToken != "" {
		// The agent registers its node with its token; sessions need it.
		cli := s.ConsulClient(o.ManagementToken)
		waitFor(t, 30*time.Second, "consul node registered", func() bool {
			nodes, _, err := cli.Catalog().Nodes(nil)
			return err == nil && len(nodes) > 0
		})
	}
	return s
}

// ConsulClient returns a Consul API client of s with token.
func (s *kvServer) ConsulClient(token string) *consulapi.Client {
	s.t.Helper()
	cfg := consulapi.DefaultNonPooledConfig()
	cfg.Address, cfg.Scheme, cfg.Token, cfg.TokenFile = s.Addr, "http", token, ""
	cli, err := consulapi.NewClient(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	return cli
}

// ConsulToken creates, with the management token, a token whose policy
// has rules (HCL), and returns its secret.
func (s *kvServer) ConsulToken(management, name, rules string) string {
	s.t.Helper()
	acl := s.ConsulClient(management).ACL()
	p, _, err := acl.PolicyCreate(&consulapi.ACLPolicy{Name: name, Rules: rules}, nil)
	if err != nil {
		s.t.Fatalf("consul policy %s: %v", name, err)
	}
	tok, _, err := acl.TokenCreate(&consulapi.ACLToken{Description: name, Policies: []*consulapi.ACLTokenPolicyLink{{ID: p.ID}}}, nil)
	if err != nil {
		s.t.Fatalf("consul token %s: %v", name, err)
	}
	return tok.SecretID
}

func splitHostPort(a string) (string, string, error) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == ':' {
			return a[:i], a[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("no port in %q", a)
}
