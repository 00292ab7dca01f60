package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/ppp"
)

// subscriberLAC is a LAC with PPP clients behind it, built from the
// product's own cores: the tunnel initiator and the PPP client engine,
// carried over UDP to a running control plane.
type subscriberLAC struct {
	*peer
	sid    uint32
	client *ppp.Session
	out    ppp.Output
	events []ppp.Event
	// ras are the router advertisements received over PPP.
	ras [][]byte
	// dropData makes the LAC deaf to PPP from the LNS (echo failure).
	dropData bool
	// echoes counts the LCP Echo-Requests received.
	echoes int
}

func newSubscriberLAC(t *testing.T, srv netip.AddrPort, version uint8, user, pass string, auth []ppp.AuthProto, ipv6 bool) *subscriberLAC {
	l := &subscriberLAC{peer: newPeer(t, srv, version, 90)}
	c, err := ppp.NewSession(ppp.Config{Role: ppp.RoleClient, Rand: rand.Reader, User: user, Password: pass, Auth: auth,
		IPv4: true, RequestDNS: true, IPv6: ipv6})
	if err != nil {
		t.Fatal(err)
	}
	l.client = c
	return l
}

// dataHeader encodes an L2TP data header toward the LNS's session.
func (l *subscriberLAC) dataHeader(b []byte) []byte {
	s := l.tun.Session(l.sid)
	if l.tun.Version() == 3 {
		b = binary.BigEndian.AppendUint32(b, 0x00030000)
		return binary.BigEndian.AppendUint32(b, s.PeerID)
	}
	b = binary.BigEndian.AppendUint16(b, 0x0002)
	b = binary.BigEndian.AppendUint16(b, uint16(l.tun.Peer().TunnelID))
	return binary.BigEndian.AppendUint16(b, uint16(s.PeerID))
}

func (l *subscriberLAC) flush() {
	for i := 0; i < l.out.NumFrames(); i++ {
		pkt := append(l.dataHeader(nil), l.out.Frame(i)...)
		l.conn.WriteToUDPAddrPort(pkt, l.srv)
	}
	l.events = append(l.events, l.out.Events...)
	for _, d := range l.out.Data {
		if d.Protocol == ppp.ProtoIPv6 && len(d.Packet) > 40 && d.Packet[40] == 134 {
			l.ras = append(l.ras, append([]byte(nil), d.Packet...))
		}
	}
	l.out.Reset()
}

// pump runs control, PPP and timers until cond holds or time runs out.
func (l *subscriberLAC) pump(cond func() bool, within time.Duration) bool {
	end := time.Now().Add(within)
	buf := make([]byte, 4096)
	for time.Now().Before(end) {
		now := time.Now()
		for _, pkt := range l.tun.Poll(now, nil) {
			l.conn.WriteToUDPAddrPort(pkt, l.srv)
		}
		if d, ok := l.client.Deadline(); ok && !now.Before(d) {
			l.client.Tick(now, &l.out)
			l.flush()
		}
		if cond() {
			return true
		}
		l.conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, _, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			continue
		}
		pkt := buf[:n]
		if pkt[0]&0x80 != 0 {
			l.tun.Receive(time.Now(), pkt)
			continue
		}
		if l.dropData {
			continue
		}
		off := 6
		if l.tun.Version() == 3 {
			off = 8
		} else if binary.BigEndian.Uint16(pkt)&0x4000 != 0 {
			off = 8
		}
		if f := bytes.TrimPrefix(pkt[off:], []byte{0xff, 0x03}); len(f) > 2 && f[0] == 0xc0 && f[1] == 0x21 && f[2] == ppp.CodeEchoRequest {
			l.echoes++
		}
		l.client.Input(time.Now(), pkt[off:], &l.out)
		l.flush()
	}
	return cond()
}

// sessionDown pumps until the LAC's tunnel reports its session down
// (a CDN from the LNS) and returns that event, or nil after within.
func (l *subscriberLAC) sessionDown(within time.Duration) *tunnel.Event {
	var down *tunnel.Event
	l.pump(func() bool {
		for _, e := range l.tun.Events() {
			if e.Kind == tunnel.SessionDown {
				down = &e
			}
		}
		return down != nil
	}, within)
	return down
}

func (l *subscriberLAC) has(k ppp.EventKind) bool {
	for _, e := range l.events {
		if e.Kind == k {
			return true
		}
	}
	return false
}

// dial brings the tunnel and one call up, with proxy AVPs if given.
func (l *subscriberLAC) dial(t *testing.T, proxy *tunnel.Proxy) {
	t.Helper()
	if !l.pump(func() bool { return l.tun.State() == tunnel.StateEstablished }, 3*time.Second) {
		t.Fatal("tunnel not established")
	}
	sid, err := l.tun.StartCall(time.Now(), tunnel.CallParams{Serial: 1, Proxy: proxy})
	if err != nil {
		t.Fatal(err)
	}
	l.sid = sid
	if !l.pump(func() bool {
		s := l.tun.Session(sid)
		return s != nil && s.State == tunnel.SessionEstablished
	}, 3*time.Second) {
		t.Fatal("session not established")
	}
}

func pppServer(t *testing.T, mod func(*Config)) (*Server, netip.AddrPort) {
	return startServer(t, func(c *Config) {
		c.Users = map[string]string{"alice": "wonderland"}
		c.PPP.Auth = []string{"mschapv2", "chap", "pap"}
		c.PPP.LocalIPv4 = netip.MustParseAddr("100.64.0.1")
		c.PPP.DNS = []netip.Addr{netip.MustParseAddr("192.0.2.53")}
		c.PPP.Pool = "default"
		c.PPP.IPv6 = true
		c.Pools = []Pool{{Name: "default",
			IPv4: []AddrRange{{First: netip.MustParseAddr("100.64.0.10"), Last: netip.MustParseAddr("100.64.0.20")}},
			IPv6: netip.MustParsePrefix("2001:db8:100::/48"), IPv6Length: 64}}
		if mod != nil {
			mod(c)
		}
	})
}

func sessionOf(t *testing.T, s *Server) SessionInfo {
	t.Helper()
	ss, err := s.Sessions(context.Background())
	if err != nil || len(ss) != 1 {
		t.Fatalf("sessions %v %v", ss, err)
	}
	return ss[0]
}

// Our PPP client through our LAC code path reaches the network phase
// with each authentication protocol, gets a pool address and a /64, and
// l2tpctl's view shows it (RFC 1661 §3.2 phases, RFC 1332, RFC 5072).
func TestPPPSubscriberOnline(t *testing.T) {
	for _, tc := range []struct {
		name string
		auth []ppp.AuthProto
		v    uint8
	}{
		{"pap", []ppp.AuthProto{ppp.AuthPAP}, 2},
		{"chap-md5", []ppp.AuthProto{ppp.AuthCHAPMD5}, 2},
		{"mschapv2", []ppp.AuthProto{ppp.AuthMSCHAPv2}, 2},
		{"mschapv2-l2tpv3", []ppp.AuthProto{ppp.AuthMSCHAPv2}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, addr := pppServer(t, nil)
			l := newSubscriberLAC(t, addr, tc.v, "alice", "wonderland", tc.auth, true)
			l.dial(t, nil)
			l.client.Start(time.Now(), &l.out)
			l.flush()
			var si SessionInfo
			ok := l.pump(func() bool {
				ss, _ := s.Sessions(context.Background())
				if len(ss) == 1 && ss[0].IPv4 != "" && ss[0].IPv6 != "" {
					si = ss[0]
					return l.client.IPCPState() == ppp.StateOpened && l.client.IPv6CPState() == ppp.StateOpened
				}
				return false
			}, 5*time.Second)
			if !ok {
				t.Fatalf("not online: client LCP %v IPCP %v IPv6CP %v events %v; server %+v", l.client.LCPState(), l.client.IPCPState(),
					l.client.IPv6CPState(), l.events, si)
			}
			if si.UserName != "alice" || si.PPPState != "network" {
				t.Fatalf("session info %+v", si)
			}
			a := netip.MustParseAddr(si.IPv4)
			if a.Less(netip.MustParseAddr("100.64.0.10")) || netip.MustParseAddr("100.64.0.20").Less(a) {
				t.Fatalf("address %v outside the pool", a)
			}
			var got netip.Addr
			for _, e := range l.events {
				if e.Kind == ppp.EventNetworkUp && e.Network.Protocol == ppp.ProtoIPCP {
					got = e.Network.LocalIPv4
				}
			}
			if got != a {
				t.Fatalf("client got %v, server says %v", got, a)
			}
			// RFC 4861 §6.2.4: an RA at IPv6CP up carries the /64.
			if !l.pump(func() bool { return len(l.ras) > 0 }, 2*time.Second) {
				t.Fatal("no router advertisement after IPv6CP")
			}
			checkRA(t, l.ras[0], netip.MustParsePrefix(si.IPv6))
			// A Router Solicitation is answered with another.
			rs := routerSolicit(l.events)
			l.out.Reset()
			frame := append([]byte{0x00, 0x57}, rs...)
			l.conn.WriteToUDPAddrPort(append(l.dataHeader(nil), frame...), l.srv)
			if !l.pump(func() bool { return len(l.ras) > 1 }, 2*time.Second) {
				t.Fatal("router solicitation not answered")
			}
		})
	}
}

// Wrong password: PPP fails, the LNS clears the call with a CDN whose
// RFC 3145 cause is 16 (authentication failed), and nothing is leased.
func TestPPPAuthFailureCDN(t *testing.T) {
	s, addr := pppServer(t, nil)
	l := newSubscriberLAC(t, addr, 2, "alice", "wrong", []ppp.AuthProto{ppp.AuthCHAPMD5}, false)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	down := l.sessionDown(5 * time.Second)
	if down == nil {
		t.Fatal("no CDN after a failed authentication")
	}
	if c := down.Cause; c == nil || c.Code != 16 || down.Result.Code != wire.CDNGeneralError {
		t.Fatalf("CDN %+v cause %+v", down.Result, down.Cause)
	}
	waitFor(t, "session gone", func() bool {
		ss, _ := s.Sessions(context.Background())
		return len(ss) == 0
	})
}

// LCP echo failure (RFC 1661 §5.8, RFC 3145 cause 8): a LAC that stops
// answering loses its session with CDN result 1 (lost carrier).
func TestPPPEchoFailureCDN(t *testing.T) {
	_, addr := pppServer(t, func(c *Config) {
		c.PPP.EchoInterval = 100 * time.Millisecond
		c.PPP.EchoFailures = 3
		c.PPP.IPv6 = false
	})
	l := newSubscriberLAC(t, addr, 2, "alice", "wonderland", []ppp.AuthProto{ppp.AuthPAP}, false)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	if !l.pump(func() bool { return l.client.IPCPState() == ppp.StateOpened }, 5*time.Second) {
		t.Fatal("not online")
	}
	l.dropData = true
	down := l.sessionDown(5 * time.Second)
	if down == nil {
		t.Fatal("session survived a dead link")
	}
	if down.Result.Code != wire.CDNLostCarrier || down.Cause == nil || down.Cause.Code != 8 {
		t.Fatalf("CDN %+v cause %+v", down.Result, down.Cause)
	}
}

// RFC 1661 §5.8 keepalive through the datapath: the Echo-Requests a
// shard's timer wake-ups send in batches reach the LAC every
// echo_interval and, answered, keep the session up.
func TestPPPEchoesAnswered(t *testing.T) {
	s, addr := pppServer(t, func(c *Config) {
		c.PPP.EchoInterval = 250 * time.Millisecond
		c.PPP.EchoFailures = 2
		c.PPP.IPv6 = false
	})
	l := newSubscriberLAC(t, addr, 2, "alice", "wonderland", []ppp.AuthProto{ppp.AuthPAP}, false)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	if !l.pump(func() bool { return l.client.IPCPState() == ppp.StateOpened }, 5*time.Second) {
		t.Fatal("not online")
	}
	l.echoes = 0
	if down := l.sessionDown(1600 * time.Millisecond); down != nil {
		t.Fatalf("session went down with its echoes answered: %+v", down.Result)
	}
	// Echoes at 0.25 s intervals over 1.6 s: 6, one more or less by
	// where the first falls.
	if l.echoes < 5 || l.echoes > 7 {
		t.Fatalf("%d Echo-Requests in 1.6 s at a 250 ms interval", l.echoes)
	}
	if si := sessionOf(t, s); si.PPPState != "network" {
		t.Fatalf("session %+v", si)
	}
}

// Proxy LCP and proxy authentication (RFC 2661 §4.4.5) under each
// renegotiation policy: with "never" and "on-mismatch" an acceptable
// proxied LCP is taken as is and the user is authenticated from the
// proxy AVPs; with "always" LCP is negotiated again with the client.
func TestPPPProxyLCPPolicies(t *testing.T) {
	// The LAC negotiated MRU 1460 and PAP with the client, then took its
	// credentials (proxy auth type 3 = PAP).
	lcpReq := []byte{0x01, 0x04, 0x05, 0xb4, 0x05, 0x06, 0x11, 0x22, 0x33, 0x44}
	lacReq := []byte{0x01, 0x04, 0x05, 0xb4, 0x03, 0x04, 0xc0, 0x23, 0x05, 0x06, 0x55, 0x66, 0x77, 0x88}
	proxy := func() *tunnel.Proxy {
		return &tunnel.Proxy{InitialReceivedConfReq: lcpReq, LastReceivedConfReq: lcpReq, LastSentConfReq: lacReq,
			AuthenType: 3, AuthenName: []byte("alice"), AuthenID: 1, AuthenResponse: []byte("wonderland")}
	}
	for _, pol := range []string{"never", "on-mismatch", "always"} {
		t.Run(pol, func(t *testing.T) {
			s, addr := pppServer(t, func(c *Config) {
				c.PPP.Auth = []string{"pap"}
				c.PPP.IPv6 = false
				c.Default.Renegotiate = pol
			})
			l := newSubscriberLAC(t, addr, 2, "alice", "wonderland", []ppp.AuthProto{ppp.AuthPAP}, false)
			l.dial(t, proxy())
			if pol != "always" {
				// The client's LCP is already open: it never restarts it.
				l.client.StartProxy(time.Now(), ppp.ProxyDecision{Accept: true, OurMRU: 1460, PeerMRU: 1460,
					OurMagic: 0x11223344, PeerMagic: 0x55667788}, &l.out)
			} else {
				l.client.Start(time.Now(), &l.out)
			}
			l.flush()
			var si SessionInfo
			if !l.pump(func() bool {
				ss, _ := s.Sessions(context.Background())
				if len(ss) == 1 && ss[0].IPv4 != "" {
					si = ss[0]
					return true
				}
				return false
			}, 5*time.Second) {
				t.Fatalf("not online: %+v events %v", sessionOf(t, s), l.events)
			}
			if si.UserName != "alice" || si.ProxyLCP == (pol == "always") {
				t.Fatalf("policy %s: session %+v", pol, si)
			}
		})
	}
}

// checkRA verifies an RA's checksum and prefix option.
func checkRA(t *testing.T, pkt []byte, want netip.Prefix) {
	t.Helper()
	var src, dst [16]byte
	copy(src[:], pkt[8:24])
	copy(dst[:], pkt[24:40])
	if icmpv6Checksum(src, dst, pkt[40:]) != 0 {
		t.Fatal("RA checksum does not verify")
	}
	opts := pkt[40+16:]
	for len(opts) >= 8 && opts[1] > 0 {
		if opts[0] == 3 {
			p, _ := netip.AddrFromSlice(opts[16:32])
			if got := netip.PrefixFrom(p, int(opts[2])); got != want {
				t.Fatalf("RA prefix %v, want %v", got, want)
			}
			if opts[3]&0xc0 != 0xc0 {
				t.Fatalf("prefix flags %#x, want on-link and autonomous", opts[3])
			}
			return
		}
		opts = opts[int(opts[1])*8:]
	}
	t.Fatal("RA without a Prefix Information option")
}

// routerSolicit builds an RS from the client's link-local address.
func routerSolicit(events []ppp.Event) []byte {
	var iid [8]byte
	for _, e := range events {
		if e.Kind == ppp.EventNetworkUp && e.Network.Protocol == ppp.ProtoIPv6CP {
			iid = e.Network.LocalIID
		}
	}
	var src [16]byte
	src[0], src[1] = 0xfe, 0x80
	copy(src[8:], iid[:])
	dst := netip.MustParseAddr("ff02::2").As16()
	b := []byte{0x60, 0, 0, 0, 0, 8, 58, 255}
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	icmp := []byte{133, 0, 0, 0, 0, 0, 0, 0}
	ck := icmpv6Checksum(src, dst, icmp)
	binary.BigEndian.PutUint16(icmp[2:], ck)
	return append(b, icmp...)
}
