package wire

import (
	"bytes"
	"errors"
	"testing"
)

// RFC 2661 §4.4.2 Result Code: 2, 4 or more octets.
func TestResultCode(t *testing.T) {
	for _, c := range []struct {
		result, code uint16
		msg          string
		avpLen       int
	}{
		{1, 0, "", 8},
		{2, 8, "", 10},
		{2, 6, "vendor trouble", 24},
	} {
		b := AppendResultCode(nil, true, c.result, c.code, c.msg)
		if len(b) != c.avpLen || b[0]&0x80 == 0 {
			t.Errorf("%+v: AVP % x", c, b)
		}
		r, e, m, err := ParseResultCode(b[6:])
		if err != nil || r != c.result || e != c.code || string(m) != c.msg {
			t.Errorf("%+v: parsed %d %d %q %v", c, r, e, m, err)
		}
	}
	for _, v := range [][]byte{nil, {1}, {0, 1, 0}} {
		if _, _, _, err := ParseResultCode(v); !errors.Is(err, ErrValue) {
			t.Errorf("% x: %v", v, err)
		}
	}
}

// RFC 2661 §4.4.2 Q.931 Cause Code, RFC 3145 §2 PPP Disconnect Cause
// Code, RFC 2661 §4.4.6 Call Errors and ACCM.
func TestStructuredValues(t *testing.T) {
	q := AppendQ931Cause(nil, true, 16, 1, "normal")
	if code, msg, adv, err := ParseQ931Cause(q[6:]); err != nil || code != 16 || msg != 1 || string(adv) != "normal" || len(q) != 6+3+6 {
		t.Errorf("Q.931: %d %d %q %v", code, msg, adv, err)
	}
	if _, _, _, err := ParseQ931Cause([]byte{0, 1}); err == nil {
		t.Error("2-octet Q.931 cause accepted")
	}

	want := PPPDisconnectCause{Code: 11, Protocol: 0xc223, Direction: 2, Msg: []byte("CHAP failed")}
	b := want.Append(nil)
	// RFC 3145 §2: M bit 0, length at least 11.
	if b[0]&0x80 != 0 || len(b) != 11+len(want.Msg) || b[5] != 46 {
		t.Errorf("PPP Disconnect Cause AVP % x", b)
	}
	got, err := ParsePPPDisconnectCause(b[6:])
	if err != nil || got.Code != want.Code || got.Protocol != want.Protocol || got.Direction != want.Direction || !bytes.Equal(got.Msg, want.Msg) {
		t.Errorf("parsed %+v %v", got, err)
	}
	if _, err := ParsePPPDisconnectCause(b[6:10]); err == nil {
		t.Error("4-octet PPP Disconnect Cause accepted")
	}

	ce := CallErrors{1, 2, 3, 4, 5, 6}
	cb := ce.Append(nil, true)
	if len(cb) != 32 {
		t.Errorf("Call Errors AVP length %d, want 32", len(cb))
	}
	if got, err := ParseCallErrors(cb[6:]); err != nil || got != ce {
		t.Errorf("Call Errors %+v %v", got, err)
	}
	if _, err := ParseCallErrors(cb[6:20]); err == nil {
		t.Error("short Call Errors accepted")
	}

	ab := AppendACCM(nil, true, 0xffffffff, 0x000a0000)
	if s, r, err := ParseACCM(ab[6:]); err != nil || s != 0xffffffff || r != 0x000a0000 || len(ab) != 16 {
		t.Errorf("ACCM %x %x %v", s, r, err)
	}
	if v, r, err := ParseProtocolVersion([]byte{1, 0}); err != nil || v != 1 || r != 0 {
		t.Errorf("Protocol Version %d.%d %v", v, r, err)
	}
}

func TestAccessors(t *testing.T) {
	a := AVP{Value: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	if v, err := a.Uint64(); err != nil || v != 0x0102030405060708 {
		t.Errorf("Uint64 %x %v", v, err)
	}
	if _, err := a.Uint32(); !errors.Is(err, ErrValue) {
		t.Errorf("Uint32 of 8 octets: %v", err)
	}
	if _, err := a.Uint16(); !errors.Is(err, ErrValue) {
		t.Errorf("Uint16 of 8 octets: %v", err)
	}
	a.Value = a.Value[:4]
	if v, err := a.Uint32(); err != nil || v != 0x01020304 {
		t.Errorf("Uint32 %x %v", v, err)
	}
	// A still-hidden value is never read as a number.
	h := AVP{Hidden: true, Value: []byte{0, 1}}
	if _, err := h.Uint16(); !errors.Is(err, ErrValue) {
		t.Errorf("Uint16 of a hidden AVP: %v", err)
	}
}

// Facts the peer capture README states: l2tpns sends no Receive Window
// Size, and the switched ICCN carries no proxy LCP or authentication AVPs.
func TestCapturePeerFacts(t *testing.T) {
	var sccrps int
	for _, p := range readL2TP(t, "xl2tpd-lac-l2tpns-lns.pcap") {
		m, err := ParseMessage(p.b, p.enc, nil)
		if err != nil || m.Type != MsgSCCRP {
			continue
		}
		sccrps++
		if _, ok := m.Find(VendorIETF, AVPReceiveWindowSize); ok {
			t.Error("l2tpns SCCRP carries a Receive Window Size")
		}
	}
	if sccrps != 1 {
		t.Errorf("%d SCCRPs", sccrps)
	}
	var iccns int
	for _, p := range readL2TP(t, "l2tpns-tunnel-switch.pcap") {
		m, err := ParseMessage(p.b, p.enc, nil)
		if err != nil || m.Type != MsgICCN {
			continue
		}
		iccns++
		for typ := AVPInitialReceivedLCPConfReq; typ <= AVPProxyAuthenResponse; typ++ {
			if _, ok := m.Find(VendorIETF, typ); ok && p.frame == 25 {
				t.Errorf("switched ICCN carries %v", typ)
			}
		}
	}
	if iccns != 2 {
		t.Errorf("%d ICCNs", iccns)
	}
}
