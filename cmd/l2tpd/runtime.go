package main

import (
	"runtime/debug"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/cmd/internal/config"
)

// The collector's target and memory limit as the Go runtime set them at
// start from GOGC and GOMEMLIMIT (100 and no limit without them).
var startGCPercent, startMemoryLimit = func() (int, int64) {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p, debug.SetMemoryLimit(-1)
}()

// runtimeSettings is what applyRuntime set, for the log.
type runtimeSettings struct {
	gcPercent   int
	gcSource    string
	memoryLimit int64 // 0: none
}

// applyRuntime sets the collector's target and the soft memory limit:
// the runtime section's values, else GOGC and GOMEMLIMIT, else
// DefaultGCPercent and no limit. It runs at start and after every
// accepted reload; getenv is os.Getenv.
func applyRuntime(r config.Runtime, getenv func(string) string) runtimeSettings {
	var s runtimeSettings
	switch {
	case r.GCPercent != nil:
		s.gcPercent, s.gcSource = *r.GCPercent, "runtime.gc_percent"
	case getenv("GOGC") != "":
		s.gcPercent, s.gcSource = startGCPercent, "GOGC"
	default:
		s.gcPercent, s.gcSource = config.DefaultGCPercent, "default"
	}
	debug.SetGCPercent(s.gcPercent)
	limit := noMemoryLimit
	switch {
	case r.MemoryLimit > 0:
		limit = r.MemoryLimit
	case getenv("GOMEMLIMIT") != "":
		limit = startMemoryLimit
	}
	debug.SetMemoryLimit(limit)
	if limit != noMemoryLimit {
		s.memoryLimit = limit
	}
	return s
}

// noMemoryLimit is the runtime's "no limit" (math.MaxInt64).
const noMemoryLimit = int64(^uint64(0) >> 1)

func (s runtimeSettings) fields() []zap.Field {
	f := []zap.Field{zap.Int("gc_percent", s.gcPercent), zap.String("gc_percent_from", s.gcSource)}
	if s.memoryLimit > 0 {
		f = append(f, zap.Int64("memory_limit_bytes", s.memoryLimit))
	}
	return f
}
