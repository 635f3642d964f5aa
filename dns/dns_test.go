package dns

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rqlited/rqlited/internal/dnstest"
)

func TestLookupA(t *testing.T) {
	s := dnstest.Start(t)
	p, err := New(Config{Name: "rqlite.test", Resolver: s.Addr}, 4002)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Lookup(ctx); err == nil {
		t.Fatal("no records: expected an error")
	}
	s.SetA("rqlite.test", "10.0.0.2", "10.0.0.1", "fd00::1")
	got, err := p.Lookup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:4002", "10.0.0.2:4002", "[fd00::1]:4002"}; !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	s.SetServfail(true)
	if _, err := p.Lookup(ctx); err == nil {
		t.Fatal("SERVFAIL: expected an error")
	}
	s.SetServfail(false)
	s.SetDrop(true)
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := p.Lookup(tctx); err == nil {
		t.Fatal("unanswered: expected an error")
	}
}

func TestLookupSRVPriority(t *testing.T) {
	s := dnstest.Start(t)
	s.SetSRV("_raft._tcp.rqlite.test",
		dnstest.SRV{Priority: 10, Weight: 5, Port: 4002, Target: "n1.rqlite.test"},
		dnstest.SRV{Priority: 10, Weight: 5, Port: 4004, Target: "n2.rqlite.test"},
		dnstest.SRV{Priority: 20, Weight: 5, Port: 4006, Target: "standby.rqlite.test"})
	s.SetA("n1.rqlite.test", "127.0.0.1")
	s.SetA("n2.rqlite.test", "127.0.0.2")
	s.SetA("standby.rqlite.test", "127.0.0.3")
	p, err := NewSRV(SRVConfig{Name: "rqlite.test", Service: "raft", Resolver: s.Addr})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Lookup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"127.0.0.1:4002", "127.0.0.2:4004"}; !slices.Equal(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	s.SetSRV("_raft._tcp.rqlite.test")
	if _, err := p.Lookup(context.Background()); !errors.Is(err, ErrNoRecords) && err == nil {
		t.Fatal("empty SRV set: expected an error")
	}
}
