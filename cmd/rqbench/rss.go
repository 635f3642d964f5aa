package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rssSampler reads the server's /proc/PID/status every 100 ms and keeps the
// largest VmRSS seen, over the whole run and since the current scenario
// began, and the kernel's own high-water mark, VmHWM.
type rssSampler struct {
	pid    int
	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex
	maxKB     int64 // largest VmRSS over the run
	anonKB    int64 // RssAnon at that sample
	fileKB    int64 // RssFile at that sample
	scenKB    int64 // largest VmRSS since beginScenario
	hwmKB     int64 // last VmHWM read
	readError error
}

func startRSS(ctx context.Context, pid int) *rssSampler {
	s := &rssSampler{pid: pid, done: make(chan struct{})}
	if pid <= 0 {
		close(s.done)
		return s
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

// sample reads VmRSS and VmHWM once.
func (s *rssSampler) sample() {
	m, err := readRSS(s.pid)
	rss, hwm := m.rss, m.hwm
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.readError = err
		return
	}
	if rss > s.maxKB {
		s.maxKB, s.anonKB, s.fileKB = rss, m.anon, m.file
	}
	s.scenKB = max(s.scenKB, rss)
	s.hwmKB = max(s.hwmKB, hwm)
}

func (s *rssSampler) stop() {
	if s.cancel != nil {
		s.sample()
		s.cancel()
	}
	<-s.done
}

func (s *rssSampler) beginScenario() {
	s.mu.Lock()
	s.scenKB = 0
	s.mu.Unlock()
}

// scenarioPeakMB is the largest VmRSS sampled since beginScenario, in MB
// (2^20 bytes).
func (s *rssSampler) scenarioPeakMB() float64 {
	if s.pid <= 0 {
		return 0
	}
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(s.scenKB) / 1024
}

// peakMB returns VmHWM and the largest sampled VmRSS, in MB.
func (s *rssSampler) peakMB() (hwm, rssMax float64, err error) {
	if s.pid <= 0 {
		return 0, 0, fmt.Errorf("no pid: pass -pid to sample the server's memory")
	}
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(s.hwmKB) / 1024, float64(s.maxKB) / 1024, s.readError
}

// peakSplitMB returns RssAnon (heap, stacks) and RssFile (mapped files:
// the binary, bbolt's map of raft.db) at the largest VmRSS sample, in MB.
func (s *rssSampler) peakSplitMB() (anon, file float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(s.anonKB) / 1024, float64(s.fileKB) / 1024
}

// memStatus is the part of /proc/PID/status the sampler reads, in kB.
type memStatus struct{ rss, hwm, anon, file int64 }

// readRSS returns VmRSS, VmHWM, RssAnon and RssFile of pid in kB.
func readRSS(pid int) (m memStatus, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(l, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(k) {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.hwm
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(v)), "kB")), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/%d/status: %s: %w", pid, l, err)
		}
		*dst = n
	}
	return m, nil
}

// askPID asks the node at base for its process id (/status?key=os.pid);
// 0 if it cannot say.
func askPID(base string) int {
	b, err := get(base + "/status?key=os.pid")
	if err != nil {
		fmt.Fprintf(os.Stderr, "rqbench: asking %s for its pid: %v (pass -pid to sample its memory)\n", base, err)
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "rqbench: %s/status?key=os.pid answered %q (pass -pid to sample its memory)\n", base, truncate(b, 100))
		return 0
	}
	return pid
}
