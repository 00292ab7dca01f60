package datapath

import (
	"encoding/binary"
	"errors"
)

// Errors returned by the data header parsers. They are values so the
// packet path can compare and count them without allocating.
var (
	ErrShort   = errors.New("datapath: message too short")
	ErrControl = errors.New("datapath: control message")
	ErrVersion = errors.New("datapath: unsupported version")
	ErrLength  = errors.New("datapath: bad length field")
	ErrCookie  = errors.New("datapath: cookie mismatch")
)

// Flag bits of the first header word (RFC 2661 §3.1; RFC 3931 §4.1.2.1
// keeps only T and Ver).
const (
	flagT = 0x8000
	flagL = 0x4000
	flagS = 0x0800
	flagO = 0x0200
	flagP = 0x0100
)

// Header is a decoded L2TP data message header, v2 or v3 over UDP.
type Header struct {
	Version uint8
	// HasLength and Length: v2 L bit and the Length field (whole message).
	HasLength bool
	Length    uint16
	// Priority is the v2 P bit.
	Priority bool
	// Tunnel is the v2 Tunnel ID (zero for v3).
	Tunnel  uint32
	Session uint32
	// Sequenced: v2 S bit (Ns and Nr present), v3 S bit of the default
	// L2-specific sublayer (Ns holds its 24-bit sequence number).
	Sequenced bool
	Ns, Nr    uint32
	// HasOffset and Offset: v2 O bit and the Offset Size (padding skipped).
	HasOffset bool
	Offset    uint16
	// Cookie is a view of the v3 cookie.
	Cookie []byte
	// L2SS: a v3 default L2-specific sublayer is present (RFC 3931 §4.6).
	L2SS bool
}

// Classify reads only the first header word: whether the message is a
// control message and its version. ok is false when b is too short.
func Classify(b []byte) (control bool, version uint8, ok bool) {
	if len(b) < 2 {
		return false, 0, false
	}
	return b[0]&0x80 != 0, b[1] & 0x0f, true
}

// ParseV2 parses an L2TPv2 data message (RFC 2661 §3.1) and returns its
// header and a view of the payload (the PPP frame).
func ParseV2(b []byte) (h Header, payload []byte, err error) {
	if len(b) < 6 {
		return h, nil, ErrShort
	}
	flags := binary.BigEndian.Uint16(b)
	if flags&flagT != 0 {
		return h, nil, ErrControl
	}
	if flags&0x0f != 2 {
		return h, nil, ErrVersion
	}
	h.Version = 2
	h.Priority = flags&flagP != 0
	off := 2
	if flags&flagL != 0 {
		h.HasLength = true
		h.Length = binary.BigEndian.Uint16(b[2:])
		off = 4
		if int(h.Length) > len(b) {
			return h, nil, ErrLength
		}
		b = b[:h.Length]
	}
	if len(b) < off+4 {
		return h, nil, ErrShort
	}
	h.Tunnel = uint32(binary.BigEndian.Uint16(b[off:]))
	h.Session = uint32(binary.BigEndian.Uint16(b[off+2:]))
	off += 4
	if flags&flagS != 0 {
		if len(b) < off+4 {
			return h, nil, ErrShort
		}
		h.Sequenced = true
		h.Ns = uint32(binary.BigEndian.Uint16(b[off:]))
		h.Nr = uint32(binary.BigEndian.Uint16(b[off+2:]))
		off += 4
	}
	if flags&flagO != 0 {
		if len(b) < off+2 {
			return h, nil, ErrShort
		}
		h.HasOffset = true
		h.Offset = binary.BigEndian.Uint16(b[off:])
		off += 2
		if len(b) < off+int(h.Offset) {
			return h, nil, ErrShort
		}
		off += int(h.Offset)
	}
	return h, b[off:], nil
}

// V3Session returns the Session ID of an L2TPv3 data message over UDP
// (RFC 3931 §4.1.2.1): the cookie and sublayer that follow can only be
// parsed once the session is known.
func V3Session(b []byte) (uint32, error) {
	if len(b) < 8 {
		return 0, ErrShort
	}
	if b[0]&0x80 != 0 {
		return 0, ErrControl
	}
	if b[1]&0x0f != 3 {
		return 0, ErrVersion
	}
	return binary.BigEndian.Uint32(b[4:]), nil
}

// ParseV3 parses an L2TPv3 data message over UDP for a session whose
// cookie is cookieLen bytes (0, 4 or 8) and which does or does not use the
// default L2-specific sublayer (RFC 3931 §4.6).
func ParseV3(b []byte, cookieLen int, l2ss bool) (h Header, payload []byte, err error) {
	h.Session, err = V3Session(b)
	if err != nil {
		return h, nil, err
	}
	h.Version = 3
	off := 8
	if len(b) < off+cookieLen {
		return h, nil, ErrShort
	}
	h.Cookie = b[off : off+cookieLen]
	off += cookieLen
	if l2ss {
		if len(b) < off+4 {
			return h, nil, ErrShort
		}
		h.L2SS = true
		w := binary.BigEndian.Uint32(b[off:])
		h.Sequenced = w&0x40000000 != 0
		h.Ns = w & 0xffffff
		off += 4
	}
	return h, b[off:], nil
}

// AppendV2 appends an L2TPv2 data message with header h and payload. The
// Length field, when h.HasLength, is computed; the offset padding is zero.
func AppendV2(dst []byte, h Header, payload []byte) []byte {
	start := len(dst)
	flags := uint16(2)
	if h.HasLength {
		flags |= flagL
	}
	if h.Sequenced {
		flags |= flagS
	}
	if h.HasOffset {
		flags |= flagO
	}
	if h.Priority {
		flags |= flagP
	}
	dst = binary.BigEndian.AppendUint16(dst, flags)
	if h.HasLength {
		dst = append(dst, 0, 0)
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Tunnel))
	dst = binary.BigEndian.AppendUint16(dst, uint16(h.Session))
	if h.Sequenced {
		dst = binary.BigEndian.AppendUint16(dst, uint16(h.Ns))
		dst = binary.BigEndian.AppendUint16(dst, uint16(h.Nr))
	}
	if h.HasOffset {
		dst = binary.BigEndian.AppendUint16(dst, h.Offset)
		for i := 0; i < int(h.Offset); i++ {
			dst = append(dst, 0)
		}
	}
	dst = append(dst, payload...)
	if h.HasLength {
		binary.BigEndian.PutUint16(dst[start+2:], uint16(len(dst)-start))
	}
	return dst
}

// AppendV3 appends an L2TPv3 data message over UDP with header h (Cookie
// and L2SS as given) and payload.
func AppendV3(dst []byte, h Header, payload []byte) []byte {
	dst = append(dst, 0, 3, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, h.Session)
	dst = append(dst, h.Cookie...)
	if h.L2SS {
		w := h.Ns & 0xffffff
		if h.Sequenced {
			w |= 0x40000000
		}
		dst = binary.BigEndian.AppendUint32(dst, w)
	}
	return append(dst, payload...)
}

// PPP protocol numbers the datapath acts on.
const (
	ProtoIPv4 = 0x0021
	ProtoIPv6 = 0x0057
)

// ParsePPP returns the protocol and information field of a PPP frame that
// may start with the FF 03 address and control fields (RFC 1662 §3.2,
// absent when ACFC is negotiated) and whose protocol field may be
// compressed to one octet (RFC 1661 §6.5).
func ParsePPP(frame []byte) (proto uint16, info []byte, ok bool) {
	if len(frame) >= 2 && frame[0] == 0xff && frame[1] == 0x03 {
		frame = frame[2:]
	}
	if len(frame) < 1 {
		return 0, nil, false
	}
	// RFC 1661 §2: the least significant bit of the last protocol octet
	// is 1, of every other octet 0.
	if frame[0]&1 == 1 {
		return uint16(frame[0]), frame[1:], true
	}
	if len(frame) < 2 || frame[1]&1 == 0 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(frame), frame[2:], true
}
