package datapath

import (
	"bytes"
	"net"
	"net/netip"
	"sync"
	"testing"
)

// fakeIO records what a socket sends. With keep unset it only counts and
// keeps the last message in a preallocated buffer, so allocation tests
// measure the datapath alone.
type fakeIO struct {
	mu      sync.Mutex
	keep    bool
	sent    []message // copies, when keep
	batches []int
	count   int
	last    []byte
	failOne error
}

func newFakeIO(keep bool) *fakeIO { return &fakeIO{keep: keep, last: make([]byte, 0, bufSize)} }

func (f *fakeIO) record(m message) {
	f.count++
	f.last = append(f.last[:0], m.b...)
	if f.keep {
		m.b = append([]byte(nil), m.b...)
		f.sent = append(f.sent, m)
	}
}

func (f *fakeIO) writeBatch(msgs []message) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keep {
		f.batches = append(f.batches, len(msgs))
	}
	for _, m := range msgs {
		f.record(m)
	}
	return 0
}

func (f *fakeIO) writeOne(b []byte, to netip.AddrPort, from netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOne != nil {
		return f.failOne
	}
	f.record(message{b: b, to: to, from: from})
	return nil
}

func (f *fakeIO) localAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1701} }

// fakeTUN records what the datapath writes to the TUN.
type fakeTUN struct {
	mu    sync.Mutex
	keep  bool
	pkts  [][]byte
	count int
	last  []byte
}

func (f *fakeTUN) Write(b []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	f.last = append(f.last[:0], b...)
	if f.keep {
		f.pkts = append(f.pkts, append([]byte(nil), b...))
	}
	return len(b), nil
}

type controlCall struct {
	pkt      []byte
	from     netip.AddrPort
	to       netip.Addr
	socket   *Socket
	isFrame  bool
	key      SessionKey
	frameLen int
}

type fakeUp struct {
	mu    sync.Mutex
	calls []controlCall
}

func (u *fakeUp) Control(s *Socket, pkt []byte, from netip.AddrPort, to netip.Addr) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, controlCall{pkt: append([]byte(nil), pkt...), from: from, to: to, socket: s})
}

func (u *fakeUp) Frame(key SessionKey, frame []byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, controlCall{pkt: append([]byte(nil), frame...), isFrame: true, key: key})
}

type rig struct {
	e    *Engine
	up   *fakeUp
	tun  *fakeTUN
	io   *fakeIO
	sock *Socket
}

func newRig(t testing.TB, keep bool, batch int) *rig {
	r := &rig{up: &fakeUp{}, tun: &fakeTUN{keep: keep, last: make([]byte, 0, bufSize)}, io: newFakeIO(keep)}
	r.e = newEngine(Config{MTU: 1500, Batch: batch}, r.up)
	r.e.tunW = r.tun
	r.sock = &Socket{e: r.e, io: r.io, txq: make([]message, 0, batch)}
	return r
}

var (
	lac     = netip.MustParseAddrPort("198.51.100.7:1701")
	lnsAddr = netip.MustParseAddr("192.0.2.1")
	key2    = SessionKey{Version: 2, Tunnel: 100, Session: 200}
	key3    = SessionKey{Version: 3, Session: 0x01020304}
	prefix6 = netip.MustParsePrefix("2001:db8:100:1::/64")
)

func (r *rig) installV2(t testing.TB, mod func(*Session)) Session {
	s := Session{
		Key: key2, PeerTunnel: 7, PeerSession: 8, Peer: lac, Local: lnsAddr, Socket: r.sock,
		IPv4: sub4, IPv6: prefix6,
	}
	if mod != nil {
		mod(&s)
	}
	if err := r.e.Install(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *rig) installV3(t testing.TB, mod func(*Session)) Session {
	s := Session{
		Key: key3, PeerSession: 0x0a0b0c0d, Peer: lac, Local: lnsAddr, Socket: r.sock, IPv4: sub4,
		Cookie: []byte{1, 2, 3, 4}, PeerCookie: []byte{5, 6, 7, 8, 9, 10, 11, 12}, L2SpecificSublayer: true,
	}
	if mod != nil {
		mod(&s)
	}
	if err := r.e.Install(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func pppFrame(proto uint16, info []byte) []byte {
	return append([]byte{0xff, 0x03, byte(proto >> 8), byte(proto)}, info...)
}

func v2Data(k SessionKey, frame []byte) []byte {
	return AppendV2(nil, Header{Tunnel: k.Tunnel, Session: k.Session}, frame)
}

func (r *rig) stat(name string) uint64 { return r.e.Stats()[name] }

func icmpEcho(src, dst netip.Addr) []byte {
	return ipv4Packet(src, dst, 1, []byte{8, 0, 0xf7, 0xfe, 0, 1, 0, 0})
}

// RFC 2661 §3.1: a data message of an installed session carrying IPv4
// from the subscriber's address reaches the TUN unchanged.
func TestReceiveV2IPv4(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, nil)
	ip := icmpEcho(sub4, web4)
	r.e.receive(r.sock, v2Data(key2, pppFrame(ProtoIPv4, ip)), lac, lnsAddr)
	if len(r.tun.pkts) != 1 || !bytes.Equal(r.tun.pkts[0], ip) {
		t.Fatalf("TUN got %x, want %x", r.tun.pkts, ip)
	}
	// PFC and ACFC (RFC 1661 §6.5, §6.6), the L bit and a port change
	// (NAT rebinding) are all accepted.
	compressed := append([]byte{0x21}, ip...)
	msg := AppendV2(nil, Header{HasLength: true, Tunnel: key2.Tunnel, Session: key2.Session}, compressed)
	r.e.receive(r.sock, msg, netip.AddrPortFrom(lac.Addr(), 40000), lnsAddr)
	if len(r.tun.pkts) != 2 || !bytes.Equal(r.tun.pkts[1], ip) {
		t.Fatalf("compressed frame: TUN got %d packets", len(r.tun.pkts))
	}
	c, ok := r.e.Counters(key2)
	if !ok || c.RxPackets != 2 || c.RxBytes != uint64(2*len(ip)) || c.Drops != 0 {
		t.Fatalf("counters %+v", c)
	}
	if len(r.up.calls) != 0 {
		t.Fatalf("upcalls %v", r.up.calls)
	}
}

func TestReceiveControlAndFramesGoUp(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, func(s *Session) { s.IPv4 = netip.Addr{}; s.IPv6 = netip.Prefix{} })
	// A ZLB ACK (RFC 2661 §5.8) is a control message.
	zlb := []byte{0xc8, 0x02, 0, 12, 0, 100, 0, 0, 0, 1, 0, 2}
	r.e.receive(r.sock, zlb, lac, lnsAddr)
	lcp := pppFrame(0xc021, []byte{1, 1, 0, 4})
	r.e.receive(r.sock, v2Data(key2, lcp), lac, lnsAddr)
	// IPv4 before IPCP is up has nowhere to go but up.
	early := pppFrame(ProtoIPv4, icmpEcho(sub4, web4))
	r.e.receive(r.sock, v2Data(key2, early), lac, lnsAddr)
	if len(r.up.calls) != 3 {
		t.Fatalf("%d upcalls, want 3", len(r.up.calls))
	}
	c := r.up.calls[0]
	if c.isFrame || !bytes.Equal(c.pkt, zlb) || c.from != lac || c.to != lnsAddr || c.socket != r.sock {
		t.Errorf("control upcall %+v", c)
	}
	for i, want := range [][]byte{lcp, early} {
		c := r.up.calls[i+1]
		if !c.isFrame || c.key != key2 || !bytes.Equal(c.pkt, want) {
			t.Errorf("frame upcall %d: %+v", i, c)
		}
	}
	if r.tun.count != 0 {
		t.Fatal("something reached the TUN")
	}
}

func TestReceiveDrops(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, nil)
	ip := icmpEcho(sub4, web4)
	cases := []struct {
		name, reason string
		pkt          []byte
		from         netip.AddrPort
	}{
		{"wrong peer", "wrong_peer", v2Data(key2, pppFrame(ProtoIPv4, ip)), netip.MustParseAddrPort("203.0.113.9:1701")},
		{"unknown session", "unknown_session", v2Data(SessionKey{Version: 2, Tunnel: 100, Session: 201}, pppFrame(ProtoIPv4, ip)), lac},
		{"spoofed source", "spoofed", v2Data(key2, pppFrame(ProtoIPv4, icmpEcho(web4, sub4))), lac},
		{"short", "malformed", []byte{0x00}, lac},
		{"bad header", "malformed", []byte{0x40, 0x02, 0x10, 0, 0, 100, 0, 200}, lac},
		{"bad PPP", "malformed", v2Data(key2, []byte{0xff, 0x03, 0x00}), lac},
		{"short IPv4", "malformed", v2Data(key2, pppFrame(ProtoIPv4, ip[:19])), lac},
		{"version 1", "bad_version", []byte{0x00, 0x01, 0, 100, 0, 200}, lac},
		{"v3 unknown", "unknown_session", AppendV3(nil, Header{Session: 99}, pppFrame(ProtoIPv4, ip)), lac},
	}
	for _, c := range cases {
		before := r.stat(c.reason)
		r.e.receive(r.sock, c.pkt, c.from, lnsAddr)
		if r.stat(c.reason) != before+1 {
			t.Errorf("%s: %s not counted: %v", c.name, c.reason, r.e.Stats())
		}
	}
	if r.tun.count != 0 || len(r.up.calls) != 0 {
		t.Fatalf("dropped packets went somewhere: %d to TUN, %d up", r.tun.count, len(r.up.calls))
	}
	if c, _ := r.e.Counters(key2); c.Drops != 4 { // wrong peer, spoofed, bad PPP, short IPv4
		t.Fatalf("session drops %d, want 4", c.Drops)
	}
}

// RFC 3931 §4.1: the cookie must match; §4.6 the sublayer precedes the
// PPP frame.
func TestReceiveV3(t *testing.T) {
	r := newRig(t, true, 8)
	s := r.installV3(t, nil)
	ip := icmpEcho(sub4, web4)
	msg := AppendV3(nil, Header{Session: key3.Session, Cookie: s.Cookie, L2SS: true}, pppFrame(ProtoIPv4, ip))
	r.e.receive(r.sock, msg, lac, lnsAddr)
	if len(r.tun.pkts) != 1 || !bytes.Equal(r.tun.pkts[0], ip) {
		t.Fatalf("TUN got %x", r.tun.pkts)
	}
	bad := AppendV3(nil, Header{Session: key3.Session, Cookie: []byte{1, 2, 3, 5}, L2SS: true}, pppFrame(ProtoIPv4, ip))
	r.e.receive(r.sock, bad, lac, lnsAddr)
	if r.stat("bad_cookie") != 1 || len(r.tun.pkts) != 1 {
		t.Fatalf("bad cookie: %v", r.e.Stats())
	}
	// Without the frame's FF 03 (RFC 1662 §3.2 with ACFC).
	noACF := AppendV3(nil, Header{Session: key3.Session, Cookie: s.Cookie, L2SS: true}, append([]byte{0, 0x21}, ip...))
	r.e.receive(r.sock, noACF, lac, lnsAddr)
	if len(r.tun.pkts) != 2 {
		t.Fatal("frame without address and control fields dropped")
	}
}

// RFC 2661 §5.8 / RFC 3931 §4.6.1: duplicates and late packets are
// dropped; a restart far behind is followed.
func TestReceiveSequencing(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, nil)
	ip := icmpEcho(sub4, web4)
	send := func(ns uint32) {
		msg := AppendV2(nil, Header{Sequenced: true, Ns: ns, Tunnel: key2.Tunnel, Session: key2.Session}, pppFrame(ProtoIPv4, ip))
		r.e.receive(r.sock, msg, lac, lnsAddr)
	}
	for _, step := range []struct {
		ns        uint32
		forwarded bool
	}{
		{5, true}, {6, true}, {6, false}, {4, false},
		{0xfffc, false}, // 10 behind 6 across the wrap
		{3000, true},    // a jump ahead
		{0x8000, true},  // far from anything: the peer restarted
		{0xfffe, true}, {0xffff, true}, {0, true}, {0xfffe, false},
	} {
		before := r.tun.count
		send(step.ns)
		if got := r.tun.count > before; got != step.forwarded {
			t.Fatalf("Ns %d: forwarded %v, want %v", step.ns, got, step.forwarded)
		}
	}
	if r.stat("out_of_order") != 4 {
		t.Fatalf("out_of_order %d, want 4", r.stat("out_of_order"))
	}
	// v3: 24-bit sequence numbers in the sublayer.
	s := r.installV3(t, nil)
	for i, ns := range []uint32{0xfffffe, 0xffffff, 0, 0xffffff} {
		before := r.tun.count
		msg := AppendV3(nil, Header{Session: key3.Session, Cookie: s.Cookie, L2SS: true, Sequenced: true, Ns: ns}, pppFrame(ProtoIPv4, ip))
		r.e.receive(r.sock, msg, lac, lnsAddr)
		if got := r.tun.count > before; got != (i < 3) {
			t.Fatalf("v3 Ns %#x: forwarded %v", ns, got)
		}
	}
}

func TestReceiveIPv6(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, nil)
	good := ipv6Packet(sub6, web6, 17, []byte{0, 1, 0, 2, 0, 8, 0, 0})
	ll := ipv6Packet(netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::2"), 58, []byte{133, 0, 0, 0, 0, 0, 0, 0})
	outside := ipv6Packet(netip.MustParseAddr("2001:db8:100:2::1"), web6, 17, []byte{0, 1, 0, 2, 0, 8, 0, 0})
	for _, p := range [][]byte{good, ll, outside} {
		r.e.receive(r.sock, v2Data(key2, pppFrame(ProtoIPv6, p)), lac, lnsAddr)
	}
	if len(r.tun.pkts) != 1 || !bytes.Equal(r.tun.pkts[0], good) {
		t.Fatalf("TUN got %d packets", len(r.tun.pkts))
	}
	// The Router Solicitation from the link-local address is for the
	// control plane (RFC 5072 §5, RFC 4861 §6.1).
	if len(r.up.calls) != 1 || !r.up.calls[0].isFrame {
		t.Fatalf("upcalls %+v", r.up.calls)
	}
	if r.stat("spoofed") != 1 {
		t.Fatalf("spoofed %d", r.stat("spoofed"))
	}
}

func TestReceiveNoTUN(t *testing.T) {
	r := newRig(t, true, 8)
	r.e.tunW = nil
	r.installV2(t, nil)
	r.e.receive(r.sock, v2Data(key2, pppFrame(ProtoIPv4, icmpEcho(sub4, web4))), lac, lnsAddr)
	if r.stat("no_tun") != 1 {
		t.Fatalf("stats %v", r.e.Stats())
	}
}

func TestReceiveClampsMSS(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, func(s *Session) { s.MSSClamp = 1412 })
	syn := ipv4Packet(sub4, web4, 6, tcpSYN(0x02, optsA))
	setTCPChecksum(syn)
	r.e.receive(r.sock, v2Data(key2, pppFrame(ProtoIPv4, syn)), lac, lnsAddr)
	if len(r.tun.pkts) != 1 || mss(t, r.tun.pkts[0]) != 1412 || !tcpChecksumOK(t, r.tun.pkts[0]) {
		t.Fatal("SYN not clamped on its way to the TUN")
	}
}

// tunPacket puts pkt at the headroom of a TUN read buffer.
func tunPacket(pkt []byte) ([]byte, int) {
	b := make([]byte, headroom+len(pkt)+16)
	copy(b[headroom:], pkt)
	return b, len(pkt)
}

// RFC 2661 §3.1: packets routed to a v2 session leave with the peer's
// IDs, FF 03 and the protocol, to the peer, from our local address.
func TestForwardV2(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, func(s *Session) { s.Sequencing = true })
	f := &tunForwarder{e: r.e}
	ip4 := icmpEcho(web4, sub4)
	ip6 := ipv6Packet(web6, netip.MustParseAddr("2001:db8:100:1::99"), 17, []byte{0, 1, 0, 2, 0, 8, 0, 0})
	for _, p := range [][]byte{ip4, ip6, ip4} {
		b, n := tunPacket(p)
		f.forward(b, n)
	}
	if r.io.count != 0 {
		t.Fatal("sent before flush")
	}
	f.flush()
	if len(r.io.batches) != 1 || r.io.batches[0] != 3 {
		t.Fatalf("batches %v, want one of 3", r.io.batches)
	}
	for i, want := range []struct {
		proto uint16
		ip    []byte
	}{{ProtoIPv4, ip4}, {ProtoIPv6, ip6}, {ProtoIPv4, ip4}} {
		m := r.io.sent[i]
		exp := AppendV2(nil, Header{Sequenced: true, Ns: uint32(i), Tunnel: 7, Session: 8}, pppFrame(want.proto, want.ip))
		if !bytes.Equal(m.b, exp) || m.to != lac || m.from != lnsAddr {
			t.Errorf("message %d: % x to %v from %v\nwant % x", i, m.b, m.to, m.from, exp)
		}
	}
	c, _ := r.e.Counters(key2)
	if c.TxPackets != 3 || c.TxBytes != uint64(2*len(ip4)+len(ip6)) {
		t.Fatalf("counters %+v", c)
	}
}

// RFC 3931 §4.1.2.1, §4.6: the peer's cookie and the sublayer.
func TestForwardV3(t *testing.T) {
	r := newRig(t, true, 8)
	s := r.installV3(t, func(s *Session) { s.Sequencing = true })
	f := &tunForwarder{e: r.e}
	ip := icmpEcho(web4, sub4)
	for range 2 {
		b, n := tunPacket(ip)
		f.forward(b, n)
	}
	f.flush()
	for i, m := range r.io.sent {
		exp := AppendV3(nil, Header{Session: s.PeerSession, Cookie: s.PeerCookie, L2SS: true, Sequenced: true, Ns: uint32(i)}, pppFrame(ProtoIPv4, ip))
		if !bytes.Equal(m.b, exp) {
			t.Errorf("message %d: % x\nwant % x", i, m.b, exp)
		}
	}
	if len(r.io.sent) != 2 {
		t.Fatalf("%d sent", len(r.io.sent))
	}
}

func TestForwardBatchesAndDrops(t *testing.T) {
	r := newRig(t, true, 4)
	r.installV2(t, nil)
	f := &tunForwarder{e: r.e}
	for range 6 {
		b, n := tunPacket(icmpEcho(web4, sub4))
		f.forward(b, n)
	}
	b, n := tunPacket(icmpEcho(web4, netip.MustParseAddr("100.64.0.99")))
	f.forward(b, n)
	b, n = tunPacket([]byte{0x00, 1, 2})
	f.forward(b, n)
	f.flush()
	if len(r.io.batches) != 2 || r.io.batches[0] != 4 || r.io.batches[1] != 2 {
		t.Fatalf("batches %v, want [4 2]", r.io.batches)
	}
	if r.stat("no_route") != 1 || r.stat("malformed") != 1 {
		t.Fatalf("stats %v", r.e.Stats())
	}
	// MSS clamping on the way to the subscriber.
	r.installV2(t, func(s *Session) { s.MSSClamp = 1400 })
	synack := ipv4Packet(web4, sub4, 6, tcpSYN(0x12, optsB))
	setTCPChecksum(synack)
	b, n = tunPacket(synack)
	f.forward(b, n)
	f.flush()
	last := r.io.sent[len(r.io.sent)-1].b
	_, frame, err := ParseV2(last)
	if err != nil {
		t.Fatal(err)
	}
	_, ip, _ := ParsePPP(frame)
	if mss(t, ip) != 1400 || !tcpChecksumOK(t, ip) {
		t.Fatal("SYN-ACK not clamped")
	}
}

// Reinstalling keeps counters; the route follows the address; Remove
// takes the routes away.
func TestInstallReplaceRemove(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, func(s *Session) { s.IPv4 = netip.Addr{}; s.IPv6 = netip.Prefix{} })
	r.e.receive(r.sock, v2Data(key2, pppFrame(0xc021, []byte{9, 1, 0, 8, 0, 0, 0, 0})), lac, lnsAddr)
	r.installV2(t, nil) // IPCP and IPv6CP up
	f := &tunForwarder{e: r.e}
	b, n := tunPacket(icmpEcho(web4, sub4))
	f.forward(b, n)
	f.flush()
	if c, _ := r.e.Counters(key2); c.RxPackets != 1 || c.TxPackets != 1 {
		t.Fatalf("counters after reinstall %+v", c)
	}
	other := netip.MustParseAddr("100.64.0.77")
	r.installV2(t, func(s *Session) { s.IPv4 = other })
	b, n = tunPacket(icmpEcho(web4, sub4))
	f.forward(b, n)
	if r.stat("no_route") != 1 {
		t.Fatal("old address still routed")
	}
	r.e.Remove(key2)
	b, n = tunPacket(icmpEcho(web4, other))
	f.forward(b, n)
	b, n = tunPacket(ipv6Packet(web6, sub6, 17, make([]byte, 8)))
	f.forward(b, n)
	if r.stat("no_route") != 3 {
		t.Fatalf("routes left after Remove: %v", r.e.Stats())
	}
	if _, ok := r.e.Counters(key2); ok {
		t.Fatal("counters of a removed session")
	}
	r.e.Remove(key2) // removing twice is harmless
}

func TestInstallValidates(t *testing.T) {
	r := newRig(t, true, 8)
	bad := []func(*Session){
		func(s *Session) { s.Key.Tunnel = 0x10000 },
		func(s *Session) { s.PeerSession = 0 },
		func(s *Session) { s.Cookie = []byte{1} },
		func(s *Session) { s.Key.Version = 4 },
		func(s *Session) { s.Peer = netip.AddrPort{} },
		func(s *Session) { s.Socket = nil },
		func(s *Session) { s.IPv4 = sub6 },
		func(s *Session) { s.Key = SessionKey{Version: 3, Tunnel: 1, Session: 5} },
	}
	for i, mod := range bad {
		s := Session{Key: key2, PeerTunnel: 7, PeerSession: 8, Peer: lac, Socket: r.sock}
		mod(&s)
		if err := r.e.Install(s); err == nil {
			t.Errorf("case %d: %+v installed", i, s)
		}
	}
}

func TestSendFrame(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, nil)
	lcp := []byte{0xc0, 0x21, 1, 1, 0, 4}
	if err := r.e.SendFrame(key2, lcp); err != nil {
		t.Fatal(err)
	}
	if err := r.e.SendFrame(key2, append([]byte{0xff, 0x03}, lcp...)); err != nil {
		t.Fatal(err)
	}
	exp := AppendV2(nil, Header{Tunnel: 7, Session: 8}, append([]byte{0xff, 0x03}, lcp...))
	for i, m := range r.io.sent {
		if !bytes.Equal(m.b, exp) || m.to != lac || m.from != lnsAddr {
			t.Errorf("frame %d: % x to %v from %v", i, m.b, m.to, m.from)
		}
	}
	if len(r.io.sent) != 2 {
		t.Fatalf("%d sent", len(r.io.sent))
	}
	if err := r.e.SendFrame(SessionKey{Version: 2, Tunnel: 1, Session: 1}, lcp); err == nil {
		t.Fatal("sent for an unknown session")
	}
	if c, _ := r.e.Counters(key2); c.TxPackets != 2 || c.TxBytes != 8 {
		t.Fatalf("counters %+v", c)
	}
	r.io.failOne = net.ErrClosed
	if err := r.e.SendFrame(key2, lcp); err == nil || r.stat("send_error") != 1 {
		t.Fatalf("send error: %v %v", err, r.e.Stats())
	}
}

// The packet path allocates nothing, in both directions.
func TestForwardingAllocs(t *testing.T) {
	r := newRig(t, false, 32)
	s3 := r.installV3(t, func(s *Session) {
		s.Key.Session = 77
		s.IPv4 = netip.MustParseAddr("100.64.0.33")
		s.Sequencing = true
	})
	r.installV2(t, func(s *Session) { s.MSSClamp = 1400; s.Sequencing = true })
	v2 := v2Data(key2, pppFrame(ProtoIPv4, icmpEcho(sub4, web4)))
	v3 := AppendV3(nil, Header{Session: 77, Cookie: s3.Cookie, L2SS: true}, pppFrame(ProtoIPv4, icmpEcho(s3.IPv4, web4)))
	v6 := v2Data(key2, pppFrame(ProtoIPv6, ipv6Packet(sub6, web6, 17, make([]byte, 8))))
	syn := ipv4Packet(sub4, web4, 6, tcpSYN(0x02, optsA))
	setTCPChecksum(syn)
	v2syn := v2Data(key2, pppFrame(ProtoIPv4, syn))
	for name, pkt := range map[string][]byte{"v2": v2, "v3": v3, "v2 IPv6": v6, "v2 SYN": v2syn} {
		before := r.tun.count
		if n := testing.AllocsPerRun(1000, func() { r.e.receive(r.sock, pkt, lac, lnsAddr) }); n != 0 {
			t.Errorf("receive %s: %v allocations", name, n)
		}
		if r.tun.count == before {
			t.Errorf("receive %s: nothing reached the TUN", name)
		}
	}
	f := &tunForwarder{e: r.e, pending: make([]*Socket, 0, 4)}
	for name, ip := range map[string][]byte{
		"v2 IPv4": icmpEcho(web4, sub4),
		"v2 IPv6": ipv6Packet(web6, sub6, 17, make([]byte, 8)),
		"v3 IPv4": icmpEcho(web4, s3.IPv4),
	} {
		b, n := tunPacket(ip)
		before := r.io.count
		if a := testing.AllocsPerRun(1000, func() { f.forward(b, n); f.flush() }); a != 0 {
			t.Errorf("forward %s: %v allocations", name, a)
		}
		if r.io.count == before {
			t.Errorf("forward %s: nothing sent", name)
		}
	}
}

// Install, Remove and SendFrame from other goroutines while packets flow
// (run with -race).
func TestConcurrentControl(t *testing.T) {
	r := newRig(t, false, 8)
	r.installV2(t, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := SessionKey{Version: 2, Tunnel: uint32(10 + g), Session: uint32(i%50 + 1)}
				a := netip.AddrFrom4([4]byte{100, 65, byte(g), byte(i % 50)})
				if err := r.e.Install(Session{Key: k, PeerTunnel: 1, PeerSession: 1, Peer: lac, Socket: r.sock, IPv4: a}); err != nil {
					t.Error(err)
					return
				}
				r.e.SendFrame(k, []byte{0xc0, 0x21, 9, 1, 0, 4})
				if i%3 == 0 {
					r.e.Remove(k)
				}
			}
		}()
	}
	v2 := v2Data(key2, pppFrame(ProtoIPv4, icmpEcho(sub4, web4)))
	f := &tunForwarder{e: r.e}
	for i := 0; i < 2000; i++ {
		r.e.receive(r.sock, v2, lac, lnsAddr)
		b, n := tunPacket(icmpEcho(web4, netip.AddrFrom4([4]byte{100, 65, byte(i % 3), byte(i % 50)})))
		f.forward(b, n)
		f.flush()
	}
	close(stop)
	wg.Wait()
	if c, _ := r.e.Counters(key2); c.RxPackets != 2000 {
		t.Fatalf("rx %d", c.RxPackets)
	}
}
