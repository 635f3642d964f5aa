//go:build system

package system_test

import (
	"os"
	"strings"
	"testing"
)

// TestKubernetesManifest keeps deploy/kubernetes.yaml honest: its rqlited
// arguments must be accepted by the binary, use the DNS discovery the Docker
// tests exercise, and the headless Service must publish not-ready pods.
func TestKubernetesManifest(t *testing.T) {
	b, err := os.ReadFile("../deploy/kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.Contains(text, "publishNotReadyAddresses: true") || !strings.Contains(text, "podManagementPolicy: Parallel") {
		t.Fatal("the headless Service must publish not-ready addresses and pods must start in parallel")
	}
	var args []string
	in := false
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "args:":
			in = true
		case in && strings.HasPrefix(trimmed, "- "):
			args = append(args, strings.TrimPrefix(trimmed, "- "))
		case in:
			in = false
		}
	}
	want := []string{"-disco-mode=dns", "-bootstrap-expect=3"}
	for _, w := range want {
		if !strings.Contains(strings.Join(args, " "), w) {
			t.Fatalf("manifest args %v lack %s", args, w)
		}
	}
	// The arguments are valid: with nothing to discover, the node must run
	// until its boot deadline (exit 3), not fail on its configuration (exit 1).
	args = append(args, "-bootstrap-expect-timeout=1s", "-raft-addr", freePort(t), "-http-addr", freePort(t), t.TempDir())
	for i, a := range args {
		if strings.HasPrefix(a, "-disco-config=") {
			args[i] = `-disco-config={"name":"no-such-name.invalid"}`
		}
	}
	code, out := runBinary(t, args...)
	if code != 3 {
		t.Fatalf("manifest arguments: exit %d, want 3 (boot timeout)\n%s", code, out)
	}
}
