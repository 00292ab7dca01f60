package datapath

import (
	"bytes"
	"net/netip"
)

// receive handles one datagram read from s. It classifies by the first
// header word, hands control messages up, and forwards or hands up the PPP
// frames of data messages. It must not allocate.
func (e *Engine) receive(s *Socket, pkt []byte, from netip.AddrPort, to netip.Addr) {
	ctl, ver, ok := Classify(pkt)
	if !ok {
		e.drop(dropMalformed, nil)
		return
	}
	if ctl {
		e.up.Control(s, pkt, from, to)
		return
	}
	var (
		ent   *entry
		h     Header
		frame []byte
		err   error
	)
	switch ver {
	case 2:
		if h, frame, err = ParseV2(pkt); err != nil {
			e.drop(dropMalformed, nil)
			return
		}
		ent = e.sessions.get(SessionKey{Version: 2, Tunnel: h.Tunnel, Session: h.Session})
		if ent == nil {
			e.drop(dropUnknownSession, nil)
			return
		}
	case 3:
		id, err := V3Session(pkt)
		if err != nil {
			e.drop(dropMalformed, nil)
			return
		}
		ent = e.sessions.get(SessionKey{Version: 3, Session: id})
		if ent == nil {
			e.drop(dropUnknownSession, nil)
			return
		}
		if h, frame, err = ParseV3(pkt, len(ent.s.Cookie), ent.s.L2SpecificSublayer); err != nil {
			e.drop(dropMalformed, ent)
			return
		}
		// RFC 3931 §4.1: a cookie mismatch means the packet is not for
		// this session.
		if !bytes.Equal(h.Cookie, ent.s.Cookie) {
			e.drop(dropBadCookie, ent)
			return
		}
	default:
		e.drop(dropVersion, nil)
		return
	}
	e.deliver(ent, h, pkt, frame, from, to)
}

// deliver checks a data message of session ent (header h, payload frame,
// a suffix of pkt) and forwards its payload. It must not allocate.
func (e *Engine) deliver(ent *entry, h Header, pkt, frame []byte, from netip.AddrPort, to netip.Addr) {
	// The peer's port may change (NAT rebinding); its address may not.
	if from.Addr().Unmap() != ent.s.Peer.Addr() {
		e.drop(dropWrongPeer, ent)
		return
	}
	ent.ctr.tapped(false, pkt, from, to)
	if h.Sequenced {
		mask := uint32(0xffff)
		if h.Version == 3 {
			mask = 0xffffff
		}
		if !ent.ctr.seq.accept(h.Ns, mask) {
			e.drop(dropOutOfOrder, ent)
			return
		}
	}
	if ent.s.Kind != KindPPP {
		e.toTAP(ent, pkt, frame)
		return
	}
	if e.relayed(ent, frame) {
		return
	}
	proto, info, ok := ParsePPP(frame)
	if !ok {
		e.drop(dropMalformed, ent)
		return
	}
	ent.ctr.rxPackets.Add(1)
	ent.ctr.rxBytes.Add(uint64(len(info)))
	switch {
	case proto == ProtoIPv4 && ent.s.IPv4.IsValid():
		e.toTUN4(ent, info)
		return
	case proto == ProtoIPv6 && ent.s.IPv6.IsValid():
		if e.toTUN6(ent, info) {
			return
		}
	}
	e.up.Frame(ent.s.Key, frame)
}

func (e *Engine) toTUN4(ent *entry, pkt []byte) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 {
		e.drop(dropMalformed, ent)
		return
	}
	// The subscriber may only send from its own address, or from a
	// prefix routed to it (routes.go).
	if netip.AddrFrom4([4]byte(pkt[12:16])) != ent.s.IPv4 && !e.v4.routesTo(pkt[12:16], ent) {
		e.drop(dropSpoofed, ent)
		return
	}
	e.writeTUN(ent, pkt)
}

// toTUN6 forwards an IPv6 packet from the subscriber's prefix. Packets
// from its link-local address (Router Solicitations, DHCPv6) belong to
// the control plane: it reports false for them.
func (e *Engine) toTUN6(ent *entry, pkt []byte) bool {
	if len(pkt) < 40 || pkt[0]>>4 != 6 {
		e.drop(dropMalformed, ent)
		return true
	}
	src := netip.AddrFrom16([16]byte(pkt[8:24]))
	if src.IsLinkLocalUnicast() || src.IsUnspecified() {
		return false
	}
	if !ent.s.IPv6.Contains(src) && !e.v6.routesTo(pkt[8:24], ent) {
		e.drop(dropSpoofed, ent)
		return true
	}
	e.writeTUN(ent, pkt)
	return true
}

func (e *Engine) writeTUN(ent *entry, pkt []byte) {
	if e.tunW == nil {
		e.drop(dropNoTUN, ent)
		return
	}
	if ent.s.MSSClamp != 0 {
		ClampMSS(pkt, ent.s.MSSClamp)
	}
	if _, err := e.tunW.Write(pkt); err != nil {
		e.drop(dropTUNWrite, ent)
	}
}

// tunForwarder is the state of the TUN reader: the sockets that have
// messages queued since the last flush.
type tunForwarder struct {
	e       *Engine
	pending []*Socket
}

// forward routes the IP packet in b[headroom:headroom+n] to its session
// and queues it, encapsulated in place, on the session's socket. The
// queued message refers to b until flush. It must not allocate.
func (f *tunForwarder) forward(b []byte, n int) {
	e := f.e
	pkt := b[headroom : headroom+n]
	var (
		ent   *entry
		proto uint16
	)
	switch {
	case n >= 20 && pkt[0]>>4 == 4:
		ent, proto = e.v4.lookup(pkt[16:20]), ProtoIPv4
	case n >= 40 && pkt[0]>>4 == 6:
		ent, proto = e.v6.lookup(pkt[24:40]), ProtoIPv6
	default:
		e.drop(dropMalformed, nil)
		return
	}
	if ent == nil {
		e.drop(dropNoRoute, nil)
		return
	}
	if ent.s.MSSClamp != 0 {
		ClampMSS(pkt, ent.s.MSSClamp)
	}
	s := ent.s.Socket
	msg := ent.encap(b, headroom, n, proto)
	ent.ctr.tapped(true, msg, ent.s.Peer, ent.s.Local)
	ent.ctr.txPackets.Add(1)
	ent.ctr.txBytes.Add(uint64(n))
	if len(s.txq) == 0 {
		f.pending = append(f.pending, s)
	}
	s.txq = append(s.txq, message{b: msg, to: ent.s.Peer, from: ent.s.Local})
	if len(s.txq) == cap(s.txq) {
		f.flushSocket(s)
	}
}

func (f *tunForwarder) flushSocket(s *Socket) {
	if len(s.txq) == 0 {
		return
	}
	if failed := s.io.writeBatch(s.txq); failed > 0 {
		f.e.drops[dropSend].Add(uint64(failed))
	}
	clear(s.txq)
	s.txq = s.txq[:0]
}

// flush sends every queued message.
func (f *tunForwarder) flush() {
	for _, s := range f.pending {
		f.flushSocket(s)
	}
	clear(f.pending)
	f.pending = f.pending[:0]
}
