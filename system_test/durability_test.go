//go:build system

package system_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRestartKeepsData(t *testing.T) {
	n := startNode(t, "-raft-snap", "20", "-raft-snap-int", "100ms")
	n.Execute("", `["CREATE TABLE t (id INTEGER PRIMARY KEY, r, at DEFAULT CURRENT_TIMESTAMP, b)"]`)
	for i := 0; i < 50; i++ {
		s, b := n.Execute("", `["INSERT INTO t(r, b) VALUES(random(), randomblob(8))"]`)
		if s != 200 || strings.Contains(b, "error") {
			t.Fatalf("insert: %d %s", s, b)
		}
	}
	_, before := n.Do("GET", "/db/backup?fmt=sql", "", nil)
	n.Stop()
	n.Restart()
	_, after := n.Do("GET", "/db/backup?fmt=sql", "", nil)
	if before != after {
		t.Fatalf("data changed across restart:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if c := queryInts(t, n, "SELECT COUNT(*) FROM t", "linearizable"); c[0] != 50 {
		t.Fatalf("rows after restart: %v", c)
	}
	// The same command line restarts the node without bootstrapping again.
	if !strings.Contains(n.out.String(), "existing state found") {
		t.Fatalf("restart did not reuse state:\n%s", n.out.String())
	}
}

// TestNonDeterministicSQL checks the rule of DOC/DESIGN.md: random(),
// randomblob() and time functions are evaluated once, with the leader's
// seed and clock, so replaying the log yields the same values.
func TestNonDeterministicSQL(t *testing.T) {
	n := startNode(t)
	n.Execute("", `["CREATE TABLE t (a, b, c, d DEFAULT CURRENT_TIMESTAMP, e)"]`)
	before := time.Now().UTC().Add(-time.Second)
	s, b := n.Execute("", `["INSERT INTO t(a, b, c, e) VALUES(random(), hex(randomblob(16)), datetime('now'), strftime('%Y-%m-%d %H:%M:%f','now'))"]`)
	if s != 200 || strings.Contains(b, "error") {
		t.Fatalf("insert: %d %s", s, b)
	}
	_, v1 := n.Query("SELECT * FROM t", "")
	// Rebuild from the log (no snapshot was taken): identical values.
	n.Stop()
	n.Restart()
	_, v2 := n.Query("SELECT * FROM t", "")
	if v1 != v2 {
		t.Fatalf("values differ after replay:\n%s\n%s", v1, v2)
	}
	var r struct {
		Results []struct{ Values [][]any } `json:"results"`
	}
	json.Unmarshal([]byte(v1), &r)
	row := r.Results[0].Values[0]
	at, err := time.Parse("2006-01-02 15:04:05", row[2].(string))
	if err != nil || at.Before(before) || at.After(time.Now().UTC().Add(time.Second)) {
		t.Fatalf("datetime('now') = %v (err %v), not the time of the write", row[2], err)
	}
	if row[3] != row[2] {
		t.Fatalf("DEFAULT CURRENT_TIMESTAMP %v differs from datetime('now') %v in the same statement", row[3], row[2])
	}
}

func TestKillNineLoop(t *testing.T) {
	n := newNode(t, "", "-raft-snap", "200", "-raft-snap-int", "200ms")
	n.Start()
	n.WaitReady(20 * time.Second)
	n.Execute("", `["CREATE TABLE t (id INTEGER PRIMARY KEY, w INTEGER)"]`)
	acked := map[int64]bool{}
	var mu sync.Mutex
	nextID := atomic.Int64{}
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for round := 0; round < rounds; round++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					id := nextID.Add(1)
					body := fmt.Sprintf(`[["INSERT INTO t(id, w) VALUES(?, ?)", %d, %d]]`, id, round)
					resp, b, err := n.send(client, "", "", "POST", "/db/execute", "application/json", []byte(body))
					if resp == nil {
						continue // the node was killed mid-request: not acknowledged
					}
					if err == nil && resp.StatusCode == 200 && strings.Contains(b, `"rows_affected":1`) {
						mu.Lock()
						acked[id] = true
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond) // a random moment to kill at
		n.Kill()
		close(stop)
		wg.Wait()
		n.Restart()
		got := map[int64]bool{}
		for _, id := range queryInts(t, n, "SELECT id FROM t", "linearizable") {
			if got[id] {
				t.Fatalf("round %d: row %d twice", round, id)
			}
			got[id] = true
		}
		mu.Lock()
		for id := range acked {
			if !got[id] {
				t.Fatalf("round %d: acknowledged row %d lost after kill -9 (%d acknowledged, %d present)", round, id, len(acked), len(got))
			}
		}
		t.Logf("round %d: %d acknowledged, %d present", round, len(acked), len(got))
		mu.Unlock()
	}
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged: the test proved nothing")
	}
}

func TestConcurrentWriters(t *testing.T) {
	n := startNode(t)
	n.Execute("", `["CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER, seq INTEGER, UNIQUE(writer, seq))"]`)
	const writers, each = 16, 40
	var wg sync.WaitGroup
	errs := make(chan string, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				body := fmt.Sprintf(`[["INSERT INTO t(writer, seq) VALUES(?, ?)", %d, %d]]`, w, i)
				resp, b, err := n.send(http.DefaultClient, "", "", "POST", "/db/execute", "application/json", []byte(body))
				if resp == nil {
					errs <- err.Error()
					continue
				}
				if !strings.Contains(b, `"rows_affected":1`) {
					errs <- b
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("write failed: %s", e)
	}
	if c := queryInts(t, n, "SELECT COUNT(*) FROM t", "linearizable"); c[0] != writers*each {
		t.Fatalf("rows: %d, want %d", c[0], writers*each)
	}
	if c := queryInts(t, n, "SELECT COUNT(DISTINCT id) FROM t", "linearizable"); c[0] != writers*each {
		t.Fatalf("distinct ids: %d", c[0])
	}
}

func TestBackupLoadRoundTrip(t *testing.T) {
	src := startNode(t)
	src.Execute("", `["CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, data BLOB, r REAL)", "CREATE INDEX t_name ON t(name)"]`)
	src.Execute("", `[["INSERT INTO t(name, data, r) VALUES(?, ?, ?)", "it's", "x'00FF'", 2.5], ["INSERT INTO t(name) VALUES(?)", "two"]]`)
	_, want := src.Query("SELECT * FROM t ORDER BY id", "")

	for _, tc := range []struct{ name, path, ct string }{
		{"binary", "/db/backup", "application/octet-stream"},
		{"binary compressed", "/db/backup?compress", "application/gzip"},
		{"sql", "/db/backup?fmt=sql", "application/sql"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b, err := src.send(http.DefaultClient, "", "", "GET", tc.path, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.ct {
				t.Fatalf("backup: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			body := []byte(b)
			if tc.name == "binary compressed" {
				// Decompress through the system's gzip to prove it is a real gzip stream.
				cmd := exec.Command("gzip", "-dc")
				cmd.Stdin = bytes.NewReader(body)
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("gunzip: %v", err)
				}
				body = out
			}
			dst := startNode(t)
			s, b := dst.Do("POST", "/db/load", "application/octet-stream", body)
			if s != 200 {
				t.Fatalf("load: %d %s", s, b)
			}
			if _, got := dst.Query("SELECT * FROM t ORDER BY id", ""); got != want {
				t.Fatalf("after load:\n got %s\nwant %s", got, want)
			}
			// Loaded data is replicated state: it survives a restart.
			dst.Stop()
			dst.Restart()
			if _, got := dst.Query("SELECT * FROM t ORDER BY id", ""); got != want {
				t.Fatalf("after load and restart:\n got %s\nwant %s", got, want)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		junk := append([]byte("SQLite format 3\x00"), bytes.Repeat([]byte{0xAB}, 4096)...)
		s, b := src.Do("POST", "/db/load", "application/octet-stream", junk)
		if s != 400 || !strings.Contains(b, "invalid SQLite data") {
			t.Fatalf("load garbage: %d %s", s, b)
		}
		if _, got := src.Query("SELECT * FROM t ORDER BY id", ""); got != want {
			t.Fatalf("data changed by a refused load: %s", got)
		}
	})
}

func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(rqlitedPath, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestCommandLine(t *testing.T) {
	code, out := runBinary(t, "-version")
	if code != 0 || !strings.Contains(out, "rqlited v") || !strings.Contains(out, "SQLite 3.") || !strings.Contains(out, "go1.") {
		t.Fatalf("-version: %d %s", code, out)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "no data directory set"},
		{[]string{"-no-such-flag", dir}, "flag provided but not defined: -no-such-flag"},
		{[]string{"-raft-snap", "abc", dir}, `invalid value "abc" for flag -raft-snap`},
		{[]string{dir, "-fk"}, "arguments after data directory (-fk) are not accepted"},
		{[]string{"-http-addr", "http://localhost:4001", dir}, "-http-addr"},
		{[]string{"-http-adv-addr", "0.0.0.0:4001", dir}, "-http-adv-addr"},
		{[]string{"-http-addr", "localhost:5000", "-raft-addr", "localhost:5000", dir}, "-http-addr and -raft-addr must differ"},
		{[]string{"-raft-heartbeat-timeout", "1ms", dir}, "-raft-heartbeat-timeout"},
		{[]string{"-raft-log-level", "LOUD", dir}, "-raft-log-level"},
		{[]string{"-http-addr", freePort(t), "-raft-addr", freePort(t), filepath.Join(file, "sub")}, "cannot create data directory"},
	} {
		code, out := runBinary(t, tc.args...)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, output %q; want exit 1 mentioning %q", tc.args, code, out, tc.want)
		}
	}
}

func TestDataDirInUse(t *testing.T) {
	n := startNode(t)
	n.Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`)
	code, out := runBinary(t, "-http-addr", freePort(t), "-raft-addr", freePort(t), n.Dir)
	if code != 1 || !strings.Contains(out, "data directory is in use by another rqlited") {
		t.Fatalf("second process on the same directory: exit %d\n%s", code, out)
	}
	if c := queryInts(t, n, "SELECT COUNT(*) FROM t", "linearizable"); c[0] != 1 {
		t.Fatalf("first node's data changed: %v", c)
	}
}
