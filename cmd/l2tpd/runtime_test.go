package main

import (
	"runtime/debug"
	"testing"

	"github.com/l2tpd/l2tpd/cmd/internal/config"
)

// The runtime section wins over GOGC and GOMEMLIMIT, which win over the
// default; what is set is what the Go runtime then reports.
func TestApplyRuntime(t *testing.T) {
	gc0, lim0 := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(gc0); debug.SetMemoryLimit(lim0) })
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	current := func() (int, int64) {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p, debug.SetMemoryLimit(-1)
	}
	seventy := 70
	for _, c := range []struct {
		name   string
		r      config.Runtime
		env    map[string]string
		gc     int
		limit  int64
		source string
	}{
		{"default", config.Runtime{}, nil, config.DefaultGCPercent, noMemoryLimit, "default"},
		{"yaml", config.Runtime{GCPercent: &seventy, MemoryLimit: 3 << 30}, map[string]string{"GOGC": "200", "GOMEMLIMIT": "1GiB"}, 70, 3 << 30, "runtime.gc_percent"},
		{"environment", config.Runtime{}, map[string]string{"GOGC": "200", "GOMEMLIMIT": "1GiB"}, startGCPercent, startMemoryLimit, "GOGC"},
		{"back to default", config.Runtime{}, nil, config.DefaultGCPercent, noMemoryLimit, "default"},
	} {
		s := applyRuntime(c.r, env(c.env))
		gc, limit := current()
		if gc != c.gc || limit != c.limit || s.gcSource != c.source {
			t.Errorf("%s: GC percent %d, limit %d, from %q; want %d, %d, %q", c.name, gc, limit, s.gcSource, c.gc, c.limit, c.source)
		}
		if (limit == noMemoryLimit) != (s.memoryLimit == 0) {
			t.Errorf("%s: reported limit %d, set %d", c.name, s.memoryLimit, limit)
		}
	}
}
