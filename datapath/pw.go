package datapath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Kind says what a session carries.
type Kind uint8

const (
	KindPPP      Kind = iota // PPP frames (default; TUN for IP)
	KindEthernet             // RFC 4719 Ethernet pseudowire (pw type 5): whole frames to/from a TAP
	KindVLAN                 // RFC 4719 Ethernet VLAN pseudowire (pw type 4): one 802.1Q VLAN of a TAP
)

var kindNames = [...]string{KindPPP: "ppp", KindEthernet: "ethernet", KindVLAN: "vlan"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseV3IP parses an L2TPv3 data message over IP (protocol 115, RFC 3931
// §4.1.1.2): b starts at the Session ID, right after the IP header. A
// zero Session ID marks a control message (ErrControl).
func ParseV3IP(b []byte, cookieLen int, l2ss bool) (h Header, payload []byte, err error) {
	if len(b) < 4 {
		return h, nil, ErrShort
	}
	h.Session = binary.BigEndian.Uint32(b)
	if h.Session == 0 {
		return h, nil, ErrControl
	}
	h.Version = 3
	payload, err = parseV3Tail(b[4:], cookieLen, l2ss, &h)
	return h, payload, err
}

// parseV3Tail parses the cookie and the default L2-specific sublayer that
// follow the Session ID (RFC 3931 §4.1, §4.6.1).
func parseV3Tail(b []byte, cookieLen int, l2ss bool, h *Header) ([]byte, error) {
	if len(b) < cookieLen {
		return nil, ErrShort
	}
	h.Cookie = b[:cookieLen]
	b = b[cookieLen:]
	if l2ss {
		if len(b) < 4 {
			return nil, ErrShort
		}
		h.L2SS = true
		w := binary.BigEndian.Uint32(b)
		h.Sequenced = w&0x40000000 != 0
		h.Ns = w & 0xffffff
		b = b[4:]
	}
	return b, nil
}

// AppendV3IP appends an L2TPv3 data message over IP (RFC 3931 §4.1.1.2):
// the same as over UDP without the first word.
func AppendV3IP(dst []byte, h Header, payload []byte) []byte {
	start := len(dst)
	dst = AppendV3(dst, h, payload)
	copy(dst[start:], dst[start+4:])
	return dst[:len(dst)-4]
}

// IEEE 802.1Q (C-VLAN) and 802.1ad (S-VLAN) tag protocol identifiers.
const (
	tpid8021Q  = 0x8100
	tpid8021AD = 0x88a8
)

// VLANID returns the VLAN ID of the outermost 802.1Q or 802.1ad tag of an
// Ethernet frame (no FCS); ok is false for an untagged or short frame.
func VLANID(frame []byte) (vid uint16, ok bool) {
	if len(frame) < 18 {
		return 0, false
	}
	switch binary.BigEndian.Uint16(frame[12:]) {
	case tpid8021Q, tpid8021AD:
		return binary.BigEndian.Uint16(frame[14:]) & 0x0fff, true
	}
	return 0, false
}

// SetVLANID rewrites the VID of the outermost tag in place, keeping the
// priority and DEI bits; it reports false for an untagged or short frame.
func SetVLANID(frame []byte, vid uint16) bool {
	if _, ok := VLANID(frame); !ok {
		return false
	}
	tci := binary.BigEndian.Uint16(frame[14:])
	binary.BigEndian.PutUint16(frame[14:], tci&0xf000|vid&0x0fff)
	return true
}

func validateKind(s Session) error {
	k := s.Key
	switch s.Kind {
	case KindPPP:
		if s.TAP != "" || s.VLAN != 0 {
			return fmt.Errorf("datapath: session %v: TAP and VLAN are for Ethernet pseudowires", k)
		}
		return nil
	case KindEthernet:
		if s.VLAN != 0 {
			return fmt.Errorf("datapath: session %v: VLAN set on an Ethernet (not VLAN) pseudowire", k)
		}
	case KindVLAN:
		if s.VLAN == 0 || s.VLAN > 4094 {
			return fmt.Errorf("datapath: session %v: VLAN ID %d out of 1..4094", k, s.VLAN)
		}
	default:
		return fmt.Errorf("datapath: session %v: unknown kind %d", k, s.Kind)
	}
	if k.Version != 3 {
		return fmt.Errorf("datapath: session %v: %v pseudowires are L2TPv3 only", k, s.Kind)
	}
	if s.TAP == "" {
		return fmt.Errorf("datapath: session %v: %v pseudowire without a TAP", k, s.Kind)
	}
	if s.IPv4.IsValid() || s.IPv6.IsValid() || s.MSSClamp != 0 {
		return fmt.Errorf("datapath: session %v: addresses and MSS clamping are for PPP sessions", k)
	}
	return nil
}

// stripUDPWord turns the header into its IP-encapsulation form: over IP
// the Session ID comes first (RFC 3931 §4.1.1.2).
func (e *entry) stripUDPWord() {
	copy(e.hdr[:], e.hdr[4:e.hlen])
	e.hlen -= 4
	if e.nsOff >= 0 {
		e.nsOff -= 4
	}
}

// encapPW writes the session's header in front of the n-byte Ethernet
// frame at b[start:] and returns the whole message.
func (e *entry) encapPW(b []byte, start, n int) []byte {
	p := start - int(e.hlen)
	copy(b[p:], e.hdr[:e.hlen])
	e.putSeq(b[p:])
	return b[p : start+n]
}

// receiveIP handles one L2TPv3-over-IP packet (the IP payload) read from
// s (RFC 3931 §4.1.1.2): a zero Session ID marks a control message, which
// goes up whole, zero word included, as control/wire parses it; anything
// else is a data message. It must not allocate.
func (e *Engine) receiveIP(s *Socket, pkt []byte, from netip.AddrPort, to netip.Addr) {
	if len(pkt) < 4 {
		e.drop(dropMalformed, nil)
		return
	}
	id := binary.BigEndian.Uint32(pkt)
	if id == 0 {
		e.up.Control(s, pkt, from, to)
		return
	}
	ent := e.sessions.get(SessionKey{Version: 3, Session: id})
	if ent == nil {
		e.drop(dropUnknownSession, nil)
		return
	}
	h, frame, err := ParseV3IP(pkt, len(ent.s.Cookie), ent.s.L2SpecificSublayer)
	if err != nil {
		e.drop(dropMalformed, ent)
		return
	}
	// RFC 3931 §4.1: a cookie mismatch means the packet is not for this
	// session.
	if !bytes.Equal(h.Cookie, ent.s.Cookie) {
		e.drop(dropBadCookie, ent)
		return
	}
	e.deliver(ent, h, pkt, frame, from, to)
}

// toTAP writes the Ethernet frame of a pseudowire session (a suffix of
// pkt) to its TAP. VLAN sessions rewrite the VID of the outermost tag to
// their own (RFC 4719 §4.2: the VLAN may differ at each end); a frame that
// arrives untagged gets a tag, written into the header room in front of
// it. It must not allocate.
func (e *Engine) toTAP(ent *entry, pkt, frame []byte) {
	if len(frame) < 14 {
		e.drop(dropMalformed, ent)
		return
	}
	if ent.s.Kind == KindVLAN && !SetVLANID(frame, ent.s.VLAN) {
		off := len(pkt) - len(frame)
		if off < 4 {
			e.drop(dropHeadroom, ent)
			return
		}
		tagged := pkt[off-4:]
		copy(tagged, frame[:12])
		binary.BigEndian.PutUint16(tagged[12:], tpid8021Q)
		binary.BigEndian.PutUint16(tagged[14:], ent.s.VLAN)
		frame = tagged
	}
	ent.ctr.rxPackets.Add(1)
	ent.ctr.rxBytes.Add(uint64(len(frame)))
	if _, err := ent.tap.w.Write(frame); err != nil {
		e.drop(dropTAPWrite, ent)
	}
}
