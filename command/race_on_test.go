//go:build race

package command

// raceEnabled: the race detector adds allocations that AllocsPerRun counts.
const raceEnabled = true
