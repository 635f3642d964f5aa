package system_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// toolPath finds a server binary built by tools/build.sh. make test sets
// RQLITED_TOOLS, and then a missing binary is a failure; a bare `go test`
// without it skips the tests that need the server.
func toolPath(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("RQLITED_TOOLS")
	required := dir != ""
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "rqlited-tools")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		if required {
			t.Fatalf("%s not built: run tools/build.sh %s", p, dir)
		}
		t.Skipf("%s not built (run `make tools`, or `make test` which builds it)", p)
	}
	return p
}

// kvServer is a real Consul agent or etcd server run by a test.
type kvServer struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *syncBuffer
	args []string
	bin  string
	Addr string // host:port of the client API
	done chan struct{}
}

func (s *kvServer) start() {
	s.t.Helper()
	s.out = &syncBuffer{}
	s.cmd = exec.Command(s.bin, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	cmd, done := s.cmd, s.done
	go func() { cmd.Wait(); close(done) }()
	s.t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if s.t.Failed() {
			s.t.Logf("%s output:\n%s", filepath.Base(s.bin), s.out.String())
		}
	})
}

// Stop kills the server (a crash, as far as clients can tell).
func (s *kvServer) Stop() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// waitHealthy polls path until it answers 200.
func (s *kvServer) waitHealthy(path string) {
	s.t.Helper()
	waitFor(s.t, 30*time.Second, filepath.Base(s.bin)+" healthy", func() bool {
		resp, err := http.Get("http://" + s.Addr + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// startEtcd runs a single-member etcd on loopback ports with its own data
// directory.
func startEtcd(t testing.TB) *kvServer {
	t.Helper()
	bin := toolPath(t, "etcd")
	client, peer := freePort(t), freePort(t)
	s := &kvServer{t: t, bin: bin, Addr: client, args: []string{
		"--data-dir", t.TempDir(), "--name", "test",
		"--listen-client-urls", "http://" + client, "--advertise-client-urls", "http://" + client,
		"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
		"--initial-cluster", "test=http://" + peer, "--log-level", "error",
	}}
	s.start()
	s.waitHealthy("/health")
	return s
}

// Restart starts a stopped server again with the same arguments and data.
func (s *kvServer) Restart(healthPath string) {
	s.start()
	s.waitHealthy(healthPath)
}

// startConsul runs a Consul agent in dev mode on loopback ports.
func startConsul(t testing.TB) *kvServer {
	t.Helper()
	bin := toolPath(t, "consul")
	httpAddr := freePort(t)
	port := func(a string) string {
		_, p, _ := splitHostPort(a)
		return p
	}
	s := &kvServer{t: t, bin: bin, Addr: httpAddr, args: []string{
		"agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1", "-log-level", "error",
		"-http-port", port(httpAddr), "-grpc-port", "-1", "-grpc-tls-port", "-1", "-dns-port", "-1",
		"-serf-lan-port", port(freePort(t)), "-serf-wan-port", port(freePort(t)), "-server-port", port(freePort(t)),
		"-data-dir", t.TempDir(),
	}}
	s.start()
	waitFor(t, 30*time.Second, "consul leader", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/v1/status/leader")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var b [64]byte
		n, _ := resp.Body.Read(b[:])
		return resp.StatusCode == 200 && n > 4
	})
	return s
}

func splitHostPort(a string) (string, string, error) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == ':' {
			return a[:i], a[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("no port in %q", a)
}
