package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control"
)

// Backend answers the admin commands; *control.Server is one.
type Backend interface {
	Tunnels(ctx context.Context) ([]control.TunnelInfo, error)
	Sessions(ctx context.Context) ([]control.SessionInfo, error)
	ClearTunnel(ctx context.Context, id uint32) error
	ClearSession(ctx context.Context, id uint32) error
	Stats(ctx context.Context) (control.Stats, error)
}

// Options tune a Server; the zero value is usable.
type Options struct {
	// SetLevel changes the log level and returns the previous one. When
	// nil, "log level" is refused.
	SetLevel func(level string) (previous string, err error)
	// Reload re-reads the configuration and applies it (or with dryRun
	// only reports the diff). When nil, "reload" is refused.
	Reload func(ctx context.Context, dryRun bool) (any, error)
	// ShowConfig returns the running configuration (secrets hidden).
	// When nil, "show config" is refused.
	ShowConfig func() any
	// Capture records a session's packets as a pcap. When nil,
	// "capture" is refused.
	Capture func(ctx context.Context, sessionID uint32, count int, d time.Duration) (Capture, error)
	// Log records the commands that change state. Nil discards.
	Log *zap.Logger
	// IdleTimeout is how long a connection may sit between requests
	// (default 60s).
	IdleTimeout time.Duration
	// CallTimeout bounds each Backend call (default 10s).
	CallTimeout time.Duration
	// MaxConns bounds concurrent connections (default 16); more are
	// answered with an error and closed.
	MaxConns int
}

// defaultCaptureSeconds bounds a capture that names no duration.
const defaultCaptureSeconds = 30

// Server serves the admin protocol: one JSON request per line, one JSON
// response per line.
type Server struct {
	b    Backend
	opts Options
	sem  chan struct{}
	// refusing bounds the goroutines answering refused connections.
	refusing chan struct{}

	mu     sync.Mutex
	closed bool // set at shutdown; later connections are closed at once
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewServer returns a server answering from b.
func NewServer(b Backend, opts Options) *Server {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 60 * time.Second
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 10 * time.Second
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 16
	}
	return &Server{
		b:        b,
		opts:     opts,
		sem:      make(chan struct{}, opts.MaxConns),
		refusing: make(chan struct{}, opts.MaxConns),
		conns:    map[net.Conn]struct{}{},
	}
}

// Listen creates the unix socket at path with the given permissions,
// creating its directory (0755) and replacing a stale socket left by a
// daemon that died. It refuses to replace a socket another process is
// still serving, or anything that is not a socket.
func Listen(path string, mode fs.FileMode) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("admin: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin: %s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin: removing stale socket: %w", err)
		}
	}
	// The umask makes the socket private from the moment it exists; a
	// chmod afterwards would leave a window where anyone could connect.
	old := syscall.Umask(int(0o777 &^ mode.Perm()))
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if err := os.Chmod(path, mode.Perm()); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

// Serve answers connections on ln until ctx is done, then closes ln and
// every open connection and waits for their goroutines. It returns nil
// after ctx is done, or the error that stopped Accept.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		ln.Close()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
	}()
	defer s.wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("admin: %w", err)
		}
		select {
		case s.sem <- struct{}{}:
		default:
			s.refuse(c)
			continue
		}
		s.track(c)
		go func() {
			defer func() {
				s.untrack(c)
				<-s.sem
			}()
			s.serveConn(ctx, c)
		}()
	}
}

// track registers a connection's goroutine so shutdown can close the
// connection and wait for it.
// A connection accepted while shutting down is closed before its
// goroutine starts reading, so it cannot hold Serve up.
func (s *Server) track(c net.Conn) {
	s.mu.Lock()
	if s.closed {
		c.Close()
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
	s.wg.Done()
}

// refuse answers a connection over the limit. The answer and drain run
// in their own goroutine, bounded by the same limit again; past that the
// connection is closed without a word.
func (s *Server) refuse(c net.Conn) {
	select {
	case s.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	s.track(c)
	go func() {
		defer func() {
			s.untrack(c)
			<-s.refusing
		}()
		c.SetWriteDeadline(time.Now().Add(time.Second))
		writeResponse(c, Response{Error: "too many admin connections"})
		drain(c)
	}()
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	r := bufio.NewReaderSize(c, MaxRequestLine)
	for {
		c.SetReadDeadline(time.Now().Add(s.opts.IdleTimeout))
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			writeResponse(c, Response{Error: fmt.Sprintf("request longer than %d bytes", MaxRequestLine)})
			drain(c)
			return
		}
		if err != nil && len(line) == 0 {
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return
			}
			continue
		}
		resp := s.Handle(ctx, line)
		c.SetWriteDeadline(time.Now().Add(s.opts.IdleTimeout))
		if writeResponse(c, resp) != nil || err != nil {
			return
		}
	}
}

// drain ends a connection whose request was refused: closing a unix
// socket with unread input resets it, which could discard the answer
// before the client reads it. The drain is bounded in bytes and time.
func drain(c net.Conn) {
	if uc, ok := c.(*net.UnixConn); ok {
		uc.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}

func writeResponse(c net.Conn, r Response) error {
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(Response{Error: "encoding response: " + err.Error()})
	}
	_, err = c.Write(append(b, '\n'))
	return err
}

// Handle answers one request line.
func (s *Server) Handle(ctx context.Context, line []byte) Response {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Response{Error: "bad request: " + err.Error()}
	}
	timeout := s.opts.CallTimeout
	if normalize(req.Cmd) == CmdCapture {
		// A capture runs for as long as it was asked to.
		timeout += time.Duration(max(req.Seconds, 0)) * time.Second
		if req.Seconds <= 0 {
			timeout += time.Duration(defaultCaptureSeconds) * time.Second
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	data, err := s.do(ctx, req)
	if err != nil {
		return Response{Error: err.Error()}
	}
	b, err := json.Marshal(data)
	if err != nil {
		return Response{Error: "encoding response: " + err.Error()}
	}
	return Response{OK: true, Data: b}
}

func (s *Server) do(ctx context.Context, req Request) (any, error) {
	switch cmd := normalize(req.Cmd); cmd {
	case CmdShowTunnels:
		ts, err := s.b.Tunnels(ctx)
		if ts == nil {
			ts = []control.TunnelInfo{}
		}
		return ts, err
	case CmdShowSessions:
		ss, err := s.b.Sessions(ctx)
		if ss == nil {
			ss = []control.SessionInfo{}
		}
		return ss, err
	case CmdShowStats:
		return s.b.Stats(ctx)
	case CmdShowConfig:
		if s.opts.ShowConfig == nil {
			return nil, errors.New("this daemon cannot show its configuration")
		}
		return s.opts.ShowConfig(), nil
	case CmdClearTunnel, CmdClearSession:
		kind, clear, field := "tunnel", s.b.ClearTunnel, "tunnel_id"
		if cmd == CmdClearSession {
			kind, clear, field = "session", s.b.ClearSession, "session_id"
		}
		if req.ID == 0 {
			return nil, fmt.Errorf("%s needs a non-zero id", cmd)
		}
		if r, ok := s.b.(interface {
			ClearSessionResult(context.Context, uint32, uint16) error
		}); ok && cmd == CmdClearSession && req.Result != 0 {
			clear = func(ctx context.Context, id uint32) error { return r.ClearSessionResult(ctx, id, req.Result) }
		}
		if err := clear(ctx, req.ID); err != nil {
			if errors.Is(err, control.ErrNotFound) {
				return nil, fmt.Errorf("no %s with id %d", kind, req.ID)
			}
			return nil, err
		}
		s.opts.Log.Info("admin: cleared "+kind, zap.Uint32(field, req.ID))
		return Cleared{Cleared: kind, ID: req.ID}, nil
	case CmdCapture:
		if s.opts.Capture == nil {
			return nil, errors.New("this daemon cannot capture")
		}
		if req.ID == 0 {
			return nil, errors.New("capture needs a session id")
		}
		secs := req.Seconds
		if secs <= 0 {
			secs = defaultCaptureSeconds
		}
		c, err := s.opts.Capture(ctx, req.ID, req.Count, time.Duration(secs)*time.Second)
		if err != nil {
			if errors.Is(err, control.ErrNotFound) {
				return nil, fmt.Errorf("no session with id %d", req.ID)
			}
			return nil, err
		}
		s.opts.Log.Info("admin: captured session", zap.Uint32("session_id", req.ID), zap.Int("packets", c.Packets))
		return c, nil
	case CmdReload:
		if s.opts.Reload == nil {
			return nil, errors.New("this daemon cannot reload its configuration")
		}
		d, err := s.opts.Reload(ctx, req.DryRun)
		if err != nil {
			return nil, err
		}
		if !req.DryRun {
			s.opts.Log.Info("admin: configuration reloaded")
		}
		return d, nil
	case CmdLogLevel:
		if s.opts.SetLevel == nil {
			return nil, errors.New("the log level cannot be changed")
		}
		if req.Level == "" {
			return nil, errors.New("log level needs a level (debug, info, warn or error)")
		}
		prev, err := s.opts.SetLevel(req.Level)
		if err != nil {
			return nil, err
		}
		s.opts.Log.Info("admin: log level changed", zap.String("level", req.Level), zap.String("previous", prev))
		return LevelChange{Level: req.Level, Previous: prev}, nil
	case "":
		return nil, errors.New("missing cmd")
	default:
		return nil, fmt.Errorf("unknown command %q (want show tunnels|sessions|stats, clear tunnel|session, log level)", req.Cmd)
	}
}
