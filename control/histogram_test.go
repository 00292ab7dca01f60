package control

import (
	"testing"
	"time"
)

func TestHistogram(t *testing.T) {
	var h histogram
	for _, d := range []time.Duration{3 * time.Millisecond, 40 * time.Millisecond, 40 * time.Millisecond, time.Minute} {
		h.observe(d)
	}
	s := h.snapshot()
	if s.Count != 4 || s.Counts[0] != 1 || s.Counts[3] != 3 || s.Counts[len(s.Counts)-1] != 3 {
		t.Fatalf("%+v", s)
	}
	if s.Sum < 60.08 || s.Sum > 60.09 {
		t.Fatalf("sum %v", s.Sum)
	}
}
