package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"testing"
)

// RFC 2661 §4.3, written out block by block: an Assigned Tunnel ID of
// 0x1234 hidden with 20 octets of padding, so the 24-octet subformat
// takes two MD5 blocks.
func TestHiddenAVPHandVector(t *testing.T) {
	secret := []byte("foo")
	rv := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10}
	padding := bytes.Repeat([]byte{0xaa}, 20)

	// Hidden AVP subformat: original length (2), value, padding.
	sub := append([]byte{0x00, 0x02, 0x12, 0x34}, padding...)

	// b1 = MD5(attribute type + secret + random vector); c1 = p1 xor b1.
	b1 := md5.Sum(append(append([]byte{0x00, 0x09}, secret...), rv...))
	c1 := make([]byte, 16)
	for i := range c1 {
		c1[i] = sub[i] ^ b1[i]
	}
	// b2 = MD5(secret + c1); c2 = p2 xor b2 (only 8 octets remain).
	b2 := md5.Sum(append(append([]byte{}, secret...), c1...))
	c2 := make([]byte, 8)
	for i := range c2 {
		c2[i] = sub[16+i] ^ b2[i]
	}
	// M and H set, length 6 + 24 = 30, vendor 0, type 9.
	want := append([]byte{0xc0, 30, 0x00, 0x00, 0x00, 0x09}, append(c1, c2...)...)

	got := AppendHiddenAVP(nil, true, VendorIETF, AVPAssignedTunnelID, []byte{0x12, 0x34}, secret, rv, padding)
	if !bytes.Equal(got, want) {
		t.Fatalf("hidden AVP\n%x\nwant\n%x", got, want)
	}
	plain, err := Unhide(nil, AVPAssignedTunnelID, want[6:], secret, rv)
	if err != nil || !bytes.Equal(plain, []byte{0x12, 0x34}) {
		t.Fatalf("Unhide = %x, %v", plain, err)
	}
}

// RFC 2661 §4.3 round trip over value and padding lengths that cross
// the 16-octet block boundaries; a wrong secret gives another value (or a
// length error), never the original.
func TestHiddenRoundTrip(t *testing.T) {
	secret := []byte("s3cret")
	rv := []byte("random vector!")
	for n := 0; n <= 70; n += 7 {
		for pad := 0; pad <= 17; pad += 5 {
			v := bytes.Repeat([]byte{byte(n)}, n)
			b := AppendHiddenAVP([]byte("prefix"), false, VendorIETF, AVPProxyAuthenName, v, secret, rv, make([]byte, pad))
			var a AVP
			if _, err := parseAVP(b[6:], &a); err != nil || !a.Hidden || a.Mandatory || len(a.Value) != 2+n+pad {
				t.Fatalf("n=%d pad=%d: %+v %v", n, pad, a, err)
			}
			got, err := Unhide([]byte("dst"), AVPProxyAuthenName, a.Value, secret, rv)
			if err != nil || !bytes.Equal(got, append([]byte("dst"), v...)) {
				t.Fatalf("n=%d pad=%d: Unhide %x %v", n, pad, got, err)
			}
			if n > 0 {
				bad, err := Unhide(nil, AVPProxyAuthenName, a.Value, []byte("wrong"), rv)
				if err == nil && bytes.Equal(bad, v) {
					t.Fatalf("n=%d: wrong secret unhid the value", n)
				}
			}
		}
	}
}

// (*Message).Unhide uses the Random Vector closest before each hidden
// AVP (RFC 2661 §4.3) and, for L2TPv3, the key HMAC-MD5(secret, 1)
// (RFC 3931 §5.3).
func TestMessageUnhide(t *testing.T) {
	secret := []byte("shared")
	for _, ver := range []uint8{2, 3} {
		key := HidingKey(ver, secret)
		b := AppendControlHeader(nil, EncapUDP, Header{Version: ver})
		b = AppendMessageType(b, MsgICRQ)
		b = AppendAVP(b, true, VendorIETF, AVPRandomVector, []byte("first vector"))
		b = AppendHiddenAVP(b, true, VendorIETF, AVPCallingNumber, []byte("5551234"), key, []byte("first vector"), nil)
		b = AppendAVP(b, true, VendorIETF, AVPRandomVector, []byte("second vector"))
		b = AppendHiddenAVP(b, true, VendorIETF, AVPCalledNumber, []byte("5559876"), key, []byte("second vector"), []byte{1, 2, 3})
		FinishControl(b, 0, EncapUDP)
		m, err := ParseMessage(b, EncapUDP, nil)
		if err != nil {
			t.Fatal(err)
		}
		scratch, err := m.Unhide(secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(scratch) != 14 {
			t.Errorf("scratch holds %d octets", len(scratch))
		}
		a1, _ := m.Find(VendorIETF, AVPCallingNumber)
		a2, _ := m.Find(VendorIETF, AVPCalledNumber)
		if string(a1.Value) != "5551234" || string(a2.Value) != "5559876" || a1.Hidden || a2.Hidden {
			t.Errorf("v%d: unhid %q %q", ver, a1.Value, a2.Value)
		}
	}
	if k := HidingKey(3, secret); func() bool {
		mac := hmac.New(md5.New, secret)
		mac.Write([]byte{1})
		return !bytes.Equal(k, mac.Sum(nil))
	}() {
		t.Error("v3 hiding key is not HMAC-MD5(secret, 1)")
	}
}

func TestUnhideErrors(t *testing.T) {
	// RFC 2661 §4.3: a Random Vector must precede the first hidden AVP.
	b := AppendControlHeader(nil, EncapUDP, Header{Version: 2})
	b = AppendMessageType(b, MsgICRP)
	b = AppendHiddenAVP(b, true, VendorIETF, AVPAssignedSessionID, []byte{0, 1}, []byte("k"), []byte("rv"), nil)
	FinishControl(b, 0, EncapUDP)
	m, err := ParseMessage(b, EncapUDP, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Unhide([]byte("k"), nil); !errors.Is(err, ErrHiddenNoRV) {
		t.Errorf("Unhide without Random Vector: %v", err)
	}
	var pe *ProtocolError
	if err := Validate(&m); !errors.As(err, &pe) || pe.Action != ActionCDN {
		t.Errorf("Validate hidden AVP without Random Vector: %v", err)
	}
	// An original length beyond the value.
	if _, err := Unhide(nil, 1, []byte{0x00}, nil, nil); !errors.Is(err, ErrHiddenLength) {
		t.Errorf("1-octet hidden value: %v", err)
	}
	enc := AppendHiddenAVP(nil, false, 0, 1, []byte{9, 9}, []byte("k"), []byte("rv"), nil)[6:]
	if _, err := Unhide(nil, 1, enc[:3], []byte("k"), []byte("rv")); !errors.Is(err, ErrHiddenLength) {
		t.Errorf("truncated hidden value: %v", err)
	}
}
