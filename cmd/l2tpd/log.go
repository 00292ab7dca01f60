package main

import (
	"fmt"
	"io"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/l2tpd/l2tpd/cmd/internal/config"
)

// newLogger builds the daemon's logger from the log section. The level is
// atomic so l2tpctl can change it while the daemon runs.
func newLogger(c config.Log, w io.Writer) (*zap.Logger, zap.AtomicLevel, error) {
	level, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("log level: %w", err)
	}
	atom := zap.NewAtomicLevelAt(level)
	ec := zapcore.EncoderConfig{
		TimeKey:        "ts",
		LevelKey:       "level",
		NameKey:        "logger",
		MessageKey:     "msg",
		StacktraceKey:  "stacktrace",
		LineEnding:     zapcore.DefaultLineEnding,
		EncodeLevel:    zapcore.LowercaseLevelEncoder,
		EncodeTime:     zapcore.ISO8601TimeEncoder,
		EncodeDuration: zapcore.StringDurationEncoder,
		EncodeName:     zapcore.FullNameEncoder,
	}
	var enc zapcore.Encoder
	switch c.Format {
	case "json":
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, zap.AtomicLevel{}, fmt.Errorf("log format %q", c.Format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), atom)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w)))), atom, nil
}

// levelSetter returns the admin socket's "log level" callback.
func levelSetter(atom zap.AtomicLevel) func(string) (string, error) {
	return func(name string) (string, error) {
		switch name {
		case "debug", "info", "warn", "error":
		default:
			return "", fmt.Errorf("invalid log level %q (want debug, info, warn or error)", name)
		}
		l, err := zapcore.ParseLevel(name)
		if err != nil {
			return "", err
		}
		prev := atom.Level().String()
		atom.SetLevel(l)
		return prev, nil
	}
}
