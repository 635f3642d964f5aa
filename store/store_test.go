package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/db"
	"github.com/rqlited/rqlited/mux"
)

type testNode struct {
	*Store
	mux *mux.Mux
}

// mustOpenStore opens a single-node store in dir on a random loopback port
// and waits for it to lead.
func mustOpenStore(tb testing.TB, dir string, tweak func(*Config)) *testNode {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := mux.New(ln, logger)
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.NodeID = "node1"
	cfg.Addr = ln.Addr().String()
	cfg.Layer = m.Layer(mux.HeaderRaft)
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LogOutput = io.Discard
	if tweak != nil {
		tweak(&cfg)
	}
	m.Serve()
	s, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Open(); err != nil {
		m.Close()
		tb.Fatal(err)
	}
	n := &testNode{Store: s, mux: m}
	tb.Cleanup(func() { n.close() })
	if err := s.BootstrapSelf(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.WaitForLeader(ctx); err != nil {
		tb.Fatal(err)
	}
	for !s.IsLeader() {
		if ctx.Err() != nil {
			tb.Fatal("not leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return n
}

func (n *testNode) close() {
	n.Store.Close(false)
	n.mux.Close()
}

func req(sqls ...string) *command.Request {
	r := &command.Request{}
	for _, s := range sqls {
		r.Statements = append(r.Statements, command.Statement{SQL: s})
	}
	return r
}

func mustExec(tb testing.TB, s *Store, sqls ...string) []command.Result {
	tb.Helper()
	res, _, err := s.Execute(context.Background(), req(sqls...))
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range res {
		if r.Error != "" {
			tb.Fatalf("statement error: %s", r.Error)
		}
	}
	return res
}

func count(tb testing.TB, s *Store, level command.Level) int64 {
	tb.Helper()
	res, _, err := s.Query(context.Background(), req("SELECT COUNT(*) FROM t"), command.QueryOptions{Level: level})
	if err != nil {
		tb.Fatal(err)
	}
	if res[0].Error != "" {
		tb.Fatal(res[0].Error)
	}
	return res[0].Values[0][0].(int64)
}

func TestExecuteQueryLevels(t *testing.T) {
	n := mustOpenStore(t, t.TempDir(), nil)
	mustExec(t, n.Store, "CREATE TABLE t (v)", "INSERT INTO t VALUES(1)")
	for _, l := range []command.Level{command.None, command.Weak, command.Strong, command.Linearizable, command.Auto} {
		if c := count(t, n.Store, l); c != 1 {
			t.Fatalf("level %v: count %d", l, c)
		}
	}
	res, idx, err := n.Request(context.Background(), req("INSERT INTO t VALUES(2)", "SELECT COUNT(*) FROM t"), command.QueryOptions{})
	if err != nil || idx == 0 || res[1].Values[0][0] != int64(2) {
		t.Fatalf("request with a write: %+v idx=%d err=%v", res, idx, err)
	}
	if _, _, err := n.Execute(context.Background(), req("PRAGMA journal_mode=DELETE")); !errors.Is(err, db.ErrDisallowedPragma) {
		t.Fatalf("pragma: %v", err)
	}
}

func TestRestartFromLogAndSnapshot(t *testing.T) {
	dir := t.TempDir()
	n := mustOpenStore(t, dir, func(c *Config) { c.SnapshotThreshold = 50; c.TrailingLogs = 10 })
	mustExec(t, n.Store, "CREATE TABLE t (v, at DEFAULT CURRENT_TIMESTAMP, r DEFAULT (random()))")
	for i := 0; i < 120; i++ {
		mustExec(t, n.Store, "INSERT INTO t(v) VALUES(1)")
		if i == 60 {
			if err := n.Snapshot(0); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := dumpString(t, n.Store)
	n.close()

	n2 := mustOpenStore(t, dir, nil)
	if c := count(t, n2.Store, command.Linearizable); c != 120 {
		t.Fatalf("after restart: %d rows, want 120", c)
	}
	if after := dumpString(t, n2.Store); after != before {
		t.Fatalf("replayed database differs:\nbefore %s\nafter %s", before, after)
	}
	if has, _ := n2.HasState(); !has {
		t.Fatal("HasState false after restart")
	}
}

// A connection setting made by a client before the snapshot (foreign keys
// on) holds on a node rebuilt from that snapshot, as on the others:
// otherwise it would accept a row the others refuse.
func TestSnapshotCarriesSettings(t *testing.T) {
	dir := t.TempDir()
	n := mustOpenStore(t, dir, func(c *Config) { c.SnapshotThreshold = 50; c.TrailingLogs = 1 })
	mustExec(t, n.Store, "PRAGMA foreign_keys=ON", "CREATE TABLE p(id INTEGER PRIMARY KEY)", "CREATE TABLE t(v REFERENCES p(id))")
	for i := 0; i < 20; i++ {
		mustExec(t, n.Store, "INSERT INTO p VALUES(NULL)")
	}
	if err := n.Snapshot(0); err != nil {
		t.Fatal(err)
	}
	n.close()

	n2 := mustOpenStore(t, dir, nil)
	res, _, err := n2.Execute(context.Background(), req("INSERT INTO t VALUES(999)"))
	if err != nil || len(res) != 1 || res[0].Error == "" {
		t.Fatalf("a row breaking a foreign key after restore from the snapshot: %+v %v", res, err)
	}
}

func dumpString(tb testing.TB, s *Store) string {
	tb.Helper()
	var b bytes.Buffer
	if err := s.Backup(context.Background(), &b, command.BackupOptions{Format: command.BackupSQL}); err != nil {
		tb.Fatal(err)
	}
	return b.String()
}

func TestDirInUse(t *testing.T) {
	dir := t.TempDir()
	mustOpenStore(t, dir, nil)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	m := mux.New(ln, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer m.Close()
	cfg := DefaultConfig()
	cfg.Dir, cfg.NodeID, cfg.Addr, cfg.Layer = dir, "x", ln.Addr().String(), m.Layer(mux.HeaderRaft)
	s, _ := New(cfg)
	if err := s.Open(); !errors.Is(err, ErrDirInUse) {
		t.Fatalf("second open: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, sqliteName)); err != nil {
		t.Fatalf("first node's database touched: %v", err)
	}
}

func TestLoadAndBackup(t *testing.T) {
	src := mustOpenStore(t, t.TempDir(), nil)
	mustExec(t, src.Store, "CREATE TABLE t (v)", "INSERT INTO t VALUES('x')")
	var bin bytes.Buffer
	if err := src.Backup(context.Background(), &bin, command.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := mustOpenStore(t, t.TempDir(), nil)
	if _, err := dst.Load(context.Background(), bin.Bytes()); err != nil {
		t.Fatal(err)
	}
	if c := count(t, dst.Store, command.Weak); c != 1 {
		t.Fatalf("after load: %d", c)
	}
	// The load is in the log: it survives a restart.
	dir := dst.cfg.Dir
	dst.close()
	again := mustOpenStore(t, dir, nil)
	if c := count(t, again.Store, command.Linearizable); c != 1 {
		t.Fatalf("after load and restart: %d", c)
	}
	if _, err := again.Load(context.Background(), []byte("junk")); !errors.Is(err, db.ErrNotSQLite) {
		t.Fatalf("load junk: %v", err)
	}
	if err := again.Snapshot(0); err != nil {
		t.Fatal(err)
	}
	if err := again.Snapshot(0); !errors.Is(err, ErrNothingNew) {
		t.Fatalf("second snapshot: %v", err)
	}
}

// TestVotersSingleNode: a bootstrapped single node counts itself as the
// only voter, so linearizable reads confirm without a quorum round (and
// still see every acknowledged write).
func TestVotersSingleNode(t *testing.T) {
	n := mustOpenStore(t, t.TempDir(), nil)
	r, err := n.raftNode()
	if err != nil {
		t.Fatal(err)
	}
	if voters, self, _ := n.voters(r, ""); voters != 1 || !self {
		t.Fatalf("voters = %d, self = %v; want 1, true", voters, self)
	}
	mustExec(t, n.Store, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	for i := 1; i <= 20; i++ {
		mustExec(t, n.Store, "INSERT INTO t DEFAULT VALUES")
		if got := count(t, n.Store, command.Linearizable); got != int64(i) {
			t.Fatalf("linearizable count after %d inserts: %d", i, got)
		}
	}
}

// TestConfirmationFor: a follower's term stands in for a heartbeat round
// only when it is a voter of this leader's term and the two of them are a
// majority; everything else takes the round, and a leader that is no
// longer a voter refuses.
func TestConfirmationFor(t *testing.T) {
	const term = 7
	for _, tc := range []struct {
		name       string
		voters     int
		self       bool
		askerVotes bool
		askerTerm  uint64
		want       confirmation
	}{
		{"leader removing itself", 3, false, true, term, confirmRefused},
		{"sole voter, local read", 1, true, false, 0, confirmSoleVoter},
		{"sole voter, read replica asks", 1, true, false, term, confirmSoleVoter},
		{"two voters, the other asks", 2, true, true, term, confirmByAsker},
		{"three voters, one asks", 3, true, true, term, confirmByAsker},
		{"three voters, asker in an older term", 3, true, true, term - 1, confirmByRound},
		{"three voters, asker in a later term", 3, true, true, term + 1, confirmByRound},
		{"three voters, read replica asks", 3, true, false, term, confirmByRound},
		{"three voters, local read", 3, true, false, 0, confirmByRound},
		{"four voters, one asks", 4, true, true, term, confirmByRound},
		{"five voters, one asks", 5, true, true, term, confirmByRound},
	} {
		if got := confirmationFor(tc.voters, tc.self, tc.askerVotes, tc.askerTerm, term); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, confirmationNames[got], confirmationNames[tc.want])
		}
	}
}

// TestVotersCountsTheAsker: the asker counts only as a voter of the
// configuration, and never as this node.
func TestVotersCountsTheAsker(t *testing.T) {
	n := mustOpenStore(t, t.TempDir(), nil)
	r, err := n.raftNode()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, askerVotes := n.voters(r, n.cfg.NodeID); askerVotes {
		t.Fatal("this node, claimed as the asker, counted as a second voter")
	}
	if _, _, askerVotes := n.voters(r, "stranger"); askerVotes {
		t.Fatal("a node outside the configuration counted as a voter")
	}
}
