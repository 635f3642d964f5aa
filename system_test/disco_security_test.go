//go:build system

package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rqlited/rqlited/internal/certtest"
)

// discoNodes prepares n nodes discovering each other through mode with
// config, on key.
func discoNodes(t testing.TB, n int, mode, config, key string, extra ...string) Cluster {
	var c Cluster
	for i := 0; i < n; i++ {
		c = append(c, newNode(t, "", append([]string{"-disco-mode", mode, "-disco-key", key, "-disco-config", config,
			"-disco-allow-loopback", "-bootstrap-expect-timeout", "30s"}, extra...)...))
	}
	return c
}

// exitResult is how a node that was expected to give up ended.
type exitResult struct {
	code int
	out  string
}

// runUntilExit starts n nodes at once with args and waits (at most
// timeout) for each to exit, returning their exit codes and output.
func runUntilExit(t *testing.T, n int, timeout time.Duration, args ...string) []exitResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res := make([]exitResult, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		all := append([]string{"-http-addr", freePort(t), "-raft-addr", freePort(t)}, args...)
		all = append(all, t.TempDir())
		cmd := exec.CommandContext(ctx, rqlitedPath, all...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := cmd.CombinedOutput()
			res[i] = exitResult{code: cmd.ProcessState.ExitCode(), out: string(out)}
			if ctx.Err() != nil {
				res[i].out += fmt.Sprintf("\n(killed after %v: %v)", timeout, err)
			}
		}()
	}
	wg.Wait()
	return res
}

// expectExits checks that every node exited with code and said want.
func expectExits(t *testing.T, what string, res []exitResult, code int, want ...string) {
	t.Helper()
	for i, r := range res {
		ok := r.code == code
		for _, w := range want {
			ok = ok && strings.Contains(r.out, w)
		}
		if !ok {
			t.Errorf("%s: node %d exited %d, want %d with %q; output:\n%s", what, i, r.code, code, want, r.out)
		}
	}
	if len(res) > 0 {
		lines := strings.Split(strings.TrimSpace(res[0].out), "\n")
		t.Logf("%s: exit %d: %s", what, res[0].code, lines[len(lines)-1])
	}
}

func jsonConfig(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDiscoEtcdTLSAuth runs etcd with TLS on its client API, client
// certificates required, and authentication on: rqlited nodes with the
// right certificates, username and password form one cluster; nodes with a
// wrong password, no client certificate, an untrusted server or an
// unreadable certificate file do not, and say why.
func TestDiscoEtcdTLSAuth(t *testing.T) {
	ca := certtest.NewCA(t, "etcd")
	other := certtest.NewCA(t, "other")
	o := EtcdOptions{
		TLS: &EtcdTLS{CAFile: ca.CertFile, Server: ca.Issue(t, "server", certtest.Options{CommonName: "etcd"}),
			Client: ca.Issue(t, "test-client", certtest.Options{CommonName: "root"}), ClientCertAuth: true},
		Auth: &EtcdAuth{RootPassword: "root-pw", User: "rqlited", Password: "rqlited-pw", Prefix: "/rqlited-test-"},
	}
	srv := startEtcdWith(t, o)
	endpoint := "https://" + srv.Addr
	client := ca.Issue(t, "rqlited-client", certtest.Options{CommonName: "rqlited"})
	tlsCfg := map[string]any{"ca_file": ca.CertFile, "cert_file": client.CertFile, "key_file": client.KeyFile}
	good := func(mod func(m map[string]any)) string {
		m := map[string]any{"endpoints": []string{endpoint}, "username": "rqlited", "password": "rqlited-pw", "tls_config": tlsCfg}
		if mod != nil {
			mod(m)
		}
		return jsonConfig(t, m)
	}
	root := srv.EtcdClient(o, "root", "root-pw")
	keyExists := func(t *testing.T, key string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := root.Get(ctx, "/"+key+"/leader")
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Kvs) > 0
	}

	t.Run("forms one cluster", func(t *testing.T) {
		key := randomKey()
		c := discoNodes(t, 3, "etcd-kv", good(nil), key)
		c.startAll()
		leader := c.waitOneCluster(t, 30*time.Second)
		if s, b := c[2].Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`); s != 200 || strings.Contains(b, "error") {
			t.Fatalf("write: %d %s", s, b)
		}
		waitFor(t, 10*time.Second, "leader key names the leader", func() bool {
			h, _ := leader.status("disco.leader_key.holder").(string)
			return h == leader.nodeID()
		})
		if !keyExists(t, key) {
			t.Fatal("no leader key in etcd")
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		key := randomKey()
		res := runUntilExit(t, 3, 60*time.Second, "-disco-mode", "etcd-kv", "-disco-key", key, "-disco-allow-loopback",
			"-bootstrap-expect-timeout", "10s", "-disco-config", good(func(m map[string]any) { m["password"] = "wrong" }))
		expectExits(t, "wrong password", res, 1, `etcd refused the username or password (user "rqlited"`, "authentication failed")
		if keyExists(t, key) {
			t.Fatal("a node with a wrong password wrote the leader key")
		}
	})

	t.Run("no client certificate", func(t *testing.T) {
		key := randomKey()
		res := runUntilExit(t, 3, 60*time.Second, "-disco-mode", "etcd-kv", "-disco-key", key, "-disco-allow-loopback",
			"-bootstrap-expect-timeout", "5s", "-disco-config", good(func(m map[string]any) {
				m["tls_config"] = map[string]any{"ca_file": ca.CertFile}
			}))
		expectExits(t, "no client certificate", res, 3, "boot timeout", "certificate required")
		if keyExists(t, key) {
			t.Fatal("a node without a client certificate wrote the leader key")
		}
	})

	t.Run("untrusted server", func(t *testing.T) {
		res := runUntilExit(t, 1, 60*time.Second, "-disco-mode", "etcd-kv", "-disco-key", randomKey(), "-disco-allow-loopback",
			"-bootstrap-expect-timeout", "5s", "-disco-config", good(func(m map[string]any) {
				m["tls_config"] = map[string]any{"ca_file": other.CertFile, "cert_file": client.CertFile, "key_file": client.KeyFile}
			}))
		expectExits(t, "untrusted server", res, 3, "boot timeout", "certificate signed by unknown authority")
	})

	t.Run("wrong server name", func(t *testing.T) {
		res := runUntilExit(t, 1, 60*time.Second, "-disco-mode", "etcd-kv", "-disco-key", randomKey(), "-disco-allow-loopback",
			"-bootstrap-expect-timeout", "5s", "-disco-config", good(func(m map[string]any) {
				m["tls_config"] = map[string]any{"ca_file": ca.CertFile, "cert_file": client.CertFile, "key_file": client.KeyFile, "server_name": "etcd.example"}
			}))
		expectExits(t, "wrong server name", res, 3, "boot timeout", "etcd.example")
	})

	t.Run("unreadable certificate file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "missing.pem")
		res := runUntilExit(t, 1, 60*time.Second, "-disco-mode", "etcd-kv", "-disco-allow-loopback",
			"-disco-config", good(func(m map[string]any) {
				m["tls_config"] = map[string]any{"ca_file": ca.CertFile, "cert_file": missing, "key_file": client.KeyFile}
			}))
		expectExits(t, "unreadable certificate", res, 1, "tls_config.cert_file: cannot read "+missing)
	})

	t.Run("key outside the user's prefix", func(t *testing.T) {
		c := discoNodes(t, 1, "etcd-kv", good(nil), "not-granted")
		c.startAll()
		waitFor(t, 20*time.Second, "status reports permission denied", func() bool {
			e, _ := c[0].status("disco.last_error").(string)
			return strings.Contains(e, "permission denied")
		})
		if c[0].leaderID() != "" {
			t.Fatal("a node without permission on its key formed a cluster")
		}
	})
}

// consulRules lets a token keep rqlited's leader keys under rqlited-test-.
const consulRules = `
key_prefix "rqlited-test-" { policy = "write" }
session_prefix "" { policy = "write" }
node_prefix "" { policy = "read" }
`

// TestDiscoConsulACL runs Consul with ACLs enforced (default deny): nodes
// with a token allowed the leader key, given by "token" or "token_file",
// form one cluster; a token Consul does not know stops the node at once,
// and a token without rights on the key keeps it waiting with the reason
// in /status.
func TestDiscoConsulACL(t *testing.T) {
	const mgmt = "3f1c4d8e-5d1a-4b7e-9a0c-2b6f0e1d7c11"
	srv := startConsulWith(t, ConsulOptions{ManagementToken: mgmt})
	token := srv.ConsulToken(mgmt, "rqlited", consulRules)
	noKey := srv.ConsulToken(mgmt, "rqlited-no-key", `key_prefix "elsewhere/" { policy = "write" }
session_prefix "" { policy = "write" }`)

	formsCluster := func(t *testing.T, config string) {
		key := randomKey()
		c := discoNodes(t, 3, "consul-kv", config, key)
		c.startAll()
		leader := c.waitOneCluster(t, 30*time.Second)
		if s, b := c[1].Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`); s != 200 || strings.Contains(b, "error") {
			t.Fatalf("write: %d %s", s, b)
		}
		waitFor(t, 10*time.Second, "leader key names the leader", func() bool {
			h, _ := leader.status("disco.leader_key.holder").(string)
			return h == leader.nodeID()
		})
		p, _, err := srv.ConsulClient(mgmt).KV().Get(key+"/leader", nil)
		if err != nil || p == nil || p.Session == "" {
			t.Fatalf("leader key in Consul: %+v, %v", p, err)
		}
	}

	t.Run("token", func(t *testing.T) {
		formsCluster(t, jsonConfig(t, map[string]any{"address": srv.Addr, "token": token}))
	})

	t.Run("token_file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(f, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		formsCluster(t, jsonConfig(t, map[string]any{"address": srv.Addr, "token_file": f}))
	})

	t.Run("unknown token", func(t *testing.T) {
		res := runUntilExit(t, 3, 60*time.Second, "-disco-mode", "consul-kv", "-disco-key", randomKey(), "-disco-allow-loopback",
			"-bootstrap-expect-timeout", "10s", "-disco-config", jsonConfig(t, map[string]any{"address": srv.Addr, "token": "00000000-0000-4000-8000-000000000000"}))
		expectExits(t, "unknown token", res, 1, "consul refused the ACL token", "ACL not found")
	})

	t.Run("unreadable token_file", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "missing-token")
		res := runUntilExit(t, 1, 60*time.Second, "-disco-mode", "consul-kv", "-disco-allow-loopback",
			"-disco-config", jsonConfig(t, map[string]any{"address": srv.Addr, "token_file": missing}))
		expectExits(t, "unreadable token_file", res, 1, "token_file: cannot read "+missing)
	})

	for _, tc := range []struct{ name, token string }{{"token without rights on the key", noKey}, {"no token", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := map[string]any{"address": srv.Addr}
			if tc.token != "" {
				cfg["token"] = tc.token
			}
			c := discoNodes(t, 1, "consul-kv", jsonConfig(t, cfg), randomKey())
			c.startAll()
			waitFor(t, 20*time.Second, "status reports permission denied", func() bool {
				e, _ := c[0].status("disco.last_error").(string)
				return strings.Contains(e, "Permission denied")
			})
			if c[0].leaderID() != "" {
				t.Fatal("a node without rights on its key formed a cluster")
			}
		})
	}
}
