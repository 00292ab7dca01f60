package wire

import (
	"errors"
	"testing"
)

type avpSpec struct {
	m      bool
	vendor uint32
	typ    AVPType
	value  []byte
}

func buildMsg(ver uint8, mt MsgType, mtMandatory bool, avps ...avpSpec) Message {
	b := AppendControlHeader(nil, EncapUDP, Header{Version: ver})
	b = AppendAVPUint16(b, mtMandatory, VendorIETF, AVPMessageType, uint16(mt))
	for _, a := range avps {
		b = AppendAVP(b, a.m, a.vendor, a.typ, a.value)
	}
	FinishControl(b, 0, EncapUDP)
	m, err := ParseMessage(b, EncapUDP, nil)
	if err != nil {
		panic(err)
	}
	return m
}

func u16(v uint16) []byte { return []byte{byte(v >> 8), byte(v)} }
func u32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

var (
	icrqV2  = []avpSpec{{true, 0, AVPAssignedSessionID, u16(5)}, {true, 0, AVPCallSerialNumber, u32(1)}}
	sccrqV2 = []avpSpec{
		{true, 0, AVPProtocolVersion, u16(ProtocolVersionV2)}, {true, 0, AVPHostName, []byte("lac")},
		{true, 0, AVPFramingCapabilities, u32(3)}, {true, 0, AVPAssignedTunnelID, u16(9)},
	}
)

func with(base []avpSpec, extra ...avpSpec) []avpSpec {
	return append(append([]avpSpec{}, base...), extra...)
}

func without(base []avpSpec, typ AVPType) []avpSpec {
	var out []avpSpec
	for _, a := range base {
		if a.typ != typ {
			out = append(out, a)
		}
	}
	return out
}

func TestValidate(t *testing.T) {
	type want struct {
		ok                bool
		action            Action
		result, errorCode uint16
	}
	stop := func(r, e uint16) want { return want{action: ActionStopCCN, result: r, errorCode: e} }
	cdn := func(r, e uint16) want { return want{action: ActionCDN, result: r, errorCode: e} }
	ok := want{ok: true}
	cases := []struct {
		name string
		m    Message
		want want
	}{
		{"v2 SCCRQ", buildMsg(2, MsgSCCRQ, true, sccrqV2...), ok},
		{"v2 ICRQ", buildMsg(2, MsgICRQ, true, icrqV2...), ok},
		// RFC 2661 §4.2, RFC 3931 §5.2: unknown AVP with M in a session
		// message is a CDN 2/8, in a tunnel message a StopCCN 2/8.
		{"unknown M AVP in ICRQ", buildMsg(2, MsgICRQ, true, with(icrqV2, avpSpec{true, 0, 200, nil})...), cdn(2, 8)},
		{"unknown M vendor AVP in SCCRQ", buildMsg(2, MsgSCCRQ, true, with(sccrqV2, avpSpec{true, 52845, 1, []byte("x")})...), stop(2, 8)},
		{"unknown M Cisco AVP in SCCRQ", buildMsg(2, MsgSCCRQ, true, with(sccrqV2, avpSpec{true, VendorCisco, CiscoAVPDraftAVPVersion, u16(1)})...), stop(2, 8)},
		// Without the M bit it is skipped.
		{"unknown AVP without M", buildMsg(2, MsgICRQ, true, with(icrqV2, avpSpec{false, 0, 200, []byte("zz")})...), ok},
		{"vendor AVP without M", buildMsg(2, MsgSCCRQ, true, with(sccrqV2, avpSpec{false, 52845, 1, []byte("x")})...), ok},
		// An RFC 3931 AVP is unknown to an L2TPv2 control connection.
		{"v3 AVP with M in v2 SCCRQ", buildMsg(2, MsgSCCRQ, true, with(sccrqV2, avpSpec{true, 0, AVPRouterID, u32(1)})...), stop(2, 8)},
		{"v2-only AVP with M in v3 ICCN", buildMsg(3, MsgICCN, true, avpSpec{true, 0, AVPLocalSessionID, u32(1)}, avpSpec{true, 0, AVPRemoteSessionID, u32(2)}, avpSpec{true, 0, AVPFramingType, u32(1)}), cdn(2, 8)},
		{"v2-only AVP without M in v3 ICCN (Mist)", buildMsg(3, MsgICCN, true, avpSpec{true, 0, AVPLocalSessionID, u32(1)}, avpSpec{true, 0, AVPRemoteSessionID, u32(2)}, avpSpec{false, 0, AVPFramingType, u32(1)}), ok},
		// Missing required AVPs (RFC 3931 §7.1: malformed).
		{"ICRQ without Call Serial Number", buildMsg(2, MsgICRQ, true, without(icrqV2, AVPCallSerialNumber)...), cdn(2, 2)},
		{"SCCRQ without Host Name", buildMsg(2, MsgSCCRQ, true, without(sccrqV2, AVPHostName)...), stop(2, 2)},
		{"v2 StopCCN without Result Code", buildMsg(2, MsgStopCCN, true, avpSpec{true, 0, AVPAssignedTunnelID, u16(1)}), stop(2, 2)},
		{"v3 CDN without Remote Session ID", buildMsg(3, MsgCDN, true, avpSpec{true, 0, AVPResultCode, u16(1)}, avpSpec{true, 0, AVPLocalSessionID, u32(1)}), cdn(2, 2)},
		// Bad lengths: with M (or required) 2/2, without M ignored.
		{"Assigned Session ID of 3 octets", buildMsg(2, MsgICRQ, true, avpSpec{true, 0, AVPAssignedSessionID, []byte{0, 0, 5}}, avpSpec{true, 0, AVPCallSerialNumber, u32(1)}), cdn(2, 2)},
		{"Result Code of 3 octets", buildMsg(2, MsgStopCCN, true, avpSpec{true, 0, AVPAssignedTunnelID, u16(1)}, avpSpec{true, 0, AVPResultCode, []byte{0, 1, 0}}), stop(2, 2)},
		{"optional Bearer Type of 2 octets with M", buildMsg(2, MsgICRQ, true, with(icrqV2, avpSpec{true, 0, AVPBearerType, u16(1)})...), cdn(2, 2)},
		{"optional Bearer Type of 2 octets without M", buildMsg(2, MsgICRQ, true, with(icrqV2, avpSpec{false, 0, AVPBearerType, u16(1)})...), ok},
		{"required AVP malformed without M", buildMsg(2, MsgICRQ, true, avpSpec{false, 0, AVPAssignedSessionID, []byte{1}}, avpSpec{true, 0, AVPCallSerialNumber, u32(1)}), cdn(2, 2)},
		{"Message Digest of type 1 with 16 octets", buildMsg(3, MsgHello, true, avpSpec{true, 0, AVPMessageDigest, append([]byte{1}, make([]byte, 16)...)}), stop(2, 2)},
		// A known AVP this message does not list is ignored.
		{"Host Name in Hello", buildMsg(2, MsgHello, true, avpSpec{true, 0, AVPHostName, []byte("x")}), ok},
		// RFC 2661 §4.4.1: unknown message type with M clears the tunnel,
		// without M it is ignored; ACK does not exist in v2.
		{"v2 ACK", buildMsg(2, MsgACK, true), stop(2, 3)},
		{"v3 ACK", buildMsg(3, MsgACK, true), ok},
		{"unknown type 99 with M", buildMsg(3, 99, true), stop(2, 3)},
		{"unknown type 99 without M", buildMsg(3, 99, false), want{action: ActionDrop}},
		{"message type 0 with AVPs", buildMsg(2, 0, true), stop(2, 3)},
		{"v3 FSQ", buildMsg(3, MsgFSQ, false, avpSpec{true, 0, AVPFailoverSessionState, make([]byte, 10)}), ok},
	}
	for _, c := range cases {
		err := Validate(&c.m)
		if c.want.ok {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a ProtocolError", c.name, err)
			continue
		}
		if pe.Action != c.want.action || pe.Result != c.want.result || pe.ErrorCode != c.want.errorCode {
			t.Errorf("%s: %v (%v %d/%d), want %v %d/%d", c.name, pe, pe.Action, pe.Result, pe.ErrorCode, c.want.action, c.want.result, c.want.errorCode)
		}
	}
}

// RFC 2661 §4.4.2: the Error Message of a 2/8 names the offending AVP.
func TestValidateNamesUnknownAVP(t *testing.T) {
	m := buildMsg(2, MsgICRQ, true, with(icrqV2, avpSpec{true, 52845, 7, nil})...)
	var pe *ProtocolError
	if !errors.As(Validate(&m), &pe) || pe.Msg != "unknown mandatory AVP AVP(vendor 52845, type 7)" {
		t.Errorf("%+v", pe)
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{MsgSCCRQ.String(), "SCCRQ"},
		{MsgStopCCN.String(), "StopCCN"},
		{MsgHello.String(), "HELLO"},
		{MsgACK.String(), "ACK"},
		{MsgType(99).String(), "MsgType(99)"},
		{AVPChallengeResponse.String(), "Challenge Response"},
		{AVPNonce.String(), "Control Message Authentication Nonce"},
		{AVPName(VendorCisco, CiscoAVPDraftAVPVersion), "Cisco Draft AVP Version"},
		{AVPName(VendorCisco, CiscoAVPACK), "Cisco ACK"},
		{AVPName(52845, 1), "AVP(vendor 52845, type 1)"},
		{ActionCDN.String(), "CDN"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
	// Every table entry has a name, and every message lists known AVPs.
	for _, s := range AVPs() {
		if s.Name == "" || s.Name[0] == 'A' && s.Name[:4] == "AVP(" {
			t.Errorf("unnamed AVP %d/%d", s.Vendor, s.Type)
		}
	}
	for _, s := range Messages() {
		for _, typ := range append(append([]AVPType{}, s.Required...), s.Optional...) {
			as, ok := LookupAVP(VendorIETF, typ)
			if !ok || !as.Versions.Has(s.Version) {
				t.Errorf("v%d %v lists %v, unknown in that version", s.Version, s.Type, typ)
			}
		}
	}
}
