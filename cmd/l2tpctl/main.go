package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/l2tpd/l2tpd/cmd/internal/admin"
	"github.com/l2tpd/l2tpd/control"
)

// defaultSocket is where l2tpd puts its admin socket unless configured.
const defaultSocket = "/run/l2tpd/admin.sock"

const usage = `usage: l2tpctl [-s SOCKET] [-o table|json] COMMAND

commands:
  show tunnels
  show sessions [--user U] [--ip A] [--tunnel T]
  show session ID       one session in detail
  show stats
  show config           the running configuration (secrets hidden)
  clear tunnel ID       tear a tunnel down (StopCCN) with its sessions
  clear session ID [--result N]
                        tear one session down (CDN, result 3 unless given)
  log level LEVEL       debug, info, warn or error
  reload [--dry-run]    re-read the configuration file and apply it as a
                        diff (--dry-run: print the diff and what it touches)
  capture --session ID [--count N] [--duration 30s] -w FILE
                        write the session's packets (control and data) to
                        a pcap file ("-w -": standard output)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status: 0 on success,
// 1 when the daemon cannot be reached or answers an error, 2 on misuse.
func run(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("l2tpctl", flag.ContinueOnError)
	fset.SetOutput(stderr)
	socket := fset.String("s", defaultSocket, "l2tpd admin `socket`")
	output := fset.String("o", "table", "output `format`: table or json")
	fset.Usage = func() {
		fmt.Fprint(stderr, usage, "\nflags:\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *output != "table" && *output != "json" {
		fmt.Fprintf(stderr, "l2tpctl: unknown output format %q (want table or json)\n\n%s", *output, usage)
		return 2
	}
	var (
		req     admin.Request
		capFile string
		err     error
	)
	var filter sessionFilter
	switch a := fset.Args(); {
	case len(a) > 0 && a[0] == "capture":
		req, capFile, err = parseCapture(a[1:])
	case len(a) >= 2 && a[0] == "show" && (a[1] == "sessions" || a[1] == "session"):
		req, filter, err = parseShowSessions(a[1:])
	case len(a) >= 3 && a[0] == "clear" && a[1] == "session":
		req, err = parseClearSession(a[2:])
	default:
		req, err = parseCommand(a)
	}
	if err != nil {
		fmt.Fprintf(stderr, "l2tpctl: %v\n\n%s", err, usage)
		return 2
	}

	c, err := admin.Dial(*socket)
	if err != nil {
		fmt.Fprintf(stderr, "l2tpctl: %s\n", dialHint(*socket, err))
		return 1
	}
	defer c.Close()
	data, err := c.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "l2tpctl: %v\n", err)
		return 1
	}
	if req.Cmd == admin.CmdShowSessions && filter.active() {
		if data, err = filter.apply(data); err != nil {
			fmt.Fprintf(stderr, "l2tpctl: %v\n", err)
			return 1
		}
	}
	switch {
	case req.Cmd == admin.CmdCapture:
		err = writeCapture(stdout, stderr, capFile, data)
	case filter.one != 0 && *output == "json":
		err = printJSON(stdout, data)
	case filter.one != 0:
		err = printSession(stdout, data)
	case *output == "json":
		err = printJSON(stdout, data)
	default:
		err = printTable(stdout, req, data)
	}
	if err != nil {
		fmt.Fprintf(stderr, "l2tpctl: %v\n", err)
		return 1
	}
	return 0
}

func parseCommand(args []string) (admin.Request, error) {
	if len(args) == 0 {
		return admin.Request{}, errors.New("missing command")
	}
	words := strings.Join(args, " ")
	args = slices.Clone(args)
	for i := 0; i < len(args) && i < 2; i++ {
		args[i] = strings.ToLower(args[i])
	}
	switch {
	case len(args) == 2 && args[0] == "show":
		switch cmd := "show " + args[1]; cmd {
		case admin.CmdShowTunnels, admin.CmdShowSessions, admin.CmdShowStats, admin.CmdShowConfig:
			return admin.Request{Cmd: cmd}, nil
		}
	case len(args) == 3 && args[0] == "clear" && (args[1] == "tunnel" || args[1] == "session"):
		id, err := strconv.ParseUint(args[2], 10, 32)
		if err != nil || id == 0 {
			return admin.Request{}, fmt.Errorf("invalid %s id %q (want 1 to 4294967295)", args[1], args[2])
		}
		return admin.Request{Cmd: "clear " + args[1], ID: uint32(id)}, nil
	case len(args) == 1 && args[0] == "reload":
		return admin.Request{Cmd: admin.CmdReload}, nil
	case len(args) == 2 && args[0] == "reload" && (args[1] == "--dry-run" || args[1] == "-dry-run"):
		return admin.Request{Cmd: admin.CmdReload, DryRun: true}, nil
	case len(args) == 3 && args[0] == "log" && args[1] == "level":
		return admin.Request{Cmd: admin.CmdLogLevel, Level: args[2]}, nil
	}
	return admin.Request{}, fmt.Errorf("unknown command %q", words)
}

// sessionFilter narrows show sessions (client side: the daemon answers
// the whole list in one shard round).
type sessionFilter struct {
	user, ip string
	tunnel   uint32
	one      uint32 // show session ID
}

func (f sessionFilter) active() bool {
	return f.user != "" || f.ip != "" || f.tunnel != 0 || f.one != 0
}

func (f sessionFilter) apply(data json.RawMessage) (json.RawMessage, error) {
	var ss []control.SessionInfo
	if err := json.Unmarshal(data, &ss); err != nil {
		return nil, fmt.Errorf("bad answer from l2tpd: %w", err)
	}
	out := []control.SessionInfo{}
	for _, s := range ss {
		if f.user != "" && s.UserName != f.user || f.ip != "" && s.IPv4 != f.ip && s.IPv6 != f.ip ||
			f.tunnel != 0 && s.TunnelID != f.tunnel || f.one != 0 && s.SessionID != f.one {
			continue
		}
		out = append(out, s)
	}
	if f.one != 0 {
		if len(out) == 0 {
			return nil, fmt.Errorf("no session with id %d", f.one)
		}
		return json.Marshal(out[0])
	}
	return json.Marshal(out)
}

// parseShowSessions reads "sessions [--user U] [--ip A] [--tunnel T]" or
// "session ID".
func parseShowSessions(args []string) (admin.Request, sessionFilter, error) {
	req := admin.Request{Cmd: admin.CmdShowSessions}
	var f sessionFilter
	if args[0] == "session" {
		if len(args) != 2 {
			return req, f, errors.New("show session needs one session id")
		}
		id, err := strconv.ParseUint(args[1], 10, 32)
		if err != nil || id == 0 {
			return req, f, fmt.Errorf("invalid session id %q", args[1])
		}
		f.one = uint32(id)
		return req, f, nil
	}
	fs := flag.NewFlagSet("show sessions", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.user, "user", "", "")
	fs.StringVar(&f.ip, "ip", "", "")
	tun := fs.Uint("tunnel", 0, "")
	if err := fs.Parse(args[1:]); err != nil {
		return req, f, fmt.Errorf("show sessions: %w", err)
	}
	if fs.NArg() > 0 {
		return req, f, fmt.Errorf("show sessions: unexpected argument %q", fs.Arg(0))
	}
	if *tun > 0xffffffff {
		return req, f, errors.New("show sessions: --tunnel out of range")
	}
	f.tunnel = uint32(*tun)
	return req, f, nil
}

// parseClearSession reads "ID [--result N]".
func parseClearSession(args []string) (admin.Request, error) {
	id, err := strconv.ParseUint(args[0], 10, 32)
	if err != nil || id == 0 {
		return admin.Request{}, fmt.Errorf("invalid session id %q (want 1 to 4294967295)", args[0])
	}
	fs := flag.NewFlagSet("clear session", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	result := fs.Uint("result", 0, "")
	if err := fs.Parse(args[1:]); err != nil {
		return admin.Request{}, fmt.Errorf("clear session: %w", err)
	}
	if fs.NArg() > 0 {
		return admin.Request{}, fmt.Errorf("clear session: unexpected argument %q", fs.Arg(0))
	}
	if *result > 11 {
		return admin.Request{}, errors.New("clear session: --result must be a CDN result code (1-11, RFC 2661 §4.4.2)")
	}
	return admin.Request{Cmd: admin.CmdClearSession, ID: uint32(id), Result: uint16(*result)}, nil
}

// printSession shows one session as aligned key: value lines.
func printSession(w io.Writer, data json.RawMessage) error {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("bad answer from l2tpd: %w", err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range keys {
		fmt.Fprintf(tw, "%s:\t%v\n", k, m[k])
	}
	return tw.Flush()
}

// parseCapture reads the capture command's flags.
func parseCapture(args []string) (admin.Request, string, error) {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	id := fs.Uint("session", 0, "session `ID`")
	count := fs.Int("count", 0, "stop after `N` packets")
	dur := fs.Duration("duration", 30*time.Second, "stop after this long")
	file := fs.String("w", "", "pcap `file` to write")
	if err := fs.Parse(args); err != nil {
		return admin.Request{}, "", fmt.Errorf("capture: %w", err)
	}
	switch {
	case fs.NArg() > 0:
		return admin.Request{}, "", fmt.Errorf("capture: unexpected argument %q", fs.Arg(0))
	case *id == 0 || *id > 0xffffffff:
		return admin.Request{}, "", errors.New("capture needs --session ID")
	case *file == "":
		return admin.Request{}, "", errors.New("capture needs -w FILE")
	case *dur < time.Second:
		return admin.Request{}, "", errors.New("capture --duration must be at least 1s")
	case *count < 0:
		return admin.Request{}, "", errors.New("capture --count must not be negative")
	}
	return admin.Request{Cmd: admin.CmdCapture, ID: uint32(*id), Count: *count, Seconds: int(dur.Round(time.Second) / time.Second)}, *file, nil
}

func writeCapture(stdout, stderr io.Writer, file string, data json.RawMessage) error {
	var c admin.Capture
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("bad answer from l2tpd: %w", err)
	}
	if file == "-" {
		_, err := stdout.Write(c.Pcap)
		return err
	}
	if err := os.WriteFile(file, c.Pcap, 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%d packets written to %s\n", c.Packets, file)
	return nil
}

// dialHint turns a dial failure into what the operator should check.
func dialHint(socket string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("no admin socket at %s: is l2tpd running? (-s names another socket)", socket)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing answers on %s: is l2tpd running?", socket)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("permission denied on %s: run as a user the socket's mode admits", socket)
	}
	return err.Error()
}

func printJSON(w io.Writer, data json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return fmt.Errorf("bad answer from l2tpd: %w", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func printTable(w io.Writer, req admin.Request, data json.RawMessage) error {
	if req.Cmd == admin.CmdShowConfig {
		return printJSON(w, data) // nested: no table says it better
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	switch req.Cmd {
	case admin.CmdShowTunnels:
		var ts []control.TunnelInfo
		if err := json.Unmarshal(data, &ts); err != nil {
			return fmt.Errorf("bad answer from l2tpd: %w", err)
		}
		fmt.Fprintln(tw, "ID\tPEER-ID\tPEER\tHOST\tVER\tSTATE\tSESSIONS\tUPTIME")
		for _, t := range ts {
			fmt.Fprintf(tw, "%d\t%d\t%s\t%s\tv%d\t%s\t%d\t%s\n", t.TunnelID, t.PeerTunnelID, dash(t.Peer),
				dash(t.PeerHostName), t.Version, dash(t.State), t.Sessions, uptime(t.UptimeSeconds))
		}
	case admin.CmdShowSessions:
		var ss []control.SessionInfo
		if err := json.Unmarshal(data, &ss); err != nil {
			return fmt.Errorf("bad answer from l2tpd: %w", err)
		}
		var lacSide, pws []control.SessionInfo
		fmt.Fprintln(tw, "ID\tPEER-ID\tTUNNEL\tPEER\tVER\tSTATE\tUSER\tIPV4\tPPP\tUPTIME")
		for _, s := range ss {
			if s.Role == "lac" {
				lacSide = append(lacSide, s)
				continue
			}
			if s.Kind != "" && s.Kind != "ppp" {
				pws = append(pws, s)
				continue
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%s\tv%d\t%s\t%s\t%s\t%s\t%s\n", s.SessionID, s.PeerSessionID, s.TunnelID,
				dash(s.Peer), s.Version, dash(s.State), dash(s.UserName), dash(s.IPv4), dash(s.PPPState), uptime(s.UptimeSeconds))
		}
		if len(lacSide) > 0 {
			// The LAC role's sessions: the PPPoE client and its call.
			fmt.Fprintln(tw, "\nLAC\tPPPOE\tMAC\tUSER\tSTATE\tLNS\tTUNNEL\tID\tPEER-ID\tUPTIME")
			for _, s := range lacSide {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", dash(s.Interface), s.PPPoESessionID, dash(s.MAC),
					dash(s.UserName), dash(s.State), dash(s.LNS), s.TunnelID, s.SessionID, s.PeerSessionID, uptime(s.UptimeSeconds))
			}
		}
		if len(pws) > 0 {
			// L2TPv3 pseudowires, dynamic (by name) and static (by tunnel).
			fmt.Fprintln(tw, "\nPSEUDOWIRE\tKIND\tID\tPEER-ID\tTUNNEL\tPEER\tTAP\tVLAN\tSTATE\tRX-PKTS\tTX-PKTS\tUPTIME")
			for _, s := range pws {
				name := s.Pseudowire
				if name == "" {
					name = s.StaticTunnel
				}
				vlan := "-"
				if s.VLAN != 0 {
					vlan = strconv.Itoa(int(s.VLAN))
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", dash(name), s.Kind, s.SessionID, s.PeerSessionID, s.TunnelID,
					dash(s.Peer), dash(s.TAP), vlan, dash(s.State), s.RxPackets, s.TxPackets, uptime(s.UptimeSeconds))
			}
		}
	case admin.CmdShowStats:
		var st control.Stats
		if err := json.Unmarshal(data, &st); err != nil {
			return fmt.Errorf("bad answer from l2tpd: %w", err)
		}
		fmt.Fprintln(tw, "COUNTER\tVALUE")
		fmt.Fprintf(tw, "tunnels\t%d\n", st.Tunnels)
		fmt.Fprintf(tw, "sessions\t%d\n", st.Sessions)
		storeUp := 0
		if st.StoreUp {
			storeUp = 1
		}
		fmt.Fprintf(tw, "store_up\t%d\nstore_queue\t%d\nacct_queue\t%d\n", storeUp, st.StoreQueue, st.AcctQueue)
		for _, k := range sortedKeys(st.Counters) {
			fmt.Fprintf(tw, "%s\t%d\n", k, st.Counters[k])
		}
		for _, k := range sortedKeys(st.Drops) {
			fmt.Fprintf(tw, "drop.%s\t%d\n", k, st.Drops[k])
		}
		fmt.Fprintf(tw, "sessions_in_setup\t%d\n", st.SessionsInSetup)
		for _, k := range sortedKeys(st.Refused) {
			fmt.Fprintf(tw, "refused.%s\t%d\n", k, st.Refused[k])
		}
		for _, k := range sortedKeys(st.Offload) {
			fmt.Fprintf(tw, "%s\t%d\n", k, st.Offload[k])
		}
	case admin.CmdClearTunnel, admin.CmdClearSession:
		var c admin.Cleared
		if err := json.Unmarshal(data, &c); err != nil {
			return fmt.Errorf("bad answer from l2tpd: %w", err)
		}
		fmt.Fprintf(tw, "%s %d cleared\n", c.Cleared, c.ID)
	case admin.CmdLogLevel:
		var l admin.LevelChange
		if err := json.Unmarshal(data, &l); err != nil {
			return fmt.Errorf("bad answer from l2tpd: %w", err)
		}
		fmt.Fprintf(tw, "log level %s (was %s)\n", l.Level, l.Previous)
	case admin.CmdReload:
		var d control.Diff
		if err := json.Unmarshal(data, &d); err != nil {
			return fmt.Errorf("bad answer from l2tpd: %w", err)
		}
		state := "dry run: nothing applied"
		if d.Applied {
			state = "applied"
		}
		fmt.Fprintf(tw, "reload %s (config %s)\n", state, d.ConfigHash)
		if len(d.Changes) == 0 {
			fmt.Fprintln(tw, "  no changes")
		}
		for _, c := range d.Changes {
			fmt.Fprintf(tw, "  %s\n", c)
		}
		if len(d.AffectedTunnels) > 0 {
			fmt.Fprintf(tw, "tunnels keeping their old peer settings until they reconnect: %v\n", d.AffectedTunnels)
		}
		if len(d.ListenerTunnels) > 0 {
			fmt.Fprintf(tw, "tunnels kept on removed listeners until they end: %v\n", d.ListenerTunnels)
		}
		if len(d.DrainingSessions) > 0 {
			fmt.Fprintf(tw, "sessions keeping addresses from draining pools: %v\n", d.DrainingSessions)
		}
	}
	return tw.Flush()
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// dash keeps empty cells visible so columns stay parseable by awk.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// uptime prints whole seconds compactly: 45s, 3m05s, 2h03m05s, 4d02h03m.
func uptime(seconds float64) string {
	if seconds < 0 {
		seconds = 0
	}
	d := time.Duration(seconds) * time.Second
	days := d / (24 * time.Hour)
	h := (d % (24 * time.Hour)) / time.Hour
	m := (d % time.Hour) / time.Minute
	s := (d % time.Minute) / time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%02dh%02dm", days, h, m)
	case h > 0:
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}
