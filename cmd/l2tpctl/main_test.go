package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/cmd/internal/admin"
	"github.com/l2tpd/l2tpd/cmd/internal/admin/admintest"
	"github.com/l2tpd/l2tpd/cmd/internal/config"
	"github.com/l2tpd/l2tpd/control"
)

var (
	since   = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tunnels = []control.TunnelInfo{
		{TunnelID: 5, PeerTunnelID: 1328, Peer: "198.18.0.2:1701", PeerHostName: "LAC1", Version: 2, State: "established", Sessions: 1, Since: since, UptimeSeconds: 3725},
		{TunnelID: 40001, PeerTunnelID: 7, Peer: "[2001:db8::1]:1701", Version: 3, State: "wait-ctl-conn", Since: since, UptimeSeconds: 2.9},
	}
	sessions = []control.SessionInfo{
		{SessionID: 7, PeerSessionID: 65497, TunnelID: 5, PeerTunnelID: 1328, Peer: "198.18.0.2:1701", Version: 2, State: "established", UserName: "alice", IPv4: "100.64.0.10", PPPState: "network", Since: since, UptimeSeconds: 90061},
	}
	stats = control.Stats{Drops: map[string]uint64{"unknown_tunnel": 3, "bad_header": 1}, Counters: map[string]uint64{"rx_control": 42},
		Refused: map[string]uint64{"icrq_rate": 5, "setup_limit": 2}, SessionsInSetup: 7,
		Offload: map[string]uint64{"offload_udp_gso_sockets": 2, "offload_gso_sent": 9}}
)

// serve runs an admin server over a fake backend and returns its socket.
func serve(t *testing.T, b admin.Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := admin.Listen(sock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	level := "info"
	setLevel := func(l string) (string, error) { prev := level; level = l; return prev, nil }
	go func() { done <- admin.NewServer(b, admin.Options{SetLevel: setLevel}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock
}

func ctl(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// checkAligned splits a table into cells and checks that every row's
// cells start at the header's column offsets.
func checkAligned(t *testing.T, table string, wantRows int) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(table, "\n"), "\n")
	if len(lines) != wantRows+1 {
		t.Fatalf("got %d lines, want header and %d rows:\n%s", len(lines), wantRows, table)
	}
	starts := func(line string) []int {
		var s []int
		for i := range line {
			if line[i] != ' ' && (i == 0 || line[i-1] == ' ') {
				s = append(s, i)
			}
		}
		return s
	}
	head := starts(lines[0])
	var rows [][]string
	for _, l := range lines {
		if got := starts(l); !reflect.DeepEqual(got, head) {
			t.Errorf("misaligned line %q: cells at %v, header at %v\n%s", l, got, head, table)
		}
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func TestShowTunnelsTable(t *testing.T) {
	sock := serve(t, admintest.New(tunnels, sessions, stats))
	code, out, errOut := ctl(t, "-s", sock, "show", "tunnels")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows := checkAligned(t, out, 2)
	want := [][]string{
		{"ID", "PEER-ID", "PEER", "HOST", "VER", "STATE", "SESSIONS", "UPTIME"},
		{"5", "1328", "198.18.0.2:1701", "LAC1", "v2", "established", "1", "1h02m05s"},
		{"40001", "7", "[2001:db8::1]:1701", "-", "v3", "wait-ctl-conn", "0", "2s"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("got\n%s", out)
	}
}

func TestShowSessionsTable(t *testing.T) {
	sock := serve(t, admintest.New(tunnels, sessions, stats))
	code, out, errOut := ctl(t, "-s", sock, "show", "sessions")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows := checkAligned(t, out, 1)
	want := [][]string{
		{"ID", "PEER-ID", "TUNNEL", "PEER", "VER", "STATE", "USER", "IPV4", "PPP", "UPTIME"},
		{"7", "65497", "5", "198.18.0.2:1701", "v2", "established", "alice", "100.64.0.10", "network", "1d01h01m"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("got\n%s", out)
	}
}

func TestShowStatsTable(t *testing.T) {
	sock := serve(t, admintest.New(tunnels, sessions, stats))
	code, out, errOut := ctl(t, "-s", sock, "show", "stats")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows := checkAligned(t, out, 13)
	want := [][]string{
		{"COUNTER", "VALUE"},
		{"tunnels", "2"},
		{"sessions", "1"},
		{"store_up", "0"},
		{"store_queue", "0"},
		{"acct_queue", "0"},
		{"rx_control", "42"},
		{"drop.bad_header", "1"},
		{"drop.unknown_tunnel", "3"},
		{"sessions_in_setup", "7"},
		{"refused.icrq_rate", "5"},
		{"refused.setup_limit", "2"},
		{"offload_gso_sent", "9"},
		{"offload_udp_gso_sockets", "2"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("got\n%s", out)
	}
}

// -o json prints the daemon's data as one indented document.
func TestJSONOutput(t *testing.T) {
	sock := serve(t, admintest.New(tunnels, sessions, stats))
	code, out, errOut := ctl(t, "-s", sock, "-o", "json", "show", "tunnels")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got []control.TunnelInfo
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if dec.More() {
		t.Error("more than one JSON document")
	}
	if !reflect.DeepEqual(got, tunnels) {
		t.Errorf("got %+v", got)
	}
	if !strings.HasPrefix(out, "[\n  {\n    \"tunnel_id\": 5,") {
		t.Errorf("not indented:\n%s", out)
	}

	// An empty list stays a list.
	empty := serve(t, admintest.New(nil, nil, control.Stats{}))
	if code, out, _ := ctl(t, "-s", empty, "-o", "json", "show", "sessions"); code != 0 || out != "[]\n" {
		t.Errorf("empty sessions: exit %d, %q", code, out)
	}
}

func TestClearAndLogLevel(t *testing.T) {
	fake := admintest.New(tunnels, sessions, stats)
	sock := serve(t, fake)
	if code, out, errOut := ctl(t, "-s", sock, "clear", "session", "7"); code != 0 || out != "session 7 cleared\n" {
		t.Errorf("clear session: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, errOut := ctl(t, "-s", sock, "clear", "tunnel", "40001"); code != 0 || out != "tunnel 40001 cleared\n" {
		t.Errorf("clear tunnel: exit %d, %q, %q", code, out, errOut)
	}
	if ts, _ := fake.Tunnels(context.Background()); len(ts) != 1 || ts[0].TunnelID != 5 {
		t.Errorf("tunnels left: %+v", ts)
	}
	if code, out, _ := ctl(t, "-s", sock, "log", "level", "debug"); code != 0 || out != "log level debug (was info)\n" {
		t.Errorf("log level: exit %d, %q", code, out)
	}
}

// An error answered by the daemon goes to stderr with a non-zero status.
func TestDaemonError(t *testing.T) {
	sock := serve(t, admintest.New(tunnels, sessions, stats))
	code, out, errOut := ctl(t, "-s", sock, "clear", "tunnel", "99")
	if code != 1 || out != "" || errOut != "l2tpctl: l2tpd: no tunnel with id 99\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestDaemonUnreachable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	code, _, errOut := ctl(t, "-s", missing, "show", "tunnels")
	if code != 1 || !strings.Contains(errOut, "no admin socket at "+missing) || !strings.Contains(errOut, "is l2tpd running") {
		t.Errorf("missing socket: exit %d, %q", code, errOut)
	}

	// A socket file nobody listens on, as a crashed daemon leaves.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	code, _, errOut = ctl(t, "-s", stale, "show", "tunnels")
	if code != 1 || !strings.Contains(errOut, "nothing answers on "+stale) {
		t.Errorf("stale socket: exit %d, %q", code, errOut)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"show"},
		{"show", "routes"},
		{"clear", "tunnel"},
		{"clear", "tunnel", "0"},
		{"clear", "tunnel", "abc"},
		{"clear", "session", "4294967296"},
		{"log", "level"},
		{"-o", "yaml", "show", "tunnels"},
		{"-x"},
	} {
		code, out, errOut := ctl(t, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "usage: l2tpctl") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

func TestParseCommand(t *testing.T) {
	for args, want := range map[string]admin.Request{
		"show tunnels":             {Cmd: "show tunnels"},
		"SHOW Sessions":            {Cmd: "show sessions"},
		"show stats":               {Cmd: "show stats"},
		"clear tunnel 5":           {Cmd: "clear tunnel", ID: 5},
		"clear session 65535":      {Cmd: "clear session", ID: 65535},
		"clear session 4294967295": {Cmd: "clear session", ID: 4294967295},
		"log level warn":           {Cmd: "log level", Level: "warn"},
	} {
		got, err := parseCommand(strings.Fields(args))
		if err != nil || got != want {
			t.Errorf("%q = %+v, %v; want %+v", args, got, err, want)
		}
	}
}

func TestUptime(t *testing.T) {
	for sec, want := range map[float64]string{
		0: "0s", 59.9: "59s", 60: "1m00s", 3599: "59m59s", 3600: "1h00m00s",
		86399: "23h59m59s", 86400: "1d00h00m", 10*86400 + 3*3600 + 7*60: "10d03h07m", -5: "0s",
	} {
		if got := uptime(sec); got != want {
			t.Errorf("uptime(%v) = %q, want %q", sec, got, want)
		}
	}
}

// l2tpctl's default must follow the daemon's.
func TestDefaultSocketMatchesDaemon(t *testing.T) {
	if defaultSocket != config.DefaultAdminSocket {
		t.Errorf("l2tpctl uses %s, l2tpd defaults to %s", defaultSocket, config.DefaultAdminSocket)
	}
}

func TestReloadCommandParsing(t *testing.T) {
	for _, tc := range []struct {
		args []string
		dry  bool
	}{{[]string{"reload"}, false}, {[]string{"reload", "--dry-run"}, true}} {
		req, err := parseCommand(tc.args)
		if err != nil || req.Cmd != admin.CmdReload || req.DryRun != tc.dry {
			t.Errorf("%v -> %+v %v", tc.args, req, err)
		}
	}
	if _, err := parseCommand([]string{"reload", "now"}); err == nil {
		t.Error("reload now accepted")
	}
}

func TestCaptureParsing(t *testing.T) {
	req, file, err := parseCapture([]string{"--session", "7", "--count", "50", "--duration", "5s", "-w", "out.pcap"})
	if err != nil || req.Cmd != admin.CmdCapture || req.ID != 7 || req.Count != 50 || req.Seconds != 5 || file != "out.pcap" {
		t.Fatalf("%+v %q %v", req, file, err)
	}
	for _, bad := range [][]string{{"-w", "x"}, {"--session", "7"}, {"--session", "7", "-w", "x", "--duration", "10ms"}, {"--session", "7", "-w", "x", "extra"}} {
		if _, _, err := parseCapture(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestSessionFilters(t *testing.T) {
	list := []control.SessionInfo{
		{SessionID: 1, TunnelID: 5, UserName: "alice", IPv4: "100.64.0.10"},
		{SessionID: 2, TunnelID: 6, UserName: "bob", IPv4: "100.64.0.11"},
	}
	data, _ := json.Marshal(list)
	for _, tc := range []struct {
		args []string
		want []uint32
	}{
		{[]string{"sessions", "--user", "bob"}, []uint32{2}},
		{[]string{"sessions", "--ip", "100.64.0.10"}, []uint32{1}},
		{[]string{"sessions", "--tunnel", "6"}, []uint32{2}},
		{[]string{"sessions", "--user", "carol"}, nil},
	} {
		req, f, err := parseShowSessions(tc.args)
		if err != nil || req.Cmd != admin.CmdShowSessions {
			t.Fatalf("%v: %v", tc.args, err)
		}
		out, err := f.apply(data)
		if err != nil {
			t.Fatal(err)
		}
		var got []control.SessionInfo
		json.Unmarshal(out, &got)
		var ids []uint32
		for _, s := range got {
			ids = append(ids, s.SessionID)
		}
		if !reflect.DeepEqual(ids, tc.want) {
			t.Errorf("%v -> %v, want %v", tc.args, ids, tc.want)
		}
	}
	_, f, err := parseShowSessions([]string{"session", "2"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.apply(data)
	var one control.SessionInfo
	if err != nil || json.Unmarshal(out, &one) != nil || one.UserName != "bob" {
		t.Fatalf("show session 2: %s %v", out, err)
	}
	if _, f, _ := parseShowSessions([]string{"session", "9"}); f.one == 9 {
		if _, err := f.apply(data); err == nil {
			t.Error("show session of an unknown id succeeded")
		}
	}
	req, err := parseClearSession([]string{"7", "--result", "2"})
	if err != nil || req.ID != 7 || req.Result != 2 || req.Cmd != admin.CmdClearSession {
		t.Fatalf("clear session: %+v %v", req, err)
	}
	if _, err := parseClearSession([]string{"7", "--result", "99"}); err == nil {
		t.Error("result 99 accepted")
	}
}

// Pseudowire sessions, dynamic and static, get a table of their own.
func TestShowSessionsPseudowires(t *testing.T) {
	pw := []control.SessionInfo{
		{SessionID: 4000, PeerSessionID: 3000, TunnelID: 9, Peer: "198.18.9.2:1701", Version: 3, State: "established",
			Kind: "vlan", Pseudowire: "cust-7", TAP: "trunk0", VLAN: 100, RxPackets: 5, TxPackets: 6, UptimeSeconds: 61},
		{SessionID: 1000, PeerSessionID: 2000, Peer: "198.18.9.3:1701", Version: 3, State: "static",
			Kind: "ethernet", StaticTunnel: "st", TAP: "st0", UptimeSeconds: 2},
	}
	sock := serve(t, admintest.New(tunnels, append(append([]control.SessionInfo(nil), sessions...), pw...), stats))
	code, out, errOut := ctl(t, "-s", sock, "show", "sessions")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	parts := strings.SplitN(out, "\n\n", 2)
	if len(parts) != 2 {
		t.Fatalf("no separate pseudowire table:\n%s", out)
	}
	rows := checkAligned(t, parts[1], 2)
	want := [][]string{
		{"PSEUDOWIRE", "KIND", "ID", "PEER-ID", "TUNNEL", "PEER", "TAP", "VLAN", "STATE", "RX-PKTS", "TX-PKTS", "UPTIME"},
		{"cust-7", "vlan", "4000", "3000", "9", "198.18.9.2:1701", "trunk0", "100", "established", "5", "6", "1m01s"},
		{"st", "ethernet", "1000", "2000", "0", "198.18.9.3:1701", "st0", "-", "static", "0", "0", "2s"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("got\n%s", out)
	}
	if strings.Contains(parts[0], "trunk0") || strings.Contains(parts[0], "4000") {
		t.Errorf("pseudowires listed with the PPP sessions:\n%s", parts[0])
	}
}
