package cluster

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
)

type fakeBook struct {
	mu      sync.Mutex
	cid     string
	leader  string
	learned map[string]string
}

func (b *fakeBook) ClusterID() string { return b.cid }
func (b *fakeBook) Leader() (string, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return "", b.leader
}
func (b *fakeBook) LearnPeer(id, addr string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.learned[id] == addr {
		return false
	}
	b.learned[id] = addr
	return true
}

func TestPeerFinderLearnsMembers(t *testing.T) {
	self, peer := startService(t, "self"), startService(t, "peer")
	book := &fakeBook{cid: "cid", learned: map[string]string{}}
	p := &PeerFinder{Book: book, Client: self.cl, HTTP: http.DefaultClient, Self: "self",
		Addresses: StaticAddresses{self.mgr.addr, peer.mgr.addr, "127.0.0.1:1"},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil))}
	p.round(context.Background(), 2e9)
	if len(book.learned) != 1 || book.learned["peer"] != peer.mgr.addr {
		t.Fatalf("learned %v, want only peer at %s", book.learned, peer.mgr.addr)
	}
	// A node of another cluster is not taken for a member.
	book2 := &fakeBook{cid: "other", learned: map[string]string{}}
	p.Book = book2
	p.round(context.Background(), 2e9)
	if len(book2.learned) != 0 {
		t.Fatalf("learned %v from another cluster", book2.learned)
	}
}
