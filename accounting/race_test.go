//go:build race

package accounting_test

// raceEnabled is true when the race detector is on: it makes allocation
// counts meaningless.
const raceEnabled = true
