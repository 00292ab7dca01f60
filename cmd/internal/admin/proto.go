package admin

import (
	"encoding/json"
	"errors"
	"strings"
)

// Commands the admin socket understands.
const (
	CmdShowTunnels  = "show tunnels"
	CmdShowSessions = "show sessions"
	CmdShowStats    = "show stats"
	CmdClearTunnel  = "clear tunnel"
	CmdClearSession = "clear session"
	CmdLogLevel     = "log level"
	CmdReload       = "reload"
	CmdCapture      = "capture"
	CmdShowConfig   = "show config"
)

// Request is one line sent to the daemon.
type Request struct {
	Cmd string `json:"cmd"`
	// ID names the tunnel or session for the clear commands.
	ID uint32 `json:"id,omitempty"`
	// Level is the new log level for "log level".
	Level string `json:"level,omitempty"`
	// DryRun makes "reload" report its diff without applying it.
	DryRun bool `json:"dry_run,omitempty"`
	// Result is the CDN result code of "clear session" (0: 3,
	// administrative).
	Result uint16 `json:"result,omitempty"`
	// Count and Seconds bound a "capture" of session ID.
	Count   int `json:"count,omitempty"`
	Seconds int `json:"seconds,omitempty"`
}

// Capture is the answer to "capture": the session's packets as a pcap.
type Capture struct {
	Packets int    `json:"packets"`
	Pcap    []byte `json:"pcap"`
}

// Response is one line the daemon answers with.
type Response struct {
	OK    bool            `json:"ok"`
	Data  json.RawMessage `json:"data,omitempty"`
	Error string          `json:"error,omitempty"`
}

// Cleared is the data of a successful clear command.
type Cleared struct {
	Cleared string `json:"cleared"` // "tunnel" or "session"
	ID      uint32 `json:"id"`
}

// LevelChange is the data of a successful "log level" command.
type LevelChange struct {
	Level    string `json:"level"`
	Previous string `json:"previous"`
}

// MaxLine bounds a request or response line. Responses listing many
// sessions are large, so the client allows far more than the server.
const (
	MaxRequestLine  = 4 << 10
	MaxResponseLine = 256 << 20
)

// ErrDaemon wraps an error the daemon answered with, as opposed to a
// failure to reach it.
var ErrDaemon = errors.New("l2tpd")

// normalize folds runs of spaces so "show  tunnels" is "show tunnels".
func normalize(cmd string) string {
	return strings.Join(strings.Fields(strings.ToLower(cmd)), " ")
}
