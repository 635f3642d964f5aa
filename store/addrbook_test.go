package store

import (
	"testing"

	"github.com/hashicorp/raft"
)

// A raft node whose configuration is n1@A, n2@B, n3@C.
func configuredRaft(t *testing.T) *raft.Raft {
	t.Helper()
	store := raft.NewInmemStore()
	_, trans := raft.NewInmemTransport("C")
	conf := raft.Configuration{Servers: []raft.Server{
		{ID: "n1", Address: "A", Suffrage: raft.Voter},
		{ID: "n2", Address: "B", Suffrage: raft.Voter},
		{ID: "n3", Address: "C", Suffrage: raft.Voter},
	}}
	rc := raft.DefaultConfig()
	rc.LocalID = "n3"
	if err := raft.BootstrapCluster(rc, store, store, raft.NewInmemSnapshotStore(), trans, conf); err != nil {
		t.Fatal(err)
	}
	r, err := raft.NewRaft(rc, &fsmStub{}, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error() })
	return r
}

type fsmStub struct{ raft.FSM }

// The transport is never sent to this node itself for another member's ID,
// nor to one real node for two IDs: either would count one vote twice.
func TestAddrBookNeverDialsOneNodeForTwoIDs(t *testing.T) {
	r := configuredRaft(t)
	addr := func(b *addrBook, id raft.ServerID) raft.ServerAddress {
		t.Helper()
		a, err := b.ServerAddr(id)
		if err != nil {
			t.Fatalf("ServerAddr(%s): %v", id, err)
		}
		return a
	}

	// n3 came back at B, n2's old address.
	b := &addrBook{}
	b.setRaft(r)
	b.setSelf("n3", "B")
	if a := addr(b, "n3"); a != "B" {
		t.Fatalf("own address %s, want B", a)
	}
	if a := addr(b, "n2"); a != unreachable {
		t.Fatalf("n2 (configured at this node's address) -> %s, want unreachable", a)
	}
	if a := addr(b, "n1"); a != "A" {
		t.Fatalf("n1 -> %s, want its configured A", a)
	}

	// n2 was found at A, n1's configured address.
	b = &addrBook{}
	b.setRaft(r)
	b.setSelf("n3", "C")
	b.set("n2", "A")
	if a := addr(b, "n2"); a != "A" {
		t.Fatalf("n2 -> %s, want the learnt A", a)
	}
	if a := addr(b, "n1"); a != unreachable {
		t.Fatalf("n1 (configured where n2 was found) -> %s, want unreachable", a)
	}
	b.clear()
	if a := addr(b, "n1"); a != "A" {
		t.Fatalf("after clear, n1 -> %s, want A", a)
	}
}
