package chaos

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

var both = map[string]bool{"linearizable": true}

func check(t *testing.T, ops []Op) Result {
	t.Helper()
	for i := range ops {
		if ops[i].Level == "" && ops[i].Kind == OpRead {
			ops[i].Level = "linearizable"
		}
	}
	viz := filepath.Join(t.TempDir(), "viz.html")
	r, err := CheckLinearizable(ops, both, 10*time.Second, viz)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Linearizable {
		if _, err := os.Stat(viz); err != nil {
			t.Errorf("no visualization for a violation: %v", err)
		}
	}
	return r
}

func TestCheckerAcceptsLinearizable(t *testing.T) {
	r := check(t, []Op{
		{Client: 0, Kind: OpWrite, Key: 1, Value: 5, Outcome: OK, Call: 0, Return: 10},
		{Client: 1, Kind: OpRead, Key: 1, Value: 5, Outcome: OK, Call: 11, Return: 20},
		// Concurrent with the write: either value is fine.
		{Client: 2, Kind: OpRead, Key: 1, Value: 0, Outcome: OK, Call: 1, Return: 3},
		{Client: 0, Kind: OpCAS, Key: 1, Old: 5, Value: 6, Outcome: OK, Call: 21, Return: 30},
		{Client: 1, Kind: OpCAS, Key: 1, Old: 5, Value: 7, Outcome: Fail, Call: 31, Return: 40},
		// An unknown write that never shows is fine; so is a refused one.
		{Client: 2, Kind: OpWrite, Key: 1, Value: 99, Outcome: Unknown, Call: 41, Return: 50},
		{Client: 0, Kind: OpWrite, Key: 1, Value: 98, Outcome: Refused, Call: 41, Return: 50},
		{Client: 1, Kind: OpRead, Key: 1, Value: 6, Outcome: OK, Call: 51, Return: 60},
		// A read at a level not checked is ignored.
		{Client: 1, Kind: OpRead, Key: 1, Value: 1234, Outcome: OK, Level: "none", Call: 61, Return: 62},
	})
	if !r.Linearizable || r.Skipped != 2 {
		t.Fatalf("linearizable history refused: %+v", r)
	}
}

func TestCheckerFindsStaleRead(t *testing.T) {
	r := check(t, []Op{
		{Client: 0, Kind: OpWrite, Key: 1, Value: 5, Outcome: OK, Call: 0, Return: 10},
		{Client: 0, Kind: OpWrite, Key: 1, Value: 6, Outcome: OK, Call: 11, Return: 20},
		{Client: 1, Kind: OpRead, Key: 1, Value: 5, Outcome: OK, Call: 21, Return: 30},
	})
	if r.Linearizable {
		t.Fatal("a stale read passed")
	}
}

func TestCheckerFindsLostWrite(t *testing.T) {
	r := check(t, []Op{
		{Client: 0, Kind: OpWrite, Key: 2, Value: 5, Outcome: OK, Call: 0, Return: 10},
		{Client: 1, Kind: OpRead, Key: 2, Value: 0, Outcome: OK, Call: 21, Return: 30},
	})
	if r.Linearizable {
		t.Fatal("a lost acknowledged write passed")
	}
	// A CAS that reports failure although the value matched.
	r = check(t, []Op{
		{Client: 0, Kind: OpWrite, Key: 3, Value: 5, Outcome: OK, Call: 0, Return: 10},
		{Client: 1, Kind: OpCAS, Key: 3, Old: 5, Value: 6, Outcome: Fail, Call: 21, Return: 30},
	})
	if r.Linearizable {
		t.Fatal("a wrong CAS failure passed")
	}
}

func TestCheckReads(t *testing.T) {
	ms := int64(time.Millisecond)
	ops := []Op{
		{Kind: OpWrite, Key: 1, Value: 5, Outcome: OK, Call: 0, Return: 10 * ms},
		{Kind: OpWrite, Key: 1, Value: 6, Outcome: OK, Call: 20 * ms, Return: 30 * ms},
		// Stale by less than the bound: fine.
		{Kind: OpRead, Key: 1, Value: 5, Outcome: OK, Level: "weak", Call: 500 * ms, Return: 510 * ms},
	}
	if bad := CheckReads(ops, "weak", time.Second); len(bad) != 0 {
		t.Fatalf("fresh enough read refused: %v", bad)
	}
	stale := append(ops, Op{Kind: OpRead, Key: 1, Value: 5, Outcome: OK, Level: "weak", Call: 2000 * ms, Return: 2010 * ms})
	if bad := CheckReads(stale, "weak", time.Second); len(bad) != 1 {
		t.Fatalf("read stale by 2 s: %v", bad)
	}
	if bad := CheckReads(stale, "weak", 0); len(bad) != 0 {
		t.Fatalf("without a bound staleness is allowed: %v", bad)
	}
	phantom := append(ops, Op{Kind: OpRead, Key: 1, Value: 77, Outcome: OK, Level: "none", Call: 40 * ms, Return: 50 * ms})
	if bad := CheckReads(phantom, "none", 0); len(bad) != 1 {
		t.Fatalf("a value never written: %v", bad)
	}
	initial := append(ops, Op{Kind: OpRead, Key: 1, Value: 0, Outcome: OK, Level: "weak", Call: 3000 * ms, Return: 3010 * ms})
	if bad := CheckReads(initial, "weak", time.Second); len(bad) != 1 {
		t.Fatalf("initial value long after a write: %v", bad)
	}
}
