package wire

// ValueKind is the shape of an AVP value.
type ValueKind uint8

const (
	KindOctets         ValueKind = iota // opaque bytes
	KindString                          // text (names, numbers, Remote End ID)
	KindEmpty                           // no value (Sequencing Required)
	KindUint16                          // one 16-bit number
	KindUint32                          // one 32-bit number
	KindUint64                          // one 64-bit number (or 8 opaque octets: Tie Breaker)
	KindUint16List                      // list of 16-bit numbers (Pseudowire Capabilities)
	KindResultCode                      // Result Code, optional Error Code and message
	KindQ931Cause                       // Q.931 cause, message and advisory text
	KindCallErrors                      // reserved word and six 32-bit counters
	KindACCM                            // reserved word, send and receive ACCM
	KindPPPDisconnect                   // RFC 3145 code, protocol, direction, text
	KindMessageDigest                   // digest type and HMAC
	KindFailoverStruct                  // RFC 4951 structured values
)

// Versions is a set of L2TP versions.
type Versions uint8

const (
	V2  Versions = 1 << iota // RFC 2661
	V3                       // RFC 3931
	V23 = V2 | V3
)

// Has reports whether version v (2 or 3) is in the set.
func (s Versions) Has(v uint8) bool {
	switch v {
	case 2:
		return s&V2 != 0
	case 3:
		return s&V3 != 0
	}
	return false
}

// AVPSpec describes one AVP. MinLen and MaxLen bound the clear value
// length in octets; MaxLen -1 means up to the AVP length limit.
type AVPSpec struct {
	Vendor    uint32
	Type      AVPType
	Name      string
	Mandatory bool // the M bit l2tpd sends
	MayHide   bool // the RFC allows the H bit
	Kind      ValueKind
	MinLen    int
	MaxLen    int
	Versions  Versions // versions in which l2tpd recognizes the AVP; 0 = named only
}

// avpTable is every AVP l2tpd knows: RFC 2661 §4.4, RFC 3145, RFC 3931
// §5.4, RFC 4951 §5, and Cisco's draft-era L2TPv3 AVPs (named only, so an
// M bit on one of them is treated as unrecognized).
var avpTable = []AVPSpec{
	{VendorIETF, AVPMessageType, "", true, false, KindUint16, 2, 2, V23},
	{VendorIETF, AVPResultCode, "", true, false, KindResultCode, 2, -1, V23},
	{VendorIETF, AVPProtocolVersion, "", true, false, KindUint16, 2, 2, V2},
	{VendorIETF, AVPFramingCapabilities, "", true, true, KindUint32, 4, 4, V2},
	{VendorIETF, AVPBearerCapabilities, "", true, true, KindUint32, 4, 4, V2},
	{VendorIETF, AVPTieBreaker, "", false, false, KindUint64, 8, 8, V23},
	{VendorIETF, AVPFirmwareRevision, "", false, true, KindUint16, 2, 2, V2},
	{VendorIETF, AVPHostName, "", true, false, KindString, 1, -1, V23},
	{VendorIETF, AVPVendorName, "", false, true, KindString, 0, -1, V23},
	{VendorIETF, AVPAssignedTunnelID, "", true, true, KindUint16, 2, 2, V2},
	{VendorIETF, AVPReceiveWindowSize, "", true, false, KindUint16, 2, 2, V23},
	{VendorIETF, AVPChallenge, "", true, true, KindOctets, 1, -1, V2},
	{VendorIETF, AVPQ931Cause, "", true, false, KindQ931Cause, 3, -1, V23},
	{VendorIETF, AVPChallengeResponse, "", true, true, KindOctets, 16, 16, V2},
	{VendorIETF, AVPAssignedSessionID, "", true, true, KindUint16, 2, 2, V2},
	{VendorIETF, AVPCallSerialNumber, "", true, true, KindUint32, 4, 4, V23},
	{VendorIETF, AVPMinimumBPS, "", true, true, KindUint32, 4, 4, V2},
	{VendorIETF, AVPMaximumBPS, "", true, true, KindUint32, 4, 4, V2},
	{VendorIETF, AVPBearerType, "", true, true, KindUint32, 4, 4, V2},
	{VendorIETF, AVPFramingType, "", true, true, KindUint32, 4, 4, V2},
	{VendorIETF, AVPCalledNumber, "", true, true, KindString, 0, -1, V2},
	{VendorIETF, AVPCallingNumber, "", true, true, KindString, 0, -1, V2},
	{VendorIETF, AVPSubAddress, "", true, true, KindString, 0, -1, V2},
	{VendorIETF, AVPTxConnectSpeed, "", true, true, KindUint32, 4, 4, V2},
	{VendorIETF, AVPPhysicalChannelID, "", false, true, KindUint32, 4, 4, V23},
	{VendorIETF, AVPInitialReceivedLCPConfReq, "", false, true, KindOctets, 0, -1, V2},
	{VendorIETF, AVPLastSentLCPConfReq, "", false, true, KindOctets, 0, -1, V2},
	{VendorIETF, AVPLastReceivedLCPConfReq, "", false, true, KindOctets, 0, -1, V2},
	{VendorIETF, AVPProxyAuthenType, "", false, true, KindUint16, 2, 2, V2},
	{VendorIETF, AVPProxyAuthenName, "", false, true, KindString, 0, -1, V2},
	{VendorIETF, AVPProxyAuthenChallenge, "", false, true, KindOctets, 1, -1, V2},
	{VendorIETF, AVPProxyAuthenID, "", false, true, KindUint16, 2, 2, V2},
	{VendorIETF, AVPProxyAuthenResponse, "", false, true, KindOctets, 0, -1, V2},
	{VendorIETF, AVPCallErrors, "", true, true, KindCallErrors, 26, 26, V23},
	{VendorIETF, AVPACCM, "", true, true, KindACCM, 10, 10, V2},
	{VendorIETF, AVPRandomVector, "", true, false, KindOctets, 1, -1, V23},
	{VendorIETF, AVPPrivateGroupID, "", false, true, KindOctets, 0, -1, V2},
	{VendorIETF, AVPRxConnectSpeed, "", false, true, KindUint32, 4, 4, V2},
	{VendorIETF, AVPSequencingRequired, "", true, false, KindEmpty, 0, 0, V2},
	{VendorIETF, AVPPPPDisconnectCause, "", false, true, KindPPPDisconnect, 5, -1, V23},
	{VendorIETF, AVPMessageDigest, "", true, false, KindMessageDigest, 17, 21, V3},
	{VendorIETF, AVPRouterID, "", true, false, KindUint32, 4, 4, V3},
	{VendorIETF, AVPAssignedConnectionID, "", true, true, KindUint32, 4, 4, V3},
	{VendorIETF, AVPPseudowireCapabilities, "", true, true, KindUint16List, 2, -1, V3},
	{VendorIETF, AVPLocalSessionID, "", true, true, KindUint32, 4, 4, V3},
	{VendorIETF, AVPRemoteSessionID, "", true, true, KindUint32, 4, 4, V3},
	{VendorIETF, AVPAssignedCookie, "", true, true, KindOctets, 4, 8, V3},
	{VendorIETF, AVPRemoteEndID, "", true, true, KindString, 1, -1, V3},
	{VendorIETF, AVPPseudowireType, "", true, true, KindUint16, 2, 2, V3},
	{VendorIETF, AVPL2SpecificSublayer, "", true, true, KindUint16, 2, 2, V3},
	{VendorIETF, AVPDataSequencing, "", true, true, KindUint16, 2, 2, V3},
	{VendorIETF, AVPCircuitStatus, "", true, true, KindUint16, 2, 2, V3},
	{VendorIETF, AVPPreferredLanguage, "", false, true, KindString, 1, -1, V3},
	{VendorIETF, AVPNonce, "", true, false, KindOctets, 1, -1, V3},
	{VendorIETF, AVPTxConnectSpeedV3, "", false, true, KindUint64, 8, 8, V3},
	{VendorIETF, AVPRxConnectSpeedV3, "", false, true, KindUint64, 8, 8, V3},
	{VendorIETF, AVPFailoverCapability, "", false, true, KindFailoverStruct, 6, 6, V23},
	{VendorIETF, AVPTunnelRecovery, "", true, false, KindFailoverStruct, 10, 10, V23},
	{VendorIETF, AVPSuggestedControlSequence, "", false, true, KindFailoverStruct, 6, 6, V23},
	{VendorIETF, AVPFailoverSessionState, "", true, true, KindFailoverStruct, 10, 10, V23},

	{VendorCisco, CiscoAVPACK, "", true, false, KindEmpty, 0, 0, 0},
	{VendorCisco, CiscoAVPAssignedConnectionID, "", true, false, KindUint32, 4, 4, 0},
	{VendorCisco, CiscoAVPPseudowireCapabilities, "", true, false, KindUint16List, 2, -1, 0},
	{VendorCisco, CiscoAVPLocalSessionID, "", true, false, KindUint32, 4, 4, 0},
	{VendorCisco, CiscoAVPRemoteSessionID, "", true, false, KindUint32, 4, 4, 0},
	{VendorCisco, CiscoAVPAssignedCookie, "", true, false, KindOctets, 4, 8, 0},
	{VendorCisco, CiscoAVPRemoteEndID, "", true, false, KindString, 1, -1, 0},
	{VendorCisco, CiscoAVPPseudowireType, "", true, false, KindUint16, 2, 2, 0},
	{VendorCisco, CiscoAVPCircuitStatus, "", true, false, KindUint16, 2, 2, 0},
	{VendorCisco, CiscoAVPSessionTieBreaker, "", true, false, KindUint64, 8, 8, 0},
	{VendorCisco, CiscoAVPDraftAVPVersion, "", true, false, KindUint16, 2, 2, 0},
	{VendorCisco, CiscoAVPMessageDigest, "", true, false, KindMessageDigest, 17, 21, 0},
	{VendorCisco, CiscoAVPNonce, "", true, false, KindOctets, 1, -1, 0},
	{VendorCisco, CiscoAVPInterfaceMTU, "", true, false, KindUint16, 2, 2, 0},
}

// ietfSpecs indexes the IETF part of avpTable by type.
var ietfSpecs [128]*AVPSpec

func init() {
	for i := range avpTable {
		s := &avpTable[i]
		s.Name = AVPName(s.Vendor, s.Type)
		if s.MaxLen < 0 {
			s.MaxLen = MaxAVPValue
		}
		if s.Vendor == VendorIETF {
			ietfSpecs[s.Type] = s
		}
	}
	for i := range msgTable {
		s := &msgTable[i]
		s.required = bitsOf(s.Required)
		s.allowed = bitsOf(s.Required)
		for _, t := range s.Optional {
			s.allowed.set(t)
		}
		msgIndex[s.Version-2][s.Type] = s
	}
}

// AVPs returns the AVP table (do not modify it).
func AVPs() []AVPSpec { return avpTable }

// LookupAVP returns the description of an AVP, whatever the version.
func LookupAVP(vendor uint32, t AVPType) (*AVPSpec, bool) {
	if vendor == VendorIETF {
		if int(t) < len(ietfSpecs) && ietfSpecs[t] != nil {
			return ietfSpecs[t], true
		}
		return nil, false
	}
	for i := range avpTable {
		if avpTable[i].Vendor == vendor && avpTable[i].Type == t {
			return &avpTable[i], true
		}
	}
	return nil, false
}

// avpBits is a set of IETF AVP types below 128.
type avpBits [2]uint64

func (b avpBits) has(t AVPType) bool {
	return t < 128 && b[t>>6]&(1<<(t&63)) != 0
}

func (b *avpBits) set(t AVPType) {
	if t < 128 {
		b[t>>6] |= 1 << (t & 63)
	}
}

func bitsOf(ts []AVPType) avpBits {
	var b avpBits
	for _, t := range ts {
		b.set(t)
	}
	return b
}

// MsgSpec describes one control message of one version: its scope (a
// session message is answered with a CDN, a control connection message
// with a StopCCN) and the IETF AVPs it must and may carry besides Message
// Type, Random Vector and (v3) Message Digest, which every message may
// carry.
type MsgSpec struct {
	Type     MsgType
	Version  uint8
	Session  bool
	Required []AVPType
	Optional []AVPType

	required avpBits
	allowed  avpBits
}

// Requires reports whether the message must carry the IETF AVP t.
func (s *MsgSpec) Requires(t AVPType) bool { return s.required.has(t) }

// Allows reports whether the message may carry the IETF AVP t.
func (s *MsgSpec) Allows(t AVPType) bool {
	return s.allowed.has(t) || t == AVPMessageType || t == AVPRandomVector ||
		(s.Version == 3 && t == AVPMessageDigest)
}

var msgIndex [2][32]*MsgSpec

// LookupMsg returns the description of message t in version v (2 or 3).
func LookupMsg(v uint8, t MsgType) (*MsgSpec, bool) {
	if v < 2 || v > 3 || int(t) >= len(msgIndex[0]) {
		return nil, false
	}
	s := msgIndex[v-2][t]
	return s, s != nil
}

type l = []AVPType

// msgTable: RFC 2661 §6.1-§6.14 (v2), RFC 3931 §6.1-§6.15 (v3), RFC 3145
// (PPP Disconnect Cause in CDN), RFC 4951 §4-§5 (failover).
var msgTable = []MsgSpec{
	// L2TPv2.
	{Type: MsgSCCRQ, Version: 2,
		Required: l{AVPProtocolVersion, AVPHostName, AVPFramingCapabilities, AVPAssignedTunnelID},
		Optional: l{AVPBearerCapabilities, AVPReceiveWindowSize, AVPChallenge, AVPTieBreaker, AVPFirmwareRevision, AVPVendorName, AVPFailoverCapability, AVPTunnelRecovery}},
	{Type: MsgSCCRP, Version: 2,
		Required: l{AVPProtocolVersion, AVPFramingCapabilities, AVPHostName, AVPAssignedTunnelID},
		Optional: l{AVPBearerCapabilities, AVPFirmwareRevision, AVPVendorName, AVPReceiveWindowSize, AVPChallenge, AVPChallengeResponse, AVPFailoverCapability, AVPSuggestedControlSequence}},
	{Type: MsgSCCCN, Version: 2, Optional: l{AVPChallengeResponse}},
	{Type: MsgStopCCN, Version: 2, Required: l{AVPAssignedTunnelID, AVPResultCode}},
	{Type: MsgHello, Version: 2},
	{Type: MsgOCRQ, Version: 2, Session: true,
		Required: l{AVPAssignedSessionID, AVPCallSerialNumber, AVPMinimumBPS, AVPMaximumBPS, AVPBearerType, AVPFramingType, AVPCalledNumber},
		Optional: l{AVPSubAddress}},
	{Type: MsgOCRP, Version: 2, Session: true, Required: l{AVPAssignedSessionID}, Optional: l{AVPPhysicalChannelID}},
	{Type: MsgOCCN, Version: 2, Session: true, Required: l{AVPTxConnectSpeed, AVPFramingType},
		Optional: l{AVPRxConnectSpeed, AVPSequencingRequired}},
	{Type: MsgICRQ, Version: 2, Session: true, Required: l{AVPAssignedSessionID, AVPCallSerialNumber},
		Optional: l{AVPBearerType, AVPPhysicalChannelID, AVPCallingNumber, AVPCalledNumber, AVPSubAddress}},
	{Type: MsgICRP, Version: 2, Session: true, Required: l{AVPAssignedSessionID}},
	{Type: MsgICCN, Version: 2, Session: true, Required: l{AVPTxConnectSpeed, AVPFramingType},
		Optional: l{AVPInitialReceivedLCPConfReq, AVPLastSentLCPConfReq, AVPLastReceivedLCPConfReq,
			AVPProxyAuthenType, AVPProxyAuthenName, AVPProxyAuthenChallenge, AVPProxyAuthenID, AVPProxyAuthenResponse,
			AVPPrivateGroupID, AVPRxConnectSpeed, AVPSequencingRequired}},
	{Type: MsgCDN, Version: 2, Session: true, Required: l{AVPResultCode, AVPAssignedSessionID},
		Optional: l{AVPQ931Cause, AVPPPPDisconnectCause}},
	{Type: MsgWEN, Version: 2, Session: true, Required: l{AVPCallErrors}},
	{Type: MsgSLI, Version: 2, Session: true, Required: l{AVPACCM}},
	{Type: MsgFSQ, Version: 2, Required: l{AVPFailoverSessionState}},
	{Type: MsgFSR, Version: 2, Required: l{AVPFailoverSessionState}},

	// L2TPv3.
	{Type: MsgSCCRQ, Version: 3,
		Required: l{AVPHostName, AVPRouterID, AVPAssignedConnectionID, AVPPseudowireCapabilities},
		Optional: l{AVPNonce, AVPTieBreaker, AVPVendorName, AVPReceiveWindowSize, AVPPreferredLanguage, AVPFailoverCapability, AVPTunnelRecovery}},
	{Type: MsgSCCRP, Version: 3,
		Required: l{AVPHostName, AVPRouterID, AVPAssignedConnectionID, AVPPseudowireCapabilities},
		Optional: l{AVPNonce, AVPVendorName, AVPReceiveWindowSize, AVPPreferredLanguage, AVPFailoverCapability, AVPSuggestedControlSequence}},
	{Type: MsgSCCCN, Version: 3},
	{Type: MsgStopCCN, Version: 3, Required: l{AVPResultCode}, Optional: l{AVPAssignedConnectionID}},
	{Type: MsgHello, Version: 3},
	{Type: MsgOCRQ, Version: 3, Session: true,
		Required: l{AVPLocalSessionID, AVPRemoteSessionID, AVPCallSerialNumber, AVPPseudowireType, AVPRemoteEndID, AVPCircuitStatus},
		Optional: l{AVPAssignedCookie, AVPTxConnectSpeedV3, AVPRxConnectSpeedV3, AVPTieBreaker, AVPL2SpecificSublayer, AVPDataSequencing}},
	{Type: MsgOCRP, Version: 3, Session: true,
		Required: l{AVPLocalSessionID, AVPRemoteSessionID, AVPCircuitStatus},
		Optional: l{AVPAssignedCookie, AVPL2SpecificSublayer, AVPTxConnectSpeedV3, AVPRxConnectSpeedV3, AVPDataSequencing, AVPPhysicalChannelID}},
	{Type: MsgOCCN, Version: 3, Session: true,
		Required: l{AVPLocalSessionID, AVPRemoteSessionID},
		Optional: l{AVPL2SpecificSublayer, AVPTxConnectSpeedV3, AVPRxConnectSpeedV3, AVPDataSequencing, AVPCircuitStatus}},
	{Type: MsgICRQ, Version: 3, Session: true,
		Required: l{AVPLocalSessionID, AVPRemoteSessionID, AVPCallSerialNumber, AVPPseudowireType, AVPRemoteEndID, AVPCircuitStatus},
		Optional: l{AVPAssignedCookie, AVPTieBreaker, AVPL2SpecificSublayer, AVPDataSequencing, AVPTxConnectSpeedV3, AVPRxConnectSpeedV3, AVPPhysicalChannelID}},
	{Type: MsgICRP, Version: 3, Session: true,
		Required: l{AVPLocalSessionID, AVPRemoteSessionID, AVPCircuitStatus},
		Optional: l{AVPAssignedCookie, AVPL2SpecificSublayer, AVPDataSequencing, AVPTxConnectSpeedV3, AVPRxConnectSpeedV3, AVPPhysicalChannelID}},
	{Type: MsgICCN, Version: 3, Session: true,
		Required: l{AVPLocalSessionID, AVPRemoteSessionID},
		Optional: l{AVPL2SpecificSublayer, AVPDataSequencing, AVPTxConnectSpeedV3, AVPRxConnectSpeedV3, AVPCircuitStatus}},
	{Type: MsgCDN, Version: 3, Session: true,
		Required: l{AVPResultCode, AVPLocalSessionID, AVPRemoteSessionID},
		Optional: l{AVPQ931Cause, AVPPPPDisconnectCause}},
	{Type: MsgWEN, Version: 3, Session: true, Required: l{AVPLocalSessionID, AVPRemoteSessionID, AVPCallErrors}},
	{Type: MsgSLI, Version: 3, Session: true, Required: l{AVPLocalSessionID, AVPRemoteSessionID}, Optional: l{AVPCircuitStatus}},
	{Type: MsgACK, Version: 3},
	{Type: MsgFSQ, Version: 3, Required: l{AVPFailoverSessionState}},
	{Type: MsgFSR, Version: 3, Required: l{AVPFailoverSessionState}},
}

// Messages returns the message table (do not modify it).
func Messages() []MsgSpec { return msgTable }
