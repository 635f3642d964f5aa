//go:build system

package system_test

// The discovery matrix: tests record which failure scenario of
// discovery-landscape.md section 2 (and which code risk) they prove, in
// which discovery mode, with which outcome. A cell counts only if the
// (sub)test that recorded it passed. With RQLITED_MATRIX_REPORT naming a
// file, TestMain writes the scenario x mode table there as Markdown
// (make discovery-matrix).

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// matrixScenario is one row of the matrix.
type matrixScenario struct{ id, name, source string }

var matrixScenarios = []matrixScenario{
	{"S1", "Restart of a node in a bootstrap-expect cluster (with remove-on-shutdown)", "rqlite#1290"},
	{"S2", "All nodes restart with new addresses", "rqlite#1293"},
	{"S3", "All pods killed, new pod IPs (leader dials old IPs)", "rqlite#695"},
	{"S4", "Resume from a new address with existing state", "rqlite#818"},
	{"S5", "State wiped but node ID reused", "rqlite#923"},
	{"S6", "`localhost` written to the leader key", "rqlite#2169"},
	{"S7", "DNS returns IPv6 addresses", "rqlite#1500"},
	{"S8", "Quoted `-disco-config` JSON", "rqlite#991, #1401"},
	{"S9", "Raft port blocked on a fresh node", "rqlite#2086"},
	{"S10", "Mixed `-bootstrap-expect` values", "rqlite/kubernetes-configuration#1"},
	{"S11", "Join list without bootstrap-expect (two clusters)", "consul#2868"},
	{"S12", "New server with expect=1 pointed at a live cluster", "consul#8376"},
	{"S13", "Two new servers plus one old one, all expect=3", "hashicorp/raft#122"},
	{"S14", "Bootstrap never elects a leader (hang)", "consul#370"},
	{"S15", "Graceful shutdown of every server, then restart", "consul#993, #750, #526"},
	{"S16", "Malformed discovery string", "consul#3797, consul-helm#59"},
	{"S17", "Servers without expect bootstrap standalone", "nomad#9672"},
	{"S18", "Quick reboot (kill) of all servers", "nomad#5917"},
	{"S19", "SRV targets not yet resolvable", "etcd#5909"},
	{"S20", "Local member not in the SRV/DNS answer", "etcd#2801, #10643, #11335"},
	{"S21", "Reboot re-runs discovery (refused as already registered)", "etcd#6292, #4820"},
	{"S22", "Stale saved join list pointing at another cluster", "tikv/pd#9190"},
	{"S23", "One-way join graph", "cockroach#61621"},
	{"S24", "DNS records appear late (not-ready pods)", "kubernetes#92559, #25283"},
	{"S25", "Discovery stuck after the first DNS failure", "neuvector-helm#642, nats-io/k8s#441"},
	{"(a)", "Stale leader key of a dead cluster", "code risk"},
	{"(b)", "Deposed leader overwrites the leader key", "code risk"},
	{"(c)", "No boot deadline in KV modes", "code risk"},
	{"(d)", "Join list longer than N (two bootstrap sets)", "code risk"},
	{"(e)", "SRV priority and weight ignored", "code risk"},
	{"K1", "Member killed after bootstrapping, before a leader exists", "ours (suspected gap)"},
}

// matrixModes are the columns; "any" is for outcomes that do not depend on
// the discovery mode.
var matrixModes = []string{"join", "dns", "dns-srv", "consul-kv", "etcd-kv", "any"}

var matrixModeTitles = map[string]string{"join": "join / bootstrap-expect"}

// matrixNA says why a scenario cannot arise in a mode. Shown as "n/a: why".
var matrixNA = map[string]map[string]string{
	"S6": {
		"join": "no leader key: peers dial the -join addresses", "dns": "no leader key: peers dial the DNS answer",
		"dns-srv": "no leader key: peers dial the SRV answer",
	},
	"S7":  {"join": "no DNS lookup of a set", "consul-kv": "no DNS answers: the address comes from the key", "etcd-kv": "no DNS answers: the address comes from the key"},
	"S8":  {"join": "no -disco-config"},
	"S11": {"consul-kv": "no join list: the key's create-only write elects the first node", "etcd-kv": "no join list: the key's create-only write elects the first node"},
	"S17": {"consul-kv": "by design the first node to claim the key forms the cluster alone; the others join it (S14)", "etcd-kv": "by design the first node to claim the key forms the cluster alone; the others join it (S14)"},
	"S19": {"join": "no DNS", "consul-kv": "no SRV records", "etcd-kv": "no SRV records"},
	"S20": {"join": "the -join list is given, not looked up", "consul-kv": "no DNS answer: the key names the leader", "etcd-kv": "no DNS answer: the key names the leader"},
	"S22": {
		"dns": "no saved join list: DNS is looked up again at every start", "dns-srv": "no saved join list: DNS is looked up again at every start",
		"consul-kv": "no saved peer list: the key is read again at every start", "etcd-kv": "no saved peer list: the key is read again at every start",
	},
	"S23": {
		"dns": "every node gets the same DNS answer", "dns-srv": "every node gets the same SRV answer",
		"consul-kv": "one meeting point: the key", "etcd-kv": "one meeting point: the key",
	},
	"S24": {"consul-kv": "no DNS records (a store that answers late: S25)", "etcd-kv": "no DNS records (a store that answers late: S25)"},
	"S25": {"join": "-join addresses are fixed, not looked up as a set"},
	"K1":  {"consul-kv": "no multi-member bootstrap: the key's winner forms a one-node cluster and elects itself at once", "etcd-kv": "no multi-member bootstrap: the key's winner forms a one-node cluster and elects itself at once"},
	"(a)": {"join": "no leader key", "dns": "no leader key", "dns-srv": "no leader key"},
	"(b)": {"join": "no leader key", "dns": "no leader key", "dns-srv": "no leader key"},
	"(c)": {"join": "risk specific to KV modes (deadline here: S10, S9)", "dns": "risk specific to KV modes (deadline here: S10)", "dns-srv": "risk specific to KV modes"},
	"(d)": {"consul-kv": "no join list", "etcd-kv": "no join list"},
	"(e)": {"join": "no SRV", "dns": "no SRV (A/AAAA records only)", "consul-kv": "no SRV", "etcd-kv": "no SRV"},
}

type matrixEntry struct {
	t        testing.TB
	scenario string
	mode     string
	outcome  string
	defect   bool
}

var (
	matrixMu      sync.Mutex
	matrixEntries []*matrixEntry
)

// matrix records that this (sub)test proves outcome for scenario in mode.
// It counts only if the test passes.
func matrix(t testing.TB, scenario, mode, outcome string) {
	t.Helper()
	matrixAdd(t, scenario, mode, outcome, false)
}

// matrixDefect records a known defect of scenario in mode and skips the
// test, unless RQLITED_RUN_DEFECTS is set (then the test runs and shows
// the defect by failing).
func matrixDefect(t testing.TB, scenario, mode, what string) {
	t.Helper()
	if os.Getenv("RQLITED_RUN_DEFECTS") != "" {
		return
	}
	matrixAdd(t, scenario, mode, what, true)
	t.Skip("defect: " + what)
}

func matrixAdd(t testing.TB, scenario, mode, outcome string, defect bool) {
	t.Helper()
	if !slices.ContainsFunc(matrixScenarios, func(s matrixScenario) bool { return s.id == scenario }) {
		t.Fatalf("matrix: unknown scenario %q", scenario)
	}
	if !slices.Contains(matrixModes, mode) {
		t.Fatalf("matrix: unknown mode %q", mode)
	}
	if why := matrixNA[scenario][mode]; why != "" {
		t.Fatalf("matrix: %s in mode %s is marked n/a (%s)", scenario, mode, why)
	}
	matrixMu.Lock()
	defer matrixMu.Unlock()
	matrixEntries = append(matrixEntries, &matrixEntry{t: t, scenario: scenario, mode: mode, outcome: outcome, defect: defect})
}

// writeMatrixReport writes the table to $RQLITED_MATRIX_REPORT, if set.
// TestMain calls it after the tests ran.
func writeMatrixReport() {
	path := os.Getenv("RQLITED_MATRIX_REPORT")
	if path == "" {
		return
	}
	if err := os.WriteFile(path, []byte(matrixReport()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "discovery matrix report:", err)
	}
}

// matrixReport renders the recorded cells.
func matrixReport() string {
	matrixMu.Lock()
	defer matrixMu.Unlock()
	type cell struct {
		outcomes []string // distinct, in order of recording
		tests    []string
		failed   []string
		defects  []string
	}
	cells := map[[2]string]*cell{}
	get := func(s, m string) *cell {
		k := [2]string{s, m}
		if cells[k] == nil {
			cells[k] = &cell{}
		}
		return cells[k]
	}
	addUniq := func(l []string, s string) []string {
		if !slices.Contains(l, s) {
			l = append(l, s)
		}
		return l
	}
	for _, e := range matrixEntries {
		c := get(e.scenario, e.mode)
		name := strings.SplitN(e.t.Name(), "/", 2)[0]
		switch {
		case e.defect:
			c.defects = addUniq(c.defects, e.outcome)
			c.tests = addUniq(c.tests, name)
		case e.t.Failed():
			c.failed = addUniq(c.failed, e.t.Name())
		case e.t.Skipped():
		default:
			c.outcomes = addUniq(c.outcomes, e.outcome)
			c.tests = addUniq(c.tests, name)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Generated %s by `make discovery-matrix` (%s, %d CPUs).\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.Version(), runtime.NumCPU())
	b.WriteString("| scenario | source |")
	for _, m := range matrixModes {
		t := matrixModeTitles[m]
		if t == "" {
			t = m
		}
		fmt.Fprintf(&b, " %s |", t)
	}
	b.WriteString("\n|---|---|")
	for range matrixModes {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	counts := map[string]int{}
	for _, s := range matrixScenarios {
		fmt.Fprintf(&b, "| **%s** %s | %s |", s.id, s.name, s.source)
		for _, m := range matrixModes {
			c := cells[[2]string{s.id, m}]
			var text string
			switch {
			case c != nil && len(c.failed) > 0:
				text = "**FAILED**: " + strings.Join(c.failed, ", ")
				counts["failed"]++
			case c != nil && len(c.defects) > 0:
				text = "**defect**: " + strings.Join(c.defects, "; ") + " (" + strings.Join(c.tests, ", ") + ", skipped)"
				counts["defect"]++
			case c != nil && len(c.outcomes) > 0:
				text = strings.Join(c.outcomes, "; ") + " (" + strings.Join(c.tests, ", ") + ")"
				counts["proven"]++
			case matrixNA[s.id][m] != "":
				text = "n/a: " + matrixNA[s.id][m]
				counts["n/a"]++
			case m == "any":
				text = "—"
			default:
				text = "not tested"
				counts["not tested"]++
			}
			fmt.Fprintf(&b, " %s |", strings.ReplaceAll(text, "|", "\\|"))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nCells: %d proven by a passing test, %d known defects (test skipped), %d failed, %d n/a, %d not tested.\n",
		counts["proven"], counts["defect"], counts["failed"], counts["n/a"], counts["not tested"])
	return b.String()
}
