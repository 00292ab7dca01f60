package control

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
)

// startServer runs a control plane on loopback for one test.
func startServer(t *testing.T, mod func(*Config)) (*Server, netip.AddrPort) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.RetransmitInitial = 100 * time.Millisecond
	cfg.RetransmitCap = 200 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s, runServer(t, s)
}

// runServer runs s until the test ends and returns its first listener's
// address once it is ready.
func runServer(t *testing.T, s *Server) netip.AddrPort {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("server not ready")
	}
	return s.LocalAddrs()[0].(*net.UDPAddr).AddrPort()
}

// peer is a LAC built from the same tunnel core, talking to the server
// over a real UDP socket.
type peer struct {
	t    *testing.T
	conn *net.UDPConn
	srv  netip.AddrPort
	tun  *tunnel.Tunnel
	got  []wire.MsgType
}

func newPeer(t *testing.T, srv netip.AddrPort, version uint8, id uint32) *peer {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &peer{t: t, conn: conn, srv: srv}
	p.tun = tunnel.NewInitiator(time.Now(), tunnel.Config{Version: version, LocalID: id, HostName: "test-lac", Rand: rand.Reader,
		RetransmitInitial: 100 * time.Millisecond, RetransmitCap: 200 * time.Millisecond})
	return p
}

// run exchanges messages until cond holds or the deadline passes.
func (p *peer) run(cond func() bool, within time.Duration) bool {
	end := time.Now().Add(within)
	buf := make([]byte, 4096)
	for time.Now().Before(end) {
		for _, pkt := range p.tun.Poll(time.Now(), nil) {
			if _, err := p.conn.WriteToUDPAddrPort(pkt, p.srv); err != nil {
				p.t.Fatal(err)
			}
		}
		if cond() {
			return true
		}
		p.conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, _, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			continue
		}
		if m, err := wire.ParseMessage(buf[:n], wire.EncapUDP, nil); err == nil {
			p.got = append(p.got, m.Type)
		}
		p.tun.Receive(time.Now(), buf[:n])
	}
	return cond()
}

func tunnelsOf(t *testing.T, s *Server) []TunnelInfo {
	t.Helper()
	ts, err := s.Tunnels(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A LAC's tunnel and call reach established in both versions, show in
// the admin view, and are cleared by CDN and StopCCN on request.
func TestServerTunnelSessionClear(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		s, addr := startServer(t, nil)
		p := newPeer(t, addr, v, 77)
		if !p.run(func() bool { return p.tun.State() == tunnel.StateEstablished }, 3*time.Second) {
			t.Fatalf("v%d: tunnel not established: %v", v, p.tun.State())
		}
		var ti TunnelInfo
		waitFor(t, "server tunnel established", func() bool {
			ts := tunnelsOf(t, s)
			if len(ts) == 1 && ts[0].State == "established" {
				ti = ts[0]
				return true
			}
			return false
		})
		if ti.Version != int(v) || ti.PeerTunnelID != 77 || ti.PeerHostName != "test-lac" || ti.Role != "lns" || ti.RTTSeconds <= 0 {
			t.Fatalf("v%d: tunnel info %+v", v, ti)
		}
		sid, err := p.tun.StartCall(time.Now(), tunnel.CallParams{Serial: 9, CallingNumber: "555"})
		if err != nil {
			t.Fatal(err)
		}
		var si SessionInfo
		p.run(func() bool {
			ss, _ := s.Sessions(context.Background())
			if len(ss) == 1 && ss[0].State == "established" {
				si = ss[0]
				return true
			}
			return false
		}, 3*time.Second)
		if si.PeerSessionID != sid || si.TunnelID != ti.TunnelID || si.CallingNumber != "555" {
			t.Fatalf("v%d: session info %+v (LAC session %d)", v, si, sid)
		}
		if err := s.ClearSession(context.Background(), si.SessionID); err != nil {
			t.Fatal(err)
		}
		if !p.run(func() bool { return p.tun.NumSessions() == 0 }, 3*time.Second) {
			t.Fatalf("v%d: LAC session not cleared by CDN", v)
		}
		if err := s.ClearTunnel(context.Background(), ti.TunnelID); err != nil {
			t.Fatal(err)
		}
		if !p.run(func() bool { return p.tun.State() == tunnel.StateClosing }, 3*time.Second) {
			t.Fatalf("v%d: LAC tunnel %v after clear", v, p.tun.State())
		}
		if err := s.ClearTunnel(context.Background(), 12345); err == nil {
			t.Fatal("clearing an unknown tunnel succeeded")
		}
	}
}

// A flood of SCCRQs from one address that never completes the handshake
// is bounded by the half-open limit; a retransmitted SCCRQ makes no
// second tunnel.
func TestServerHalfOpenLimit(t *testing.T) {
	s, addr := startServer(t, func(c *Config) {
		c.Limits.MaxHalfOpenPerPeer = 8
		c.RetransmitInitial = 5 * time.Second // keep half-open tunnels alive
		c.RetransmitCap = 5 * time.Second
	})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 1; i <= 100; i++ {
		pkt := sccrq(uint16(i))
		for k := 0; k < 2; k++ { // each one twice: the copy is a retransmission
			if _, err := conn.WriteToUDPAddrPort(pkt, addr); err != nil {
				t.Fatal(err)
			}
		}
	}
	var st Stats
	waitFor(t, "the flood to be counted", func() bool {
		st, _ = s.Stats(context.Background())
		return st.Drops["half_open_limit"] >= 184 // 92 new SCCRQs, each twice
	})
	if n := len(tunnelsOf(t, s)); n != 8 {
		t.Fatalf("%d tunnels after the flood, want the limit of 8", n)
	}
	if st.Counters["sccrq_received"] != 8 {
		t.Fatalf("sccrq_received %d", st.Counters["sccrq_received"])
	}
}

func sccrq(peerID uint16) []byte {
	b := wire.AppendControlHeader(nil, wire.EncapUDP, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: 2})
	b = wire.AppendMessageType(b, wire.MsgSCCRQ)
	b = wire.AppendAVP(b, true, 0, wire.AVPProtocolVersion, []byte{1, 0})
	b = wire.AppendAVP(b, true, 0, wire.AVPHostName, []byte("flood"))
	b = wire.AppendAVPUint32(b, true, 0, wire.AVPFramingCapabilities, 3)
	b = wire.AppendAVPUint16(b, true, 0, wire.AVPAssignedTunnelID, peerID)
	wire.FinishControl(b, 0, wire.EncapUDP)
	return b
}

// RFC 2661 §4.4.2: a control message of a version we do not speak gets a
// StopCCN with result 5 and our highest version; garbage is counted.
func TestServerUnsupportedVersionAndGarbage(t *testing.T) {
	s, addr := startServer(t, nil)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	v4 := sccrq(1)
	binary.BigEndian.PutUint16(v4, binary.BigEndian.Uint16(v4)&^0x000f|0x0004)
	if _, err := conn.WriteToUDPAddrPort(v4, addr); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("no answer to a version 4 SCCRQ: %v", err)
	}
	m, err := wire.ParseMessage(buf[:n], wire.EncapUDP, nil)
	if err != nil || m.Type != wire.MsgStopCCN {
		t.Fatalf("answer %v %v", m.Type, err)
	}
	a, _ := m.Find(0, wire.AVPResultCode)
	res, ec, _, _ := wire.ParseResultCode(a.Value)
	if res != wire.ResultUnsupportedVersion || ec != 3 {
		t.Fatalf("result %d/%d, want 5/3", res, ec)
	}
	for _, junk := range [][]byte{{}, {0xc8}, {0xc8, 0x02, 0, 200, 0, 0}, make([]byte, 40)} {
		conn.WriteToUDPAddrPort(junk, addr)
	}
	waitFor(t, "garbage counted", func() bool {
		st, _ := s.Stats(context.Background())
		// The datapath drops what is too short to classify, the control
		// plane what it cannot parse.
		return st.Drops["malformed"]+st.Drops["datapath_malformed"]+st.Drops["datapath_bad_version"] >= 3 && st.Drops["unsupported_version"] == 1
	})
	if len(tunnelsOf(t, s)) != 0 {
		t.Fatal("garbage made a tunnel")
	}
}

// A peer policy with reject: true gets StopCCN result 4.
func TestServerRejectPeer(t *testing.T) {
	_, addr := startServer(t, func(c *Config) {
		c.Peers = []Peer{{Name: "banned", HostName: "test-lac", Reject: true}}
	})
	p := newPeer(t, addr, 2, 5)
	if !p.run(func() bool { return p.tun.State() == tunnel.StateClosing }, 3*time.Second) {
		t.Fatalf("rejected LAC state %v", p.tun.State())
	}
	if r := p.tun.CloseResult(); r.Code != wire.ResultNotAuthorized {
		t.Fatalf("result %+v", r)
	}
}
