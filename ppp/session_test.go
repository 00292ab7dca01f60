package ppp

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func lcpFrame(code, id uint8, data []byte) []byte {
	return AppendPacket(AppendFrameHeader(nil, ProtoLCP, false, false), code, id, data)
}

func frameOf(p Protocol, code, id uint8, data []byte) []byte {
	return AppendPacket(AppendFrameHeader(nil, p, false, false), code, id, data)
}

// upPair brings a client and server to the network phase.
func upPair(t *testing.T, sc, cc Config) *pair {
	t.Helper()
	p := newPair(t, cc, sc, LocalUsers{"alice": "s3cret"})
	p.start()
	p.run(time.Second)
	if p.s.Phase() != PhaseNetwork || p.s.IPCPState() != StateOpened {
		t.Fatalf("not up: server %v/%v events %v", p.s.Phase(), p.s.IPCPState(), kinds(p.sEvents))
	}
	return p
}

// RFC 1661 §4.6: without answers the server sends Max-Configure
// Configure-Requests one restart interval apart, then gives up.
func TestLCPRetransmitMaxConfigure(t *testing.T) {
	cfg := serverConfig(AuthPAP)
	cfg.Timers = Timers{Restart: 3 * time.Second, MaxConfigure: 10}
	s, _ := NewSession(cfg)
	var out Output
	s.Start(t0, &out)
	reqs := 0
	var down *Event
	now := t0
	for i := 0; i < 20 && down == nil; i++ {
		for _, sp := range decodeOutput(t, &out) {
			if sp.proto == ProtoLCP && sp.p.Code == CodeConfigureRequest {
				reqs++
			}
		}
		for _, e := range out.Events {
			if e.Kind == EventLinkDown {
				down = &e
			}
		}
		out.Reset()
		d, ok := s.Deadline()
		if !ok {
			break
		}
		if d.Sub(now) != 3*time.Second {
			t.Fatalf("deadline %v after the last send", d.Sub(now))
		}
		now = d
		s.Tick(now, &out)
	}
	if reqs != 10 {
		t.Errorf("%d Configure-Requests, want 10", reqs)
	}
	if down == nil || down.Reason != ReasonNegotiation || now.Sub(t0) != 30*time.Second {
		t.Fatalf("down %+v after %v", down, now.Sub(t0))
	}
	if _, ok := s.Deadline(); ok {
		t.Error("a dead session still has a deadline")
	}
}

// RFC 1661 §5.8: keepalive Echo-Requests; after EchoFailures unanswered
// requests the link is declared dead.
func TestLCPEchoFailure(t *testing.T) {
	sc := serverConfig(AuthPAP)
	sc.EchoInterval = 10 * time.Second
	sc.EchoFailures = 3
	p := upPair(t, sc, clientConfig("alice", "s3cret"))
	// Answered echoes keep the link up.
	p.run(35 * time.Second)
	if p.s.Down() {
		t.Fatal("link died while echoes were answered")
	}
	// Cut the wire.
	p.lossy = func(bool, []byte) bool { return true }
	cut := p.now
	var echoes int
	p.lossy = func(fromServer bool, f []byte) bool {
		if proto, info, _ := ParseFrame(f); fromServer && proto == ProtoLCP && info[0] == CodeEchoRequest {
			echoes++
		}
		return true
	}
	p.run(time.Minute)
	e, ok := findEvent(p.sEvents, EventLinkDown, 0)
	if !ok || e.Reason != ReasonEchoTimeout {
		t.Fatalf("events %v", kinds(p.sEvents))
	}
	if echoes != 3 {
		t.Errorf("%d unanswered Echo-Requests, want 3", echoes)
	}
	// Requests at +5, +15, +25 (the schedule runs from LCP up), dead at +35.
	if got := p.now.Sub(cut); got <= 30*time.Second || got > 40*time.Second {
		t.Errorf("declared dead %v after the cut", got)
	}
	if _, ok := findEvent(p.sEvents, EventNetworkDown, ProtoIPCP); !ok {
		t.Error("no NetworkDown before LinkDown")
	}
}

// RFC 1661 §5.8: Echo-Reply carries our magic number and the data.
func TestLCPEchoReply(t *testing.T) {
	p := upPair(t, serverConfig(AuthPAP), clientConfig("alice", "s3cret"))
	var out Output
	p.s.Input(p.now, lcpFrame(CodeEchoRequest, 42, []byte{1, 2, 3, 4, 'h', 'i'}), &out)
	sent := decodeOutput(t, &out)
	if len(sent) != 1 || sent[0].p.Code != CodeEchoReply || sent[0].p.ID != 42 {
		t.Fatalf("sent %+v", sent)
	}
	if m := binary.BigEndian.Uint32(sent[0].p.Data); m != p.s.lcp.magic || !bytes.Equal(sent[0].p.Data[4:], []byte("hi")) {
		t.Errorf("reply data %x", sent[0].p.Data)
	}
	// RFC 1570 §2: Identification and Time-Remaining need no answer;
	// Discard-Request neither (RFC 1661 §5.10).
	for _, c := range []uint8{CodeIdentification, CodeTimeRemaining, CodeDiscardRequest} {
		out.Reset()
		p.s.Input(p.now, lcpFrame(c, 9, []byte{0, 0, 0, 0, 'M', 'S'}), &out)
		if out.NumFrames() != 0 || len(out.Events) != 0 {
			t.Errorf("code %d answered: %d frames %v", c, out.NumFrames(), kinds(out.Events))
		}
	}
	// RFC 1661 §5.6: an unknown code is Code-Rejected.
	out.Reset()
	p.s.Input(p.now, lcpFrame(77, 9, []byte{1}), &out)
	sent = decodeOutput(t, &out)
	if len(sent) != 1 || sent[0].p.Code != CodeCodeReject || !bytes.Equal(sent[0].p.Data, []byte{77, 9, 0, 5, 1}) {
		t.Errorf("sent %+v", sent)
	}
}

// RFC 1661 §5.7: CCP (and any unknown protocol) is Protocol-Rejected and
// the link stays up.
func TestProtocolRejectCCP(t *testing.T) {
	p := upPair(t, serverConfig(AuthPAP), clientConfig("alice", "s3cret"))
	var out Output
	ccp := frameOf(ProtoCCP, CodeConfigureRequest, 3, []byte{18, 6, 1, 0, 0, 1})
	p.s.Input(p.now, ccp, &out)
	sent := decodeOutput(t, &out)
	if len(sent) != 1 || sent[0].proto != ProtoLCP || sent[0].p.Code != CodeProtocolReject {
		t.Fatalf("sent %+v", sent)
	}
	if d := sent[0].p.Data; binary.BigEndian.Uint16(d) != uint16(ProtoCCP) || !bytes.Equal(d[2:], ccp[4:]) {
		t.Errorf("Protocol-Reject data %x", d)
	}
	if p.s.Down() || p.s.Phase() != PhaseNetwork || len(out.Events) != 0 {
		t.Error("link affected by CCP")
	}
}

// RFC 1661 §5.7: when the peer rejects IPv6CP, IPCP keeps the link; when
// it rejects the last NCP the link closes.
func TestPeerProtocolRejectsNCP(t *testing.T) {
	sc := serverConfig(AuthPAP)
	sc.IPv6 = true
	cc := clientConfig("alice", "s3cret")
	p := upPair(t, sc, cc) // the client has IPv6 off and rejects IPv6CP
	if p.s.IPv6CPState() != StateStopped || p.s.Down() {
		t.Fatalf("IPv6CP %v down %v", p.s.IPv6CPState(), p.s.Down())
	}
	var out Output
	rej := binary.BigEndian.AppendUint16(nil, uint16(ProtoIPCP))
	p.s.Input(p.now, lcpFrame(CodeProtocolReject, 50, append(rej, 1, 1, 0, 4)), &out)
	sent := decodeOutput(t, &out)
	if len(sent) != 1 || sent[0].p.Code != CodeTerminateRequest {
		t.Fatalf("sent %+v", sent)
	}
	if e, ok := findEvent(out.Events, EventNetworkDown, ProtoIPCP); !ok || e.Network.PeerIPv4 != sc.PeerIPv4 {
		t.Errorf("events %v", kinds(out.Events))
	}
}

// RFC 1661 §5.3 and §6.2: the server follows the protocol a client's
// Nak names when it allows it, and otherwise offers its next preference.
func TestLCPAuthNakRounds(t *testing.T) {
	cases := []struct {
		name         string
		server, peer []AuthProto
		want         [][]byte
		got          AuthProto
	}{
		{"take suggestion", []AuthProto{AuthMSCHAPv2, AuthCHAPMD5, AuthPAP}, []AuthProto{AuthPAP},
			[][]byte{{0xc2, 0x23, 0x81}, {0xc0, 0x23}}, AuthPAP},
		{"next preference", []AuthProto{AuthMSCHAPv2, AuthCHAPMD5, AuthPAP}, []AuthProto{AuthCHAPMD5},
			[][]byte{{0xc2, 0x23, 0x81}, {0xc2, 0x23, 5}}, AuthCHAPMD5},
		{"suggestion not allowed", []AuthProto{AuthMSCHAPv2, AuthPAP}, []AuthProto{AuthCHAPMD5, AuthPAP},
			[][]byte{{0xc2, 0x23, 0x81}, {0xc0, 0x23}}, AuthPAP},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cc := clientConfig("alice", "s3cret")
			cc.Auth = c.peer
			var offered [][]byte
			p := newPair(t, cc, serverConfig(c.server...), LocalUsers{"alice": "s3cret"})
			p.lossy = func(fromServer bool, f []byte) bool {
				proto, info, _ := ParseFrame(f)
				if fromServer && proto == ProtoLCP && info[0] == CodeConfigureRequest {
					pk, _ := ParsePacket(info)
					for rest := pk.Data; len(rest) > 0; {
						o, r, _ := NextOption(rest)
						rest = r
						if o.Type == lcpOptAuth {
							offered = append(offered, o.Value)
						}
					}
				}
				return false
			}
			p.start()
			p.run(time.Second)
			if len(offered) != len(c.want) {
				t.Fatalf("offered %x", offered)
			}
			for i := range c.want {
				if !bytes.Equal(offered[i], c.want[i]) {
					t.Errorf("offer %d = %x, want %x", i, offered[i], c.want[i])
				}
			}
			if e, ok := findEvent(p.sEvents, EventAuthRequest, 0); !ok || e.Auth.Protocol != c.got {
				t.Errorf("events %v", kinds(p.sEvents))
			}
			if _, ok := findEvent(p.cEvents, EventNetworkUp, ProtoIPCP); !ok {
				t.Errorf("client events %v", kinds(p.cEvents))
			}
		})
	}
}

// RFC 1661 §6.2: no common authentication protocol: the link is closed.
func TestLCPNoCommonAuth(t *testing.T) {
	cc := clientConfig("alice", "s3cret")
	cc.Auth = []AuthProto{AuthCHAPMD5}
	p := newPair(t, cc, serverConfig(AuthPAP), nil)
	p.start()
	p.run(time.Minute)
	e, ok := findEvent(p.sEvents, EventLinkDown, 0)
	if !ok || e.Reason != ReasonNoAuthProtocol {
		t.Fatalf("events %v reason %v", kinds(p.sEvents), e.Reason)
	}
}

// RFC 1661 §5.3-5.4 for LCP options: Reject beats Nak; MRU outside the
// policy is Nak'd to the bound; unknown options are rejected.
func TestLCPCheckRequest(t *testing.T) {
	cfg := serverConfig(AuthPAP)
	cfg.MinMRU, cfg.MaxMRU = 1000, 1460
	s, _ := NewSession(cfg)
	var out Output
	s.Start(t0, &out)
	out.Reset()
	cases := []struct {
		name string
		req  []byte
		code uint8
		data []byte
	}{
		{"ack", []byte{1, 4, 5, 0xb4, 5, 6, 1, 2, 3, 4, 7, 2, 8, 2, 2, 6, 0, 0, 0, 0}, CodeConfigureAck, nil},
		{"mru high", []byte{1, 4, 5, 0xdc, 5, 6, 1, 2, 3, 4}, CodeConfigureNak, []byte{1, 4, 5, 0xb4}},
		{"mru low", []byte{1, 4, 0, 100}, CodeConfigureNak, []byte{1, 4, 3, 0xe8}},
		{"reject wins", []byte{1, 4, 0, 100, 13, 3, 6, 17, 4, 5, 0xdc}, CodeConfigureReject, []byte{13, 3, 6, 17, 4, 5, 0xdc}},
		{"auth from client", []byte{3, 4, 0xc0, 0x23}, CodeConfigureReject, []byte{3, 4, 0xc0, 0x23}},
		{"bad length", []byte{5, 4, 1, 2}, CodeConfigureReject, []byte{5, 4, 1, 2}},
		{"zero magic", []byte{5, 6, 0, 0, 0, 0}, CodeConfigureNak, nil},
	}
	for i, c := range cases {
		out.Reset()
		s.Input(t0, lcpFrame(CodeConfigureRequest, uint8(i), c.req), &out)
		var reply *sentPacket
		for _, sp := range decodeOutput(t, &out) {
			if sp.p.Code != CodeConfigureRequest {
				sp := sp
				reply = &sp
			}
		}
		if reply == nil || reply.p.Code != c.code || reply.p.ID != uint8(i) {
			t.Errorf("%s: reply %+v", c.name, reply)
			continue
		}
		want := c.data
		if c.code == CodeConfigureAck {
			want = c.req
		}
		if want != nil && !bytes.Equal(reply.p.Data, want) {
			t.Errorf("%s: data %x, want %x", c.name, reply.p.Data, want)
		}
		if c.name == "zero magic" && (len(reply.p.Data) != 6 || binary.BigEndian.Uint32(reply.p.Data[2:]) == 0) {
			t.Errorf("zero magic Nak'd with %x", reply.p.Data)
		}
	}
}

// RFC 1661 §6.4: a looped-back link (our own requests coming back) is
// detected through the Magic-Number and closed.
func TestLCPLoopbackDetected(t *testing.T) {
	s, _ := NewSession(serverConfig(AuthPAP))
	var out Output
	s.Start(t0, &out)
	now := t0
	for i := 0; i < 50 && !s.Down(); i++ {
		var frames [][]byte
		for j := 0; j < out.NumFrames(); j++ {
			frames = append(frames, bytes.Clone(out.Frame(j)))
		}
		out.Reset()
		for _, f := range frames {
			s.Input(now, f, &out)
		}
		if out.NumFrames() == 0 {
			now = now.Add(3 * time.Second)
			s.Tick(now, &out)
		}
	}
	e, ok := findEvent(out.Events, EventLinkDown, 0)
	if !ok || e.Reason != ReasonLoopback {
		t.Fatalf("down %v events %v reason %v", s.Down(), kinds(out.Events), e.Reason)
	}
}

// RFC 1661 §5.5 and §4.1 (RTR in Opened): the peer terminates; the
// Terminate-Ack goes out and the link is down one restart period later.
func TestPeerTerminate(t *testing.T) {
	p := upPair(t, serverConfig(AuthPAP), clientConfig("alice", "s3cret"))
	var out Output
	p.s.Input(p.now, lcpFrame(CodeTerminateRequest, 5, []byte("bye")), &out)
	sent := decodeOutput(t, &out)
	if len(sent) != 1 || sent[0].p.Code != CodeTerminateAck || sent[0].p.ID != 5 {
		t.Fatalf("sent %+v", sent)
	}
	if _, ok := findEvent(out.Events, EventLinkDown, 0); ok {
		t.Fatal("down before the restart period")
	}
	out.Reset()
	d, _ := p.s.Deadline()
	p.s.Tick(d, &out)
	e, ok := findEvent(out.Events, EventLinkDown, 0)
	if !ok || e.Reason != ReasonPeerTerminate || e.Message != "bye" {
		t.Fatalf("events %v %+v", kinds(out.Events), e)
	}
}

// RFC 1661 §4.1 Close in Opened: Terminate-Request, then down on the Ack.
func TestAdminClose(t *testing.T) {
	p := upPair(t, serverConfig(AuthPAP), clientConfig("alice", "s3cret"))
	var out Output
	p.s.Close(p.now, &out)
	p.collect(true, &out)
	p.run(10 * time.Second)
	e, ok := findEvent(p.sEvents, EventLinkDown, 0)
	if !ok || e.Reason != ReasonAdminClose {
		t.Fatalf("server events %v", kinds(p.sEvents))
	}
	if e, ok := findEvent(p.cEvents, EventLinkDown, 0); !ok || e.Reason != ReasonPeerTerminate {
		t.Fatalf("client events %v", kinds(p.cEvents))
	}
}

// RFC 1661 §3.4, §3.5: IP packets flow only once IPCP is opened, and
// the data path view allocates nothing.
func TestDataPath(t *testing.T) {
	s, _ := NewSession(serverConfig())
	var out Output
	ip := AppendFrameHeader(nil, ProtoIPv4, false, false)
	ip = append(ip, 0x45, 0, 0, 20)
	s.Start(t0, &out)
	out.Reset()
	s.Input(t0, ip, &out)
	if len(out.Data) != 0 {
		t.Fatal("IP accepted before IPCP is opened")
	}
	p := upPair(t, serverConfig(AuthPAP), clientConfig("alice", "s3cret"))
	out.Reset()
	// PFC/ACFC-compressed header: one octet protocol, no FF 03.
	short := []byte{0x21, 0x45, 0, 0, 20}
	p.s.Input(p.now, short, &out)
	if len(out.Data) != 1 || out.Data[0].Protocol != ProtoIPv4 || !bytes.Equal(out.Data[0].Packet, short[1:]) {
		t.Fatalf("data %+v", out.Data)
	}
	allocs := testing.AllocsPerRun(100, func() {
		out.Reset()
		p.s.Input(p.now, ip, &out)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per IP packet", allocs)
	}
}

// RFC 1661 §3.4: frames received before the engine starts are kept and
// processed at Start.
func TestEarlyFramesBuffered(t *testing.T) {
	s, _ := NewSession(serverConfig(AuthPAP))
	var out Output
	s.Input(t0, lcpFrame(CodeConfigureRequest, 1, []byte{5, 6, 1, 2, 3, 4}), &out)
	if out.NumFrames() != 0 {
		t.Fatal("answered before Start")
	}
	s.Start(t0, &out)
	codes := []uint8{}
	for _, sp := range decodeOutput(t, &out) {
		codes = append(codes, sp.p.Code)
	}
	if !bytes.Equal(codes, []byte{CodeConfigureRequest, CodeConfigureAck}) {
		t.Errorf("codes %v", codes)
	}
}

// RFC 1332 §3.3 and RFC 1877: the server Naks 0.0.0.0 with the assigned
// address, Naks DNS with its own, rejects NBNS and IP-Compression.
func TestIPCPServer(t *testing.T) {
	s, _ := NewSession(serverConfig())
	var out Output
	s.Start(t0, &out)
	// Finish LCP by hand: ack the server's request, send ours.
	req := decodeOutput(t, &out)[0].p
	out.Reset()
	s.Input(t0, lcpFrame(CodeConfigureAck, req.ID, req.Data), &out)
	s.Input(t0, lcpFrame(CodeConfigureRequest, 1, nil), &out)
	if s.Phase() != PhaseNetwork {
		t.Fatalf("phase %v", s.Phase())
	}
	cases := []struct {
		req  []byte
		code uint8
		data []byte
	}{
		{[]byte{3, 6, 0, 0, 0, 0, 2, 6, 0, 0x2d, 0x0f, 1, 130, 6, 0, 0, 0, 0}, CodeConfigureReject, []byte{2, 6, 0, 0x2d, 0x0f, 1, 130, 6, 0, 0, 0, 0}},
		{[]byte{3, 6, 0, 0, 0, 0, 129, 6, 0, 0, 0, 0, 131, 6, 8, 8, 8, 8}, CodeConfigureNak, []byte{3, 6, 10, 0, 0, 2, 129, 6, 192, 0, 2, 53, 131, 6, 192, 0, 2, 54}},
		{[]byte{3, 6, 10, 0, 0, 2, 129, 6, 192, 0, 2, 53, 131, 6, 192, 0, 2, 54}, CodeConfigureAck, nil},
	}
	for i, c := range cases {
		out.Reset()
		s.Input(t0, frameOf(ProtoIPCP, CodeConfigureRequest, uint8(10+i), c.req), &out)
		var got *sentPacket
		for _, sp := range decodeOutput(t, &out) {
			if sp.proto == ProtoIPCP && sp.p.Code != CodeConfigureRequest {
				sp := sp
				got = &sp
			}
		}
		want := c.data
		if want == nil {
			want = c.req
		}
		if got == nil || got.p.Code != c.code || !bytes.Equal(got.p.Data, want) {
			t.Errorf("case %d: got %+v, want code %d data %x", i, got, c.code, want)
		}
	}
}

// RFC 5072 §4.1: a zero identifier or one equal to ours is Nak'd with a
// fresh non-zero identifier.
func TestIPv6CPIdentifierCollision(t *testing.T) {
	cfg := serverConfig()
	cfg.IPv4 = false
	cfg.IPv6 = true
	cfg.LocalIID = [8]byte{0, 0, 0, 0, 0, 0, 0, 1}
	s, _ := NewSession(cfg)
	var out Output
	s.Start(t0, &out)
	req := decodeOutput(t, &out)[0].p
	out.Reset()
	s.Input(t0, lcpFrame(CodeConfigureAck, req.ID, req.Data), &out)
	s.Input(t0, lcpFrame(CodeConfigureRequest, 1, nil), &out)
	for _, iid := range [][]byte{make([]byte, 8), cfg.LocalIID[:]} {
		out.Reset()
		s.Input(t0, frameOf(ProtoIPv6CP, CodeConfigureRequest, 3, append([]byte{1, 10}, iid...)), &out)
		sent := decodeOutput(t, &out)
		last := sent[len(sent)-1]
		if last.p.Code != CodeConfigureNak || len(last.p.Data) != 10 {
			t.Fatalf("sent %+v", sent)
		}
		sug := [8]byte(last.p.Data[2:])
		if sug == ([8]byte{}) || sug == cfg.LocalIID {
			t.Errorf("suggested %x", sug)
		}
	}
}

// A server with no address to give rejects the IP-Address option rather
// than acknowledging an address it did not assign.
func TestIPCPServerWithoutPool(t *testing.T) {
	cfg := serverConfig()
	cfg.PeerIPv4 = netip.Addr{}
	s, _ := NewSession(cfg)
	var out Output
	s.Start(t0, &out)
	req := decodeOutput(t, &out)[0].p
	s.Input(t0, lcpFrame(CodeConfigureAck, req.ID, req.Data), &out)
	s.Input(t0, lcpFrame(CodeConfigureRequest, 1, nil), &out)
	out.Reset()
	s.Input(t0, frameOf(ProtoIPCP, CodeConfigureRequest, 3, []byte{3, 6, 0, 0, 0, 0}), &out)
	sent := decodeOutput(t, &out)
	if last := sent[len(sent)-1]; last.p.Code != CodeConfigureReject {
		t.Errorf("sent %+v", sent)
	}
}

// RFC 1661 §4.1 (RCR in Opened: tld, scr, sca) and §3.2: a peer that
// sends a Configure-Request in the Network phase renegotiates LCP; the
// server authenticates it again and reopens IPCP, then keeps the link
// with echoes.
func TestLCPRenegotiationInNetworkPhase(t *testing.T) {
	sc := serverConfig(AuthCHAPMD5)
	sc.EchoInterval = 10 * time.Second
	p := upPair(t, sc, clientConfig("alice", "s3cret"))
	p.run(25 * time.Second)
	p.sEvents = nil
	p.pendingS = append(p.pendingS, lcpFrame(CodeConfigureRequest, 77, []byte{5, 6, 0x11, 0x22, 0x33, 0x44}))
	p.run(time.Second)
	want := []EventKind{EventNetworkDown, EventLinkUp, EventAuthRequest, EventAuthenticated, EventNetworkUp}
	var got []EventKind
	for _, e := range p.sEvents {
		got = append(got, e.Kind)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("server events %v, want %v", got, want)
	}
	if p.s.Phase() != PhaseNetwork || p.s.LCPState() != StateOpened || p.s.IPCPState() != StateOpened || p.c.IPCPState() != StateOpened {
		t.Fatalf("server %v LCP %v IPCP %v, client IPCP %v", p.s.Phase(), p.s.LCPState(), p.s.IPCPState(), p.c.IPCPState())
	}
	e, _ := findEvent(p.sEvents, EventNetworkUp, ProtoIPCP)
	if e.Network.PeerIPv4 != sc.PeerIPv4 || e.Network.LocalIPv4 != sc.LocalIPv4 || e.Network.DNS1 != sc.DNS1 {
		t.Errorf("IPCP reopened with %+v", e.Network)
	}
	// The echoes run on the new magic number, answered.
	p.run(time.Minute)
	if p.s.Down() {
		t.Fatalf("link died after renegotiation: events %v", kinds(p.sEvents))
	}
}

// acceptSilently accepts every request with no message.
type acceptSilently struct{}

func (acceptSilently) Authenticate(*AuthRequest) AuthResult { return AuthResult{Accept: true} }

// RFC 1994 §4.1: the Success may be lost, so a Response repeated in the
// Network phase gets the same reply Code again, also when the Success
// carries no message.
func TestCHAPSuccessWithoutMessageRepeated(t *testing.T) {
	p := newPair(t, clientConfig("alice", "s3cret"), serverConfig(AuthCHAPMD5), acceptSilently{})
	p.start()
	p.run(time.Second)
	if p.s.Phase() != PhaseNetwork {
		t.Fatalf("server %v, events %v", p.s.Phase(), kinds(p.sEvents))
	}
	resp := frameOf(ProtoCHAP, chapResponse, p.c.client.respID, p.c.client.resp)
	var out Output
	p.s.Input(p.now, resp, &out)
	sent := decodeOutput(t, &out)
	if len(sent) != 1 || sent[0].proto != ProtoCHAP || sent[0].p.Code != chapSuccess || sent[0].p.ID != p.c.client.respID || len(sent[0].p.Data) != 0 {
		t.Fatalf("sent %+v", sent)
	}
	if len(out.Events) != 0 {
		t.Errorf("events %v", kinds(out.Events))
	}
}

// RFC 1661 §5.7: an IPv4-only server Protocol-Rejects IPv6CP, and a
// Protocol-Reject of IPv6CP (which it never sent) stops the automaton
// without touching the link.
func TestIPv4OnlyServerAndIPv6CP(t *testing.T) {
	p := upPair(t, serverConfig(AuthPAP), clientConfig("alice", "s3cret"))
	if p.s.IPv6CPState() != StateInitial {
		t.Fatalf("IPv6CP %v on an IPv4-only link", p.s.IPv6CPState())
	}
	var out Output
	req := frameOf(ProtoIPv6CP, CodeConfigureRequest, 3, []byte{1, 10, 0, 0, 0, 0, 0, 0, 0, 1})
	p.s.Input(p.now, req, &out)
	sent := decodeOutput(t, &out)
	if len(sent) != 1 || sent[0].proto != ProtoLCP || sent[0].p.Code != CodeProtocolReject || !bytes.Equal(sent[0].p.Data, append([]byte{0x80, 0x57}, req[4:]...)) {
		t.Fatalf("sent %+v", sent)
	}
	out.Reset()
	p.s.Input(p.now, lcpFrame(CodeProtocolReject, 51, []byte{0x80, 0x57, 1, 1, 0, 4}), &out)
	if out.NumFrames() != 0 || len(out.Events) != 0 || p.s.IPv6CPState() != StateStopped {
		t.Fatalf("%d frames, events %v, IPv6CP %v", out.NumFrames(), kinds(out.Events), p.s.IPv6CPState())
	}
	if p.s.Down() || p.s.Phase() != PhaseNetwork || p.s.IPCPState() != StateOpened {
		t.Errorf("link affected: phase %v IPCP %v", p.s.Phase(), p.s.IPCPState())
	}
	// IP still flows.
	out.Reset()
	p.s.Input(p.now, []byte{0x21, 0x45, 0, 0, 20}, &out)
	if len(out.Data) != 1 {
		t.Errorf("data %+v", out.Data)
	}
}

// RFC 1661 §3.4: a decision delivered before Start (there is nothing to
// decide yet) leaves the frames received before Start to it.
func TestAuthResultBeforeStartKeepsEarlyFrames(t *testing.T) {
	s, _ := NewSession(serverConfig(AuthPAP))
	var out Output
	s.Input(t0, lcpFrame(CodeConfigureRequest, 1, []byte{5, 6, 1, 2, 3, 4}), &out)
	s.AuthResult(t0, AuthResult{Accept: true}, &out)
	if out.NumFrames() != 0 || len(out.Events) != 0 {
		t.Fatalf("%d frames, events %v before Start", out.NumFrames(), kinds(out.Events))
	}
	s.Start(t0, &out)
	var codes []uint8
	for _, sp := range decodeOutput(t, &out) {
		codes = append(codes, sp.p.Code)
	}
	if !bytes.Equal(codes, []byte{CodeConfigureRequest, CodeConfigureAck}) {
		t.Errorf("codes %v", codes)
	}
}

// RFC 1661 §6.6, RFC 2661 §5.1: once the peer accepted ACFC, the packets
// the engine assembles in parts (CHAP Challenge and Success) go without
// the address and control field, with their lengths right; LCP keeps it.
func TestAssembledPacketsWithACFC(t *testing.T) {
	s, _ := NewSession(serverConfig(AuthCHAPMD5))
	var out Output
	s.Start(t0, &out)
	req := decodeOutput(t, &out)[0].p
	out.Reset()
	s.Input(t0, lcpFrame(CodeConfigureAck, req.ID, req.Data), &out)
	s.Input(t0, lcpFrame(CodeConfigureRequest, 1, []byte{7, 2, 8, 2, 5, 6, 1, 2, 3, 4}), &out)
	sent := decodeOutput(t, &out)
	if len(sent) != 2 || sent[1].proto != ProtoCHAP || sent[1].p.Code != chapChallenge {
		t.Fatalf("sent %+v", sent)
	}
	if f := out.Frame(0); f[0] != 0xff || f[1] != 0x03 {
		t.Errorf("LCP frame %x without address and control field", f)
	}
	if f := out.Frame(1); f[0] != 0xc2 || f[1] != 0x23 {
		t.Errorf("CHAP frame %x with address and control field", f)
	}
	if d := sent[1].p.Data; len(d) != 1+16+len("lns") || d[0] != 16 || string(d[17:]) != "lns" {
		t.Errorf("challenge %x", d)
	}
	id, chal := sent[1].p.ID, bytes.Clone(sent[1].p.Data[1:17])
	h := md5.New()
	h.Write([]byte{id})
	h.Write([]byte("s3cret"))
	h.Write(chal)
	out.Reset()
	s.Input(t0, frameOf(ProtoCHAP, chapResponse, id, append(append([]byte{16}, h.Sum(nil)...), "alice"...)), &out)
	e, ok := findEvent(out.Events, EventAuthRequest, 0)
	if !ok {
		t.Fatalf("events %v", kinds(out.Events))
	}
	out.Reset()
	s.AuthResult(t0, LocalUsers{"alice": "s3cret"}.Authenticate(e.Auth), &out)
	sent = decodeOutput(t, &out)
	if len(sent) < 1 || sent[0].proto != ProtoCHAP || sent[0].p.Code != chapSuccess || string(sent[0].p.Data) != "welcome" {
		t.Fatalf("sent %+v", sent)
	}
	if f := out.Frame(0); f[0] == 0xff {
		t.Errorf("CHAP Success %x with address and control field", f)
	}
}
