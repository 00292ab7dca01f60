package ppp

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net/netip"
	"time"
)

// maxEarlyFrames bounds the frames kept from before Start.
const maxEarlyFrames = 8

// Session is the PPP engine of one link (one L2TP session). It is not
// safe for concurrent use: its owner feeds it frames, the time and auth
// decisions, and collects what it produced in an Output.
//
// One process holds a hundred thousand of them: the automata live
// inside the Session, buffers needed only while a call runs are lent
// by the Output or a pool, and the fields are packed.
type Session struct {
	lcp  lcp
	ipcp ipcp
	auth auth
	// ipv6cp exists when IPv6 is enabled (or the peer rejected the
	// protocol anyway): an IPv4-only subscriber does without.
	ipv6cp *ipv6cp

	cfg         settings
	link        link
	failMessage string
	// queued are the frames received before Start, replayed by it;
	// after Start, the NCP frames of a proxied subscriber received
	// while its proxied credentials are being checked. Mostly nil.
	queued *[][]byte
	// client is the state of the client role, nil in the server role.
	client *client

	phase       Phase
	reason      DownReason
	started     bool
	dead        bool
	closeWanted bool
	proxyAuth   bool
}

// settings is the part of Config a Session keeps, packed.
type settings struct {
	rand         io.Reader
	auth         []AuthProto
	name         string
	authTimeout  time.Duration
	echoInterval time.Duration
	timers       timers
	// odd holds the addresses of addrs given as neither IPv4 nor
	// absent (an IPv6 address as PeerIPv4, say): never sent, but
	// reported back as given. Almost always nil.
	odd                 *[3]netip.Addr
	mru, minMRU, maxMRU uint16
	// localIPv4 is what the server asks for, when sendLocal: only a
	// non-zero IPv4 address is ever sent or reported.
	localIPv4 [4]byte
	// addrs are the peer's address (server: the one it is given;
	// client: the server's) and the name servers the server offers.
	addrs      [3]ip4
	sendLocal  bool
	role       Role
	ipv4, ipv6 bool
}

// The addresses of settings.addrs.
const (
	addrPeer = iota
	addrDNS1
	addrDNS2
)

// ip4 is an address that is IPv4 or absent, in five octets.
type ip4 struct {
	a  [4]byte
	ok bool
}

func (c *settings) addr(i int) netip.Addr {
	if c.odd != nil && c.odd[i].IsValid() {
		return c.odd[i]
	}
	if !c.addrs[i].ok {
		return netip.Addr{}
	}
	return netip.AddrFrom4(c.addrs[i].a)
}

func (c *settings) setAddr(i int, a netip.Addr) {
	if c.odd != nil {
		c.odd[i] = netip.Addr{}
	}
	switch {
	case !a.IsValid():
		c.addrs[i] = ip4{}
	case a.Is4():
		c.addrs[i] = ip4{a: a.As4(), ok: true}
	default:
		if c.odd == nil {
			c.odd = new([3]netip.Addr)
		}
		c.odd[i] = a
		c.addrs[i] = ip4{}
	}
}

// client is what only the client role needs.
type client struct {
	user, password string
	requestDNS     bool

	// IPCP: the name servers we ask for (RFC 1877).
	sendDNS [2]bool
	dns     [2][4]byte

	// CHAP: the last response, repeated for a retransmitted challenge.
	respID        uint8
	gotChallenge  []byte
	resp          []byte
	peerChallenge [16]byte
	ntResponse    [24]byte
}

// NewSession checks cfg and returns an engine in phase Dead; call Start
// (or StartProxy) to begin.
func NewSession(cfg Config) (*Session, error) {
	if cfg.Rand == nil {
		return nil, errors.New("ppp: Config.Rand is required")
	}
	if !cfg.IPv4 && !cfg.IPv6 {
		return nil, errors.New("ppp: neither IPv4 nor IPv6 enabled")
	}
	for _, a := range cfg.Auth {
		if a < AuthPAP || a > AuthMSCHAPv2 {
			return nil, errors.New("ppp: unknown authentication protocol " + a.String())
		}
	}
	if cfg.MinMRU > cfg.MaxMRU && cfg.MaxMRU != 0 {
		return nil, errors.New("ppp: MinMRU above MaxMRU")
	}
	if len(cfg.Auth) > math.MaxInt32 {
		return nil, errors.New("ppp: authentication protocol list too long")
	}
	cfg.Auth = sharedAuthList(cfg.Auth)
	cfg.setDefaults()
	s := &Session{cfg: settings{
		rand:         cfg.Rand,
		auth:         cfg.Auth,
		name:         cfg.Name,
		authTimeout:  cfg.AuthTimeout,
		echoInterval: cfg.EchoInterval,
		timers:       cfg.Timers.compact(cfg.EchoFailures),
		mru:          cfg.MRU,
		minMRU:       cfg.MinMRU,
		maxMRU:       cfg.MaxMRU,
		role:         cfg.Role,
		ipv4:         cfg.IPv4,
		ipv6:         cfg.IPv6,
	}}
	s.cfg.setAddr(addrDNS1, cfg.DNS1)
	s.cfg.setAddr(addrDNS2, cfg.DNS2)
	if a := cfg.LocalIPv4; a.Is4() && !a.IsUnspecified() {
		s.cfg.localIPv4, s.cfg.sendLocal = a.As4(), true
	}
	if cfg.Role == RoleClient {
		s.client = &client{user: cfg.User, password: cfg.Password, requestDNS: cfg.RequestDNS}
	} else {
		s.cfg.setAddr(addrPeer, cfg.PeerIPv4)
	}
	s.lcp.s = s
	s.lcp.f.init(ProtoLCP, &s.lcp)
	s.auth.s = s
	s.ipcp.s = s
	s.ipcp.f.init(ProtoIPCP, &s.ipcp)
	if cfg.IPv6 {
		s.newIPv6CP().iid = cfg.LocalIID
	}
	return s, nil
}

// authLists holds every list of up to three protocols, indexed by its
// digits in base 4 (the protocols are 1 to 3, so no two lists share an
// index).
var authLists = func() (l [64][]AuthProto) {
	for k := range l {
		var list []AuthProto
		for d := k; d > 0; d /= 4 {
			if d%4 == 0 {
				list = nil
				break
			}
			list = append([]AuthProto{AuthProto(d % 4)}, list...)
		}
		l[k] = list[:len(list):len(list)]
	}
	return l
}()

// sharedAuthList returns a copy of l the caller cannot change: a
// package-wide one for the usual short lists, since a Session never
// changes its list.
func sharedAuthList(l []AuthProto) []AuthProto {
	if len(l) == 0 {
		return nil
	}
	if len(l) > 3 {
		return append([]AuthProto(nil), l...)
	}
	k := 0
	for _, a := range l {
		k = k*4 + int(a)
	}
	return authLists[k]
}

func (s *Session) newIPv6CP() *ipv6cp {
	c := &ipv6cp{s: s}
	c.f.init(ProtoIPv6CP, c)
	s.ipv6cp = c
	return c
}

// Phase returns the link phase.
func (s *Session) Phase() Phase { return s.phase }

// LCPState, IPCPState and IPv6CPState return the automaton states.
func (s *Session) LCPState() State  { return s.lcp.f.state }
func (s *Session) IPCPState() State { return s.ipcp.f.state }
func (s *Session) IPv6CPState() State {
	if s.ipv6cp == nil {
		return StateInitial
	}
	return s.ipv6cp.f.state
}

// Down reports whether the link is dead (EventLinkDown was emitted).
func (s *Session) Down() bool { return s.dead }

// Start opens LCP: the lower layer (the L2TP session) is up. Frames
// received before Start are processed now.
func (s *Session) Start(now time.Time, out *Output) {
	if s.started || s.dead {
		return
	}
	s.link.out = out
	defer func() { s.link.out = nil }()
	s.started = true
	s.phase = PhaseEstablish
	s.lcp.reset()
	s.lcp.f.Open(now)
	s.lcp.f.Up(now)
	s.settle(now)
	s.replayEarly(now, out)
}

func (s *Session) replayEarly(now time.Time, out *Output) {
	early := s.queued
	s.queued = nil
	if early == nil {
		return
	}
	for _, f := range *early {
		s.Input(now, f, out)
	}
}

// Input processes one received PPP frame (address/control and protocol
// fields included). IP packets of an opened NCP are appended to
// out.Data as views into frame.
func (s *Session) Input(now time.Time, frame []byte, out *Output) {
	if s.dead {
		return
	}
	if !s.started {
		// The L2TP session may deliver the peer's first Configure-
		// Request before the owner starts the engine.
		s.queue(frame)
		return
	}
	proto, info, err := ParseFrame(frame)
	if err != nil {
		return
	}
	switch proto {
	case ProtoIPv4:
		if s.ipcp.f.state == StateOpened {
			out.Data = append(out.Data, Datagram{Protocol: proto, Packet: info})
		}
		return
	case ProtoIPv6:
		if c := s.ipv6cp; c != nil && c.f.state == StateOpened {
			out.Data = append(out.Data, Datagram{Protocol: proto, Packet: info})
		}
		return
	}
	s.link.out = out
	defer func() { s.link.out = nil }()
	if proto == ProtoLCP {
		p, err := ParsePacket(info)
		if err != nil {
			return
		}
		if p.Code == CodeTerminateRequest && s.reason == ReasonNone {
			s.reason = ReasonPeerTerminate
			s.failMessage = string(p.Data)
		}
		s.lcp.f.input(now, p, info[:4+len(p.Data)])
		s.settle(now)
		return
	}
	// RFC 1661 §3.4: other protocols wait for LCP to be opened.
	if s.lcp.f.state != StateOpened {
		return
	}
	// A proxied subscriber is in its network phase already (its LAC
	// authenticated it, RFC 2661 §4.4.5): its IPCP and IPv6CP
	// Configure-Requests can arrive while the proxied credentials are
	// checked. They wait for the answer rather than being discarded
	// (RFC 1661 §3.5) and costing the subscriber a restart interval.
	if s.proxyAuth && s.phase == PhaseAuthenticate && (proto == ProtoIPCP || proto == ProtoIPv6CP) {
		s.queue(frame)
		return
	}
	switch proto {
	case ProtoPAP, ProtoCHAP:
		if p, err := ParsePacket(info); err == nil {
			s.auth.input(now, proto, p)
		}
	case ProtoIPCP:
		if !s.cfg.ipv4 || s.ipcp.disabled {
			s.protocolReject(proto, info)
		} else {
			s.ncpInput(now, &s.ipcp.f, info)
		}
	case ProtoIPv6CP:
		if !s.cfg.ipv6 || s.ipv6cp.disabled {
			s.protocolReject(proto, info)
		} else {
			s.ncpInput(now, &s.ipv6cp.f, info)
		}
	default:
		// CCP, CDPCP, multilink, EAP...: Protocol-Reject; the link
		// stays up (RFC 1661 §5.7).
		s.protocolReject(proto, info)
	}
	s.settle(now)
}

// queue keeps a copy of frame for later, up to maxEarlyFrames.
func (s *Session) queue(frame []byte) {
	if s.queued == nil {
		s.queued = new([][]byte)
	}
	if q := s.queued; len(*q) < maxEarlyFrames {
		*q = append(*q, append([]byte(nil), frame...))
	}
}

func (s *Session) ncpInput(now time.Time, f *fsm, info []byte) {
	// RFC 1661 §3.5: NCP packets before the network phase are discarded.
	if s.phase != PhaseNetwork {
		return
	}
	p, err := ParsePacket(info)
	if err != nil {
		return
	}
	f.input(now, p, info[:4+len(p.Data)])
}

// protocolReject sends an LCP Protocol-Reject (RFC 1661 §5.7).
func (s *Session) protocolReject(proto Protocol, info []byte) {
	if max := s.link.maxInfo() - 6; len(info) > max {
		info = info[:max]
	}
	s.lcp.f.nextID++
	b := s.link.begin(ProtoLCP, CodeProtocolReject, s.lcp.f.nextID)
	b = binary.BigEndian.AppendUint16(b, uint16(proto))
	s.link.finish(ProtoLCP, append(b, info...))
}

// Tick runs the timers that expired at now.
func (s *Session) Tick(now time.Time, out *Output) {
	if s.dead || !s.started {
		return
	}
	s.link.out = out
	defer func() { s.link.out = nil }()
	s.lcp.f.tick(now)
	if s.lcp.f.state == StateOpened {
		s.lcp.echoTick(now)
	}
	s.auth.tick(now)
	s.ipcp.f.tick(now)
	if c := s.ipv6cp; c != nil {
		c.f.tick(now)
	}
	s.settle(now)
}

// Deadline returns when Tick must next be called.
func (s *Session) Deadline() (time.Time, bool) {
	var d time.Time
	ok := false
	if s.dead || !s.started {
		return d, false
	}
	add := func(t time.Time, on bool) {
		if on && (!ok || t.Before(d)) {
			d, ok = t, true
		}
	}
	add(s.lcp.f.Deadline())
	add(s.lcp.f.deadline, s.lcp.echoOn && s.lcp.f.state == StateOpened)
	add(s.auth.deadline, s.auth.timerOn)
	add(s.ipcp.f.Deadline())
	if c := s.ipv6cp; c != nil {
		add(c.f.Deadline())
	}
	return d, ok
}

// AuthResult delivers the decision on the last EventAuthRequest.
func (s *Session) AuthResult(now time.Time, r AuthResult, out *Output) {
	if s.dead {
		return
	}
	s.link.out = out
	defer func() { s.link.out = nil }()
	s.auth.result(now, r)
	s.settle(now)
	if s.phase == PhaseAuthenticate || !s.started {
		// Before Start, queued holds the early frames Start replays.
		return
	}
	s.proxyAuth = false
	held := s.queued
	s.queued = nil
	if s.phase == PhaseNetwork && held != nil {
		for _, f := range *held {
			s.Input(now, f, out)
		}
	}
}

// Close terminates the link (LCP Terminate-Request); EventLinkDown
// follows when the peer acknowledges or the Terminate retries run out.
func (s *Session) Close(now time.Time, out *Output) {
	if s.dead {
		return
	}
	s.link.out = out
	defer func() { s.link.out = nil }()
	s.fail(ReasonAdminClose)
	s.settle(now)
}

// fail records why the link must go down; settle acts on it outside the
// automata so no transition runs inside another.
func (s *Session) fail(r DownReason) {
	if s.reason == ReasonNone || s.reason == ReasonPeerTerminate && r != ReasonPeerTerminate && !s.closeWanted {
		s.reason = r
	}
	s.closeWanted = true
}

func (s *Session) settle(now time.Time) {
	if s.dead {
		return
	}
	if s.lcp.loops >= s.cfg.timers.maxFailure {
		s.fail(ReasonLoopback)
	}
	if !s.closeWanted {
		return
	}
	if s.reason == ReasonEchoTimeout {
		// The peer is gone: a Terminate-Request would go nowhere.
		s.die(now)
		return
	}
	switch s.lcp.f.state {
	case StateInitial, StateStarting, StateClosed, StateStopped:
		s.die(now)
	case StateReqSent, StateAckRcvd, StateAckSent, StateOpened:
		s.phase = PhaseTerminate
		s.lcp.f.Close(now)
	}
}

// die reports the link down and stops every timer.
func (s *Session) die(now time.Time) {
	if s.dead {
		return
	}
	if s.lcp.f.state == StateOpened {
		s.lcp.f.Down(now)
	}
	s.lcp.f.stopTimer()
	s.auth.timerOn = false
	s.lcp.echoOn = false
	s.ipcp.f.stopTimer()
	if c := s.ipv6cp; c != nil {
		c.f.stopTimer()
	}
	s.dead = true
	s.phase = PhaseDead
	r := s.reason
	if r == ReasonNone {
		r = ReasonNegotiation
	}
	s.link.event(Event{Kind: EventLinkDown, Reason: r, Message: s.failMessage})
}

// lcpUp is LCP's This-Layer-Up: go to authentication or network.
func (s *Session) lcpUp(now time.Time) {
	l := &s.lcp
	s.link.acfc, s.link.pfc, s.link.mru = l.peerACFC, l.peerPFC, l.peerMRU
	s.link.event(Event{Kind: EventLinkUp})
	l.startEcho(now)
	s.auth.reset()
	if s.cfg.role == RoleServer && l.ourAuth != AuthNone {
		s.phase = PhaseAuthenticate
		s.auth.startServer(now, l.ourAuth)
		return
	}
	if s.cfg.role == RoleClient && l.peerAuth != AuthNone {
		s.phase = PhaseAuthenticate
		s.auth.startClient(now, l.peerAuth)
		return
	}
	s.startNetwork(now)
}

// lcpDown is LCP's This-Layer-Down: the NCPs go down with it.
func (s *Session) lcpDown(now time.Time) {
	s.lcp.echoOn = false
	s.proxyAuth, s.queued = false, nil
	s.auth.reset()
	s.ipcp.f.Down(now)
	if c := s.ipv6cp; c != nil {
		c.f.Down(now)
	}
	s.link.acfc, s.link.pfc, s.link.mru = false, false, 0
	if s.phase != PhaseTerminate {
		s.phase = PhaseEstablish
	}
}

// lcpFinished is LCP's This-Layer-Finished: the link is dead.
func (s *Session) lcpFinished(now time.Time) { s.die(now) }

func (s *Session) authDone(now time.Time, r AuthResult) {
	if s.cfg.role == RoleServer && r.PeerIPv4.Is4() {
		s.cfg.setAddr(addrPeer, r.PeerIPv4)
	}
	// Per-subscriber name servers replace the configured ones before
	// IPCP starts, so its Naks and Acks already carry them.
	if s.cfg.role == RoleServer && r.DNS1.Is4() {
		s.cfg.setAddr(addrDNS1, r.DNS1)
	}
	if s.cfg.role == RoleServer && r.DNS2.Is4() {
		s.cfg.setAddr(addrDNS2, r.DNS2)
	}
	s.link.event(Event{Kind: EventAuthenticated, Message: r.Message})
	s.startNetwork(now)
}

func (s *Session) startNetwork(now time.Time) {
	s.phase = PhaseNetwork
	if s.cfg.ipv4 && !s.ipcp.disabled {
		s.ipcp.reset()
		s.ipcp.f.Open(now)
		s.ipcp.f.Up(now)
	}
	if s.cfg.ipv6 && !s.ipv6cp.disabled {
		s.ipv6cp.reset()
		s.ipv6cp.f.Open(now)
		s.ipv6cp.f.Up(now)
	}
}

func ncpAlive(f *fsm) bool {
	return f.state >= StateClosing
}

// ncpFinished closes the link once no network protocol is left.
func (s *Session) ncpFinished() {
	if s.phase != PhaseNetwork {
		return
	}
	if (s.cfg.ipv4 && !s.ipcp.disabled && ncpAlive(&s.ipcp.f)) || (s.cfg.ipv6 && !s.ipv6cp.disabled && ncpAlive(&s.ipv6cp.f)) {
		return
	}
	s.fail(ReasonNetworkFailed)
}

// protocolRejected stops an NCP the peer does not speak (RFC 1661 §5.7).
func (s *Session) protocolRejected(now time.Time, p Protocol) {
	var f *fsm
	switch p {
	case ProtoIPCP:
		s.ipcp.disabled = true
		f = &s.ipcp.f
	case ProtoIPv6CP:
		c := s.ipv6cp
		if c == nil {
			c = s.newIPv6CP()
		}
		c.disabled = true
		f = &c.f
	case ProtoPAP, ProtoCHAP:
		if s.auth.state != authIdle && s.auth.state != authDone {
			s.fail(ReasonAuthFailed)
		}
		return
	default:
		return
	}
	if f.state == StateOpened {
		f.tld(now)
	}
	f.stopTimer()
	f.state = StateStopped
	if s.phase == PhaseNetwork {
		s.ncpFinished()
	}
}

func (s *Session) supports(a AuthProto) bool {
	for _, x := range s.cfg.auth {
		if x == a {
			return true
		}
	}
	return false
}

func (s *Session) randBytes(b []byte) {
	// A failing source leaves zeros; callers that need non-zero values
	// check for them.
	if _, err := io.ReadFull(s.cfg.rand, b); err != nil {
		clear(b)
	}
}

func (s *Session) randByte() uint8 {
	var b [1]byte
	s.randBytes(b[:])
	return b[0]
}

// randMagicNot draws a non-zero magic number different from not.
func (s *Session) randMagicNot(not uint32) uint32 {
	var b [4]byte
	for i := 0; i < 4; i++ {
		s.randBytes(b[:])
		if v := binary.BigEndian.Uint32(b[:]); v != 0 && v != not {
			return v
		}
	}
	return not ^ 0x5a5a5a5b | 1
}

func (s *Session) randMagic() uint32 { return s.randMagicNot(0) }

// randIID draws a non-zero interface identifier different from not.
func (s *Session) randIID(not [8]byte) [8]byte {
	var v [8]byte
	for i := 0; i < 4; i++ {
		s.randBytes(v[:])
		if v != ([8]byte{}) && v != not {
			return v
		}
	}
	v = not
	v[7] ^= 0xa5
	v[0] |= 2
	return v
}
