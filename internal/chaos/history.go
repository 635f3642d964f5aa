package chaos

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kinds of register operations.
const (
	OpRead  = "read"
	OpWrite = "write"
	OpCAS   = "cas"
)

// Outcomes of an operation.
const (
	// OK: the node answered and the operation took effect (a read's value,
	// a write acknowledged, a CAS that swapped).
	OK = "ok"
	// Fail: a CAS that was applied and found another value.
	Fail = "fail"
	// Refused: the request certainly did not reach the log (an error
	// answer such as 503 "leader not found" or 401); it tells nothing.
	Refused = "refused"
	// Unknown: no answer (timeout, connection cut): a write may or may not
	// have taken effect; checked as if it returned at the end of time.
	Unknown = "unknown"
)

// Op is one client operation on register Key.
type Op struct {
	Client int    `json:"client"`
	Kind   string `json:"kind"`
	Key    int    `json:"key"`
	// Value written (write), new value (cas), value read (read, 0 = none).
	Value int64 `json:"value"`
	// Old is the value a CAS expects.
	Old     int64  `json:"old,omitempty"`
	Outcome string `json:"outcome"`
	Node    string `json:"node"`
	Level   string `json:"level,omitempty"`
	Call    int64  `json:"call"`   // ns since the history began
	Return  int64  `json:"return"` // ns since the history began
	Error   string `json:"error,omitempty"`
}

// History records operations from concurrent clients.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []Op
}

// NewHistory starts an empty history.
func NewHistory() *History { return &History{start: time.Now()} }

// Now returns the history's clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records a completed operation.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations, in call order.
func (h *History) Ops() []Op {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := append([]Op(nil), h.ops...)
	sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}

// Save writes the history as JSON.
func (h *History) Save(path string) error {
	b, err := json.MarshalIndent(h.Ops(), "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Counts returns how many operations ended each way.
func (h *History) Counts() map[string]int {
	m := map[string]int{}
	for _, op := range h.Ops() {
		m[op.Kind+"/"+op.Outcome]++
	}
	return m
}

// registerModel is a set of integer registers (0 = never written), one per
// key, partitioned by key so each is checked on its own.
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[int][]porcupine.Operation{}
		var keys []int
		for _, o := range history {
			k := o.Input.(Op).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], o)
		}
		sort.Ints(keys)
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return int64(0) },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		st, in, out := state.(int64), input.(Op), output.(Op)
		switch in.Kind {
		case OpRead:
			return out.Value == st, st
		case OpWrite:
			return true, in.Value
		case OpCAS:
			switch out.Outcome {
			case OK:
				return st == in.Old, in.Value
			case Fail:
				return st != in.Old, st
			default: // unknown: if it took effect, it swapped
				if st == in.Old {
					return true, in.Value
				}
				return true, st
			}
		}
		return false, st
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(Op), output.(Op)
		switch in.Kind {
		case OpRead:
			return fmt.Sprintf("read(k%d) -> %d @%s %s", in.Key, out.Value, out.Node, out.Level)
		case OpWrite:
			return fmt.Sprintf("write(k%d, %d) %s @%s", in.Key, in.Value, out.Outcome, out.Node)
		}
		return fmt.Sprintf("cas(k%d, %d->%d) %s @%s", in.Key, in.Old, in.Value, out.Outcome, out.Node)
	},
	DescribeState: func(state interface{}) string { return fmt.Sprint(state.(int64)) },
}

// Result of a linearizability check.
type Result struct {
	Linearizable bool
	// Ops checked, and operations left out (failed reads and writes that
	// certainly did not happen).
	Checked, Skipped int
	// Visualization is the path of porcupine's HTML rendering, written
	// when the history is not linearizable.
	Visualization string
}

// CheckLinearizable checks the operations whose level is one of levels
// (reads) plus every write and CAS. A read without an answer tells nothing
// and is left out; so is any refused request. An unknown write is
// checked as returning at the end of time: it may take effect at any
// moment after its call, or never. On a violation the visualization is
// written to vizPath.
func CheckLinearizable(ops []Op, levels map[string]bool, timeout time.Duration, vizPath string) (Result, error) {
	var pops []porcupine.Operation
	var res Result
	for _, op := range ops {
		if op.Outcome == Refused || (op.Kind == OpRead && (!levels[op.Level] || op.Outcome != OK)) {
			res.Skipped++
			continue
		}
		ret := op.Return
		if op.Outcome == Unknown {
			ret = math.MaxInt64
		}
		pops = append(pops, porcupine.Operation{ClientId: op.Client, Input: op, Call: op.Call, Output: op, Return: ret})
	}
	res.Checked = len(pops)
	r, info := porcupine.CheckOperationsVerbose(registerModel, pops, timeout)
	switch r {
	case porcupine.Ok:
		res.Linearizable = true
		return res, nil
	case porcupine.Unknown:
		return res, fmt.Errorf("linearizability check did not finish within %v (%d operations)", timeout, len(pops))
	}
	if vizPath != "" {
		if err := porcupine.VisualizePath(registerModel, info, vizPath); err == nil {
			res.Visualization = vizPath
		}
	}
	return res, nil
}

// CheckReads checks the successful reads at level against the writes:
// every value read must have been written (by a write or CAS invoked
// before the read returned, or be the initial 0), and, if bound > 0, must
// not have been certainly overwritten more than bound before the read was
// invoked: some acknowledged write of another value started after the
// value's own acknowledged write ended and finished more than bound before
// the read. It returns one line per violation.
func CheckReads(ops []Op, level string, bound time.Duration) []string {
	byValue := map[[2]int64]Op{} // key, value -> the write of it
	byKey := map[int][]Op{}      // acknowledged writes per key
	for _, op := range ops {
		if op.Kind == OpRead || op.Outcome == Refused || (op.Kind == OpCAS && op.Outcome == Fail) {
			continue
		}
		byValue[[2]int64{int64(op.Key), op.Value}] = op
		if op.Outcome == OK {
			byKey[op.Key] = append(byKey[op.Key], op)
		}
	}
	var bad []string
	for _, r := range ops {
		if r.Kind != OpRead || r.Level != level || r.Outcome != OK {
			continue
		}
		if r.Value == 0 {
			// The initial value: overwritten once any write was
			// acknowledged long enough before.
			if bound > 0 {
				for _, w2 := range byKey[r.Key] {
					if w2.Return < r.Call-int64(bound) {
						bad = append(bad, fmt.Sprintf("%s read of k%d at %v returned the initial 0, overwritten by %d acknowledged at %v",
							level, r.Key, time.Duration(r.Call), w2.Value, time.Duration(w2.Return)))
						break
					}
				}
			}
			continue
		}
		w, ok := byValue[[2]int64{int64(r.Key), r.Value}]
		if !ok || w.Call > r.Return {
			bad = append(bad, fmt.Sprintf("%s read of k%d at %v returned %d, which no write had sent", level, r.Key, time.Duration(r.Call), r.Value))
			continue
		}
		if bound <= 0 || w.Outcome != OK {
			continue
		}
		for _, w2 := range byKey[r.Key] {
			if w2.Value != r.Value && w2.Call > w.Return && w2.Return < r.Call-int64(bound) {
				bad = append(bad, fmt.Sprintf("%s read of k%d at %v returned %d, overwritten by %d acknowledged at %v (more than %v before)",
					level, r.Key, time.Duration(r.Call), r.Value, w2.Value, time.Duration(w2.Return), bound))
				break
			}
		}
	}
	return bad
}
