package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

// fakeMaintStore records the statements executed and answers IsLeader from
// a switch.
type fakeMaintStore struct {
	leader  atomic.Bool
	checks  atomic.Int64
	mu      sync.Mutex
	stmts   []string
	failing bool
	// block makes Execute wait for its context to end; inFlight counts
	// the calls inside Execute.
	block    atomic.Bool
	inFlight atomic.Int64
}

func (f *fakeMaintStore) IsLeader() bool { f.checks.Add(1); return f.leader.Load() }

func (f *fakeMaintStore) Execute(ctx context.Context, req *command.Request) ([]command.Result, uint64, error) {
	f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	if f.block.Load() {
		<-ctx.Done()
		return nil, 0, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range req.Statements {
		f.stmts = append(f.stmts, s.SQL)
	}
	if f.failing {
		return nil, 0, errors.New("not leader")
	}
	return []command.Result{{}}, 1, nil
}

func (f *fakeMaintStore) executed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.stmts...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMaintenanceTasksFromFlags(t *testing.T) {
	c, err := parseFlags([]string{t.TempDir()}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	tasks := maintenanceTasks(c)
	if len(tasks) != 1 || tasks[0].sql != "PRAGMA optimize" || tasks[0].interval != 24*time.Hour {
		t.Fatalf("default tasks %+v, want PRAGMA optimize every 24h", tasks)
	}
	c, err = parseFlags([]string{"-auto-vacuum-int", "1h", "-auto-optimize-int", "0h", t.TempDir()}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	tasks = maintenanceTasks(c)
	if len(tasks) != 1 || tasks[0].sql != "VACUUM" || tasks[0].interval != time.Hour {
		t.Fatalf("tasks %+v, want VACUUM every 1h only", tasks)
	}
}

// TestMaintenanceOnlyOnLeader: ticks on a follower run nothing; on the
// leader each task's statement goes through Execute; Close stops it all.
func TestMaintenanceOnlyOnLeader(t *testing.T) {
	st := &fakeMaintStore{}
	tasks := []maintenanceTask{{"-auto-vacuum-int", "VACUUM", 2 * time.Millisecond}, {"-auto-optimize-int", "PRAGMA optimize", 3 * time.Millisecond}}
	m := startMaintenance(st, tasks, time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	waitFor(t, "follower ticks", func() bool { return st.checks.Load() >= 6 })
	if got := st.executed(); len(got) != 0 {
		t.Fatalf("a follower executed %q", got)
	}
	st.leader.Store(true)
	waitFor(t, "both statements on the leader", func() bool {
		var vac, opt bool
		for _, s := range st.executed() {
			vac = vac || s == "VACUUM"
			opt = opt || s == "PRAGMA optimize"
		}
		return vac && opt
	})
	// A statement in flight when Close is called is cancelled, and Close
	// returns only once every goroutine has left the store.
	st.block.Store(true)
	waitFor(t, "a statement in flight", func() bool { return st.inFlight.Load() > 0 })
	m.Close()
	if n := st.inFlight.Load(); n != 0 {
		t.Fatalf("Close returned with %d statements still in the store", n)
	}
}

func TestRunMaintenanceErrors(t *testing.T) {
	st := &fakeMaintStore{failing: true}
	err := runMaintenance(context.Background(), st, maintenanceTask{"-auto-vacuum-int", "VACUUM", time.Hour}, time.Second)
	if err == nil || err.Error() != "execute VACUUM: not leader" {
		t.Fatalf("error %v", err)
	}
}
