package wire

import (
	"encoding/binary"
	"errors"
)

// ErrValue is returned by the value accessors when a value does not have
// the size or shape its AVP type requires.
var ErrValue = errors.New("wire: AVP value has the wrong size")

// Uint16 returns the value of a 2-octet AVP.
func (a AVP) Uint16() (uint16, error) {
	if a.Hidden || len(a.Value) != 2 {
		return 0, ErrValue
	}
	return binary.BigEndian.Uint16(a.Value), nil
}

// Uint32 returns the value of a 4-octet AVP.
func (a AVP) Uint32() (uint32, error) {
	if a.Hidden || len(a.Value) != 4 {
		return 0, ErrValue
	}
	return binary.BigEndian.Uint32(a.Value), nil
}

// Uint64 returns the value of an 8-octet AVP (Tie Breaker, RFC 3931
// Tx/Rx Connect Speed).
func (a AVP) Uint64() (uint64, error) {
	if a.Hidden || len(a.Value) != 8 {
		return 0, ErrValue
	}
	return binary.BigEndian.Uint64(a.Value), nil
}

// ProtocolVersionV2 is the Protocol Version AVP value of L2TPv2: version
// 1, revision 0 (RFC 2661 §4.4.3).
const ProtocolVersionV2 uint16 = 0x0100

// ParseProtocolVersion splits a Protocol Version value into version and
// revision (RFC 2661 §4.4.3).
func ParseProtocolVersion(v []byte) (ver, rev uint8, err error) {
	if len(v) != 2 {
		return 0, 0, ErrValue
	}
	return v[0], v[1], nil
}

// AppendResultCode appends a Result Code AVP (RFC 2661 §4.4.2, RFC 3931
// §5.4.2). The Error Code is written when errCode is non-zero or msg is
// not empty; the message follows it.
func AppendResultCode(b []byte, mandatory bool, result, errCode uint16, msg string) []byte {
	n := 2
	if errCode != 0 || msg != "" {
		n += 2 + len(msg)
	}
	b = appendAVPHeader(b, mandatory, false, VendorIETF, AVPResultCode, n)
	b = binary.BigEndian.AppendUint16(b, result)
	if n > 2 {
		b = binary.BigEndian.AppendUint16(b, errCode)
		b = append(b, msg...)
	}
	return b
}

// ParseResultCode splits a Result Code value; msg views v.
func ParseResultCode(v []byte) (result, errCode uint16, msg []byte, err error) {
	switch {
	case len(v) == 2:
		return binary.BigEndian.Uint16(v), 0, nil, nil
	case len(v) >= 4:
		return binary.BigEndian.Uint16(v), binary.BigEndian.Uint16(v[2:]), v[4:], nil
	}
	return 0, 0, nil, ErrValue
}

// AppendQ931Cause appends a Q.931 Cause Code AVP (RFC 2661 §4.4.2): the
// cause code, the cause message octet and an optional advisory text.
func AppendQ931Cause(b []byte, mandatory bool, code uint16, msg uint8, advisory string) []byte {
	b = appendAVPHeader(b, mandatory, false, VendorIETF, AVPQ931Cause, 3+len(advisory))
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, msg)
	return append(b, advisory...)
}

// ParseQ931Cause splits a Q.931 Cause Code value; advisory views v.
func ParseQ931Cause(v []byte) (code uint16, msg uint8, advisory []byte, err error) {
	if len(v) < 3 {
		return 0, 0, nil, ErrValue
	}
	return binary.BigEndian.Uint16(v), v[2], v[3:], nil
}

// PPPDisconnectCause is the value of the PPP Disconnect Cause Code AVP
// (RFC 3145 §2). Msg views the parsed buffer.
type PPPDisconnectCause struct {
	Code      uint16
	Protocol  uint16 // PPP control protocol number, 0 for global errors
	Direction uint8  // 0 global, 1 at peer, 2 at local
	Msg       []byte
}

// ParsePPPDisconnectCause decodes an RFC 3145 value.
func ParsePPPDisconnectCause(v []byte) (PPPDisconnectCause, error) {
	var c PPPDisconnectCause
	err := c.Parse(v)
	return c, err
}

// Parse decodes an RFC 3145 value into c.
func (c *PPPDisconnectCause) Parse(v []byte) error {
	if len(v) < 5 {
		return ErrValue
	}
	c.Code = binary.BigEndian.Uint16(v)
	c.Protocol = binary.BigEndian.Uint16(v[2:])
	c.Direction = v[4]
	c.Msg = v[5:]
	return nil
}

// Append appends the PPP Disconnect Cause Code AVP; RFC 3145 §2 requires
// the M bit clear.
func (c PPPDisconnectCause) Append(b []byte) []byte {
	b = appendAVPHeader(b, false, false, VendorIETF, AVPPPPDisconnectCause, 5+len(c.Msg))
	b = binary.BigEndian.AppendUint16(b, c.Code)
	b = binary.BigEndian.AppendUint16(b, c.Protocol)
	b = append(b, c.Direction)
	return append(b, c.Msg...)
}

// CallErrors is the value of the Call Errors AVP (RFC 2661 §4.4.6,
// Circuit Errors in RFC 3931 §5.4.5).
type CallErrors struct {
	CRCErrors, FramingErrors, HardwareOverruns, BufferOverruns, TimeoutErrors, AlignmentErrors uint32
}

// ParseCallErrors decodes a Call Errors value (2 reserved octets and six
// 32-bit counters).
func ParseCallErrors(v []byte) (CallErrors, error) {
	if len(v) != 26 {
		return CallErrors{}, ErrValue
	}
	u := func(i int) uint32 { return binary.BigEndian.Uint32(v[2+4*i:]) }
	return CallErrors{u(0), u(1), u(2), u(3), u(4), u(5)}, nil
}

// Append appends a Call Errors AVP.
func (c CallErrors) Append(b []byte, mandatory bool) []byte {
	b = appendAVPHeader(b, mandatory, false, VendorIETF, AVPCallErrors, 26)
	b = append(b, 0, 0)
	for _, n := range [...]uint32{c.CRCErrors, c.FramingErrors, c.HardwareOverruns, c.BufferOverruns, c.TimeoutErrors, c.AlignmentErrors} {
		b = binary.BigEndian.AppendUint32(b, n)
	}
	return b
}

// ParseACCM decodes an ACCM value (RFC 2661 §4.4.6): 2 reserved octets,
// the send and the receive ACCM.
func ParseACCM(v []byte) (send, recv uint32, err error) {
	if len(v) != 10 {
		return 0, 0, ErrValue
	}
	return binary.BigEndian.Uint32(v[2:]), binary.BigEndian.Uint32(v[6:]), nil
}

// AppendACCM appends an ACCM AVP.
func AppendACCM(b []byte, mandatory bool, send, recv uint32) []byte {
	b = appendAVPHeader(b, mandatory, false, VendorIETF, AVPACCM, 10)
	b = append(b, 0, 0)
	b = binary.BigEndian.AppendUint32(b, send)
	return binary.BigEndian.AppendUint32(b, recv)
}
