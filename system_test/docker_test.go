//go:build system

package system_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dockerImage returns the image `make docker` built; make test sets
// RQLITED_DOCKER_IMAGE whenever a Docker engine answers.
func dockerImage(t *testing.T) string {
	img := os.Getenv("RQLITED_DOCKER_IMAGE")
	if img == "" {
		t.Skip("RQLITED_DOCKER_IMAGE not set (make test sets it when a Docker engine answers)")
	}
	return img
}

func docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// container is one rqlited container; its HTTP port is published on
// 127.0.0.1 through the default bridge, so the test can still reach it
// when it is cut off from the cluster network.
type container struct {
	t    testing.TB
	name string
	Node
}

// startContainers runs n containers on a new network with the same
// arguments and returns them once the test can reach their HTTP ports.
func startContainers(t *testing.T, image string, n int, args func(names []string) []string) ([]*container, string) {
	return startContainersOn(t, image, n, nil, nil, args)
}

// startContainersOn is startContainers with extra `docker network create`
// arguments and extra `docker network connect` arguments per container.
func startContainersOn(t *testing.T, image string, n int, netArgs []string, connArgs func(i int) []string,
	args func(names []string) []string) ([]*container, string) {
	t.Helper()
	suffix := fmt.Sprintf("%d", rand.Int64N(1e9))
	netName := "rqt-" + suffix
	docker(t, append(append([]string{"network", "create"}, netArgs...), netName)...)
	var cs []*container
	t.Cleanup(func() {
		for _, c := range cs {
			if t.Failed() {
				out, _ := exec.Command("docker", "logs", "--tail", "40", c.name).CombinedOutput()
				t.Logf("logs of %s:\n%s", c.name, out)
			}
			exec.Command("docker", "rm", "-f", "-v", c.name).Run()
		}
		exec.Command("docker", "network", "rm", netName).Run()
	})
	var names []string
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("rq%d-%s", i+1, suffix))
	}
	for i, name := range names {
		cargs := append([]string{"create", "--name", name, "--hostname", name, "--network", "bridge",
			"-p", "127.0.0.1::4001", image}, args(names)...)
		docker(t, cargs...)
		conn := []string{"network", "connect"}
		if connArgs != nil {
			conn = append(conn, connArgs(i)...)
		}
		docker(t, append(conn, netName, name)...)
		cs = append(cs, &container{t: t, name: name})
	}
	for _, c := range cs {
		docker(t, "start", c.name)
	}
	for _, c := range cs {
		c.Node = Node{t: t, RaftAddr: c.name + ":4002", Args: []string{"-node-id", c.name}}
		c.refreshPort()
	}
	return cs, netName
}

// refreshPort reads the host port Docker published the HTTP API on (it
// changes when a container restarts).
func (c *container) refreshPort() {
	port := strings.Split(docker(c.t, "port", c.name, "4001/tcp"), "\n")[0]
	c.HTTPAddr = port[strings.LastIndex(port, "127.0.0.1"):]
}

func TestDockerClusterPartitionAndRestart(t *testing.T) {
	image := dockerImage(t)
	matrix(t, "S15", "join", "one cluster with all its data after docker stop of every container and a restart (containers)")
	matrix(t, "S21", "join", "one cluster: a container killed (-9) and restarted rejoins (containers)")
	cs, netName := startContainers(t, image, 3, func(names []string) []string {
		var join []string
		for _, n := range names {
			join = append(join, n+":4002")
		}
		return []string{"-bootstrap-expect", "3", "-join", strings.Join(join, ",")}
	})
	var c Cluster
	for _, x := range cs {
		c = append(c, &x.Node)
	}
	leader := c.waitOneCluster(t, 60*time.Second)
	for i, n := range c {
		if s, b := n.Execute("", fmt.Sprintf(`["CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)", "INSERT INTO t(id) VALUES(%d)"]`, i+1)); s != 200 || strings.Contains(b, "error") {
			t.Fatalf("write through node %d: %d %s", i, s, b)
		}
	}

	// Cut the leader off the cluster network while writes keep coming.
	var acked sync.Map
	var next atomic.Int64
	next.Store(100)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for _, n := range c {
		if n == leader {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if id := next.Add(1); insertAcked(client, n, id) {
					acked.Store(id, true)
				}
			}
		}()
	}
	var leaderName string
	for _, x := range cs {
		if &x.Node == leader {
			leaderName = x.name
		}
	}
	docker(t, "network", "disconnect", netName, leaderName)
	majority := Cluster(c.followers(leader))
	newLeader := majority.waitOneCluster(t, 30*time.Second)
	if newLeader == leader {
		t.Fatal("the partitioned leader is still leader of the majority")
	}
	// The minority refuses writes, and serves reads at level=none.
	if s, _ := leader.Execute("", `["INSERT INTO t(id) VALUES(99999)"]`); s == 200 {
		t.Fatal("the partitioned old leader accepted a write")
	}
	if s, b := leader.Query("SELECT COUNT(*) FROM t", "&level=none"); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("level=none on the minority: %d %s", s, b)
	}
	// ...and nothing that needs a leader.
	waitFor(t, 10*time.Second, "minority refuses leader reads", func() bool {
		s, _ := leader.Query("SELECT COUNT(*) FROM t", "&level=weak")
		return s == 503
	})
	time.Sleep(time.Second) // writes to the majority's new leader
	docker(t, "network", "connect", netName, leaderName)
	close(stop)
	wg.Wait()
	acks := 0
	acked.Range(func(any, any) bool { acks++; return true })
	if acks == 0 {
		t.Fatal("no write was acknowledged during the partition")
	}
	// Every node converges, with every acknowledged write and no extra row.
	for _, n := range c {
		waitFor(t, 30*time.Second, "convergence of "+n.HTTPAddr, func() bool {
			ids := map[int64]bool{}
			for _, id := range queryInts(t, n, "SELECT id FROM t", "none") {
				ids[id] = true
			}
			ok := !ids[99999]
			acked.Range(func(k, _ any) bool { ok = ok && ids[k.(int64)]; return ok })
			return ok
		})
	}

	// kill -9 of a node and a restart on the same volume.
	victim := cs[0]
	docker(t, "kill", "-s", "KILL", victim.name)
	docker(t, "start", victim.name)
	victim.refreshPort()
	c.waitOneCluster(t, 60*time.Second)

	// The whole cluster restarted on the same volumes. (Writes that timed out
	// during the partition may have been applied without an acknowledgement,
	// so compare with the count before the restart.)
	before := c.waitOneCluster(t, 60*time.Second).count("t", "linearizable")
	if before < int64(3+acks) {
		t.Fatalf("%d rows before the restart, fewer than the %d acknowledged", before, 3+acks)
	}
	for _, x := range cs {
		docker(t, "stop", "-t", "10", x.name)
	}
	for _, x := range cs {
		docker(t, "start", x.name)
	}
	for _, x := range cs {
		x.refreshPort()
	}
	leader = c.waitOneCluster(t, 60*time.Second)
	if got := leader.count("t", "linearizable"); got != before {
		t.Fatalf("after a whole-cluster restart: %d rows, want %d", got, before)
	}
}

func TestDockerDNSAliasAndNewAddress(t *testing.T) {
	image := dockerImage(t)
	matrix(t, "S4", "dns", "one cluster: a container back under the same name with a new IP replicates (containers)")
	sub := fmt.Sprintf("10.%d.%d", 100+rand.IntN(100), rand.IntN(250))
	alias := fmt.Sprintf("rqlite-%d", rand.IntN(1e6))
	// Identical rqlited arguments; Docker's embedded DNS answers one A record
	// per container for the shared alias.
	cs, netName := startContainersOn(t, image, 3, []string{"--subnet", sub + ".0/24"},
		func(i int) []string { return []string{"--alias", alias, "--ip", fmt.Sprintf("%s.%d", sub, 11+i)} },
		func([]string) []string {
			return []string{"-disco-mode", "dns", "-disco-config", fmt.Sprintf(`{"name":%q}`, alias), "-bootstrap-expect", "3"}
		})
	var c Cluster
	for _, x := range cs {
		c = append(c, &x.Node)
	}
	c.waitOneCluster(t, 60*time.Second)
	if s, b := c[2].Execute("", `["CREATE TABLE t (x)", "INSERT INTO t VALUES(1)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write: %d %s", s, b)
	}
	// A node comes back with a new IP address under the same name.
	moved := cs[1]
	docker(t, "stop", "-t", "10", moved.name)
	docker(t, "network", "disconnect", netName, moved.name)
	docker(t, "network", "connect", "--alias", alias, "--ip", sub+".99", netName, moved.name)
	docker(t, "start", moved.name)
	moved.refreshPort()
	leader := c.waitOneCluster(t, 60*time.Second)
	if s, b := leader.Execute("", `["INSERT INTO t VALUES(2)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write after the move: %d %s", s, b)
	}
	waitFor(t, 30*time.Second, "moved node replicates", func() bool {
		s, b := moved.Query("SELECT COUNT(*) FROM t", "&level=none")
		return s == 200 && strings.Contains(b, `"values":[[2]]`)
	})
}

// runFixture starts a helper container (DNS, etcd, Consul) on netName and
// removes it when the test ends.
func runFixture(t *testing.T, netName, name string, dockerArgs []string, image string, args ...string) {
	t.Helper()
	all := append([]string{"run", "-d", "--name", name, "--hostname", name, "--network", netName}, dockerArgs...)
	all = append(append(all, image), args...)
	docker(t, all...)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker", "logs", "--tail", "30", name).CombinedOutput()
			t.Logf("logs of %s:\n%s", name, out)
		}
		exec.Command("docker", "rm", "-f", "-v", name).Run()
	})
}

// fixtureImage skips the test unless make built the fixture images.
func fixtureImage(t *testing.T, name string) string {
	img := "rqlited-" + name + ":dev"
	if err := exec.Command("docker", "image", "inspect", img).Run(); err != nil {
		t.Skipf("%s not built (make docker-fixtures)", img)
	}
	return img
}

func TestDockerDNSSRV(t *testing.T) {
	image := dockerImage(t)
	dnsImage := fixtureImage(t, "dns")
	matrix(t, "S24", "dns-srv", "waits while no DNS server answers (phase resolving), one cluster when it starts (containers)")
	matrix(t, "(e)", "dns-srv", "priority honoured: the standby record is ignored (containers)")
	sub := fmt.Sprintf("10.%d.%d", 100+rand.IntN(100), rand.IntN(250))
	netArgs := []string{"--subnet", sub + ".0/24"}
	cfg := fmt.Sprintf(`{"name":"rqlite.test","service":"raft","resolver":"%s.53:53"}`, sub)
	cs, netName := startContainersOn(t, image, 3, netArgs,
		func(i int) []string { return []string{"--ip", fmt.Sprintf("%s.%d", sub, 11+i)} },
		func([]string) []string {
			return []string{"-disco-mode", "dns-srv", "-disco-config", cfg, "-bootstrap-expect", "3"}
		})
	// The DNS server: three SRV records of the best priority, and a standby
	// of lower preference that points nowhere and must be ignored.
	// No DNS server yet: the nodes say what they wait for, and keep trying.
	waitFor(t, 30*time.Second, "resolving phase explained", func() bool {
		p, _ := cs[0].status("disco.phase").(string)
		e, _ := cs[0].status("disco.last_error").(string)
		return p == "resolving" && e != ""
	})
	runFixture(t, netName, "dns-"+netName, []string{"--ip", sub + ".53"}, dnsImage,
		"-addr", ":53",
		"-a", "rq1.test="+sub+".11", "-a", "rq2.test="+sub+".12", "-a", "rq3.test="+sub+".13", "-a", "standby.test="+sub+".99",
		"-srv", "_raft._tcp.rqlite.test=10:5:4002:rq1.test,10:5:4002:rq2.test,10:5:4002:rq3.test,20:5:4002:standby.test")
	var c Cluster
	for _, x := range cs {
		c = append(c, &x.Node)
	}
	c.waitOneCluster(t, 60*time.Second)
	if s, b := c[0].Execute("", `["CREATE TABLE t (x)"]`); s != 200 || strings.Contains(b, "error") {
		t.Fatalf("write: %d %s", s, b)
	}
}

func TestDockerKVStores(t *testing.T) {
	image := dockerImage(t)
	for _, kv := range []struct{ name, mode string }{{"etcd", "etcd-kv"}, {"consul", "consul-kv"}} {
		t.Run(kv.name, func(t *testing.T) {
			kvImage := fixtureImage(t, kv.name)
			matrix(t, "S25", kv.mode, "the store starts after the nodes: they wait, then form one cluster (containers)")
			suffix := fmt.Sprintf("%d", rand.IntN(1e9))
			storeName := kv.name + "-" + suffix
			var cfg string
			if kv.name == "etcd" {
				cfg = fmt.Sprintf(`{"endpoints":["http://%s:2379"]}`, storeName)
			} else {
				cfg = fmt.Sprintf(`{"address":"%s:8500"}`, storeName)
			}
			cs, netName := startContainersOn(t, image, 3, nil, nil, func([]string) []string {
				return []string{"-disco-mode", kv.mode, "-disco-key", "rq-" + suffix, "-disco-config", cfg}
			})
			// The store starts after the nodes: they wait for it, then form.
			if kv.name == "etcd" {
				runFixture(t, netName, storeName, []string{"--tmpfs", "/data"}, kvImage,
					"--data-dir", "/data/etcd", "--listen-client-urls", "http://0.0.0.0:2379",
					"--advertise-client-urls", "http://"+storeName+":2379", "--listen-peer-urls", "http://0.0.0.0:2380",
					"--initial-advertise-peer-urls", "http://"+storeName+":2380", "--initial-cluster", "default=http://"+storeName+":2380")
			} else {
				runFixture(t, netName, storeName, []string{"--tmpfs", "/tmp"}, kvImage,
					"agent", "-dev", "-client", "0.0.0.0", "-bind", `{{ GetInterfaceIP "eth0" }}`, "-log-level", "warn")
			}
			var c Cluster
			for _, x := range cs {
				c = append(c, &x.Node)
			}
			leader := c.waitOneCluster(t, 90*time.Second)
			if s, b := c[1].Execute("", `["CREATE TABLE t (x)"]`); s != 200 || strings.Contains(b, "error") {
				t.Fatalf("write: %d %s", s, b)
			}
			waitFor(t, 20*time.Second, "leader key names the leader", func() bool {
				h, _ := leader.status("disco.leader_key.holder").(string)
				return h == leader.nodeID()
			})
		})
	}
}

func TestDockerDataDirNotWritable(t *testing.T) {
	image := dockerImage(t)
	// The image's data directory belongs to root: another user cannot write it.
	out, err := exec.Command("docker", "run", "--rm", "--user", "12345", image).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is not writable") {
		t.Fatalf("non-writable data directory: err %v\n%s", err, out)
	}
}
