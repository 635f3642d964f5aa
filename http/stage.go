package http

// stage holds a large request body while it arrives. Where it can (Linux)
// it is an anonymous mapping of the most the body may hold, outside the
// Go heap, of which only the pages written become resident; free unmaps
// it, so a body that is refused (too large, too slow, cut off) gives its
// memory back to the system at once instead of leaving it to the garbage
// collector and the runtime's scavenger, which return it over seconds.
// Otherwise it is a heap buffer that grows as the body arrives.
type stage struct {
	buf    []byte
	n      int // bytes of buf used
	size   int // the most it holds
	mapped bool
	live   bool // not yet freed
}

func newStage(size int) *stage {
	liveStages.Add(1)
	if b, err := mapAnon(size); err == nil {
		return &stage{buf: b, size: size, mapped: true, live: true}
	}
	return &stage{buf: make([]byte, min(size, exactBodyMax)), size: size, live: true}
}

// space returns where the next bytes go; empty once size bytes arrived.
func (s *stage) space() []byte {
	if s.n == len(s.buf) && len(s.buf) < s.size {
		b := make([]byte, min(2*len(s.buf), s.size))
		copy(b, s.buf[:s.n])
		s.buf = b
	}
	return s.buf[s.n:]
}

func (s *stage) advance(k int) { s.n += k }

func (s *stage) len() int { return s.n }

// take returns the body in memory of the Go heap (parsed values share it,
// so it must be memory the garbage collector tracks): a mapped stage is
// copied into one exact allocation.
func (s *stage) take() []byte {
	if s.mapped {
		return append(make([]byte, 0, s.n), s.buf[:s.n]...)
	}
	b := s.buf[:s.n:s.n]
	s.buf = nil
	return b
}

func (s *stage) free() {
	if !s.live {
		return
	}
	s.live = false
	liveStages.Add(-1)
	if s.mapped {
		unmap(s.buf)
	}
	s.buf = nil
}
