package wire

import (
	"bytes"
	"testing"
)

// Seeds besides the files under testdata/fuzz (which hold every message
// of the captures).
func fuzzSeeds(f *testing.F) {
	b := AppendControlHeader(nil, EncapUDP, Header{Version: 2, TunnelID: 1})
	b = AppendMessageType(b, MsgICRQ)
	b = AppendAVP(b, true, VendorIETF, AVPRandomVector, []byte("rv"))
	b = AppendHiddenAVP(b, true, VendorIETF, AVPAssignedSessionID, []byte{0, 1}, []byte("fuzz"), []byte("rv"), []byte{7})
	b = AppendAVP(b, false, 0x123456, 1, []byte("ext"))
	FinishControl(b, 0, EncapUDP)
	f.Add(b, uint8(EncapUDP))
	c := AppendControlHeader(nil, EncapIP, Header{Version: 3, TunnelID: 1})
	c = AppendMessageType(c, MsgHello)
	c, _ = AppendMessageDigestAVP(c, true)
	FinishControl(c, 0, EncapIP)
	f.Add(c, uint8(EncapIP))
}

func FuzzParseHeader(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte, e uint8) {
		enc := Encap(e & 1)
		h, off, err := ParseHeader(b, enc)
		v, ok := VersionOf(b, enc)
		if err != nil {
			return
		}
		if off < 0 || off > len(b) {
			t.Fatalf("payload offset %d of %d octets", off, len(b))
		}
		if !ok || v != h.Version {
			t.Fatalf("VersionOf %d %v, header version %d", v, ok, h.Version)
		}
		if h.Control {
			end := int(h.Length)
			if enc == EncapIP {
				end += 4
			}
			if end > len(b) || off > end {
				t.Fatalf("control length %d, offset %d, %d octets", h.Length, off, len(b))
			}
		}
	})
}

func FuzzParseMessage(f *testing.F) {
	fuzzSeeds(f)
	secret := []byte("fuzz")
	f.Fuzz(func(t *testing.T, b []byte, e uint8) {
		enc := Encap(e & 1)
		m, err := ParseMessage(b, enc, nil)
		if err != nil {
			return
		}
		_ = Validate(&m)
		// Re-encoding the parsed AVPs gives the message back.
		again := reencode(&m, enc)
		m2, err := ParseMessage(again, enc, nil)
		if err != nil {
			t.Fatalf("re-encoded message does not parse: %v\n%x", err, again)
		}
		if !sameMessage(&m, &m2) {
			t.Fatalf("re-parse differs\n%+v\n%+v", m, m2)
		}
		if want, ok := canonical(b[:controlMessageLen(&m, enc)], enc); ok && !bytes.Equal(again, want) {
			t.Fatalf("re-encoded\n%x\nwant\n%x", again, want)
		}
		if _, err := m.Unhide(secret, nil); err == nil {
			_ = Validate(&m)
		}
		_ = VerifyDigest(b, enc, secret)
	})
}

// canonical returns a parsed control message with the bits the codec
// ignores cleared (reserved header flag bits, reserved AVP bits), which is
// what re-encoding must give back.
func canonical(msg []byte, enc Encap) ([]byte, bool) {
	c := append([]byte(nil), msg...)
	h := c
	if enc == EncapIP {
		h = c[4:]
	}
	h[0] &= 0x88 // T, S (L is bit 1)
	h[0] |= 0x40
	h[1] &= 0x0f
	for p := 12; p < len(h); {
		h[p] &= 0xc3 // M, H and the length bits
		n := int(h[p]&0x03)<<8 | int(h[p+1])
		p += n
	}
	return c, true
}

func sameMessage(a, b *Message) bool {
	if a.Header != b.Header || a.Type != b.Type || len(a.AVPs) != len(b.AVPs) {
		return false
	}
	for i := range a.AVPs {
		x, y := a.AVPs[i], b.AVPs[i]
		if x.Mandatory != y.Mandatory || x.Hidden != y.Hidden || x.Extended != y.Extended || x.Vendor != y.Vendor || x.Type != y.Type || !bytes.Equal(x.Value, y.Value) {
			return false
		}
	}
	return true
}
