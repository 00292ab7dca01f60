package tunnel

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/l2tpd/l2tpd/control/wire"
)

// SessionState is a call's state (RFC 2661 §7.4, RFC 3931 §7.4).
type SessionState uint8

const (
	SessionWaitReply   SessionState = iota // we sent ICRQ/OCRQ
	SessionWaitConnect                     // we sent ICRP, or received OCRP
	SessionEstablished
)

func (s SessionState) String() string {
	switch s {
	case SessionWaitReply:
		return "wait-reply"
	case SessionWaitConnect:
		return "wait-connect"
	case SessionEstablished:
		return "established"
	}
	return "unknown"
}

// CallKind tells incoming (ICRQ) from outgoing (OCRQ) calls.
type CallKind uint8

const (
	Incoming CallKind = iota
	Outgoing
)

func (k CallKind) String() string {
	if k == Outgoing {
		return "outgoing"
	}
	return "incoming"
}

// Proxy holds the proxy LCP and proxy authentication AVPs of an ICCN
// (RFC 2661 §4.4.5): the LAC's view of the PPP negotiation it already did,
// kept verbatim for the PPP layer.
type Proxy struct {
	InitialReceivedConfReq []byte
	LastSentConfReq        []byte
	LastReceivedConfReq    []byte
	AuthenType             uint16
	AuthenName             []byte
	AuthenChallenge        []byte
	AuthenID               uint16
	AuthenResponse         []byte
}

// Present reports whether any proxy AVP was received; a nil Proxy has none.
func (p *Proxy) Present() bool {
	return p != nil && (p.InitialReceivedConfReq != nil || p.LastSentConfReq != nil || p.LastReceivedConfReq != nil || p.AuthenType != 0 || p.AuthenName != nil)
}

// Disconnect is the PPP Disconnect Cause Code AVP (RFC 3145 §2).
type Disconnect struct {
	Code      uint16
	Protocol  uint16
	Direction uint8
	Message   string
}

// CallParams describes a call we place (LAC: ICRQ, LNS: OCRQ).
type CallParams struct {
	Serial         uint32
	BearerType     uint32
	FramingType    uint32
	TxSpeed        uint32
	RxSpeed        uint32
	MinBPS         uint32
	MaxBPS         uint32
	CallingNumber  string
	CalledNumber   string
	PseudowireType uint16
	Proxy          *Proxy
	// RemoteEndID binds a v3 call to a circuit at the far end (RFC 3931
	// §5.4.4; for Ethernet, the Pseudowire ID, RFC 4719 §2.2); empty:
	// the calling or called number, else our host name.
	RemoteEndID string
	// PW, for a pseudowire other than PPP, is what we require of the
	// data we receive and our circuit's status; the ICRQ then carries
	// Assigned Cookie, L2-Specific Sublayer and Data Sequencing.
	PW *PWParams
}

// PWParams are what one side of a v3 pseudowire requires of the data
// it receives and the state of its circuit (RFC 3931 §5.4.4, §5.4.5).
type PWParams struct {
	// Cookie is the Assigned Cookie: 0, 4 or 8 octets.
	Cookie []byte
	// L2SS is the L2-Specific Sublayer type: 0 none, 1 default (§4.6).
	L2SS uint16
	// Sequencing is the Data Sequencing level: 0 none, 1 non-IP, 2 all.
	Sequencing uint16
	// Active is the Circuit Status A bit.
	Active bool
}

// L2-Specific Sublayer types and Data Sequencing levels (RFC 3931 §5.4.4).
const (
	L2SSNone    uint16 = 0
	L2SSDefault uint16 = 1

	SequenceNone  uint16 = 0
	SequenceNonIP uint16 = 1
	SequenceAll   uint16 = 2
)

// Session is one call inside a tunnel. What few calls carry sits behind
// pointers that stay nil until used, so that a plain PPP call, the bulk
// of an LNS's sessions, costs one small allocation: Proxy, PW, Extra.
type Session struct {
	ID     uint32
	PeerID uint32

	State              SessionState
	Kind               CallKind
	Initiator          bool // we sent the ICRQ/OCRQ
	SequencingRequired bool
	// Pseudowire is set for a v3 session of a type other than PPP that
	// was bound to a circuit; PW then holds its parameters.
	Pseudowire     bool
	PseudowireType uint16

	Serial          uint32
	BearerType      uint32
	FramingType     uint32
	TxSpeed         uint32
	RxSpeed         uint32
	PhysicalChannel uint32

	CallingNumber string
	CalledNumber  string

	Created time.Time
	UpAt    time.Time

	// Proxy holds the proxy LCP and authentication AVPs of the ICCN
	// (RFC 2661 §4.4.5); nil when the LAC sent none.
	Proxy *Proxy
	// PW holds the v3 pseudowire parameters of a call whose type is not
	// PPP (RFC 3931 §5.4.4); nil for PPP calls, which ignore them.
	PW *PW
	// Extra holds the call AVPs few LACs send and the last link
	// information; nil until one arrives.
	Extra *CallExtra

	// params is what we place a call with; needed only until it is up.
	params *CallParams
}

// PW is the pseudowire side of a v3 session: Local is what we asked of
// the peer, Remote what the peer asked of us.
type PW struct {
	// RemoteEndID is the Remote End ID of the ICRQ/OCRQ (raw octets).
	RemoteEndID   string
	Local, Remote PWParams
	// remoteStatus: the peer has sent a Circuit Status.
	remoteStatus bool
}

// CallExtra holds the Sub-Address and Private Group ID of a call (RFC
// 2661 §4.4.4) and the last Call Errors of a WEN and ACCM of an SLI
// (§6.13, §6.14).
type CallExtra struct {
	SubAddress   string
	PrivateGroup string
	CallErrors   []byte
	ACCM         []byte
}

// extra returns the session's CallExtra, made on first use.
func (s *Session) extra() *CallExtra {
	if s.Extra == nil {
		s.Extra = new(CallExtra)
	}
	return s.Extra
}

// pw returns the session's pseudowire parameters, made on first use by
// a call whose type is not PPP; nil for a PPP (or v2) call.
func (s *Session) pw() *PW {
	if s.PW == nil {
		if s.PseudowireType == 0 || s.PseudowireType == PseudowirePPP {
			return nil
		}
		s.PW = new(PW)
	}
	return s.PW
}

// proxy returns the session's proxy AVPs, made on first use.
func (s *Session) proxy() *Proxy {
	if s.Proxy == nil {
		s.Proxy = new(Proxy)
	}
	return s.Proxy
}

// EventKind names what a tunnel reports to its owner.
type EventKind uint8

const (
	TunnelUp EventKind = iota
	TunnelDown
	TunnelFallback
	SessionUp
	SessionDown
	SessionLinkInfo
	// SessionAnswered: we answered an ICRQ (ICRP sent). The LAC may send
	// PPP right after its ICCN, so the owner readies the data path now.
	SessionAnswered
)

func (k EventKind) String() string {
	switch k {
	case TunnelUp:
		return "tunnel-up"
	case TunnelDown:
		return "tunnel-down"
	case TunnelFallback:
		return "tunnel-fallback-v2"
	case SessionUp:
		return "session-up"
	case SessionDown:
		return "session-down"
	case SessionLinkInfo:
		return "session-link-info"
	case SessionAnswered:
		return "session-answered"
	}
	return "unknown"
}

// Event is something the owner must act on: install a session in the
// datapath, start its PPP, account for it, forget it.
type Event struct {
	Kind      EventKind
	SessionID uint32
	Session   *Session // for SessionUp/SessionDown/SessionLinkInfo
	Result    Result
	Cause     *Disconnect
	ByPeer    bool
	Timeout   bool
}

// Errors of the local call API.
var (
	ErrNotEstablished = errors.New("tunnel: control connection not established")
	ErrSessionLimit   = errors.New("tunnel: session limit reached")
	ErrNoSession      = errors.New("tunnel: no such session")
)

// peerSessionID is the session ID the sender assigned itself.
func peerSessionID(m *wire.Message, version uint8) uint32 {
	typ := wire.AVPAssignedSessionID
	if version == 3 {
		typ = wire.AVPLocalSessionID
	}
	a, ok := m.Find(wire.VendorIETF, typ)
	if !ok {
		return 0
	}
	if version == 3 {
		v, _ := a.Uint32()
		return v
	}
	v, _ := a.Uint16()
	return uint32(v)
}

// sessionFor finds the session a message is about: by the header Session
// ID in v2, by the Remote Session ID AVP in v3, else by the sender's own ID.
func (t *Tunnel) sessionFor(m *wire.Message) *Session {
	var local uint32
	if t.version == 2 {
		local = m.Header.SessionID
	} else if a, ok := m.Find(wire.VendorIETF, wire.AVPRemoteSessionID); ok {
		local, _ = a.Uint32()
	}
	if s := t.sessions[local]; s != nil && local != 0 {
		return s
	}
	if peer := peerSessionID(m, t.version); peer != 0 {
		if id, ok := t.byPeer[peer]; ok {
			return t.sessions[id]
		}
	}
	return nil
}

// appendSessionIDs writes our session ID (and in v3 the peer's).
func (t *Tunnel) appendSessionIDs(b []byte, local, peer uint32) []byte {
	if t.version == 3 {
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPLocalSessionID, local)
		return wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPRemoteSessionID, peer)
	}
	return t.avp16(b, true, wire.AVPAssignedSessionID, uint16(local))
}

// Circuit Status bits (RFC 3931 §5.4.5).
const (
	circuitActive uint16 = 0x0001
	circuitNew    uint16 = 0x0002
)

// appendV3Call writes what RFC 3931 §6.6/§6.9 require of a v3 ICRQ/OCRQ
// beyond the session IDs.
func (t *Tunnel) appendV3Call(b []byte, s *Session, remoteEnd string) []byte {
	b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPPseudowireType, s.PseudowireType)
	if s.params != nil && s.params.RemoteEndID != "" {
		remoteEnd = s.params.RemoteEndID
	}
	if remoteEnd == "" {
		remoteEnd = t.cfg.HostName
	}
	b = wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPRemoteEndID, []byte(remoteEnd))
	if !s.Pseudowire {
		return wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPCircuitStatus, circuitActive|circuitNew)
	}
	b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPCircuitStatus, circuitBits(s.PW.Local.Active, true))
	return appendPWParams(b, &s.PW.Local)
}

func circuitBits(active, isNew bool) uint16 {
	var v uint16
	if active {
		v |= circuitActive
	}
	if isNew {
		v |= circuitNew
	}
	return v
}

// appendPWParams writes what we require of received data (RFC 3931
// §5.4.4): a missing cookie means none, the sublayer is always stated.
func appendPWParams(b []byte, p *PWParams) []byte {
	if len(p.Cookie) > 0 {
		b = wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPAssignedCookie, p.Cookie)
	}
	b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPL2SpecificSublayer, p.L2SS)
	if p.Sequencing != SequenceNone {
		b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPDataSequencing, p.Sequencing)
	}
	return b
}

// checkPeerPW applies RFC 3931 §5.4.4 to what the peer asked of our data:
// sequencing needs a sublayer to carry it, and only the default sublayer
// is known.
func checkPeerPW(s *Session) *Result {
	r := &s.PW.Remote
	if r.Sequencing != SequenceNone && r.L2SS == L2SSNone {
		return &Result{Code: wire.CDNSequencingNoSublayer, Message: "data sequencing requested without an L2-Specific Sublayer"}
	}
	if r.L2SS > L2SSDefault {
		return &Result{Code: wire.CDNGeneralError, Error: wire.ErrCodeRange, Message: "unsupported L2-Specific Sublayer type"}
	}
	if r.Sequencing > SequenceAll {
		return &Result{Code: wire.CDNGeneralError, Error: wire.ErrCodeRange, Message: "unsupported Data Sequencing level"}
	}
	if n := len(r.Cookie); n != 0 && n != 4 && n != 8 {
		return &Result{Code: wire.CDNGeneralError, Error: wire.ErrCodeLength, Message: "Assigned Cookie must be 4 or 8 octets"}
	}
	return nil
}

// appendConnectSpeed writes the connect AVPs of ICCN/OCCN: v2's Tx
// Connect Speed and Framing Type, v3's 64-bit Tx Connect Speed.
func (t *Tunnel) appendConnectSpeed(b []byte, tx, rx, framing uint32) []byte {
	if t.version == 3 {
		b = wire.AppendAVPUint64(b, false, wire.VendorIETF, wire.AVPTxConnectSpeedV3, uint64(tx))
		if rx != 0 {
			b = wire.AppendAVPUint64(b, false, wire.VendorIETF, wire.AVPRxConnectSpeedV3, uint64(rx))
		}
		return b
	}
	b = t.avp32(b, true, wire.AVPTxConnectSpeed, tx)
	b = t.avp32(b, true, wire.AVPFramingType, framing)
	if rx != 0 {
		b = t.avp32(b, false, wire.AVPRxConnectSpeed, rx)
	}
	return b
}

// allocSessionID picks a random unused non-zero session ID.
func (t *Tunnel) allocSessionID() (uint32, bool) {
	for i := 0; i < 64; i++ {
		var x [4]byte
		t.rand(x[:])
		id := binary.BigEndian.Uint32(x[:])
		if t.version == 2 {
			id &= 0xffff
		}
		if t.cfg.SessionIDMap != nil {
			id = t.cfg.SessionIDMap(id)
		}
		if id == 0 {
			continue
		}
		if _, used := t.sessions[id]; used {
			continue
		}
		if t.cfg.SessionIDFree != nil && !t.cfg.SessionIDFree(id) {
			continue
		}
		return id, true
	}
	return 0, false
}

func (t *Tunnel) newSession(now time.Time) (*Session, error) {
	if t.state != StateEstablished {
		return nil, ErrNotEstablished
	}
	if len(t.sessions) >= t.cfg.MaxSessions || (t.cfg.Admit != nil && !t.cfg.Admit()) {
		return nil, ErrSessionLimit
	}
	id, ok := t.allocSessionID()
	if !ok {
		return nil, ErrSessionLimit
	}
	s := &Session{ID: id, Created: now}
	t.sessions[id] = s
	return s, nil
}

// refuse answers a call request we will not take with a CDN.
func (t *Tunnel) refuse(now time.Time, peerSID uint32, res Result) {
	b := t.begin(wire.MsgCDN, peerSID)
	b = wire.AppendResultCode(b, true, res.Code, res.Error, res.Message)
	b = t.appendSessionIDs(b, 0, peerSID)
	t.finish(now, b)
}

// readCall records the call AVPs of ICRQ/OCRQ/ICCN/OCCN. The pseudowire
// AVPs are kept only for a call whose type is not PPP, so the type is
// read first, wherever it stands in the message.
func readCall(s *Session, m *wire.Message) {
	if a, ok := m.Find(wire.VendorIETF, wire.AVPPseudowireType); ok {
		s.PseudowireType, _ = a.Uint16()
	}
	for _, a := range m.AVPs {
		if a.Vendor != wire.VendorIETF {
			continue
		}
		switch a.Type {
		case wire.AVPCallSerialNumber:
			s.Serial, _ = a.Uint32()
		case wire.AVPBearerType:
			s.BearerType, _ = a.Uint32()
		case wire.AVPFramingType:
			s.FramingType, _ = a.Uint32()
		case wire.AVPTxConnectSpeed:
			s.TxSpeed, _ = a.Uint32()
		case wire.AVPRxConnectSpeed:
			s.RxSpeed, _ = a.Uint32()
		case wire.AVPTxConnectSpeedV3:
			v, _ := a.Uint64()
			s.TxSpeed = clamp32(v)
		case wire.AVPRxConnectSpeedV3:
			v, _ := a.Uint64()
			s.RxSpeed = clamp32(v)
		case wire.AVPCallingNumber:
			s.CallingNumber = string(a.Value)
		case wire.AVPCalledNumber:
			s.CalledNumber = string(a.Value)
		case wire.AVPSubAddress:
			s.extra().SubAddress = string(a.Value)
		case wire.AVPPhysicalChannelID:
			s.PhysicalChannel, _ = a.Uint32()
		case wire.AVPPrivateGroupID:
			s.extra().PrivateGroup = string(a.Value)
		case wire.AVPSequencingRequired:
			s.SequencingRequired = true
		case wire.AVPPseudowireType:
			s.PseudowireType, _ = a.Uint16()
		case wire.AVPRemoteEndID:
			if pw := s.pw(); pw != nil {
				pw.RemoteEndID = string(a.Value)
			}
		case wire.AVPAssignedCookie:
			if pw := s.pw(); pw != nil {
				pw.Remote.Cookie = clone(a.Value)
			}
		case wire.AVPL2SpecificSublayer:
			if pw := s.pw(); pw != nil {
				pw.Remote.L2SS, _ = a.Uint16()
			}
		case wire.AVPDataSequencing:
			if pw := s.pw(); pw != nil {
				pw.Remote.Sequencing, _ = a.Uint16()
			}
		case wire.AVPCircuitStatus:
			if pw := s.pw(); pw != nil {
				v, _ := a.Uint16()
				pw.Remote.Active, pw.remoteStatus = v&circuitActive != 0, true
			}
		case wire.AVPInitialReceivedLCPConfReq:
			s.proxy().InitialReceivedConfReq = clone(a.Value)
		case wire.AVPLastSentLCPConfReq:
			s.proxy().LastSentConfReq = clone(a.Value)
		case wire.AVPLastReceivedLCPConfReq:
			s.proxy().LastReceivedConfReq = clone(a.Value)
		case wire.AVPProxyAuthenType:
			s.proxy().AuthenType, _ = a.Uint16()
		case wire.AVPProxyAuthenName:
			s.proxy().AuthenName = clone(a.Value)
		case wire.AVPProxyAuthenChallenge:
			s.proxy().AuthenChallenge = clone(a.Value)
		case wire.AVPProxyAuthenID:
			// RFC 2661 §4.4.5: two octets, the ID in the low one.
			s.proxy().AuthenID, _ = a.Uint16()
		case wire.AVPProxyAuthenResponse:
			s.proxy().AuthenResponse = clone(a.Value)
		}
	}
}

func clamp32(v uint64) uint32 {
	if v > 0xffffffff {
		return 0xffffffff
	}
	return uint32(v)
}

func clone(b []byte) []byte {
	return append(make([]byte, 0, len(b)), b...)
}

// onCallRequest takes an ICRQ (we are the LNS) or an OCRQ (we are the LAC).
func (t *Tunnel) onCallRequest(now time.Time, m *wire.Message) {
	peerSID := peerSessionID(m, t.version)
	if _, dup := t.byPeer[peerSID]; dup {
		t.stats.UnexpectedMsg++
		return
	}
	s, err := t.newSession(now)
	if err != nil {
		res := Result{Code: wire.CDNNoResourcesTemp, Error: wire.ErrCodeResources, Message: err.Error()}
		if err == ErrNotEstablished {
			res = Result{Code: wire.CDNGeneralError, Error: wire.ErrCodeNoControl, Message: err.Error()}
		}
		t.refuse(now, peerSID, res)
		return
	}
	s.PeerID = peerSID
	t.byPeer[peerSID] = s.ID
	readCall(s, m)
	if t.version == 3 && !t.supportsPseudowire(s.PseudowireType) {
		t.closeSession(now, s, Result{Code: wire.CDNUnsupportedPWType, Message: "pseudowire type not supported"}, nil, true)
		return
	}
	if m.Type == wire.MsgOCRQ {
		// We are the LAC: there is no line to dial, the call is up at once.
		s.Kind = Outgoing
		b := t.begin(wire.MsgOCRP, s.PeerID)
		b = t.appendSessionIDs(b, s.ID, s.PeerID)
		if t.version == 3 {
			b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPCircuitStatus, circuitActive|circuitNew)
		}
		t.finish(now, b)
		b = t.begin(wire.MsgOCCN, s.PeerID)
		if t.version == 3 {
			b = t.appendSessionIDs(b, s.ID, s.PeerID)
		}
		b = t.appendConnectSpeed(b, s.maxSpeed(), 0, 0x1)
		t.finish(now, b)
		t.sessionUp(now, s)
		return
	}
	if t.version == 3 && s.pw() != nil && t.cfg.Bind != nil {
		if res := checkPeerPW(s); res != nil {
			t.closeSession(now, s, *res, nil, true)
			return
		}
		local, res := t.cfg.Bind(s)
		if res != nil {
			t.closeSession(now, s, *res, nil, true)
			return
		}
		s.Pseudowire, s.PW.Local = true, local
	}
	b := t.begin(wire.MsgICRP, s.PeerID)
	b = t.appendSessionIDs(b, s.ID, s.PeerID)
	if s.Pseudowire {
		b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPCircuitStatus, circuitBits(s.PW.Local.Active, true))
		b = appendPWParams(b, &s.PW.Local)
	} else if t.version == 3 {
		b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPCircuitStatus, circuitActive|circuitNew)
	}
	t.finish(now, b)
	s.State = SessionWaitConnect
	t.enterSetup(s)
	t.emit(Event{Kind: SessionAnswered, SessionID: s.ID, Session: s})
}

// inSetup reports whether s is an incoming call that SetupTimeout
// bounds: one we answered (ICRP sent) waiting for its ICCN, or one we
// placed (ICRQ sent) waiting for its ICRP. Outgoing calls are not
// bounded: the LAC may take its time dialing before its OCCN.
func inSetup(s *Session) bool {
	if s.Kind != Incoming {
		return false
	}
	if s.Initiator {
		return s.State == SessionWaitReply
	}
	return s.State == SessionWaitConnect
}

// enterSetup counts s among the calls in setup, its expiry SetupTimeout
// after it was created (the ICRQ received or sent).
func (t *Tunnel) enterSetup(s *Session) {
	t.awaiting++
	if t.cfg.SetupTimeout > 0 {
		t.setupAt = earliest(t.setupAt, s.Created.Add(t.cfg.SetupTimeout))
	}
}

// leaveSetup takes s out of the calls in setup; with none left there is
// nothing to expire. It runs before s changes state.
func (t *Tunnel) leaveSetup(s *Session) {
	if !inSetup(s) {
		return
	}
	if t.awaiting--; t.awaiting == 0 {
		t.setupAt = time.Time{}
	}
}

// expireSetups clears each call in setup that has not come up within
// SetupTimeout of its ICRQ and finds the next expiry. An answered call
// waits in wait-connect for the ICCN (RFC 2661 §7.4.2, RFC 3931 §3.4.1,
// §7.3.2), a placed one in wait-reply for the ICRP (RFC 2661 §7.4.1, RFC
// 3931 §7.3.1); either way the expiry is a local close request: a CDN,
// result 10 of RFC 2661 §4.4.2 (call not established within the time
// allotted). It runs only once setupAt has passed: the sessions are not
// walked on every Poll.
func (t *Tunnel) expireSetups(now time.Time) {
	var next time.Time
	for _, s := range t.sessions {
		if !inSetup(s) {
			continue
		}
		exp := s.Created.Add(t.cfg.SetupTimeout)
		if now.Before(exp) {
			next = earliest(next, exp)
			continue
		}
		msg := "no ICCN within "
		if s.Initiator {
			msg = "no ICRP within "
		}
		t.closeSession(now, s, Result{Code: wire.CDNTimeout, Message: msg + t.cfg.SetupTimeout.String()}, nil, true)
	}
	t.setupAt = next
}

func (s *Session) maxSpeed() uint32 {
	if s.TxSpeed != 0 {
		return s.TxSpeed
	}
	return 100000000
}

func (t *Tunnel) supportsPseudowire(pw uint16) bool {
	for _, p := range t.cfg.Pseudowires {
		if p == pw {
			return true
		}
	}
	return false
}

// onCallReply takes the ICRP (we are the LAC) or OCRP (we are the LNS).
func (t *Tunnel) onCallReply(now time.Time, m *wire.Message) {
	s := t.sessionFor(m)
	if s == nil || !s.Initiator || s.State != SessionWaitReply {
		t.stats.UnknownSess++
		return
	}
	if (m.Type == wire.MsgICRP) != (s.Kind == Incoming) {
		// An OCRP to our ICRQ (or ICRP to our OCRQ) answers no call we
		// placed; the call stays in wait-reply.
		t.stats.UnexpectedMsg++
		return
	}
	s.PeerID = peerSessionID(m, t.version)
	t.byPeer[s.PeerID] = s.ID
	if s.Pseudowire {
		readCall(s, m)
		if res := checkPeerPW(s); res != nil {
			t.closeSession(now, s, *res, nil, true)
			return
		}
	}
	if m.Type == wire.MsgOCRP {
		s.State = SessionWaitConnect
		return
	}
	p := s.params
	if p == nil {
		p = new(CallParams)
	}
	b := t.begin(wire.MsgICCN, s.PeerID)
	if t.version == 3 {
		b = t.appendSessionIDs(b, s.ID, s.PeerID)
	}
	b = t.appendConnectSpeed(b, nonZero(p.TxSpeed, 100000000), p.RxSpeed, nonZero(p.FramingType, 0x1))
	if px := p.Proxy; px != nil && t.version == 2 {
		b = t.appendProxy(b, px)
	}
	t.finish(now, b)
	t.sessionUp(now, s)
}

func nonZero(v, def uint32) uint32 {
	if v == 0 {
		return def
	}
	return v
}

// appendProxy writes the proxy LCP and authentication AVPs of an ICCN.
func (t *Tunnel) appendProxy(b []byte, px *Proxy) []byte {
	if px.InitialReceivedConfReq != nil {
		b = t.avp(b, false, wire.AVPInitialReceivedLCPConfReq, px.InitialReceivedConfReq)
	}
	if px.LastSentConfReq != nil {
		b = t.avp(b, false, wire.AVPLastSentLCPConfReq, px.LastSentConfReq)
	}
	if px.LastReceivedConfReq != nil {
		b = t.avp(b, false, wire.AVPLastReceivedLCPConfReq, px.LastReceivedConfReq)
	}
	if px.AuthenType != 0 {
		b = t.avp16(b, false, wire.AVPProxyAuthenType, px.AuthenType)
	}
	if px.AuthenName != nil {
		b = t.avp(b, false, wire.AVPProxyAuthenName, px.AuthenName)
	}
	if px.AuthenChallenge != nil {
		b = t.avp(b, false, wire.AVPProxyAuthenChallenge, px.AuthenChallenge)
	}
	if px.AuthenType != 0 {
		b = t.avp16(b, false, wire.AVPProxyAuthenID, px.AuthenID)
	}
	if px.AuthenResponse != nil {
		b = t.avp(b, false, wire.AVPProxyAuthenResponse, px.AuthenResponse)
	}
	return b
}

// onCallConnected takes the ICCN (we are the LNS) or OCCN (LNS, outgoing).
func (t *Tunnel) onCallConnected(now time.Time, m *wire.Message) {
	s := t.sessionFor(m)
	if s == nil || s.State != SessionWaitConnect {
		t.stats.UnknownSess++
		return
	}
	if (m.Type == wire.MsgICCN) == s.Initiator {
		t.stats.UnexpectedMsg++
		return
	}
	readCall(s, m)
	t.sessionUp(now, s)
}

func (t *Tunnel) sessionUp(now time.Time, s *Session) {
	t.leaveSetup(s)
	s.params = nil
	s.State = SessionEstablished
	s.UpAt = now
	t.emit(Event{Kind: SessionUp, SessionID: s.ID, Session: s})
}

// onCDN clears a call on the peer's request (RFC 2661 §5.6).
func (t *Tunnel) onCDN(now time.Time, m *wire.Message) {
	s := t.sessionFor(m)
	if s == nil {
		t.stats.UnknownSess++
		return
	}
	res := readResult(m)
	cause := readDisconnect(m)
	t.removeSession(s)
	t.emit(Event{Kind: SessionDown, SessionID: s.ID, Session: s, Result: res, Cause: cause, ByPeer: true})
}

func readDisconnect(m *wire.Message) *Disconnect {
	a, ok := m.Find(wire.VendorIETF, wire.AVPPPPDisconnectCause)
	if !ok || len(a.Value) < 5 {
		return nil
	}
	v := a.Value
	return &Disconnect{
		Code:      binary.BigEndian.Uint16(v),
		Protocol:  binary.BigEndian.Uint16(v[2:]),
		Direction: v[4],
		Message:   string(v[5:]),
	}
}

// onLinkInfo records WEN call errors, SLI ACCM (RFC 2661 §6.13, §6.14)
// and a v3 SLI's Circuit Status (RFC 3931 §5.4.5, RFC 4719 §2.3.2).
func (t *Tunnel) onLinkInfo(now time.Time, m *wire.Message) {
	s := t.sessionFor(m)
	if s == nil {
		t.stats.UnknownSess++
		return
	}
	if a, ok := m.Find(wire.VendorIETF, wire.AVPCallErrors); ok {
		s.extra().CallErrors = clone(a.Value)
	}
	if a, ok := m.Find(wire.VendorIETF, wire.AVPACCM); ok {
		s.extra().ACCM = clone(a.Value)
	}
	if a, ok := m.Find(wire.VendorIETF, wire.AVPCircuitStatus); ok && t.version == 3 {
		if pw := s.pw(); pw != nil {
			v, _ := a.Uint16()
			pw.Remote.Active, pw.remoteStatus = v&circuitActive != 0, true
		}
	}
	t.emit(Event{Kind: SessionLinkInfo, SessionID: s.ID, Session: s})
}

// StartCall places an incoming call toward the LNS (we are the LAC).
func (t *Tunnel) StartCall(now time.Time, p CallParams) (uint32, error) {
	s, err := t.newSession(now)
	if err != nil {
		return 0, err
	}
	s.Initiator, s.Kind, s.params = true, Incoming, &p
	s.Serial, s.CallingNumber, s.CalledNumber = p.Serial, p.CallingNumber, p.CalledNumber
	s.PseudowireType = nonZero16(p.PseudowireType, PseudowirePPP)
	if p.PW != nil && t.version == 3 {
		s.Pseudowire = true
		s.PW = &PW{RemoteEndID: p.RemoteEndID, Local: *p.PW}
		s.PW.Local.Cookie = clone(p.PW.Cookie)
	}
	b := t.begin(wire.MsgICRQ, 0)
	b = t.appendSessionIDs(b, s.ID, 0)
	if t.version == 3 {
		b = t.appendV3Call(b, s, p.CallingNumber)
	}
	b = t.avp32(b, true, wire.AVPCallSerialNumber, p.Serial)
	if p.BearerType != 0 {
		b = t.avp32(b, false, wire.AVPBearerType, p.BearerType)
	}
	if p.CallingNumber != "" {
		b = t.avp(b, false, wire.AVPCallingNumber, []byte(p.CallingNumber))
	}
	if p.CalledNumber != "" {
		b = t.avp(b, false, wire.AVPCalledNumber, []byte(p.CalledNumber))
	}
	t.finish(now, b)
	t.enterSetup(s)
	return s.ID, nil
}

func nonZero16(v, def uint16) uint16 {
	if v == 0 {
		return def
	}
	return v
}

// StartOutgoing asks the LAC to place an outgoing call (we are the LNS).
func (t *Tunnel) StartOutgoing(now time.Time, p CallParams) (uint32, error) {
	s, err := t.newSession(now)
	if err != nil {
		return 0, err
	}
	s.Initiator, s.Kind, s.params = true, Outgoing, &p
	s.Serial, s.CalledNumber = p.Serial, p.CalledNumber
	s.PseudowireType = nonZero16(p.PseudowireType, PseudowirePPP)
	b := t.begin(wire.MsgOCRQ, 0)
	b = t.appendSessionIDs(b, s.ID, 0)
	if t.version == 3 {
		b = t.appendV3Call(b, s, p.CalledNumber)
	}
	b = t.avp32(b, true, wire.AVPCallSerialNumber, p.Serial)
	if t.version == 2 {
		b = t.avp32(b, true, wire.AVPMinimumBPS, p.MinBPS)
		b = t.avp32(b, true, wire.AVPMaximumBPS, nonZero(p.MaxBPS, 100000000))
		b = t.avp32(b, true, wire.AVPBearerType, nonZero(p.BearerType, 0x3))
		b = t.avp32(b, true, wire.AVPFramingType, nonZero(p.FramingType, 0x1))
		b = t.avp(b, true, wire.AVPCalledNumber, []byte(p.CalledNumber))
	}
	t.finish(now, b)
	return s.ID, nil
}

// CloseSession sends a CDN for a session and forgets it (RFC 2661 §5.6).
func (t *Tunnel) CloseSession(now time.Time, id uint32, res Result, cause *Disconnect) error {
	s := t.sessions[id]
	if s == nil {
		return ErrNoSession
	}
	t.closeSession(now, s, res, cause, true)
	return nil
}

func (t *Tunnel) closeSession(now time.Time, s *Session, res Result, cause *Disconnect, send bool) {
	if send && t.state == StateEstablished {
		b := t.begin(wire.MsgCDN, s.PeerID)
		b = wire.AppendResultCode(b, true, res.Code, res.Error, res.Message)
		b = t.appendSessionIDs(b, s.ID, s.PeerID)
		if cause != nil {
			v := make([]byte, 5, 5+len(cause.Message))
			binary.BigEndian.PutUint16(v, cause.Code)
			binary.BigEndian.PutUint16(v[2:], cause.Protocol)
			v[4] = cause.Direction
			v = append(v, cause.Message...)
			b = wire.AppendAVP(b, false, wire.VendorIETF, wire.AVPPPPDisconnectCause, v)
		}
		t.finish(now, b)
	}
	t.removeSession(s)
	t.emit(Event{Kind: SessionDown, SessionID: s.ID, Session: s, Result: res, Cause: cause})
}

func (t *Tunnel) removeSession(s *Session) {
	t.leaveSetup(s)
	delete(t.sessions, s.ID)
	if s.PeerID != 0 && t.byPeer[s.PeerID] == s.ID {
		delete(t.byPeer, s.PeerID)
	}
}

// dropSessions forgets every session without sending CDNs: the StopCCN
// (sent or received) clears them all (RFC 2661 §5.7).
func (t *Tunnel) dropSessions(res Result) {
	for _, s := range t.sessions {
		t.removeSession(s)
		t.emit(Event{Kind: SessionDown, SessionID: s.ID, Session: s, Result: res})
	}
}

// SetCircuitStatus reports a change of a pseudowire's circuit to the peer
// with an SLI carrying Circuit Status, N bit clear (RFC 3931 §5.4.5, RFC
// 4719 §2.3.2). Nothing is sent when the status is unchanged or the
// session is not a v3 pseudowire; before the call is up, the new status
// is what the next message of the call carries.
func (t *Tunnel) SetCircuitStatus(now time.Time, id uint32, active bool) error {
	s := t.sessions[id]
	if s == nil {
		return ErrNoSession
	}
	if !s.Pseudowire || s.PW.Local.Active == active {
		return nil
	}
	s.PW.Local.Active = active
	if t.state != StateEstablished || s.PeerID == 0 {
		return nil
	}
	b := t.begin(wire.MsgSLI, s.PeerID)
	b = t.appendSessionIDs(b, s.ID, s.PeerID)
	b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPCircuitStatus, circuitBits(active, false))
	t.finish(now, b)
	return nil
}

// RemoteCircuitKnown reports whether the peer has sent a Circuit Status
// for the pseudowire (then PW.Remote.Active holds it).
func (s *Session) RemoteCircuitKnown() bool { return s.PW != nil && s.PW.remoteStatus }
