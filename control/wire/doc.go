// Package wire is the L2TP header and control message codec: the
// RFC 2661 (L2TPv2) and RFC 3931 (L2TPv3) headers over UDP and IP, the
// AVP encoding, AVP hiding, L2TPv2 tunnel authentication and L2TPv3
// control message authentication, and the table that says which AVPs
// each control message must and may carry. It uses the standard library
// only, keeps no state, reads no clock and starts no goroutine.
//
// # Receiving
//
// For each datagram the shell runs:
//
//  1. ParseHeader (or VersionOf) to classify: data or control, version,
//     tunnel / connection ID, session ID. It reads only the header, so a
//     packet for an unknown tunnel is counted and dropped without touching
//     the AVPs. A header of another version gives an error for which
//     errors.Is(err, ErrVersion) holds; errors.As with *VersionError gives
//     the version, so an SCCRQ of an unsupported version can be answered
//     with a StopCCN (Result Code 5).
//  2. For L2TPv3 with control message authentication enabled,
//     VerifyDigest (SCCRQ) or VerifyDigestNonce (everything later) before
//     anything else, with the key from DeriveAuthKey.
//  3. ParseMessage, passing back the AVP slice of the previous call so
//     that parsing does not allocate. AVP values view the datagram: copy
//     what must outlive the buffer.
//  4. (*Message).Unhide with the tunnel secret if the message may carry
//     hidden AVPs, then Validate. Validate checks hidden AVPs for presence
//     only, so run it after Unhide (or run it twice). A *ProtocolError
//     carries the answer: ActionStopCCN or ActionCDN with the Result Code
//     and Error Code to send, or ActionDrop for a message to ignore.
//     The reliable-delivery layer still acknowledges an ignored message.
//  5. Hand the message to the tunnel or session state machine, which
//     reads values with Find and the accessors (Uint16, ParseResultCode,
//     ...).
//
// # Sending
//
//	start := len(b)
//	b = wire.AppendControlHeader(b, enc, wire.Header{Version: 2, TunnelID: peerTID, SessionID: 0})
//	b = wire.AppendMessageType(b, wire.MsgSCCRQ)
//	b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPProtocolVersion, wire.ProtocolVersionV2)
//	...
//	wire.FinishControl(b, start, enc)
//
// Ns and Nr sit at NsNrOffset(enc) from the message start, so the
// reliable-delivery layer patches them on each (re)transmission. For
// L2TPv3 with authentication, AppendMessageDigestAVP follows the Message
// Type and SignDigest / SignDigestNonce runs after FinishControl and
// after every Ns/Nr patch (the digest covers the header).
//
// Hidden AVPs (AppendHiddenAVP) need a Random Vector AVP earlier in the
// message; the key is HidingKey(version, secret).
package wire
