package wire

// StopCCN Result Code values (RFC 2661 §4.4.2, RFC 3931 §5.4.2).
const (
	ResultClearConnection    uint16 = 1 // general request to clear the control connection
	ResultGeneralError       uint16 = 2 // general error, Error Code indicates the problem
	ResultChannelExists      uint16 = 3 // control channel already exists
	ResultNotAuthorized      uint16 = 4 // requester is not authorized to establish a control channel
	ResultUnsupportedVersion uint16 = 5 // protocol version not supported; Error Code holds the highest supported
	ResultShuttingDown       uint16 = 6 // requester is being shut down
	ResultFSMError           uint16 = 7 // finite state machine error (or timeout, RFC 3931)
)

// CDN Result Code values (RFC 2661 §4.4.2; 13-16 are RFC 3931 §5.4.2).
const (
	CDNLostCarrier          uint16 = 1  // call disconnected due to loss of carrier
	CDNGeneralError         uint16 = 2  // disconnected for the reason in the Error Code
	CDNAdmin                uint16 = 3  // disconnected for administrative reasons
	CDNNoResourcesTemp      uint16 = 4  // no appropriate facilities (temporary)
	CDNNoResourcesPerm      uint16 = 5  // no appropriate facilities (permanent)
	CDNInvalidDest          uint16 = 6  // invalid destination
	CDNNoCarrier            uint16 = 7  // no carrier detected
	CDNBusy                 uint16 = 8  // busy signal
	CDNNoDialTone           uint16 = 9  // no dial tone
	CDNTimeout              uint16 = 10 // call not established within the time allotted
	CDNBadFraming           uint16 = 11 // no framing detected
	CDNTieBreakerLost       uint16 = 13 // session not established due to losing the tie breaker
	CDNUnsupportedPWType    uint16 = 14 // unsupported pseudowire type
	CDNSequencingNoSublayer uint16 = 15 // sequencing required without a valid L2-Specific Sublayer
	CDNFSMError             uint16 = 16 // finite state machine error or timeout
)

// General Error Codes carried with Result Code 2 (RFC 2661 §4.4.2; 7 and
// 9 are RFC 3931 §5.4.2).
const (
	ErrCodeNone             uint16 = 0 // no general error
	ErrCodeNoControl        uint16 = 1 // no control connection exists yet for this LAC-LNS pair
	ErrCodeLength           uint16 = 2 // length is wrong
	ErrCodeRange            uint16 = 3 // a field value was out of range or a reserved field was non-zero
	ErrCodeResources        uint16 = 4 // insufficient resources to handle this operation now
	ErrCodeInvalidSession   uint16 = 5 // the Session ID is invalid in this context
	ErrCodeVendor           uint16 = 6 // a generic vendor-specific error occurred
	ErrCodeTryAnother       uint16 = 7 // try another LNS
	ErrCodeUnknownMandatory uint16 = 8 // unknown AVP with the M bit set
	ErrCodeTryAnotherDirect uint16 = 9 // try another, directed: the message lists addresses
)
