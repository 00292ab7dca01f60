package wire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// sampleValue returns a valid plain value for an AVP of the given spec.
func sampleValue(s *AVPSpec, seed byte) []byte {
	fill := func(n int) []byte {
		v := make([]byte, n)
		for i := range v {
			v[i] = seed + byte(i)
		}
		return v
	}
	switch s.Kind {
	case KindEmpty:
		return nil
	case KindUint16:
		return fill(2)
	case KindUint32:
		return fill(4)
	case KindUint64:
		return fill(8)
	case KindUint16List:
		return []byte{0, 4, 0, 5}
	case KindString:
		return []byte(fmt.Sprintf("%s-%d", s.Name, seed))
	case KindResultCode:
		return AppendResultCode(nil, true, 2, 8, "text")[6:]
	case KindQ931Cause:
		return AppendQ931Cause(nil, true, 16, 1, "advice")[6:]
	case KindCallErrors:
		return CallErrors{1, 2, 3, 4, 5, 6}.Append(nil, true)[6:]
	case KindACCM:
		return AppendACCM(nil, true, 0xffffffff, 0)[6:]
	case KindPPPDisconnect:
		return PPPDisconnectCause{Code: 3, Protocol: 0xc021, Direction: 1, Msg: []byte("lcp")}.Append(nil)[6:]
	case KindFailoverStruct, KindOctets:
		n := max(s.MinLen, 12)
		if s.MaxLen < n {
			n = s.MaxLen
		}
		return fill(n)
	}
	panic("no sample for kind")
}

// buildFull builds message spec with every AVP it may carry: required and
// optional ones (every second hideable AVP hidden), a Random Vector before
// them, a Message Digest for v3, an unknown vendor AVP, an Extended Vendor
// ID AVP and a Cisco AVP, none with the M bit.
func buildFull(t *testing.T, spec *MsgSpec, enc Encap, secret []byte) (msg []byte, plain map[AVPType][]byte, hidden int) {
	t.Helper()
	plain = map[AVPType][]byte{}
	key := HidingKey(spec.Version, secret)
	rv := []byte("0123456789abcdef")
	b := AppendControlHeader(nil, enc, Header{Version: spec.Version, TunnelID: 0x1234, SessionID: 0x5678, Ns: 7, Nr: 9})
	b = AppendMessageType(b, spec.Type)
	digestAt := -1
	if spec.Version == 3 {
		b, digestAt = AppendMessageDigestAVP(b, spec.Type%2 == 0)
	}
	b = AppendAVP(b, true, VendorIETF, AVPRandomVector, rv)
	hide := false
	for i, typ := range append(append([]AVPType{}, spec.Required...), spec.Optional...) {
		as, ok := LookupAVP(VendorIETF, typ)
		if !ok {
			t.Fatalf("%v v%d lists unknown AVP %d", spec.Type, spec.Version, typ)
		}
		v := sampleValue(as, byte(i))
		plain[typ] = v
		if as.MayHide {
			hide = !hide
		}
		if as.MayHide && hide {
			b = AppendHiddenAVP(b, as.Mandatory, VendorIETF, typ, v, key, rv, []byte("pad")[:i%4])
			hidden++
		} else {
			b = AppendAVP(b, as.Mandatory, VendorIETF, typ, v)
		}
	}
	b = AppendAVP(b, false, 52845, 3, []byte("mist"))
	b = AppendAVP(b, false, 0x00abcdef, 1, []byte("extended vendor"))
	b = AppendAVPUint16(b, false, VendorCisco, CiscoAVPInterfaceMTU, 1500)
	FinishControl(b, 0, enc)
	if digestAt >= 0 {
		SignDigest(b, enc, digestAt, DeriveAuthKey(secret))
	}
	return b, plain, hidden
}

// Every message of both versions built with the Append API parses,
// validates (before and after Unhide), re-encodes byte for byte and gives
// back every value (RFC 2661 §6, RFC 3931 §6, RFC 4951 §4).
func TestRoundTripEveryMessage(t *testing.T) {
	secret := []byte("tunnel secret")
	n := map[uint8]int{}
	for i := range Messages() {
		spec := &Messages()[i]
		encs := []Encap{EncapUDP}
		if spec.Version == 3 {
			encs = append(encs, EncapIP)
		}
		for _, enc := range encs {
			t.Run(fmt.Sprintf("v%d/%v/enc%d", spec.Version, spec.Type, enc), func(t *testing.T) {
				msg, plain, hidden := buildFull(t, spec, enc, secret)
				m, err := ParseMessage(msg, enc, nil)
				if err != nil {
					t.Fatal(err)
				}
				if m.Type != spec.Type || m.Header.Version != spec.Version || m.Header.Ns != 7 || m.Header.Nr != 9 || m.Header.TunnelID != 0x1234 {
					t.Fatalf("header %+v type %v", m.Header, m.Type)
				}
				if err := Validate(&m); err != nil {
					t.Fatalf("Validate before Unhide: %v", err)
				}
				nh := 0
				for _, a := range m.AVPs {
					if a.Hidden {
						nh++
					}
				}
				if nh != hidden {
					t.Fatalf("%d hidden AVPs parsed, %d sent", nh, hidden)
				}
				if got := reencode(&m, enc); !bytes.Equal(got, msg) {
					t.Fatalf("re-encoded\n%x\nwant\n%x", got, msg)
				}
				if spec.Version == 3 {
					if err := VerifyDigest(msg, enc, DeriveAuthKey(secret)); err != nil {
						t.Fatalf("VerifyDigest: %v", err)
					}
				}
				if _, err := m.Unhide(secret, nil); err != nil {
					t.Fatal(err)
				}
				if err := Validate(&m); err != nil {
					t.Fatalf("Validate after Unhide: %v", err)
				}
				for typ, want := range plain {
					a, ok := m.Find(VendorIETF, typ)
					if !ok || a.Hidden || !bytes.Equal(a.Value, want) {
						t.Errorf("%v = %x (hidden %v), want %x", typ, a.Value, a.Hidden, want)
					}
				}
				if a, ok := m.Find(0x00abcdef, 1); !ok || string(a.Value) != "extended vendor" {
					t.Errorf("extended vendor AVP lost: %+v", a)
				}
				if a, ok := m.Find(52845, 3); !ok || string(a.Value) != "mist" {
					t.Errorf("vendor AVP lost: %+v", a)
				}
			})
			n[spec.Version]++
		}
	}
	// v2: 14 RFC 2661 messages + FSQ/FSR; v3: 15 RFC 3931 messages + FSQ/FSR, over UDP and IP.
	if n[2] != 16 || n[3] != 2*17 {
		t.Errorf("covered %v", n)
	}
}

// The ZLB (RFC 2661 §5.8) is a header alone.
func TestZLB(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		b := AppendControlHeader(nil, EncapUDP, Header{Version: v, TunnelID: 5, Ns: 1, Nr: 2})
		FinishControl(b, 0, EncapUDP)
		if binary.BigEndian.Uint16(b[2:]) != 12 {
			t.Fatalf("length %d", binary.BigEndian.Uint16(b[2:]))
		}
		m, err := ParseMessage(b, EncapUDP, nil)
		if err != nil || m.Type != MsgZLB || len(m.AVPs) != 0 || Validate(&m) != nil {
			t.Fatalf("v%d ZLB: %+v %v", v, m, err)
		}
	}
}
