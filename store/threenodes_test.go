package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/mux"
)

// openEmptyStore opens a store with no state (neither bootstrapped nor
// joined) in its own data directory, on its own mux on a random loopback
// port, and closes both when the test ends.
func openEmptyStore(t *testing.T, id string) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := mux.New(ln, slog.New(slog.NewTextHandler(io.Discard, nil)))
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.NodeID = id
	cfg.Addr = ln.Addr().String()
	cfg.Layer = m.Layer(mux.HeaderRaft)
	// Short enough for a quick first election, long enough that a loaded
	// machine (-race, a parallel CI run) does not depose the leader.
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.LogOutput = io.Discard
	m.Serve()
	s, err := New(cfg)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	if err := s.Open(); err != nil {
		m.Close()
		t.Fatal(err)
	}
	n := &testNode{Store: s, mux: m}
	t.Cleanup(n.close)
	return n
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s (last: %s)", what, state)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for state
	}
}

// localRows reads rows on n at level none: its own database, as applied.
func localRows(n *testNode) ([][]any, error) {
	res, _, err := n.Query(context.Background(), req("SELECT v, at, r, hex(b) FROM t ORDER BY v"),
		command.QueryOptions{Level: command.None})
	if err != nil {
		return nil, err
	}
	if res[0].Error != "" {
		return nil, fmt.Errorf("%s", res[0].Error)
	}
	return res[0].Values, nil
}

// TestThreeStoresInOneProcess: three stores in one process form a cluster;
// a write on the leader, with a CURRENT_TIMESTAMP default, datetime('now'),
// random() and randomblob(), reads back identically on every store at
// level none once applied (each store's database has its own fixed clock
// while it applies); a removed store leaves the configuration and the
// other two go on committing.
func TestThreeStoresInOneProcess(t *testing.T) {
	n1 := openEmptyStore(t, "node1")
	if err := n1.BootstrapSelf(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node1 leads", func() (bool, string) { return n1.IsLeader(), "" })
	nodes := []*testNode{n1, openEmptyStore(t, "node2"), openEmptyStore(t, "node3")}
	for _, n := range nodes[1:] {
		if err := n1.Join(n.ID(), n.Addr(), true, ""); err != nil {
			t.Fatalf("join %s: %v", n.ID(), err)
		}
	}
	servers, err := n1.Servers()
	if err != nil || len(servers) != 3 {
		t.Fatalf("configuration after joins: %+v %v", servers, err)
	}

	mustExec(t, n1.Store,
		"CREATE TABLE t (v INTEGER PRIMARY KEY, at DEFAULT CURRENT_TIMESTAMP, r, b, now)",
		"INSERT INTO t(v, r, b, now) VALUES(1, random(), randomblob(8), datetime('now'))",
		"INSERT INTO t(v, r, b, now) VALUES(2, random(), randomblob(8), datetime('now'))")
	want, err := localRows(n1)
	if err != nil || len(want) != 2 {
		t.Fatalf("leader rows: %v %v", want, err)
	}
	sameOn := func(ns []*testNode, want [][]any) func() (bool, string) {
		return func() (bool, string) {
			for _, n := range ns {
				got, err := localRows(n)
				if err != nil || !reflect.DeepEqual(got, want) {
					return false, fmt.Sprintf("%s has %v (%v), want %v", n.ID(), got, err, want)
				}
			}
			return true, ""
		}
	}
	eventually(t, "every store has the leader's rows", sameOn(nodes, want))

	// The default and datetime('now') agree within each row: both come
	// from the entry's fixed time, not from a clock read on each store.
	res, _, err := n1.Query(context.Background(), req("SELECT COUNT(*) FROM t WHERE at = now"), command.QueryOptions{Level: command.None})
	if err != nil || res[0].Values[0][0] != int64(2) {
		t.Fatalf("CURRENT_TIMESTAMP and datetime('now') differ within an entry: %+v %v", res, err)
	}

	if err := n1.Remove("node3"); err != nil {
		t.Fatal(err)
	}
	servers, err = n1.Servers()
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, s := range servers {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"node1", "node2"}) {
		t.Fatalf("configuration after removing node3: %v", ids)
	}
	// The two that remain still form a quorum and replicate.
	mustExec(t, n1.Store, "INSERT INTO t(v, r, b, now) VALUES(3, random(), randomblob(8), datetime('now'))")
	want, err = localRows(n1)
	if err != nil || len(want) != 3 {
		t.Fatalf("leader rows after remove: %v %v", want, err)
	}
	eventually(t, "node2 has the write made after the remove", sameOn(nodes[:2], want))
}
