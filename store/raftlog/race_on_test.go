//go:build race

package raftlog

// raceEnabled: the race detector adds allocations that AllocsPerRun counts.
const raceEnabled = true
