//go:build system

package system_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rqlited/rqlited/internal/chaos"
)

var chaosSeed = flag.Int64("chaos.seed", 0, "seed of the chaos scenarios (0: from the clock); a failure prints the seed that reproduces it")

// electionTimeout is what Node.Start gives every node; the recovery target
// is 2 x election timeout + 1 s.
const electionTimeout = 200 * time.Millisecond

// chaosCluster is three rqlited processes, each in its own network
// namespace, formed with -bootstrap-expect 3 on the default ports.
type chaosCluster struct {
	t     *testing.T
	net   *chaos.Net
	nodes Cluster
	rng   *rand.Rand
	mu    sync.Mutex
	out   string // directory for the history and logs of a failure
}

func requireNetns(t *testing.T) {
	t.Helper()
	if err := chaos.Available(); err != nil {
		if os.Getenv("RQLITED_REQUIRE_NETNS") != "" {
			t.Fatalf("chaos tests need network namespaces: %v", err)
		}
		t.Skipf("chaos tests need network namespaces: %v", err)
	}
}

// fill writes a file into dir until the file system is full and returns
// its path.
func fill(t *testing.T, dir string) string {
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				f.Sync()
				return p
			}
			t.Fatal(err)
		}
	}
}

// readOnly makes everything in dir (and dir itself) immutable, so that
// even writes through files the node already has open fail (EPERM), as on
// a disk that has gone read-only; the returned function undoes it. It is
// also undone at cleanup, so the test can remove the directory.
func readOnly(t *testing.T, dir string) func() {
	t.Helper()
	undo := func() { exec.Command("chattr", "-R", "-i", dir).Run() }
	if out, err := exec.Command("chattr", "-R", "+i", dir).CombinedOutput(); err != nil {
		undo()
		t.Skipf("chattr +i not possible on %s (needs root and a file system with the immutable flag): %v %s", dir, err, out)
	}
	t.Cleanup(undo)
	return undo
}

// mountSmall puts dir on a tmpfs of size bytes, unmounted at cleanup
// (registered before the node's, so it runs after the process is gone).
func mountSmall(t *testing.T, dir string, size int) {
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v %s", dir, err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// restartIfExited starts n again if its process has ended, and logs how
// it ended.
func restartIfExited(t *testing.T, n *Node) {
	select {
	case <-n.done:
		out := n.out.String()
		if i := strings.LastIndex(out, "rqlited: "); i >= 0 {
			out = out[i:]
		}
		t.Logf("%s had exited (%v): %s", n.nodeID(), n.exitErr, strings.TrimSpace(out))
		n.Start()
	default:
		t.Logf("%s still running at the heal", n.nodeID())
	}
}

func newChaosCluster(t *testing.T, seed int64, smallDisks bool) *chaosCluster {
	t.Helper()
	nt, err := chaos.NewNet(3)
	if err != nil {
		t.Fatal(err)
	}
	c := &chaosCluster{t: t, net: nt, rng: rand.New(rand.NewSource(seed))}
	var join []string
	for _, h := range nt.Hosts {
		join = append(join, h.IP+":4002")
	}
	for i, h := range nt.Hosts {
		dir := t.TempDir()
		if smallDisks {
			mountSmall(t, dir, 48<<20)
		}
		n := newNode(t, dir, "-node-id", fmt.Sprintf("node%d", i+1), "-bootstrap-expect", "3", "-join", strings.Join(join, ","))
		n.Host, n.HTTPAddr, n.RaftAddr = h, h.IP+":4001", h.IP+":4002"
		n.Client = &http.Client{Timeout: 2 * time.Second}
		c.nodes = append(c.nodes, n)
	}
	// Registered after the nodes' own cleanups, so it runs first: processes
	// stop before their namespaces go.
	t.Cleanup(func() {
		for _, n := range c.nodes {
			if n.cmd != nil && n.cmd.Process != nil {
				n.cmd.Process.Signal(syscall.SIGCONT)
				n.cmd.Process.Kill()
				<-n.done
			}
		}
		nt.Close()
	})
	c.nodes.startAll()
	c.nodes.waitOneCluster(t, 30*time.Second)
	return c
}

// leader returns the node every live node names as leader, waiting for one.
func (c *chaosCluster) leader() *Node {
	c.t.Helper()
	var l *Node
	waitFor(c.t, 30*time.Second, "a leader", func() bool {
		for _, n := range c.nodes {
			id := n.leaderID()
			for _, m := range c.nodes {
				if id != "" && m.nodeID() == id {
					l = m
					return true
				}
			}
		}
		return false
	})
	return l
}

func (c *chaosCluster) index(n *Node) int {
	for i, m := range c.nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// request sends one JSON request and classifies the answer.
// A 503 whose body is exactly "leader not found" was refused before the
// write reached any log (no leader, or the leader refused it before
// appending); it is reported as status 0 with a nil error.
func request(client *http.Client, n *Node, path, body string) (status int, resp map[string]any, err error) {
	r, b, err := n.send(client, "", "", "POST", path, "application/json", []byte(body))
	if r == nil {
		return 0, nil, err
	}
	if err != nil {
		return r.StatusCode, nil, err
	}
	if r.StatusCode == 200 {
		json.Unmarshal([]byte(b), &resp)
	}
	if r.StatusCode == 503 && strings.TrimSpace(b) == "leader not found" {
		return 0, nil, nil
	}
	return r.StatusCode, resp, nil
}

// firstResult returns results[0] of a response.
func firstResult(resp map[string]any) map[string]any {
	rs, _ := resp["results"].([]any)
	if len(rs) == 0 {
		return nil
	}
	m, _ := rs[0].(map[string]any)
	return m
}

// workload runs register clients and appenders against random nodes until
// stop is closed.
type workload struct {
	c       *chaosCluster
	hist    *chaos.History
	keys    int
	mu      sync.Mutex
	acked   map[int64]bool // ids of acknowledged appends
	tried   map[int64]bool
	nextID  atomic.Int64
	nextVal atomic.Int64
}

func (w *workload) register(client int, rng *rand.Rand, stop <-chan struct{}) {
	hc := &http.Client{Timeout: 2 * time.Second}
	last := map[int]int64{}
	for {
		select {
		case <-stop:
			return
		default:
		}
		n := w.c.nodes[rng.Intn(len(w.c.nodes))]
		k := rng.Intn(w.keys)
		op := chaos.Op{Client: client, Key: k, Node: n.nodeID()}
		var path, body string
		switch p := rng.Intn(10); {
		case p < 4:
			op.Kind = chaos.OpRead
			op.Level = []string{"linearizable", "strong", "linearizable", "strong", "weak", "none"}[rng.Intn(6)]
			path = "/db/query?level=" + op.Level
			body = fmt.Sprintf(`[["SELECT v FROM reg WHERE k=?", %d]]`, k)
		case p < 8:
			op.Kind, op.Value = chaos.OpWrite, w.nextVal.Add(1)
			path = "/db/execute"
			body = fmt.Sprintf(`[["UPDATE reg SET v=? WHERE k=?", %d, %d]]`, op.Value, k)
		default:
			op.Kind, op.Old, op.Value = chaos.OpCAS, last[k], w.nextVal.Add(1)
			path = "/db/execute"
			body = fmt.Sprintf(`[["UPDATE reg SET v=? WHERE k=? AND v=?", %d, %d, %d]]`, op.Value, k, op.Old)
		}
		op.Call = w.hist.Now()
		status, resp, err := request(hc, n, path, body)
		op.Return = w.hist.Now()
		res := firstResult(resp)
		var dialErr *net.OpError
		switch {
		case errors.As(err, &dialErr) && dialErr.Op == "dial":
			// Never sent: the node is down or unreachable.
			op.Outcome, op.Error = chaos.Refused, err.Error()
		case err != nil:
			op.Outcome, op.Error = chaos.Unknown, err.Error()
		case status == 0:
			op.Outcome, op.Error = chaos.Refused, "leader not found"
		case status == 400 || status == 401 || status == 404 || status == 405:
			op.Outcome, op.Error = chaos.Refused, fmt.Sprint(status)
		case status != 200 || res == nil:
			// 503 after forwarding, or a leader that lost its lease while
			// the entry was in flight: it may still commit.
			op.Outcome, op.Error = chaos.Unknown, fmt.Sprint(status)
		case res["error"] != nil:
			op.Outcome, op.Error = chaos.Refused, fmt.Sprint(res["error"])
		case op.Kind == chaos.OpRead:
			vals, _ := res["values"].([]any)
			if len(vals) != 1 {
				op.Outcome, op.Error = chaos.Refused, "no row"
				break
			}
			v, _ := vals[0].([]any)[0].(float64)
			op.Value, op.Outcome = int64(v), chaos.OK
			last[k] = op.Value
		default:
			ra, _ := res["rows_affected"].(float64)
			switch {
			case ra == 1:
				op.Outcome = chaos.OK
				last[k] = op.Value
			case op.Kind == chaos.OpCAS:
				op.Outcome = chaos.Fail
			default:
				op.Outcome, op.Error = chaos.Refused, "no row updated"
			}
		}
		w.hist.Add(op)
	}
}

// appender inserts unique ids into ev (no key: a duplicate apply shows).
func (w *workload) appender(rng *rand.Rand, stop <-chan struct{}) {
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-stop:
			return
		default:
		}
		id := w.nextID.Add(1)
		w.mu.Lock()
		w.tried[id] = true
		w.mu.Unlock()
		n := w.c.nodes[rng.Intn(len(w.c.nodes))]
		status, resp, err := request(hc, n, "/db/execute", fmt.Sprintf(`[["INSERT INTO ev(id) VALUES(?)", %d]]`, id))
		if err == nil && status == 200 {
			if r := firstResult(resp); r != nil && r["rows_affected"] == float64(1) {
				w.mu.Lock()
				w.acked[id] = true
				w.mu.Unlock()
			}
		}
	}
}

// probeWrites sends writes, each with a short timeout, round robin to
// every node but skip, from since until one is acknowledged, and delivers
// how long after since that was (-1 if none within 30 s). A short timeout
// matters: a request to a paused or cut-off node hangs, and would measure
// the client's timeout instead of the cluster.
func (c *chaosCluster) probeWrites(skip *Node, since time.Time) chan time.Duration {
	ch := make(chan time.Duration, 1)
	hc := &http.Client{Timeout: 300 * time.Millisecond}
	go func() {
		for i := 0; time.Since(since) < 30*time.Second; i++ {
			n := c.nodes[i%len(c.nodes)]
			if n == skip {
				continue
			}
			status, resp, err := request(hc, n, "/db/execute", `[["INSERT INTO probe(x) VALUES(1)"]]`)
			if r := firstResult(resp); err == nil && status == 200 && r != nil && r["rows_affected"] == float64(1) {
				ch <- time.Since(since)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		ch <- -1
	}()
	return ch
}

// scenario is one fault: inject returns a function that heals it.
type scenario struct {
	name string
	// leader: the fault takes the leader away while a majority survives,
	// so a new leader must accept writes within the recovery target.
	// Recovery is measured from the fault then, else from the heal.
	leader bool
	inject func(c *chaosCluster, leader *Node) (heal func())
	// smallDisks puts every data directory on a 48 MiB tmpfs.
	smallDisks bool
}

var scenarios = []scenario{
	{"kill-leader", true, func(c *chaosCluster, l *Node) func() {
		l.Kill()
		return func() { l.Start() }
	}, false},
	{"kill-follower", false, func(c *chaosCluster, l *Node) func() {
		f := c.nodes.followers(l)[c.rng.Intn(2)]
		f.Kill()
		return func() { f.Start() }
	}, false},
	{"kill-majority", false, func(c *chaosCluster, l *Node) func() {
		f := c.nodes.followers(l)[c.rng.Intn(2)]
		l.Kill()
		f.Kill()
		return func() { l.Start(); f.Start() }
	}, false},
	{"isolate-leader", true, func(c *chaosCluster, l *Node) func() {
		if err := c.net.Isolate(c.index(l)); err != nil {
			c.t.Fatal(err)
		}
		return func() { c.net.Heal() }
	}, false},
	{"leader-outbound-lost", true, func(c *chaosCluster, l *Node) func() {
		// One way: the leader's packets reach nobody; it still hears them.
		for j := range c.nodes {
			if j != c.index(l) {
				if err := c.net.Block(c.index(l), j); err != nil {
					c.t.Fatal(err)
				}
			}
		}
		return func() { c.net.Heal() }
	}, false},
	{"isolate-follower", false, func(c *chaosCluster, l *Node) func() {
		f := c.nodes.followers(l)[c.rng.Intn(2)]
		if err := c.net.Isolate(c.index(f)); err != nil {
			c.t.Fatal(err)
		}
		return func() { c.net.Heal() }
	}, false},
	{"pause-leader", true, func(c *chaosCluster, l *Node) func() {
		l.cmd.Process.Signal(syscall.SIGSTOP)
		return func() { l.cmd.Process.Signal(syscall.SIGCONT) }
	}, false},
	// Combined faults: no majority anywhere until the heal.
	{"isolate-leader-and-kill-follower", false, func(c *chaosCluster, l *Node) func() {
		f := c.nodes.followers(l)[c.rng.Intn(2)]
		f.Kill()
		if err := c.net.Isolate(c.index(l)); err != nil {
			c.t.Fatal(err)
		}
		return func() { c.net.Heal(); f.Start() }
	}, false},
	{"pause-leader-and-oneway-follower", false, func(c *chaosCluster, l *Node) func() {
		// The leader freezes, and one follower's packets reach nobody.
		fs := c.nodes.followers(l)
		l.cmd.Process.Signal(syscall.SIGSTOP)
		for j := range c.nodes {
			if j != c.index(fs[0]) {
				if err := c.net.Block(c.index(fs[0]), j); err != nil {
					c.t.Fatal(err)
				}
			}
		}
		return func() { c.net.Heal(); l.cmd.Process.Signal(syscall.SIGCONT) }
	}, false},
	{"disk-full-follower", false, func(c *chaosCluster, l *Node) func() {
		f := c.nodes.followers(l)[c.rng.Intn(2)]
		p := fill(c.t, f.Dir)
		return func() { os.Remove(p); restartIfExited(c.t, f) }
	}, true},
	{"disk-full-leader", false, func(c *chaosCluster, l *Node) func() {
		p := fill(c.t, l.Dir)
		return func() { os.Remove(p); restartIfExited(c.t, l) }
	}, true},
	{"read-only-follower", false, func(c *chaosCluster, l *Node) func() {
		f := c.nodes.followers(l)[c.rng.Intn(2)]
		undo := readOnly(c.t, f.Dir)
		return func() { undo(); restartIfExited(c.t, f) }
	}, false},
	{"read-only-leader", false, func(c *chaosCluster, l *Node) func() {
		undo := readOnly(c.t, l.Dir)
		return func() { undo(); restartIfExited(c.t, l) }
	}, false},
}

// chaosResult is one scenario's outcome, for the report.
type chaosResult struct {
	Scenario     string         `json:"scenario"`
	Seed         int64          `json:"seed"`
	Ops          int            `json:"ops"`
	Counts       map[string]int `json:"counts"`
	Linearizable bool           `json:"linearizable"`
	Acked        int            `json:"acked_appends"`
	Lost         int            `json:"lost"`
	Duplicates   int            `json:"duplicates"`
	Recovery     time.Duration  `json:"recovery_ns"`
	Converged    bool           `json:"converged"`
	// P99DuringFault is the 99th percentile latency of the operations
	// that succeeded while the fault lasted.
	P99DuringFault time.Duration `json:"p99_during_fault_ns"`
}

// runScenario runs the workload for a while, injects the fault, heals it,
// and checks the history, the appends and convergence.
func runScenario(t *testing.T, sc scenario, seed int64, phase time.Duration) chaosResult {
	c := newChaosCluster(t, seed, sc.smallDisks)
	l := c.leader()
	mustDoJSON(t, l, "POST", "/db/execute", `[["CREATE TABLE reg(k INTEGER PRIMARY KEY, v INTEGER)"],["CREATE TABLE ev(id INTEGER)"],["CREATE TABLE probe(x)"],`+
		`["WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k+1 FROM n WHERE k<15) INSERT INTO reg SELECT k, 0 FROM n"]]`,
		`{"results":[{},{},{},{"last_insert_id":15,"rows_affected":16}]}`)
	w := &workload{c: c, hist: chaos.NewHistory(), keys: 16, acked: map[int64]bool{}, tried: map[int64]bool{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		rng := rand.New(rand.NewSource(seed + int64(i)))
		wg.Add(1)
		go func() { defer wg.Done(); w.register(i, rng, stop) }()
	}
	for i := 0; i < 2; i++ {
		rng := rand.New(rand.NewSource(seed + 100 + int64(i)))
		wg.Add(1)
		go func() { defer wg.Done(); w.appender(rng, stop) }()
	}
	res := chaosResult{Scenario: sc.name, Seed: seed}
	defer func() {
		if t.Failed() {
			dir, _ := os.MkdirTemp("", "rqlited-chaos-"+sc.name+"-")
			w.hist.Save(filepath.Join(dir, "history.json"))
			for _, n := range c.nodes {
				os.WriteFile(filepath.Join(dir, n.nodeID()+".log"), []byte(n.out.String()), 0o644)
			}
			t.Logf("history and node logs in %s; reproduce with: go test -tags system ./system_test -run 'TestChaos/%s$' -chaos.seed=%d -v", dir, sc.name, seed)
		}
	}()

	time.Sleep(phase) // load before the fault
	heal := sc.inject(c, l)
	faultAt, faultNs := time.Now(), w.hist.Now()
	var probe chan time.Duration
	if sc.leader {
		probe = c.probeWrites(l, faultAt)
	}
	time.Sleep(phase) // load during the fault
	heal()
	healAt, healNs := time.Now(), w.hist.Now()
	if !sc.leader {
		probe = c.probeWrites(nil, healAt)
	}
	time.Sleep(phase) // load after healing
	close(stop)
	wg.Wait()
	res.Recovery = <-probe

	ops := w.hist.Ops()
	res.Ops, res.Counts = len(ops), w.hist.Counts()
	var lat []time.Duration
	for _, op := range ops {
		if op.Outcome == chaos.OK && op.Call >= faultNs && op.Call < healNs {
			lat = append(lat, time.Duration(op.Return-op.Call))
		}
	}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		res.P99DuringFault = lat[len(lat)*99/100]
	}

	// Every node converges: the same appended rows everywhere.
	var counts []string
	waitFor(t, 60*time.Second, "every node to converge after healing", func() bool {
		counts = counts[:0]
		for _, n := range c.nodes {
			s, b := n.Do("GET", "/db/query?level=none&q="+urlQuery("SELECT COUNT(*), COALESCE(SUM(id),0) FROM ev"), "", nil)
			if s != 200 {
				return false
			}
			counts = append(counts, b)
		}
		return counts[0] == counts[1] && counts[1] == counts[2]
	})
	res.Converged = true

	// No acknowledged append lost, none applied twice, nothing never sent.
	l = c.leader()
	_, body := l.Do("GET", "/db/query?level=strong&q="+urlQuery("SELECT id, COUNT(*) FROM ev GROUP BY id"), "", nil)
	var qr struct {
		Results []struct {
			Values [][]int64 `json:"values"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(body), &qr); err != nil || len(qr.Results) != 1 {
		t.Fatalf("reading ev: %v %s", err, body)
	}
	present := map[int64]bool{}
	for _, row := range qr.Results[0].Values {
		present[row[0]] = true
		if row[1] > 1 {
			res.Duplicates++
			t.Errorf("append %d applied %d times", row[0], row[1])
		}
		if !w.tried[row[0]] {
			t.Errorf("append %d present but never sent", row[0])
		}
	}
	res.Acked = len(w.acked)
	for id := range w.acked {
		if !present[id] {
			res.Lost++
		}
	}
	if res.Lost > 0 {
		t.Errorf("%d acknowledged appends lost", res.Lost)
	}

	viz := filepath.Join(os.TempDir(), fmt.Sprintf("rqlited-chaos-%s-%d.html", sc.name, seed))
	cr, err := chaos.CheckLinearizable(ops, map[string]bool{"linearizable": true, "strong": true}, 60*time.Second, viz)
	if err != nil {
		t.Fatal(err)
	}
	res.Linearizable = cr.Linearizable
	if !cr.Linearizable {
		t.Errorf("history not linearizable at strong/linearizable (%d ops checked): see %s", cr.Checked, cr.Visualization)
	}
	// weak and none promise no freshness (DOC/API.md), but never a value
	// that was not written.
	for _, level := range []string{"weak", "none"} {
		for _, v := range chaos.CheckReads(ops, level, 0) {
			t.Error(v)
		}
	}
	if ok := res.Counts[chaos.OpWrite+"/"+chaos.OK]; ok == 0 {
		t.Errorf("no write succeeded at all: %v", res.Counts)
	}
	if res.Recovery < 0 {
		t.Errorf("writes never resumed")
	} else if target := 2*electionTimeout + time.Second; sc.leader && res.Recovery > target {
		t.Errorf("a new leader accepted writes %v after the fault, target %v", res.Recovery, target)
	}
	t.Logf("%s: %d ops %v, %d appends acknowledged, lost %d, duplicates %d, recovery %v, p99 during the fault %v",
		sc.name, res.Ops, res.Counts, res.Acked, res.Lost, res.Duplicates, res.Recovery, res.P99DuringFault)
	return res
}

func urlQuery(s string) string {
	var b bytes.Buffer
	for _, r := range []byte(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteByte(r)
		default:
			fmt.Fprintf(&b, "%%%02X", r)
		}
	}
	return b.String()
}

// TestChaos runs every fault scenario once against a fresh three-node
// cluster in network namespaces, with a register workload checked for
// linearizability and an append workload checked for lost and duplicate
// writes. RQLITED_CHAOS_REPORT names a JSON file for the results.
func TestChaos(t *testing.T) {
	requireNetns(t)
	seed := *chaosSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000
	}
	var mu sync.Mutex
	var results []chaosResult
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			r := runScenario(t, sc, seed, 3*time.Second)
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		})
	}
	writeChaosReport(t, results)
}

func writeChaosReport(t *testing.T, results []chaosResult) {
	path := os.Getenv("RQLITED_CHAOS_REPORT")
	if path == "" {
		return
	}
	sort.Slice(results, func(i, j int) bool { return results[i].Scenario < results[j].Scenario })
	b, _ := json.MarshalIndent(results, "", " ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Error(err)
	}
	// The same as a Markdown table, for DOC/RELIABILITY.md.
	var md strings.Builder
	md.WriteString("| scenario | seed | operations | linearizable (strong, linearizable) | appends acknowledged | lost | duplicated | converged | writes resume after | p99 during the fault |\n")
	md.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		from := "heal"
		for _, sc := range scenarios {
			if sc.name == r.Scenario && sc.leader {
				from = "fault"
			}
		}
		fmt.Fprintf(&md, "| %s | %d | %d | %v | %d | %d | %d | %v | %v (from the %s) | %v |\n", r.Scenario, r.Seed, r.Ops,
			yesNo(r.Linearizable), r.Acked, r.Lost, r.Duplicates, yesNo(r.Converged), r.Recovery.Round(time.Millisecond), from,
			r.P99DuringFault.Round(time.Millisecond))
	}
	if err := os.WriteFile(strings.TrimSuffix(path, ".json")+".md", []byte(md.String()), 0o644); err != nil {
		t.Error(err)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// TestChaosSoak runs random scenarios with fresh seeds for
// RQLITED_SOAK_DURATION (make soak DURATION=1h) and prints a summary:
// operations, faults, violations, lost and duplicate writes, worst and
// median recovery.
func TestChaosSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("RQLITED_SOAK_DURATION"))
	if err != nil || d <= 0 {
		t.Skip("set RQLITED_SOAK_DURATION (make soak DURATION=30m)")
	}
	requireNetns(t)
	seed := *chaosSeed
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000
	}
	rng := rand.New(rand.NewSource(seed))
	end := time.Now().Add(d)
	var results []chaosResult
	for i := 0; time.Now().Before(end); i++ {
		sc := scenarios[rng.Intn(len(scenarios))]
		s := rng.Int63n(1_000_000)
		t.Run(fmt.Sprintf("%03d-%s", i, sc.name), func(t *testing.T) {
			results = append(results, runScenario(t, sc, s, 3*time.Second))
		})
	}
	var ops, lost, dups, violations, acked int
	recov := map[string][]time.Duration{}
	p99 := map[string]time.Duration{}
	for _, r := range results {
		ops += r.Ops
		lost += r.Lost
		dups += r.Duplicates
		acked += r.Acked
		if !r.Linearizable {
			violations++
		}
		recov[r.Scenario] = append(recov[r.Scenario], r.Recovery)
		p99[r.Scenario] = max(p99[r.Scenario], r.P99DuringFault)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "soak seed %d, %v: %d faults, %d operations, %d linearizability violations, %d of %d acknowledged appends lost, %d duplicates\n",
		seed, d, len(results), ops, violations, lost, acked, dups)
	var names []string
	for n := range recov {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		rs := recov[n]
		sort.Slice(rs, func(i, j int) bool { return rs[i] < rs[j] })
		fmt.Fprintf(&b, "  %-34s runs %3d  recovery median %v  worst %v  worst p99 during the fault %v\n", n, len(rs),
			rs[len(rs)/2].Round(time.Millisecond), rs[len(rs)-1].Round(time.Millisecond), p99[n].Round(time.Millisecond))
	}
	fmt.Print(b.String())
	writeChaosReport(t, results)
}
