// Package chaos is the fault-injection harness: hosts made of Linux
// network namespaces on a private bridge, partitions between them (one-way
// or both ways) made with packet filters inside each namespace, a recorder
// of client operations, and a linearizability check of the recorded
// history with porcupine.
package chaos

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// prefix starts the name of every namespace, bridge and veth the harness
// makes, followed by the creating process's PID, so leftovers of a process
// that died can be found and removed.
const prefix = "rqc"

// Net is a set of hosts, each a network namespace with one address on a
// bridge shared with the machine (which is reachable at GatewayIP).
type Net struct {
	id        string // prefix + pid + sequence
	bridge    string
	GatewayIP string
	Hosts     []*Host

	mu      sync.Mutex
	blocked map[[2]int]bool // from, to: packets from Hosts[from] dropped at Hosts[to]
	closed  bool
}

// Host is one namespace.
type Host struct {
	Index int
	NS    string
	IP    string
	veth  string
}

var (
	seqMu sync.Mutex
	seq   int
)

// Available reports why network namespaces cannot be used here, or nil:
// they need root, iproute2 and iptables.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (apt-get install iproute2 iptables)", tool)
		}
	}
	return nil
}

func run(args ...string) error {
	cmd := exec.Command(args[0], args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// NewNet makes n hosts on a fresh bridge. Subnet numbers come from the PID
// and a counter, so concurrent test processes do not collide. Call Close
// (even after a failure) to remove everything.
func NewNet(n int) (*Net, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	RemoveStale()
	seqMu.Lock()
	seq++
	s := seq
	seqMu.Unlock()
	pid := os.Getpid()
	// Names are at most 15 bytes: "rqc" + pid + "s" + seq (+ "b"/"v"...).
	id := fmt.Sprintf("%s%ds%d", prefix, pid, s)
	octet2, octet3 := 100+(pid/250)%100, (pid+s*7)%250
	nt := &Net{id: id, bridge: id + "b", GatewayIP: fmt.Sprintf("10.%d.%d.1", octet2, octet3), blocked: map[[2]int]bool{}}
	fail := func(err error) (*Net, error) {
		nt.Close()
		return nil, err
	}
	for _, args := range [][]string{
		{"ip", "link", "add", nt.bridge, "type", "bridge"},
		{"ip", "addr", "add", nt.GatewayIP + "/24", "dev", nt.bridge},
		{"ip", "link", "set", nt.bridge, "up"},
		// Docker sets the FORWARD policy to DROP, and bridged packets go
		// through it: let this bridge's traffic pass.
		{"iptables", "-I", "FORWARD", "-i", nt.bridge, "-o", nt.bridge, "-j", "ACCEPT"},
	} {
		if err := run(args...); err != nil {
			return fail(err)
		}
	}
	for i := 0; i < n; i++ {
		h := &Host{Index: i, NS: fmt.Sprintf("%sh%d", id, i), IP: fmt.Sprintf("10.%d.%d.%d", octet2, octet3, 10+i), veth: fmt.Sprintf("%sv%d", id, i)}
		nt.Hosts = append(nt.Hosts, h)
		for _, args := range [][]string{
			{"ip", "netns", "add", h.NS},
			{"ip", "link", "add", h.veth, "type", "veth", "peer", "name", h.veth + "p"},
			{"ip", "link", "set", h.veth + "p", "netns", h.NS},
			{"ip", "link", "set", h.veth, "master", nt.bridge, "up"},
			{"ip", "netns", "exec", h.NS, "ip", "link", "set", "lo", "up"},
			{"ip", "netns", "exec", h.NS, "ip", "addr", "add", h.IP + "/24", "dev", h.veth + "p"},
			{"ip", "netns", "exec", h.NS, "ip", "link", "set", h.veth + "p", "up"},
			{"ip", "netns", "exec", h.NS, "ip", "route", "add", "default", "via", nt.GatewayIP},
		} {
			if err := run(args...); err != nil {
				return fail(err)
			}
		}
	}
	return nt, nil
}

// Command returns a command that runs name inside h's namespace. `ip netns
// exec` replaces itself with the program, so the process is the program:
// signals sent to it reach the program.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Block drops every packet from host from that arrives at host to: a
// one-way partition (to's answers still reach from, but from's packets,
// including its TCP acknowledgements, never reach to).
func (nt *Net) Block(from, to int) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.blocked[[2]int{from, to}] {
		return nil
	}
	if err := run("ip", "netns", "exec", nt.Hosts[to].NS, "iptables", "-A", "INPUT", "-s", nt.Hosts[from].IP, "-j", "DROP"); err != nil {
		return err
	}
	nt.blocked[[2]int{from, to}] = true
	return nil
}

// Isolate cuts host i off from every other host, both ways. Clients on
// the machine (the gateway) still reach it.
func (nt *Net) Isolate(i int) error {
	for j := range nt.Hosts {
		if j == i {
			continue
		}
		if err := nt.Block(i, j); err != nil {
			return err
		}
		if err := nt.Block(j, i); err != nil {
			return err
		}
	}
	return nil
}

// Split cuts the hosts in group a off from the others, both ways.
func (nt *Net) Split(a []int) error {
	in := map[int]bool{}
	for _, i := range a {
		in[i] = true
	}
	for i := range nt.Hosts {
		for j := range nt.Hosts {
			if in[i] && !in[j] {
				if err := nt.Block(i, j); err != nil {
					return err
				}
				if err := nt.Block(j, i); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Heal removes every partition.
func (nt *Net) Heal() error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	var errs []error
	for _, h := range nt.Hosts {
		if err := run("ip", "netns", "exec", h.NS, "iptables", "-F", "INPUT"); err != nil {
			errs = append(errs, err)
		}
	}
	nt.blocked = map[[2]int]bool{}
	return errors.Join(errs...)
}

// Close removes the namespaces, veths, bridge and filter rule. Processes
// still running in a namespace keep it alive until they exit: stop them
// first.
func (nt *Net) Close() error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.closed {
		return nil
	}
	nt.closed = true
	removeNet(nt.id)
	return nil
}

// removeNet deletes everything named after id, ignoring what is already
// gone.
func removeNet(id string) {
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], id+"h") {
				run("ip", "netns", "del", f[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name := strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]
			if strings.HasPrefix(name, id+"v") && !strings.HasSuffix(name, "p") {
				run("ip", "link", "del", name)
			}
		}
	}
	bridge := id + "b"
	for run("iptables", "-D", "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT") == nil {
	}
	run("ip", "link", "del", bridge)
}

// RemoveStale removes what harness processes that no longer run left
// behind (a test binary killed before its cleanup).
func RemoveStale() {
	ids := map[string]bool{}
	collect := func(name string) {
		if !strings.HasPrefix(name, prefix) {
			return
		}
		rest := name[len(prefix):]
		i := strings.IndexByte(rest, 's')
		if i <= 0 {
			return
		}
		pid, err := strconv.Atoi(rest[:i])
		if err != nil || processAlive(pid) {
			return
		}
		j := i + 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		ids[prefix+rest[:j]] = true
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 {
				collect(f[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 2 {
				collect(strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
			}
		}
	}
	for id := range ids {
		removeNet(id)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
