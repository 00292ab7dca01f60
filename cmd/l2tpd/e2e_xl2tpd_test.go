package main_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Addresses of the veth pair between the LAC and LNS namespaces, from
// the 198.18.0.0/15 benchmarking range (RFC 2544).
const (
	xlLACAddr   = "198.18.7.1"
	xlLNSAddr   = "198.18.7.2"
	xlLACIf     = "veth-lac"
	xlLNSIf     = "veth-lns"
	xlLACHost   = "e2e-lac"
	xlLNSHost   = "l2tpd-e2e"
	xlPPPDPath  = "/usr/sbin/pppd" // where xl2tpd 1.3 runs pppd from
	xlCallName  = "e2e"
	xlTunSecret = "e2e-tunnel-secret"
)

// xl2tpd as LAC in one namespace, l2tpd as LNS in another: tunnel and
// call set-up, then the LAC's pppd fails (there is no /dev/ppp) and
// xl2tpd clears the call with a CDN (RFC 2661 §5.1, §5.2, §6.12).
func TestE2EXl2tpdLAC(t *testing.T) {
	requireE2E(t, "ip", "xl2tpd", "tshark", "unshare", "mount")
	for _, sc := range []struct {
		name   string
		secret string // shared secret; enables challenges both ways
		hide   bool   // l2tpd hides its AVPs (RFC 2661 §4.3)
	}{
		{name: "no-secret"},
		{name: "challenge", secret: xlTunSecret},
		{name: "hidden-avps", secret: xlTunSecret, hide: true},
	} {
		t.Run(sc.name, func(t *testing.T) {
			ns := newNetnsPair(t)
			dir := t.TempDir()
			pcap := filepath.Join(dir, "lns.pcap")
			capt := startCapture(t, ns.lns, xlLNSIf, pcap)

			cfg := l2tpdConfig{HostName: xlLNSHost, Listen: xlLNSAddr + ":1701"}
			if sc.secret != "" {
				cfg.Peers = []peerConfig{{
					Name: "xl2tpd-lac", HostName: xlLACHost,
					Addresses: []string{xlLACAddr + "/32"},
					Secret:    sc.secret, HideAVPs: sc.hide,
				}}
			}
			d := startL2TPD(t, ns.lns, cfg)
			lac := startXl2tpdLAC(t, ns.lac, sc.secret)
			lac.call(t)
			if sc.hide {
				// RFC 2661 §4.3: judge l2tpd's hiding on its own first,
				// so a failure says which side is wrong. The SCCRP goes
				// unhidden (xl2tpd reads it before it has a secret); the
				// ICRP hides the Assigned Session ID.
				var icrp tMsg
				capt.waitFor(t, "l2tpd's ICRP", func(frames []pcapFrame) bool {
					for _, fr := range frames {
						if m, err := parseL2TP(fr.Payload); err == nil && fr.Src.String() == xlLNSAddr && m.Type == mtICRP {
							icrp = m
							return true
						}
					}
					return false
				})
				if len(icrp.AVPs) < 2 || !icrp.AVPs[2].Hidden {
					t.Errorf("l2tpd's ICRP hides nothing: %v", icrp)
				}
				if err := icrp.unhideAll(sc.secret); err != nil {
					t.Errorf("l2tpd's ICRP: %v", err)
				}
				if id, ok := icrp.uint16AVP(avpAssignedSessionID); !ok || id == 0 {
					t.Errorf("l2tpd's ICRP Assigned Session ID after unhiding: %d, %v", id, ok)
				}
			}

			// RFC 2661 §7.2: established once the SCCCN is in.
			tu := d.waitTunnel(t, "tunnel from xl2tpd established", func(tu tunnelJSON) bool {
				return tu.State == "established"
			})
			if tu.Version != 2 || tu.PeerHostName != xlLACHost || !strings.Contains(tu.Peer, xlLACAddr) {
				t.Errorf("tunnel %+v; want version 2, peer %s, host name %s", tu, xlLACAddr, xlLACHost)
			}
			// RFC 2661 §7.4.1: established once the ICCN is in. The
			// LAC's pppd is held until this has been seen.
			s := d.waitSession(t, "session from xl2tpd established", func(s sessionJSON) bool {
				return s.TunnelID == tu.TunnelID && s.State == "established"
			})
			lac.releasePPPD(t)
			d.waitSessionGone(t, "session cleared by xl2tpd's CDN", s.SessionID)
			// xl2tpd closes the tunnel after its last call (StopCCN);
			// either way no session may be left on it.
			d.waitFor(t, "tunnel closed or without sessions", func() error {
				ts, err := d.tunnels()
				if err != nil {
					return err
				}
				for _, x := range ts {
					if x.TunnelID == tu.TunnelID && (x.Sessions != 0 || x.State != "established") {
						return fmt.Errorf("%w: %+v", errNotYet, x)
					}
				}
				return nil
			})
			if _, err := d.tunnels(); err != nil || d.exited() {
				t.Fatalf("l2tpd not serving after the CDN: %v, exited %v", err, d.exited())
			}
			d.checkLog(t)

			// dumpcap drops what the kernel has not handed it yet when
			// stopped, so wait until the CDN and l2tpd's answer to it
			// are on disk.
			capt.waitFor(t, "xl2tpd's CDN and l2tpd's acknowledgement", func(frames []pcapFrame) bool {
				cdn := -1
				for i, fr := range frames {
					m, err := parseL2TP(fr.Payload)
					if err != nil || !m.Control {
						continue
					}
					if fr.Src.String() == xlLACAddr && m.Type == mtCDN {
						cdn = i
					}
					if cdn >= 0 && i > cdn && fr.Src.String() == xlLNSAddr {
						return true
					}
				}
				return false
			})
			capt.stop(t)
			checkCaptureWithTshark(t, pcap, sc.secret)
			checkCaptureFlow(t, pcap, sc.secret, sc.hide)
		})
	}
}

type netnsPair struct{ lac, lns string }

// newNetnsPair creates two namespaces joined by a veth pair; the
// interfaces are created inside them, so no name touches the host.
func newNetnsPair(t *testing.T) netnsPair {
	t.Helper()
	n := nextSeq()
	p := netnsPair{
		lac: fmt.Sprintf("l2tpd-e2e-%d-%d-lac", os.Getpid(), n),
		lns: fmt.Sprintf("l2tpd-e2e-%d-%d-lns", os.Getpid(), n),
	}
	for _, ns := range []string{p.lac, p.lns} {
		mustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	mustRun(t, "ip", "link", "add", "name", xlLACIf, "netns", p.lac, "type", "veth", "peer", "name", xlLNSIf, "netns", p.lns)
	for _, x := range []struct{ ns, ifc, addr string }{{p.lac, xlLACIf, xlLACAddr}, {p.lns, xlLNSIf, xlLNSAddr}} {
		mustRun(t, "ip", "-n", x.ns, "addr", "add", x.addr+"/30", "dev", x.ifc)
		mustRun(t, "ip", "-n", x.ns, "link", "set", x.ifc, "up")
		mustRun(t, "ip", "-n", x.ns, "link", "set", "lo", "up")
	}
	return p
}

func mustRun(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

type capture struct {
	p    *proc
	file string
}

// startCapture runs tshark on ifc inside ns, writing classic pcap, and
// waits until it reports that it captures.
func startCapture(t *testing.T, ns, ifc, file string) *capture {
	t.Helper()
	p := startProc(t, "tshark", file+".log",
		"ip", "netns", "exec", ns, "tshark", "-n", "-i", ifc, "-F", "pcap", "-w", file, "-f", "udp port 1701")
	p.waitLog(t, "Capturing on", waitTimeout)
	c := &capture{p: p, file: file}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- capture %s ----\n%s", file, c.summary())
		}
	})
	return c
}

// summary lists the captured control messages with their AVP types
// (an H marks a hidden AVP), for the log of a failed test.
func (c *capture) summary() string {
	frames, err := readPcapUDP(c.file)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, fr := range frames {
		m, err := parseL2TP(fr.Payload)
		if err != nil {
			fmt.Fprintf(&b, "%d %v: %v\n", fr.Number, fr.Src, err)
			continue
		}
		fmt.Fprintf(&b, "%d %v %v", fr.Number, fr.Src, m)
		for _, a := range m.AVPs {
			h := ""
			if a.Hidden {
				h = "H"
			}
			fmt.Fprintf(&b, " %d%s", a.Type, h)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// waitFor polls the capture file until cond holds for what it has.
func (c *capture) waitFor(t *testing.T, what string, cond func([]pcapFrame) bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		// A record being written makes the file unreadable for a moment.
		frames, err := readPcapUDP(c.file)
		if err == nil && cond(frames) {
			return
		}
		if c.p.exited() {
			t.Fatalf("tshark exited while waiting for %s: %v", what, c.p.waitErr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("capture %s did not show %s within %v (%d frames, %v)", c.file, what, waitTimeout, len(frames), err)
		}
		time.Sleep(pollInterval)
	}
}

// stop ends the capture with SIGINT to tshark alone (not its process
// group): tshark then stops dumpcap itself, which writes out the packets
// it still holds.
func (c *capture) stop(t *testing.T) {
	t.Helper()
	if ok, _ := c.p.stop(syscall.SIGINT); !ok {
		t.Fatalf("tshark did not stop within %v of SIGINT", stopTimeout)
	}
}

// checkCaptureWithTshark has Wireshark's dissector judge every packet
// l2tpd sent: each is L2TP and none is malformed or draws a warning.
func checkCaptureWithTshark(t *testing.T, file, secret string) {
	t.Helper()
	base := []string{"-n", "-r", file, "-d", "udp.port==1701,l2tp"}
	if secret != "" {
		base = append(base, "-o", "l2tp.shared_secret:"+secret)
	}
	fields := func(filter string, extra ...string) []string {
		args := append(append([]string{}, base...), "-Y", filter, "-T", "fields", "-e", "frame.number")
		args = append(args, extra...)
		cmd := exec.Command("tshark", args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.Fields(string(out))
	}
	from := "ip.src == " + xlLNSAddr
	if bad := fields(from+" && (_ws.malformed || _ws.expert.severity >= warning)", "-e", "_ws.expert.message"); len(bad) > 0 {
		t.Errorf("tshark flags packets l2tpd sent (frame, message): %v", bad)
	}
	if n := len(fields(from + " && l2tp")); n == 0 {
		t.Error("tshark decodes no L2TP packet from l2tpd")
	}
	if other := fields(from + " && !l2tp"); len(other) > 0 {
		t.Errorf("packets from l2tpd that tshark does not decode as L2TP: frames %v", other)
	}
}

// checkCaptureFlow checks the captured exchange with the tests' own
// reader: the message sequence, the challenges (RFC 2661 §5.1.1) and
// that l2tpd hid AVPs when told to (§4.3).
func checkCaptureFlow(t *testing.T, file, secret string, hide bool) {
	t.Helper()
	frames, err := readPcapUDP(file)
	if err != nil {
		t.Fatal(err)
	}
	var fromLAC, fromLNS []tMsg
	hidden := 0
	for _, fr := range frames {
		m, err := parseL2TP(fr.Payload)
		if err != nil {
			t.Fatalf("frame %d from %v: %v", fr.Number, fr.Src, err)
		}
		if !m.Control || m.ZLB {
			continue
		}
		switch fr.Src.String() {
		case xlLACAddr:
			fromLAC = append(fromLAC, m)
		case xlLNSAddr:
			for _, a := range m.AVPs {
				if a.Hidden {
					hidden++
				}
			}
			if err := m.unhideAll(secret); err != nil {
				t.Errorf("frame %d: l2tpd's %v: %v", fr.Number, m, err)
			}
			fromLNS = append(fromLNS, m)
		}
	}
	first := func(ms []tMsg, typ uint16) (tMsg, bool) {
		for _, m := range ms {
			if m.Type == typ {
				return m, true
			}
		}
		return tMsg{}, false
	}
	for _, want := range []uint16{mtSCCRQ, mtSCCCN, mtICRQ, mtICCN, mtCDN} {
		if _, ok := first(fromLAC, want); !ok {
			t.Errorf("xl2tpd sent no %s: %v", msgTypeName(want), fromLAC)
		}
	}
	for _, want := range []uint16{mtSCCRP, mtICRP} {
		if _, ok := first(fromLNS, want); !ok {
			t.Errorf("l2tpd sent no %s: %v", msgTypeName(want), fromLNS)
		}
	}
	for _, m := range fromLNS {
		if m.Type == mtStopCCN || m.Type == mtCDN {
			t.Errorf("l2tpd tore down (%v); the LAC was to do it", m)
		}
	}
	if hide && hidden == 0 {
		t.Error("hide_avps is set but l2tpd sent no hidden AVP")
	}
	if !hide && hidden != 0 {
		t.Errorf("hide_avps is not set but l2tpd sent %d hidden AVPs", hidden)
	}
	sccrq, _ := first(fromLAC, mtSCCRQ)
	sccrp, _ := first(fromLNS, mtSCCRP)
	scccn, _ := first(fromLAC, mtSCCCN)
	if secret == "" {
		if _, ok := sccrp.find(avpChallenge); ok {
			t.Error("l2tpd challenged a peer without a secret")
		}
		return
	}
	lacChal, ok := sccrq.find(avpChallenge)
	if !ok {
		t.Fatal("xl2tpd sent no Challenge; the scenario does not test tunnel authentication")
	}
	if resp, ok := sccrp.find(avpChallengeResponse); !ok {
		t.Error("l2tpd's SCCRP has no Challenge Response")
	} else if !bytes.Equal(resp.Value, challengeResponse(mtSCCRP, secret, lacChal.Value)) {
		t.Errorf("l2tpd's Challenge Response %x is wrong", resp.Value)
	}
	lnsChal, ok := sccrp.find(avpChallenge)
	if !ok {
		t.Fatal("l2tpd with a secret sent no Challenge")
	}
	if resp, ok := scccn.find(avpChallengeResponse); !ok {
		t.Error("xl2tpd's SCCCN has no Challenge Response")
	} else if !bytes.Equal(resp.Value, challengeResponse(mtSCCCN, secret, lnsChal.Value)) {
		t.Errorf("xl2tpd's SCCCN response %x does not answer l2tpd's challenge %x", resp.Value, lnsChal.Value)
	}
}

// xl2tpdLAC is an xl2tpd running as LAC with private files.
type xl2tpdLAC struct {
	p       *proc
	ctl     string
	release string
}

// startXl2tpdLAC starts xl2tpd in the foreground in ns. Its pppd is a
// wrapper (bind-mounted in a private mount namespace) that holds the
// call until releasePPPD, then runs the real pppd, which fails for lack
// of /dev/ppp; that makes the moment of xl2tpd's CDN the test's choice.
func startXl2tpdLAC(t *testing.T, ns, secret string) *xl2tpdLAC {
	t.Helper()
	dir := t.TempDir()
	x := &xl2tpdLAC{ctl: filepath.Join(dir, "l2tp-control"), release: filepath.Join(dir, "release-pppd")}
	auth := "no"
	if secret != "" {
		auth = "yes"
	}
	conf := fmt.Sprintf(`[global]
port = 1701
listen-addr = %s
auth file = %s
access control = no

[lac %s]
lns = %s
hostname = %s
name = %s
require authentication = %s
challenge = %s
require chap = no
refuse pap = yes
pppoptfile = %s
ppp debug = no
autodial = no
redial = no
`, xlLACAddr, filepath.Join(dir, "l2tp-secrets"), xlCallName, xlLNSAddr, xlLACHost, xlLACHost, auth, auth, filepath.Join(dir, "options"))
	secrets := "# them us secret\n"
	if secret != "" {
		secrets += "* * " + secret + "\n"
	}
	wrapper := fmt.Sprintf(`#!/bin/sh
i=0
while [ ! -e %[1]s ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
[ -e /dev/ppp ] && exit 4
exec %[2]s "$@"
`, x.release, filepath.Join(dir, "pppd.real"))
	for _, f := range []struct {
		name, body string
		mode       os.FileMode
	}{
		{"xl2tpd.conf", conf, 0o600},
		{"l2tp-secrets", secrets, 0o600},
		{"options", "noauth\n", 0o600},
		{"pppd-wrapper", wrapper, 0o755},
		{"pppd.real", "", 0o755},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	script := fmt.Sprintf("set -e; mount --bind %s %s; mount --bind %s %s; exec xl2tpd -D -c %s -p %s -C %s",
		xlPPPDPath, filepath.Join(dir, "pppd.real"),
		filepath.Join(dir, "pppd-wrapper"), xlPPPDPath,
		filepath.Join(dir, "xl2tpd.conf"), filepath.Join(dir, "xl2tpd.pid"), x.ctl)
	x.p = startProc(t, "xl2tpd", filepath.Join(dir, "xl2tpd.log"),
		"ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	x.p.waitLog(t, "Listening on IP address", waitTimeout)
	// Let the wrapper go at the end whatever happened, so no pppd
	// waits on a file that will never appear.
	t.Cleanup(func() { os.WriteFile(x.release, nil, 0o600) })
	return x
}

// call asks xl2tpd through its control FIFO to open the tunnel and a call.
func (x *xl2tpdLAC) call(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		// Non-blocking: fails with ENXIO while xl2tpd has no reader open.
		f, err := os.OpenFile(x.ctl, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			_, err = f.Write([]byte("c " + xlCallName + "\n"))
			f.Close()
			if err != nil {
				t.Fatalf("writing xl2tpd's control file: %v", err)
			}
			return
		}
		if !errors.Is(err, syscall.ENXIO) && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("opening xl2tpd's control file: %v", err)
		}
		if x.p.exited() || time.Now().After(deadline) {
			t.Fatalf("xl2tpd's control file %s not usable (exited %v): %v", x.ctl, x.p.exited(), err)
		}
		time.Sleep(pollInterval)
	}
}

// releasePPPD lets the held pppd run and fail.
func (x *xl2tpdLAC) releasePPPD(t *testing.T) {
	t.Helper()
	if err := os.WriteFile(x.release, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		t.Fatal(err)
	}
}
