package tunnel

import (
	"bytes"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/l2tpd/l2tpd/control/wire"
)

// An LNS holds one Session per subscriber: 100,000 of them must fit the
// per-session memory budget, so the record stays small and what few
// calls use lives behind pointers.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(Session{}); n > 256 {
		t.Fatalf("Session is %d bytes, budget 256", n)
	}
}

// A plain PPP call without proxy AVPs (RFC 2661 §7.4.1 ICRQ, ICRP, ICCN;
// RFC 3931 §6.6) leaves every optional part unallocated on both sides.
func TestPlainPPPCallHasNoExtras(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			l := established(t, cfg(v, 100), cfg(v, 200))
			id, err := l.a.StartCall(l.now, CallParams{Serial: 5, CallingNumber: "0601", CalledNumber: "lns"})
			if err != nil {
				t.Fatal(err)
			}
			l.advance(time.Second)
			lac, lns := l.a.Session(id), onlySession(l.b)
			if lac == nil || lns == nil || lac.State != SessionEstablished || lns.State != SessionEstablished {
				t.Fatalf("call not up: %+v %+v", lac, lns)
			}
			for _, s := range []*Session{lac, lns} {
				if s.Proxy != nil || s.PW != nil || s.Extra != nil || s.params != nil {
					t.Errorf("session %d keeps proxy %v, pw %v, extra %v, params %v", s.ID, s.Proxy, s.PW, s.Extra, s.params)
				}
			}
			if lns.CallingNumber != "0601" || lns.CalledNumber != "lns" || lns.Serial != 5 {
				t.Fatalf("LNS call AVPs %+v", lns)
			}
		})
	}
}

// v2 control message from the LAC side of an established link, built by
// hand to carry AVPs the Tunnel itself never sends.
func v2Msg(sid uint32, ns, nr uint16, typ wire.MsgType, avps func([]byte) []byte) []byte {
	b := wire.AppendControlHeader(nil, wire.EncapUDP, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: 200, SessionID: sid, Ns: ns, Nr: nr})
	b = wire.AppendMessageType(b, typ)
	b = avps(b)
	wire.FinishControl(b, 0, wire.EncapUDP)
	return b
}

// RFC 2661 §4.4.4: Sub-Address (ICRQ) and Private Group ID (ICCN);
// §6.13 WEN Call Errors; §6.14 SLI ACCM: kept in the session's Extra.
func TestRareCallAVPsKept(t *testing.T) {
	l := established(t, cfg(2, 100), cfg(2, 200))
	l.b.Receive(l.now, v2Msg(0, 2, 1, wire.MsgICRQ, func(b []byte) []byte {
		b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPAssignedSessionID, 77)
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPCallSerialNumber, 9)
		return wire.AppendAVP(b, false, wire.VendorIETF, wire.AVPSubAddress, []byte("ext-12"))
	}))
	_ = l.b.Poll(l.now, nil)
	s := onlySession(l.b)
	if s == nil || s.Extra == nil || s.Extra.SubAddress != "ext-12" || s.PeerID != 77 {
		t.Fatalf("ICRQ not kept: %+v", s)
	}
	sid := s.ID
	l.b.Receive(l.now, v2Msg(sid, 3, 2, wire.MsgICCN, func(b []byte) []byte {
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPTxConnectSpeed, 2000000)
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPFramingType, 1)
		return wire.AppendAVP(b, false, wire.VendorIETF, wire.AVPPrivateGroupID, []byte("vpn7"))
	}))
	if s.State != SessionEstablished || s.Extra.PrivateGroup != "vpn7" || s.Extra.SubAddress != "ext-12" || s.Proxy != nil || s.PW != nil {
		t.Fatalf("ICCN not kept: %+v %+v", s, s.Extra)
	}
	errs := make([]byte, 26)
	errs[5] = 3 // CRC errors
	l.b.Receive(l.now, v2Msg(sid, 4, 2, wire.MsgWEN, func(b []byte) []byte {
		return wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPCallErrors, errs)
	}))
	l.b.Receive(l.now, v2Msg(sid, 5, 2, wire.MsgSLI, func(b []byte) []byte {
		return wire.AppendACCM(b, true, 0xffffffff, 0x000a0000)
	}))
	if !bytes.Equal(s.Extra.CallErrors, errs) || len(s.Extra.ACCM) != 10 {
		t.Fatalf("link info not kept: %+v", s.Extra)
	}
	var kinds []string
	for _, ev := range l.b.Events() {
		kinds = append(kinds, ev.Kind.String())
	}
	if want := "[session-answered session-up session-link-info session-link-info]"; fmt.Sprint(kinds) != want {
		t.Fatalf("events %v, want %s", kinds, want)
	}
}

// RFC 3931 §5.4.4: the pseudowire AVPs of an ICRQ are kept whatever
// their order, even with the Pseudowire Type AVP last; and a v3 PPP call
// does not keep them.
func TestPseudowireAVPsBeforeType(t *testing.T) {
	for _, tc := range []struct {
		pw     uint16
		wantPW bool
	}{{PseudowireEthernet, true}, {PseudowirePPP, false}} {
		t.Run(fmt.Sprint(tc.pw), func(t *testing.T) {
			ac, bc := pwCfg(100), pwCfg(200)
			bc.Pseudowires = []uint16{PseudowirePPP, PseudowireEthernet}
			var bound *Session
			bc.Bind = func(s *Session) (PWParams, *Result) {
				bound = s
				return PWParams{L2SS: L2SSDefault, Active: true}, nil
			}
			l := established(t, ac, bc)
			b := wire.AppendControlHeader(nil, wire.EncapUDP, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: 3, TunnelID: 200, Ns: 2, Nr: 1})
			b = wire.AppendMessageType(b, wire.MsgICRQ)
			b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPLocalSessionID, 0x1234)
			b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPRemoteSessionID, 0)
			b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPCallSerialNumber, 1)
			b = wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPRemoteEndID, []byte(vc100))
			b = wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPAssignedCookie, []byte{1, 2, 3, 4})
			b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPL2SpecificSublayer, L2SSDefault)
			b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPCircuitStatus, circuitActive|circuitNew)
			b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPPseudowireType, tc.pw)
			wire.FinishControl(b, 0, wire.EncapUDP)
			l.b.Receive(l.now, b)
			s := onlySession(l.b)
			if s == nil {
				t.Fatal("ICRQ refused")
			}
			if !tc.wantPW {
				if s.PW != nil || s.Pseudowire || bound != nil || s.RemoteCircuitKnown() {
					t.Fatalf("PPP call kept pseudowire parameters: %+v %+v", s, s.PW)
				}
				return
			}
			if bound != s || !s.Pseudowire || s.PW == nil || s.PW.RemoteEndID != vc100 || !bytes.Equal(s.PW.Remote.Cookie, []byte{1, 2, 3, 4}) ||
				s.PW.Remote.L2SS != L2SSDefault || !s.PW.Remote.Active || !s.RemoteCircuitKnown() || s.PW.Local.L2SS != L2SSDefault {
				t.Fatalf("pseudowire parameters %+v", s.PW)
			}
		})
	}
}
