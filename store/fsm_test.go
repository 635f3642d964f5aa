package store

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/command"
	"github.com/rqlited/rqlited/db"
)

func testFSM(t *testing.T) *fsm {
	t.Helper()
	dir := t.TempDir()
	d, err := db.Open(db.Config{Path: filepath.Join(dir, "db.sqlite")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return newFSM(d, dir, raft.NewInmemStore(), filepath.Join(dir, "cluster_id"))
}

func execLog(t *testing.T, index uint64, tx bool, sqls ...string) *raft.Log {
	t.Helper()
	c := &command.Command{Type: command.TypeExecute, Time: time.Unix(1700000000+int64(index), 0), Seed: index,
		Request: command.Request{Transaction: tx}}
	for _, s := range sqls {
		c.Request.Statements = append(c.Request.Statements, command.Statement{SQL: s})
	}
	b, err := command.Encode(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: b}
}

// ApplyBatch, which groups runs of plain writes into one transaction, gives
// the responses and the data that Apply gives one entry at a time, with
// configuration entries and non-groupable requests in between.
func TestApplyBatchMatchesApply(t *testing.T) {
	logs := []*raft.Log{
		execLog(t, 1, false, "CREATE TABLE t (v INTEGER UNIQUE, r)"),
		execLog(t, 2, false, "INSERT INTO t VALUES(1, random())"),
		execLog(t, 3, false, "INSERT INTO t VALUES(1, 0)", "INSERT INTO t VALUES(2, randomblob(3))"),
		{Index: 4, Type: raft.LogConfiguration},
		execLog(t, 5, false, "INSERT INTO t VALUES(3, datetime('now'))"),
		execLog(t, 6, true, "INSERT INTO t VALUES(4, 0)", "INSERT INTO t VALUES(4, 0)"),
		execLog(t, 7, false, "UPDATE t SET r = 'x' WHERE v = 2"),
		execLog(t, 8, false, "INSERT INTO nope VALUES(1)"),
		execLog(t, 9, false, "BEGIN", "INSERT INTO t VALUES(5, 0)", "COMMIT"),
	}
	batched, single := testFSM(t), testFSM(t)
	got := batched.ApplyBatch(logs)
	if len(got) != len(logs) {
		t.Fatalf("%d responses for %d entries", len(got), len(logs))
	}
	for i, l := range logs {
		var want any
		if l.Type == raft.LogCommand {
			want = single.Apply(l)
		} else {
			single.StoreConfiguration(l.Index, raft.Configuration{})
		}
		if (want == nil) != (got[i] == nil) {
			t.Fatalf("entry %d: response %v, want %v", l.Index, got[i], want)
		}
		if want == nil {
			continue
		}
		w, g := want.(*fsmResponse), got[i].(*fsmResponse)
		for _, rs := range [][]command.Result{w.results, g.results} {
			for k := range rs {
				rs[k].Time = 0
			}
		}
		if !reflect.DeepEqual(w, g) {
			t.Fatalf("entry %d: batched %+v, alone %+v", l.Index, g, w)
		}
	}
	if a, b := batched.index, single.index; a != 9 || b != 9 {
		t.Fatalf("applied index %d (batched) and %d (alone), want 9", a, b)
	}
	req := &command.Request{Statements: []command.Statement{{SQL: "SELECT v, hex(r) FROM t ORDER BY v"}}}
	ra := queryAll(t, batched, req)
	rb := queryAll(t, single, req)
	if !reflect.DeepEqual(ra, rb) {
		t.Fatalf("data differs: batched %+v, alone %+v", ra, rb)
	}
}

func queryAll(t *testing.T, f *fsm, req *command.Request) []command.Result {
	t.Helper()
	res, err := f.db.Query(t.Context(), db.ModeQuery, req)
	if err != nil {
		t.Fatal(err)
	}
	for i := range res {
		res[i].Time = 0
	}
	return res
}
