package http

import (
	"context"
	"sync"
)

// byteBudget bounds the bytes of request bodies that are being read or
// served at once, across all connections: a weighted semaphore whose
// waiters are served in arrival order (a large body waiting at the head
// is not overtaken by smaller ones for ever).
type byteBudget struct {
	mu      sync.Mutex
	size    int64
	used    int64
	waiters []*budgetWaiter
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once n bytes are granted
}

func newByteBudget(size int64) *byteBudget {
	return &byteBudget{size: size}
}

// acquire takes n bytes of the budget, waiting until they are free or ctx
// ends. n must not exceed the budget's size. A nil budget has room for
// everything.
func (b *byteBudget) acquire(ctx context.Context, n int64) error {
	if b == nil || n <= 0 {
		return nil
	}
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready:
		// Granted while ctx ended: give the bytes back.
		b.used -= n
	default:
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
	}
	// Whoever waited behind w may fit now.
	b.grant()
	return ctx.Err()
}

// release gives back n bytes taken with acquire.
func (b *byteBudget) release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.grant()
}

// grant hands free bytes to waiters in order. Caller holds mu.
func (b *byteBudget) grant() {
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		if b.used+w.n > b.size {
			return
		}
		b.used += w.n
		close(w.ready)
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
	}
}

// inUse returns the bytes held and the budget's size.
func (b *byteBudget) inUse() (used, size int64) {
	if b == nil {
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.size
}
