package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/mux"
	"github.com/rqlited/rqlited/store/raftlog"
)

func TestParsePeers(t *testing.T) {
	ok := []struct {
		name, in string
		want     []raft.Server
		warnings int
	}{
		{"voters", `[{"id":"1","address":"10.0.0.1:4002","non_voter":false},{"id":"2","address":"host2:4002"}]`,
			[]raft.Server{{ID: "1", Address: "10.0.0.1:4002", Suffrage: raft.Voter}, {ID: "2", Address: "host2:4002", Suffrage: raft.Voter}}, 0},
		{"non-voter", `[{"id":"1","address":"h1:4002"},{"id":"r","address":"h2:4002","non_voter":true}]`,
			[]raft.Server{{ID: "1", Address: "h1:4002", Suffrage: raft.Voter}, {ID: "r", Address: "h2:4002", Suffrage: raft.Nonvoter}}, 0},
		{"keys in any case, whitespace", "\n [ {\"ID\":\"1\",\"Address\":\"[::1]:4002\"} ]\n\n",
			[]raft.Server{{ID: "1", Address: "[::1]:4002", Suffrage: raft.Voter}}, 0},
		{"unknown key warned", `[{"id":"1","address":"h1:4002","nonvoter":true}]`,
			[]raft.Server{{ID: "1", Address: "h1:4002", Suffrage: raft.Voter}}, 1},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			conf, warnings, err := parsePeers([]byte(tc.in), "1")
			if err != nil {
				t.Fatal(err)
			}
			if len(conf.Servers) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", conf.Servers, tc.want)
			}
			for i := range tc.want {
				if conf.Servers[i] != tc.want[i] {
					t.Fatalf("server %d: got %+v, want %+v", i, conf.Servers[i], tc.want[i])
				}
			}
			if len(warnings) != tc.warnings {
				t.Fatalf("warnings %q, want %d", warnings, tc.warnings)
			}
		})
	}

	bad := []struct {
		name, in string
		want     error
		msg      string // a part of the message
	}{
		{"empty file", "  \n", errPeersEmpty, "empty"},
		{"empty list", `[]`, errPeersEmpty, "no nodes"},
		{"null", `null`, errPeersEmpty, "no nodes"},
		{"malformed", `[{"id":"1","address":`, errPeersJSON, "not valid JSON"},
		{"object", `{"id":"1","address":"h:1"}`, errPeersShape, "found a JSON object"},
		{"trailing data", `[{"id":"1","address":"h1:4002"}] [{"id":"2","address":"h2:4002"}]`, errPeersJSON, "more after the list"},
		{"old format", `["10.0.0.1:4002","10.0.0.2:4002"]`, errPeersOldFormat, "old list-of-addresses format"},
		{"number entry", `[1]`, errPeersShape, "entry 1 is 1"},
		{"numeric id", `[{"id":1,"address":"h1:4002"}]`, errPeersShape, `"id" must be a string`},
		{"string non_voter", `[{"id":"1","address":"h1:4002","non_voter":"false"}]`, errPeersShape, "true or false"},
		{"no id", `[{"address":"h1:4002"}]`, errPeersNoID, "entry 1"},
		{"no address", `[{"id":"1"}]`, errPeersAddress, `no "address"`},
		{"url", `[{"id":"1","address":"http://h1:4001"}]`, errPeersAddress, "is a URL"},
		{"no port", `[{"id":"1","address":"h1"}]`, errPeersAddress, "no port"},
		{"bad port", `[{"id":"1","address":"h1:http"}]`, errPeersAddress, "no valid port"},
		{"no host", `[{"id":"1","address":":4002"}]`, errPeersAddress, "no host"},
		{"bare ipv6", `[{"id":"1","address":"::1:4002"}]`, errPeersAddress, "brackets"},
		{"duplicate id", `[{"id":"1","address":"h1:4002"},{"id":"1","address":"h2:4002"}]`, errPeersDupID, `"1" (entries 1 and 2)`},
		{"duplicate address", `[{"id":"1","address":"h1:4002"},{"id":"2","address":"h1:4002"}]`, errPeersDupAddr, "h1:4002"},
		{"no voter", `[{"id":"1","address":"h1:4002","non_voter":true}]`, errPeersNoVoter, "non_voter"},
		{"self missing", `[{"id":"2","address":"h2:4002"},{"id":"3","address":"h3:4002"}]`, errPeersNotListed, `"2", "3"`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parsePeers([]byte(tc.in), "1")
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q lacks %q", err, tc.msg)
			}
		})
	}
}

func TestFindPeersFile(t *testing.T) {
	dir := t.TempDir()
	if p, err := findPeersFile(dir); p != "" || err != nil {
		t.Fatalf("empty dir: %q %v", p, err)
	}
	rqlitePath, rootPath := peersCandidates(dir)[0], peersCandidates(dir)[1]
	writePeers(t, rqlitePath, `[]`)
	if p, err := findPeersFile(dir); p != rqlitePath || err != nil {
		t.Fatalf("raft/peers.json: %q %v", p, err)
	}
	writePeers(t, rootPath, `[]`)
	if _, err := findPeersFile(dir); !errors.Is(err, errPeersTwoFiles) || !errors.Is(err, ErrPeersFile) {
		t.Fatalf("both files: %v", err)
	}
	os.Remove(rqlitePath)
	if p, err := findPeersFile(dir); p != rootPath || err != nil {
		t.Fatalf("peers.json: %q %v", p, err)
	}
	// A byte order mark is skipped.
	writePeers(t, rootPath, "\ufeff"+`[{"id":"1","address":"h1:4002"}]`)
	if pf, err := readPeersFile(dir, "1"); err != nil || len(pf.conf.Servers) != 1 {
		t.Fatalf("file with a byte order mark: %+v %v", pf, err)
	}
	// A directory is refused as such.
	os.Remove(rootPath)
	if err := os.Mkdir(rootPath, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := readPeersFile(dir, "1"); !errors.Is(err, errPeersUnreadable) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
	// A dangling link is a file that cannot be read, not no file.
	os.Remove(rootPath)
	if err := os.Symlink(filepath.Join(dir, "nowhere"), rootPath); err != nil {
		t.Fatal(err)
	}
	if _, err := readPeersFile(dir, "1"); !errors.Is(err, errPeersUnreadable) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dangling link: %v", err)
	}
}

func writePeers(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// lockedBuffer is a log destination read after the writers stopped, or
// while they write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openOn opens (without bootstrapping) the store of node1 in dir on ln.
func openOn(tb testing.TB, dir string, ln net.Listener, logs io.Writer) (*testNode, error) {
	tb.Helper()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := mux.New(ln, discard)
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.NodeID = "node1"
	cfg.Addr = ln.Addr().String()
	cfg.Layer = m.Layer(mux.HeaderRaft)
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LogOutput = io.Discard
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	m.Serve()
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Open(); err != nil {
		m.Close()
		return nil, err
	}
	n := &testNode{Store: s, mux: m}
	tb.Cleanup(func() { n.close() })
	return n, nil
}

func listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return ln
}

func waitLeader(tb testing.TB, s *Store) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.IsLeader() {
		if time.Now().After(deadline) {
			tb.Fatal("no leadership within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A node whose configuration lost its quorum (a second voter that will
// never answer) leads again, with every row, after a restart with a
// peers.json naming only itself, at a new address; the file is renamed.
func TestRecoverLostQuorum(t *testing.T) {
	dir := t.TempDir()
	n := mustOpenStore(t, dir, func(c *Config) { c.SnapshotThreshold = 50; c.TrailingLogs = 10 })
	mustExec(t, n.Store, "CREATE TABLE t (v, r DEFAULT (random()))")
	for i := 0; i < 120; i++ {
		mustExec(t, n.Store, "INSERT INTO t(v) VALUES(1)")
		if i == 60 {
			if err := n.Snapshot(0); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := dumpString(t, n.Store)
	clusterID := n.ClusterID()
	// The configuration change takes effect at once and needs the ghost's
	// vote to commit: the node has lost its quorum.
	n.raft.AddVoter("ghost", "127.0.0.1:1", 0, time.Second).Error()
	deadline := time.Now().Add(10 * time.Second)
	for n.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("still leader without a quorum")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, _, err := n.Execute(context.Background(), req("INSERT INTO t(v) VALUES(2)")); err == nil {
		t.Fatal("write accepted without a quorum")
	}
	n.close()
	old, err := lastConfigurationIn(t, dir)
	if err != nil || len(old.Servers) != 2 {
		t.Fatalf("configuration before recovery: %+v %v", old, err)
	}

	ln := listen(t)
	newAddr := ln.Addr().String()
	peersPath := filepath.Join(dir, "raft", "peers.json")
	writePeers(t, peersPath, `[{"id": "node1", "address": "`+newAddr+`", "non_voter": false}]`)
	logs := &lockedBuffer{}
	n2, err := openOn(t, dir, ln, logs)
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, n2.Store)
	if c := count(t, n2.Store, command.Linearizable); c != 120 {
		t.Fatalf("after recovery: %d rows, want 120", c)
	}
	if after := dumpString(t, n2.Store); after != before {
		t.Fatalf("recovered database differs:\nbefore %s\nafter %s", before, after)
	}
	if got := n2.ClusterID(); got != clusterID || got == "" {
		t.Fatalf("cluster ID %q after recovery, want %q", got, clusterID)
	}
	servers, err := n2.Servers()
	if err != nil || len(servers) != 1 || servers[0] != (command.Server{ID: "node1", Addr: newAddr, Voter: true}) {
		t.Fatalf("servers after recovery: %+v %v", servers, err)
	}
	if _, err := os.Stat(peersPath); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("peers.json still there: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "raft", "peers.info")); err != nil || !strings.Contains(string(b), newAddr) {
		t.Fatalf("peers.info: %q %v", b, err)
	}
	mustExec(t, n2.Store, "INSERT INTO t(v) VALUES(3)")
	if c := count(t, n2.Store, command.Strong); c != 121 {
		t.Fatalf("after a new write: %d rows, want 121", c)
	}
	n2.close()
	for _, want := range []string{"recovering the Raft configuration", "recovered the Raft configuration", "ghost", "peers.info"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// lastConfigurationIn reads the last configuration of a closed store's dir.
func lastConfigurationIn(tb testing.TB, dir string) (raft.Configuration, error) {
	tb.Helper()
	cfg := raftlog.DefaultConfig(dir)
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	logs, err := raftlog.Open(cfg)
	if err != nil {
		return raft.Configuration{}, err
	}
	defer logs.Close()
	snaps, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		return raft.Configuration{}, err
	}
	return lastConfiguration(logs, snaps)
}

// A peers file naming a node that this one never knew is applied, with a
// warning.
func TestRecoverWarnsUnknownNode(t *testing.T) {
	dir := t.TempDir()
	n := mustOpenStore(t, dir, nil)
	mustExec(t, n.Store, "CREATE TABLE t (v)", "INSERT INTO t VALUES(1)")
	n.close()
	ln := listen(t)
	writePeers(t, filepath.Join(dir, "peers.json"), `[{"id":"node1","address":"`+ln.Addr().String()+`"},
		{"id":"replica9","address":"127.0.0.1:1","non_voter":true}]`)
	logs := &lockedBuffer{}
	n2, err := openOn(t, dir, ln, logs)
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, n2.Store)
	if c := count(t, n2.Store, command.Strong); c != 1 {
		t.Fatalf("%d rows, want 1", c)
	}
	servers, _ := n2.Servers()
	if len(servers) != 2 || servers[1].ID != "replica9" || servers[1].Voter {
		t.Fatalf("servers %+v", servers)
	}
	if _, err := os.Stat(filepath.Join(dir, "peers.info")); err != nil {
		t.Fatalf("peers.info next to the file it was renamed from: %v", err)
	}
	n2.close()
	if !strings.Contains(logs.String(), "not in this node's last configuration") || !strings.Contains(logs.String(), "replica9") {
		t.Fatalf("no warning about replica9:\n%s", logs)
	}
}

// dirDigest hashes every file under dir but the lock file.
func dirDigest(tb testing.TB, dir string) map[string][32]byte {
	tb.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == lockName {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			out[p] = sha256.Sum256([]byte("link"))
			return nil
		}
		b, err := os.ReadFile(p)
		out[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// A refused peers file stops Open before anything in the directory
// changes; once it is removed, the node starts with its data.
func TestRecoverRefusalChangesNothing(t *testing.T) {
	dir := t.TempDir()
	n := mustOpenStore(t, dir, func(c *Config) { c.SnapshotThreshold = 50; c.TrailingLogs = 10 })
	mustExec(t, n.Store, "CREATE TABLE t (v)")
	for i := 0; i < 70; i++ {
		mustExec(t, n.Store, "INSERT INTO t VALUES(1)")
	}
	if err := n.Snapshot(0); err != nil {
		t.Fatal(err)
	}
	n.close()
	peersPath := filepath.Join(dir, "raft", "peers.json")
	for _, tc := range []struct {
		content string
		want    error
	}{
		{`[{"id":"node1","address":`, errPeersJSON},
		{`[]`, errPeersEmpty},
		{`[{"id":"node2","address":"127.0.0.1:4002"}]`, errPeersNotListed},
		{`[{"id":"node1","address":"127.0.0.1:4002"},{"id":"node1","address":"127.0.0.1:4003"}]`, errPeersDupID},
	} {
		writePeers(t, peersPath, tc.content)
		before := dirDigest(t, dir)
		_, err := openOn(t, dir, listen(t), io.Discard)
		if !errors.Is(err, ErrPeersFile) || !errors.Is(err, tc.want) {
			t.Fatalf("%s: got %v, want %v", tc.content, err, tc.want)
		}
		if !strings.Contains(err.Error(), "nothing was changed") || !strings.Contains(err.Error(), peersPath) {
			t.Fatalf("message says neither the file nor what to do: %v", err)
		}
		after := dirDigest(t, dir)
		if len(after) != len(before) {
			t.Fatalf("%s: files before %d, after %d", tc.content, len(before), len(after))
		}
		for p, h := range before {
			if after[p] != h {
				t.Fatalf("%s: %s changed", tc.content, p)
			}
		}
	}
	os.Remove(peersPath)
	n2, err := openOn(t, dir, listen(t), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	waitLeader(t, n2.Store)
	if c := count(t, n2.Store, command.Strong); c != 70 {
		t.Fatalf("%d rows after the refusals, want 70", c)
	}
}

// A node without state refuses a peers file (hashicorp/raft would too) and
// creates nothing.
func TestRecoverNoState(t *testing.T) {
	dir := t.TempDir()
	ln := listen(t)
	peersPath := filepath.Join(dir, "raft", "peers.json")
	writePeers(t, peersPath, `[{"id":"node1","address":"`+ln.Addr().String()+`"}]`)
	_, err := openOn(t, dir, ln, io.Discard)
	if !errors.Is(err, errPeersNoState) || !errors.Is(err, ErrPeersFile) || !strings.Contains(err.Error(), "-join") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, raftDBName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("raft.db created: %v", err)
	}
	if _, err := os.Stat(peersPath); err != nil {
		t.Fatalf("peers.json moved: %v", err)
	}
}
