package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTick is the unit of /proc/PID/stat's CPU times (USER_HZ, 100 on
// Linux).
const clockTick = 10 * time.Millisecond

// procCPU returns the user+system CPU time pid has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count fields after its
	// closing parenthesis. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	var total int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		total += n
	}
	return time.Duration(total) * clockTick, nil
}

// selfCPU returns the CPU time this process (the load generator) has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures the CPU a scenario costs the servers (pids; pid 0 is
// unknown) and the load generator.
type cpuMeter struct {
	pids     []int
	srv, cli time.Duration
	srvOK    bool
}

func startCPU(pids ...int) cpuMeter {
	m := cpuMeter{pids: pids, cli: selfCPU()}
	m.srv, m.srvOK = serversCPU(pids)
	return m
}

// serversCPU sums the CPU time of pids; false if any is unknown.
func serversCPU(pids []int) (time.Duration, bool) {
	var total time.Duration
	for _, pid := range pids {
		if pid <= 0 {
			return 0, false
		}
		t, err := procCPU(pid)
		if err != nil {
			return 0, false
		}
		total += t
	}
	return total, len(pids) > 0
}

// stop records the CPU used since startCPU in r.
func (m cpuMeter) stop(r *result) {
	r.cliCPU = selfCPU() - m.cli
	if now, ok := serversCPU(m.pids); ok && m.srvOK {
		r.srvCPU = now - m.srv
	}
}

// cpuPerReq formats CPU time per successful request in µs ("-" unknown).
func cpuPerReq(cpu time.Duration, r result) string {
	n := r.reqs - r.errs
	if cpu <= 0 || n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", float64(cpu.Microseconds())/float64(n))
}
