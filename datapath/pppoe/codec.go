package pppoe

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EtherTypes (RFC 2516 §4).
const (
	EtherTypeDiscovery = 0x8863
	EtherTypeSession   = 0x8864
)

// Header sizes: Ethernet (no 802.1Q tag; a VLAN sub-interface delivers
// untagged frames) and the PPPoE header.
const (
	EthernetLen = 14
	PPPoELen    = 6
	HeaderLen   = EthernetLen + PPPoELen
)

// MaxPPP is the largest PPP frame (protocol field included) a session
// carries on a 1500-octet Ethernet (RFC 2516 §7: MRU at most 1492).
const MaxPPP = 1500 - PPPoELen

// Code is the PPPoE CODE field (RFC 2516 §5, §6).
type Code uint8

// Codes.
const (
	CodeSession Code = 0x00
	CodePADO    Code = 0x07
	CodePADI    Code = 0x09
	CodePADR    Code = 0x19
	CodePADS    Code = 0x65
	CodePADT    Code = 0xa7
)

func (c Code) String() string {
	switch c {
	case CodeSession:
		return "Session"
	case CodePADO:
		return "PADO"
	case CodePADI:
		return "PADI"
	case CodePADR:
		return "PADR"
	case CodePADS:
		return "PADS"
	case CodePADT:
		return "PADT"
	}
	return fmt.Sprintf("Code(%#02x)", uint8(c))
}

// TagType is a discovery TAG_TYPE (RFC 2516 Appendix A).
type TagType uint16

// Tag types.
const (
	TagEndOfList        TagType = 0x0000
	TagServiceName      TagType = 0x0101
	TagACName           TagType = 0x0102
	TagHostUniq         TagType = 0x0103
	TagACCookie         TagType = 0x0104
	TagVendorSpecific   TagType = 0x0105
	TagRelaySessionID   TagType = 0x0110
	TagServiceNameError TagType = 0x0201
	TagACSystemError    TagType = 0x0202
	TagGenericError     TagType = 0x0203
)

func (t TagType) String() string {
	switch t {
	case TagEndOfList:
		return "End-Of-List"
	case TagServiceName:
		return "Service-Name"
	case TagACName:
		return "AC-Name"
	case TagHostUniq:
		return "Host-Uniq"
	case TagACCookie:
		return "AC-Cookie"
	case TagVendorSpecific:
		return "Vendor-Specific"
	case TagRelaySessionID:
		return "Relay-Session-Id"
	case TagServiceNameError:
		return "Service-Name-Error"
	case TagACSystemError:
		return "AC-System-Error"
	case TagGenericError:
		return "Generic-Error"
	}
	return fmt.Sprintf("Tag(%#04x)", uint16(t))
}

// MAC is an Ethernet address.
type MAC [6]byte

// Broadcast is the Ethernet broadcast address PADIs go to (RFC 2516 §5.1).
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func (m MAC) String() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[x>>4], hex[x&0xf])
	}
	return string(b)
}

// IsUnicast reports whether m is an individual address (I/G bit clear).
func (m MAC) IsUnicast() bool { return m[0]&1 == 0 && m != MAC{} }

// ParseMAC parses "aa:bb:cc:dd:ee:ff" (or with '-').
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("pppoe: bad MAC address %q", s)
	}
	for i := range m {
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 || (i < 5 && s[3*i+2] != ':' && s[3*i+2] != '-') {
			return MAC{}, fmt.Errorf("pppoe: bad MAC address %q", s)
		}
		m[i] = hi<<4 | lo
	}
	return m, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Parse errors.
var (
	ErrShort     = errors.New("pppoe: short frame")
	ErrEtherType = errors.New("pppoe: not a PPPoE EtherType")
	ErrVersion   = errors.New("pppoe: unsupported VER/TYPE")
	ErrLength    = errors.New("pppoe: LENGTH past the end of the frame")
	ErrTag       = errors.New("pppoe: TAG_LENGTH past the end of the payload")
	ErrCode      = errors.New("pppoe: code not valid for the EtherType")
)

// Frame is a parsed PPPoE frame; Payload is a view into the buffer
// given to ParseFrame, cut to the LENGTH field (Ethernet padding after it
// is ignored).
type Frame struct {
	Dst, Src  MAC
	EtherType uint16
	Code      Code
	SessionID uint16
	Payload   []byte
}

// Discovery reports whether f is a discovery packet.
func (f *Frame) Discovery() bool { return f.EtherType == EtherTypeDiscovery }

// ParseFrame parses the Ethernet and PPPoE headers of b (RFC 2516 §4).
// Session packets must have code 0 (§6); discovery packets any code
// other than 0, checked further by the state machines.
func ParseFrame(b []byte) (Frame, error) {
	var f Frame
	if len(b) < HeaderLen {
		return f, ErrShort
	}
	copy(f.Dst[:], b[0:6])
	copy(f.Src[:], b[6:12])
	f.EtherType = binary.BigEndian.Uint16(b[12:14])
	if f.EtherType != EtherTypeDiscovery && f.EtherType != EtherTypeSession {
		return f, ErrEtherType
	}
	if b[14] != 0x11 {
		return f, ErrVersion
	}
	f.Code = Code(b[15])
	if (f.Code == CodeSession) != (f.EtherType == EtherTypeSession) {
		return f, ErrCode
	}
	f.SessionID = binary.BigEndian.Uint16(b[16:18])
	n := int(binary.BigEndian.Uint16(b[18:20]))
	if n > len(b)-HeaderLen {
		return f, ErrLength
	}
	f.Payload = b[HeaderLen : HeaderLen+n]
	return f, nil
}

// Tag is one discovery TAG; Value is a view.
type Tag struct {
	Type  TagType
	Value []byte
}

// Tags iterates over the TAGs of a discovery payload.
type Tags struct {
	b   []byte
	err error
}

// NewTags iterates over payload.
func NewTags(payload []byte) Tags { return Tags{b: payload} }

// Next returns the next TAG; false at the end or on error (see Err).
// End-Of-List ends the iteration (RFC 2516 Appendix A).
func (t *Tags) Next() (Tag, bool) {
	if len(t.b) == 0 || t.err != nil {
		return Tag{}, false
	}
	if len(t.b) < 4 {
		t.err = ErrTag
		return Tag{}, false
	}
	typ := TagType(binary.BigEndian.Uint16(t.b))
	n := int(binary.BigEndian.Uint16(t.b[2:]))
	if n > len(t.b)-4 {
		t.err = ErrTag
		return Tag{}, false
	}
	tag := Tag{Type: typ, Value: t.b[4 : 4+n : 4+n]}
	t.b = t.b[4+n:]
	if typ == TagEndOfList {
		t.b = nil
		return Tag{}, false
	}
	return tag, true
}

// Err is the error that stopped the iteration, if any.
func (t *Tags) Err() error { return t.err }

// Has flags: which tags a Discovery saw.
const (
	HasServiceName uint16 = 1 << iota
	HasACName
	HasHostUniq
	HasACCookie
	HasRelaySessionID
	HasServiceNameError
	HasACSystemError
	HasGenericError
)

// Discovery is the decoded tag area of a discovery packet: the first of
// each tag (views into the payload), how many Service-Names there were,
// and which tags were present. Offered Service-Names beyond the first
// are read with NewTags(d.Raw).
type Discovery struct {
	Raw            []byte
	Has            uint16
	ServiceNames   int
	ServiceName    []byte
	ACName         []byte
	HostUniq       []byte
	ACCookie       []byte
	RelaySessionID []byte
	// Error is the value of the first error tag (a UTF-8 explanation,
	// possibly empty) and ErrorTag its type; zero without error tags.
	Error    []byte
	ErrorTag TagType
}

// ParseDiscovery decodes the tags of a discovery payload. Unknown tags
// are ignored (RFC 2516 §5).
func ParseDiscovery(payload []byte) (Discovery, error) {
	d := Discovery{Raw: payload}
	it := NewTags(payload)
	for {
		t, ok := it.Next()
		if !ok {
			break
		}
		switch t.Type {
		case TagServiceName:
			if d.Has&HasServiceName == 0 {
				d.ServiceName = t.Value
			}
			d.Has |= HasServiceName
			d.ServiceNames++
		case TagACName:
			if d.Has&HasACName == 0 {
				d.ACName = t.Value
			}
			d.Has |= HasACName
		case TagHostUniq:
			if d.Has&HasHostUniq == 0 {
				d.HostUniq = t.Value
			}
			d.Has |= HasHostUniq
		case TagACCookie:
			if d.Has&HasACCookie == 0 {
				d.ACCookie = t.Value
			}
			d.Has |= HasACCookie
		case TagRelaySessionID:
			if d.Has&HasRelaySessionID == 0 {
				d.RelaySessionID = t.Value
			}
			d.Has |= HasRelaySessionID
		case TagServiceNameError, TagACSystemError, TagGenericError:
			if d.ErrorTag == 0 {
				d.ErrorTag, d.Error = t.Type, t.Value
			}
			switch t.Type {
			case TagServiceNameError:
				d.Has |= HasServiceNameError
			case TagACSystemError:
				d.Has |= HasACSystemError
			default:
				d.Has |= HasGenericError
			}
		}
	}
	return d, it.Err()
}

// AppendHeader appends the Ethernet and PPPoE headers with LENGTH 0;
// append the payload and call SetLength(b[start:]) with start = len(b)
// before the call.
func AppendHeader(b []byte, dst, src MAC, etherType uint16, code Code, sessionID uint16) []byte {
	b = append(b, dst[:]...)
	b = append(b, src[:]...)
	b = binary.BigEndian.AppendUint16(b, etherType)
	b = append(b, 0x11, byte(code))
	b = binary.BigEndian.AppendUint16(b, sessionID)
	return append(b, 0, 0)
}

// SetLength patches the LENGTH field of the frame starting at frame[0].
func SetLength(frame []byte) {
	binary.BigEndian.PutUint16(frame[18:20], uint16(len(frame)-HeaderLen))
}

// AppendTag appends one TAG.
func AppendTag(b []byte, t TagType, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(t))
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// AppendTagString appends one TAG with a string value.
func AppendTagString(b []byte, t TagType, v string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(t))
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// PutSessionHeader writes the 20-octet Ethernet and PPPoE session header
// into h for a PPP frame of pppLen octets (RFC 2516 §6). A relay reads a
// frame with 20 octets of headroom, writes the header there and sends
// the same buffer.
func PutSessionHeader(h []byte, dst, src MAC, sessionID uint16, pppLen int) {
	_ = h[HeaderLen-1]
	copy(h[0:6], dst[:])
	copy(h[6:12], src[:])
	h[12], h[13] = EtherTypeSession>>8, EtherTypeSession&0xff
	h[14], h[15] = 0x11, 0
	binary.BigEndian.PutUint16(h[16:18], sessionID)
	binary.BigEndian.PutUint16(h[18:20], uint16(pppLen))
}

var zeroHeader [HeaderLen]byte

// AppendSession appends a session packet carrying ppp (which begins with
// the PPP protocol field).
func AppendSession(b []byte, dst, src MAC, sessionID uint16, ppp []byte) []byte {
	start := len(b)
	b = append(b, zeroHeader[:]...)
	PutSessionHeader(b[start:], dst, src, sessionID, len(ppp))
	return append(b, ppp...)
}
