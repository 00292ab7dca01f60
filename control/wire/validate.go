package wire

import "strconv"

// String names the action.
func (a Action) String() string {
	switch a {
	case ActionDrop:
		return "drop"
	case ActionStopCCN:
		return "StopCCN"
	case ActionCDN:
		return "CDN"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

func (e *ProtocolError) error() string {
	s := "wire: " + e.Action.String() + " result " + strconv.Itoa(int(e.Result)) +
		" error " + strconv.Itoa(int(e.ErrorCode))
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// scopeError builds the answer for a message of the given spec: a CDN
// for a session message, a StopCCN otherwise (RFC 2661 §4.2, RFC 3931
// §5.2). The Result Code is 2 (general error) in both cases.
func scopeError(spec *MsgSpec, errCode uint16, msg string) *ProtocolError {
	if spec != nil && spec.Session {
		return &ProtocolError{Action: ActionCDN, Result: CDNGeneralError, ErrorCode: errCode, Msg: msg}
	}
	return &ProtocolError{Action: ActionStopCCN, Result: ResultGeneralError, ErrorCode: errCode, Msg: msg}
}

// validate implements Validate. The rules, in order:
//
//   - A ZLB (no AVPs) is valid.
//   - Message type unknown for the version (or vendor-specific): with the
//     M bit on Message Type, StopCCN 2/3 (RFC 2661 §4.4.1, RFC 3931
//     §5.4.1: the control connection must be cleared); without it, drop.
//   - Each further AVP: if it is not recognized in this version (not in
//     the AVP table for the version, any vendor AVP), the M bit decides:
//     set gives a StopCCN or CDN 2/8 naming the AVP (RFC 2661 §4.2, RFC
//     3931 §5.2), clear skips it. A recognized AVP that this message does
//     not list is ignored. A hidden AVP whose type must not be hidden, or
//     one with no Random Vector before it, is malformed (2/3). A hidden
//     AVP is otherwise only counted as present: its length is checked by
//     calling Validate again after (*Message).Unhide.
//   - A clear AVP whose length is outside the table limits is malformed.
//     RFC 3931 §7.1: with the M bit set, or if the message requires it,
//     the answer is 2/2 (length is wrong); otherwise the AVP is ignored,
//     and its accessor (Uint16 and so on) reports the error.
//   - A required AVP that is absent: 2/2 as well (the message is too
//     short to be valid; RFC 3931 §7.1 calls it malformed).
func validate(m *Message) error {
	if len(m.AVPs) == 0 {
		return nil
	}
	ver := m.Header.Version
	mt := m.AVPs[0]
	spec, ok := LookupMsg(ver, m.Type)
	if mt.Vendor != VendorIETF || !ok {
		if !mt.Mandatory {
			return &ProtocolError{Action: ActionDrop, Msg: "ignored unknown message type " + m.Type.String()}
		}
		return &ProtocolError{Action: ActionStopCCN, Result: ResultGeneralError, ErrorCode: ErrCodeRange,
			Msg: "unknown mandatory message type " + m.Type.String() + " for L2TPv" + strconv.Itoa(int(ver))}
	}
	var seen avpBits
	haveRV := false
	for _, a := range m.AVPs[1:] {
		as, known := LookupAVP(a.Vendor, a.Type)
		if !known || !as.Versions.Has(ver) {
			if a.Mandatory {
				return scopeError(spec, ErrCodeUnknownMandatory, "unknown mandatory AVP "+AVPName(a.Vendor, a.Type))
			}
			continue
		}
		if a.Type == AVPRandomVector && !a.Hidden {
			haveRV = true
		}
		if !spec.Allows(a.Type) {
			continue
		}
		if a.Hidden {
			if !as.MayHide {
				return scopeError(spec, ErrCodeRange, as.Name+" must not be hidden")
			}
			if !haveRV {
				return scopeError(spec, ErrCodeRange, "hidden "+as.Name+" without Random Vector")
			}
			seen.set(a.Type)
			continue
		}
		if !valueOK(as, a.Value) {
			if a.Mandatory || spec.Requires(a.Type) {
				return scopeError(spec, ErrCodeLength, "bad length "+strconv.Itoa(len(a.Value))+" of "+as.Name)
			}
			continue
		}
		seen.set(a.Type)
	}
	for _, t := range spec.Required {
		if !seen.has(t) {
			return scopeError(spec, ErrCodeLength, spec.Type.String()+" without "+t.String())
		}
	}
	return nil
}

// valueOK checks a clear value against its table entry.
func valueOK(s *AVPSpec, v []byte) bool {
	n := len(v)
	if n < s.MinLen || n > s.MaxLen {
		return false
	}
	switch s.Kind {
	case KindResultCode:
		return n == 2 || n >= 4
	case KindUint16List:
		return n%2 == 0
	case KindMessageDigest:
		return (v[0] == DigestMD5 && n == 17) || (v[0] == DigestSHA1 && n == 21)
	case KindOctets:
		if s.Type == AVPAssignedCookie {
			return n == 4 || n == 8
		}
	}
	return true
}
