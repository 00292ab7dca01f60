package control

import (
	"sort"
	"time"

	"go.uber.org/zap"
)

// dropLogInterval is how often the drops and refusals of the last
// interval are summed up in one log line, so that a network engineer
// reading the log sees that packets are being dropped, and why, without
// a log line per packet.
const dropLogInterval = 10 * time.Second

// dropLog remembers what the last summary counted. It is used only from
// the maintenance goroutine.
type dropLog struct {
	at   time.Time
	last map[string]uint64
}

// dropCounts is every drop and refusal counter by reason: the control
// plane's, the datapath's and admission control's.
func (s *Server) dropCounts() map[string]uint64 {
	m := s.drops.snapshot()
	if s.eng != nil {
		s.datapathStats(m, nil)
	}
	for k, v := range s.refused.snapshot() {
		m["refused_"+k] = v
	}
	return m
}

// logDrops writes one Warn line with the counts that grew since the
// previous line, at most once per dropLogInterval, and nothing when
// none grew.
func (s *Server) logDrops(now time.Time) {
	if s.dropLog.last == nil {
		s.dropLog = dropLog{at: now, last: s.dropCounts()}
		return
	}
	if now.Sub(s.dropLog.at) < dropLogInterval {
		return
	}
	cur := s.dropCounts()
	if f := dropDelta(s.dropLog.last, cur); len(f) > 0 {
		s.log.Warn("packets dropped or refused in the last interval (l2tpctl show stats has the totals)",
			append(f, zap.Duration("interval", now.Sub(s.dropLog.at)))...)
	}
	s.dropLog = dropLog{at: now, last: cur}
}

// dropDelta gives, sorted by reason, one field per counter that grew
// from prev to cur, with how much it grew.
func dropDelta(prev, cur map[string]uint64) []zap.Field {
	keys := make([]string, 0, len(cur))
	for k, v := range cur {
		if v > prev[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	f := make([]zap.Field, len(keys))
	for i, k := range keys {
		f[i] = zap.Uint64(k, cur[k]-prev[k])
	}
	return f
}
