package ppp

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// Protocol is a PPP protocol number (RFC 1661 §2, assigned numbers).
type Protocol uint16

// Protocols the engine knows by name.
const (
	ProtoIPv4   Protocol = 0x0021
	ProtoIPv6   Protocol = 0x0057
	ProtoIPCP   Protocol = 0x8021
	ProtoIPv6CP Protocol = 0x8057
	ProtoCCP    Protocol = 0x80fd
	ProtoLCP    Protocol = 0xc021
	ProtoPAP    Protocol = 0xc023
	ProtoLQR    Protocol = 0xc025
	ProtoCBCP   Protocol = 0xc029
	ProtoCHAP   Protocol = 0xc223
	ProtoEAP    Protocol = 0xc227
)

func (p Protocol) String() string {
	switch p {
	case ProtoIPv4:
		return "IPv4"
	case ProtoIPv6:
		return "IPv6"
	case ProtoIPCP:
		return "IPCP"
	case ProtoIPv6CP:
		return "IPv6CP"
	case ProtoCCP:
		return "CCP"
	case ProtoLCP:
		return "LCP"
	case ProtoPAP:
		return "PAP"
	case ProtoLQR:
		return "LQR"
	case ProtoCBCP:
		return "CBCP"
	case ProtoCHAP:
		return "CHAP"
	case ProtoEAP:
		return "EAP"
	}
	return "0x" + strconv.FormatUint(uint64(p), 16)
}

// Control packet codes (RFC 1661 §5).
const (
	CodeConfigureRequest = 1
	CodeConfigureAck     = 2
	CodeConfigureNak     = 3
	CodeConfigureReject  = 4
	CodeTerminateRequest = 5
	CodeTerminateAck     = 6
	CodeCodeReject       = 7
	CodeProtocolReject   = 8  // LCP only
	CodeEchoRequest      = 9  // LCP only
	CodeEchoReply        = 10 // LCP only
	CodeDiscardRequest   = 11 // LCP only
	CodeIdentification   = 12 // LCP only, RFC 1570 §2.1
	CodeTimeRemaining    = 13 // LCP only, RFC 1570 §2.2
)

// Errors returned by the parsers. Each is a reason to drop the frame.
var (
	ErrShortFrame   = errors.New("ppp: frame too short")
	ErrBadProtocol  = errors.New("ppp: invalid protocol field")
	ErrShortPacket  = errors.New("ppp: control packet too short")
	ErrPacketLength = errors.New("ppp: control packet length out of range")
	ErrOptionLength = errors.New("ppp: option length out of range")
)

// ParseFrame reads the PPP header of a frame as carried in an L2TP data
// message (RFC 2661 §5.1: no HDLC flags or FCS; the FF 03 address and
// control field may be absent when ACFC is in use) and returns the
// protocol and a view of the information field. A protocol field whose
// first octet is odd is one octet long (RFC 1661 §6.5, PFC). The low bit
// of the last protocol octet must be 1 (RFC 1661 §2).
func ParseFrame(b []byte) (Protocol, []byte, error) {
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
		b = b[2:]
	}
	if len(b) < 1 {
		return 0, nil, ErrShortFrame
	}
	if b[0]&1 == 1 {
		return Protocol(b[0]), b[1:], nil
	}
	if len(b) < 2 {
		return 0, nil, ErrShortFrame
	}
	if b[1]&1 == 0 {
		return 0, nil, ErrBadProtocol
	}
	return Protocol(binary.BigEndian.Uint16(b)), b[2:], nil
}

// AppendFrameHeader appends the address/control field (unless acfc) and
// the protocol field (one octet when pfc and the protocol allows it).
// LCP frames are never compressed (RFC 1661 §6.5, §6.6); the caller
// passes false for them.
func AppendFrameHeader(b []byte, p Protocol, acfc, pfc bool) []byte {
	if !acfc {
		b = append(b, 0xff, 0x03)
	}
	if pfc && p < 0x100 {
		return append(b, byte(p))
	}
	return append(b, byte(p>>8), byte(p))
}

// Packet is a decoded control packet (RFC 1661 §5). Data is a view into
// the parsed buffer.
type Packet struct {
	Code uint8
	ID   uint8
	Data []byte
}

// ParsePacket decodes the control packet at the start of b. Octets after
// Length are padding and ignored (RFC 1661 §5).
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < 4 {
		return Packet{}, ErrShortPacket
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	if n < 4 || n > len(b) {
		return Packet{}, ErrPacketLength
	}
	return Packet{Code: b[0], ID: b[1], Data: b[4:n]}, nil
}

// AppendPacket appends a control packet with the given data.
func AppendPacket(b []byte, code, id uint8, data []byte) []byte {
	n := 4 + len(data)
	b = append(b, code, id, byte(n>>8), byte(n))
	return append(b, data...)
}

// Option is one configuration option (RFC 1661 §6). Value is a view.
type Option struct {
	Type  uint8
	Value []byte
}

// NextOption decodes the first option of b and returns it with the rest.
func NextOption(b []byte) (Option, []byte, error) {
	if len(b) < 2 {
		return Option{}, nil, ErrOptionLength
	}
	n := int(b[1])
	if n < 2 || n > len(b) {
		return Option{}, nil, ErrOptionLength
	}
	return Option{Type: b[0], Value: b[2:n]}, b[n:], nil
}

// ValidOptions reports whether b is a well-formed option list.
func ValidOptions(b []byte) error {
	for len(b) > 0 {
		var err error
		if _, b, err = NextOption(b); err != nil {
			return err
		}
	}
	return nil
}

// AppendOption appends one option; values longer than 253 octets are
// truncated, as the length field cannot say more.
func AppendOption(b []byte, typ uint8, value []byte) []byte {
	if len(value) > 253 {
		value = value[:253]
	}
	b = append(b, typ, byte(2+len(value)))
	return append(b, value...)
}

// appendOptionRaw appends o as it was received.
func appendOptionRaw(b []byte, o Option) []byte {
	return AppendOption(b, o.Type, o.Value)
}

func appendOption16(b []byte, typ uint8, v uint16) []byte {
	return append(b, typ, 4, byte(v>>8), byte(v))
}

func appendOption32(b []byte, typ uint8, v uint32) []byte {
	return append(b, typ, 6, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
