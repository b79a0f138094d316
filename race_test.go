//go:build race

package tracker

// raceEnabled is true when the race detector is on. It makes sync.Pool
// drop items at random, so allocation counts mean nothing, and slows
// stress tests, which then run fewer rounds.
const raceEnabled = true
