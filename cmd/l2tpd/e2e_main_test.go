package main_test

// End-to-end tests: the l2tpd and l2tpctl binaries are built once, l2tpd
// runs as a separate process (in a network namespace or on loopback) and
// is observed only from the outside: through l2tpctl's JSON output, its
// log, the packets it sends, and its exit status.
//
// They need root, xl2tpd, tshark and ip netns, so they only run when
// L2TPD_E2E=1 is set (as `make test` does); without it they skip.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// pollInterval and waitTimeout bound every wait on l2tpd's state.
	pollInterval = 100 * time.Millisecond
	waitTimeout  = 15 * time.Second
	// stopTimeout bounds how long a process may take to exit after a
	// signal before it is killed.
	stopTimeout = 10 * time.Second
)

var (
	e2eEnabled = os.Getenv("L2TPD_E2E") == "1"

	binDir     string
	l2tpdBin   string
	l2tpctlBin string
	buildErr   error
)

func TestMain(m *testing.M) {
	if e2eEnabled {
		buildBinaries()
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinaries builds l2tpd (with the race detector, so a data race in
// the daemon fails the test through its exit status and log) and l2tpctl.
func buildBinaries() {
	dir, err := os.MkdirTemp("", "l2tpd-e2e-bin-")
	if err != nil {
		buildErr = err
		return
	}
	binDir = dir
	goTool := "go"
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			goTool = p
		}
	}
	for _, b := range []struct {
		out   *string
		name  string
		flags []string
	}{
		{&l2tpdBin, "l2tpd", []string{"-race"}},
		{&l2tpctlBin, "l2tpctl", nil},
	} {
		out := filepath.Join(dir, b.name)
		args := append([]string{"build"}, b.flags...)
		args = append(args, "-o", out, "github.com/l2tpd/l2tpd/cmd/"+b.name)
		cmd := exec.Command(goTool, args...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
			return
		}
		*b.out = out
	}
}

// requireE2E skips the test unless L2TPD_E2E=1; when it is set, a
// missing tool or privilege is a failure, not a skip, so CI cannot pass
// without running the tests.
func requireE2E(t *testing.T, tools ...string) {
	t.Helper()
	if !e2eEnabled {
		t.Skip("end-to-end test: run as root with L2TPD_E2E=1 (needs xl2tpd, tshark, iproute2; `make test` installs them)")
	}
	if buildErr != nil {
		t.Fatalf("building the binaries: %v", buildErr)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("L2TPD_E2E=1 needs root (network namespaces, raw capture); running as uid %d", os.Geteuid())
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("L2TPD_E2E=1 needs %s in PATH (run .ci/install-deps): %v", tool, err)
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// proc is a child process started in its own process group, so a stop
// reaches the children it forks (pppd under xl2tpd, dumpcap under tshark).
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

// startProc starts argv with stdout and stderr in logPath and registers
// a cleanup that kills what is left of its process group.
func startProc(t *testing.T, name, logPath string, argv ...string) *proc {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			t.Errorf("%s (pid %d) did not die after SIGKILL", name, cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("---- %s log (%s) ----\n%s", name, logPath, p.log())
		}
	})
	return p
}

// signal sends sig to the process group of p.
func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// stop sends sig and waits for the process to exit; it reports whether
// it exited in time and its exit error.
func (p *proc) stop(sig syscall.Signal) (bool, error) {
	if p.exited() {
		return true, p.waitErr
	}
	syscall.Kill(p.cmd.Process.Pid, sig)
	return p.wait(stopTimeout)
}

// wait waits up to timeout for the process to exit.
func (p *proc) wait(timeout time.Duration) (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	case <-time.After(timeout):
		return false, nil
	}
}

// waitLog waits until the process log contains s.
func (p *proc) waitLog(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.log(), s) {
		if p.exited() {
			t.Fatalf("%s exited (%v) before logging %q", p.name, p.waitErr, s)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q within %v", p.name, s, timeout)
		}
		time.Sleep(pollInterval)
	}
}

// tunnelJSON and sessionJSON are the fields of `l2tpctl -o json show
// tunnels|sessions` the tests rely on.
type tunnelJSON struct {
	TunnelID      uint32  `json:"tunnel_id"`
	PeerTunnelID  uint32  `json:"peer_tunnel_id"`
	Peer          string  `json:"peer"`
	PeerHostName  string  `json:"peer_host_name"`
	Version       int     `json:"version"`
	State         string  `json:"state"`
	Sessions      int     `json:"sessions"`
	UptimeSeconds float64 `json:"uptime_seconds"`
}

type sessionJSON struct {
	SessionID     uint32 `json:"session_id"`
	PeerSessionID uint32 `json:"peer_session_id"`
	TunnelID      uint32 `json:"tunnel_id"`
	State         string `json:"state"`
}

// daemon is a running l2tpd.
type daemon struct {
	*proc
	sock string
	// terminating is set once the test has sent SIGTERM itself, so an
	// exit is expected.
	terminating bool
}

// l2tpdConfig is what the tests vary in the daemon's YAML config.
type l2tpdConfig struct {
	HostName string
	Listen   string
	Peers    []peerConfig
	Default  peerConfig
}

type peerConfig struct {
	Name      string
	HostName  string
	Addresses []string
	Secret    string
	HideAVPs  bool
}

// yamlQuote quotes s as a YAML double-quoted scalar.
func yamlQuote(s string) string {
	b, _ := json.Marshal(s) // JSON strings are valid YAML double-quoted scalars
	return string(b)
}

func (c l2tpdConfig) render(sock string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname: %s\n", yamlQuote(c.HostName))
	fmt.Fprintf(&b, "listen: [%s]\n", yamlQuote(c.Listen))
	b.WriteString("log:\n  level: debug\n  format: json\n")
	fmt.Fprintf(&b, "admin:\n  socket: %s\n", yamlQuote(sock))
	// Short timers keep a full retransmission cycle (and the hold time
	// after a StopCCN) within the tests' waits.
	b.WriteString("control:\n  hello_interval: 60s\n  retransmit:\n    initial: 250ms\n    cap: 1s\n    max_retries: 3\n")
	if len(c.Peers) > 0 {
		b.WriteString("peers:\n")
		for _, p := range c.Peers {
			fmt.Fprintf(&b, "  - name: %s\n", yamlQuote(p.Name))
			if p.HostName != "" {
				fmt.Fprintf(&b, "    host_name: %s\n", yamlQuote(p.HostName))
			}
			if len(p.Addresses) > 0 {
				q := make([]string, len(p.Addresses))
				for i, a := range p.Addresses {
					q[i] = yamlQuote(a)
				}
				fmt.Fprintf(&b, "    addresses: [%s]\n", strings.Join(q, ", "))
			}
			if p.Secret != "" {
				fmt.Fprintf(&b, "    secret: %s\n", yamlQuote(p.Secret))
			}
			fmt.Fprintf(&b, "    hide_avps: %t\n", p.HideAVPs)
		}
	}
	b.WriteString("default_peer:\n")
	if c.Default.Secret != "" {
		fmt.Fprintf(&b, "  secret: %s\n", yamlQuote(c.Default.Secret))
	}
	fmt.Fprintf(&b, "  hide_avps: %t\n", c.Default.HideAVPs)
	b.WriteString("store:\n  backend: memory\n")
	b.WriteString("auth:\n  local_users:\n    - name: e2e\n      password: e2e-password\n")
	return b.String()
}

// startL2TPD writes cfg, checks it with `l2tpd -check`, starts the daemon
// (inside netns when not empty) and waits until its admin socket answers.
// The cleanup stops it with SIGTERM and fails the test if it does not
// exit cleanly or its log shows a panic or a data race.
func startL2TPD(t *testing.T, netns string, cfg l2tpdConfig) *daemon {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	cfgPath := filepath.Join(dir, "l2tpd.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg.render(sock)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(l2tpdBin, "-check", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("l2tpd -check %s: %v\n%s\nconfig:\n%s", cfgPath, err, out, cfg.render(sock))
	}
	argv := []string{l2tpdBin, "-config", cfgPath}
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	d := &daemon{sock: sock}
	d.proc = startProc(t, "l2tpd", filepath.Join(dir, "l2tpd.log"), argv...)
	// Cleanups run last-in first-out: the SIGTERM shutdown runs before
	// the process cleanup kills what is left and prints the log.
	t.Cleanup(func() { d.shutdown(t) })
	deadline := time.Now().Add(waitTimeout)
	for {
		_, err := d.tunnels()
		if err == nil {
			break
		}
		if d.exited() {
			t.Fatalf("l2tpd exited at start-up: %v\n%s", d.waitErr, d.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("l2tpd admin socket did not answer within %v: %v", waitTimeout, err)
		}
		time.Sleep(pollInterval)
	}
	return d
}

// shutdown stops l2tpd the way an init system does and checks that it
// went cleanly.
func (d *daemon) shutdown(t *testing.T) {
	if d.proc == nil {
		return
	}
	if d.exited() && !d.terminating {
		t.Errorf("l2tpd exited before the end of the test: %v", d.waitErr)
		d.checkLog(t)
		return
	}
	var ok bool
	var err error
	if d.terminating {
		ok, err = d.wait(stopTimeout)
	} else {
		ok, err = d.stop(syscall.SIGTERM)
	}
	if !ok {
		t.Errorf("l2tpd did not exit within %v of SIGTERM", stopTimeout)
	} else if err != nil {
		t.Errorf("l2tpd exited with %v after SIGTERM", err)
	}
	d.checkLog(t)
}

// sigterm asks l2tpd to shut down without waiting for it.
func (d *daemon) sigterm() {
	d.terminating = true
	d.cmd.Process.Signal(syscall.SIGTERM)
}

// checkLog fails the test if the daemon's log shows a crash.
func (d *daemon) checkLog(t *testing.T) {
	t.Helper()
	log := d.log()
	for _, bad := range []string{"panic:", "fatal error:", "WARNING: DATA RACE"} {
		if strings.Contains(log, bad) {
			t.Errorf("l2tpd log contains %q", bad)
		}
	}
}

// ctl runs l2tpctl against the daemon's admin socket.
func (d *daemon) ctl(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	argv := append([]string{"-s", d.sock, "-o", "json"}, args...)
	cmd := exec.CommandContext(ctx, l2tpctlBin, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("l2tpctl %s: %v: %s", strings.Join(argv, " "), err, stderr.String())
	}
	return out, nil
}

func (d *daemon) tunnels() ([]tunnelJSON, error) {
	out, err := d.ctl("show", "tunnels")
	if err != nil {
		return nil, err
	}
	var ts []tunnelJSON
	if err := json.Unmarshal(out, &ts); err != nil {
		return nil, fmt.Errorf("l2tpctl show tunnels: %v in %q", err, out)
	}
	return ts, nil
}

func (d *daemon) sessions() ([]sessionJSON, error) {
	out, err := d.ctl("show", "sessions")
	if err != nil {
		return nil, err
	}
	var ss []sessionJSON
	if err := json.Unmarshal(out, &ss); err != nil {
		return nil, fmt.Errorf("l2tpctl show sessions: %v in %q", err, out)
	}
	return ss, nil
}

// errNotYet is returned by a wait condition that does not hold yet.
var errNotYet = errors.New("not yet")

// waitFor polls cond every pollInterval until it returns nil, failing
// the test with cond's last error after waitTimeout or if l2tpd exits.
func (d *daemon) waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if d.exited() {
			t.Fatalf("waiting for %s: l2tpd exited: %v", what, d.waitErr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: not reached within %v: %v", what, waitTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// waitTunnel waits for a tunnel accepted by match and returns it.
func (d *daemon) waitTunnel(t *testing.T, what string, match func(tunnelJSON) bool) tunnelJSON {
	t.Helper()
	return waitListed(t, d, what, "tunnels", d.tunnels, match)
}

// waitListed waits until list returns an entry accepted by match and
// returns it; name says what list lists, for the error.
func waitListed[T any](t *testing.T, d *daemon, what, name string, list func() ([]T, error), match func(T) bool) T {
	t.Helper()
	var found T
	d.waitFor(t, what, func() error {
		l, err := list()
		if err != nil {
			return err
		}
		for _, x := range l {
			if match(x) {
				found = x
				return nil
			}
		}
		return fmt.Errorf("%w: %s %+v", errNotYet, name, l)
	})
	return found
}

// waitSession waits for a session accepted by match and returns it.
func (d *daemon) waitSession(t *testing.T, what string, match func(sessionJSON) bool) sessionJSON {
	t.Helper()
	return waitListed(t, d, what, "sessions", d.sessions, match)
}

// waitSessionGone waits until session sid is no longer listed.
func (d *daemon) waitSessionGone(t *testing.T, what string, sid uint32) {
	t.Helper()
	d.waitFor(t, what, func() error {
		ss, err := d.sessions()
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.SessionID == sid {
				return fmt.Errorf("%w: session still listed: %+v", errNotYet, s)
			}
		}
		return nil
	})
}

// seq numbers the namespaces and files of one test process.
var seq struct {
	sync.Mutex
	n int
}

func nextSeq() int {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return seq.n
}
