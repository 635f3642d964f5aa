package main

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
)

// rqliteFlags is every flag rqlite v10's rqlited accepts, with its default
// as rqlite's flags.toml gives it (copied from shared/reference, which CI
// may not have at the same path).
var rqliteFlags = map[string]string{
	"auth": "", "auto-backup": "", "auto-optimize-int": "24h", "auto-restore": "", "auto-vacuum-int": "0s",
	"bootstrap-expect": "0", "bootstrap-expect-timeout": "120s", "cdc-config": "", "cluster-connect-timeout": "30s",
	"compress-snap-transport": "false", "cpu-profile": "", "db-max-ro-conns": "256", "disco-config": "",
	"disco-key": "rqlite", "disco-mode": "", "extensions-path": "", "fk": "false", "http-addr": "localhost:4001",
	"http-adv-addr": "", "http-allow-origin": "", "http-ca-cert": "", "http-cert": "", "http-key": "",
	"http-verify-client": "false", "http-verify-common-name": "", "join": "", "join-as": "", "join-attempts": "5",
	"join-interval": "3s", "mem-profile": "", "node-ca-cert": "", "node-cert": "", "node-id": "", "node-key": "",
	"node-no-verify": "false", "node-verify-client": "false", "node-verify-common-name": "", "node-verify-server-name": "",
	"otlp-ca-cert": "", "otlp-cert": "", "otlp-endpoint": "", "otlp-insecure": "false", "otlp-interval": "30s",
	"otlp-key": "", "otlp-no-verify": "false", "raft-addr": "localhost:4002", "raft-adv-addr": "",
	"raft-apply-timeout": "10s", "raft-cluster-remove-shutdown": "false", "raft-commit-timeout": "50ms",
	"raft-election-timeout": "1s", "raft-heartbeat-timeout": "1s", "raft-leader-lease-timeout": "0s",
	"raft-log-level": "WARN", "raft-non-voter": "false", "raft-reap-node-timeout": "0h",
	"raft-reap-read-only-node-timeout": "0h", "raft-remove-shutdown": "false", "raft-shutdown-stepdown": "true",
	"raft-snap": "8192", "raft-snap-int": "10s", "raft-snap-wal-size": "4194304", "trace-profile": "",
	"version": "false", "write-queue-batch-size": "128", "write-queue-capacity": "1024", "write-queue-timeout": "50ms",
	"write-queue-tx": "false",
}

func noEnv(string) string { return "" }

// TestRqliteFlagsAcceptedWithDefaults: all 68 of rqlite's flags are
// defined with rqlite's default, and a command line giving each its default
// explicitly starts.
func TestRqliteFlagsAcceptedWithDefaults(t *testing.T) {
	if len(rqliteFlags) != 68 {
		t.Fatalf("table has %d flags, rqlite has 68", len(rqliteFlags))
	}
	fs := newFlagSet(&Config{}, io.Discard)
	var args []string
	for name, def := range rqliteFlags {
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("-%s is not defined", name)
			continue
		}
		// Set rqlite's default on a fresh value, so "24h" and "24h0m0s" compare equal.
		want := newFlagSet(&Config{}, io.Discard).Lookup(name).Value
		if err := want.Set(def); err != nil {
			t.Errorf("-%s: rqlite's default %q is not a valid value: %v", name, def, err)
			continue
		}
		if want.String() != f.DefValue {
			t.Errorf("-%s: default %q, rqlite's is %q", name, f.DefValue, def)
		}
		args = append(args, "-"+name+"="+def)
	}
	var stderr bytes.Buffer
	c, err := parseFlags(append(args, t.TempDir()), &stderr, noEnv)
	if err != nil {
		t.Fatalf("rqlite's defaults refused: %v\n%s", err, stderr.String())
	}
	if len(c.Warnings) != 0 {
		t.Errorf("defaults gave warnings: %q", c.Warnings)
	}
	if c.AutoOptimizeInterval.String() != "24h0m0s" || c.AutoVacuumInterval != 0 {
		t.Errorf("maintenance intervals %v %v, want 24h and 0", c.AutoOptimizeInterval, c.AutoVacuumInterval)
	}
}

// TestFlagSpecsWellFormed: names are unique, every default matches its
// field's type (register panics otherwise) and special flags say why.
func TestFlagSpecsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, spec := range flagSpecs {
		if seen[spec.name] {
			t.Errorf("-%s defined twice", spec.name)
		}
		seen[spec.name] = true
		if spec.help == "" {
			t.Errorf("-%s has no help", spec.name)
		}
		if spec.status != flagSupported && spec.note == "" {
			t.Errorf("-%s has no note", spec.name)
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("-%s: %v", spec.name, r)
				}
			}()
			spec.register(flag.NewFlagSet("x", flag.ContinueOnError), &Config{})
		}()
	}
}

// TestUnavailableFlagsRefused: a flag of a feature rqlited lacks, set to
// anything but its default, stops the start with status 1 and a message
// naming the flag.
func TestUnavailableFlagsRefused(t *testing.T) {
	for _, tc := range []struct{ name, val string }{
		{"auto-backup", "backup.json"}, {"auto-restore", "restore.json"}, {"cdc-config", "http://cdc"},
		{"extensions-path", "/ext"}, {"otlp-endpoint", "localhost:4318"}, {"otlp-interval", "10s"},
		{"otlp-insecure", "true"}, {"otlp-no-verify", "true"}, {"otlp-ca-cert", "ca.pem"},
		{"otlp-cert", "c.pem"}, {"otlp-key", "k.pem"},
	} {
		dir := t.TempDir()
		_, err := parseFlags([]string{"-" + tc.name, tc.val, dir}, io.Discard, noEnv)
		if err == nil || !strings.Contains(err.Error(), "-"+tc.name+" ") || !strings.Contains(err.Error(), "not available yet in rqlited") {
			t.Errorf("-%s %s: error %v, want it to name the flag and say not available yet", tc.name, tc.val, err)
		}
		var stderr bytes.Buffer
		if code := run([]string{"-" + tc.name + "=" + tc.val, dir}, io.Discard, &stderr); code != 1 ||
			!strings.Contains(stderr.String(), "not available yet in rqlited") {
			t.Errorf("-%s %s: run exit %d, stderr %q", tc.name, tc.val, code, stderr.String())
		}
	}
}

// TestDifferentFlagsWarn: flags that tune what rqlited does another way are
// accepted, with a warning naming the flag and what rqlited does instead.
func TestDifferentFlagsWarn(t *testing.T) {
	for _, tc := range []struct{ name, val, instead string }{
		{"compress-snap-transport", "true", "uncompressed"},
		{"raft-snap-wal-size", "0", "-raft-snap"},
		{"trace-profile", "trace.out", "/debug/pprof"},
	} {
		c, err := parseFlags([]string{"-" + tc.name + "=" + tc.val, t.TempDir()}, io.Discard, noEnv)
		if err != nil {
			t.Errorf("-%s %s refused: %v", tc.name, tc.val, err)
			continue
		}
		if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "-"+tc.name) || !strings.Contains(c.Warnings[0], tc.instead) {
			t.Errorf("-%s %s: warnings %q, want one naming the flag and %q", tc.name, tc.val, c.Warnings, tc.instead)
		}
	}
}

// TestStartupWarningsNotRefusals: combinations rqlite accepts start with a
// warning; a combination that cannot work at all is still refused.
func TestStartupWarningsNotRefusals(t *testing.T) {
	for _, tc := range []struct {
		args []string
		warn string // "" for no warning
	}{
		{[]string{"-join-as", "bob"}, "-auth is not set"},
		{[]string{"-disco-mode", "consul-kv"}, "would publish localhost:4002 (-raft-adv-addr)"},
		{[]string{"-disco-mode", "etcd-kv", "-raft-adv-addr", "127.0.0.1:4002", "-http-adv-addr", "10.0.0.1:4001"}, "would publish 127.0.0.1:4002"},
		{[]string{"-disco-mode", "etcd-kv", "-disco-allow-loopback"}, ""},
		{[]string{"-bootstrap-expect", "3", "-join", "a:1,b:1"}, "-bootstrap-expect 3 with 2 addresses in -join"},
		{[]string{"-bootstrap-expect", "3", "-join", "a:1,b:1,c:1"}, ""},
		{[]string{"-join", "http://nonsense"}, ""},
		{[]string{"-join", "https://nonsense,nonsense:4002"}, ""},
	} {
		c, err := parseFlags(append(tc.args, t.TempDir()), io.Discard, noEnv)
		if err != nil {
			t.Errorf("%v refused: %v", tc.args, err)
			continue
		}
		switch {
		case tc.warn == "" && len(c.Warnings) != 0:
			t.Errorf("%v: unexpected warnings %q", tc.args, c.Warnings)
		case tc.warn != "" && !strings.Contains(strings.Join(c.Warnings, "\n"), tc.warn):
			t.Errorf("%v: warnings %q, want one containing %q", tc.args, c.Warnings, tc.warn)
		}
	}
	c, err := parseFlags([]string{"-join", "http://nonsense", t.TempDir()}, io.Discard, noEnv)
	if err != nil || len(c.JoinAddrs) != 1 || c.JoinAddrs[0] != "http://nonsense" {
		t.Errorf("-join http://nonsense: %v %v", c, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-bootstrap-expect", "3"}, "-bootstrap-expect needs -join"},
		{[]string{"-join", "garbage"}, `-join address "garbage" must be host:port`},
		{[]string{"-join", "http://"}, "not a valid URL"},
	} {
		_, err := parseFlags(append(tc.args, t.TempDir()), io.Discard, noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
