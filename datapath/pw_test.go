package datapath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// addFakeTAP registers a TAP whose writes are recorded instead of going
// to a device.
func (r *rig) addFakeTAP(t testing.TB, name string) *fakeTUN {
	t.Helper()
	fresh := r.e.pw == nil
	ps, err := r.e.pwState()
	if err != nil {
		t.Fatal(err)
	}
	if fresh {
		t.Cleanup(ps.closeAll)
	}
	w := &fakeTUN{keep: r.tun.keep, last: make([]byte, 0, bufSize)}
	td := &tapDev{name: name, fd: -1, w: w}
	ps.mu.Lock()
	ps.taps[name] = td
	ps.mu.Unlock()
	return w
}

func (r *rig) tap(name string) *tapDev { return r.e.pw.taps[name] }

var (
	keyPW      = SessionKey{Version: 3, Session: 0x01020304}
	cookieIn   = []byte{0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe}
	cookieOut  = []byte{1, 2, 3, 4, 5, 6, 7, 8}
	peerPW     = netip.MustParseAddrPort("198.51.100.9:1701")
	macA, macB = []byte{2, 0, 0, 0, 0, 0xa}, []byte{2, 0, 0, 0, 0, 0xb}
)

func (r *rig) installPW(t testing.TB, mod func(*Session)) Session {
	t.Helper()
	s := Session{
		Key: keyPW, PeerSession: 0x0a0b0c0d, Peer: peerPW, Local: lnsAddr, Socket: r.sock,
		Cookie: cookieIn, PeerCookie: cookieOut, L2SpecificSublayer: true,
		Kind: KindEthernet, TAP: "pw0",
	}
	if mod != nil {
		mod(&s)
	}
	if err := r.e.Install(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// ethFrame is an Ethernet II frame (no FCS) from macA to macB.
func ethFrame(etherType uint16, payload []byte) []byte {
	f := append(append(append([]byte(nil), macB...), macA...), byte(etherType>>8), byte(etherType))
	return append(f, payload...)
}

// vlanFrame is an 802.1Q-tagged frame with priority 5.
func vlanFrame(vid uint16, payload []byte) []byte {
	f := append(append(append([]byte(nil), macB...), macA...), 0x81, 0x00, byte(0xa0|vid>>8), byte(vid))
	return append(append(f, 0x08, 0x00), payload...)
}

// tapRead puts a frame in a buffer as the TAP reader reads it.
func tapRead(frame []byte) ([]byte, int) {
	b := make([]byte, bufSize)
	copy(b[headroom:], frame)
	return b, len(frame)
}

func pwData(session uint32, cookie []byte, l2ss, seq bool, ns uint32, frame []byte) []byte {
	return AppendV3(nil, Header{Session: session, Cookie: cookie, L2SS: l2ss, Sequenced: seq, Ns: ns}, frame)
}

// RFC 3931 §4.1.2.1, §4.6, RFC 4719 §4.1: the bytes a TAP frame leaves
// with, written out by hand: the UDP header word (T=0, Ver=3, reserved),
// the peer's Session ID, the peer's 8-byte cookie, the default L2-specific
// sublayer (S bit and 24-bit sequence number), then the whole frame with
// no FCS. Over IP the first word is absent (§4.1.1.2).
func TestPWGoldenBytes(t *testing.T) {
	frame := ethFrame(0x0800, []byte{0x45, 0, 0, 20})
	for _, c := range []struct {
		name string
		ip   bool
		mod  func(*Session)
		want []byte
	}{
		{"udp cookie8 l2ss seq", false, func(s *Session) { s.Sequencing = true }, []byte{
			0x00, 0x03, 0x00, 0x00, 0x0a, 0x0b, 0x0c, 0x0d,
			1, 2, 3, 4, 5, 6, 7, 8,
			0x40, 0x00, 0x00, 0x00,
		}},
		{"udp cookie4 no l2ss", false, func(s *Session) { s.PeerCookie = []byte{9, 8, 7, 6}; s.L2SpecificSublayer = false }, []byte{
			0x00, 0x03, 0x00, 0x00, 0x0a, 0x0b, 0x0c, 0x0d, 9, 8, 7, 6,
		}},
		{"udp no cookie l2ss", false, func(s *Session) { s.PeerCookie = nil }, []byte{
			0x00, 0x03, 0x00, 0x00, 0x0a, 0x0b, 0x0c, 0x0d, 0x00, 0x00, 0x00, 0x00,
		}},
		{"ip cookie8 l2ss seq", true, func(s *Session) { s.Sequencing = true }, []byte{
			0x0a, 0x0b, 0x0c, 0x0d, 1, 2, 3, 4, 5, 6, 7, 8, 0x40, 0x00, 0x00, 0x00,
		}},
		{"ip no cookie no l2ss", true, func(s *Session) { s.PeerCookie = nil; s.L2SpecificSublayer = false }, []byte{
			0x0a, 0x0b, 0x0c, 0x0d,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, true, 8)
			r.sock.ip = c.ip
			r.addFakeTAP(t, "pw0")
			r.installPW(t, c.mod)
			f := &pwForwarder{e: r.e}
			for i := 0; i < 2; i++ {
				b, n := tapRead(frame)
				f.forward(r.tap("pw0"), b, n)
			}
			f.flush()
			if len(r.io.sent) != 2 {
				t.Fatalf("sent %d messages", len(r.io.sent))
			}
			want := append(append([]byte(nil), c.want...), frame...)
			if got := r.io.sent[0].b; !bytes.Equal(got, want) {
				t.Fatalf("sent\n% x\nwant\n% x", got, want)
			}
			if r.io.sent[0].to != peerPW || r.io.sent[0].from != lnsAddr {
				t.Fatalf("sent to %v from %v", r.io.sent[0].to, r.io.sent[0].from)
			}
			// The sequence number counts up (RFC 3931 §4.6.1).
			if bytes.Contains(c.want, []byte{0x40, 0, 0, 0}) {
				off := len(c.want) - 4
				if got := binary.BigEndian.Uint32(r.io.sent[1].b[off:]); got != 0x40000001 {
					t.Fatalf("second sublayer %#08x", got)
				}
			}
		})
	}
}

// Over UDP and IP, a data message with the right cookie from the peer
// puts its frame on the TAP unchanged; counters count frame bytes.
func TestPWReceive(t *testing.T) {
	frame := ethFrame(0x0806, make([]byte, 28))
	for _, ip := range []bool{false, true} {
		r := newRig(t, true, 8)
		r.sock.ip = ip
		w := r.addFakeTAP(t, "pw0")
		r.installPW(t, func(s *Session) { s.Sequencing = true })
		msg := pwData(keyPW.Session, cookieIn, true, true, 7, frame)
		from := peerPW
		if ip {
			msg = msg[4:]
			from = netip.AddrPortFrom(peerPW.Addr(), 0)
			r.e.receiveIP(r.sock, msg, from, lnsAddr)
		} else {
			r.e.receive(r.sock, msg, from, lnsAddr)
		}
		if len(w.pkts) != 1 || !bytes.Equal(w.pkts[0], frame) {
			t.Fatalf("ip=%v: TAP got % x", ip, w.pkts)
		}
		c, _ := r.e.Counters(keyPW)
		if c.RxPackets != 1 || c.RxBytes != uint64(len(frame)) || c.Drops != 0 {
			t.Fatalf("ip=%v: counters %+v", ip, c)
		}
		if len(r.up.calls) != 0 {
			t.Fatalf("ip=%v: upcalls %v", ip, r.up.calls)
		}
	}
}

// What is dropped on receive, each with its own reason: a wrong cookie
// (RFC 3931 §4.1), a stale sequence number (§4.6.1), another peer, an
// unknown session, a runt frame.
func TestPWReceiveDrops(t *testing.T) {
	r := newRig(t, true, 8)
	w := r.addFakeTAP(t, "pw0")
	r.installPW(t, func(s *Session) { s.Sequencing = true })
	frame := ethFrame(0x0800, make([]byte, 46))
	r.e.receive(r.sock, pwData(keyPW.Session, cookieOut, true, false, 0, frame), peerPW, lnsAddr)
	if r.stat("bad_cookie") != 1 {
		t.Fatalf("wrong cookie: stats %v", r.e.Stats())
	}
	r.e.receive(r.sock, pwData(keyPW.Session, cookieIn, true, true, 10, frame), peerPW, lnsAddr)
	r.e.receive(r.sock, pwData(keyPW.Session, cookieIn, true, true, 9, frame), peerPW, lnsAddr)
	r.e.receive(r.sock, pwData(keyPW.Session, cookieIn, true, true, 10, frame), peerPW, lnsAddr)
	if r.stat("out_of_order") != 2 || len(w.pkts) != 1 {
		t.Fatalf("sequencing: %d frames, stats %v", len(w.pkts), r.e.Stats())
	}
	r.e.receive(r.sock, pwData(keyPW.Session, cookieIn, true, false, 0, frame), lac, lnsAddr)
	if r.stat("wrong_peer") != 1 {
		t.Fatalf("other peer: stats %v", r.e.Stats())
	}
	r.e.receive(r.sock, pwData(keyPW.Session+1, cookieIn, true, false, 0, frame), peerPW, lnsAddr)
	r.e.receiveIP(r.sock, pwData(keyPW.Session+1, cookieIn, true, false, 0, frame)[4:], peerPW, lnsAddr)
	if r.stat("unknown_session") != 2 {
		t.Fatalf("unknown session: stats %v", r.e.Stats())
	}
	r.e.receive(r.sock, pwData(keyPW.Session, cookieIn, true, false, 0, frame[:13]), peerPW, lnsAddr)
	r.e.receiveIP(r.sock, []byte{0, 0, 1}, peerPW, lnsAddr)
	if r.stat("malformed") != 2 {
		t.Fatalf("runt frame: stats %v", r.e.Stats())
	}
	c, _ := r.e.Counters(keyPW)
	if c.Drops != 5 || c.RxPackets != 1 || len(w.pkts) != 1 {
		t.Fatalf("counters %+v, %d frames", c, len(w.pkts))
	}
}

// RFC 3931 §4.1.1.2: over IP a zero Session ID is a control message; it
// goes up whole, zero word included, with the peer's address.
func TestIPControlGoesUp(t *testing.T) {
	r := newRig(t, true, 8)
	r.sock.ip = true
	ctl := []byte{0, 0, 0, 0, 0xc8, 0x03, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0}
	from := netip.AddrPortFrom(peerPW.Addr(), 0)
	r.e.receiveIP(r.sock, ctl, from, lnsAddr)
	if len(r.up.calls) != 1 || r.up.calls[0].isFrame || !bytes.Equal(r.up.calls[0].pkt, ctl) ||
		r.up.calls[0].from != from || r.up.calls[0].to != lnsAddr || r.up.calls[0].socket != r.sock {
		t.Fatalf("upcalls %+v", r.up.calls)
	}
}

// A PPP session over IP (RFC 3931 §4.1.1.2) forwards IP to the TUN and
// sends with the IP-encapsulation header.
func TestPPPOverIP(t *testing.T) {
	r := newRig(t, true, 8)
	r.sock.ip = true
	s := r.installV3(t, nil)
	ip := icmpEcho(sub4, web4)
	msg := AppendV3(nil, Header{Session: key3.Session, Cookie: s.Cookie, L2SS: true}, pppFrame(ProtoIPv4, ip))[4:]
	r.e.receiveIP(r.sock, msg, netip.AddrPortFrom(lac.Addr(), 0), lnsAddr)
	if len(r.tun.pkts) != 1 || !bytes.Equal(r.tun.pkts[0], ip) {
		t.Fatalf("TUN got % x", r.tun.pkts)
	}
	f := &tunForwarder{e: r.e}
	down := icmpEcho(web4, sub4)
	b, n := tunPacket(down)
	f.forward(b, n)
	f.flush()
	want := AppendV3IP(nil, Header{Session: s.PeerSession, Cookie: s.PeerCookie, L2SS: true}, pppFrame(ProtoIPv4, down))
	if len(r.io.sent) != 1 || !bytes.Equal(r.io.sent[0].b, want) {
		t.Fatalf("sent %v\nwant % x", r.io.sent, want)
	}
}

// RFC 4719 §4.2: VLAN sessions share a trunk TAP, chosen by the VID of
// the frame's tag, which goes on the wire as it is; on receive the tag's
// VID becomes the local one (the priority bits stay) and an untagged
// frame gets a tag. Untagged frames and unknown VIDs from the TAP are
// dropped and counted.
func TestPWVLAN(t *testing.T) {
	r := newRig(t, true, 8)
	w := r.addFakeTAP(t, "trunk0")
	k100, k101 := SessionKey{Version: 3, Session: 100}, SessionKey{Version: 3, Session: 101}
	for _, c := range []struct {
		k    SessionKey
		vid  uint16
		peer uint32
	}{{k100, 100, 0x200}, {k101, 101, 0x201}} {
		if err := r.e.Install(Session{Key: c.k, PeerSession: c.peer, Peer: peerPW, Socket: r.sock,
			Kind: KindVLAN, TAP: "trunk0", VLAN: c.vid}); err != nil {
			t.Fatal(err)
		}
	}
	f := &pwForwarder{e: r.e}
	tap := r.tap("trunk0")
	for _, fr := range [][]byte{vlanFrame(101, []byte{1}), vlanFrame(100, []byte{2}), vlanFrame(102, nil), ethFrame(0x0800, nil)} {
		b, n := tapRead(fr)
		f.forward(tap, b, n)
	}
	f.flush()
	if len(r.io.sent) != 2 || r.stat("no_pw_session") != 2 {
		t.Fatalf("sent %d, stats %v", len(r.io.sent), r.e.Stats())
	}
	if !bytes.Equal(r.io.sent[0].b, pwData(0x201, nil, false, false, 0, vlanFrame(101, []byte{1}))) ||
		!bytes.Equal(r.io.sent[1].b, pwData(0x200, nil, false, false, 0, vlanFrame(100, []byte{2}))) {
		t.Fatalf("sent %v", r.io.sent)
	}

	r.e.receive(r.sock, pwData(100, nil, false, false, 0, vlanFrame(200, []byte{3})), peerPW, lnsAddr)
	untagged := ethFrame(0x0800, []byte{4})
	r.e.receive(r.sock, pwData(101, nil, false, false, 0, untagged), peerPW, lnsAddr)
	if len(w.pkts) != 2 || !bytes.Equal(w.pkts[0], vlanFrame(100, []byte{3})) {
		t.Fatalf("TAP got % x", w.pkts)
	}
	wantTagged := append(append(append([]byte(nil), untagged[:12]...), 0x81, 0x00, 0, 101), untagged[12:]...)
	if !bytes.Equal(w.pkts[1], wantTagged) {
		t.Fatalf("untagged frame written as % x, want % x", w.pkts[1], wantTagged)
	}

	// An Ethernet session cannot share the trunk; a VID is one session's.
	if err := r.e.Install(Session{Key: SessionKey{Version: 3, Session: 102}, PeerSession: 1, Peer: peerPW, Socket: r.sock,
		Kind: KindEthernet, TAP: "trunk0"}); err == nil {
		t.Fatal("Ethernet session installed on a VLAN trunk")
	}
	if err := r.e.Install(Session{Key: SessionKey{Version: 3, Session: 103}, PeerSession: 1, Peer: peerPW, Socket: r.sock,
		Kind: KindVLAN, TAP: "trunk0", VLAN: 100}); err == nil {
		t.Fatal("two sessions on VLAN 100")
	}
	// Moving a session to another VID frees the old one.
	if err := r.e.Install(Session{Key: k100, PeerSession: 0x200, Peer: peerPW, Socket: r.sock,
		Kind: KindVLAN, TAP: "trunk0", VLAN: 300}); err != nil {
		t.Fatal(err)
	}
	if tap.vlan[100].Load() != nil || tap.vlan[300].Load() == nil || tap.nvlan != 2 {
		t.Fatalf("after the move: nvlan %d", tap.nvlan)
	}
	r.e.Remove(k100)
	r.e.Remove(k101)
	if tap.nvlan != 0 || tap.vlan[300].Load() != nil || tap.vlan[101].Load() != nil {
		t.Fatal("VLAN bindings left after Remove")
	}
	if err := r.e.Install(Session{Key: SessionKey{Version: 3, Session: 102}, PeerSession: 1, Peer: peerPW, Socket: r.sock,
		Kind: KindEthernet, TAP: "trunk0"}); err != nil {
		t.Fatalf("Ethernet session on the emptied TAP: %v", err)
	}
}

func TestPWInstallChecks(t *testing.T) {
	r := newRig(t, true, 8)
	r.addFakeTAP(t, "pw0")
	for name, mod := range map[string]func(*Session){
		"v2": func(s *Session) {
			s.Key = key2
			s.PeerTunnel = 1
			s.Cookie, s.PeerCookie, s.L2SpecificSublayer = nil, nil, false
		},
		"no TAP":         func(s *Session) { s.TAP = "" },
		"TAP not open":   func(s *Session) { s.TAP = "pw9" },
		"VLAN 0":         func(s *Session) { s.Kind = KindVLAN },
		"VLAN 4095":      func(s *Session) { s.Kind, s.VLAN = KindVLAN, 4095 },
		"VLAN on eth":    func(s *Session) { s.VLAN = 5 },
		"address":        func(s *Session) { s.IPv4 = sub4 },
		"PPP with a TAP": func(s *Session) { s.Kind = KindPPP },
		"unknown kind":   func(s *Session) { s.Kind = 9 },
	} {
		s := Session{Key: keyPW, PeerSession: 1, Peer: peerPW, Socket: r.sock, Kind: KindEthernet, TAP: "pw0"}
		mod(&s)
		if err := r.e.Install(s); err == nil {
			t.Errorf("%s: installed", name)
		}
	}
	r.installPW(t, nil)
	if err := r.e.Install(Session{Key: SessionKey{Version: 3, Session: 9}, PeerSession: 1, Peer: peerPW, Socket: r.sock,
		Kind: KindEthernet, TAP: "pw0"}); err == nil {
		t.Fatal("two Ethernet sessions on one TAP")
	}
	// Reinstalling the same session is fine; removing it frees the TAP.
	r.installPW(t, func(s *Session) { s.Sequencing = true })
	r.e.Remove(keyPW)
	if r.tap("pw0").eth.Load() != nil {
		t.Fatal("TAP still bound after Remove")
	}
}

// The pseudowire forwarding path allocates nothing, both ways, over UDP
// and IP, Ethernet and VLAN.
func TestPWNoAllocs(t *testing.T) {
	for _, ip := range []bool{false, true} {
		r := newRig(t, false, 8)
		r.sock.ip = ip
		w := r.addFakeTAP(t, "pw0")
		r.addFakeTAP(t, "trunk0")
		r.installPW(t, func(s *Session) { s.Sequencing = true })
		kv := SessionKey{Version: 3, Session: 55}
		if err := r.e.Install(Session{Key: kv, PeerSession: 66, Peer: peerPW, Socket: r.sock, Kind: KindVLAN, TAP: "trunk0", VLAN: 100}); err != nil {
			t.Fatal(err)
		}
		frame := ethFrame(0x0800, make([]byte, 1400))
		ns := uint32(0)
		msg := pwData(keyPW.Session, cookieIn, true, true, 0, frame)
		up := func() {
			ns++
			msg[17], msg[18], msg[19] = byte(ns>>16), byte(ns>>8), byte(ns) // the sublayer's sequence number
			if ip {
				r.e.receiveIP(r.sock, msg[4:], peerPW, lnsAddr)
			} else {
				r.e.receive(r.sock, msg, peerPW, lnsAddr)
			}
		}
		up()
		vmsg := pwData(55, nil, false, false, 0, vlanFrame(200, make([]byte, 64)))
		if ip {
			vmsg = vmsg[4:]
		}
		before := w.count
		if n := testing.AllocsPerRun(1000, up); n != 0 {
			t.Errorf("ip=%v: receive: %v allocations", ip, n)
		}
		if n := testing.AllocsPerRun(1000, func() {
			if ip {
				r.e.receiveIP(r.sock, vmsg, peerPW, lnsAddr)
			} else {
				r.e.receive(r.sock, vmsg, peerPW, lnsAddr)
			}
		}); n != 0 {
			t.Errorf("ip=%v: receive VLAN: %v allocations", ip, n)
		}
		if w.count-before < 1000 {
			t.Errorf("ip=%v: %d frames reached the TAP; stats %v", ip, w.count-before, r.e.Stats())
		}
		f := &pwForwarder{e: r.e, pending: make([]*Socket, 0, 4)}
		for name, c := range map[string]struct {
			tap   string
			frame []byte
		}{"ethernet": {"pw0", frame}, "vlan": {"trunk0", vlanFrame(100, make([]byte, 64))}} {
			b, n := tapRead(c.frame)
			td := r.tap(c.tap)
			f.forward(td, b, n)
			f.flush()
			sent := r.io.count
			if a := testing.AllocsPerRun(1000, func() { f.forward(td, b, n); f.flush() }); a != 0 {
				t.Errorf("ip=%v: forward %s: %v allocations", ip, name, a)
			}
			if r.io.count-sent < 1000 {
				t.Errorf("ip=%v: forward %s: %d sent", ip, name, r.io.count-sent)
			}
		}
	}
}

// ParseV3IP and AppendV3IP agree (RFC 3931 §4.1.1.2).
func TestV3IPRoundTrip(t *testing.T) {
	h := Header{Session: 0x11223344, Cookie: []byte{1, 2, 3, 4}, L2SS: true, Sequenced: true, Ns: 0xabcdef}
	msg := AppendV3IP([]byte{0xee}, h, []byte("frame"))
	want := []byte{0xee, 0x11, 0x22, 0x33, 0x44, 1, 2, 3, 4, 0x40, 0xab, 0xcd, 0xef, 'f', 'r', 'a', 'm', 'e'}
	if !bytes.Equal(msg, want) {
		t.Fatalf("% x", msg)
	}
	got, p, err := ParseV3IP(msg[1:], 4, true)
	if err != nil || got.Session != h.Session || !bytes.Equal(got.Cookie, h.Cookie) || !got.Sequenced || got.Ns != h.Ns || string(p) != "frame" {
		t.Fatalf("%+v %q %v", got, p, err)
	}
	if _, _, err := ParseV3IP([]byte{0, 0, 0, 0, 1}, 0, false); err != ErrControl {
		t.Fatalf("zero session: %v", err)
	}
	if _, _, err := ParseV3IP([]byte{0, 0, 0, 1, 1, 2}, 4, false); err != ErrShort {
		t.Fatalf("short cookie: %v", err)
	}
}
