package wire

import (
	"encoding/binary"
	"errors"
	"testing"
)

// RFC 2661 §3.1: control messages must have L and S set, O and P clear.
func TestV2ControlFlags(t *testing.T) {
	base := AppendControlHeader(nil, EncapUDP, Header{Version: 2, TunnelID: 1})
	FinishControl(base, 0, EncapUDP)
	for _, tc := range []struct {
		name       string
		clear, set uint16
	}{
		{"no L", FlagL, 0},
		{"no S", FlagS, 0},
		{"O set", 0, FlagO},
		{"P set", 0, FlagP},
	} {
		b := append([]byte(nil), base...)
		w := binary.BigEndian.Uint16(b)&^tc.clear | tc.set
		binary.BigEndian.PutUint16(b, w)
		if _, _, err := ParseHeader(b, EncapUDP); !errors.Is(err, ErrBadFlags) {
			t.Errorf("%s: %v, want ErrBadFlags", tc.name, err)
		}
	}
	if h, off, err := ParseHeader(base, EncapUDP); err != nil || off != 12 || !h.Control || h.TunnelID != 1 {
		t.Errorf("valid header: %+v %d %v", h, off, err)
	}
}

// RFC 2661 §3.1 data header: every optional field combination.
func TestV2DataHeader(t *testing.T) {
	// T=0 L=1 S=1 O=1 P=1, length 20, tunnel 7, session 9, Ns 1, Nr 2, offset 2 + 2 pad, payload "PP".
	b := []byte{0x4b, 0x02, 0x00, 20, 0, 7, 0, 9, 0, 1, 0, 2, 0, 2, 0xee, 0xee, 'P', 'P', 'x', 'x'}
	h, off, err := ParseHeader(b, EncapUDP)
	if err != nil {
		t.Fatal(err)
	}
	if h.Control || !h.HasLength || !h.HasSeq || !h.HasOffset || !h.Priority || h.Length != 20 ||
		h.TunnelID != 7 || h.SessionID != 9 || h.Ns != 1 || h.Nr != 2 || h.OffsetSize != 2 || off != 16 {
		t.Errorf("%+v off %d", h, off)
	}
	// No optional fields: 6 octets.
	d := AppendDataHeaderV2(nil, 0x0102, 0x0304)
	if h, off, err := ParseHeader(append(d, 0xff, 0x03), EncapUDP); err != nil || off != 6 || h.TunnelID != 0x0102 || h.SessionID != 0x0304 || h.HasLength {
		t.Errorf("plain data header %+v %d %v", h, off, err)
	}
	// The offset pad may not run past the packet, nor Length past the datagram.
	if _, _, err := ParseHeader([]byte{0x02, 0x02, 0, 1, 0, 1, 0, 9, 0}, EncapUDP); err == nil {
		t.Error("offset pad past the end accepted")
	}
	if _, _, err := ParseHeader([]byte{0x40, 0x02, 0, 99, 0, 1, 0, 1}, EncapUDP); !errors.Is(err, ErrBadLength) {
		t.Errorf("length past the end: %v", err)
	}
	for n := range 6 {
		if _, _, err := ParseHeader(d[:n], EncapUDP); err == nil {
			t.Errorf("%d-octet header accepted", n)
		}
	}
}

// RFC 3931 §3.2.1, §4.1.1.2 and §4.1.2.1: v3 control over UDP and IP, v3
// data over UDP and IP; Ns/Nr at NsNrOffset.
func TestV3Headers(t *testing.T) {
	for _, enc := range []Encap{EncapUDP, EncapIP} {
		b := AppendControlHeader([]byte("xx"), enc, Header{Version: 3, TunnelID: 0xdeadbeef, Ns: 0x0102, Nr: 0x0304})
		b = AppendMessageType(b, MsgHello)
		FinishControl(b, 2, enc)
		msg := b[2:]
		if enc == EncapIP && binary.BigEndian.Uint32(msg) != 0 {
			t.Fatal("IP control message without the zero session ID")
		}
		h, off, err := ParseHeader(msg, enc)
		if err != nil || !h.Control || h.Version != 3 || h.TunnelID != 0xdeadbeef || h.Length != 20 || h.Ns != 0x0102 || h.Nr != 0x0304 {
			t.Fatalf("enc %d: %+v %v", enc, h, err)
		}
		if want := NsNrOffset(enc) + 4; off != want {
			t.Errorf("enc %d: AVPs at %d, want %d", enc, off, want)
		}
		if binary.BigEndian.Uint16(msg[NsNrOffset(enc):]) != 0x0102 || binary.BigEndian.Uint16(msg[NsNrOffset(enc)+2:]) != 0x0304 {
			t.Errorf("enc %d: Ns/Nr not at NsNrOffset", enc)
		}
		d := AppendDataHeaderV3(nil, enc, 0x11223344)
		h, off, err = ParseHeader(append(d, 0xca, 0xfe), enc)
		if err != nil || h.Control || h.SessionID != 0x11223344 || off != len(d) {
			t.Errorf("enc %d data: %+v %d %v", enc, h, off, err)
		}
	}
	// v2 Ns/Nr sit at the same place.
	b := AppendControlHeader(nil, EncapUDP, Header{Version: 2, Ns: 5, Nr: 6})
	if binary.BigEndian.Uint16(b[NsNrOffset(EncapUDP):]) != 5 {
		t.Error("v2 Ns not at NsNrOffset")
	}
	// v3 control without L or S.
	bad := []byte{0x80, 0x03, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0}
	if _, _, err := ParseHeader(bad, EncapUDP); !errors.Is(err, ErrBadFlags) {
		t.Errorf("v3 control without L/S: %v", err)
	}
}

// RFC 2661 §4.4.1 / RFC 3931 §4.7.3: an unknown version is reported with
// the version so the tunnel layer can answer an SCCRQ.
func TestVersionError(t *testing.T) {
	b := []byte{0xc8, 0x01, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0} // L2F-style version 1
	_, _, err := ParseHeader(b, EncapUDP)
	var ve *VersionError
	if !errors.Is(err, ErrVersion) || !errors.As(err, &ve) || ve.Version != 1 {
		t.Fatalf("%v", err)
	}
	if v, ok := VersionOf(b, EncapUDP); !ok || v != 1 {
		t.Errorf("VersionOf = %d %v", v, ok)
	}
	// Over IP only v3 exists.
	ip := append([]byte{0, 0, 0, 0}, 0xc8, 0x02, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0)
	if _, _, err := ParseHeader(ip, EncapIP); !errors.As(err, &ve) || ve.Version != 2 {
		t.Errorf("v2 over IP: %v", err)
	}
	if v, ok := VersionOf(ip, EncapIP); !ok || v != 2 {
		t.Errorf("VersionOf over IP = %d %v", v, ok)
	}
	if _, ok := VersionOf([]byte{0xc8}, EncapUDP); ok {
		t.Error("VersionOf of one octet")
	}
	if n := testing.AllocsPerRun(100, func() { _, _, _ = ParseHeader(b, EncapUDP) }); n != 0 {
		t.Errorf("version error allocates %v", n)
	}
}

func TestParseMessageErrors(t *testing.T) {
	msg := func(avps ...byte) []byte {
		b := AppendControlHeader(nil, EncapUDP, Header{Version: 2})
		b = append(b, avps...)
		FinishControl(b, 0, EncapUDP)
		return b
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		// RFC 2661 §4.1: AVP length below 6 or past the message.
		{"AVP length 5", msg(0x80, 5, 0, 0, 0, 0, 0, 1), ErrAVPLength},
		{"AVP past end", msg(0x80, 9, 0, 0, 0, 0, 0, 1), ErrAVPLength},
		{"trailing octets", msg(0x80, 8, 0, 0, 0, 0, 0, 1, 0, 0), ErrAVPLength},
		// RFC 2661 §4.4.1: Message Type first, 8 octets, never hidden.
		{"first AVP not Message Type", msg(0x80, 8, 0, 0, 0, 9, 0, 1), ErrNoMsgType},
		{"hidden Message Type", msg(0xc0, 8, 0, 0, 0, 0, 0, 1), ErrNoMsgType},
		{"Message Type length 7", msg(0x80, 7, 0, 0, 0, 0, 0), ErrNoMsgType},
		{"data message", AppendDataHeaderV2(nil, 1, 1), ErrNotControl},
	}
	for _, c := range cases {
		if _, err := ParseMessage(c.b, EncapUDP, nil); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// The Length field bounds the message: octets after it are not AVPs.
	b := append(msg(0x80, 8, 0, 0, 0, 0, 0, 6), 0xff, 0xff)
	if m, err := ParseMessage(b, EncapUDP, nil); err != nil || len(m.AVPs) != 1 || m.Type != MsgHello {
		t.Errorf("trailing octets after Length: %+v %v", m, err)
	}
}

// An extended-vendor AVP (RFC 3931 §5.1) shorter than its 12-octet header.
func TestExtendedVendorShort(t *testing.T) {
	var a AVP
	if _, err := parseAVP([]byte{0, 10, 0, 0, 0, 58, 0, 0, 0, 1}, &a); !errors.Is(err, ErrAVPLength) {
		t.Errorf("%v", err)
	}
	b := AppendAVP(nil, false, 0x10000, 7, []byte("v"))
	want := []byte{0, 13, 0, 0, 0, 58, 0, 1, 0, 0, 0, 7, 'v'}
	if string(b) != string(want) {
		t.Errorf("extended AVP % x, want % x", b, want)
	}
	if n, err := parseAVP(b, &a); err != nil || n != 13 || a.Vendor != 0x10000 || a.Type != 7 || string(a.Value) != "v" {
		t.Errorf("parsed %+v %d %v", a, n, err)
	}
}
