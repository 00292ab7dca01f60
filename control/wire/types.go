package wire

import "strconv"

// Control message types: RFC 2661 §3.2, RFC 3931 §3.1 (ACK), RFC 4951 §4 (FSQ, FSR).
const (
	MsgZLB     MsgType = 0
	MsgSCCRQ   MsgType = 1
	MsgSCCRP   MsgType = 2
	MsgSCCCN   MsgType = 3
	MsgStopCCN MsgType = 4
	MsgHello   MsgType = 6
	MsgOCRQ    MsgType = 7
	MsgOCRP    MsgType = 8
	MsgOCCN    MsgType = 9
	MsgICRQ    MsgType = 10
	MsgICRP    MsgType = 11
	MsgICCN    MsgType = 12
	MsgCDN     MsgType = 14
	MsgWEN     MsgType = 15
	MsgSLI     MsgType = 16
	MsgACK     MsgType = 20
	MsgFSQ     MsgType = 21
	MsgFSR     MsgType = 22
)

// String returns the RFC abbreviation of the message type.
func (t MsgType) String() string {
	switch t {
	case MsgZLB:
		return "ZLB"
	case MsgSCCRQ:
		return "SCCRQ"
	case MsgSCCRP:
		return "SCCRP"
	case MsgSCCCN:
		return "SCCCN"
	case MsgStopCCN:
		return "StopCCN"
	case MsgHello:
		return "HELLO"
	case MsgOCRQ:
		return "OCRQ"
	case MsgOCRP:
		return "OCRP"
	case MsgOCCN:
		return "OCCN"
	case MsgICRQ:
		return "ICRQ"
	case MsgICRP:
		return "ICRP"
	case MsgICCN:
		return "ICCN"
	case MsgCDN:
		return "CDN"
	case MsgWEN:
		return "WEN"
	case MsgSLI:
		return "SLI"
	case MsgACK:
		return "ACK"
	case MsgFSQ:
		return "FSQ"
	case MsgFSR:
		return "FSR"
	}
	return "MsgType(" + strconv.Itoa(int(t)) + ")"
}

// Vendor IDs (SMI Network Management Private Enterprise Codes).
const (
	VendorIETF  uint32 = 0
	VendorCisco uint32 = 9
)

// IETF AVP types (vendor 0): RFC 2661 §4.4, RFC 3145 (46), RFC 3931 §5.4
// (58-75) and RFC 4951 §5 (76-79).
const (
	AVPMessageType               AVPType = 0
	AVPResultCode                AVPType = 1
	AVPProtocolVersion           AVPType = 2
	AVPFramingCapabilities       AVPType = 3
	AVPBearerCapabilities        AVPType = 4
	AVPTieBreaker                AVPType = 5
	AVPFirmwareRevision          AVPType = 6
	AVPHostName                  AVPType = 7
	AVPVendorName                AVPType = 8
	AVPAssignedTunnelID          AVPType = 9
	AVPReceiveWindowSize         AVPType = 10
	AVPChallenge                 AVPType = 11
	AVPQ931Cause                 AVPType = 12
	AVPChallengeResponse         AVPType = 13
	AVPAssignedSessionID         AVPType = 14
	AVPCallSerialNumber          AVPType = 15
	AVPMinimumBPS                AVPType = 16
	AVPMaximumBPS                AVPType = 17
	AVPBearerType                AVPType = 18
	AVPFramingType               AVPType = 19
	AVPCalledNumber              AVPType = 21
	AVPCallingNumber             AVPType = 22
	AVPSubAddress                AVPType = 23
	AVPTxConnectSpeed            AVPType = 24
	AVPPhysicalChannelID         AVPType = 25
	AVPInitialReceivedLCPConfReq AVPType = 26
	AVPLastSentLCPConfReq        AVPType = 27
	AVPLastReceivedLCPConfReq    AVPType = 28
	AVPProxyAuthenType           AVPType = 29
	AVPProxyAuthenName           AVPType = 30
	AVPProxyAuthenChallenge      AVPType = 31
	AVPProxyAuthenID             AVPType = 32
	AVPProxyAuthenResponse       AVPType = 33
	AVPCallErrors                AVPType = 34
	AVPACCM                      AVPType = 35
	AVPRandomVector              AVPType = 36
	AVPPrivateGroupID            AVPType = 37
	AVPRxConnectSpeed            AVPType = 38
	AVPSequencingRequired        AVPType = 39
	AVPPPPDisconnectCause        AVPType = 46
	AVPExtendedVendorID          AVPType = 58
	AVPMessageDigest             AVPType = 59
	AVPRouterID                  AVPType = 60
	AVPAssignedConnectionID      AVPType = 61
	AVPPseudowireCapabilities    AVPType = 62
	AVPLocalSessionID            AVPType = 63
	AVPRemoteSessionID           AVPType = 64
	AVPAssignedCookie            AVPType = 65
	AVPRemoteEndID               AVPType = 66
	AVPPseudowireType            AVPType = 68
	AVPL2SpecificSublayer        AVPType = 69
	AVPDataSequencing            AVPType = 70
	AVPCircuitStatus             AVPType = 71
	AVPPreferredLanguage         AVPType = 72
	AVPNonce                     AVPType = 73
	AVPTxConnectSpeedV3          AVPType = 74
	AVPRxConnectSpeedV3          AVPType = 75
	AVPFailoverCapability        AVPType = 76
	AVPTunnelRecovery            AVPType = 77
	AVPSuggestedControlSequence  AVPType = 78
	AVPFailoverSessionState      AVPType = 79
)

// Cisco AVP types (vendor 9) used by Cisco's pre-RFC L2TPv3 control
// plane; they are named in logs but not interpreted.
const (
	CiscoAVPACK                    AVPType = 0
	CiscoAVPAssignedConnectionID   AVPType = 1
	CiscoAVPPseudowireCapabilities AVPType = 2
	CiscoAVPLocalSessionID         AVPType = 3
	CiscoAVPRemoteSessionID        AVPType = 4
	CiscoAVPAssignedCookie         AVPType = 5
	CiscoAVPRemoteEndID            AVPType = 6
	CiscoAVPPseudowireType         AVPType = 7
	CiscoAVPCircuitStatus          AVPType = 8
	CiscoAVPSessionTieBreaker      AVPType = 9
	CiscoAVPDraftAVPVersion        AVPType = 10
	CiscoAVPMessageDigest          AVPType = 12
	CiscoAVPNonce                  AVPType = 13
	CiscoAVPInterfaceMTU           AVPType = 14
)

// String returns the RFC name of an IETF AVP type.
func (t AVPType) String() string { return AVPName(VendorIETF, t) }

// AVPName names an AVP of the given vendor; unknown ones are given as
// numbers ("AVP(vendor 52845, type 3)").
func AVPName(vendor uint32, t AVPType) string {
	switch vendor {
	case VendorIETF:
		switch t {
		case AVPMessageType:
			return "Message Type"
		case AVPResultCode:
			return "Result Code"
		case AVPProtocolVersion:
			return "Protocol Version"
		case AVPFramingCapabilities:
			return "Framing Capabilities"
		case AVPBearerCapabilities:
			return "Bearer Capabilities"
		case AVPTieBreaker:
			return "Tie Breaker"
		case AVPFirmwareRevision:
			return "Firmware Revision"
		case AVPHostName:
			return "Host Name"
		case AVPVendorName:
			return "Vendor Name"
		case AVPAssignedTunnelID:
			return "Assigned Tunnel ID"
		case AVPReceiveWindowSize:
			return "Receive Window Size"
		case AVPChallenge:
			return "Challenge"
		case AVPQ931Cause:
			return "Q.931 Cause Code"
		case AVPChallengeResponse:
			return "Challenge Response"
		case AVPAssignedSessionID:
			return "Assigned Session ID"
		case AVPCallSerialNumber:
			return "Call Serial Number"
		case AVPMinimumBPS:
			return "Minimum BPS"
		case AVPMaximumBPS:
			return "Maximum BPS"
		case AVPBearerType:
			return "Bearer Type"
		case AVPFramingType:
			return "Framing Type"
		case AVPCalledNumber:
			return "Called Number"
		case AVPCallingNumber:
			return "Calling Number"
		case AVPSubAddress:
			return "Sub-Address"
		case AVPTxConnectSpeed:
			return "(Tx) Connect Speed"
		case AVPPhysicalChannelID:
			return "Physical Channel ID"
		case AVPInitialReceivedLCPConfReq:
			return "Initial Received LCP CONFREQ"
		case AVPLastSentLCPConfReq:
			return "Last Sent LCP CONFREQ"
		case AVPLastReceivedLCPConfReq:
			return "Last Received LCP CONFREQ"
		case AVPProxyAuthenType:
			return "Proxy Authen Type"
		case AVPProxyAuthenName:
			return "Proxy Authen Name"
		case AVPProxyAuthenChallenge:
			return "Proxy Authen Challenge"
		case AVPProxyAuthenID:
			return "Proxy Authen ID"
		case AVPProxyAuthenResponse:
			return "Proxy Authen Response"
		case AVPCallErrors:
			return "Call Errors"
		case AVPACCM:
			return "ACCM"
		case AVPRandomVector:
			return "Random Vector"
		case AVPPrivateGroupID:
			return "Private Group ID"
		case AVPRxConnectSpeed:
			return "Rx Connect Speed"
		case AVPSequencingRequired:
			return "Sequencing Required"
		case AVPPPPDisconnectCause:
			return "PPP Disconnect Cause Code"
		case AVPExtendedVendorID:
			return "Extended Vendor ID"
		case AVPMessageDigest:
			return "Message Digest"
		case AVPRouterID:
			return "Router ID"
		case AVPAssignedConnectionID:
			return "Assigned Control Connection ID"
		case AVPPseudowireCapabilities:
			return "Pseudowire Capabilities List"
		case AVPLocalSessionID:
			return "Local Session ID"
		case AVPRemoteSessionID:
			return "Remote Session ID"
		case AVPAssignedCookie:
			return "Assigned Cookie"
		case AVPRemoteEndID:
			return "Remote End ID"
		case AVPPseudowireType:
			return "Pseudowire Type"
		case AVPL2SpecificSublayer:
			return "L2-Specific Sublayer"
		case AVPDataSequencing:
			return "Data Sequencing"
		case AVPCircuitStatus:
			return "Circuit Status"
		case AVPPreferredLanguage:
			return "Preferred Language"
		case AVPNonce:
			return "Control Message Authentication Nonce"
		case AVPTxConnectSpeedV3:
			return "Tx Connect Speed"
		case AVPRxConnectSpeedV3:
			return "Rx Connect Speed"
		case AVPFailoverCapability:
			return "Failover Capability"
		case AVPTunnelRecovery:
			return "Tunnel Recovery"
		case AVPSuggestedControlSequence:
			return "Suggested Control Sequence"
		case AVPFailoverSessionState:
			return "Failover Session State"
		}
	case VendorCisco:
		switch t {
		case CiscoAVPACK:
			return "Cisco ACK"
		case CiscoAVPAssignedConnectionID:
			return "Cisco Assigned Connection ID"
		case CiscoAVPPseudowireCapabilities:
			return "Cisco Pseudowire Capabilities List"
		case CiscoAVPLocalSessionID:
			return "Cisco Local Session ID"
		case CiscoAVPRemoteSessionID:
			return "Cisco Remote Session ID"
		case CiscoAVPAssignedCookie:
			return "Cisco Assigned Cookie"
		case CiscoAVPRemoteEndID:
			return "Cisco Remote End ID"
		case CiscoAVPPseudowireType:
			return "Cisco Pseudowire Type"
		case CiscoAVPCircuitStatus:
			return "Cisco Circuit Status"
		case CiscoAVPSessionTieBreaker:
			return "Cisco Session Tie Breaker"
		case CiscoAVPDraftAVPVersion:
			return "Cisco Draft AVP Version"
		case CiscoAVPMessageDigest:
			return "Cisco Message Digest"
		case CiscoAVPNonce:
			return "Cisco Control Message Authentication Nonce"
		case CiscoAVPInterfaceMTU:
			return "Cisco Interface MTU"
		}
	}
	return "AVP(vendor " + strconv.FormatUint(uint64(vendor), 10) + ", type " + strconv.Itoa(int(t)) + ")"
}
