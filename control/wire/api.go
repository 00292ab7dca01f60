package wire

import (
	"encoding/binary"
	"errors"
)

// Encap is how L2TP packets are carried.
type Encap uint8

const (
	EncapUDP Encap = iota // UDP port 1701 (v2 and v3)
	EncapIP               // IP protocol 115 (v3 only); control messages start with a zero session ID
)

// Header flag bits of the first 16-bit word (RFC 2661 §3.1, RFC 3931 §3.2.1).
const (
	FlagT uint16 = 0x8000 // control message
	FlagL uint16 = 0x4000 // length present
	FlagS uint16 = 0x0800 // Ns/Nr present
	FlagO uint16 = 0x0200 // offset size present (v2 data)
	FlagP uint16 = 0x0100 // priority (v2 data)
)

// Header is a decoded L2TP header. For v3 data the cookie and the
// L2-specific sublayer are not part of it: their sizes are per session.
type Header struct {
	Control    bool
	HasLength  bool
	HasSeq     bool
	HasOffset  bool
	Priority   bool
	Version    uint8  // 2 or 3
	Length     uint16 // total length when HasLength
	TunnelID   uint32 // v2 Tunnel ID, v3 Control Connection ID (control only)
	SessionID  uint32 // v2 Session ID, v3 data Session ID
	Ns, Nr     uint16
	OffsetSize uint16
}

// Errors returned by the parsers; each is a drop reason the caller counts.
var (
	ErrShort        = errors.New("wire: packet too short")
	ErrVersion      = errors.New("wire: unsupported protocol version")
	ErrBadFlags     = errors.New("wire: control message without L or S bit")
	ErrBadLength    = errors.New("wire: length field does not match packet")
	ErrAVPLength    = errors.New("wire: AVP length out of range")
	ErrNoMsgType    = errors.New("wire: first AVP is not Message Type")
	ErrHiddenNoRV   = errors.New("wire: hidden AVP without Random Vector")
	ErrHiddenLength = errors.New("wire: hidden AVP original length out of range")
)

// ParseHeader decodes the header at the start of b (for EncapIP, b starts
// at the 32-bit session ID that follows the IP header) and returns the
// header and the offset of the payload (first AVP of a control message;
// PPP frame of v2 data after the offset pad; first byte after the session
// ID of v3 data, where the cookie starts). It reads only the header.
func ParseHeader(b []byte, enc Encap) (Header, int, error) {
	return parseHeader(b, enc)
}

// AppendControlHeader appends a control header for version h.Version with
// T, L and S set (with the zero session ID first for EncapIP) and returns
// the new slice. The length field is patched by FinishControl.
func AppendControlHeader(b []byte, enc Encap, h Header) []byte {
	return appendControlHeader(b, enc, h)
}

// FinishControl patches the length field of the control message that
// starts at b[start:] (start is len(b) before AppendControlHeader).
func FinishControl(b []byte, start int, enc Encap) {
	finishControl(b, start, enc)
}

// NsNrOffset is where Ns (and Nr two bytes later) sit in an encoded
// control message, so the reliable channel can patch them in place.
func NsNrOffset(enc Encap) int {
	if enc == EncapIP {
		return 4 + 8
	}
	return 8
}

// AVPType is an AVP attribute type; with Vendor it names an AVP.
type AVPType uint16

// AVP is one attribute-value pair; Value is a view into the message
// buffer (still encrypted when Hidden).
type AVP struct {
	Mandatory bool
	Hidden    bool
	Vendor    uint32
	Type      AVPType
	Value     []byte
	// Extended is set when the AVP arrived in the RFC 3931 §5.1 Extended
	// Vendor ID form, so it re-encodes as it came.
	Extended bool
}

// MsgType is a control message type (RFC 2661 §3.2, RFC 3931 §3.1).
type MsgType uint16

// Message is a parsed control message. AVPs views b; Type is 0 for a ZLB.
type Message struct {
	Header Header
	Type   MsgType
	AVPs   []AVP
}

// ParseMessage parses a whole control message in place, appending AVP
// views to avps[:0] (pass the previous slice back to avoid allocation).
// A message whose first AVP is not Message Type, or whose AVPs overrun
// the packet, is an error; unknown AVPs are returned, Validate judges.
func ParseMessage(b []byte, enc Encap, avps []AVP) (Message, error) {
	return parseMessage(b, enc, avps)
}

// Find returns the first AVP of the given vendor and type.
func (m *Message) Find(vendor uint32, t AVPType) (AVP, bool) {
	for _, a := range m.AVPs {
		if a.Vendor == vendor && a.Type == t {
			return a, true
		}
	}
	return AVP{}, false
}

// AppendAVP appends one AVP (M bit as given, never hidden).
func AppendAVP(b []byte, mandatory bool, vendor uint32, t AVPType, value []byte) []byte {
	return appendAVP(b, mandatory, false, vendor, t, value)
}

// AppendAVPUint16 / AppendAVPUint32 append an AVP holding one big-endian number.
func AppendAVPUint16(b []byte, mandatory bool, vendor uint32, t AVPType, v uint16) []byte {
	var v2 [2]byte
	binary.BigEndian.PutUint16(v2[:], v)
	return appendAVP(b, mandatory, false, vendor, t, v2[:])
}
func AppendAVPUint32(b []byte, mandatory bool, vendor uint32, t AVPType, v uint32) []byte {
	var v4 [4]byte
	binary.BigEndian.PutUint32(v4[:], v)
	return appendAVP(b, mandatory, false, vendor, t, v4[:])
}

// AppendMessageType appends the Message Type AVP that opens every
// control message (always mandatory).
func AppendMessageType(b []byte, t MsgType) []byte {
	return AppendAVPUint16(b, true, VendorIETF, AVPMessageType, uint16(t))
}

// AppendHiddenAVP appends an AVP with the H bit set, its value hidden
// per RFC 2661 §4.3 with the shared secret and the Random Vector that
// precedes it in the message. pad is the number of random padding bytes
// to add after the value (taken from padding, which must be that long).
func AppendHiddenAVP(b []byte, mandatory bool, vendor uint32, t AVPType, value, secret, randomVector, padding []byte) []byte {
	return appendHiddenAVP(b, mandatory, vendor, t, value, secret, randomVector, padding)
}

// Unhide decrypts a hidden AVP value (RFC 2661 §4.3) appending the
// original value to dst. randomVector is the value of the most recent
// Random Vector AVP before this AVP in the message.
func Unhide(dst []byte, t AVPType, hidden, secret, randomVector []byte) ([]byte, error) {
	return unhide(dst, t, hidden, secret, randomVector)
}

// Unhide decrypts every hidden AVP of m in place of its view (the clear
// values are appended to scratch, which is returned for reuse); the AVPs
// lose their Hidden flag. Random Vector AVPs are tracked in message order.
// secret is the tunnel's shared secret: for an L2TPv3 message the hiding
// key HMAC-MD5(secret, 1) is derived from it (RFC 3931 §5.3).
func (m *Message) Unhide(secret, scratch []byte) ([]byte, error) {
	return m.unhide(secret, scratch)
}

// Action is what the receiver must do about a protocol error.
type Action uint8

const (
	ActionDrop    Action = iota // discard silently (counted)
	ActionStopCCN               // tear down the control connection
	ActionCDN                   // tear down the session
)

// ProtocolError is a message that cannot be accepted, with the answer
// the RFC requires (Result Code AVP values of RFC 2661 §4.4.2).
type ProtocolError struct {
	Action    Action
	Result    uint16
	ErrorCode uint16
	Msg       string
}

func (e *ProtocolError) Error() string {
	return e.error()
}

// Validate checks m against the message table for its version: known
// message type, required AVPs present, AVP lengths/kinds valid, unknown
// mandatory AVPs. Unknown AVPs without the M bit are accepted (skipped).
// It returns nil or a *ProtocolError.
//
// Hidden AVPs are checked for presence only (and for a Random Vector
// before them); their lengths are checked when Validate runs again after
// (*Message).Unhide. See validate for the rules in full.
func Validate(m *Message) error {
	return validate(m)
}
