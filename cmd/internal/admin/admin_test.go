package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/cmd/internal/admin/admintest"
	"github.com/l2tpd/l2tpd/control"
)

var (
	since    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tunnels  = []control.TunnelInfo{{TunnelID: 5, PeerTunnelID: 1328, Peer: "198.18.0.2:1701", PeerHostName: "LAC1", Local: "198.18.0.3:1701", Role: "lns", Version: 2, State: "established", Sessions: 2, Since: since, UptimeSeconds: 61}}
	sessions = []control.SessionInfo{
		{SessionID: 7, PeerSessionID: 65497, TunnelID: 5, PeerTunnelID: 1328, Peer: "198.18.0.2:1701", Version: 2, State: "established", CallSerial: 1, Since: since},
		{SessionID: 8, PeerSessionID: 65498, TunnelID: 5, PeerTunnelID: 1328, Peer: "198.18.0.2:1701", Version: 2, State: "wait-connect", CallSerial: 2, Since: since},
	}
	stats = control.Stats{Drops: map[string]uint64{"unknown_tunnel": 3}, Counters: map[string]uint64{"rx_control": 42}}
)

// start serves a fake backend on a fresh socket and returns its path.
// stop cancels the server and returns what Serve returned; it may be
// called more than once.
func start(t *testing.T, b Backend, opts Options) (path string, stop func() error) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "run", "admin.sock")
	ln, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelCtx := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- NewServer(b, opts).Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() {
			cancelCtx()
			select {
			case serveErr = <-errc:
			case <-time.After(5 * time.Second):
				serveErr = errors.New("Serve did not return within 5s of cancel")
			}
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path, stop
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestShowCommands(t *testing.T) {
	path, _ := start(t, admintest.New(tunnels, sessions, stats), Options{})
	c := dial(t, path)

	// Several requests on one connection.
	data, err := c.Do(Request{Cmd: "show tunnels"})
	if err != nil {
		t.Fatal(err)
	}
	var ts []control.TunnelInfo
	if err := json.Unmarshal(data, &ts); err != nil || !reflect.DeepEqual(ts, tunnels) {
		t.Errorf("show tunnels = %s (%v)", data, err)
	}
	data, err = c.Do(Request{Cmd: "show  sessions"})
	if err != nil {
		t.Fatal(err)
	}
	var ss []control.SessionInfo
	if err := json.Unmarshal(data, &ss); err != nil || !reflect.DeepEqual(ss, sessions) {
		t.Errorf("show sessions = %s (%v)", data, err)
	}
	data, err = c.Do(Request{Cmd: "Show Stats"})
	if err != nil {
		t.Fatal(err)
	}
	var st control.Stats
	if err := json.Unmarshal(data, &st); err != nil || st.Tunnels != 1 || st.Sessions != 2 || st.Drops["unknown_tunnel"] != 3 || st.Counters["rx_control"] != 42 {
		t.Errorf("show stats = %s (%v)", data, err)
	}
}

// An empty table is an empty JSON list, not null, so scripts can iterate.
func TestEmptyListsAreArrays(t *testing.T) {
	path, _ := start(t, admintest.New(nil, nil, control.Stats{}), Options{})
	c := dial(t, path)
	for _, cmd := range []string{CmdShowTunnels, CmdShowSessions} {
		data, err := c.Do(Request{Cmd: cmd})
		if err != nil || string(data) != "[]" {
			t.Errorf("%s = %s, %v; want []", cmd, data, err)
		}
	}
}

func TestClear(t *testing.T) {
	fake := admintest.New(tunnels, sessions, stats)
	path, _ := start(t, fake, Options{})
	c := dial(t, path)

	data, err := c.Do(Request{Cmd: CmdClearSession, ID: 8})
	if err != nil || string(data) != `{"cleared":"session","id":8}` {
		t.Errorf("clear session 8 = %s, %v", data, err)
	}
	if _, err := c.Do(Request{Cmd: CmdClearSession, ID: 8}); !errors.Is(err, ErrDaemon) || !strings.Contains(err.Error(), "no session with id 8") {
		t.Errorf("clearing it again: %v", err)
	}
	if _, err := c.Do(Request{Cmd: CmdClearTunnel, ID: 6}); !errors.Is(err, ErrDaemon) || !strings.Contains(err.Error(), "no tunnel with id 6") {
		t.Errorf("clear unknown tunnel: %v", err)
	}
	if _, err := c.Do(Request{Cmd: CmdClearTunnel}); err == nil || !strings.Contains(err.Error(), "non-zero id") {
		t.Errorf("clear tunnel without id: %v", err)
	}
	if _, err := c.Do(Request{Cmd: CmdClearTunnel, ID: 5}); err != nil {
		t.Fatal(err)
	}
	if ts, _ := fake.Tunnels(context.Background()); len(ts) != 0 {
		t.Errorf("tunnel 5 still there: %+v", ts)
	}
}

func TestLogLevel(t *testing.T) {
	level := "info"
	var mu sync.Mutex
	set := func(l string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if l != "debug" && l != "info" && l != "warn" && l != "error" {
			return "", errors.New("unknown level " + l)
		}
		prev := level
		level = l
		return prev, nil
	}
	path, _ := start(t, admintest.New(nil, nil, control.Stats{}), Options{SetLevel: set})
	c := dial(t, path)
	data, err := c.Do(Request{Cmd: CmdLogLevel, Level: "debug"})
	if err != nil || string(data) != `{"level":"debug","previous":"info"}` {
		t.Errorf("log level debug = %s, %v", data, err)
	}
	if _, err := c.Do(Request{Cmd: CmdLogLevel, Level: "chatty"}); err == nil || !strings.Contains(err.Error(), "unknown level chatty") {
		t.Errorf("bad level: %v", err)
	}
	if _, err := c.Do(Request{Cmd: CmdLogLevel}); err == nil {
		t.Error("log level without a level accepted")
	}
	mu.Lock()
	defer mu.Unlock()
	if level != "debug" {
		t.Errorf("level = %s", level)
	}
}

func TestLogLevelWithoutCallback(t *testing.T) {
	path, _ := start(t, admintest.New(nil, nil, control.Stats{}), Options{})
	if _, err := dial(t, path).Do(Request{Cmd: CmdLogLevel, Level: "debug"}); err == nil {
		t.Error("log level accepted without a way to set it")
	}
}

func TestBackendErrorPassedOn(t *testing.T) {
	fake := admintest.New(tunnels, nil, control.Stats{})
	fake.FailWith(errors.New("control: shard 1 is not answering"))
	path, _ := start(t, fake, Options{})
	_, err := dial(t, path).Do(Request{Cmd: CmdShowTunnels})
	if !errors.Is(err, ErrDaemon) || !strings.Contains(err.Error(), "shard 1 is not answering") {
		t.Errorf("got %v", err)
	}
}

// rawExchange writes lines and reads answers until the server closes.
func rawExchange(t *testing.T, path, send string) []Response {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(send)); err != nil {
		t.Fatal(err)
	}
	c.(*net.UnixConn).CloseWrite()
	var out []Response
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var r Response
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("answer %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMalformedRequests(t *testing.T) {
	path, _ := start(t, admintest.New(tunnels, sessions, stats), Options{})
	resps := rawExchange(t, path, strings.Join([]string{
		`not json`,
		`{"cmd":"show tunnels","verbose":true}`,
		`{"cmd":"reboot"}`,
		`{}`,
		``,
		`{"cmd":"clear tunnel","id":-1}`,
		`{"cmd":"show stats"}`, // no newline at the end: still answered
	}, "\n"))
	want := []string{"bad request", "unknown field", `unknown command "reboot"`, "missing cmd", "bad request", ""}
	if len(resps) != len(want) {
		t.Fatalf("got %d answers, want %d: %+v", len(resps), len(want), resps)
	}
	for i, w := range want {
		if w == "" {
			if !resps[i].OK {
				t.Errorf("answer %d: %+v, want ok", i, resps[i])
			}
			continue
		}
		if resps[i].OK || !strings.Contains(resps[i].Error, w) {
			t.Errorf("answer %d = %+v, want error containing %q", i, resps[i], w)
		}
	}
}

// A request longer than the cap is refused and the connection closed,
// so a client cannot make the daemon buffer without bound.
func TestRequestSizeCap(t *testing.T) {
	path, _ := start(t, admintest.New(nil, nil, control.Stats{}), Options{})
	long := `{"cmd":"show tunnels","level":"` + strings.Repeat("x", MaxRequestLine) + `"}` + "\n" + `{"cmd":"show tunnels"}` + "\n"
	resps := rawExchange(t, path, long)
	if len(resps) != 1 || resps[0].OK || !strings.Contains(resps[0].Error, "longer than") {
		t.Errorf("got %+v", resps)
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	path, _ := start(t, admintest.New(nil, nil, control.Stats{}), Options{IdleTimeout: 20 * time.Millisecond})
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("idle connection: read %d, %v; want EOF from the server", n, err)
	}
}

func TestConnectionLimit(t *testing.T) {
	path, _ := start(t, admintest.New(nil, nil, control.Stats{}), Options{MaxConns: 1})
	first := dial(t, path)
	if _, err := first.Do(Request{Cmd: CmdShowTunnels}); err != nil {
		t.Fatal(err)
	}
	second := dial(t, path)
	if _, err := second.Do(Request{Cmd: CmdShowTunnels}); err == nil || !strings.Contains(err.Error(), "too many") {
		t.Errorf("second connection: %v", err)
	}
	first.Close()
	// The slot is freed once the first connection's goroutine ends.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := Dial(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Do(Request{Cmd: CmdShowTunnels})
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot never freed: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

// Cancelling the context closes the listener and open connections, and
// Serve returns only after their goroutines are gone.
func TestServeStopsOnCancel(t *testing.T) {
	path, stop := start(t, admintest.New(nil, nil, control.Stats{}), Options{})
	c := dial(t, path)
	if _, err := c.Do(Request{Cmd: CmdShowTunnels}); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(Request{Cmd: CmdShowTunnels}); err == nil {
		t.Error("connection still served after cancel")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestListenPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	for _, mode := range []fs.FileMode{0o600, 0o660} {
		path := filepath.Join(dir, "admin.sock")
		ln, err := Listen(path, mode)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != mode {
			t.Errorf("socket mode %v, want socket %v", fi.Mode(), mode)
		}
		di, err := os.Stat(dir)
		if err != nil || di.Mode().Perm() != 0o755 {
			t.Errorf("parent dir mode %v, %v; want 0755", di.Mode(), err)
		}
		ln.Close()
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	// A daemon that died leaves its socket file behind.
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	ln, err := Listen(path, 0o600)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
}

func TestListenRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	live, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	go func() {
		for {
			c, err := live.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if ln, err := Listen(path, 0o600); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Listen: %v", err)
		if ln != nil {
			ln.Close()
		}
	}
}

func TestListenRefusesRegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.sock")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path, 0o600); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Error("regular file replaced")
	}
}

func TestDialMissingSocket(t *testing.T) {
	_, err := Dial(filepath.Join(t.TempDir(), "none.sock"))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
}

// Any request line gets exactly one well-formed answer: ok with data, or
// an error message.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{
		`{"cmd":"show tunnels"}`, `{"cmd":"clear tunnel","id":5}`, `{"cmd":"clear session","id":7}`,
		`{"cmd":"log level","level":"debug"}`, `{"cmd":"show stats"}`, `{}`, `[]`, `{"cmd":1}`, `{"id":-1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		s := NewServer(admintest.New(tunnels, sessions, stats), Options{
			SetLevel: func(l string) (string, error) { return "info", nil },
		})
		r := s.Handle(context.Background(), line)
		if r.OK == (r.Error != "") || (r.OK && !json.Valid(r.Data)) {
			t.Fatalf("answer %+v", r)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}
