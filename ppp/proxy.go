package ppp

import (
	"bytes"
	"encoding/binary"
	"time"

	"github.com/l2tpd/l2tpd/ppp/mschap"
)

// Renegotiate is the LNS policy for proxied LCP (RFC 2661 §4.4.5).
type Renegotiate uint8

const (
	// RenegotiateOnMismatch accepts the proxied LCP when it fits the
	// Session policy and renegotiates otherwise.
	RenegotiateOnMismatch Renegotiate = iota
	// RenegotiateNever trusts the LAC's negotiation whenever it is
	// usable at all.
	RenegotiateNever
	// RenegotiateAlways ignores proxied LCP and authentication.
	RenegotiateAlways
)

func (r Renegotiate) String() string {
	switch r {
	case RenegotiateOnMismatch:
		return "on-mismatch"
	case RenegotiateNever:
		return "never"
	case RenegotiateAlways:
		return "always"
	}
	return "Renegotiate(?)"
}

// Proxy Authen Type values (RFC 2661 §4.4.5, AVP 29).
const (
	ProxyAuthReserved = 0
	ProxyAuthText     = 1
	ProxyAuthCHAP     = 2
	ProxyAuthPAP      = 3
	ProxyAuthNone     = 4
	ProxyAuthMSCHAPv1 = 5
)

// ProxyLCP holds the proxy AVPs of an ICCN (RFC 2661 §4.4.5, AVPs
// 26-33). The option fields are LCP Configure-Request bodies starting at
// the first option. HasAuth is false when AVP 29 was absent.
type ProxyLCP struct {
	InitialReceived []byte // AVP 26
	LastSent        []byte // AVP 27: the LAC's options, now ours
	LastReceived    []byte // AVP 28: the peer's options
	HasAuth         bool
	AuthType        uint16 // AVP 29
	AuthName        []byte // AVP 30
	AuthChallenge   []byte // AVP 31
	AuthID          uint8  // AVP 32
	AuthResponse    []byte // AVP 33
}

// ProxyDecision is the outcome of EvaluateProxy.
type ProxyDecision struct {
	// Accept: LCP starts Opened with the proxied options.
	Accept bool
	// Reason says why renegotiation is needed when !Accept.
	Reason string
	// AuthProto is the protocol the LAC negotiated with the peer.
	AuthProto AuthProto
	// Auth holds the proxied credentials; nil means the engine runs the
	// authentication phase itself (or none is needed).
	Auth *AuthRequest

	OurMRU, PeerMRU     uint16
	OurMagic, PeerMagic uint32
	PeerACFC, PeerPFC   bool
}

// lcpView is what the engine needs from one proxied Configure-Request.
type lcpView struct {
	mru        uint16
	magic      uint32
	auth       AuthProto
	authOpt    bool
	acfc, pfc  bool
	unexpected bool // an option we would have rejected
}

func parseProxyOptions(b []byte, peer bool) (lcpView, bool) {
	v := lcpView{mru: 1500}
	if ValidOptions(b) != nil {
		return v, false
	}
	for rest := b; len(rest) > 0; {
		o, r, _ := NextOption(rest)
		rest = r
		switch {
		case o.Type == lcpOptMRU && len(o.Value) == 2:
			v.mru = binary.BigEndian.Uint16(o.Value)
		case o.Type == lcpOptMagic && len(o.Value) == 4:
			v.magic = binary.BigEndian.Uint32(o.Value)
		case o.Type == lcpOptAuth:
			v.authOpt = true
			v.auth = parseAuthOption(o.Value)
		case o.Type == lcpOptACCM && len(o.Value) == 4:
		case o.Type == lcpOptPFC && len(o.Value) == 0:
			v.pfc = true
		case o.Type == lcpOptACFC && len(o.Value) == 0:
			v.acfc = true
		default:
			v.unexpected = true
		}
	}
	return v, true
}

// EvaluateProxy decides whether LCP can be taken as Opened from the
// proxied negotiation under cfg's policy, and turns the proxied
// authentication into an AuthRequest. Whatever the policy, a link that
// would end up without the authentication cfg requires is renegotiated.
func EvaluateProxy(cfg *Config, p *ProxyLCP, policy Renegotiate) ProxyDecision {
	d := ProxyDecision{}
	if policy == RenegotiateAlways {
		d.Reason = "policy renegotiates always"
		return d
	}
	if p == nil || p.LastSent == nil || p.LastReceived == nil {
		d.Reason = "no proxy LCP"
		return d
	}
	ours, ok1 := parseProxyOptions(p.LastSent, false)
	peer, ok2 := parseProxyOptions(p.LastReceived, true)
	if !ok1 || !ok2 {
		d.Reason = "malformed proxy LCP"
		return d
	}
	if ours.authOpt && ours.auth == AuthNone {
		d.Reason = "LAC negotiated an authentication protocol we do not implement"
		return d
	}
	d.AuthProto = ours.auth
	d.OurMRU, d.PeerMRU = ours.mru, peer.mru
	d.OurMagic, d.PeerMagic = ours.magic, peer.magic
	d.PeerACFC, d.PeerPFC = peer.acfc, peer.pfc

	strict := policy == RenegotiateOnMismatch
	min, max := cfg.MinMRU, cfg.MaxMRU
	if min == 0 {
		min = 576
	}
	if max == 0 {
		max = 1500
	}
	if strict && (peer.mru < min || peer.mru > max) {
		d.Reason = "peer MRU outside policy"
		return d
	}
	if strict && (peer.unexpected || peer.authOpt) {
		d.Reason = "peer negotiated options we do not support"
		return d
	}
	if ours.magic != 0 && ours.magic == peer.magic {
		d.Reason = "equal magic numbers"
		return d
	}
	requireAuth := cfg.Role == RoleServer && len(cfg.Auth) > 0
	if requireAuth && d.AuthProto == AuthNone {
		d.Reason = "LAC negotiated no authentication"
		return d
	}
	if strict && requireAuth && !contains(cfg.Auth, d.AuthProto) {
		d.Reason = "authentication protocol outside policy"
		return d
	}
	d.Auth = proxyAuth(p, d.AuthProto)
	d.Accept = true
	return d
}

func contains(l []AuthProto, a AuthProto) bool {
	for _, x := range l {
		if x == a {
			return true
		}
	}
	return false
}

// proxyAuth builds the AuthRequest of the proxied credentials, or nil
// when they do not match the negotiated protocol (the engine then runs
// the authentication phase itself, RFC 2661 §4.4.5 AVP 29).
func proxyAuth(p *ProxyLCP, a AuthProto) *AuthRequest {
	if !p.HasAuth {
		return nil
	}
	name := string(p.AuthName)
	switch {
	case a == AuthPAP && (p.AuthType == ProxyAuthPAP || p.AuthType == ProxyAuthText):
		return &AuthRequest{Protocol: AuthPAP, User: name, ID: p.AuthID, Password: bytes.Clone(p.AuthResponse)}
	case a == AuthCHAPMD5 && p.AuthType == ProxyAuthCHAP:
		if len(p.AuthResponse) != 16 || len(p.AuthChallenge) == 0 {
			return nil
		}
		return &AuthRequest{Protocol: AuthCHAPMD5, User: name, ID: p.AuthID,
			Challenge: bytes.Clone(p.AuthChallenge), Response: bytes.Clone(p.AuthResponse)}
	case a == AuthMSCHAPv2 && p.AuthType == ProxyAuthCHAP:
		// The response is the 49-octet MS-CHAPv2 value (RFC 2759 §4).
		if len(p.AuthResponse) != mschap.ResponseValueSize || len(p.AuthChallenge) != mschap.ChallengeSize {
			return nil
		}
		r := &AuthRequest{Protocol: AuthMSCHAPv2, User: name, ID: p.AuthID, Challenge: bytes.Clone(p.AuthChallenge)}
		copy(r.PeerChallenge[:], p.AuthResponse[0:16])
		copy(r.NTResponse[:], p.AuthResponse[24:48])
		return r
	}
	return nil
}

// StartProxy starts the engine from an EvaluateProxy decision: with LCP
// Opened and the proxied credentials handed to the owner when accepted,
// with a fresh negotiation otherwise.
func (s *Session) StartProxy(now time.Time, d ProxyDecision, out *Output) {
	if !d.Accept {
		s.Start(now, out)
		return
	}
	if s.started || s.dead {
		return
	}
	s.link.out = out
	defer func() { s.link.out = nil }()
	s.started = true
	s.lcp.reset()
	l := &s.lcp
	l.magic, l.sendMagic = d.OurMagic, d.OurMagic != 0
	l.peerMagic = d.PeerMagic
	l.peerMRU, l.peerACFC, l.peerPFC = d.PeerMRU, d.PeerACFC, d.PeerPFC
	l.mru = 0
	if d.OurMRU != 1500 {
		l.mru = d.OurMRU
	}
	l.ourAuth, l.sendAuth = d.AuthProto, d.AuthProto != AuthNone
	for i, a := range s.cfg.auth {
		if a == d.AuthProto {
			l.authIdx = int32(i) // NewSession bounds the list
		}
	}
	l.f.state = StateOpened
	s.link.acfc, s.link.pfc, s.link.mru = l.peerACFC, l.peerPFC, l.peerMRU
	s.link.event(Event{Kind: EventLinkUp})
	l.startEcho(now)
	s.auth.reset()
	switch {
	case d.Auth != nil:
		s.phase = PhaseAuthenticate
		a := &s.auth
		a.proto = d.AuthProto
		a.state = authPending
		a.id = d.Auth.ID
		s.proxyAuth = true
		clear(a.challenge[:])
		copy(a.challenge[:], d.Auth.Challenge)
		s.link.event(Event{Kind: EventAuthRequest, Auth: d.Auth})
	case d.AuthProto != AuthNone:
		s.phase = PhaseAuthenticate
		s.auth.startServer(now, d.AuthProto)
	default:
		s.startNetwork(now)
	}
	s.settle(now)
	s.replayEarly(now, out)
}
