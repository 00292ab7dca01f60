package control

import (
	"context"
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestTokenBucket(t *testing.T) {
	var b tokenBucket
	for i := 0; i < 3; i++ {
		if !b.take(t0, 2, 3) {
			t.Fatalf("take %d of a burst of 3 refused", i+1)
		}
	}
	if b.take(t0, 2, 3) {
		t.Fatal("a fourth take in the same instant passed a burst of 3")
	}
	// 2 tokens a second: one after 500ms, not two.
	if !b.take(t0.Add(500*time.Millisecond), 2, 3) {
		t.Fatal("no token after 500ms at 2/s")
	}
	if b.take(t0.Add(500*time.Millisecond), 2, 3) {
		t.Fatal("two tokens after 500ms at 2/s")
	}
	// A long pause refills to the burst, not beyond.
	now := t0.Add(time.Hour)
	n := 0
	for b.take(now, 2, 3) {
		n++
	}
	if n != 3 {
		t.Fatalf("%d tokens after an hour, want the burst of 3", n)
	}
	// A clock that steps back gives nothing and breaks nothing.
	if b.take(t0, 2, 3) {
		t.Fatal("a token from a clock stepping back")
	}
	if !b.full(now.Add(2*time.Second), 2, 3) || b.full(now, 2, 3) {
		t.Fatal("full wrong")
	}
	// No rate is no limit; a zero burst is one.
	var u tokenBucket
	for i := 0; i < 1000; i++ {
		if !u.take(t0, 0, 0) {
			t.Fatal("rate 0 limited")
		}
	}
	var one tokenBucket
	if !one.take(t0, 1, 0) || one.take(t0, 1, 0) {
		t.Fatal("burst 0 is not one")
	}
}

// admissionShard is a shard outside any goroutine, its clock set by hand.
func admissionShard(t *testing.T, l Limits) (*Server, *shard) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.Shards = 1
	cfg.Limits = l
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sh := s.shards[0]
	sh.now = t0
	return s, sh
}

func refusedCount(s *Server, reason int) uint64 { return s.refused[reason].Load() }

// Every teardown path gives back what a session held: CDN in setup,
// CDN once up, an admission that made no session, the tunnel's end.
func TestAdmissionCounting(t *testing.T) {
	s, sh := admissionShard(t, Limits{MaxSessionsInSetupPerPeer: 2, MaxSessionsPerPeer: 3})
	peer := netip.MustParseAddrPort("192.0.2.1:1701")
	e := &entry{peer: peer}
	pa := func() peerAdmission { return *sh.admPeers[peer.Addr()] }

	if !sh.admitSession(e) || !sh.admitSession(e) {
		t.Fatal("first two sessions refused")
	}
	sh.admitted(e, 1)
	sh.admitted(e, 2)
	if sh.admitSession(e) {
		t.Fatal("a third session in setup admitted over max_sessions_in_setup_per_peer 2")
	}
	if refusedCount(s, refuseSetupPerPeer) != 1 {
		t.Fatal("setup_per_peer_limit not counted")
	}
	sh.established(e, 1) // ICCN
	if got := pa(); got.setup != 1 || got.sessions != 2 || s.inSetup.Load() != 1 {
		t.Fatalf("after ICCN: %+v in setup %d", got, s.inSetup.Load())
	}
	if !sh.admitSession(e) {
		t.Fatal("setup room not given back by ICCN")
	}
	sh.admitted(e, 3)
	if sh.admitSession(e) || refusedCount(s, refuseSessionPerPeer) != 1 {
		t.Fatal("fourth session admitted over max_sessions_per_peer 3")
	}
	sh.released(e, 2) // CDN while in setup
	if got := pa(); got.setup != 1 || got.sessions != 2 {
		t.Fatalf("after CDN in setup: %+v", got)
	}
	sh.released(e, 1) // CDN once established
	if got := pa(); got.setup != 1 || got.sessions != 1 {
		t.Fatalf("after CDN of an established session: %+v", got)
	}
	sh.released(e, 1) // a second report of the same session changes nothing
	if got := pa(); got.sessions != 1 {
		t.Fatalf("double release: %+v", got)
	}
	// An admission the tunnel made no session of (no ID left, or a
	// pseudowire refused) is undone when the tunnel is serviced.
	if !sh.admitSession(e) {
		t.Fatal("refused")
	}
	sh.settleAdmissions(e, false)
	if got := pa(); got.setup != 1 || got.sessions != 1 || e.pendingAdmit != 0 {
		t.Fatalf("after an unused admission: %+v pending %d", got, e.pendingAdmit)
	}
	// An outgoing call we accepted as LAC comes up with no answer first.
	if !sh.admitSession(e) {
		t.Fatal("refused")
	}
	sh.established(e, 9)
	if got := pa(); got.setup != 1 || got.sessions != 2 {
		t.Fatalf("after a direct SessionUp: %+v", got)
	}
	// The tunnel goes away: everything it held comes back.
	sh.settleAdmissions(e, true)
	if got := pa(); got.setup != 0 || got.sessions != 0 || s.inSetup.Load() != 0 {
		t.Fatalf("after the tunnel ended: %+v in setup %d", got, s.inSetup.Load())
	}
	sh.sweepAdmission(t0.Add(time.Hour))
	if len(sh.admPeers) != 0 {
		t.Fatal("an idle peer is remembered")
	}
}

// The global limits count every shard's sessions: established ones and
// those in setup.
func TestAdmissionGlobalLimits(t *testing.T) {
	s, sh := admissionShard(t, Limits{MaxSessions: 3, MaxSessionsInSetup: 2})
	a := &entry{peer: netip.MustParseAddrPort("192.0.2.1:1701")}
	b := &entry{peer: netip.MustParseAddrPort("192.0.2.2:1701")}
	if !sh.admitSession(a) || !sh.admitSession(b) {
		t.Fatal("refused")
	}
	sh.admitted(a, 1)
	sh.admitted(b, 1)
	if sh.admitSession(a) || refusedCount(s, refuseSetupLimit) != 1 {
		t.Fatal("admitted over max_sessions_in_setup")
	}
	sh.established(a, 1)
	s.sessions.Add(1) // what the SessionUp report does
	if !sh.admitSession(b) {
		t.Fatal("refused with room")
	}
	sh.admitted(b, 2)
	// 1 up + 2 in setup = max_sessions 3.
	if sh.admitSession(a) || refusedCount(s, refuseSessionLimit) != 1 {
		t.Fatal("admitted over max_sessions")
	}
}

// ICRQ and SCCRQ rates, per peer and global, with hand-driven time.
func TestAdmissionRates(t *testing.T) {
	s, sh := admissionShard(t, Limits{ICRQRatePerPeer: 1, ICRQBurstPerPeer: 2, ICRQRate: 10, ICRQBurst: 3,
		SCCRQRatePerPeer: 1, SCCRQBurstPerPeer: 1, SCCRQRate: 100, SCCRQBurst: 100})
	a := &entry{peer: netip.MustParseAddrPort("192.0.2.1:1701")}
	b := &entry{peer: netip.MustParseAddrPort("192.0.2.2:1701")}
	if !sh.admitSession(a) || !sh.admitSession(a) {
		t.Fatal("burst refused")
	}
	if sh.admitSession(a) || refusedCount(s, refuseICRQRatePerPeer) != 1 {
		t.Fatal("per-peer ICRQ rate not enforced")
	}
	if !sh.admitSession(b) {
		t.Fatal("another peer limited by the first one's rate")
	}
	if sh.admitSession(b) || refusedCount(s, refuseICRQRate) != 1 {
		t.Fatal("global ICRQ burst of 3 not enforced")
	}
	sh.now = t0.Add(time.Second) // +1 per peer, +10 global
	if !sh.admitSession(a) {
		t.Fatal("no ICRQ token after a second")
	}
	if r := sh.admitTunnel(a.peer.Addr(), t0); r != -1 {
		t.Fatalf("first SCCRQ refused: %s", refusalNames[r])
	}
	if r := sh.admitTunnel(a.peer.Addr(), t0); r != refuseSCCRQRatePerPeer {
		t.Fatalf("second SCCRQ: %d", r)
	}
	if r := sh.admitTunnel(a.peer.Addr(), t0.Add(time.Second)); r != -1 {
		t.Fatalf("SCCRQ after a second: %d", r)
	}
}

func TestPeekMessageType(t *testing.T) {
	for _, enc := range []wire.Encap{wire.EncapUDP, wire.EncapIP} {
		for _, mt := range []wire.MsgType{wire.MsgSCCRQ, wire.MsgICRQ, wire.MsgHello} {
			for _, v := range []uint8{2, 3} {
				if v == 2 && enc == wire.EncapIP {
					continue // RFC 2661 runs over UDP only
				}
				b := wire.AppendControlHeader(nil, enc, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: v, TunnelID: 7})
				b = wire.AppendMessageType(b, mt)
				wire.FinishControl(b, 0, enc)
				h, off, err := wire.ParseHeader(b, enc)
				if err != nil {
					t.Fatal(err)
				}
				if got, ok := peekMessageType(b, h, off); !ok || got != mt {
					t.Fatalf("%v v%d %v: got %v %v", enc, v, mt, got, ok)
				}
			}
		}
	}
	zlb := wire.AppendControlHeader(nil, wire.EncapUDP, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: 7})
	wire.FinishControl(zlb, 0, wire.EncapUDP)
	h, off, err := wire.ParseHeader(zlb, wire.EncapUDP)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := peekMessageType(zlb, h, off); ok {
		t.Fatal("a ZLB has a message type")
	}
	// Octets after the Length are not part of the message (RFC 2661
	// §3.1): a ZLB followed by what looks like an AVP is still a ZLB.
	padded := append(zlb, 0x80, 0x08, 0, 0, 0, 0, 0, byte(wire.MsgSCCRQ))
	if mt, ok := peekMessageType(padded, h, off); ok {
		t.Fatalf("a ZLB with trailing octets peeked as %v", mt)
	}
}

func FuzzPeekMessageType(f *testing.F) {
	f.Add(sccrq(1), false)
	f.Add([]byte{0xc8, 0x02, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0}, false)
	f.Add([]byte{0, 0, 0, 0, 0xc8, 0x03, 0, 20, 0, 0, 0, 7, 0, 0, 0, 0, 0x80, 0x08, 0, 0, 0, 0, 0, 1}, true)
	f.Fuzz(func(t *testing.T, b []byte, ip bool) {
		enc := wire.EncapUDP
		if ip {
			enc = wire.EncapIP
		}
		h, off, err := wire.ParseHeader(b, enc)
		if err != nil || !h.Control {
			return
		}
		mt, ok := peekMessageType(b, h, off)
		if !ok {
			return
		}
		// What the peek reads is what the full parser reads.
		if m, err := wire.ParseMessage(b, enc, nil); err == nil && m.Type != mt {
			t.Fatalf("peek %v, parse %v", mt, m.Type)
		}
	})
}

// RFC 2661 §4.4.2: SCCRQs over the per-peer rate get StopCCN Result
// Code 2, Error Code 4 (insufficient resources), not silence.
func TestServerSCCRQRate(t *testing.T) {
	s, addr := startServer(t, func(c *Config) {
		c.Limits.SCCRQRatePerPeer, c.Limits.SCCRQBurstPerPeer = 0.001, 3
		c.RetransmitInitial, c.RetransmitCap = 5*time.Second, 5*time.Second
	})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := 1; i <= 10; i++ {
		if _, err := conn.WriteToUDPAddrPort(sccrq(uint16(i)), addr); err != nil {
			t.Fatal(err)
		}
	}
	var sccrp, refused int
	buf := make([]byte, 1500)
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for sccrp+refused < 10 {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("after %d SCCRP and %d StopCCN: %v", sccrp, refused, err)
		}
		m, err := wire.ParseMessage(buf[:n], wire.EncapUDP, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch m.Type {
		case wire.MsgSCCRP:
			sccrp++
		case wire.MsgStopCCN:
			a, _ := m.Find(0, wire.AVPResultCode)
			res, ec, _, _ := wire.ParseResultCode(a.Value)
			if res != wire.ResultGeneralError || ec != wire.ErrCodeResources {
				t.Fatalf("StopCCN %d/%d, want 2/4", res, ec)
			}
			refused++
		}
	}
	if sccrp != 3 || refused != 7 {
		t.Fatalf("%d SCCRP, %d StopCCN; want the burst of 3 and 7", sccrp, refused)
	}
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Refused["sccrq_rate_per_peer"] != 7 {
		t.Fatalf("refusals %v", st.Refused)
	}
}

// A storm of ICRQs on a live LNS: the admitted calls come up, the rest
// get CDN Result Code 4, nothing stays counted once they are cleared,
// and a session established before the storm is untouched.
func TestServerICRQStorm(t *testing.T) {
	const burst = 12
	s, addr := startServer(t, func(c *Config) {
		// One token a thousand seconds: exactly the burst is admitted.
		c.Limits.ICRQRate, c.Limits.ICRQBurst = 0.001, burst
		c.ReceiveWindow = 64
	})
	old := newPeer(t, addr, 2, 40)
	if !old.run(func() bool { return old.tun.State() == tunnel.StateEstablished }, 3*time.Second) {
		t.Fatal("tunnel not established")
	}
	oldSID, err := old.tun.StartCall(time.Now(), tunnel.CallParams{Serial: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !old.run(func() bool { ss := old.tun.Session(oldSID); return ss != nil && ss.State == tunnel.SessionEstablished }, 3*time.Second) {
		t.Fatal("session before the storm not established")
	}

	p := newPeer(t, addr, 2, 41)
	if !p.run(func() bool { return p.tun.State() == tunnel.StateEstablished }, 3*time.Second) {
		t.Fatal("storm tunnel not established")
	}
	const calls = 40
	for i := 0; i < calls; i++ {
		if _, err := p.tun.StartCall(time.Now(), tunnel.CallParams{Serial: uint32(100 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	var up, cdn4, other int
	p.run(func() bool {
		for _, ev := range p.tun.Events() {
			switch {
			case ev.Kind == tunnel.SessionUp:
				up++
			case ev.Kind == tunnel.SessionDown && ev.Result.Code == wire.CDNNoResourcesTemp:
				cdn4++
			case ev.Kind == tunnel.SessionDown:
				other++
			}
		}
		return up+cdn4+other == calls
	}, 5*time.Second)
	// The session before the storm took one token.
	if up != burst-1 || cdn4 != calls-burst+1 || other != 0 {
		t.Fatalf("%d up, %d CDN 4, %d other; want %d up and %d CDN 4", up, cdn4, other, burst-1, calls-burst+1)
	}
	// The LAC counts a call up when it sends ICCN; the LNS when it
	// reads it.
	var st Stats
	waitFor(t, "the last ICCNs", func() bool {
		p.run(func() bool { return false }, 20*time.Millisecond)
		st, _ = s.Stats(context.Background())
		return st.SessionsInSetup == 0
	})
	if st.Refused["icrq_rate"] != uint64(calls-burst+1) || st.Sessions != burst {
		t.Fatalf("refused %v, in setup %d, sessions %d", st.Refused, st.SessionsInSetup, st.Sessions)
	}
	// Clear the storm's sessions: their admissions are given back.
	p.tun.Sessions(func(ss *tunnel.Session) {
		p.tun.CloseSession(time.Now(), ss.ID, tunnel.Result{Code: wire.CDNAdmin}, nil)
	})
	waitFor(t, "storm sessions cleared", func() bool {
		p.run(func() bool { return false }, 20*time.Millisecond)
		st, _ := s.Stats(context.Background())
		return st.Sessions == 1
	})
	var held int
	s.eachShard(context.Background(), func(sh *shard) {
		for _, pa := range sh.admPeers {
			held += pa.sessions + pa.setup
		}
	})
	if held != 1 || s.inSetup.Load() != 0 {
		t.Fatalf("%d sessions held by admission after the storm, %d in setup; want the one before it", held, s.inSetup.Load())
	}
	if ss := old.tun.Session(oldSID); ss == nil || ss.State != tunnel.SessionEstablished || old.tun.State() != tunnel.StateEstablished {
		t.Fatal("the session before the storm did not survive it")
	}
	ss, _ := s.Sessions(context.Background())
	if len(ss) != 1 || ss[0].PeerSessionID != oldSID || ss[0].State != "established" {
		t.Fatalf("server sessions after the storm: %+v", ss)
	}
}

// A shard with a backlog takes no new SCCRQ or ICRQ, but established
// tunnels' Hellos and ZLBs still get in.
func TestOverloadDropsNewWorkFirst(t *testing.T) {
	s, sh := admissionShard(t, Limits{})
	from := netip.MustParseAddrPort("192.0.2.1:1701")
	to := netip.MustParseAddr("192.0.2.254")
	msg := func(tid uint16, mt wire.MsgType) []byte {
		b := wire.AppendControlHeader(nil, wire.EncapUDP, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: uint32(tid)})
		if mt != 0 {
			b = wire.AppendMessageType(b, mt)
		}
		wire.FinishControl(b, 0, wire.EncapUDP)
		return b
	}
	s.Control(nil, msg(0, wire.MsgSCCRQ), from, to)
	s.Control(nil, msg(7, wire.MsgICRQ), from, to)
	if len(sh.in) != 2 {
		t.Fatalf("%d queued without a backlog, want 2", len(sh.in))
	}
	for len(sh.in) < overloadBacklog(sh) {
		sh.in <- inPacket{buf: msg(7, wire.MsgHello)}
	}
	depth := len(sh.in)
	s.Control(nil, msg(0, wire.MsgSCCRQ), from, to)
	s.Control(nil, msg(7, wire.MsgICRQ), from, to)
	if len(sh.in) != depth {
		t.Fatal("new work queued behind a backlog")
	}
	if refusedCount(s, refuseOverloadSCCRQ) != 1 || refusedCount(s, refuseOverloadICRQ) != 1 {
		t.Fatalf("overload refusals %v", s.refused.snapshot())
	}
	s.Control(nil, msg(7, wire.MsgHello), from, to)
	s.Control(nil, msg(7, 0), from, to) // ZLB
	s.Control(nil, msg(7, wire.MsgICCN), from, to)
	if len(sh.in) != depth+3 {
		t.Fatalf("established traffic dropped under backlog: %d queued, want %d", len(sh.in), depth+3)
	}
}

// Every limit is named in a reload's diff when it changes.
func TestLimitChangesNamesEveryLimit(t *testing.T) {
	a := DefaultLimits()
	v := reflect.ValueOf(&a).Elem()
	for i := 0; i < v.NumField(); i++ {
		b := a
		f := reflect.ValueOf(&b).Elem().Field(i)
		switch f.Kind() {
		case reflect.Int:
			f.SetInt(f.Int() + 1)
		case reflect.Float64:
			f.SetFloat(f.Float() + 0.5)
		}
		if got := limitChanges(a, b); len(got) != 1 {
			t.Errorf("%s changed: diff %q", v.Type().Field(i).Name, got)
		}
	}
	if got := limitChanges(a, a); len(got) != 0 {
		t.Errorf("no change: %q", got)
	}
}
