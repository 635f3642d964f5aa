package chaos

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as an echo server inside a namespace
// (the machine may have no other program to run there).
func TestMain(m *testing.M) {
	if addr := os.Getenv("CHAOS_ECHO_ADDR"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(0)
			}
			go func() {
				defer c.Close()
				b := make([]byte, 64)
				n, _ := c.Read(b)
				c.Write(b[:n])
			}()
		}
	}
	os.Exit(m.Run())
}

// startEcho runs an echo server in h on port 7000.
func startEcho(t *testing.T, h *Host) {
	t.Helper()
	cmd := h.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "CHAOS_ECHO_ADDR="+h.IP+":7000")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("echo server in %s: %q %v", h.NS, line, err)
	}
}

// echo dials ip:7000 from inside h (or from the machine if h is nil) and
// reports whether the echo came back within a second.
func echo(t *testing.T, h *Host, ip string) bool {
	t.Helper()
	if h == nil {
		c, err := net.DialTimeout("tcp", ip+":7000", time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		c.Write([]byte("x"))
		b := make([]byte, 1)
		_, err = c.Read(b)
		return err == nil
	}
	// A client inside a namespace: the test binary again, as a dialer.
	cmd := h.Command(os.Args[0], "-test.run=TestDialHelper")
	cmd.Env = append(os.Environ(), "CHAOS_DIAL="+ip+":7000")
	out, _ := cmd.CombinedOutput()
	return strings.Contains(string(out), "echo-ok")
}

func TestDialHelper(t *testing.T) {
	addr := os.Getenv("CHAOS_DIAL")
	if addr == "" {
		t.Skip("helper for TestPartitions")
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	c.Write([]byte("x"))
	b := make([]byte, 1)
	if _, err := c.Read(b); err == nil {
		fmt.Println("echo-ok")
	}
}

func TestPartitions(t *testing.T) {
	if err := Available(); err != nil {
		if os.Getenv("RQLITED_REQUIRE_NETNS") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	nt, err := NewNet(3)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		nt.Close()
		out, _ := exec.Command("ip", "netns", "list").Output()
		if strings.Contains(string(out), nt.id) {
			t.Errorf("namespaces left behind: %s", out)
		}
	}()
	a, b, c := nt.Hosts[0], nt.Hosts[1], nt.Hosts[2]
	startEcho(t, b)
	startEcho(t, a)
	if !echo(t, nil, b.IP) || !echo(t, a, b.IP) || !echo(t, c, b.IP) {
		t.Fatal("hosts cannot reach each other before any partition")
	}
	// One way: a's packets never reach b; b still reaches a.
	if err := nt.Block(0, 1); err != nil {
		t.Fatal(err)
	}
	if echo(t, a, b.IP) {
		t.Fatal("a reached b through a one-way block")
	}
	if !echo(t, c, b.IP) || !echo(t, nil, b.IP) {
		t.Fatal("a block of a->b cut off c or the machine")
	}
	if err := nt.Heal(); err != nil {
		t.Fatal(err)
	}
	if !echo(t, a, b.IP) {
		t.Fatal("heal did not restore a->b")
	}
	if err := nt.Isolate(1); err != nil {
		t.Fatal(err)
	}
	if echo(t, a, b.IP) || echo(t, c, b.IP) || echo(t, b, a.IP) {
		t.Fatal("an isolated host was reached, or reached another")
	}
	if !echo(t, nil, b.IP) {
		t.Fatal("isolation cut off the machine's clients")
	}
}
