//go:build system

package system_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rqlited/rqlited/internal/certtest"
)

// authUser is one entry of an -auth file.
type authUser struct {
	Username string   `json:"username"`
	Password string   `json:"password,omitempty"`
	Perms    []string `json:"perms"`
}

func writeAuthFile(t testing.TB, path string, users []authUser) string {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "auth.json")
	}
	b, err := json.Marshal(users)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	return path
}

func bcryptHash(t testing.TB, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// as sends a request to n with the given Basic credentials (none if user
// is empty) and returns the status code.
func as(t testing.TB, n *Node, user, pass, method, path, contentType, body string) int {
	t.Helper()
	resp, _, err := n.send(nil, user, pass, method, path, contentType, []byte(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode
}

// TestAuthEveryPermission checks each endpoint against the permission it
// needs: refused (401) without credentials, with the wrong password and to
// a user without the permission; served to a user with it.
func TestAuthEveryPermission(t *testing.T) {
	perms := []string{"execute", "query", "load", "backup", "status", "ready", "snapshot", "leader-ops", "remove"}
	users := []authUser{{Username: "admin", Password: bcryptHash(t, "admin-pw"), Perms: []string{"all"}}}
	for _, p := range perms {
		users = append(users, authUser{Username: "u-" + p, Password: "pw-" + p, Perms: []string{p}})
	}
	users = append(users, authUser{Username: "u-rw", Password: "pw-rw", Perms: []string{"execute", "query"}})
	n := newNode(t, "", "-auth", writeAuthFile(t, "", users))
	n.User, n.Pass = "admin", "admin-pw"
	n.Start()
	n.WaitReady(20 * time.Second)
	mustDoJSON(t, n, "POST", "/db/execute", `[["CREATE TABLE t(x)"]]`, `{"results":[{}]}`)

	for _, c := range []struct {
		method, path, ctype, body string
		perm                      string // user u-<perm> is allowed; "rw" means u-rw
	}{
		{"POST", "/db/execute", "application/json", `[["INSERT INTO t VALUES(1)"]]`, "execute"},
		{"GET", "/db/query?q=SELECT+1", "", "", "query"},
		{"POST", "/db/query", "application/json", `["SELECT 1"]`, "query"},
		{"POST", "/db/request", "application/json", `["SELECT 1"]`, "rw"},
		{"GET", "/db/backup", "", "", "backup"},
		{"POST", "/db/load", "text/plain", "CREATE TABLE IF NOT EXISTS z(a);", "load"},
		{"POST", "/snapshot", "", "", "snapshot"},
		{"GET", "/status", "", "", "status"},
		{"GET", "/nodes", "", "", "status"},
		{"GET", "/debug/pprof/cmdline", "", "", "status"},
		{"GET", "/readyz", "", "", "ready"},
		{"GET", "/leader", "", "", "leader-ops"},
		{"DELETE", "/remove", "application/json", `{"id":"no-such-node"}`, "remove"},
	} {
		name := c.method + " " + c.path
		if got := as(t, n, "", "", c.method, c.path, c.ctype, c.body); got != 401 {
			t.Errorf("%s without credentials: %d, want 401", name, got)
		}
		user := "u-" + c.perm
		if got := as(t, n, user, "wrong", c.method, c.path, c.ctype, c.body); got != 401 {
			t.Errorf("%s as %s with a wrong password: %d, want 401", name, user, got)
		}
		if got := as(t, n, user, "pw-"+c.perm, c.method, c.path, c.ctype, c.body); got == 401 {
			t.Errorf("%s as %s (has the permission): 401", name, user)
		}
		if got := as(t, n, "admin", "admin-pw", c.method, c.path, c.ctype, c.body); got == 401 {
			t.Errorf("%s as admin (all, bcrypt password): 401", name)
		}
		for _, other := range perms {
			if other == c.perm || (c.perm == "rw" && (other == "execute" || other == "query")) {
				continue
			}
			if got := as(t, n, "u-"+other, "pw-"+other, c.method, c.path, c.ctype, c.body); got != 401 {
				t.Errorf("%s as u-%s (lacks %s): %d, want 401", name, other, c.perm, got)
			}
		}
	}
	// /db/request needs both: query alone or execute alone is not enough
	// (checked above), and the WWW-Authenticate challenge is sent.
	resp, _, err := n.send(http.DefaultClient, "", "", "GET", "/status", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="rqlite"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	if !strings.Contains(n.out.String(), "plain-text passwords") {
		t.Error("no start-up warning about plain-text passwords")
	}
}

// mustDo sends a JSON request to a db endpoint with n's credentials and
// returns the answer; it fails t unless the answer is 200 with results
// that are all free of errors.
func mustDo(t testing.TB, n *Node, method, path, body string) string {
	t.Helper()
	status, got := n.Do(method, path, "application/json", []byte(body))
	rs, err := parseResults(status, got)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	for _, r := range rs {
		if r.Error != "" {
			t.Fatalf("%s %s: result error %q: %s", method, path, r.Error, got)
		}
	}
	return got
}

// mustDoJSON sends a request with n's credentials and fails unless the
// answer is 200 with want.
func mustDoJSON(t testing.TB, n *Node, method, path, body, want string) {
	t.Helper()
	mustJSON(t, 200, mustDo(t, n, method, path, body), want)
}

// TestAuthReloadOnSIGHUP: a user added to the file gets in after SIGHUP;
// a broken file leaves the users in force.
func TestAuthReloadOnSIGHUP(t *testing.T) {
	admin := authUser{Username: "admin", Password: "a", Perms: []string{"all"}}
	path := writeAuthFile(t, "", []authUser{admin})
	n := newNode(t, "", "-auth", path)
	n.User, n.Pass = "admin", "a"
	n.Start()
	n.WaitReady(20 * time.Second)
	if got := as(t, n, "late", "l", "GET", "/status", "", ""); got != 401 {
		t.Fatalf("unknown user: %d", got)
	}
	writeAuthFile(t, path, []authUser{admin, {Username: "late", Password: "l", Perms: []string{"status"}}})
	n.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the new user to be accepted", func() bool {
		return as(t, n, "late", "l", "GET", "/status", "", "") == 200
	})
	os.WriteFile(path, []byte(`[{"username":`), 0o600)
	n.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the reload error to be logged", func() bool {
		return strings.Contains(n.out.String(), "auth file not reloaded")
	})
	if got := as(t, n, "late", "l", "GET", "/status", "", ""); got != 200 {
		t.Fatalf("after a broken reload the user in force was refused: %d", got)
	}
}

// TestAuthClusterJoinAsAndForwarding: -join-as credentials are checked by
// the node that receives the join; a write sent to a follower is
// authorised again on the leader with the caller's own credentials.
func TestAuthClusterJoinAsAndForwarding(t *testing.T) {
	base := []authUser{
		{Username: "admin", Password: "a", Perms: []string{"all"}},
		{Username: "joiner", Password: "j", Perms: []string{"join"}},
		{Username: "replica", Password: "r", Perms: []string{"join-read-only"}},
		{Username: "reader", Password: "q", Perms: []string{"query"}},
	}
	leaderFile := writeAuthFile(t, "", base)
	// The follower's file also lets "sneaky" write; the leader's does not.
	followerFile := writeAuthFile(t, "", append(append([]authUser{}, base...),
		authUser{Username: "sneaky", Password: "s", Perms: []string{"execute"}}))

	n1 := newNode(t, "", "-node-id", "n1", "-auth", leaderFile)
	n1.User, n1.Pass = "admin", "a"
	n1.Start()
	n1.WaitReady(20 * time.Second)

	n2 := newNode(t, "", "-node-id", "n2", "-auth", followerFile, "-join", n1.RaftAddr, "-join-as", "joiner")
	n2.User, n2.Pass = "admin", "a"
	n2.Start()
	n2.WaitReady(20 * time.Second)
	waitFor(t, 20*time.Second, "n2 to know the leader", func() bool { return n2.leaderID() == "n1" })

	// A read replica joins with join-read-only.
	r := newNode(t, "", "-node-id", "r1", "-auth", leaderFile, "-join", n1.RaftAddr, "-join-as", "replica", "-raft-non-voter")
	r.User, r.Pass = "admin", "a"
	r.Start()
	r.WaitReady(20 * time.Second)

	// A voter joining as a user without "join" is refused, and says why.
	bad := newNode(t, "", "-node-id", "n3", "-auth", leaderFile, "-join", n1.RaftAddr, "-join-as", "reader", "-join-attempts", "1")
	bad.Start()
	select {
	case <-bad.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a join without the join permission did not end")
	}
	if bad.exitErr == nil || !strings.Contains(bad.out.String(), "lacks the permission") {
		t.Fatalf("refused join: exit %v, output:\n%s", bad.exitErr, bad.out.String())
	}
	_, body := n1.Do("GET", "/nodes?nonvoters", "", nil)
	if strings.Contains(body, "n3") || !strings.Contains(body, "r1") || !strings.Contains(body, "n2") {
		t.Fatalf("/nodes after the joins: %s", body)
	}

	mustDoJSON(t, n1, "POST", "/db/execute", `[["CREATE TABLE t(x)"]]`, `{"results":[{}]}`)
	// admin through the follower: forwarded, authorised on the leader.
	if got := as(t, n2, "admin", "a", "POST", "/db/execute", "application/json", `[["INSERT INTO t VALUES(1)"]]`); got != 200 {
		t.Fatalf("write through the follower as admin: %d", got)
	}
	// sneaky passes the follower's check but not the leader's.
	if got := as(t, n2, "sneaky", "s", "POST", "/db/execute", "application/json", `[["INSERT INTO t VALUES(2)"]]`); got != 401 {
		t.Fatalf("write through the follower as a user the leader does not know: %d, want 401", got)
	}
	// ... and a user the follower refuses never reaches the leader.
	if got := as(t, n2, "reader", "q", "POST", "/db/execute", "application/json", `[["INSERT INTO t VALUES(3)"]]`); got != 401 {
		t.Fatalf("write through the follower as reader: %d, want 401", got)
	}
	mustDoJSON(t, n1, "GET", "/db/query?q=SELECT+x+FROM+t", "", `{"results":[{"columns":["x"],"types":["integer"],"values":[[1]]}]}`)
}

// tlsClient returns an HTTP client that trusts ca and presents pair (if
// its files are set).
func tlsClient(t testing.TB, caFile string, pair certtest.Pair) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(b)
	cfg := &tls.Config{RootCAs: pool}
	if pair.CertFile != "" {
		c, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestHTTPSClientVerification: with -http-verify-client only clients with
// a certificate from the CA and the required common name get in.
func TestHTTPSClientVerification(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	server := ca.Issue(t, "server", certtest.Options{CommonName: "server"})
	good := ca.Issue(t, "good", certtest.Options{CommonName: "app"})
	wrongCN := ca.Issue(t, "wrong-cn", certtest.Options{CommonName: "intruder"})
	expired := ca.Issue(t, "expired", certtest.Options{CommonName: "app", NotAfter: time.Now().Add(-time.Hour)})
	strangers := certtest.NewCA(t, "strangers")
	foreign := strangers.Issue(t, "foreign", certtest.Options{CommonName: "app"})

	n := newNode(t, "", "-http-cert", server.CertFile, "-http-key", server.KeyFile, "-http-ca-cert", ca.CertFile,
		"-http-verify-client", "-http-verify-common-name", "app")
	n.Scheme, n.Client = "https", tlsClient(t, ca.CertFile, good)
	n.Start()
	n.WaitReady(20 * time.Second)

	if v := n.status("http.api_url"); v != "https://"+n.HTTPAddr {
		t.Errorf("api_url = %v, want https://%s", v, n.HTTPAddr)
	}
	mustDoJSON(t, n, "POST", "/db/execute", `[["CREATE TABLE t(x)"]]`, `{"results":[{}]}`)
	for name, pair := range map[string]certtest.Pair{
		"no certificate": {}, "wrong common name": wrongCN, "expired": expired, "another CA": foreign,
	} {
		c := tlsClient(t, ca.CertFile, pair)
		resp, _, err := n.send(c, "", "", "GET", "/status", "", nil)
		if err == nil {
			t.Errorf("client with %s: got %d, want the TLS handshake refused", name, resp.StatusCode)
		}
	}
	// Plain HTTP to the HTTPS port gets nothing useful.
	resp, err := http.Get("http://" + n.HTTPAddr + "/status")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on the HTTPS port")
		}
	}
}

// TestHTTPSCertificateRotation: a certificate replaced on disk is served to
// new connections without a restart.
func TestHTTPSCertificateRotation(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	server := ca.Issue(t, "server", certtest.Options{CommonName: "first"})
	n := newNode(t, "", "-http-cert", server.CertFile, "-http-key", server.KeyFile)
	n.Scheme, n.Client = "https", tlsClient(t, ca.CertFile, certtest.Pair{})
	n.Start()
	n.WaitReady(20 * time.Second)
	servedCN := func() string {
		c := tlsClient(t, ca.CertFile, certtest.Pair{})
		resp, _, err := n.send(c, "", "", "GET", "/readyz", "", nil)
		if err != nil {
			return ""
		}
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if cn := servedCN(); cn != "first" {
		t.Fatalf("served common name %q, want first", cn)
	}
	next := ca.Issue(t, "next", certtest.Options{CommonName: "second"})
	for _, f := range [][2]string{{next.KeyFile, server.KeyFile}, {next.CertFile, server.CertFile}} {
		if err := os.Rename(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "the rotated certificate to be served", func() bool { return servedCN() == "second" })
}

// TestNodeMutualTLS: three nodes with node mTLS (and HTTPS with client
// verification) form one cluster and replicate, a follower forwards writes
// over HTTPS; a node with a certificate from another CA, or without TLS,
// cannot join.
func TestNodeMutualTLS(t *testing.T) {
	ca := certtest.NewCA(t, "ca")
	// The node certificate names no address the nodes dial, only a DNS
	// name that -node-verify-server-name tells them to expect.
	pair := ca.Issue(t, "node", certtest.Options{CommonName: "rqlited-node", DNSNames: []string{"nodes.rqlited.internal"}})
	nodeTLS := []string{"-node-cert", pair.CertFile, "-node-key", pair.KeyFile, "-node-ca-cert", ca.CertFile,
		"-node-verify-client", "-node-verify-common-name", "rqlited-node", "-node-verify-server-name", "nodes.rqlited.internal"}
	web := ca.Issue(t, "web", certtest.Options{CommonName: "web"})
	httpsArgs := []string{"-http-cert", web.CertFile, "-http-key", web.KeyFile, "-http-ca-cert", ca.CertFile, "-http-verify-client"}
	c := newBootstrapCluster(t, 3, append(nodeTLS, httpsArgs...)...)
	for _, n := range c {
		n.Scheme, n.Client = "https", tlsClient(t, ca.CertFile, web)
	}
	c.startAll()
	leader := c.waitOneCluster(t, 30*time.Second)
	mustDoJSON(t, leader, "POST", "/db/execute", `[["CREATE TABLE t(x)"]]`, `{"results":[{}]}`)
	f := c.followers(leader)
	mustDoJSON(t, f[0], "POST", "/db/execute", `[["INSERT INTO t VALUES(7)"]]`, `{"results":[{"last_insert_id":1,"rows_affected":1}]}`)
	mustDoJSON(t, f[1], "GET", "/db/query?level=linearizable&q=SELECT+x+FROM+t", "",
		`{"results":[{"columns":["x"],"types":["integer"],"values":[[7]]}]}`)

	// A certificate from another CA: the leader's mux refuses the handshake.
	strangers := certtest.NewCA(t, "strangers")
	foreign := strangers.Issue(t, "foreign", certtest.Options{CommonName: "rqlited-node"})
	intruder := newNode(t, "", "-node-id", "intruder", "-join", c.raftAddrs(), "-join-attempts", "1",
		"-node-cert", foreign.CertFile, "-node-key", foreign.KeyFile, "-node-ca-cert", strangers.CertFile)
	intruder.Start()
	plain := newNode(t, "", "-node-id", "plain", "-join", c.raftAddrs(), "-join-attempts", "1")
	plain.Start()
	// The right CA, but without -node-verify-server-name the name check
	// fails: the certificate is not for 127.0.0.1.
	misnamed := newNode(t, "", "-node-id", "misnamed", "-join", c.raftAddrs(), "-join-attempts", "1",
		"-node-cert", pair.CertFile, "-node-key", pair.KeyFile, "-node-ca-cert", ca.CertFile)
	misnamed.Start()
	for _, n := range []*Node{intruder, plain, misnamed} {
		select {
		case <-n.done:
		case <-time.After(60 * time.Second):
			t.Fatalf("join of %s did not end", n.nodeID())
		}
		if n.exitErr == nil {
			t.Errorf("%s joined a cluster with node TLS verification on:\n%s", n.nodeID(), n.out.String())
		}
	}
	if !strings.Contains(intruder.out.String(), "certificate") {
		t.Errorf("the foreign-certificate node's error does not mention the certificate:\n%s", intruder.out.String())
	}
	_, nodes := leader.Do("GET", "/nodes?nonvoters", "", nil)
	if strings.Contains(nodes, "intruder") || strings.Contains(nodes, "plain") || strings.Contains(nodes, "misnamed") {
		t.Fatalf("refused nodes appear in /nodes: %s", nodes)
	}
	if !strings.Contains(leader.out.String(), "TLS handshake failed") {
		t.Errorf("the leader did not log the refused handshakes")
	}
}

// TestAuthBootstrapExpect: notify calls carry the -join-as credentials;
// without them an -auth cluster does not form, and says why.
func TestAuthBootstrapExpect(t *testing.T) {
	file := writeAuthFile(t, "", []authUser{
		{Username: "admin", Password: "a", Perms: []string{"all"}},
		{Username: "joiner", Password: "j", Perms: []string{"join"}},
	})
	c := newBootstrapCluster(t, 3, "-auth", file, "-join-as", "joiner")
	for _, n := range c {
		n.User, n.Pass = "admin", "a"
	}
	c.startAll()
	c.waitOneCluster(t, 30*time.Second)

	anon := newBootstrapCluster(t, 3, "-auth", file, "-bootstrap-expect-timeout", "3s")
	anon.startAll()
	for _, n := range anon {
		select {
		case <-n.done:
		case <-time.After(30 * time.Second):
			t.Fatal("a node notifying without credentials did not give up")
		}
		if !strings.Contains(n.out.String(), "not authorized") {
			t.Errorf("node %s does not say the notify was not authorized:\n%s", n.nodeID(), n.out.String())
		}
	}
}
