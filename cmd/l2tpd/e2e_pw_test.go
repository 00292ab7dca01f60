package main_test

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Two l2tpd in two namespaces set up a dynamic L2TPv3 Ethernet
// pseudowire (RFC 3931 §3.2, RFC 4719): both place the call, one call
// survives, 8-octet cookies go both ways, and hosts on the two TAPs
// resolve each other with ARP and ping across it. Over UDP on IPv6 the
// tunnel is then cleared and the pseudowire comes back by itself; over
// IP (protocol 115, RFC 3931 §4.1.1.2) it runs on IPv4 and IPv6, and an
// l2tpctl capture of the session opens in tshark as L2TPv3 over IP.
func TestE2EPseudowireEthernet(t *testing.T) {
	requireE2E(t, "ip", "tshark")
	for _, tc := range []struct {
		name       string
		encap      string
		peerA      string // A's address for B
		peerB      string
		listenA    []string
		listenB    []string
		reconnects bool
	}{
		{name: "udp-ipv6", encap: "udp", peerA: pwAddr6A, peerB: pwAddr6B,
			listenA: []string{"[" + pwAddr6A + "]:1701"}, listenB: []string{"[" + pwAddr6B + "]:1701"}, reconnects: true},
		{name: "ip-ipv4", encap: "ip", peerA: pwAddrA, peerB: pwAddrB,
			listenA: []string{pwAddrA + ":1701", "ip:" + pwAddrA}, listenB: []string{pwAddrB + ":1701"}},
		{name: "ip-ipv6", encap: "ip", peerA: pwAddr6A, peerB: pwAddr6B,
			listenA: []string{"ip:[" + pwAddr6A + "]"}, listenB: []string{"[" + pwAddr6B + "]:1701"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPWPair(t)
			pw := func(peer, local string) string {
				if local != "" {
					local = "\n    local: " + local
				}
				return fmt.Sprintf(`pseudowires:
  - name: pw1
    peer: %s%s
    encap: %s
    type: ethernet
    vc_id: 4242
    tap: pweth0
    cookie: 8
`, peer, local, tc.encap)
			}
			// Over UDP, B gives no local address: it sends from its
			// listener.
			localB := tc.peerB
			if tc.encap == "udp" {
				localB = ""
			}
			a := startPWDaemon(t, p.a, func(sock string) string { return pwConfig("pw-a", sock, tc.listenA, pw(tc.peerB, tc.peerA)) })
			b := startPWDaemon(t, p.b, func(sock string) string { return pwConfig("pw-b", sock, tc.listenB, pw(tc.peerA, localB)) })
			up := func(s pwSessionJSON) bool { return s.Pseudowire == "pw1" && s.State == "established" }
			sa := a.waitPW(t, "pseudowire pw1 on A", up)
			sb := b.waitPW(t, "pseudowire pw1 on B", up)
			if sa.PeerSessionID != sb.SessionID || sb.PeerSessionID != sa.SessionID {
				t.Fatalf("the two ends do not pair: A %+v, B %+v", sa, sb)
			}
			for _, s := range []pwSessionJSON{sa, sb} {
				if s.Kind != "ethernet" || s.Version != 3 || s.TAP != "pweth0" || s.CookieLen != 8 || s.PeerCookieLen != 8 || !s.Circuit || !s.PeerCircuit {
					t.Fatalf("session %+v: want an ethernet v3 session on pweth0 with 8-octet cookies both ways, circuits active", s)
				}
			}
			// Both ends dialed (B from its listener, having no local
			// address), and one call survives though both placed it.
			for _, d := range []*pwDaemon{a, b} {
				d.waitFor(t, "a tunnel of its own", func() error {
					if _, c := d.pwStats(t); c["pseudowire_dials"] == 0 || c["tunnels_established"] < 2 {
						return fmt.Errorf("%w: counters %v", errNotYet, c)
					}
					return nil
				})
			}
			time.Sleep(1500 * time.Millisecond)
			for _, d := range []*pwDaemon{a, b} {
				ss, err := d.pwSessions()
				if err != nil {
					t.Fatal(err)
				}
				if n := countPW(ss, "pw1"); n != 1 {
					t.Fatalf("%d sessions for pw1, want 1: %+v", n, ss)
				}
			}
			addrOn(t, p.a, "pweth0", "192.168.90.1/24")
			addrOn(t, p.b, "pweth0", "192.168.90.2/24")
			var capt *sessionCapture
			if tc.encap == "ip" {
				// l2tpctl capture of the pseudowire session, by the ID
				// show sessions gives it.
				capt = startSessionCapture(t, a.daemon, sa.SessionID, 2*time.Second)
			}
			pingThroughTunnel(t, p.a, netip.MustParseAddr("192.168.90.2"), []byte("l2tpv3 ethernet "+tc.name))
			if capt != nil {
				capt.wait(t)
				checkIPSessionCapture(t, capt.file, strings.HasSuffix(tc.name, "ipv6"), sa.SessionID, sa.PeerSessionID, 8)
			}
			sa = a.waitPW(t, "traffic counted on A", func(s pwSessionJSON) bool { return s.Pseudowire == "pw1" && s.RxPackets > 0 && s.TxPackets > 0 })
			if tc.reconnects {
				checkCircuitAndRedial(t, p, a, b, sa, sb, up)
			}
			// RFC 4719 §1: hosts on the LAN segments the pseudowire
			// joins (a bridge with the TAP and a veth on each side)
			// resolve each other by ARP and exchange IP.
			hostA := hostBehindTAP(t, p.a, "pweth0", "192.168.91.1/24")
			hostB := hostBehindTAP(t, p.b, "pweth0", "192.168.91.2/24")
			pingThroughTunnel(t, hostA, netip.MustParseAddr("192.168.91.2"), []byte("host to host "+tc.name))
			macB := strings.Fields(mustRun(t, "ip", "-n", hostB, "-br", "link", "show", "eth0"))[2]
			if got := neighbourOf(t, hostA, "192.168.91.2"); got != macB {
				t.Fatalf("host A resolved 192.168.91.2 to %q, host B's eth0 is %q", got, macB)
			}
		})
	}
}

// checkCircuitAndRedial takes A's TAP down and up (Circuit Status by SLI)
// and clears the control connection (the pseudowire placed again).
func checkCircuitAndRedial(t *testing.T, p pwPair, a, b *pwDaemon, sa, sb pwSessionJSON, up func(pwSessionJSON) bool) {
	t.Helper()
	// RFC 4719 §2.3.2: A's TAP going down reaches B as an SLI
	// with the circuit inactive, and coming back as active.
	mustRun(t, "ip", "-n", p.a, "link", "set", "pweth0", "down")
	b.waitPW(t, "B told A's circuit is down", func(s pwSessionJSON) bool { return s.Pseudowire == "pw1" && !s.PeerCircuit })
	a.waitPW(t, "A reporting its circuit down", func(s pwSessionJSON) bool { return s.Pseudowire == "pw1" && !s.Circuit })
	mustRun(t, "ip", "-n", p.a, "link", "set", "pweth0", "up")
	b.waitPW(t, "B told A's circuit is up", func(s pwSessionJSON) bool { return s.Pseudowire == "pw1" && s.PeerCircuit })
	pingThroughTunnel(t, p.a, netip.MustParseAddr("192.168.90.2"), []byte("circuit back"))
	// RFC 3931 §3.1: the control connection goes; the pseudowire
	// is placed again on a new one.
	if _, err := a.ctl("clear", "tunnel", strconv.FormatUint(uint64(sa.TunnelID), 10)); err != nil {
		t.Fatal(err)
	}
	a.waitPW(t, "pseudowire pw1 back on A", func(s pwSessionJSON) bool { return up(s) && s.SessionID != sa.SessionID })
	b.waitPW(t, "pseudowire pw1 back on B", func(s pwSessionJSON) bool { return up(s) && s.SessionID != sb.SessionID })
	pingThroughTunnel(t, p.b, netip.MustParseAddr("192.168.90.1"), []byte("l2tpv3 ethernet again"))
}

func countPW(ss []pwSessionJSON, name string) int {
	n := 0
	for _, s := range ss {
		if s.Pseudowire == name {
			n++
		}
	}
	return n
}

// RFC 4719 Ethernet VLAN pseudowire: frames tagged with VID 100 on A's
// TAP leave B's TAP tagged with VID 200 and back; only B places the call
// (A answers), with sequencing in the default sublayer, over a control
// connection authenticated with a shared secret (RFC 3931 §4.3).
func TestE2EPseudowireVLAN(t *testing.T) {
	requireE2E(t, "ip")
	p := newPWPair(t)
	pw := func(peer, local string, vlan int, initiate bool) string {
		return fmt.Sprintf(`peers:
  - name: far
    addresses: ["%s/32"]
    secret: "pw-secret"
pseudowires:
  - name: v
    peer: %s
    local: %s
    type: vlan
    remote_end_id: "cust-7"
    initiate: %t
    tap: trunk0
    vlan: %d
    cookie: 4
    sequencing: all
`, peer, peer, local, initiate, vlan)
	}
	a := startPWDaemon(t, p.a, func(sock string) string {
		return pwConfig("pw-a", sock, []string{pwAddrA + ":1701"}, pw(pwAddrB, pwAddrA, 100, false))
	})
	b := startPWDaemon(t, p.b, func(sock string) string {
		return pwConfig("pw-b", sock, []string{pwAddrB + ":1701"}, pw(pwAddrA, pwAddrB, 200, true))
	})
	sa := a.waitPW(t, "VLAN pseudowire on A", func(s pwSessionJSON) bool { return s.Pseudowire == "v" && s.State == "established" })
	sb := b.waitPW(t, "VLAN pseudowire on B", func(s pwSessionJSON) bool { return s.Pseudowire == "v" && s.State == "established" })
	if sa.Kind != "vlan" || sa.VLAN != 100 || sb.VLAN != 200 || sa.CookieLen != 4 || sb.PeerCookieLen != 4 {
		t.Fatalf("sessions A %+v B %+v", sa, sb)
	}
	// This kernel may lack 802.1Q devices: tagged frames are written to
	// and read from the TAPs with packet sockets.
	if vid := vlanFrameThrough(t, p.a, p.b, "trunk0", 100, []byte("vlan 100 to 200")); vid != 200 {
		t.Fatalf("a frame tagged 100 on A left B tagged %d, want 200", vid)
	}
	if vid := vlanFrameThrough(t, p.b, p.a, "trunk0", 200, []byte("vlan 200 to 100")); vid != 100 {
		t.Fatalf("a frame tagged 200 on B left A tagged %d, want 100", vid)
	}
	// Another VLAN of the trunk has no pseudowire: it stays home.
	if vid, ok := vlanFrameTry(t, p.a, p.b, "trunk0", 101, []byte("vlan 101 nowhere"), time.Second); ok {
		t.Fatalf("a frame of VLAN 101, which no pseudowire carries, reached B (tagged %d)", vid)
	}

	// A reload that removes the pseudowire clears its call at both ends
	// and closes B's TAP; one that adds it back places the call again.
	none := func(sock string) string { return pwConfig("pw-b", sock, []string{pwAddrB + ":1701"}, "") }
	b.reload(t, none)
	a.waitSessionGone(t, "the call cleared on A by B's reload", sa.SessionID)
	b.waitSessionGone(t, "the call cleared on B by its reload", sb.SessionID)
	b.waitFor(t, "B's TAP closed", func() error {
		if err := exec.Command("ip", "-n", p.b, "link", "show", "trunk0").Run(); err == nil {
			return fmt.Errorf("%w: trunk0 still exists", errNotYet)
		}
		return nil
	})
	b.reload(t, b.render)
	a.waitPW(t, "the pseudowire back on A after B's reload", func(s pwSessionJSON) bool { return s.Pseudowire == "v" && s.State == "established" })
	b.waitPW(t, "the pseudowire back on B after its reload", func(s pwSessionJSON) bool { return s.Pseudowire == "v" && s.State == "established" })
	mustRun(t, "ip", "-n", p.b, "link", "set", "trunk0", "up")
	if vid := vlanFrameThrough(t, p.a, p.b, "trunk0", 100, []byte("after reload")); vid != 200 {
		t.Fatalf("after the reload a frame tagged 100 on A left B tagged %d, want 200", vid)
	}
}

// Static L2TPv3 sessions (RFC 3931 §3.1) between two l2tpd, with a
// quiescent control connection for liveness: the session with matching
// 8-octet cookies carries ping, the one whose cookie B does not expect
// is dropped and counted; tshark decodes every packet A sent as L2TPv3
// with nothing malformed.
func TestE2EStaticPseudowire(t *testing.T) {
	requireE2E(t, "ip", "tshark")
	p := newPWPair(t)
	static := func(local, peer string, sid, psid, badSID, badPSID int, cookie, peerCookie, badCookie string) string {
		return fmt.Sprintf(`static_tunnels:
  - name: st
    local: %s
    peer: %s
    hello: true
    sessions:
      - {session_id: %d, peer_session_id: %d, cookie: %q, peer_cookie: %q, tap: st0}
      - {session_id: %d, peer_session_id: %d, cookie: %q, peer_cookie: %q, tap: st1}
`, local, peer, sid, psid, cookie, peerCookie, badSID, badPSID, badCookie, badCookie)
	}
	capt := startCapture(t, p.a, pwIf, filepath.Join(t.TempDir(), "static.pcap"))
	a := startPWDaemon(t, p.a, func(sock string) string {
		return pwConfig("pw-a", sock, []string{pwAddrA + ":1701"},
			static(pwAddrA, pwAddrB, 1000, 2000, 1001, 2001, "0102030405060708", "1112131415161718", "2122232425262728"))
	})
	b := startPWDaemon(t, p.b, func(sock string) string {
		return pwConfig("pw-b", sock, []string{pwAddrB + ":1701"},
			static(pwAddrB, pwAddrA, 2000, 1000, 2001, 1001, "1112131415161718", "0102030405060708", "3132333435363738"))
	})
	for _, d := range []*pwDaemon{a, b} {
		d.waitTunnel(t, "quiescent tunnel", func(tu tunnelJSON) bool { return tu.State == "established" })
		s := d.waitPW(t, "static session", func(s pwSessionJSON) bool { return s.StaticTunnel == "st" && s.TAP == "st0" })
		if s.State != "static" || s.Kind != "ethernet" || s.Version != 3 || s.CookieLen != 8 || s.PeerCookieLen != 8 {
			t.Fatalf("static session %+v", s)
		}
	}
	addrOn(t, p.a, "st0", "192.168.92.1/24")
	addrOn(t, p.b, "st0", "192.168.92.2/24")
	addrOn(t, p.a, "st1", "192.168.93.1/24")
	addrOn(t, p.b, "st1", "192.168.93.2/24")
	pingThroughTunnel(t, p.a, netip.MustParseAddr("192.168.92.2"), []byte("static l2tpv3"))
	if pingAnswered(t, p.a, netip.MustParseAddr("192.168.93.2"), 1500*time.Millisecond) {
		t.Fatal("ping answered across a session whose cookie the far end does not expect")
	}
	drops, _ := b.pwStats(t)
	if drops["datapath_bad_cookie"] == 0 {
		t.Fatalf("B counted no bad cookie: %v", drops)
	}
	a.waitPW(t, "counters of the good session", func(s pwSessionJSON) bool { return s.SessionID == 1000 && s.RxPackets > 0 && s.TxPackets > 0 })
	capt.stop(t)
	checkStaticCapture(t, capt.file)

	// A reload applies the sessions as a diff: 1001 goes, 1002 comes,
	// 1000 stays as it was.
	a.reload(t, func(sock string) string {
		return pwConfig("pw-a", sock, []string{pwAddrA + ":1701"},
			static(pwAddrA, pwAddrB, 1000, 2000, 1002, 2002, "0102030405060708", "1112131415161718", "4142434445464748"))
	})
	a.waitPW(t, "static session 1002 after reload", func(s pwSessionJSON) bool { return s.SessionID == 1002 && s.State == "static" && s.TAP == "st1" })
	a.waitSessionGone(t, "static session 1001 removed by reload", 1001)
	if s := a.waitPW(t, "static session 1000 kept", func(s pwSessionJSON) bool { return s.SessionID == 1000 }); s.RxPackets == 0 {
		t.Fatalf("session 1000 was reinstalled by a reload that did not change it: %+v", s)
	}
}

// checkStaticCapture has tshark decode what A sent, all L2TPv3 (8-octet
// cookies, default sublayer) with nothing malformed or flagged: the
// quiescent connection's control messages, and data of both static
// sessions with their configured cookies. Wireshark learns a session's
// pseudowire type from its ICRQ, which a static session never sends, so
// the payload tshark leaves as data is checked to be an Ethernet frame.
func checkStaticCapture(t *testing.T, file string) {
	t.Helper()
	args := []string{"-n", "-r", file, "-d", "udp.port==1701,l2tp", "-o", "l2tp.cookie_size:8 Byte Cookie", "-o", "l2tp.l2_specific:Default L2-Specific"}
	from := "ip.src == " + pwAddrA
	if bad := tsharkFrames(t, args, from+" && (_ws.malformed || _ws.expert.severity >= warning)", "_ws.expert.message"); len(bad) > 0 {
		t.Errorf("tshark flags packets l2tpd sent (frame, message): %v", bad)
	}
	if other := tsharkFrames(t, args, from+" && !l2tp"); len(other) > 0 {
		t.Errorf("packets from l2tpd that tshark does not decode as L2TP: %v", other)
	}
	if ctl := tsharkFrames(t, args, from+" && l2tp.type == 1 && l2tp.version == 3"); len(ctl) == 0 {
		t.Error("tshark finds no L2TPv3 control message (the quiescent connection's)")
	}
	f := tsharkFields(t, append(args, "-Y", from+" && l2tp.type == 0", "-T", "fields", "-E", "separator=,", "-e", "l2tp.sid", "-e", "l2tp.cookie", "-e", "data.data"))
	want := map[string]string{"0x000007d0": "1112131415161718", "0x000007d1": "2122232425262728"}
	seen := map[string]int{}
	for _, line := range f {
		parts := strings.Split(line, ",")
		if len(parts) != 3 || want[parts[0]] != parts[1] {
			t.Errorf("data message %q: want session 2000 or 2001 with its peer's cookie", line)
			continue
		}
		frame, err := hex.DecodeString(parts[2])
		if err != nil {
			t.Fatalf("tshark data field %q: %v", parts[2], err)
		}
		pkt := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
		if pkt.ErrorLayer() != nil || pkt.Layer(layers.LayerTypeEthernet) == nil || len(pkt.Layers()) < 2 {
			t.Errorf("session %s carries something that is not an Ethernet frame: %v", parts[0], pkt)
		}
		seen[parts[0]]++
	}
	if seen["0x000007d0"] == 0 || seen["0x000007d1"] == 0 {
		t.Errorf("data messages per session %v: want both static sessions", seen)
	}
	if t.Failed() {
		out, _ := exec.Command("tshark", append(args, "-Y", from, "-T", "fields", "-e", "frame.number", "-e", "l2tp.sid", "-e", "l2tp.cookie", "-e", "_ws.col.Info")...).CombinedOutput()
		t.Logf("tshark's view of what A sent:\n%s", out)
	}
}

func tsharkFrames(t *testing.T, base []string, filter string, extra ...string) []string {
	t.Helper()
	args := append(append([]string{}, base...), "-Y", filter, "-T", "fields", "-e", "frame.number")
	for _, e := range extra {
		args = append(args, "-e", e)
	}
	return tsharkFields(t, args)
}

// A pseudowire bound to a namespace (like a VRF): l2tpd runs in one
// namespace with only loopback, and the pseudowire's socket and TAP are
// made in the namespace that reaches the peer.
func TestE2EPseudowireNetns(t *testing.T) {
	requireE2E(t, "ip")
	p := newPWPair(t)
	ctlNS := p.a + "-ctl"
	mustRun(t, "ip", "netns", "add", ctlNS)
	t.Cleanup(func() {
		killNetnsProcs(ctlNS)
		if out, err := exec.Command("ip", "netns", "del", ctlNS).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ctlNS, err, out)
		}
	})
	mustRun(t, "ip", "-n", ctlNS, "link", "set", "lo", "up")
	pw := func(peer, local, netns string) string {
		s := fmt.Sprintf("pseudowires:\n  - {name: vrf, peer: %s, local: %s, type: ethernet, vc_id: 7, tap: pwvrf, cookie: 4", peer, local)
		if netns != "" {
			s += ", netns: " + netns
		}
		return s + "}\n"
	}
	a := startPWDaemon(t, ctlNS, func(sock string) string {
		return pwConfig("pw-a", sock, []string{"127.0.0.1:1701"}, pw(pwAddrB, pwAddrA, p.a))
	})
	b := startPWDaemon(t, p.b, func(sock string) string {
		return pwConfig("pw-b", sock, []string{pwAddrB + ":1701"}, pw(pwAddrA, pwAddrB, ""))
	})
	a.waitPW(t, "pseudowire in the namespace on A", func(s pwSessionJSON) bool { return s.Pseudowire == "vrf" && s.State == "established" })
	b.waitPW(t, "pseudowire on B", func(s pwSessionJSON) bool { return s.Pseudowire == "vrf" && s.State == "established" })
	if out, err := exec.Command("ip", "-n", ctlNS, "link", "show", "pwvrf").CombinedOutput(); err == nil {
		t.Fatalf("the TAP was made in l2tpd's own namespace:\n%s", out)
	}
	addrOn(t, p.a, "pwvrf", "192.168.94.1/24")
	addrOn(t, p.b, "pwvrf", "192.168.94.2/24")
	pingThroughTunnel(t, p.a, netip.MustParseAddr("192.168.94.2"), []byte("netns pseudowire"))
}

// Static sessions over IP (protocol 115) on IPv6: an Ethernet session
// carries ping, and a VLAN session rewrites VID 300 to 301. A capture of
// the Ethernet session opens in tshark as L2TPv3 over IP.
func TestE2EStaticPseudowireIP(t *testing.T) {
	requireE2E(t, "ip", "tshark")
	p := newPWPair(t)
	static := func(local, peer string, sid, psid int, vlan int) string {
		return fmt.Sprintf(`static_tunnels:
  - name: st-ip
    local: %s
    peer: %s
    encap: ip
    sessions:
      - {session_id: %d, peer_session_id: %d, cookie: "a1a2a3a4a5a6a7a8", peer_cookie: "a1a2a3a4a5a6a7a8", tap: sti0}
      - {session_id: %d, peer_session_id: %d, l2_specific: none, type: vlan, tap: stitrunk, vlan: %d}
`, local, peer, sid, psid, sid+1, psid+1, vlan)
	}
	a := startPWDaemon(t, p.a, func(sock string) string {
		return pwConfig("pw-a", sock, []string{"[" + pwAddr6A + "]:1701"}, static(pwAddr6A, pwAddr6B, 500, 600, 300))
	})
	b := startPWDaemon(t, p.b, func(sock string) string {
		return pwConfig("pw-b", sock, []string{"[" + pwAddr6B + "]:1701"}, static(pwAddr6B, pwAddr6A, 600, 500, 301))
	})
	s := a.waitPW(t, "static VLAN session", func(s pwSessionJSON) bool { return s.SessionID == 501 })
	if s.Kind != "vlan" || s.VLAN != 300 || s.State != "static" || s.StaticTunnel != "st-ip" {
		t.Fatalf("static VLAN session %+v", s)
	}
	b.waitPW(t, "static sessions on B", func(s pwSessionJSON) bool { return s.SessionID == 600 })
	addrOn(t, p.a, "sti0", "192.168.95.1/24")
	addrOn(t, p.b, "sti0", "192.168.95.2/24")
	// A static session is captured by its configured ID: its data
	// packets, there being no control connection.
	capt := startSessionCapture(t, a.daemon, 500, 2*time.Second)
	pingThroughTunnel(t, p.a, netip.MustParseAddr("192.168.95.2"), []byte("static over ip6"))
	capt.wait(t)
	checkIPSessionCapture(t, capt.file, true, 500, 600, 8)
	if vid := vlanFrameThrough(t, p.b, p.a, "stitrunk", 301, []byte("static vlan 301 to 300")); vid != 300 {
		t.Fatalf("a frame tagged 301 on B left A tagged %d, want 300", vid)
	}
}
