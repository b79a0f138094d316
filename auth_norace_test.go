//go:build !race

package tracker

const authRaceEnabled = false
