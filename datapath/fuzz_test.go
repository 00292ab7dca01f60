package datapath

import (
	"testing"
)

func addCaptureSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		for _, d := range readCapture(f, name) {
			f.Add(d.b)
		}
	}
}

// Any input either fails to parse or parses to a header that re-encodes
// and parses back to itself (RFC 2661 §3.1).
func FuzzParseV2(f *testing.F) {
	addCaptureSeeds(f, "l2tpv2-in-pppoe-nb6-offset-priority.pcap", "l2tpv2-in-pppoe-nb6-http.pcap",
		"l2tpv2-windows-lac-cisco-lns-tunnelauth-pap.pcap")
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := ParseV2(b)
		if err != nil {
			return
		}
		if len(p) > len(b) {
			t.Fatalf("payload longer than the message")
		}
		checkV2RoundTrip(t, h, p)
		ParsePPP(p)
	})
}

// The cookie length and sublayer come from the session; the fuzzer picks
// them too (RFC 3931 §4.1.2.1, §4.6).
func FuzzParseV3(f *testing.F) {
	for _, c := range []struct {
		file   string
		cookie uint8
		l2ss   bool
	}{
		{"l2tpv3-linux-static-v3-01.pcap", 0, false},
		{"l2tpv3-linux-static-v3-02.pcap", 4, false},
		{"l2tpv3-linux-static-v3-03.pcap", 8, false},
		{"l2tpv3-linux-static-v3-04.pcap", 8, true},
		{"l2tpv3-linux-static-v3-11.pcap", 8, true},
	} {
		for _, d := range readCapture(f, c.file) {
			f.Add(d.b, c.cookie, c.l2ss)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, cookie uint8, l2ss bool) {
		cl := []int{0, 4, 8}[cookie%3]
		h, p, err := ParseV3(b, cl, l2ss)
		if err != nil {
			return
		}
		if len(h.Cookie) != cl || len(p) > len(b) {
			t.Fatalf("cookie %d bytes, payload %d of %d", len(h.Cookie), len(p), len(b))
		}
		checkV3RoundTrip(t, h, p)
	})
}

// ParsePPP never reads past the frame and returns a suffix of it.
func FuzzParsePPP(f *testing.F) {
	f.Add([]byte{0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4})
	f.Add([]byte{0x21, 0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		proto, info, ok := ParsePPP(b)
		if !ok {
			return
		}
		if proto&1 == 0 || len(info) > len(b)-1 {
			t.Fatalf("proto %#04x info %d of %d", proto, len(info), len(b))
		}
	})
}
