//go:build race

package tracker

// raceEnabled is true when the race detector is on: stress tests then run
// fewer rounds.
const raceEnabled = true
