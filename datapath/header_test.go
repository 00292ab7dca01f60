package datapath

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"
)

// RFC 2661 §3.1: the data messages of the nb6 capture, both directions,
// with and without the Offset and Priority bits.
func TestParseV2Captures(t *testing.T) {
	type want struct {
		tunnel, session uint32
		priority        bool
		offset          bool
		proto           uint16
	}
	lnsToLAC := want{tunnel: 18994, session: 54110, offset: true, proto: ProtoIPv6}
	lacToLNS := want{tunnel: 1527, session: 8298, proto: ProtoIPv6}
	echo := want{tunnel: 18994, session: 54110, offset: true, priority: true, proto: 0xc021}
	cases := []struct {
		file string
		want []want
	}{
		{"l2tpv2-in-pppoe-nb6-offset-priority.pcap", []want{echo, lacToLNS, lacToLNS, lnsToLAC}},
		{"l2tpv2-in-pppoe-nb6-http.pcap", nil}, // by direction
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			ds := readCapture(t, c.file)
			if c.want == nil {
				for _, d := range ds {
					// 109.6.1.72 sends with the LNS's IDs (the Offset
					// bit set), 95.136.242.99 with the LAC's.
					if d.src.Addr().String() == "109.6.1.72" {
						c.want = append(c.want, lnsToLAC)
					} else {
						c.want = append(c.want, lacToLNS)
					}
				}
			}
			if len(ds) != len(c.want) || len(ds) == 0 {
				t.Fatalf("%d datagrams, want %d", len(ds), len(c.want))
			}
			for i, d := range ds {
				w := c.want[i]
				if ctl, ver, ok := Classify(d.b); !ok || ctl || ver != 2 {
					t.Fatalf("frame %d: Classify = %v %d %v", d.frame, ctl, ver, ok)
				}
				h, payload, err := ParseV2(d.b)
				if err != nil {
					t.Fatalf("frame %d: %v", d.frame, err)
				}
				if h.Tunnel != w.tunnel || h.Session != w.session || h.Priority != w.priority || h.HasOffset != w.offset || h.Sequenced || h.HasLength {
					t.Errorf("frame %d: header %+v, want %+v", d.frame, h, w)
				}
				proto, info, ok := ParsePPP(payload)
				if !ok || proto != w.proto {
					t.Errorf("frame %d: PPP protocol %#04x ok=%v, want %#04x", d.frame, proto, ok, w.proto)
				}
				if proto == ProtoIPv6 {
					// The IPv6 payload length accounts for the rest of the frame.
					if info[0]>>4 != 6 || int(binary.BigEndian.Uint16(info[4:]))+40 != len(info) {
						t.Errorf("frame %d: IPv6 packet of %d bytes does not match its header", d.frame, len(info))
					}
				}
				if proto == 0xc021 && info[0] != 9 { // LCP Echo-Request, RFC 1661 §5.8
					t.Errorf("frame %d: LCP code %d, want Echo-Request", d.frame, info[0])
				}
			}
		})
	}
}

// RFC 2661 §3.1: the Cisco LNS and the Windows LAC set the L bit; the
// Length field covers the whole message.
func TestParseV2LengthCapture(t *testing.T) {
	n := 0
	for _, d := range readCapture(t, "l2tpv2-windows-lac-cisco-lns-tunnelauth-pap.pcap") {
		if ctl, _, _ := Classify(d.b); ctl {
			continue
		}
		h, payload, err := ParseV2(d.b)
		if err != nil {
			t.Fatalf("frame %d: %v", d.frame, err)
		}
		if !h.HasLength || int(h.Length) != len(d.b) || h.Sequenced {
			t.Fatalf("frame %d: %+v for %d bytes", d.frame, h, len(d.b))
		}
		if _, _, ok := ParsePPP(payload); !ok {
			t.Fatalf("frame %d: PPP frame % x", d.frame, payload[:4])
		}
		n++
	}
	if n != 150 { // tshark: 150 data messages in the file
		t.Fatalf("%d data messages, want 150", n)
	}
}

// RFC 3931 §4.1.2.1 and §4.6: Linux static sessions with no cookie, 4- and
// 8-byte cookies and the default L2-specific sublayer. The payload is an
// Ethernet frame (these are Ethernet pseudowires).
func TestParseV3Captures(t *testing.T) {
	cases := []struct {
		file   string
		cookie []byte
		l2ss   bool
	}{
		{"l2tpv3-linux-static-v3-01.pcap", nil, false},
		{"l2tpv3-linux-static-v3-02.pcap", []byte{0xca, 0xfe, 0xba, 0xbe}, false},
		{"l2tpv3-linux-static-v3-03.pcap", []byte{0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe}, false},
		{"l2tpv3-linux-static-v3-04.pcap", []byte{0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe}, true},
		{"l2tpv3-linux-static-v3-10.pcap", []byte{0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe}, true},
		{"l2tpv3-linux-static-v3-11.pcap", []byte{0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe}, true},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			ds := readCapture(t, c.file)
			if len(ds) != 10 {
				t.Fatalf("%d datagrams, want 10", len(ds))
			}
			for _, d := range ds {
				if ctl, ver, ok := Classify(d.b); !ok || ctl || ver != 3 {
					t.Fatalf("frame %d: Classify = %v %d %v", d.frame, ctl, ver, ok)
				}
				h, payload, err := ParseV3(d.b, len(c.cookie), c.l2ss)
				if err != nil {
					t.Fatalf("frame %d: %v", d.frame, err)
				}
				if h.Session != 1 || !bytes.Equal(h.Cookie, c.cookie) || h.L2SS != c.l2ss || h.Sequenced {
					t.Errorf("frame %d: %+v", d.frame, h)
				}
				if et := binary.BigEndian.Uint16(payload[12:]); et != 0x0800 {
					t.Errorf("frame %d: EtherType %#04x, want IPv4", d.frame, et)
				}
			}
		})
	}
}

// RFC 2661 §3.1: every optional field, encoded and parsed back.
func TestV2RoundTrip(t *testing.T) {
	payload := []byte{0xff, 0x03, 0x00, 0x21, 0x45}
	for _, h := range []Header{
		{Tunnel: 1, Session: 2},
		{HasLength: true, Tunnel: 0xffff, Session: 0xfffe},
		{Sequenced: true, Ns: 0xfff0, Nr: 7, Tunnel: 3, Session: 4},
		{HasOffset: true, Offset: 3, Priority: true, Tunnel: 5, Session: 6},
		{HasLength: true, Sequenced: true, Ns: 1, Nr: 2, HasOffset: true, Offset: 0, Priority: true, Tunnel: 7, Session: 8},
	} {
		h.Version = 2
		b := AppendV2([]byte("prefix"), h, payload)[len("prefix"):]
		if h.HasLength {
			h.Length = uint16(len(b))
		}
		got, gotPayload, err := ParseV2(b)
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if !reflect.DeepEqual(got, h) || !bytes.Equal(gotPayload, payload) {
			t.Errorf("round trip of %+v: %+v % x", h, got, gotPayload)
		}
	}
}

// RFC 3931 §4.1.2.1, §4.6: cookies of each allowed length, with and
// without the sublayer and its S bit.
func TestV3RoundTrip(t *testing.T) {
	payload := []byte{0xff, 0x03, 0x00, 0x57, 0x60}
	for _, h := range []Header{
		{Session: 0xdeadbeef},
		{Session: 1, Cookie: []byte{1, 2, 3, 4}},
		{Session: 2, Cookie: []byte{1, 2, 3, 4, 5, 6, 7, 8}, L2SS: true},
		{Session: 3, Cookie: []byte{9, 9, 9, 9}, L2SS: true, Sequenced: true, Ns: 0xabcdef},
	} {
		h.Version = 3
		b := AppendV3(nil, h, payload)
		got, gotPayload, err := ParseV3(b, len(h.Cookie), h.L2SS)
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if len(h.Cookie) == 0 {
			h.Cookie = []byte{}
		}
		if !reflect.DeepEqual(got, h) || !bytes.Equal(gotPayload, payload) {
			t.Errorf("round trip of %+v: %+v % x", h, got, gotPayload)
		}
	}
}

// Captured messages parse, re-encode and parse again to the same header
// and payload.
func TestCaptureRoundTrip(t *testing.T) {
	for _, f := range []string{"l2tpv2-in-pppoe-nb6-offset-priority.pcap", "l2tpv2-windows-lac-cisco-lns-tunnelauth-pap.pcap"} {
		for _, d := range readCapture(t, f) {
			if ctl, _, _ := Classify(d.b); ctl {
				continue
			}
			h, p, err := ParseV2(d.b)
			if err != nil {
				t.Fatal(err)
			}
			checkV2RoundTrip(t, h, p)
		}
	}
	for _, d := range readCapture(t, "l2tpv3-linux-static-v3-04.pcap") {
		h, p, err := ParseV3(d.b, 8, true)
		if err != nil {
			t.Fatal(err)
		}
		checkV3RoundTrip(t, h, p)
	}
}

func checkV2RoundTrip(t testing.TB, h Header, p []byte) {
	b := AppendV2(nil, h, p)
	h2, p2, err := ParseV2(b)
	if err != nil {
		t.Fatalf("re-encoded %+v: %v", h, err)
	}
	h.Length, h2.Length = 0, 0 // recomputed over the re-encoded message
	if !reflect.DeepEqual(h, h2) || !bytes.Equal(p, p2) {
		t.Fatalf("round trip: %+v % x -> %+v % x", h, p, h2, p2)
	}
}

func checkV3RoundTrip(t testing.TB, h Header, p []byte) {
	b := AppendV3(nil, h, p)
	h2, p2, err := ParseV3(b, len(h.Cookie), h.L2SS)
	if err != nil {
		t.Fatalf("re-encoded %+v: %v", h, err)
	}
	if !reflect.DeepEqual(h, h2) || !bytes.Equal(p, p2) {
		t.Fatalf("round trip: %+v % x -> %+v % x", h, p, h2, p2)
	}
}

func TestParseV2Errors(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		err  error
	}{
		{"short", []byte{0x00, 0x02, 0, 1}, ErrShort},
		{"control", []byte{0xc8, 0x02, 0, 12, 0, 1, 0, 0, 0, 0, 0, 0}, ErrControl},
		{"version 3", []byte{0x00, 0x03, 0, 0, 0, 0, 0, 1}, ErrVersion},
		{"length beyond message", []byte{0x40, 0x02, 0, 20, 0, 1, 0, 1}, ErrLength},
		{"length shorter than header", []byte{0x40, 0x02, 0, 6, 0, 1, 0, 1, 0xff}, ErrShort},
		{"S bit without Ns/Nr", []byte{0x08, 0x02, 0, 1, 0, 1, 0}, ErrShort},
		{"offset beyond message", []byte{0x02, 0x02, 0, 1, 0, 1, 0, 9, 0}, ErrShort},
		{"offset size missing", []byte{0x02, 0x02, 0, 1, 0, 1, 0}, ErrShort},
	}
	for _, c := range cases {
		if _, _, err := ParseV2(c.b); err != c.err {
			t.Errorf("%s: err %v, want %v", c.name, err, c.err)
		}
	}
	// RFC 2661 §3.1: octets after Length are not part of the message.
	b := []byte{0x40, 0x02, 0, 12, 0, 1, 0, 2, 0xff, 0x03, 0xc0, 0x21, 0xee, 0xee}
	_, p, err := ParseV2(b)
	if err != nil || !bytes.Equal(p, []byte{0xff, 0x03, 0xc0, 0x21}) {
		t.Errorf("trailing octets: % x %v", p, err)
	}
}

func TestParseV3Errors(t *testing.T) {
	if _, _, err := ParseV3([]byte{0, 3, 0, 0, 0, 0, 0}, 0, false); err != ErrShort {
		t.Errorf("short: %v", err)
	}
	if _, _, err := ParseV3([]byte{0, 2, 0, 0, 0, 0, 0, 1}, 0, false); err != ErrVersion {
		t.Errorf("v2: %v", err)
	}
	if _, _, err := ParseV3([]byte{0xc0, 3, 0, 0, 0, 0, 0, 1}, 0, false); err != ErrControl {
		t.Errorf("control: %v", err)
	}
	if _, _, err := ParseV3([]byte{0, 3, 0, 0, 0, 0, 0, 1, 1, 2, 3}, 4, false); err != ErrShort {
		t.Errorf("cookie cut: %v", err)
	}
	if _, _, err := ParseV3([]byte{0, 3, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 0, 0}, 4, true); err != ErrShort {
		t.Errorf("sublayer cut: %v", err)
	}
	// RFC 3931 §4.1.2.1: reserved bits are ignored on receipt.
	h, _, err := ParseV3([]byte{0x7f, 0xf3, 0xff, 0xff, 0, 0, 0, 9}, 0, false)
	if err != nil || h.Session != 9 {
		t.Errorf("reserved bits: %+v %v", h, err)
	}
}

// RFC 1662 §3.2 (address and control fields may be absent with ACFC) and
// RFC 1661 §6.5 (one-octet protocol with PFC).
func TestParsePPP(t *testing.T) {
	cases := []struct {
		frame []byte
		proto uint16
		info  []byte
		ok    bool
	}{
		{[]byte{0xff, 0x03, 0x00, 0x21, 0x45}, 0x0021, []byte{0x45}, true},
		{[]byte{0x00, 0x21, 0x45}, 0x0021, []byte{0x45}, true},
		{[]byte{0xff, 0x03, 0x21, 0x45}, 0x0021, []byte{0x45}, true},
		{[]byte{0x57, 0x60}, 0x0057, []byte{0x60}, true},
		{[]byte{0xc0, 0x21, 0x01}, 0xc021, []byte{0x01}, true},
		{[]byte{0xff, 0x03}, 0, nil, false},
		{[]byte{0x00, 0x20, 0x45}, 0, nil, false}, // last octet even
		{[]byte{0x00}, 0, nil, false},
		{nil, 0, nil, false},
	}
	for _, c := range cases {
		proto, info, ok := ParsePPP(c.frame)
		if ok != c.ok || proto != c.proto || !bytes.Equal(info, c.info) {
			t.Errorf("ParsePPP(% x) = %#04x % x %v, want %#04x % x %v", c.frame, proto, info, ok, c.proto, c.info, c.ok)
		}
	}
}
