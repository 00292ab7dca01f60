package control

import (
	"sync"
	"time"
)

// setupBounds are the histogram buckets of setup latencies, in seconds.
var setupBounds = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// histogram counts durations into setupBounds; shards observe, the
// admin and metrics paths read.
type histogram struct {
	mu     sync.Mutex
	counts [13]uint64 // per bucket, the last beyond the largest bound
	count  uint64
	sum    float64
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(setupBounds) && s > setupBounds[i] {
		i++
	}
	h.mu.Lock()
	h.counts[i]++
	h.count++
	h.sum += s
	h.mu.Unlock()
}

// snapshot returns the cumulative form.
func (h *histogram) snapshot() Histogram {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := Histogram{Bounds: setupBounds, Counts: make([]uint64, len(setupBounds)), Count: h.count, Sum: h.sum}
	var c uint64
	for i := range setupBounds {
		c += h.counts[i]
		out.Counts[i] = c
	}
	return out
}
