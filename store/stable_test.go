package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

type failingStable struct{ raft.StableStore }

var errDisk = errors.New("operation not permitted")

func (failingStable) Set([]byte, []byte) error       { return errDisk }
func (failingStable) SetUint64([]byte, uint64) error { return errDisk }

func TestStableStoreWriteFailureStopsCleanly(t *testing.T) {
	var got error
	s := stableStore{failingStable{raft.NewInmemStore()}, func(err error) { got = err }}
	if err := s.SetUint64([]byte("CurrentTerm"), 3); !errors.Is(err, errDisk) {
		t.Fatalf("SetUint64 = %v", err)
	}
	if got == nil || !errors.Is(got, errDisk) || !strings.Contains(got.Error(), "CurrentTerm") {
		t.Fatalf("fatal got %v, want the write error naming the key", got)
	}
	got = nil
	if err := (stableStore{raft.NewInmemStore(), func(err error) { got = err }}).Set([]byte("k"), []byte("v")); err != nil || got != nil {
		t.Fatalf("a working store: %v, fatal %v", err, got)
	}
}
