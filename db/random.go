package db

import (
	"math/rand/v2"
	"sync"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// detRand replaces SQLite's random() and randomblob() on the writer
// connection with a generator seeded by each replicated command, so every
// replica draws the same numbers. Outside a command it is seeded from the
// operating system, like SQLite's own.
type detRand struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func (r *detRand) seed(s uint64) {
	r.mu.Lock()
	r.rng = rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
	r.mu.Unlock()
}

func (r *detRand) unseed() {
	r.mu.Lock()
	r.rng = nil
	r.mu.Unlock()
}

func (r *detRand) uint64() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rng == nil {
		return rand.Uint64()
	}
	return r.rng.Uint64()
}

// register is the writer's ConnectHook.
func (r *detRand) register(c *sqlite3.SQLiteConn) error {
	if err := c.RegisterFunc("random", func() int64 { return int64(r.uint64()) }, false); err != nil {
		return err
	}
	return c.RegisterFunc("randomblob", func(n int64) []byte {
		if n < 1 {
			n = 1
		}
		b := make([]byte, n)
		for i := 0; i < len(b); i += 8 {
			v := r.uint64()
			for j := i; j < len(b) && j < i+8; j++ {
				b[j] = byte(v)
				v >>= 8
			}
		}
		return b
	}, false)
}
