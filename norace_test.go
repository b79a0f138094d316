//go:build !race

package tracker

// raceEnabled is true when the race detector is on; see race_test.go.
const raceEnabled = false
