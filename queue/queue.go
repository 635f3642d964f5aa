// Package queue batches queued writes (rqlite's ?queue) into larger
// replicated requests, trading latency for throughput.
package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rqlited/rqlited/command"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("write queue closed")

// Executor runs one batch.
type Executor func(ctx context.Context, req *command.Request) error

// Config configures a Queue.
type Config struct {
	// Capacity is how many writes may wait; Write blocks when it is full.
	Capacity int
	// BatchSize is the number of statements that triggers a flush.
	BatchSize int
	// Timeout is the longest a write waits for its batch to fill.
	Timeout time.Duration
	// Transaction runs each batch in one transaction.
	Transaction bool
	// ExecTimeout bounds each batch's execution.
	ExecTimeout time.Duration
}

// DefaultConfig returns rqlite's defaults (-write-queue-*).
func DefaultConfig() Config {
	return Config{Capacity: 1024, BatchSize: 128, Timeout: 50 * time.Millisecond, ExecTimeout: 30 * time.Second}
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.Capacity < 1:
		return fmt.Errorf("write queue capacity %d must be at least 1", c.Capacity)
	case c.BatchSize < 1:
		return fmt.Errorf("write queue batch size %d must be at least 1", c.BatchSize)
	case c.Timeout <= 0:
		return fmt.Errorf("write queue timeout %v must be positive", c.Timeout)
	}
	return nil
}

type item struct {
	seq   int64
	stmts []command.Statement
	done  chan error
}

// Queue collects writes and executes them in batches on its own goroutine.
type Queue struct {
	cfg  Config
	exec Executor

	in chan item
	// mu is held shared by Write while it hands an item over, and
	// exclusively by Close, so no accepted item is ever left undrained.
	mu     sync.RWMutex
	seq    atomic.Int64
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup

	statsMu  sync.Mutex
	batches  uint64
	writes   uint64
	failures uint64
}

// New returns a started Queue; Close stops it.
func New(cfg Config, exec Executor) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := &Queue{cfg: cfg, exec: exec, in: make(chan item, cfg.Capacity), stop: make(chan struct{})}
	q.seq.Store(time.Now().UnixNano())
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.run()
	}()
	return q, nil
}

// Write queues statements and returns their sequence number and a channel
// that receives the outcome of the batch they land in.
func (q *Queue) Write(ctx context.Context, stmts []command.Statement) (int64, <-chan error, error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return 0, nil, ErrClosed
	}
	it := item{seq: q.seq.Add(1), stmts: stmts, done: make(chan error, 1)}
	select {
	case q.in <- it:
		return it.seq, it.done, nil
	case <-q.stop:
		return 0, nil, ErrClosed
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

func (q *Queue) run() {
	var batch []item
	n := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		req := &command.Request{Transaction: q.cfg.Transaction}
		for _, it := range batch {
			req.Statements = append(req.Statements, it.stmts...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), q.cfg.ExecTimeout)
		err := q.exec(ctx, req)
		cancel()
		q.statsMu.Lock()
		q.batches++
		q.writes += uint64(len(batch))
		if err != nil {
			q.failures++
		}
		q.statsMu.Unlock()
		for _, it := range batch {
			it.done <- err
		}
		batch, n = batch[:0], 0
	}
	for {
		select {
		case it := <-q.in:
			if len(batch) == 0 {
				timer.Reset(q.cfg.Timeout)
			}
			batch = append(batch, it)
			n += len(it.stmts)
			if n >= q.cfg.BatchSize {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		case <-q.stop:
			// Drain what was accepted: every queued write is executed.
			for {
				select {
				case it := <-q.in:
					batch = append(batch, it)
				default:
					flush()
					return
				}
			}
		}
	}
}

// Stats returns counters for /status.
func (q *Queue) Stats() map[string]any {
	q.statsMu.Lock()
	defer q.statsMu.Unlock()
	return map[string]any{
		"capacity": q.cfg.Capacity, "batch_size": q.cfg.BatchSize, "timeout": q.cfg.Timeout.String(),
		"batches": q.batches, "writes": q.writes, "failed_batches": q.failures, "queued": len(q.in),
	}
}

// Close executes the writes already queued and stops the queue.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	q.wg.Wait()
	return nil
}
