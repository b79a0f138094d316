//go:build race

package tracker

// authRaceEnabled is true when the race detector is on: stress tests then run
// fewer rounds.
const authRaceEnabled = true
