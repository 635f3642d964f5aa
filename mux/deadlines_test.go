package mux

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/internal/conntest"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startMux serves a mux on a loopback port with d as the Raft layer's
// deadlines.
func startMux(t *testing.T, d Deadlines) (*Mux, *Layer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(ln, quietLogger())
	m.SetDeadlines(HeaderRaft, d)
	l := m.Layer(HeaderRaft)
	m.Serve()
	t.Cleanup(func() { m.Close() })
	return m, l
}

// echoFrames accepts connections on l and answers each length-prefixed
// frame with "ok", as a request/response service does, until l closes.
// It returns a wait for its goroutines.
func echoFrames(l *Layer) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				for {
					var hdr [4]byte
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					if _, err := io.ReadFull(c, make([]byte, binary.BigEndian.Uint32(hdr[:]))); err != nil {
						return
					}
					if _, err := c.Write([]byte("ok")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return wg.Wait
}

func frame(s string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

// roundTrip sends one frame on c and reads the answer.
func roundTrip(t *testing.T, c net.Conn, s string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(frame(s)); err != nil {
		t.Fatalf("send %q: %v", s, err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ok" {
		t.Fatalf("answer to %q: %q %v", s, buf, err)
	}
}

func TestRaftLayerDeadlines(t *testing.T) {
	d := Deadlines{First: 300 * time.Millisecond, Stall: 300 * time.Millisecond, Idle: 800 * time.Millisecond}
	m, l := startMux(t, d)
	defer echoFrames(l)()
	defer m.Close()
	addr := m.Addr().String()
	const slack = 2 * time.Second
	dial := func(t *testing.T, first []byte) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(first); err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("header byte only", func(t *testing.T) {
		c := dial(t, []byte{HeaderRaft})
		took := conntest.ClosedWithin(t, c, d.First+slack)
		t.Logf("closed after %v", took)
	})
	t.Run("header and one byte of a request", func(t *testing.T) {
		c := dial(t, []byte{HeaderRaft, 0})
		conntest.ClosedWithin(t, c, d.Stall+slack)
	})
	t.Run("stall inside a later request", func(t *testing.T) {
		c := dial(t, []byte{HeaderRaft})
		roundTrip(t, c, "one")
		c.Write([]byte{0, 0}) // half a length prefix, then nothing
		start := time.Now()
		took := conntest.ClosedWithin(t, c, d.Stall+slack)
		if took >= d.Idle {
			t.Fatalf("a stalled request was closed after %v, the idle bound (%v), not the stall bound (%v)", time.Since(start), d.Idle, d.Stall)
		}
	})
	t.Run("idle between requests", func(t *testing.T) {
		c := dial(t, []byte{HeaderRaft})
		roundTrip(t, c, "one")
		took := conntest.ClosedWithin(t, c, d.Idle+slack)
		if took < d.Idle/2 {
			t.Fatalf("an idle connection was closed after %v, before the idle bound %v", took, d.Idle)
		}
	})
	t.Run("steady requests are never cut", func(t *testing.T) {
		c := dial(t, []byte{HeaderRaft})
		// Longer in all than every bound, with pauses shorter than Idle
		// between requests.
		end := time.Now().Add(d.Idle + d.Stall + d.First + 200*time.Millisecond)
		for i := 0; time.Now().Before(end); i++ {
			roundTrip(t, c, "request")
			time.Sleep(d.Idle / 2) // a peer's pause between requests
		}
	})
}

// streamLayer adapts a Layer to raft.StreamLayer.
type streamLayer struct{ *Layer }

func (l streamLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return l.Layer.Dial(string(a), timeout)
}

// TestRaftTransportSurvivesIdle runs hashicorp/raft's transport over the
// Raft layer with short deadlines: pooled connections that sat idle past
// the other node's Idle bound are renewed before use, so no RPC fails.
// Without Redial the same pause fails an RPC, which shows the bound bites.
func TestRaftTransportSurvivesIdle(t *testing.T) {
	for _, tc := range []struct {
		name     string
		redial   time.Duration
		wantFail bool
	}{{"renewed", 200 * time.Millisecond, false}, {"not renewed", 0, true}} {
		t.Run(tc.name, func(t *testing.T) {
			d := Deadlines{First: time.Second, Stall: time.Second, Idle: 500 * time.Millisecond, Redial: tc.redial}
			ma, la := startMux(t, d)
			mb, lb := startMux(t, d)
			ta := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: streamLayer{la}, MaxPool: 5,
				Timeout: 2 * time.Second, Logger: hclog.NewNullLogger()})
			tb := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: streamLayer{lb}, MaxPool: 5,
				Timeout: 2 * time.Second, Logger: hclog.NewNullLogger()})
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case rpc := <-tb.Consumer():
						rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
					}
				}
			}()
			defer func() {
				ta.Close()
				tb.Close()
				ma.Close()
				mb.Close()
				close(stop)
				wg.Wait()
			}()
			target := raft.ServerAddress(mb.Addr().String())
			// Several at once, so the pool holds several connections.
			burst := func() error {
				errs := make(chan error, 5)
				for i := 0; i < 5; i++ {
					go func() {
						var resp raft.AppendEntriesResponse
						errs <- ta.AppendEntries("b", target, &raft.AppendEntriesRequest{
							RPCHeader: raft.RPCHeader{ID: []byte("a"), Addr: []byte(ma.Addr().String())}, Term: 1}, &resp)
					}()
				}
				var first error
				for i := 0; i < 5; i++ {
					if err := <-errs; err != nil && first == nil {
						first = err
					}
				}
				return first
			}
			if err := burst(); err != nil {
				t.Fatalf("first burst: %v", err)
			}
			time.Sleep(d.Idle + 500*time.Millisecond) // the pause under test: the pool idles past Idle
			err := burst()
			switch {
			case tc.wantFail && err == nil:
				t.Fatal("an RPC on a connection idle past the other node's bound succeeded without renewal: the bound did not bite")
			case !tc.wantFail && err != nil:
				t.Fatalf("RPC after an idle pause: %v", err)
			}
		})
	}
}
