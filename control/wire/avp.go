package wire

import "encoding/binary"

// AVP header layout (RFC 2661 §4.1, RFC 3931 §5.1).
const (
	avpFlagM      = 0x8000
	avpFlagH      = 0x4000
	avpLenMask    = 0x03ff
	avpHeaderLen  = 6
	extHeaderLen  = 12 // Extended Vendor ID AVP: header, 32-bit vendor, type
	maxAVPLen     = avpLenMask
	MaxAVPValue   = maxAVPLen - avpHeaderLen // longest value AppendAVP accepts for a 16-bit vendor
	maxExtValue   = maxAVPLen - extHeaderLen
	msgTypeAVPLen = 8
)

func parseMessage(b []byte, enc Encap, avps []AVP) (Message, error) {
	h, off, err := parseHeader(b, enc)
	if err != nil {
		return Message{Header: h, AVPs: avps[:0]}, err
	}
	m := Message{Header: h, AVPs: avps[:0]}
	if !h.Control {
		return m, ErrNotControl
	}
	base := 0
	if enc == EncapIP {
		base = ipSessionIDLen
	}
	body := b[off : base+int(h.Length)]
	for len(body) > 0 {
		var a AVP
		n, err := parseAVP(body, &a)
		if err != nil {
			return m, err
		}
		if len(m.AVPs) == 0 {
			// RFC 2661 §4.4.1, RFC 3931 §5.4.1: Message Type first, never hidden.
			if a.Type != AVPMessageType || a.Hidden || len(a.Value) != 2 || n != msgTypeAVPLen {
				return m, ErrNoMsgType
			}
			m.Type = MsgType(binary.BigEndian.Uint16(a.Value))
		}
		m.AVPs = append(m.AVPs, a)
		body = body[n:]
	}
	return m, nil
}

// parseAVP decodes the AVP at b[0] into a and returns its encoded length.
// An Extended Vendor ID AVP (RFC 3931 §5.1, type 58) is returned with its
// 32-bit vendor and inner attribute type.
func parseAVP(b []byte, a *AVP) (int, error) {
	if len(b) < avpHeaderLen {
		return 0, ErrAVPLength
	}
	w := binary.BigEndian.Uint16(b)
	n := int(w & avpLenMask)
	if n < avpHeaderLen || n > len(b) {
		return 0, ErrAVPLength
	}
	a.Mandatory = w&avpFlagM != 0
	a.Hidden = w&avpFlagH != 0
	a.Vendor = uint32(binary.BigEndian.Uint16(b[2:]))
	a.Type = AVPType(binary.BigEndian.Uint16(b[4:]))
	a.Value = b[avpHeaderLen:n:n]
	if a.Vendor == VendorIETF && a.Type == AVPExtendedVendorID {
		if n < extHeaderLen {
			return 0, ErrAVPLength
		}
		a.Vendor = binary.BigEndian.Uint32(b[6:])
		a.Type = AVPType(binary.BigEndian.Uint16(b[10:]))
		a.Extended = true
		a.Value = b[extHeaderLen:n:n]
	}
	return n, nil
}

// extended reports whether an AVP of this vendor must be written in the
// RFC 3931 §5.1 Extended Vendor ID form.
func extended(vendor uint32) bool { return vendor > 0xffff }

func appendAVPHeader(b []byte, mandatory, hidden bool, vendor uint32, t AVPType, valueLen int) []byte {
	return appendAVPHeaderForm(b, mandatory, hidden, vendor, t, valueLen, extended(vendor))
}

func appendAVPHeaderForm(b []byte, mandatory, hidden bool, vendor uint32, t AVPType, valueLen int, ext bool) []byte {
	hdr := avpHeaderLen
	limit := MaxAVPValue
	if ext {
		hdr = extHeaderLen
		limit = maxExtValue
	}
	if valueLen > limit {
		panic("wire: AVP value longer than 1023 bytes with its header")
	}
	w := uint16(hdr + valueLen)
	if mandatory {
		// RFC 3931 §5.1 wants M=0 on the Extended Vendor ID AVP; the bit is
		// still written as given so that a received AVP re-encodes as it was.
		w |= avpFlagM
	}
	if hidden {
		w |= avpFlagH
	}
	b = binary.BigEndian.AppendUint16(b, w)
	if ext {
		b = append(b, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(AVPExtendedVendorID))
		b = binary.BigEndian.AppendUint32(b, vendor)
		return binary.BigEndian.AppendUint16(b, uint16(t))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(vendor))
	return binary.BigEndian.AppendUint16(b, uint16(t))
}

func appendAVP(b []byte, mandatory, hidden bool, vendor uint32, t AVPType, value []byte) []byte {
	b = appendAVPHeader(b, mandatory, hidden, vendor, t, len(value))
	return append(b, value...)
}

// AppendAVPs re-encodes parsed AVPs exactly as received (M and H bits,
// hidden values untouched, the Extended Vendor ID form kept). Together
// with AppendControlHeader and FinishControl it reproduces a parsed
// message byte for byte.
func AppendAVPs(b []byte, avps []AVP) []byte {
	for _, a := range avps {
		b = appendAVPHeaderForm(b, a.Mandatory, a.Hidden, a.Vendor, a.Type, len(a.Value), a.Extended || extended(a.Vendor))
		b = append(b, a.Value...)
	}
	return b
}

// AppendAVPUint64 appends an AVP holding one big-endian 64-bit number
// (Tie Breaker, RFC 3931 Tx/Rx Connect Speed).
func AppendAVPUint64(b []byte, mandatory bool, vendor uint32, t AVPType, v uint64) []byte {
	var v8 [8]byte
	binary.BigEndian.PutUint64(v8[:], v)
	return appendAVP(b, mandatory, false, vendor, t, v8[:])
}

// AppendAVPString appends an AVP whose value is s (Host Name, Vendor
// Name, numbers, Remote End ID).
func AppendAVPString(b []byte, mandatory bool, vendor uint32, t AVPType, s string) []byte {
	b = appendAVPHeader(b, mandatory, false, vendor, t, len(s))
	return append(b, s...)
}

// AppendAVPEmpty appends an AVP with no value (Sequencing Required).
func AppendAVPEmpty(b []byte, mandatory bool, vendor uint32, t AVPType) []byte {
	return appendAVPHeader(b, mandatory, false, vendor, t, 0)
}
