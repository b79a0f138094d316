package setting

import (
	"testing"
	"time"
)

func TestValue(t *testing.T) {
	if got := Value(0, 128); got != 128 {
		t.Errorf("Value(0, 128) = %d; want the default", got)
	}
	if got := Value(-1, 128); got != 0 {
		t.Errorf("Value(-1, 128) = %d; want 0 (off)", got)
	}
	if got := Value(7, 128); got != 7 {
		t.Errorf("Value(7, 128) = %d; want 7", got)
	}
	if got := Value(0.0, 2.5); got != 2.5 {
		t.Errorf("Value(0.0, 2.5) = %v; want the default", got)
	}
	if got := Value(-time.Second, time.Minute); got != 0 {
		t.Errorf("Value(-1s, 1m) = %v; want 0", got)
	}
}
