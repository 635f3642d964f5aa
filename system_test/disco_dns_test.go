//go:build system

package system_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rqlited/rqlited/internal/dnstest"
)

// sharedPort returns a TCP port free on every one of ips.
func sharedPort(t testing.TB, ips ...string) string {
	t.Helper()
	for try := 0; try < 50; try++ {
		_, port, _ := net.SplitHostPort(freePort(t))
		ok := true
		for _, ip := range ips {
			l, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no port free on all addresses")
	return ""
}

// dnsCluster prepares n nodes on 127.0.0.2, 127.0.0.3, ... that share one
// Raft port and one HTTP port, so an A record per node is all DNS needs,
// as with containers or pods. Every node gets the same arguments.
func dnsCluster(t testing.TB, n int, args ...string) (Cluster, []string) {
	var ips []string
	for i := 0; i < n; i++ {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", i+2))
	}
	raftPort, httpPort := sharedPort(t, ips...), sharedPort(t, ips...)
	var c Cluster
	for _, ip := range ips {
		nd := newNode(t, "", args...)
		nd.RaftAddr, nd.HTTPAddr = net.JoinHostPort(ip, raftPort), net.JoinHostPort(ip, httpPort)
		c = append(c, nd)
	}
	return c, ips
}

func TestDiscoDNSRecordsGrow(t *testing.T) {
	matrix(t, "S24", "dns", "waits (k of N addresses known, in /readyz), one cluster when the records appear")
	matrix(t, "S19", "dns", "a partial answer never forms a cluster; one cluster when all records appear")
	srv := dnstest.Start(t)
	cfg := fmt.Sprintf(`{"name":"rqlite.test","resolver":%q}`, srv.Addr)
	c, ips := dnsCluster(t, 3, "-disco-mode", "dns", "-disco-config", cfg, "-bootstrap-expect", "3")
	srv.SetA("rqlite.test", ips[0]) // only one record so far
	c.startAll()
	waitFor(t, 10*time.Second, "waiting phase in /status", func() bool {
		p, _ := c[0].status("disco.phase").(string)
		return strings.Contains(p, "1 of 3")
	})
	// A partial answer must not have formed anything, and /readyz says why.
	if c[0].leaderID() != "" {
		t.Fatal("a cluster formed from a partial DNS answer")
	}
	if s, b := c[0].Do("GET", "/readyz", "", nil); s != 503 || !strings.Contains(b, "[+]cluster: waiting: 1 of 3 addresses known") {
		t.Fatalf("readyz while waiting: %d %q", s, b)
	}
	srv.SetA("rqlite.test", ips...)
	leader := c.waitOneCluster(t, 20*time.Second)
	if s, b := c[2].Execute("", `["CREATE TABLE t (x)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write: %d %s", s, b)
	}
	if m, _ := leader.status("disco.mode").(string); m != "dns" {
		t.Fatalf("disco status: %v", leader.status("disco"))
	}
}

func TestDiscoDNSRepeatedAndLateJoiner(t *testing.T) {
	matrix(t, "S14", "dns", "one cluster with a leader, every one of 10 starts")
	srv := dnstest.Start(t)
	reps := 10
	if testing.Short() {
		reps = 3
	}
	for rep := 0; rep < reps; rep++ {
		name := fmt.Sprintf("c%d.rqlite.test", rep)
		cfg := fmt.Sprintf(`{"name":%q,"resolver":%q}`, name, srv.Addr)
		c, ips := dnsCluster(t, 4, "-disco-mode", "dns", "-disco-config", cfg, "-bootstrap-expect", "3")
		srv.SetA(name, ips[:3]...)
		first := c[:3]
		first.startAll()
		first.waitOneCluster(t, 20*time.Second)
		if rep == reps-1 {
			// A fourth node appears in DNS and starts with the same arguments.
			srv.SetA(name, ips...)
			c[3].Start()
			c.waitOneCluster(t, 20*time.Second)
			if s, b := c[3].Execute("", `["CREATE TABLE t (x)"]`); s != 200 || strings.Contains(b, "error") {
				t.Fatalf("write through the late joiner: %d %s", s, b)
			}
		}
		for _, n := range c[:3] {
			n.Kill()
		}
	}
}

func TestDiscoDNSSRVRepeatedAndLateJoiner(t *testing.T) {
	matrix(t, "S14", "dns-srv", "one cluster with a leader, every one of 10 starts")
	matrix(t, "(e)", "dns-srv", "priority honoured: a lower-priority record pointing nowhere is ignored")
	srv := dnstest.Start(t)
	reps := 10
	if testing.Short() {
		reps = 3
	}
	for rep := 0; rep < reps; rep++ {
		key := fmt.Sprintf("c%d.rqlite.test", rep)
		cfg := fmt.Sprintf(`{"name":%q,"service":"raft","resolver":%q}`, key, srv.Addr)
		var c Cluster
		var recs []dnstest.SRV
		for i := 0; i < 3; i++ {
			n := newNode(t, "", "-disco-mode", "dns-srv", "-disco-config", cfg, "-bootstrap-expect", "3")
			c = append(c, n)
			_, port, _ := net.SplitHostPort(n.RaftAddr)
			p, _ := strconv.Atoi(port)
			recs = append(recs, dnstest.SRV{Priority: 10, Weight: 10, Port: uint16(p), Target: fmt.Sprintf("n%d.%s", i, key)})
			srv.SetA(fmt.Sprintf("n%d.%s", i, key), "127.0.0.1")
		}
		// A standby record of lower preference points nowhere: ignored.
		recs = append(recs, dnstest.SRV{Priority: 20, Weight: 10, Port: 1, Target: "standby." + key})
		srv.SetA("standby."+key, "127.0.0.1")
		srv.SetSRV("_raft._tcp."+key, recs...)
		c.startAll()
		c.waitOneCluster(t, 20*time.Second)
		if rep == reps-1 {
			// A late fourth node with the same arguments joins.
			n4 := newNode(t, "", "-disco-mode", "dns-srv", "-disco-config", cfg, "-bootstrap-expect", "3")
			_, port, _ := net.SplitHostPort(n4.RaftAddr)
			p, _ := strconv.Atoi(port)
			srv.SetA("n3."+key, "127.0.0.1")
			srv.SetSRV("_raft._tcp."+key, append(recs, dnstest.SRV{Priority: 10, Weight: 10, Port: uint16(p), Target: "n3." + key})...)
			n4.Start()
			append(c, n4).waitOneCluster(t, 20*time.Second)
		}
		for _, n := range c {
			n.Kill()
		}
	}
}

func TestDiscoBadInput(t *testing.T) {
	matrix(t, "S8", "dns", "clear error (exit 1): the value is quoted twice")
	matrix(t, "S11", "dns", "refused at start (exit 1): DNS modes need -bootstrap-expect")
	matrix(t, "S17", "dns", "refused at start (exit 1): DNS modes need -bootstrap-expect")
	matrix(t, "S16", "dns", "clear error (exit 1): bad JSON located, unknown key named")
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-disco-mode", "zookeeper", dir}, `-disco-mode "zookeeper" is not one of`},
		{[]string{"-disco-mode", "dns", "-join", "a:1", "-bootstrap-expect", "1", dir}, "-disco-mode and -join cannot be used together"},
		{[]string{"-disco-mode", "dns", dir}, "-disco-mode dns needs -bootstrap-expect"},
		{[]string{"-disco-mode", "dns", "-bootstrap-expect", "3", "-disco-config", `{"name": rqlite}`, dir}, "not valid JSON at line 1, column 10"},
		{[]string{"-disco-mode", "dns", "-bootstrap-expect", "3", "-disco-config", `'{"name":"x"}'`, dir}, "quoted twice"},
		{[]string{"-disco-mode", "dns", "-bootstrap-expect", "3", "-disco-config", `{"nmae":"x"}`, "-raft-addr", freePort(t), "-http-addr", freePort(t), dir}, `unknown field "nmae"`},
		{[]string{"-disco-config", `{}`, dir}, "-disco-config is set but -disco-mode is not"},
	} {
		code, out := runBinary(t, tc.args...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, want 1 with %q; output:\n%s", tc.args, code, tc.want, out)
		}
	}
}
