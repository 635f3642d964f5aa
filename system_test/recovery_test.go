//go:build system

package system_test

// Manual recovery with peers.json, as rqlite documents it: stop the nodes,
// write <data>/raft/peers.json on each node that is to stay, start them.

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// peersJSON is a peers.json naming nodes at their current Raft addresses.
func recPeersJSON(nodes ...*Node) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf(`{"id": %q, "address": %q, "non_voter": false}`, n.nodeID(), n.RaftAddr))
	}
	return "[" + strings.Join(parts, ",\n ") + "]\n"
}

// rqlitePeersPath is where rqlite's documentation puts the file.
func recRqlitePeersPath(n *Node) string { return filepath.Join(n.Dir, "raft", "peers.json") }

func recWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitExit waits for n's process to end and returns its exit code.
func recWaitExit(t *testing.T, n *Node, timeout time.Duration) int {
	t.Helper()
	select {
	case <-n.done:
	case <-time.After(timeout):
		t.Fatalf("node %s still running after %v:\n%s", n.HTTPAddr, timeout, n.out.String())
	}
	var ee *exec.ExitError
	if !errors.As(n.exitErr, &ee) {
		t.Fatalf("node %s exited with %v, want an exit status:\n%s", n.HTTPAddr, n.exitErr, n.out.String())
	}
	return ee.ExitCode()
}

// insertRange inserts ids from..to through n and fails unless each is
// acknowledged.
func recInsertRange(t *testing.T, n *Node, from, to int64) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	for id := from; id <= to; id++ {
		if !insertAcked(client, n, id) {
			t.Fatalf("insert %d through %s not acknowledged", id, n.HTTPAddr)
		}
	}
}

func recCreateTable(t *testing.T, n *Node) {
	t.Helper()
	s, b := n.Execute("", `["CREATE TABLE t (id INTEGER PRIMARY KEY)"]`)
	if s != 200 || strings.Contains(b, `"error"`) {
		t.Fatalf("create table: %d %s", s, b)
	}
}

func recWaitCount(t *testing.T, n *Node, want int64) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%d rows on %s", want, n.nodeID()), func() bool { return n.count("t", "none") == want })
}

// checkRenamed fails unless n's peers.json was renamed to peers.info.
func recCheckRenamed(t *testing.T, n *Node) {
	t.Helper()
	if _, err := os.Stat(recRqlitePeersPath(n)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: peers.json still there after recovery (%v)", n.nodeID(), err)
	}
	if _, err := os.Stat(filepath.Join(n.Dir, "raft", "peers.info")); err != nil {
		t.Fatalf("%s: no peers.info after recovery: %v", n.nodeID(), err)
	}
}

// Three nodes, two lost for good: the survivor, restarted with a
// peers.json naming only itself, leads with every acknowledged write and
// takes new ones; the file is applied once.
func TestRecoverSurvivorOfThree(t *testing.T) {
	c := newBootstrapCluster(t, 3, "-raft-snap", "30", "-raft-snap-int", "200ms")
	c.startAll()
	leader := c.waitOneCluster(t, 30*time.Second)
	recCreateTable(t, leader)
	recInsertRange(t, leader, 1, 80)
	survivor := c.followers(leader)[0]
	// Acknowledged writes are on a majority, not on every node: the
	// survivor is taken once it has them all, as an operator picks the
	// most advanced survivor.
	recWaitCount(t, survivor, 80)
	for _, n := range c {
		n.Kill()
	}

	recWriteFile(t, recRqlitePeersPath(survivor), recPeersJSON(survivor))
	survivor.Restart()
	waitFor(t, 20*time.Second, "the survivor leads", func() bool { return survivor.leaderID() == survivor.nodeID() })
	if got := survivor.count("t", "strong"); got != 80 {
		t.Fatalf("after recovery: %d rows, want 80", got)
	}
	if v := survivor.status("store.nodes"); recConfigSize(v) != 1 {
		t.Fatalf("configuration after recovery: %v, want this node alone", v)
	}
	recInsertRange(t, survivor, 81, 90)
	if got := survivor.count("t", "strong"); got != 90 {
		t.Fatalf("after new writes: %d rows, want 90", got)
	}
	recCheckRenamed(t, survivor)
	if out := survivor.out.String(); !strings.Contains(out, "recovered the Raft configuration") {
		t.Fatalf("recovery not logged:\n%s", out)
	}

	// A second restart does not recover again and keeps everything.
	survivor.Kill()
	survivor.Restart()
	waitFor(t, 20*time.Second, "the survivor leads again", func() bool { return survivor.leaderID() == survivor.nodeID() })
	if got := survivor.count("t", "strong"); got != 90 {
		t.Fatalf("after a second restart: %d rows, want 90", got)
	}
	if out := survivor.out.String(); strings.Contains(out, "recovering the Raft configuration") {
		t.Fatalf("peers file applied twice:\n%s", out)
	}
}

// configSize is the number of servers in /status store.nodes (a count or
// a list of nodes), -1 if it is neither.
func recConfigSize(v any) int {
	switch v := v.(type) {
	case float64:
		return int(v)
	case []any:
		return len(v)
	}
	return -1
}

// Three nodes all stopped and restarted at new addresses, with no -join
// (nothing but the file tells them where the others are): with the same
// peers.json on each, they form one cluster again with every write.
func TestRecoverAllNodesAtNewAddresses(t *testing.T) {
	c := newBootstrapCluster(t, 3, "-raft-snap", "30", "-raft-snap-int", "200ms")
	c.startAll()
	leader := c.waitOneCluster(t, 30*time.Second)
	clusterID := leader.clusterID()
	recCreateTable(t, leader)
	recInsertRange(t, leader, 1, 80)
	for _, n := range c {
		recWaitCount(t, n, 80)
	}
	for _, n := range c {
		n.Kill()
	}

	for _, n := range c {
		id := n.nodeID()
		n.HTTPAddr, n.RaftAddr = freePort(t), freePort(t)
		n.Args = []string{"-node-id", id}
	}
	peers := recPeersJSON(c...)
	for _, n := range c {
		recWriteFile(t, recRqlitePeersPath(n), peers)
	}
	c.startAll()
	leader = c.waitOneCluster(t, 30*time.Second)
	if got := leader.clusterID(); got != clusterID {
		t.Fatalf("cluster ID %q after recovery, want %q", got, clusterID)
	}
	if got, _ := leader.status("store.leader.addr").(string); got != leader.RaftAddr {
		t.Fatalf("leader address %q, want its new address %s", got, leader.RaftAddr)
	}
	for _, n := range c {
		recWaitCount(t, n, 80)
		recCheckRenamed(t, n)
	}
	recInsertRange(t, leader, 81, 90)
	for _, n := range c {
		recWaitCount(t, n, 90)
	}
}

// dataDigest hashes the files of dir but the lock file and the peers files.
func recDataDigest(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir(), d.Name() == "rqlited.lock", strings.HasPrefix(d.Name(), "peers."):
			return nil
		}
		b, err := os.ReadFile(p)
		out[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A peers file that cannot be meant stops the node with exit status 1 and
// a message naming the problem and what to do; the file and the data
// directory are left as they were.
func TestRecoverBadPeersFile(t *testing.T) {
	n := startNode(t, "-node-id", "n1")
	recCreateTable(t, n)
	recInsertRange(t, n, 1, 20)
	n.Stop()
	before := recDataDigest(t, n.Dir)
	rootPath := filepath.Join(n.Dir, "peers.json")
	self := fmt.Sprintf(`{"id": "n1", "address": %q}`, n.RaftAddr)

	cases := []struct {
		name    string
		content string // of raft/peers.json
		setup   func(t *testing.T)
		want    string
	}{
		{name: "malformed JSON", content: `[{"id": "n1", "address": `, want: "not valid JSON"},
		{name: "empty list", content: "[]", want: "lists no nodes"},
		{name: "duplicate IDs", content: "[" + self + `, {"id": "n1", "address": "127.0.0.1:1"}]`, want: `node ID is listed twice: "n1"`},
		{name: "node not listed", content: `[{"id": "n2", "address": "127.0.0.1:1"}]`, want: `this node is not in the file: no entry has this node's ID "n1"`},
		{name: "old format", content: fmt.Sprintf("[%q]", n.RaftAddr), want: "old list-of-addresses format"},
		{name: "URL address", content: `[{"id": "n1", "address": "http://` + n.HTTPAddr + `"}]`, want: "is a URL"},
		{name: "two files", content: "[" + self + "]", setup: func(t *testing.T) { recWriteFile(t, rootPath, "["+self+"]") },
			want: "there are two peers files"},
		{name: "unreadable", setup: func(t *testing.T) {
			if err := os.MkdirAll(recRqlitePeersPath(n), 0o755); err != nil {
				t.Fatal(err)
			}
		}, want: "cannot read the file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := recRqlitePeersPath(n)
			defer os.RemoveAll(path)
			defer os.Remove(rootPath)
			if tc.content != "" {
				recWriteFile(t, path, tc.content)
			}
			if tc.setup != nil {
				tc.setup(t)
			}
			n.Start()
			if code := recWaitExit(t, n, 30*time.Second); code != 1 {
				t.Fatalf("exit status %d, want 1:\n%s", code, n.out.String())
			}
			out := n.out.String()
			for _, want := range []string{tc.want, path, "nothing was changed"} {
				if !strings.Contains(out, want) {
					t.Errorf("message lacks %q:\n%s", want, out)
				}
			}
			if tc.content != "" {
				if b, err := os.ReadFile(path); err != nil || string(b) != tc.content {
					t.Errorf("peers.json changed: %q %v", b, err)
				}
			}
			if _, err := os.Stat(filepath.Join(n.Dir, "raft", "peers.info")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("peers.info created: %v", err)
			}
			after := recDataDigest(t, n.Dir)
			if len(after) != len(before) {
				t.Errorf("%d files in the data directory, %d before", len(after), len(before))
			}
			for p, h := range before {
				if after[p] != h {
					t.Errorf("%s changed", p)
				}
			}
		})
	}

	// A node this one never knew is accepted with a warning (here a read
	// replica, so that the node keeps its quorum alone).
	recWriteFile(t, recRqlitePeersPath(n), "["+self+`, {"id": "replica9", "address": "127.0.0.1:1", "non_voter": true}]`)
	n.Restart()
	waitFor(t, 20*time.Second, "n1 leads", func() bool { return n.leaderID() == "n1" })
	if got := n.count("t", "strong"); got != 20 {
		t.Fatalf("after the refusals and a recovery: %d rows, want 20", got)
	}
	recInsertRange(t, n, 21, 25)
	recCheckRenamed(t, n)
	if out := n.out.String(); !strings.Contains(out, "not in this node's last configuration") || !strings.Contains(out, "replica9") {
		t.Fatalf("no warning about the unknown node:\n%s", out)
	}
}

// A node without data refuses a peers file (there is nothing to recover)
// and leaves it in place.
func TestRecoverPeersFileWithoutState(t *testing.T) {
	n := newNode(t, "", "-node-id", "n1")
	recWriteFile(t, recRqlitePeersPath(n), recPeersJSON(n))
	n.Start()
	if code := recWaitExit(t, n, 30*time.Second); code != 1 {
		t.Fatalf("exit status %d, want 1:\n%s", code, n.out.String())
	}
	if out := n.out.String(); !strings.Contains(out, "no Raft state to recover") || !strings.Contains(out, "-join") {
		t.Fatalf("message:\n%s", out)
	}
	if _, err := os.Stat(recRqlitePeersPath(n)); err != nil {
		t.Fatalf("peers.json gone: %v", err)
	}
}
