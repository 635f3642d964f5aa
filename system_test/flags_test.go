//go:build system

package system_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestJoinUnresolvableKeepsServing: -join with a name that does not resolve
// does not stop the start: the node serves HTTP, /readyz says it is not
// ready, the join is retried -join-attempts times, and then the node exits
// with status 1 saying it failed to join (as rqlite does).
func TestJoinUnresolvableKeepsServing(t *testing.T) {
	n := newNode(t, "", "-join", "http://nonsense", "-join-attempts", "4", "-join-interval", "500ms")
	n.Start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered 503 while joining:\n%s", n.out.String())
		}
		select {
		case <-n.done:
			t.Fatalf("node exited before serving /readyz: %s\n%s", n.exitReason(), n.out.String())
		default:
		}
		status, b, err := n.try("GET", "/readyz", "", nil)
		if err == nil {
			if status == 503 && strings.Contains(b, "leader does not exist") {
				break
			}
			if status == 200 {
				t.Fatalf("/readyz says ready for a node that has not joined: %s", b)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-n.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("node still running after 4 join attempts:\n%s", n.out.String())
	}
	ee, ok := n.exitErr.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1:\n%s", n.exitErr, n.out.String())
	}
	out := n.out.String()
	for _, want := range []string{"attempt=1 of=4", "attempt=3 of=4", "failed to join cluster through http://nonsense after 4 attempts"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestAutoMaintenanceThroughLog: -auto-vacuum-int and -auto-optimize-int
// make the leader run VACUUM and PRAGMA optimize periodically, and the node
// keeps serving writes.
func TestAutoMaintenanceThroughLog(t *testing.T) {
	n := startNode(t, "-auto-vacuum-int", "100ms", "-auto-optimize-int", "150ms")
	if code, body := n.Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`); code != 200 || strings.Contains(body, "error") {
		t.Fatalf("write: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !(strings.Contains(n.out.String(), `statement=VACUUM`) && strings.Contains(n.out.String(), `statement="PRAGMA optimize"`)) {
		if time.Now().After(deadline) {
			t.Fatalf("no periodic VACUUM and PRAGMA optimize logged:\n%s", n.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(n.out.String(), "periodic maintenance failed") {
		t.Fatalf("maintenance failed:\n%s", n.out.String())
	}
	if c := queryInts(t, n, "SELECT COUNT(*) FROM t", "linearizable"); c[0] != 1 {
		t.Fatalf("rows after maintenance: %v", c)
	}
	n.Stop()
}

// TestRqliteOnlyFlags: flags of features rqlited lacks stop the start with
// status 1 and a message naming the flag; flags it handles another way start
// with a warning.
func TestRqliteOnlyFlags(t *testing.T) {
	code, out := runBinary(t, "-auto-backup", "backup.json", t.TempDir())
	if code != 1 || !strings.Contains(out, "-auto-backup") || !strings.Contains(out, "not available yet in rqlited") {
		t.Fatalf("-auto-backup: exit %d:\n%s", code, out)
	}
	n := startNode(t, "-compress-snap-transport", "-raft-snap-wal-size", "0", "-trace-profile", t.TempDir()+"/trace",
		"-cdc-config", "", "-otlp-interval", "30s")
	for _, want := range []string{"level=WARN msg=\"-compress-snap-transport", "level=WARN msg=\"-raft-snap-wal-size", "level=WARN msg=\"-trace-profile"} {
		if !strings.Contains(n.out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, n.out.String())
		}
	}
}
