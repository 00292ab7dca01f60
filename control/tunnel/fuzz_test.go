package tunnel

import (
	"bytes"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/wire"
)

// FuzzPseudowireICRQ feeds an established L2TPv3 responder ICRQs whose
// pseudowire AVPs (RFC 3931 §5.4.4, RFC 4719 §2.2) carry arbitrary
// values: Pseudowire Type, Remote End ID, Assigned Cookie, L2-Specific
// Sublayer, Data Sequencing and Circuit Status, each present or not and
// of any length. Whatever arrives, the responder answers with an ICRP or
// a CDN, and a call it accepts satisfies RFC 3931 §5.4.4: a cookie of 0,
// 4 or 8 octets, the default sublayer or none, and sequencing only with a
// sublayer, recorded as received.
func FuzzPseudowireICRQ(f *testing.F) {
	f.Add(uint16(PseudowireEthernet), []byte{0, 0, 0, 100}, []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{0, 1}, []byte{0, 2}, []byte{0, 3}, uint8(0x3f))
	f.Add(uint16(PseudowireEthernetVLAN), []byte("vc"), []byte{1, 2, 3}, []byte{0, 0}, []byte{0, 2}, []byte{0, 1}, uint8(0x3f))
	f.Add(uint16(PseudowirePPP), []byte{}, []byte{}, []byte{0}, []byte{9, 9, 9}, []byte{}, uint8(0x05))
	f.Fuzz(func(t *testing.T, pw uint16, remoteEnd, cookie, l2ss, seq, circuit []byte, present uint8) {
		ac, bc := pwCfg(100), pwCfg(200)
		bc.Bind = func(s *Session) (PWParams, *Result) {
			if !bytes.Equal([]byte(s.PW.RemoteEndID), remoteEnd) {
				t.Fatalf("Bind saw Remote End ID %q, sent %q", s.PW.RemoteEndID, remoteEnd)
			}
			return PWParams{Cookie: []byte{9, 8, 7, 6}, L2SS: L2SSDefault, Active: true}, nil
		}
		l := established(t, ac, bc)
		b := wire.AppendControlHeader(nil, wire.EncapUDP, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: 3, TunnelID: 200, Ns: 2, Nr: 1})
		b = wire.AppendMessageType(b, wire.MsgICRQ)
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPLocalSessionID, 0x1234)
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPRemoteSessionID, 0)
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPCallSerialNumber, 1)
		sentCookie := false
		for i, a := range []struct {
			typ wire.AVPType
			v   []byte
		}{
			{wire.AVPPseudowireType, []byte{byte(pw >> 8), byte(pw)}},
			{wire.AVPRemoteEndID, remoteEnd},
			{wire.AVPAssignedCookie, cookie},
			{wire.AVPL2SpecificSublayer, l2ss},
			{wire.AVPDataSequencing, seq},
			{wire.AVPCircuitStatus, circuit},
		} {
			if present&(1<<i) != 0 && len(a.v) <= wire.MaxAVPValue {
				b = wire.AppendAVP(b, true, wire.VendorIETF, a.typ, a.v)
				sentCookie = sentCookie || a.typ == wire.AVPAssignedCookie
			}
		}
		wire.FinishControl(b, 0, wire.EncapUDP)
		l.b.Receive(l.now, b)
		l.out = l.b.Poll(l.now, l.out[:0])
		answered := false
		for _, p := range l.out {
			m, err := wire.ParseMessage(p, wire.EncapUDP, nil)
			if err != nil {
				t.Fatalf("responder sent an unparsable message: %v", err)
			}
			switch m.Type {
			case wire.MsgICRP, wire.MsgCDN, wire.MsgStopCCN:
				answered = true
			}
		}
		if !answered {
			t.Fatalf("ICRQ got no ICRP, CDN or StopCCN (%d messages)", len(l.out))
		}
		l.b.Sessions(func(s *Session) {
			if !s.Pseudowire {
				return
			}
			r := &s.PW.Remote
			if n := len(r.Cookie); n != 0 && n != 4 && n != 8 {
				t.Fatalf("accepted a %d-octet cookie", n)
			}
			if sentCookie && !bytes.Equal(r.Cookie, cookie) {
				t.Fatalf("cookie %x recorded as %x", cookie, r.Cookie)
			}
			if r.L2SS > L2SSDefault || r.Sequencing > SequenceAll || (r.Sequencing != SequenceNone && r.L2SS == L2SSNone) {
				t.Fatalf("accepted %+v", *r)
			}
		})
		l.advance(time.Second)
	})
}
