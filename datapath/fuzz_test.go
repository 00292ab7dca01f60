package datapath

import (
	"bytes"
	"reflect"
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

// The cookie length and sublayer come from the session; the fuzzer picks
// them too. Whatever parses re-encodes to a message that parses back to
// the same header and payload (RFC 3931 §4.1.1.2, §4.6).
func FuzzParseV3IP(f *testing.F) {
	for _, c := range []struct {
		file   string
		cookie uint8
		l2ss   bool
	}{
		{"l2tpv3-linux-static-v3-05.pcap", 0, false},
		{"l2tpv3-linux-static-v3-07.pcap", 8, false},
		{"l2tpv3-linux-static-v3-08.pcap", 8, true},
		{"l2tpv3-linux-static-v3-09.pcap", 8, true},
	} {
		for _, b := range readIPCapture(f, c.file) {
			f.Add(b, c.cookie, c.l2ss)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, cookie uint8, l2ss bool) {
		cl := []int{0, 4, 8}[cookie%3]
		h, p, err := ParseV3IP(b, cl, l2ss)
		if err != nil {
			return
		}
		if h.Session == 0 || len(h.Cookie) != cl || len(p) > len(b)-4 {
			t.Fatalf("session %d, cookie %d bytes, payload %d of %d", h.Session, len(h.Cookie), len(p), len(b))
		}
		m := AppendV3IP(nil, h, p)
		h2, p2, err := ParseV3IP(m, cl, l2ss)
		if err != nil || !reflect.DeepEqual(h, h2) || !bytes.Equal(p, p2) {
			t.Fatalf("round trip: %+v % x -> %+v % x: %v", h, p, h2, p2, err)
		}
	})
}

// SetVLANID changes the 12 VID bits of the outermost tag and nothing
// else; VLANID reads them back. Untagged and short frames are left alone
// (IEEE 802.1Q §9.6).
func FuzzVLANTag(f *testing.F) {
	f.Add(vlanFrame(100, []byte{1, 2, 3}), uint16(200))
	f.Add(ethFrame(0x0800, []byte{0x45}), uint16(5))
	f.Add(append(vlanFrame(7, nil)[:12], 0x88, 0xa8, 0x20, 0x07, 0x81, 0x00, 0, 9, 8, 0), uint16(4094))
	f.Fuzz(func(t *testing.T, frame []byte, vid uint16) {
		orig := append([]byte(nil), frame...)
		_, tagged := VLANID(frame)
		if ok := SetVLANID(frame, vid); ok != tagged {
			t.Fatalf("SetVLANID %v, VLANID %v", ok, tagged)
		}
		if !tagged {
			if !bytes.Equal(frame, orig) {
				t.Fatal("untagged frame changed")
			}
			return
		}
		if got, _ := VLANID(frame); got != vid&0x0fff {
			t.Fatalf("VID %d after setting %d", got, vid)
		}
		for i := range frame {
			mask := byte(0xff)
			switch i {
			case 14:
				mask = 0xf0
			case 15:
				mask = 0
			}
			if frame[i]&mask != orig[i]&mask {
				t.Fatalf("byte %d changed: % x -> % x", i, orig, frame)
			}
		}
	})
}

// Any message received for Ethernet and VLAN pseudowires, over UDP or
// IP, is either dropped or puts on the TAP a frame built from the
// message's own bytes, never longer than the message.
func FuzzPWReceive(f *testing.F) {
	f.Add(pwData(keyPW.Session, cookieIn, true, true, 1, ethFrame(0x0800, []byte{0x45, 0})), false)
	f.Add(pwData(keyPW.Session, cookieIn, true, false, 0, ethFrame(0x0806, nil))[4:], true)
	f.Add(pwData(77, nil, false, false, 0, vlanFrame(9, []byte{1})), false)
	f.Add(pwData(77, nil, false, false, 0, ethFrame(0x0800, nil))[4:], true)
	f.Add([]byte{0, 0, 0, 0, 0xc8, 3, 0, 12}, true)
	f.Fuzz(func(t *testing.T, msg []byte, ip bool) {
		r := newRig(t, true, 8)
		r.sock.ip = ip
		w := r.addFakeTAP(t, "pw0")
		r.addFakeTAP(t, "trunk0")
		r.installPW(t, func(s *Session) { s.Sequencing = true })
		if err := r.e.Install(Session{Key: SessionKey{Version: 3, Session: 77}, PeerSession: 1, Peer: peerPW, Socket: r.sock,
			Kind: KindVLAN, TAP: "trunk0", VLAN: 300}); err != nil {
			t.Fatal(err)
		}
		in := append([]byte(nil), msg...)
		if ip {
			r.e.receiveIP(r.sock, in, peerPW, lnsAddr)
		} else {
			r.e.receive(r.sock, in, peerPW, lnsAddr)
		}
		trunk := r.e.pw.taps["trunk0"].w.(*fakeTUN)
		for _, p := range append(w.pkts, trunk.pkts...) {
			if len(p) < 14 || len(p) > len(msg) {
				t.Fatalf("TAP got a %d-byte frame from a %d-byte message", len(p), len(msg))
			}
		}
		for _, p := range trunk.pkts {
			if vid, ok := VLANID(p); !ok || vid != 300 {
				t.Fatalf("trunk got VID %d (%v)", vid, ok)
			}
		}
	})
}
