package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// bench holds the processes and settings of a run.
type bench struct {
	bin   string
	dir   string
	dur   time.Duration
	reps  int
	mu    sync.Mutex
	procs []*exec.Cmd
	seq   int
}

// node is one rqlited process.
type node struct {
	cmd        *exec.Cmd
	base       string // http://host:port
	raft, http string
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start launches rqlited on fresh loopback ports with args.
func (b *bench) start(args ...string) *node {
	return b.exec(freeAddr(), freeAddr(), b.newDir(), args...)
}

func (b *bench) newDir() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	return filepath.Join(b.dir, fmt.Sprintf("node%d", b.seq))
}

// exec launches rqlited with the given addresses and data directory.
func (b *bench) exec(httpAddr, raftAddr, dir string, args ...string) *node {
	n := &node{raft: raftAddr, http: httpAddr, base: "http://" + httpAddr}
	all := append([]string{"-http-addr", n.http, "-raft-addr", n.raft}, args...)
	all = append(all, dir)
	n.cmd = exec.Command(b.bin, all...)
	logf, err := os.Create(dir + ".log")
	if err != nil {
		fail(err)
	}
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	if err := n.cmd.Start(); err != nil {
		fail(err)
	}
	b.mu.Lock()
	b.procs = append(b.procs, n.cmd)
	b.mu.Unlock()
	return n
}

// isLeader reports whether n says it is the leader.
func isLeader(n *node) bool {
	resp, err := http.Get(n.base + "/status?key=store.leader.addr")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var addr string
	json.NewDecoder(resp.Body).Decode(&addr)
	return addr == n.raft
}

// ready reports whether the node answers /readyz with 200.
func (n *node) ready() bool {
	resp, err := http.Get(n.base + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (n *node) waitReady(ctx context.Context) {
	deadline := time.Now().Add(30 * time.Second)
	for !n.ready() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			fail(fmt.Errorf("node %s not ready", n.base))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (n *node) stop() {
	n.cmd.Process.Kill()
	n.cmd.Wait()
}

func (b *bench) stopAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.procs {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	}
}

// execCommand starts a helper server process, its output discarded.
func execCommand(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	return cmd
}
