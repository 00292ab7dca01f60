package control

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// Drops are counted per packet and summed up in the log once per
// interval: one line with what grew, none when nothing did.
func TestDropLogSummarises(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	s := &Server{log: zap.New(core)}
	t0 := time.Unix(1700000000, 0)
	s.logDrops(t0) // the baseline
	for range 3 {
		s.drops.inc(dropMalformed)
	}
	s.refused.inc(refuseSCCRQRatePerPeer)
	s.logDrops(t0.Add(dropLogInterval / 2))
	if n := logs.Len(); n != 0 {
		t.Fatalf("%d lines before the interval ended", n)
	}
	s.logDrops(t0.Add(dropLogInterval))
	lines := logs.TakeAll()
	if len(lines) != 1 {
		t.Fatalf("%d lines after the interval, want 1", len(lines))
	}
	got := lines[0].ContextMap()
	want := map[string]any{
		dropNames[dropMalformed]:                          uint64(3),
		"refused_" + refusalNames[refuseSCCRQRatePerPeer]: uint64(1),
		"interval": dropLogInterval,
	}
	if len(got) != len(want) {
		t.Fatalf("fields %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("field %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
	// Nothing new: no line.
	s.logDrops(t0.Add(2 * dropLogInterval))
	if n := logs.Len(); n != 0 {
		t.Fatalf("%d lines with nothing dropped", n)
	}
	// Only what grew since the last line is in the next one.
	s.drops.inc(dropMalformed)
	s.logDrops(t0.Add(3 * dropLogInterval))
	lines = logs.TakeAll()
	if len(lines) != 1 || len(lines[0].ContextMap()) != 2 || lines[0].ContextMap()[dropNames[dropMalformed]] != uint64(1) {
		t.Fatalf("second summary %v", lines)
	}
}
