package main_test

// A deliberately small, independent reader and writer for pcap files and
// L2TPv2 control messages, so the end-to-end tests judge the daemon with
// code that shares nothing with it.

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
)

// pcapFrame is one UDP datagram of a capture. Number is the frame number
// as tshark counts it (1-based, over every record, UDP or not).
type pcapFrame struct {
	Number           int
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Payload          []byte
}

// readPcapUDP returns the IPv4/UDP datagrams of a classic pcap file with
// Ethernet link type (optionally 802.1Q tagged). Other records are
// counted in the frame numbers but not returned.
func readPcapUDP(path string) ([]pcapFrame, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, errors.New("pcap: short file header")
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d: // microsecond, nanosecond
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("pcap: %s is not a classic pcap file", path)
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap: link type %d, want Ethernet (1)", lt)
	}
	var frames []pcapFrame
	off, n := 24, 0
	for off < len(b) {
		if len(b)-off < 16 {
			return nil, fmt.Errorf("pcap: truncated record header at %d", off)
		}
		incl := int(bo.Uint32(b[off+8:]))
		off += 16
		if incl > len(b)-off {
			return nil, fmt.Errorf("pcap: truncated record at %d", off)
		}
		n++
		if f, ok := ethernetUDP(b[off : off+incl]); ok {
			f.Number = n
			frames = append(frames, f)
		}
		off += incl
	}
	return frames, nil
}

func ethernetUDP(p []byte) (pcapFrame, bool) {
	if len(p) < 14 {
		return pcapFrame{}, false
	}
	et, p := binary.BigEndian.Uint16(p[12:]), p[14:]
	for et == 0x8100 && len(p) >= 4 {
		et, p = binary.BigEndian.Uint16(p[2:]), p[4:]
	}
	if et != 0x0800 || len(p) < 20 || p[0]>>4 != 4 {
		return pcapFrame{}, false
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:]))
	if ihl < 20 || total < ihl || total > len(p) || p[9] != 17 {
		return pcapFrame{}, false
	}
	if frag := binary.BigEndian.Uint16(p[6:]); frag&0x3fff != 0 {
		return pcapFrame{}, false // fragments are not reassembled
	}
	src, _ := netip.AddrFromSlice(p[12:16])
	dst, _ := netip.AddrFromSlice(p[16:20])
	u := p[ihl:total]
	if len(u) < 8 {
		return pcapFrame{}, false
	}
	ulen := int(binary.BigEndian.Uint16(u[4:]))
	if ulen < 8 || ulen > len(u) {
		return pcapFrame{}, false
	}
	return pcapFrame{
		Src: src, Dst: dst,
		SrcPort: binary.BigEndian.Uint16(u), DstPort: binary.BigEndian.Uint16(u[2:]),
		Payload: u[8:ulen],
	}, true
}

// L2TPv2 control message types (RFC 2661 §3.2).
const (
	mtSCCRQ   = 1
	mtSCCRP   = 2
	mtSCCCN   = 3
	mtStopCCN = 4
	mtHello   = 6
	mtICRQ    = 10
	mtICRP    = 11
	mtICCN    = 12
	mtCDN     = 14
)

// AVP attribute types used by the tests (RFC 2661 §4.4).
const (
	avpMessageType       = 0
	avpResultCode        = 1
	avpHostName          = 7
	avpAssignedTunnelID  = 9
	avpChallenge         = 11
	avpChallengeResponse = 13
	avpAssignedSessionID = 14
	avpRandomVector      = 36
)

var msgTypeNames = map[uint16]string{
	0: "ZLB", 1: "SCCRQ", 2: "SCCRP", 3: "SCCCN", 4: "StopCCN", 6: "HELLO",
	7: "OCRQ", 8: "OCRP", 9: "OCCN", 10: "ICRQ", 11: "ICRP", 12: "ICCN",
	14: "CDN", 15: "WEN", 16: "SLI",
}

func msgTypeName(t uint16) string {
	if s, ok := msgTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("type-%d", t)
}

// tAVP is one AVP; Raw is the whole encoded AVP (header and value).
type tAVP struct {
	Mandatory, Hidden bool
	Vendor, Type      uint16
	Value             []byte
	Raw               []byte
}

// tMsg is an L2TPv2 packet as the tests see it.
type tMsg struct {
	Control           bool
	Version           int
	TunnelID, Session uint16
	Ns, Nr            uint16
	Type              uint16 // message type; 0 for a ZLB
	ZLB               bool
	AVPs              []tAVP
}

func (m *tMsg) find(t uint16) (tAVP, bool) {
	for _, a := range m.AVPs {
		if a.Vendor == 0 && a.Type == t {
			return a, true
		}
	}
	return tAVP{}, false
}

func (m *tMsg) uint16AVP(t uint16) (uint16, bool) {
	a, ok := m.find(t)
	if !ok || a.Hidden || len(a.Value) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(a.Value), true
}

func (m tMsg) String() string {
	if !m.Control {
		return fmt.Sprintf("data tunnel=%d session=%d", m.TunnelID, m.Session)
	}
	return fmt.Sprintf("%s tunnel=%d session=%d Ns=%d Nr=%d", msgTypeName(m.Type), m.TunnelID, m.Session, m.Ns, m.Nr)
}

// parseL2TP reads an L2TPv2 header (RFC 2661 §3.1) and, for a control
// message, its AVPs (§4.1).
func parseL2TP(b []byte) (tMsg, error) {
	var m tMsg
	if len(b) < 6 {
		return m, errors.New("l2tp: short header")
	}
	flags := binary.BigEndian.Uint16(b)
	m.Version = int(flags & 0x0f)
	m.Control = flags&0x8000 != 0
	if m.Version != 2 {
		return m, fmt.Errorf("l2tp: version %d", m.Version)
	}
	off := 2
	length := len(b)
	if flags&0x4000 != 0 {
		length = int(binary.BigEndian.Uint16(b[off:]))
		off += 2
		if length > len(b) || length < 6 {
			return m, fmt.Errorf("l2tp: length %d, packet %d", length, len(b))
		}
	}
	if len(b) < off+4 {
		return m, errors.New("l2tp: short header")
	}
	m.TunnelID = binary.BigEndian.Uint16(b[off:])
	m.Session = binary.BigEndian.Uint16(b[off+2:])
	off += 4
	if flags&0x0800 != 0 {
		if len(b) < off+4 {
			return m, errors.New("l2tp: short header")
		}
		m.Ns = binary.BigEndian.Uint16(b[off:])
		m.Nr = binary.BigEndian.Uint16(b[off+2:])
		off += 4
	}
	if !m.Control {
		return m, nil
	}
	// RFC 2661 §3.1: control messages MUST set L and S and clear O and P.
	if flags&0x4800 != 0x4800 || flags&0x0300 != 0 {
		return m, fmt.Errorf("l2tp: control flags %#04x", flags)
	}
	p := b[off:length]
	if len(p) == 0 {
		m.ZLB = true
		return m, nil
	}
	for len(p) > 0 {
		if len(p) < 6 {
			return m, errors.New("l2tp: short AVP header")
		}
		h := binary.BigEndian.Uint16(p)
		n := int(h & 0x03ff)
		if n < 6 || n > len(p) {
			return m, fmt.Errorf("l2tp: AVP length %d, %d bytes left", n, len(p))
		}
		m.AVPs = append(m.AVPs, tAVP{
			Mandatory: h&0x8000 != 0,
			Hidden:    h&0x4000 != 0,
			Vendor:    binary.BigEndian.Uint16(p[2:]),
			Type:      binary.BigEndian.Uint16(p[4:]),
			Value:     p[6:n],
			Raw:       p[:n],
		})
		p = p[n:]
	}
	first := m.AVPs[0]
	if first.Vendor != 0 || first.Type != avpMessageType || first.Hidden || len(first.Value) != 2 {
		return m, errors.New("l2tp: first AVP is not Message Type")
	}
	m.Type = binary.BigEndian.Uint16(first.Value)
	return m, nil
}

// appendControl encodes an L2TPv2 control message with T, L and S set
// and the given raw AVPs (RFC 2661 §3.1).
func appendControl(b []byte, tunnel, session, ns, nr uint16, avps ...[]byte) []byte {
	start := len(b)
	b = binary.BigEndian.AppendUint16(b, 0xc802)
	b = append(b, 0, 0) // length, patched below
	b = binary.BigEndian.AppendUint16(b, tunnel)
	b = binary.BigEndian.AppendUint16(b, session)
	b = binary.BigEndian.AppendUint16(b, ns)
	b = binary.BigEndian.AppendUint16(b, nr)
	for _, a := range avps {
		b = append(b, a...)
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// encodeAVP encodes a vendor-0 AVP that is not hidden.
func encodeAVP(mandatory bool, t uint16, value []byte) []byte {
	h := uint16(6 + len(value))
	if mandatory {
		h |= 0x8000
	}
	b := binary.BigEndian.AppendUint16(nil, h)
	b = binary.BigEndian.AppendUint16(b, 0)
	b = binary.BigEndian.AppendUint16(b, t)
	return append(b, value...)
}

// challengeResponse is the CHAP-style tunnel authentication response of
// RFC 2661 §4.4.3 and §5.1.1: MD5 over the message type of the message
// carrying the response (2 in SCCRP, 3 in SCCCN), the shared secret and
// the challenge.
func challengeResponse(msgType uint16, secret string, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{byte(msgType)})
	h.Write([]byte(secret))
	h.Write(challenge)
	return h.Sum(nil)
}

// unhide recovers the value of a hidden AVP (RFC 2661 §4.3): the value
// is the subformat (2-octet original length, value, padding) XORed with
// b1 = MD5(type + secret + RV), then b(i) = MD5(secret + c(i-1)).
func unhide(avpType uint16, secret string, rv, hidden []byte) ([]byte, error) {
	if len(hidden) < 2 {
		return nil, fmt.Errorf("hidden AVP %d: value of %d octets", avpType, len(hidden))
	}
	plain := make([]byte, len(hidden))
	h := md5.New()
	h.Write([]byte{byte(avpType >> 8), byte(avpType)})
	h.Write([]byte(secret))
	h.Write(rv)
	b := h.Sum(nil)
	for i := 0; i < len(hidden); i += 16 {
		end := i + 16
		if end > len(hidden) {
			end = len(hidden)
		}
		for j := i; j < end; j++ {
			plain[j] = hidden[j] ^ b[j-i]
		}
		h.Reset()
		h.Write([]byte(secret))
		h.Write(hidden[i:end])
		b = h.Sum(nil)
	}
	n := int(binary.BigEndian.Uint16(plain))
	if n > len(plain)-2 {
		return nil, fmt.Errorf("hidden AVP %d: original length %d in a %d-octet value", avpType, n, len(hidden))
	}
	return plain[2 : 2+n], nil
}

// unhideAll replaces the value of every hidden AVP of m by its clear
// value, using the Random Vector AVP that precedes it.
func (m *tMsg) unhideAll(secret string) error {
	var rv []byte
	for i := range m.AVPs {
		a := &m.AVPs[i]
		if a.Vendor == 0 && a.Type == avpRandomVector {
			rv = a.Value
			continue
		}
		if !a.Hidden {
			continue
		}
		if rv == nil {
			return fmt.Errorf("hidden AVP %d without a Random Vector before it", a.Type)
		}
		v, err := unhide(a.Type, secret, rv, a.Value)
		if err != nil {
			return err
		}
		a.Value, a.Hidden = v, false
	}
	return nil
}
