package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rqlited/rqlited/internal/dnstest"
)

// formed reports whether every node lists n members with one leader and a
// write through the last node succeeds.
func formed(nodes []*node) bool {
	leader := ""
	for _, n := range nodes {
		resp, err := http.Get(n.base + "/nodes?ver=2")
		if err != nil {
			return false
		}
		var body struct {
			Nodes []struct {
				ID     string `json:"id"`
				Leader bool   `json:"leader"`
			} `json:"nodes"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || len(body.Nodes) != len(nodes) {
			return false
		}
		for _, nd := range body.Nodes {
			if nd.Leader {
				if leader != "" && leader != nd.ID {
					return false
				}
				leader = nd.ID
			}
		}
	}
	if leader == "" {
		return false
	}
	_, err := post(nodes[len(nodes)-1].base+"/db/execute", `["CREATE TABLE IF NOT EXISTS formed (x)"]`)
	return err == nil
}

// timeFormation starts the nodes that launch returns, all at once, and
// returns how long until formed.
func timeFormation(ctx context.Context, launch func() []*node) time.Duration {
	start := time.Now()
	nodes := launch()
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	for !formed(nodes) {
		if time.Since(start) > 60*time.Second || ctx.Err() != nil {
			fail(fmt.Errorf("cluster did not form within 60 s"))
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

type benchTB struct{ cleanups []func() }

func (*benchTB) Helper()            {}
func (*benchTB) Fatal(args ...any)  { fail(fmt.Errorf("%v", fmt.Sprint(args...))) }
func (t *benchTB) Cleanup(f func()) { t.cleanups = append(t.cleanups, f) }
func (t *benchTB) done() {
	for _, f := range t.cleanups {
		f()
	}
}

// formation times three-node cluster formation in each mode whose
// dependencies are here, and prints the median of b.reps runs.
func (b *bench) formation(ctx context.Context) {
	fmt.Printf("\n## cluster formation: three processes started at once until three members, one leader and a write through the last node (median of %d)\n", b.reps)
	modes := []struct {
		name   string
		launch func(rep int) func() []*node
		skip   string
	}{
		{"-bootstrap-expect 3 -join", func(int) func() []*node {
			addrs := []string{freeAddr(), freeAddr(), freeAddr()}
			return func() []*node {
				var ns []*node
				for _, a := range addrs {
					ns = append(ns, b.startAt(freeAddr(), a, "-bootstrap-expect", "3", "-join", strings.Join(addrs, ",")))
				}
				return ns
			}
		}, ""},
		{"-disco-mode dns", b.dnsLaunch, ""},
	}
	tools := os.Getenv("RQLITED_TOOLS")
	if tools == "" {
		home, _ := os.UserHomeDir()
		tools = filepath.Join(home, ".cache", "rqlited-tools")
	}
	for _, kv := range []string{"etcd", "consul"} {
		bin := filepath.Join(tools, kv)
		skip := ""
		if _, err := os.Stat(bin); err != nil {
			skip = bin + " not built (make tools)"
		}
		name := kv
		modes = append(modes, struct {
			name   string
			launch func(rep int) func() []*node
			skip   string
		}{"-disco-mode " + name + "-kv", func(rep int) func() []*node { return b.kvLaunch(ctx, name, bin, rep) }, skip})
	}
	for _, m := range modes {
		if m.skip != "" {
			fmt.Printf("%-30s skipped: %s\n", m.name, m.skip)
			continue
		}
		var ds []time.Duration
		for rep := 0; rep < b.reps; rep++ {
			ds = append(ds, timeFormation(ctx, m.launch(rep)))
		}
		fmt.Printf("%-30s median %v (runs: %v)\n", m.name, median(ds).Round(time.Millisecond), roundAll(ds))
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// dnsLaunch prepares nodes on 127.0.0.2-4 sharing ports, found through a
// real DNS server's A records.
func (b *bench) dnsLaunch(rep int) func() []*node {
	tb := &benchTB{}
	srv := dnstest.Start(tb)
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	srv.SetA("rqlite.bench", ips...)
	raftPort, httpPort := sharedPort(ips), sharedPort(ips)
	cfg := fmt.Sprintf(`{"name":"rqlite.bench","resolver":%q}`, srv.Addr)
	return func() []*node {
		var ns []*node
		for _, ip := range ips {
			ns = append(ns, b.startAt(net.JoinHostPort(ip, httpPort), net.JoinHostPort(ip, raftPort),
				"-disco-mode", "dns", "-disco-config", cfg, "-bootstrap-expect", "3"))
		}
		go func() { <-time.After(90 * time.Second); tb.done() }()
		return ns
	}
}

func sharedPort(ips []string) string {
	for {
		a := freeAddr()
		_, port, _ := net.SplitHostPort(a)
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
}

// kvLaunch starts (once) a real etcd or Consul and prepares three nodes
// using it with a fresh key.
func (b *bench) kvLaunch(ctx context.Context, kind, bin string, rep int) func() []*node {
	addr := b.kvServer(ctx, kind, bin)
	key := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), rep)
	cfg := fmt.Sprintf(`{"endpoints":["http://%s"]}`, addr)
	if kind == "consul" {
		cfg = fmt.Sprintf(`{"address":%q}`, addr)
	}
	return func() []*node {
		var ns []*node
		for i := 0; i < 3; i++ {
			ns = append(ns, b.start("-disco-mode", kind+"-kv", "-disco-key", key, "-disco-config", cfg, "-disco-allow-loopback"))
		}
		return ns
	}
}

var kvServers = map[string]string{}

func (b *bench) kvServer(ctx context.Context, kind, bin string) string {
	if a, ok := kvServers[kind]; ok {
		return a
	}
	client := freeAddr()
	dir := filepath.Join(b.dir, kind)
	var args []string
	health := "/health"
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }
	if kind == "etcd" {
		peer := freeAddr()
		args = []string{"--data-dir", dir, "--listen-client-urls", "http://" + client, "--advertise-client-urls", "http://" + client,
			"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
			"--initial-cluster", "default=http://" + peer, "--log-level", "error"}
	} else {
		health = "/v1/status/leader"
		args = []string{"agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-log-level", "error",
			"-http-port", port(client), "-grpc-port", "-1", "-grpc-tls-port", "-1", "-dns-port", "-1",
			"-serf-lan-port", port(freeAddr()), "-serf-wan-port", port(freeAddr()), "-server-port", port(freeAddr())}
	}
	cmd := execCommand(bin, args...)
	b.mu.Lock()
	b.procs = append(b.procs, cmd)
	b.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + client + health)
		if err == nil {
			var buf [64]byte
			n, _ := resp.Body.Read(buf[:])
			resp.Body.Close()
			if resp.StatusCode == 200 && (kind == "etcd" || n > 4) {
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fail(fmt.Errorf("%s did not start", kind))
		}
		time.Sleep(50 * time.Millisecond)
	}
	kvServers[kind] = client
	return client
}
