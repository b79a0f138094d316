// Package setting holds the rule every numeric setting of the project
// follows: zero means the default, and a negative value (Disabled) turns
// off what the setting sets.
package setting

import "time"

// Value returns what the setting v means: def when v is zero, zero (off)
// when v is negative, and v itself otherwise.
func Value[T int | float64 | time.Duration](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}
