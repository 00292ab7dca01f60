package main_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A real third-party PPP subscriber: slirp (a user-mode PPP server and
// NAT, testdata/ppp/README.md) runs where xl2tpd would run pppd on the
// LAC, and l2tpd terminates its PPP and forwards its IP through its TUN.
const (
	pppSlirpBin      = "/usr/bin/slirp-fullbolt"
	pppTUN           = "l2tp0"
	pppLocalIPv4     = "100.64.0.1"
	pppPoolFirst     = "100.64.0.10"
	pppPoolLast      = "100.64.0.250"
	pppUser          = "e2e-slirp"
	pppPassword      = "slirp-pass"
	pppWrongPassword = "not-the-password"
	// pppRedirPort is where slirp listens in the LAC namespace; it relays
	// each datagram over PPP to pppLocalIPv4:pppLNSPort.
	pppRedirPort = 5555
	// pppLNSPort is the UDP echo service behind l2tpd's TUN.
	pppLNSPort = 6666
	// pppSubscriberPort is the UDP echo service on the subscriber side
	// (the LAC namespace, where slirp's NAT sends what reaches it).
	pppSubscriberPort = 7777
	// pppEchoPort is the UDP echo port slirp probes to answer a ping
	// addressed through it.
	pppEchoPort = 7
)

// pppSessionJSON is what `l2tpctl -o json show sessions` reports about a
// PPP-terminated session.
type pppSessionJSON struct {
	SessionID uint32 `json:"session_id"`
	TunnelID  uint32 `json:"tunnel_id"`
	State     string `json:"state"`
	UserName  string `json:"user_name"`
	IPv4      string `json:"ipv4"`
	IPv6      string `json:"ipv6"`
	PPPState  string `json:"ppp_state"`
}

// xl2tpd with slirp as the LAC, l2tpd as the LNS with PPP termination
// and its TUN: PAP (RFC 1334 §2), IPCP (RFC 1332) with an address from
// the pool, then ICMP and UDP through the tunnel both ways. The capture
// of the tunnel is judged by Wireshark's dissectors.
func TestE2EPPPSlirp(t *testing.T) {
	requireE2E(t, "ip", "xl2tpd", "tshark", "unshare", "mount", pppSlirpBin)
	for _, sc := range []struct {
		name     string
		auth     []string
		password string // what slirp sends
		wantUp   bool
	}{
		{name: "pap", auth: []string{"pap"}, password: pppPassword, wantUp: true},
		// slirp answers a CHAP request with a Configure-Nak suggesting
		// PAP (RFC 1661 §5.3); l2tpd then asks for PAP.
		{name: "chap-nak-to-pap", auth: []string{"chap", "pap"}, password: pppPassword, wantUp: true},
		// RFC 1334 §2.2.1: a wrong password gets an Authenticate-Nak and
		// the link goes no further.
		{name: "wrong-password", auth: []string{"pap"}, password: pppWrongPassword},
	} {
		t.Run(sc.name, func(t *testing.T) {
			ns := newNetnsPair(t)
			dir := t.TempDir()
			pcap := filepath.Join(dir, "lns.pcap")
			capt := startCapture(t, ns.lns, xlLNSIf, pcap)
			d := startPPPL2TPD(t, ns.lns, sc.auth)
			lac := startXl2tpdSlirp(t, ns.lac, sc.password)
			lac.call(t)

			if !sc.wantUp {
				checkPAPRefused(t, d, capt)
				capt.stop(t)
				checkCaptureWithTshark(t, pcap, "")
				return
			}

			s := waitNetworkPhase(t, d)
			if s.UserName != pppUser {
				t.Errorf("session user_name %q; want %q (slirp's PAP Peer-ID)", s.UserName, pppUser)
			}
			if s.IPv6 != "" {
				t.Errorf("session ipv6 %q with ppp.ipv6 off", s.IPv6)
			}
			sub := s.subscriberAddr(t)
			checkKernelRouting(t, ns.lns, sub)

			// slirp's NAT answers from the LAC namespace: give it the
			// subscriber's address and the services it relays to.
			mustRun(t, "ip", "-n", ns.lac, "addr", "add", sub.String()+"/32", "dev", "lo")
			echo7 := startUDPEcho(t, ns.lac, netip.AddrPortFrom(netip.IPv4Unspecified(), pppEchoPort))
			subEcho := startUDPEcho(t, ns.lac, netip.AddrPortFrom(netip.IPv4Unspecified(), pppSubscriberPort))
			lnsEcho := startUDPEcho(t, ns.lns, netip.AddrPortFrom(netip.IPv4Unspecified(), pppLNSPort))

			pingMark := []byte("l2tpd-e2e icmp lns to subscriber")
			pingThroughTunnel(t, ns.lns, sub, pingMark)
			if !echo7.sawFrom(sub) {
				t.Errorf("slirp did not relay the ping to the echo port of %v; the reply came from elsewhere", sub)
			}

			downMark := []byte("l2tpd-e2e udp lns to subscriber")
			from := udpExchange(t, ns.lns, netip.AddrPort{}, netip.AddrPortFrom(sub, pppSubscriberPort), downMark)
			if from != netip.AddrPortFrom(sub, pppSubscriberPort) {
				t.Errorf("UDP answer from %v; want it from the subscriber %v", from, netip.AddrPortFrom(sub, pppSubscriberPort))
			}
			if !subEcho.sawFrom(sub) {
				t.Errorf("subscriber-side echo service saw no datagram relayed by slirp from %v", sub)
			}

			upMark := []byte("l2tpd-e2e udp subscriber to lns")
			udpExchange(t, ns.lac, netip.AddrPortFrom(sub, 0), netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", pppRedirPort)), upMark)
			if !lnsEcho.sawFrom(sub) {
				t.Errorf("echo service behind %s saw nothing from the subscriber %v: %v", pppTUN, sub, lnsEcho.sources())
			}

			// RFC 1661 §5.8: once the link is idle l2tpd's keepalive
			// starts, and slirp answers it.
			capt.waitFor(t, "an LCP Echo-Request from l2tpd and slirp's Echo-Reply", func(frames []pcapFrame) bool {
				return pppCaptureHasLCP(frames, xlLNSAddr, 9) && pppCaptureHasLCP(frames, xlLACAddr, 10)
			})
			if got, err := d.pppSessions(); err != nil || len(got) != 1 || got[0].PPPState != "network" {
				t.Errorf("after the traffic: sessions %+v, %v; want the one session still in the network phase", got, err)
			}
			d.checkLog(t)

			// Every marker must be on disk in both directions before
			// the capture stops (dumpcap drops what it still holds).
			capt.waitFor(t, "the test traffic inside the tunnel", func(frames []pcapFrame) bool {
				for _, m := range [][]byte{pingMark, downMark, upMark} {
					if !pppCaptureHas(frames, xlLNSAddr, m) || !pppCaptureHas(frames, xlLACAddr, m) {
						return false
					}
				}
				return true
			})
			capt.stop(t)
			checkCaptureWithTshark(t, pcap, "")
			checkPPPCapture(t, pcap, sub)
		})
	}
}

// startPPPL2TPD starts l2tpd with PPP termination: a TUN, a pool, and
// slirp's user as the only local user. Like startL2TPD, its cleanup
// stops it with SIGTERM and fails the test on an unclean exit.
func startPPPL2TPD(t *testing.T, netns string, auth []string) *daemon {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	cfgPath := filepath.Join(dir, "l2tpd.yaml")
	cfg := pppL2TPDConfig(sock, auth)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(l2tpdBin, "-check", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("l2tpd -check %s: %v\n%s\nconfig:\n%s", cfgPath, err, out, cfg)
	}
	d := &daemon{sock: sock}
	d.proc = startProc(t, "l2tpd", filepath.Join(dir, "l2tpd.log"), "ip", "netns", "exec", netns, l2tpdBin, "-config", cfgPath)
	t.Cleanup(func() { d.shutdown(t) })
	deadline := time.Now().Add(waitTimeout)
	for {
		_, err := d.tunnels()
		if err == nil {
			return d
		}
		if d.exited() {
			t.Fatalf("l2tpd exited at start-up: %v\n%s", d.waitErr, d.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("l2tpd admin socket did not answer within %v: %v", waitTimeout, err)
		}
		time.Sleep(pollInterval)
	}
}

func pppL2TPDConfig(sock string, auth []string) string {
	q := make([]string, len(auth))
	for i, a := range auth {
		q[i] = yamlQuote(a)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hostname: %s\n", yamlQuote(xlLNSHost))
	fmt.Fprintf(&b, "listen: [%s]\n", yamlQuote(xlLNSAddr+":1701"))
	b.WriteString("log:\n  level: debug\n  format: json\n")
	fmt.Fprintf(&b, "admin:\n  socket: %s\n", yamlQuote(sock))
	b.WriteString("control:\n  hello_interval: 60s\n  retransmit:\n    initial: 250ms\n    cap: 1s\n    max_retries: 3\n")
	b.WriteString("default_peer:\n  hide_avps: false\n")
	b.WriteString("store:\n  backend: memory\n")
	fmt.Fprintf(&b, "tun:\n  name: %s\n  mtu: 1500\n", pppTUN)
	// A short echo interval has l2tpd's LCP keepalive (RFC 1661 §5.8)
	// answered by slirp during the test.
	fmt.Fprintf(&b, "ppp:\n  mru: 1500\n  auth: [%s]\n  echo_interval: 2s\n  echo_failures: 3\n", strings.Join(q, ", "))
	fmt.Fprintf(&b, "  local_ipv4: %s\n  dns: [\"198.51.100.53\"]\n  ipv6: false\n  pool: default\n", pppLocalIPv4)
	fmt.Fprintf(&b, "pools:\n  - name: default\n    ipv4: [\"%s-%s\"]\n    ipv6: \"2001:db8:100::/48\"\n    ipv6_length: 64\n", pppPoolFirst, pppPoolLast)
	fmt.Fprintf(&b, "auth:\n  local_users:\n    - name: %s\n      password: %s\n", yamlQuote(pppUser), yamlQuote(pppPassword))
	return b.String()
}

func (d *daemon) pppSessions() ([]pppSessionJSON, error) {
	out, err := d.ctl("show", "sessions")
	if err != nil {
		return nil, err
	}
	var ss []pppSessionJSON
	if err := json.Unmarshal(out, &ss); err != nil {
		return nil, fmt.Errorf("l2tpctl show sessions: %v in %q", err, out)
	}
	return ss, nil
}

// waitNetworkPhase waits for l2tpd to report the session with IPCP open
// (RFC 1661 §3.7, Network-Layer Protocol phase).
func waitNetworkPhase(t *testing.T, d *daemon) pppSessionJSON {
	t.Helper()
	var found pppSessionJSON
	d.waitFor(t, "slirp's session in the network phase", func() error {
		ss, err := d.pppSessions()
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.PPPState == "network" && s.IPv4 != "" {
				found = s
				return nil
			}
		}
		return fmt.Errorf("%w: sessions %+v (want ppp_state \"network\" with an ipv4)", errNotYet, ss)
	})
	return found
}

// subscriberAddr checks that the session's address comes from the pool.
func (s pppSessionJSON) subscriberAddr(t *testing.T) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s.IPv4)
	if err != nil {
		t.Fatalf("session ipv4 %q: %v", s.IPv4, err)
	}
	first, last := netip.MustParseAddr(pppPoolFirst), netip.MustParseAddr(pppPoolLast)
	if a.Less(first) || last.Less(a) {
		t.Fatalf("session ipv4 %v is outside the pool %s-%s", a, pppPoolFirst, pppPoolLast)
	}
	return a
}

// checkKernelRouting checks what l2tpd set up in its namespace: the
// local PPP address is ours and the subscriber is reached through the TUN.
func checkKernelRouting(t *testing.T, ns string, sub netip.Addr) {
	t.Helper()
	if out := mustRun(t, "ip", "-n", ns, "route", "get", pppLocalIPv4); !strings.HasPrefix(out, "local ") {
		t.Errorf("ppp.local_ipv4 %s is not a local address in l2tpd's namespace: %s", pppLocalIPv4, out)
	}
	if out := mustRun(t, "ip", "-n", ns, "route", "get", sub.String()); !strings.Contains(out, " dev "+pppTUN+" ") {
		t.Fatalf("the subscriber %v is not routed through %s in l2tpd's namespace: %s", sub, pppTUN, out)
	}
}

// checkPAPRefused waits for l2tpd's Authenticate-Nak to the wrong
// password and for the session to go, never having reached the network
// phase.
func checkPAPRefused(t *testing.T, d *daemon, capt *capture) {
	t.Helper()
	capt.waitFor(t, "l2tpd's PAP Authenticate-Nak", func(frames []pcapFrame) bool {
		for _, fr := range frames {
			if fr.Src.String() != xlLNSAddr {
				continue
			}
			if proto, body, ok := pppFromL2TPData(fr.Payload); ok && proto == 0xc023 && len(body) > 0 && body[0] == 3 {
				return true
			}
		}
		return false
	})
	d.waitFor(t, "the refused session to go", func() error {
		ss, err := d.pppSessions()
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.PPPState == "network" || s.IPv4 != "" {
				t.Fatalf("session with a wrong password got through: %+v", s)
			}
		}
		if len(ss) > 0 {
			return fmt.Errorf("%w: sessions %+v", errNotYet, ss)
		}
		return nil
	})
	frames, err := readPcapUDP(capt.file)
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames {
		if proto, body, ok := pppFromL2TPData(fr.Payload); ok && fr.Src.String() == xlLNSAddr && proto == 0x8021 {
			t.Errorf("frame %d: l2tpd sent IPCP (% x) to an unauthenticated peer", fr.Number, body)
		}
	}
}

// startXl2tpdSlirp starts xl2tpd as LAC in ns with slirp as its PPP
// program: a wrapper bind-mounted over pppd in a private mount namespace
// execs slirp with a private HOME holding its PAP secret.
func startXl2tpdSlirp(t *testing.T, ns, password string) *xl2tpdLAC {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	// slirp only offers PAP with a secret it can use; the client column
	// has to be "*" (testdata/ppp/README.md).
	if err := os.WriteFile(filepath.Join(home, ".pap-secrets"), []byte(fmt.Sprintf("* * %q\n", password)), 0o600); err != nil {
		t.Fatal(err)
	}
	slirpLog := filepath.Join(dir, "slirp.log")
	x := &xl2tpdLAC{ctl: filepath.Join(dir, "l2tp-control")}
	conf := fmt.Sprintf(`[global]
port = 1701
listen-addr = %s
access control = no

[lac %s]
lns = %s
hostname = %s
name = %s
require authentication = no
ppp debug = no
autodial = no
redial = no
`, xlLACAddr, xlCallName, xlLNSAddr, xlLACHost, xlLACHost)
	// slirp speaks PPP on fd 0 (the pty xl2tpd relays) and prints its
	// banner on stderr; xl2tpd's pppd arguments mean nothing to it.
	wrapper := fmt.Sprintf(`#!/bin/sh
HOME=%s
export HOME
exec %s -P nozeros ppp_exit %s ipcp-accept-remote %s 2>>%s
`, home, pppSlirpBin,
		shellQuote("user "+pppUser),
		shellQuote(fmt.Sprintf("redir udp %d %s:%d", pppRedirPort, pppLocalIPv4, pppLNSPort)),
		slirpLog)
	for _, f := range []struct {
		name, body string
		mode       os.FileMode
	}{
		{"xl2tpd.conf", conf, 0o600},
		{"pppd-wrapper", wrapper, 0o755},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	// xl2tpd starts slirp in a session of its own, out of reach of the
	// process-group kill: end whatever is left in the namespace.
	t.Cleanup(func() { killNetnsProcs(ns) })
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(slirpLog)
			t.Logf("---- slirp log (%s) ----\n%s", slirpLog, b)
		}
	})
	script := fmt.Sprintf("set -e; mount --bind %s %s; exec xl2tpd -D -c %s -p %s -C %s",
		filepath.Join(dir, "pppd-wrapper"), xlPPPDPath,
		filepath.Join(dir, "xl2tpd.conf"), filepath.Join(dir, "xl2tpd.pid"), x.ctl)
	x.p = startProc(t, "xl2tpd", filepath.Join(dir, "xl2tpd.log"),
		"ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	x.p.waitLog(t, "Listening on IP address", waitTimeout)
	return x
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// killNetnsProcs kills the processes left in the test's namespace ns.
func killNetnsProcs(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// inNetns runs fn on an OS thread switched into the named network
// namespace; sockets fn opens stay in that namespace.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked if switching back fails, so the
		// runtime discards it with the goroutine.
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back from %s: %w", ns, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// udpEcho is a UDP echo service in a namespace that records who it
// answered.
type udpEcho struct {
	conn *net.UDPConn
	from chan netip.AddrPort
	seen []netip.AddrPort
}

func startUDPEcho(t *testing.T, ns string, addr netip.AddrPort) *udpEcho {
	t.Helper()
	e := &udpEcho{from: make(chan netip.AddrPort, 64)}
	err := inNetns(ns, func() error {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		e.conn = c
		return err
	})
	if err != nil {
		t.Fatalf("UDP echo on %v in %s: %v", addr, ns, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := e.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			select {
			case e.from <- from:
			default:
			}
			e.conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		e.conn.Close()
		<-done
	})
	return e
}

// sources drains what the service has answered so far.
func (e *udpEcho) sources() []netip.AddrPort {
	for {
		select {
		case a := <-e.from:
			e.seen = append(e.seen, a)
		default:
			return e.seen
		}
	}
}

func (e *udpEcho) sawFrom(a netip.Addr) bool {
	for _, s := range e.sources() {
		if s.Addr().Unmap() == a {
			return true
		}
	}
	return false
}

// udpExchange sends mark from a socket bound to local in ns to dst until
// the same bytes come back, and returns who answered.
func udpExchange(t *testing.T, ns string, local, dst netip.AddrPort, mark []byte) netip.AddrPort {
	t.Helper()
	if !local.IsValid() {
		local = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	}
	var c *net.UDPConn
	if err := inNetns(ns, func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(local))
		return err
	}); err != nil {
		t.Fatalf("UDP socket on %v in %s: %v", local, ns, err)
	}
	defer c.Close()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		if _, err := c.WriteToUDPAddrPort(mark, dst); err != nil {
			t.Fatalf("UDP %v -> %v in %s: %v", local, dst, ns, err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				break
			}
			if bytes.Equal(buf[:n], mark) {
				return netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			}
		}
	}
	t.Fatalf("UDP %q from %v in %s to %v: no answer within %v", mark, local, ns, dst, waitTimeout)
	return netip.AddrPort{}
}

// pingThroughTunnel sends ICMP echo requests (RFC 792) from ns to dst
// until a matching echo reply comes back from dst.
func pingThroughTunnel(t *testing.T, ns string, dst netip.Addr, data []byte) {
	t.Helper()
	var c net.PacketConn
	if err := inNetns(ns, func() error {
		var err error
		c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		t.Fatalf("ICMP socket in %s: %v", ns, err)
	}
	defer c.Close()
	id := uint16(os.Getpid())
	buf := make([]byte, 2048)
	deadline := time.Now().Add(waitTimeout)
	var got []string
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		req := icmpEcho(8, id, seq, data)
		if _, err := c.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			t.Fatalf("ICMP echo to %v: %v", dst, err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			m := buf[:n]
			if len(m) < 8 {
				continue
			}
			got = append(got, fmt.Sprintf("type %d from %v", m[0], from))
			if m[0] == 0 && binary.BigEndian.Uint16(m[4:]) == id && from.String() == dst.String() &&
				bytes.Equal(m[8:], data) && icmpChecksum(m) == 0 {
				return
			}
		}
	}
	t.Fatalf("no ICMP echo reply from %v within %v; received %v", dst, waitTimeout, got)
}

func icmpEcho(typ uint8, id, seq uint16, data []byte) []byte {
	b := make([]byte, 8, 8+len(data))
	b[0] = typ
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	b = append(b, data...)
	binary.BigEndian.PutUint16(b[2:], icmpChecksum(b))
	return b
}

// icmpChecksum is the Internet checksum (RFC 1071); over a message with
// a correct checksum field it is 0.
func icmpChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// pppFromL2TPData returns the PPP protocol and information field of an
// L2TPv2 data message (RFC 2661 §3.1), with the address and control
// field and protocol field compression of RFC 1661 §6.5-6.6 undone.
func pppFromL2TPData(b []byte) (uint16, []byte, bool) {
	if len(b) < 6 {
		return 0, nil, false
	}
	flags := binary.BigEndian.Uint16(b)
	if flags&0x8000 != 0 || flags&0x000f != 2 {
		return 0, nil, false
	}
	off := 2
	if flags&0x4000 != 0 {
		off += 2
	}
	off += 4 // tunnel and session IDs
	if flags&0x0800 != 0 {
		off += 4
	}
	if flags&0x0200 != 0 {
		if len(b) < off+2 {
			return 0, nil, false
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	if len(b) < off+1 {
		return 0, nil, false
	}
	p := b[off:]
	if len(p) >= 2 && p[0] == 0xff && p[1] == 0x03 {
		p = p[2:]
	}
	if len(p) >= 1 && p[0]&1 == 1 {
		return uint16(p[0]), p[1:], true
	}
	if len(p) < 2 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(p), p[2:], true
}

// pppCaptureHas reports whether src sent an IPv4 packet over PPP whose
// bytes contain mark.
func pppCaptureHas(frames []pcapFrame, src string, mark []byte) bool {
	for _, fr := range frames {
		if fr.Src.String() != src {
			continue
		}
		if proto, body, ok := pppFromL2TPData(fr.Payload); ok && proto == 0x0021 && bytes.Contains(body, mark) {
			return true
		}
	}
	return false
}

// pppCaptureHasLCP reports whether src sent an LCP packet with code.
func pppCaptureHasLCP(frames []pcapFrame, src string, code byte) bool {
	for _, fr := range frames {
		if fr.Src.String() != src {
			continue
		}
		if proto, body, ok := pppFromL2TPData(fr.Payload); ok && proto == 0xc021 && len(body) > 0 && body[0] == code {
			return true
		}
	}
	return false
}

// checkPPPCapture has tshark decode the PPP l2tpd sent: the handshake
// that brought the link up and the test traffic, in both directions.
func checkPPPCapture(t *testing.T, file string, sub netip.Addr) {
	t.Helper()
	count := func(filter string) int {
		args := []string{"-n", "-r", file, "-d", "udp.port==1701,l2tp", "-Y", filter, "-T", "fields", "-e", "frame.number"}
		out, err := exec.Command("tshark", args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
			}
			t.Fatalf("tshark %s: %v", strings.Join(args, " "), err)
		}
		return len(strings.Fields(string(out)))
	}
	lns := "ip.src == " + xlLNSAddr + " && "
	lac := "ip.src == " + xlLACAddr + " && "
	for _, c := range []struct{ what, filter string }{
		// RFC 1661 §5.1-5.2: l2tpd asked and acknowledged.
		{"l2tpd's LCP Configure-Request", lns + "ppp.protocol == 0xc021 && ppp.code == 1"},
		{"l2tpd's LCP Configure-Ack", lns + "ppp.protocol == 0xc021 && ppp.code == 2"},
		// RFC 1334 §2.2.2
		{"l2tpd's PAP Authenticate-Ack", lns + "pap.code == 2"},
		{"slirp's PAP Authenticate-Request for " + pppUser, lac + "pap.code == 1 && pap.peer_id == \"" + pppUser + "\""},
		// RFC 1332 §3.3: slirp ends up asking for the pool address and
		// l2tpd acknowledges it; l2tpd's own address is acknowledged.
		{"l2tpd's IPCP Configure-Ack of " + sub.String(), lns + "ppp.protocol == 0x8021 && ppp.code == 2 && ipcp.opt.ip_address == " + sub.String()},
		{"slirp's IPCP Configure-Ack of " + pppLocalIPv4, lac + "ppp.protocol == 0x8021 && ppp.code == 2 && ipcp.opt.ip_address == " + pppLocalIPv4},
		{"the echo request to the subscriber", lns + "icmp.type == 8 && ip.dst == " + sub.String()},
		{"the subscriber's echo reply", lac + "icmp.type == 0 && ip.src == " + sub.String()},
		{"UDP to the subscriber", lns + fmt.Sprintf("udp.dstport == %d && ip.dst == %s", pppSubscriberPort, sub)},
		{"UDP from the subscriber", lac + fmt.Sprintf("udp.dstport == %d && ip.src == %s", pppLNSPort, sub)},
		// RFC 1661 §5.8
		{"l2tpd's LCP Echo-Request", lns + "ppp.protocol == 0xc021 && ppp.code == 9"},
		{"slirp's LCP Echo-Reply", lac + "ppp.protocol == 0xc021 && ppp.code == 10"},
	} {
		if count(c.filter) == 0 {
			t.Errorf("tshark finds no %s (%s)", c.what, c.filter)
		}
	}
}
