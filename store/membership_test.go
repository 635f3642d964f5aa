package store

import (
	"testing"

	"github.com/hashicorp/raft"

	"github.com/rqlited/rqlited/command"
)

func TestMembership(t *testing.T) {
	m := membership{servers: []raft.Server{
		{ID: "a", Address: "a:1", Suffrage: raft.Voter},
		{ID: "b", Address: "b:1", Suffrage: raft.Nonvoter},
		{ID: "c", Address: "c:1", Suffrage: raft.Voter},
	}}
	if n := m.voters(); n != 2 {
		t.Errorf("voters = %d, want 2", n)
	}
	for id, want := range map[string]bool{"a": true, "b": false, "c": true, "d": false, "": false} {
		if got := m.isVoter(id); got != want {
			t.Errorf("isVoter(%q) = %v, want %v", id, got, want)
		}
	}
	if !m.has("b") || m.has("d") {
		t.Error("has")
	}
	if srv, ok := m.server("c"); !ok || srv.Address != "c:1" {
		t.Errorf("server(c) = %+v %v", srv, ok)
	}
	want := []command.Server{{ID: "a", Addr: "a:1", Voter: true}, {ID: "b", Addr: "b:1"}, {ID: "c", Addr: "c:1", Voter: true}}
	got := m.list()
	if len(got) != len(want) {
		t.Fatalf("list = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("list[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	var empty membership
	if empty.voters() != 0 || empty.isVoter("a") || empty.list() != nil {
		t.Error("empty membership")
	}
}
