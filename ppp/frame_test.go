package ppp

import (
	"bytes"
	"testing"
	"time"
)

// RFC 1661 §2, §6.5, §6.6 and RFC 2661 §5.1: header forms.
func TestParseFrameForms(t *testing.T) {
	cases := []struct {
		in    []byte
		proto Protocol
		info  []byte
		err   error
	}{
		{[]byte{0xff, 0x03, 0xc0, 0x21, 9}, ProtoLCP, []byte{9}, nil},
		{[]byte{0xc0, 0x21, 9}, ProtoLCP, []byte{9}, nil},
		{[]byte{0xff, 0x03, 0x21, 0x45}, ProtoIPv4, []byte{0x45}, nil},
		{[]byte{0x57, 0x60}, ProtoIPv6, []byte{0x60}, nil},
		{[]byte{0x80, 0x20}, 0, nil, ErrBadProtocol},
		{[]byte{0xff, 0x03}, 0, nil, ErrShortFrame},
		{[]byte{0x80}, 0, nil, ErrShortFrame},
	}
	for _, c := range cases {
		p, info, err := ParseFrame(c.in)
		if err != c.err || p != c.proto || !bytes.Equal(info, c.info) {
			t.Errorf("%x: %v %x %v", c.in, p, info, err)
		}
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, p := range []Protocol{ProtoIPv4, ProtoIPv6, ProtoLCP, ProtoIPCP, 0x0231} {
		for _, acfc := range []bool{false, true} {
			for _, pfc := range []bool{false, true} {
				b := AppendFrameHeader(nil, p, acfc, pfc)
				b = AppendPacket(b, 1, 2, []byte{3, 6, 1, 2, 3, 4})
				got, info, err := ParseFrame(b)
				if err != nil || got != p {
					t.Fatalf("%v acfc=%v pfc=%v: %v %v", p, acfc, pfc, got, err)
				}
				pk, err := ParsePacket(info)
				if err != nil || pk.Code != 1 || pk.ID != 2 || !bytes.Equal(pk.Data, []byte{3, 6, 1, 2, 3, 4}) {
					t.Fatalf("packet %+v %v", pk, err)
				}
			}
		}
	}
}

// RFC 1661 §5: octets beyond Length are padding; a Length beyond the
// data or below 4 is an error.
func TestParsePacketLength(t *testing.T) {
	p, err := ParsePacket([]byte{9, 1, 0, 8, 0, 0, 0, 0, 0xee, 0xee})
	if err != nil || len(p.Data) != 4 {
		t.Errorf("padding: %+v %v", p, err)
	}
	if _, err := ParsePacket([]byte{9, 1, 0, 9, 0, 0, 0, 0}); err != ErrPacketLength {
		t.Errorf("long length: %v", err)
	}
	if _, err := ParsePacket([]byte{9, 1, 0, 3}); err != ErrPacketLength {
		t.Errorf("short length: %v", err)
	}
	if err := ValidOptions([]byte{1, 4, 5, 0xdc, 7, 1}); err != ErrOptionLength {
		t.Errorf("option length 1: %v", err)
	}
	if err := ValidOptions([]byte{1, 4, 5}); err != ErrOptionLength {
		t.Errorf("truncated option: %v", err)
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add([]byte{0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 8, 1, 4, 5, 0xdc})
	f.Add([]byte{0x21, 0x45, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, info, err := ParseFrame(b)
		if err != nil {
			return
		}
		// Round trip: re-framing the information field parses the same.
		re := append(AppendFrameHeader(nil, p, false, false), info...)
		p2, info2, err := ParseFrame(re)
		if err != nil || p2 != p || !bytes.Equal(info, info2) {
			t.Fatalf("round trip %x: %v %x %v", b, p2, info2, err)
		}
		pk, err := ParsePacket(info)
		if err != nil {
			return
		}
		re = AppendPacket(nil, pk.Code, pk.ID, pk.Data)
		pk2, err := ParsePacket(re)
		if err != nil || pk2.Code != pk.Code || pk2.ID != pk.ID || !bytes.Equal(pk2.Data, pk.Data) {
			t.Fatalf("packet round trip %x", info)
		}
	})
}

func FuzzOptions(f *testing.F) {
	f.Add([]byte{1, 4, 5, 0xdc, 3, 4, 0xc0, 0x23, 5, 6, 1, 2, 3, 4, 7, 2, 8, 2})
	f.Add([]byte{3, 6, 0, 0, 0, 0, 129, 6, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if ValidOptions(b) != nil {
			return
		}
		var re []byte
		for rest := b; len(rest) > 0; {
			o, r, err := NextOption(rest)
			if err != nil {
				t.Fatal(err)
			}
			rest = r
			re = AppendOption(re, o.Type, o.Value)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("round trip %x -> %x", b, re)
		}
		// Every layer judges any well-formed list without panicking and
		// answers with a well-formed list.
		for _, role := range []Role{RoleServer, RoleClient} {
			cfg := serverConfig(AuthPAP)
			cfg.Role = role
			cfg.IPv6 = true
			s, _ := NewSession(cfg)
			for _, l := range []layer{&s.lcp, &s.ipcp, s.ipv6cp} {
				code, reply := l.checkRequest(b, nil, true)
				if code < CodeConfigureAck || code > CodeConfigureReject || ValidOptions(reply) != nil {
					t.Fatalf("reply %d %x", code, reply)
				}
				l.gotNak(b)
				l.gotReject(b)
			}
		}
	})
}

// The engine takes any sequence of frames without panicking, sends only
// well-formed frames, and sends a bounded number per input.
func FuzzSessionInput(f *testing.F) {
	f.Add([]byte{0xff, 0x03, 0xc0, 0x21, 1, 0, 0, 21, 1, 4, 5, 0x78, 5, 6, 0x4d, 0xd5, 0x5d, 0x57, 7, 2, 8, 2, 13, 3, 6}, byte(0))
	f.Add([]byte{0xc0, 0x23, 1, 1, 0, 17, 5, 'm', 'a', 'r', 'k', 'w', 6, 'q', 'w', 'e', 'r', 't', 'y'}, byte(1))
	f.Fuzz(func(t *testing.T, b []byte, mode byte) {
		cfg := serverConfig(AuthPAP, AuthCHAPMD5, AuthMSCHAPv2)
		if mode&1 == 1 {
			cfg = clientConfig("alice", "s3cret")
		}
		cfg.IPv6 = true
		cfg.EchoInterval = time.Second
		s, _ := NewSession(cfg)
		var out Output
		s.Start(t0, &out)
		now := t0
		// Split the input into frames at 0x7e, as a stream of frames.
		for i, fr := range bytes.Split(b, []byte{0x7e}) {
			out.Reset()
			s.Input(now, fr, &out)
			if mode&2 == 2 {
				if d, ok := s.Deadline(); ok {
					now = d
					s.Tick(now, &out)
				}
			}
			for _, e := range out.Events {
				if e.Kind == EventAuthRequest {
					s.AuthResult(now, AuthResult{Accept: i%2 == 0, AuthenticatorResponse: "S=0000000000000000000000000000000000000000"}, &out)
				}
			}
			if out.NumFrames() > 8 {
				t.Fatalf("%d frames for one input", out.NumFrames())
			}
			for j := 0; j < out.NumFrames(); j++ {
				fr := out.Frame(j)
				if len(fr) > 1504 {
					t.Fatalf("frame of %d octets", len(fr))
				}
				_, info, err := ParseFrame(fr)
				if err != nil {
					t.Fatalf("sent %x: %v", fr, err)
				}
				if p, err := ParsePacket(info); err != nil || 4+len(p.Data) != len(info) {
					t.Fatalf("sent %x: %v", fr, err)
				}
			}
		}
	})
}
