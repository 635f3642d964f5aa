package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rqlited/rqlited/command"
)

func TestBatchingAndDrain(t *testing.T) {
	var mu sync.Mutex
	var batches [][]command.Statement
	exec := func(_ context.Context, r *command.Request) error {
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, r.Statements)
		return nil
	}
	q, err := New(Config{Capacity: 100, BatchSize: 3, Timeout: time.Hour, ExecTimeout: time.Second}, exec)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	var dones []<-chan error
	for i := 0; i < 7; i++ {
		seq, done, err := q.Write(context.Background(), []command.Statement{{SQL: "x"}})
		if err != nil {
			t.Fatal(err)
		}
		if seq <= last {
			t.Fatalf("sequence numbers not increasing: %d after %d", seq, last)
		}
		last = seq
		dones = append(dones, done)
	}
	for _, d := range dones[:6] {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	// The seventh waits for the (hour-long) timeout; Close must flush it.
	q.Close()
	if err := <-dones[6]; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 3 || len(batches[0]) != 3 || len(batches[2]) != 1 {
		t.Fatalf("batches: %v", batches)
	}
	if _, _, err := q.Write(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

func TestTimeoutFlushAndErrors(t *testing.T) {
	boom := errors.New("boom")
	q, _ := New(Config{Capacity: 10, BatchSize: 100, Timeout: 10 * time.Millisecond, ExecTimeout: time.Second},
		func(context.Context, *command.Request) error { return boom })
	defer q.Close()
	_, done, _ := q.Write(context.Background(), []command.Statement{{SQL: "x"}})
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("batch never flushed on timeout")
	}
}
