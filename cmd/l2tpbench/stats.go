package main

import (
	"math"
	"sort"
	"sync"
	"time"
)

// Phases of a subscriber's setup, each timed from the end of the one
// before (RFC 2661 §5: tunnel, then call; RFC 1661 §3.2: LCP, then
// authentication, then the NCPs).
const (
	phaseTunnel = iota // Dial to tunnel established (0 when reused)
	phaseCall          // tunnel up to ICCN sent (ICRQ → ICRP → ICCN)
	phaseLCP           // ICCN to LCP Opened
	phaseAuth          // LCP Opened to authentication done
	phaseIPCP          // authentication done to IPCP (and IPv6CP) Opened
	phaseTotal         // Dial to online
	numPhases
)

var phaseNames = [numPhases]string{"tunnel", "call", "lcp", "auth", "ipcp", "total"}

// Percentiles summarise one phase's latencies in milliseconds.
type Percentiles struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// latencies keeps samples per phase; safe for the shard goroutines.
type latencies struct {
	mu sync.Mutex
	s  [numPhases][]float32 // milliseconds
}

func (l *latencies) add(p int, d time.Duration) {
	if d < 0 {
		d = 0
	}
	l.mu.Lock()
	l.s[p] = append(l.s[p], float32(d.Seconds()*1000))
	l.mu.Unlock()
}

func (l *latencies) summary() map[string]Percentiles {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]Percentiles, numPhases)
	for p := range l.s {
		m[phaseNames[p]] = percentiles(l.s[p])
	}
	return m
}

func percentiles(s []float32) Percentiles {
	if len(s) == 0 {
		return Percentiles{}
	}
	c := append([]float32(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(c)))) - 1
		if i < 0 {
			i = 0
		}
		return round3(float64(c[i]))
	}
	return Percentiles{Count: len(c), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: round3(float64(c[len(c)-1]))}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
