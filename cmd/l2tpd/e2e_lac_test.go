package main_test

// Our LAC (l2tpbench, which dials through control/lac) against third-party
// LNSs in network namespaces: xl2tpd with slirp as its PPP peer, and
// l2tpns authenticating against FreeRADIUS.

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/aaa/radiustest"
)

var lacBench struct {
	once sync.Once
	bin  string
	err  error
}

// l2tpbenchBin builds l2tpbench (with the race detector) next to the
// other test binaries.
func l2tpbenchBin(t *testing.T) string {
	t.Helper()
	lacBench.once.Do(func() {
		dir := binDir
		if dir == "" {
			dir = t.TempDir()
		}
		out := filepath.Join(dir, "l2tpbench")
		goTool := "go"
		if root := os.Getenv("GOROOT"); root != "" && fileExists(filepath.Join(root, "bin", "go")) {
			goTool = filepath.Join(root, "bin", "go")
		}
		cmd := exec.Command(goTool, "build", "-race", "-o", out, "github.com/l2tpd/l2tpd/cmd/l2tpbench")
		if msg, err := cmd.CombinedOutput(); err != nil {
			lacBench.err = fmt.Errorf("go build l2tpbench: %v\n%s", err, msg)
			return
		}
		lacBench.bin = out
	})
	if lacBench.err != nil {
		t.Fatal(lacBench.err)
	}
	return lacBench.bin
}

// benchReport is the part of l2tpbench's JSON report the tests read.
type benchReport struct {
	Attempted    int64                          `json:"attempted"`
	Up           int64                          `json:"up"`
	Failed       int64                          `json:"failed"`
	FailedBy     map[string]int                 `json:"failed_by_reason"`
	DataSent     uint64                         `json:"data_sent"`
	DataReceived uint64                         `json:"data_received"`
	Latency      map[string]struct{ Count int } `json:"latency"`
	LAC          struct {
		TunnelsUp uint64
		CallsUp   uint64
	} `json:"lac"`
}

// runBench runs l2tpbench in ns and returns its report.
func runBench(t *testing.T, ns string, args ...string) benchReport {
	t.Helper()
	dir := t.TempDir()
	js := filepath.Join(dir, "report.json")
	argv := append([]string{"netns", "exec", ns, l2tpbenchBin(t), "-json", js, "-progress", "0"}, args...)
	cmd := exec.Command("ip", argv...)
	out, err := cmd.CombinedOutput()
	var rep benchReport
	b, rerr := os.ReadFile(js)
	if rerr != nil {
		t.Fatalf("l2tpbench %s: %v (no report: %v)\n%s", strings.Join(args, " "), err, rerr, out)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	if strings.Contains(string(out), "WARNING: DATA RACE") {
		t.Fatalf("l2tpbench raced:\n%s", out)
	}
	t.Logf("l2tpbench %s: exit %v, report %s", strings.Join(args, " "), err, b)
	return rep
}

// xl2tpd as LNS: its PPP program is slirp (bind-mounted over pppd in a
// private mount namespace), so PPP runs between our client and slirp.
func startXl2tpdLNS(t *testing.T, ns, secret string) *proc {
	t.Helper()
	dir := t.TempDir()
	conf := fmt.Sprintf(`[global]
port = 1701
listen-addr = %s
access control = no
auth file = %s

[lns default]
ip range = 100.64.9.10-100.64.9.50
local ip = 100.64.9.1
require authentication = no
challenge = yes
hidden bit = yes
hostname = xl2tpd-lns
ppp debug = no
length bit = yes
`, xlLNSAddr, filepath.Join(dir, "l2tp-secrets"))
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	slirpLog := filepath.Join(dir, "slirp.log")
	wrapper := fmt.Sprintf("#!/bin/sh\nHOME=%s\nexport HOME\nexec %s -P nozeros ppp_exit 2>>%s\n", home, pppSlirpBin, slirpLog)
	for _, f := range []struct {
		name, body string
		mode       os.FileMode
	}{
		{"xl2tpd.conf", conf, 0o600},
		{"l2tp-secrets", fmt.Sprintf("* * %s\n", secret), 0o600},
		{"pppd-wrapper", wrapper, 0o755},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { killNetnsProcs(ns) })
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(slirpLog)
			t.Logf("---- slirp log ----\n%s", b)
		}
	})
	script := fmt.Sprintf("set -e; mount --bind %s %s; exec xl2tpd -D -c %s -p %s -C %s",
		filepath.Join(dir, "pppd-wrapper"), xlPPPDPath, filepath.Join(dir, "xl2tpd.conf"),
		filepath.Join(dir, "xl2tpd.pid"), filepath.Join(dir, "l2tp-control"))
	p := startProc(t, "xl2tpd", filepath.Join(dir, "xl2tpd.log"),
		"ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	p.waitLog(t, "Listening on IP address", waitTimeout)
	return p
}

// Our LAC against xl2tpd as LNS (RFC 2661): a tunnel with challenge/
// response authentication and hidden AVPs both ways, incoming calls
// established (xl2tpd logs them), and PPP between our client and slirp
// up to IPCP.
func TestE2ELACXl2tpdLNS(t *testing.T) {
	requireE2E(t, "xl2tpd", "unshare", pppSlirpBin)
	nets := newNetnsPair(t)
	x := startXl2tpdLNS(t, nets.lns, "lac-e2e-secret")
	pcap := filepath.Join(t.TempDir(), "lac-xl2tpd.pcap")
	capt := startCapture(t, nets.lac, xlLACIf, pcap)
	rep := runBench(t, nets.lac, "-lns", xlLNSAddr, "-secret", "lac-e2e-secret", "-hide", "-sessions", "2",
		"-auth", "pap", "-user", "e2e", "-password", "pw", "-timeout", "20s", "-shards", "1")
	capt.stop(t)
	checkLACCapture(t, pcap, "lac-e2e-secret")
	log := x.log()
	if !strings.Contains(log, "Connection established to "+xlLACAddr) {
		t.Fatalf("xl2tpd did not establish the tunnel:\n%s", log)
	}
	if n := strings.Count(log, "Call established with "+xlLACAddr); n != 2 {
		t.Fatalf("xl2tpd established %d calls, want 2:\n%s", n, log)
	}
	if rep.LAC.TunnelsUp != 1 || rep.LAC.CallsUp != 2 {
		t.Fatalf("LAC: %+v", rep.LAC)
	}
	if rep.Up != 2 || rep.Failed != 0 {
		t.Fatalf("PPP with slirp: up %d failed %d %v", rep.Up, rep.Failed, rep.FailedBy)
	}
}

// checkLACCapture reads what crossed the veth: our SCCRQ carries a
// Challenge and xl2tpd's SCCRP the matching Challenge Response (RFC 2661
// §5.1.1); our call messages carry hidden AVPs that unhide with the
// secret (§4.3).
func checkLACCapture(t *testing.T, file, secret string) {
	t.Helper()
	frames, err := readPcapUDP(file)
	if err != nil {
		t.Fatal(err)
	}
	var sawChallenge, sawResponse bool
	hiddenFrom := map[string]int{}
	types := map[string][]string{}
	for _, fr := range frames {
		m, err := parseL2TP(fr.Payload)
		if err != nil || !m.Control || m.ZLB {
			continue
		}
		src := fr.Src.String()
		types[src] = append(types[src], msgTypeName(m.Type))
		for _, a := range m.AVPs {
			if a.Hidden {
				hiddenFrom[src]++
			}
			if src == xlLACAddr && m.Type == 1 && a.Type == 11 {
				sawChallenge = true
			}
			if src == xlLNSAddr && m.Type == 2 && a.Type == 13 {
				sawResponse = true
			}
		}
		if err := m.unhideAll(secret); err != nil {
			t.Errorf("frame %d from %s: %v", fr.Number, src, err)
		}
	}
	if !sawChallenge || !sawResponse {
		t.Errorf("challenge in SCCRQ %v, response in SCCRP %v; messages %v", sawChallenge, sawResponse, types)
	}
	// xl2tpd hides nothing in the few messages it sends here (SCCRP,
	// ICRP); what it does hide is checked by unhideAll above.
	if hiddenFrom[xlLACAddr] == 0 {
		t.Errorf("hidden AVPs by sender %v; messages %v", hiddenFrom, types)
	}
}

// startL2tpns runs l2tpns as LNS in ns, on a TUN device of its own,
// authenticating against a FreeRADIUS in the same namespace.
func startL2tpns(t *testing.T, ns, secret string, radius netip.AddrPort) *proc {
	t.Helper()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "l2tpns.log")
	conf := fmt.Sprintf(`set debug 3
set log_file %q
set pid_file %q
set l2tp_secret %q
set primary_dns 192.0.2.53
set primary_radius %s
set primary_radius_port %d
set radius_secret %q
set radius_accounting no
set radius_authtypes "chap,pap"
set bind_address %s
set cli_bind_address 127.0.0.1
set cluster_interface %q
set cluster_hb_timeout 5
set allow_duplicate_users yes
`, logFile, filepath.Join(dir, "l2tpns.pid"), secret, radius.Addr(), radius.Port(), radiustest.Secret, xlLNSAddr, xlLNSIf)
	if err := os.WriteFile(filepath.Join(dir, "startup-config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killNetnsProcs(ns) })
	p := startProc(t, "l2tpns", filepath.Join(dir, "stdout.log"),
		"ip", "netns", "exec", ns, "l2tpns", "-c", filepath.Join(dir, "startup-config"), "-h", "l2tpns-e2e")
	// l2tpns logs to its log file once the configuration is read.
	deadline := time.Now().Add(waitTimeout)
	for {
		b, _ := os.ReadFile(logFile)
		if strings.Contains(string(b), "I am declaring myself the master") {
			break
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("l2tpns not ready (exited %v):\n%s\n%s", p.exited(), b, p.log())
		}
		time.Sleep(pollInterval)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("---- l2tpns log ----\n%s", b)
		}
	})
	return p
}

// Our LAC against l2tpns as LNS (RFC 2661 tunnel with a secret): PPP
// comes up with CHAP-MD5 and with PAP, both checked by FreeRADIUS
// (RFC 2865), and ICMP echoes to l2tpns' address come back through the
// tunnel (l2tpns forwards them to its TUN; the kernel answers).
func TestE2ELACL2tpnsLNS(t *testing.T) {
	requireE2E(t, "l2tpns", "freeradius")
	nets := newNetnsPair(t)
	fr := radiustest.New(t, "e2e Cleartext-Password := \"e2e-pass\"\n")
	fr.AllowWithoutMessageAuthenticator()
	if err := inNetns(nets.lns, func() error { fr.Start(); return nil }); err != nil {
		t.Fatal(err)
	}
	startL2tpns(t, nets.lns, "lac-l2tpns-secret", fr.Auth())
	for _, tc := range []struct {
		auth     string
		sessions int
	}{{"chap", 3}, {"pap", 2}} {
		rep := runBench(t, nets.lac, "-lns", xlLNSAddr, "-secret", "lac-l2tpns-secret", "-sessions", strconv.Itoa(tc.sessions),
			"-auth", tc.auth, "-user", "e2e", "-password", "e2e-pass", "-timeout", "20s", "-traffic", "20", "-duration", "2s")
		if rep.Up != int64(tc.sessions) || rep.Failed != 0 {
			t.Fatalf("%s: up %d failed %d %v", tc.auth, rep.Up, rep.Failed, rep.FailedBy)
		}
		if rep.Latency["auth"].Count != tc.sessions {
			t.Fatalf("%s: %d authentications timed", tc.auth, rep.Latency["auth"].Count)
		}
		if rep.DataSent == 0 || rep.DataReceived*10 < rep.DataSent*9 {
			t.Fatalf("%s: %d echo requests sent, %d replies", tc.auth, rep.DataSent, rep.DataReceived)
		}
	}
	if n := strings.Count(fr.Log(), "Sent Access-Accept"); n < 5 {
		t.Fatalf("FreeRADIUS sent %d Access-Accepts, want 5:\n%s", n, fr.Log())
	}
	// A wrong password is refused by FreeRADIUS, and l2tpns clears the call.
	rep := runBench(t, nets.lac, "-lns", xlLNSAddr, "-secret", "lac-l2tpns-secret", "-auth", "chap", "-user", "e2e",
		"-password", "wrong", "-timeout", "20s")
	if rep.Up != 0 || rep.Failed != 1 {
		t.Fatalf("wrong password: up %d failed %d %v", rep.Up, rep.Failed, rep.FailedBy)
	}
}
