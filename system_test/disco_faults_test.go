//go:build system

package system_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rqlited/rqlited/internal/dnstest"
)

// writeLoad appends unique values through every node in turn until
// stopped, and remembers which writes were acknowledged.
type writeLoad struct {
	c       Cluster
	acked   sync.Map // value -> struct{}
	nAcked  atomic.Int64
	failed  atomic.Int64
	lastErr atomic.Value
	stop    chan struct{}
	done    chan struct{}
}

// startWriteLoad writes through the nodes of via and checks on those of c.
func startWriteLoad(t *testing.T, c, via Cluster) *writeLoad {
	t.Helper()
	if s, b := c[0].Execute("", `["CREATE TABLE w (v INTEGER)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("create w: %d %s", s, b)
	}
	l := &writeLoad{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			n := via[i%len(via)]
			s, b := n.Execute("", fmt.Sprintf(`["INSERT INTO w VALUES(%d)"]`, i))
			if s == 200 && !strings.Contains(b, "error") {
				l.acked.Store(i, struct{}{})
				l.nAcked.Add(1)
			} else {
				l.failed.Add(1)
				l.lastErr.Store(fmt.Sprintf("write %d via %s: %d %s", i, n.nodeID(), s, b))
			}
		}
	}()
	t.Cleanup(l.end)
	return l
}

func (l *writeLoad) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// during waits until n more writes are acknowledged (the cluster keeps
// serving through whatever the caller has just broken).
func (l *writeLoad) during(t *testing.T, what string, n int64) {
	t.Helper()
	want := l.nAcked.Load() + n
	waitFor(t, 20*time.Second, fmt.Sprintf("%d acknowledged writes while %s", n, what), func() bool {
		return l.nAcked.Load() >= want
	})
}

// check stops the load and verifies that no write failed and that every
// node holds every acknowledged value exactly once.
func (l *writeLoad) check(t *testing.T) {
	t.Helper()
	l.end()
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d writes failed while only discovery was broken; last: %v", f, l.lastErr.Load())
	}
	want := l.nAcked.Load()
	for _, n := range l.c {
		waitFor(t, 20*time.Second, fmt.Sprintf("%s holds all %d acknowledged writes", n.nodeID(), want), func() bool {
			s, b := n.Query("SELECT COUNT(*), COUNT(DISTINCT v) FROM w", "&level=none")
			return s == 200 && strings.Contains(b, fmt.Sprintf(`"values":[[%d,%d]]`, want, want))
		})
	}
}

// TestDiscoFaultsUnderLoad breaks a running cluster's discovery source
// while clients write: the KV store paused, killed and restarted (Consul
// in dev mode comes back empty); the DNS server answering SERVFAIL, timing
// out, shrinking and growing, and a node restarted meanwhile. A formed
// cluster does not need discovery: no write may fail, every acknowledged
// write must be on every node once, and in the KV modes the leader writes
// its key again once the store is back.
func TestDiscoFaultsUnderLoad(t *testing.T) {
	for _, m := range kvModes {
		t.Run(m.name, func(t *testing.T) {
			srv := m.start(t)
			key := randomKey()
			var c Cluster
			for i := 0; i < 3; i++ {
				c = append(c, newNode(t, "", kvArgs(m, srv.Addr, key)...))
			}
			c.startAll()
			c.waitOneCluster(t, 20*time.Second)
			load := startWriteLoad(t, c, c)
			load.during(t, "the cluster runs", 20)

			srv.cmd.Process.Signal(syscall.SIGSTOP)
			load.during(t, m.name+" is paused", 50)
			srv.cmd.Process.Signal(syscall.SIGCONT)

			srv.Stop()
			load.during(t, m.name+" is down", 50)
			srv.Restart(m.health)
			load.during(t, m.name+" is back", 20)

			if m.name == "etcd-kv" {
				// etcd kept its data; make it come back empty, as Consul's
				// dev mode does.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := srv.EtcdClient(EtcdOptions{}, "", "").Delete(ctx, "/"+key+"/leader")
				cancel()
				if err != nil {
					t.Fatal(err)
				}
			}
			leader := c.waitOneCluster(t, 10*time.Second)
			holder := kvHolder(t, m.name, srv, key)
			waitFor(t, 20*time.Second, "the leader's key is in the store again", func() bool {
				return holder() == leader.nodeID()
			})
			load.check(t)
		})
	}
	t.Run("dns", func(t *testing.T) {
		srv := dnstest.Start(t)
		cfg := fmt.Sprintf(`{"name":"rqlite.test","resolver":%q}`, srv.Addr)
		c, ips := dnsCluster(t, 3, "-disco-mode", "dns", "-disco-config", cfg, "-bootstrap-expect", "3")
		srv.SetA("rqlite.test", ips...)
		c.startAll()
		leader := c.waitOneCluster(t, 20*time.Second)
		f := c.followers(leader)[0]
		load := startWriteLoad(t, c, Cluster(c.followers(f)))
		load.during(t, "the cluster runs", 20)

		srv.SetServfail(true)
		load.during(t, "DNS answers SERVFAIL", 50)
		// A follower restarted now finds its cluster from its own state.
		f.Stop()
		load.during(t, "a follower is down and DNS fails", 30)
		f.Start()
		f.WaitReady(20 * time.Second)
		srv.SetServfail(false)

		srv.SetDrop(true)
		load.during(t, "DNS queries time out", 50)
		srv.SetDrop(false)

		srv.SetA("rqlite.test", ips[0])
		load.during(t, "DNS lists one node", 30)
		srv.SetA("rqlite.test", ips...)
		load.during(t, "DNS lists all nodes again", 20)

		c.waitOneCluster(t, 10*time.Second)
		load.check(t)
	})
}
