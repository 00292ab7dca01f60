package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/cmd/internal/admin"
	"github.com/l2tpd/l2tpd/cmd/internal/admin/admintest"
	"github.com/l2tpd/l2tpd/control"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func noServer(control.Config, *zap.Logger) (controlServer, error) {
	return nil, errors.New("no server expected in this test")
}

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut syncBuffer
	code = run(context.Background(), args, &out, &errOut, noServer)
	return code, out.String(), errOut.String()
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckValid(t *testing.T) {
	p := writeFile(t, "l2tpd.yaml", "hostname: lns-1\npeers:\n  - {name: a, host_name: LAC1, secret: x}\n")
	code, stdout, stderr := runArgs(t, "-check", p)
	if code != 0 || stdout != p+": ok\n" || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestCheckShippedConfig(t *testing.T) {
	code, stdout, stderr := runArgs(t, "-check", "../../configs/lns.yaml")
	if code != 0 || !strings.HasSuffix(stdout, ": ok\n") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// Every error is printed on its own line with the file and its path.
func TestCheckInvalid(t *testing.T) {
	p := writeFile(t, "bad.yaml", "hostname: lns\ncontrol:\n  shards: 0\npeers:\n  - name: a\n    addresses: [10.0.0/8]\nbogus: 1\n")
	code, stdout, stderr := runArgs(t, "-check", p)
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	want := []string{
		p + ": control.shards (line 3): ",
		p + `: peers[0].addresses[0] (line 6): invalid prefix "10.0.0/8"`,
		p + `: bogus (line 7): unknown key "bogus"`,
	}
	if len(lines) != len(want) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(want), stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], w)
		}
	}
}

func TestCheckMissingFile(t *testing.T) {
	code, _, stderr := runArgs(t, "-check", filepath.Join(t.TempDir(), "none.yaml"))
	if code != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runArgs(t, "-version")
	if code != 0 || !strings.HasPrefix(stdout, "l2tpd ") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-check"}} {
		if code, _, stderr := runArgs(t, args...); code != 2 || !strings.Contains(stderr, "usage") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

func TestRunRejectsInvalidConfig(t *testing.T) {
	p := writeFile(t, "bad.yaml", "log: {level: loud}\n")
	code, _, stderr := runArgs(t, "-config", p)
	if code != 1 || !strings.Contains(stderr, "log.level (line 1)") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// fakeServer stands in for control.Server: it serves admin queries from
// an admintest.Fake and runs until its context ends.
type fakeServer struct {
	*admintest.Fake
	cfg     control.Config
	ready   chan struct{}
	started chan struct{}
	stopped chan struct{}
	runErr  error // returned at once by Run when set
	mu      sync.Mutex
	reloads int
}

func (f *fakeServer) Run(ctx context.Context) error {
	close(f.started)
	if f.runErr != nil {
		return f.runErr
	}
	close(f.ready)
	<-ctx.Done()
	close(f.stopped)
	return nil
}

func (f *fakeServer) Ready() <-chan struct{} { return f.ready }

func (f *fakeServer) Reload(_ context.Context, cfg control.Config, dryRun bool) (control.Diff, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	if !dryRun {
		f.cfg = cfg
	}
	return control.Diff{Changes: []string{"hostname changed"}, Applied: !dryRun}, nil
}

func (f *fakeServer) Capture(context.Context, uint32, int, time.Duration) ([]control.CapturedPacket, error) {
	return nil, control.ErrNotFound
}

func (f *fakeServer) RunningConfig() control.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg
}

func (f *fakeServer) ConfigHash() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg.HostName
}

func (f *fakeServer) config() (control.Config, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg, f.reloads
}

func (f *fakeServer) LocalAddrs() []net.Addr {
	return []net.Addr{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41701}}
}

func newFake(runErr error) *fakeServer {
	return &fakeServer{
		Fake:  admintest.New([]control.TunnelInfo{{TunnelID: 9, Peer: "192.0.2.1:1701", Version: 2, State: "established"}}, nil, control.Stats{}),
		ready: make(chan struct{}), started: make(chan struct{}), stopped: make(chan struct{}),
		runErr: runErr,
	}
}

func daemonConfig(t *testing.T, sock string) string {
	return writeFile(t, "l2tpd.yaml", `hostname: test-lns
listen: ["127.0.0.1:0"]
log: {level: info, format: json}
admin: {socket: "`+sock+`"}
control: {shards: 3}
`)
}

// The daemon starts the control server with the file's settings, serves
// the admin socket from it, and on cancellation waits for Run to return
// before exiting 0.
func TestRunServesUntilCancelled(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "run", "admin.sock")
	cfgPath := daemonConfig(t, sock)
	fake := newFake(nil)
	newServer := func(cfg control.Config, _ *zap.Logger) (controlServer, error) {
		fake.cfg = cfg
		return fake, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-config", cfgPath}, &stdout, &stderr, newServer) }()

	select {
	case <-fake.started:
	case code := <-done:
		t.Fatalf("run exited %d early:\n%s", code, stderr.String())
	}
	<-fake.ready
	if fake.cfg.HostName != "test-lns" || fake.cfg.Shards != 3 || fake.cfg.Listen[0] != "127.0.0.1:0" {
		t.Errorf("control config = %+v", fake.cfg)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v, %v", fi, err)
	}
	c, err := admin.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	data, err := c.Do(admin.Request{Cmd: admin.CmdShowTunnels})
	if err != nil || !strings.Contains(string(data), `"tunnel_id":9`) {
		t.Errorf("show tunnels = %s, %v", data, err)
	}
	data, err = c.Do(admin.Request{Cmd: admin.CmdLogLevel, Level: "debug"})
	if err != nil || string(data) != `{"level":"debug","previous":"info"}` {
		t.Errorf("log level = %s, %v", data, err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	select {
	case <-fake.stopped:
	default:
		t.Error("run returned before the control server's Run")
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("admin socket left behind: %v", err)
	}

	// JSON log lines with snake_case keys; the startup line names the
	// bound addresses.
	var started bool
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if line["msg"] == "l2tpd started" {
			started = true
			if l, _ := line["listen"].([]any); len(l) != 1 || l[0] != "127.0.0.1:41701" || line["admin_socket"] != sock {
				t.Errorf("startup line = %s", sc.Text())
			}
		}
	}
	if !started {
		t.Errorf("no startup line in the log:\n%s", stderr.String())
	}
	// Changes made through the admin socket are recorded.
	if !strings.Contains(stderr.String(), `"msg":"admin: log level changed"`) {
		t.Errorf("level change not logged:\n%s", stderr.String())
	}
}

func TestRunFailsWhenControlFails(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	cfgPath := daemonConfig(t, sock)
	fake := newFake(errors.New("control: listen udp 127.0.0.1:0: address in use"))
	newServer := func(control.Config, *zap.Logger) (controlServer, error) { return fake, nil }
	var stdout, stderr syncBuffer
	code := run(context.Background(), []string{"-config", cfgPath}, &stdout, &stderr, newServer)
	if code != 1 || !strings.Contains(stderr.String(), "address in use") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("admin socket left behind: %v", err)
	}
}

func TestRunFailsWhenAdminSocketTaken(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fake := newFake(nil)
	newServer := func(control.Config, *zap.Logger) (controlServer, error) { return fake, nil }
	var stdout, stderr syncBuffer
	code := run(context.Background(), []string{"-config", daemonConfig(t, sock)}, &stdout, &stderr, newServer)
	if code != 1 || !strings.Contains(stderr.String(), "not a socket") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
	}
	select {
	case <-fake.started:
		t.Error("control server started although the admin socket failed")
	default:
	}
}

func TestLevelSetter(t *testing.T) {
	atom := zap.NewAtomicLevel()
	set := levelSetter(atom)
	if prev, err := set("warn"); err != nil || prev != "info" || atom.Level().String() != "warn" {
		t.Errorf("set warn: %q, %v, now %v", prev, err, atom.Level())
	}
	for _, bad := range []string{"", "fatal", "WARN ", "verbose"} {
		if _, err := set(bad); err == nil {
			t.Errorf("level %q accepted", bad)
		}
	}
	if atom.Level().String() != "warn" {
		t.Errorf("a refused level changed it to %v", atom.Level())
	}
}

// `l2tpctl reload` (the admin command) and SIGHUP re-read the file: a
// valid one reaches the control server, a broken one is rejected with
// every error and its path while the running configuration stays.
func TestReload(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	cfgPath := daemonConfig(t, sock)
	fake := newFake(nil)
	newServer := func(cfg control.Config, _ *zap.Logger) (controlServer, error) {
		fake.cfg = cfg
		return fake, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-config", cfgPath}, &stdout, &stderr, newServer) }()
	<-fake.ready
	c, err := admin.Dial(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	write := func(body string) {
		if err := os.WriteFile(cfgPath, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("hostname: renamed\nlisten: [\"127.0.0.1:0\"]\nadmin: {socket: \"" + sock + "\"}\ncontrol: {shards: 3}\n")
	if _, err := c.Do(admin.Request{Cmd: admin.CmdReload, DryRun: true}); err != nil {
		t.Fatal(err)
	}
	if cfg, _ := fake.config(); cfg.HostName != "test-lns" {
		t.Fatal("a dry run applied the new file")
	}
	data, err := c.Do(admin.Request{Cmd: admin.CmdReload})
	if err != nil || !strings.Contains(string(data), `"applied":true`) {
		t.Fatalf("reload = %s, %v", data, err)
	}
	if cfg, _ := fake.config(); cfg.HostName != "renamed" {
		t.Fatalf("reload did not reach the server: %+v", cfg)
	}

	write("hostname: broken\nlisten: [\"nonsense\"]\nbogus_key: 1\n")
	_, err = c.Do(admin.Request{Cmd: admin.CmdReload})
	if err == nil || !strings.Contains(err.Error(), "listen[0]") || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("broken reload error = %v", err)
	}
	if cfg, _ := fake.config(); cfg.HostName != "renamed" {
		t.Fatal("a broken file changed the running configuration")
	}

	// SIGHUP does the same as the admin command.
	write("hostname: by-sighup\nlisten: [\"127.0.0.1:0\"]\nadmin: {socket: \"" + sock + "\"}\ncontrol: {shards: 3}\n")
	_, before := fake.config()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if cfg, n := fake.config(); n > before && cfg.HostName == "by-sighup" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
}
