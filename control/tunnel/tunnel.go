package tunnel

import (
	"crypto/subtle"
	"encoding/binary"
	"io"
	"time"

	"github.com/l2tpd/l2tpd/control/reliable"
	"github.com/l2tpd/l2tpd/control/wire"
)

// State is a control connection state (RFC 2661 §7.2, RFC 3931 §7.3).
type State uint8

const (
	StateIdle         State = iota
	StateWaitCtlReply       // initiator: SCCRQ sent
	StateWaitCtlConn        // responder: SCCRP sent
	StateEstablished
	StateClosing // StopCCN sent or received; acking retransmissions
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateIdle:
		return "idle"
	case StateWaitCtlReply:
		return "wait-ctl-reply"
	case StateWaitCtlConn:
		return "wait-ctl-conn"
	case StateEstablished:
		return "established"
	case StateClosing:
		return "closing"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// Pseudowire types (RFC 3931 §5.4.4, IANA; RFC 4719 §6 for Ethernet).
const (
	PseudowirePPP          uint16 = 0x0007
	PseudowireEthernet     uint16 = 0x0005
	PseudowireEthernetVLAN uint16 = 0x0004
)

// Config is what a tunnel needs from its owner. It is copied at creation.
type Config struct {
	// Version is 2 or 3; for an initiator the version of its first SCCRQ.
	Version uint8
	// Fallback lets a v3 initiator retry in v2 when the peer refuses the
	// version (StopCCN result 5) or answers in v2 (RFC 3931 §4.7.3).
	Fallback bool
	Encap    wire.Encap
	// LocalID is our Tunnel ID (v2, 16 bits) or Control Connection ID (v3).
	LocalID  uint32
	HostName string
	RouterID uint32
	// Secret enables challenge/response tunnel authentication (RFC 2661
	// §5.1.1) and hidden AVPs.
	Secret   []byte
	HideAVPs bool
	// ReceiveWindow is the Receive Window Size we advertise.
	ReceiveWindow     uint16
	Hello             time.Duration
	RetransmitInitial time.Duration
	RetransmitCap     time.Duration
	MaxRetransmits    int
	MaxSessions       int
	// SetupTimeout bounds an incoming call in setup, v2 or v3, in both
	// directions: one we answered (ICRP sent) that has no ICCN, or one
	// we placed with StartCall (ICRQ sent) that has no ICRP, this long
	// after the ICRQ is cleared with a CDN, result 10 (RFC 2661 §7.4.1,
	// §7.4.2, §4.4.2). Outgoing calls are not bounded. Zero: no bound.
	SetupTimeout time.Duration
	// Rand supplies challenges, Random Vectors, tie breakers and session
	// IDs; tests inject a deterministic source.
	Rand io.Reader
	// SessionIDFree, when set, is asked whether a new local session ID is
	// unused beyond this tunnel (v3 session IDs are unique per LCCE).
	SessionIDFree func(id uint32) bool
	// SessionIDMap, when set, turns a random candidate into a session ID
	// of the owner's choosing (the shell keeps a shard's v3 session IDs in
	// its residue class, so the datapath can route them by ID alone).
	SessionIDMap func(id uint32) uint32
	// Admit, when set, is asked before a new session is created: the
	// owner's limits across tunnels.
	Admit func() bool
	// Pseudowires lists the v3 pseudowire types offered; PPP by default.
	Pseudowires []uint16
	// Bind, when set, decides on each v3 ICRQ for a pseudowire type other
	// than PPP once its AVPs are read (Session.PW, never nil there): it
	// returns what we require of the data we receive and our circuit's
	// status for the ICRP, or the result to refuse the call with (CDN).
	Bind func(s *Session) (PWParams, *Result)
}

// Peer is what the peer told about itself in SCCRQ/SCCRP.
type Peer struct {
	TunnelID  uint32
	HostName  string
	Vendor    string
	Firmware  uint16
	Window    uint16
	RouterID  uint32
	Framing   uint32
	Bearer    uint32
	TieBreak  []byte
	Challenge bool
}

// Stats count what a tunnel dropped and did.
type Stats struct {
	Malformed     uint64
	Invalid       uint64
	BadAuth       uint64
	UnknownSess   uint64
	UnexpectedMsg uint64
	Reliable      reliable.Stats
}

// Tunnel is one control connection and its sessions. It never reads the
// clock, touches the network or starts goroutines: the owner feeds it
// packets and the time and sends what Poll returns.
type Tunnel struct {
	cfg       Config
	version   uint8
	initiator bool
	state     State
	peer      Peer
	ch        *reliable.Channel
	created   time.Time
	upAt      time.Time
	closeAt   time.Time
	// closeResult is why the tunnel went down.
	closeResult Result
	stopSent    bool

	challenge []byte // ours, when we challenged

	// RFC 3931 control message authentication (v3 with a secret).
	auth        bool
	authKey     []byte
	localNonce  []byte
	remoteNonce []byte

	tieBreaker [8]byte

	sessions map[uint32]*Session
	byPeer   map[uint32]uint32 // peer session ID → local ID
	events   []Event
	// awaiting counts the calls in setup (answered, waiting for their
	// ICCN, or placed, waiting for their ICRP); setupAt is the earliest
	// of their expiries (zero: none). It can be early, never late: calls
	// that come up leave it, and the scan at setupAt finds the next one.
	awaiting int
	setupAt  time.Time

	rv      []byte // Random Vector of the message being built
	hideNow bool   // the message being built may carry hidden AVPs
	scratch []byte
	avps    []wire.AVP
	clear   []byte

	stats Stats
}

// Result is a Result Code AVP's content.
type Result struct {
	Code    uint16
	Error   uint16
	Message string
}

func (c *Config) defaults() {
	if c.Version == 0 {
		c.Version = 2
	}
	if c.ReceiveWindow == 0 {
		c.ReceiveWindow = 16
	}
	if c.RetransmitInitial == 0 {
		c.RetransmitInitial = time.Second
	}
	if c.RetransmitCap == 0 {
		c.RetransmitCap = 8 * time.Second
	}
	if c.MaxRetransmits == 0 {
		c.MaxRetransmits = 5
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = 65535
	}
	if len(c.Pseudowires) == 0 {
		c.Pseudowires = []uint16{PseudowirePPP}
	}
}

func newTunnel(now time.Time, cfg Config, initiator bool) *Tunnel {
	cfg.defaults()
	t := &Tunnel{
		cfg:       cfg,
		version:   cfg.Version,
		initiator: initiator,
		created:   now,
		sessions:  make(map[uint32]*Session),
		byPeer:    make(map[uint32]uint32),
		scratch:   make([]byte, 0, 512),
	}
	if initiator {
		t.setupAuth()
	}
	t.ch = t.newChannel()
	return t
}

// NewResponder returns a tunnel that waits for the SCCRQ the owner passes
// to Receive next.
func NewResponder(now time.Time, cfg Config) *Tunnel {
	return newTunnel(now, cfg, false)
}

// NewInitiator returns a tunnel that has queued its SCCRQ.
func NewInitiator(now time.Time, cfg Config) *Tunnel {
	t := newTunnel(now, cfg, true)
	t.rand(t.tieBreaker[:])
	t.sendSCCRQ(now)
	return t
}

// ID is our tunnel (control connection) ID.
func (t *Tunnel) ID() uint32 { return t.cfg.LocalID }

// Version is the protocol version in use.
func (t *Tunnel) Version() uint8 { return t.version }

// State is the control connection state.
func (t *Tunnel) State() State { return t.state }

// Peer is what the peer announced.
func (t *Tunnel) Peer() Peer { return t.peer }

// Initiator reports whether we sent the SCCRQ.
func (t *Tunnel) Initiator() bool { return t.initiator }

// Created and Up are when the tunnel was made and established.
func (t *Tunnel) Created() time.Time { return t.created }
func (t *Tunnel) Up() time.Time      { return t.upAt }

// CloseResult is why the tunnel closed (valid once Closing or Closed).
func (t *Tunnel) CloseResult() Result { return t.closeResult }

// Stats returns the tunnel's counters.
func (t *Tunnel) Stats() Stats {
	s := t.stats
	s.Reliable = t.ch.Stats()
	return s
}

// Sessions calls fn for each session.
func (t *Tunnel) Sessions(fn func(*Session)) {
	for _, s := range t.sessions {
		fn(s)
	}
}

// NumSessions is the number of sessions in any state.
func (t *Tunnel) NumSessions() int { return len(t.sessions) }

// Session returns a session by local ID.
func (t *Tunnel) Session(id uint32) *Session { return t.sessions[id] }

// Done reports that the tunnel can be forgotten.
func (t *Tunnel) Done() bool { return t.state == StateClosed }

// Events returns and clears what happened since the last call.
func (t *Tunnel) Events() []Event {
	ev := t.events
	t.events = t.events[:0:0]
	return ev
}

func (t *Tunnel) emit(e Event) { t.events = append(t.events, e) }

func (t *Tunnel) rand(b []byte) {
	if t.cfg.Rand == nil {
		return
	}
	io.ReadFull(t.cfg.Rand, b) //nolint:errcheck // a short read leaves zeros, still valid
}

func (t *Tunnel) newChannel() *reliable.Channel {
	return reliable.New(reliable.Config{
		NsNrOffset:        wire.NsNrOffset(t.cfg.Encap),
		ZLB:               t.zlb(),
		ReceiveWindow:     t.cfg.ReceiveWindow,
		RetransmitInitial: t.cfg.RetransmitInitial,
		RetransmitCap:     t.cfg.RetransmitCap,
		MaxRetransmits:    t.cfg.MaxRetransmits,
		Seal:              t.seal,
	})
}

// setupAuth turns RFC 3931 control message authentication on for a v3
// connection with a secret (§4.3, §5.4.1): every message then carries a
// Message Digest, and acknowledgements are explicit ACK messages.
func (t *Tunnel) setupAuth() {
	t.auth = t.version == 3 && len(t.cfg.Secret) > 0
	if !t.auth {
		return
	}
	t.authKey = wire.DeriveAuthKey(t.cfg.Secret)
	if t.localNonce == nil {
		t.localNonce = make([]byte, 16)
		t.rand(t.localNonce)
	}
}

// digestOffset is where the Message Digest AVP's Digest Type octet sits:
// that AVP directly follows the 8-octet Message Type AVP.
func (t *Tunnel) digestOffset() int {
	return wire.NsNrOffset(t.cfg.Encap) + 4 + 8 + 6
}

// seal signs a message after the channel patched its Ns/Nr.
func (t *Tunnel) seal(pkt []byte) {
	if !t.auth {
		return
	}
	mt := wire.MsgType(binary.BigEndian.Uint16(pkt[wire.NsNrOffset(t.cfg.Encap)+4+6:]))
	if mt == wire.MsgSCCRQ {
		wire.SignDigest(pkt, t.cfg.Encap, t.digestOffset(), t.authKey)
		return
	}
	wire.SignDigestNonce(pkt, t.cfg.Encap, t.digestOffset(), t.authKey, t.localNonce, t.remoteNonce)
}

// verify checks a received message's digest (RFC 3931 §5.4.1); the
// peer's nonce is learnt from its SCCRQ or SCCRP first.
func (t *Tunnel) verify(pkt []byte, m *wire.Message) bool {
	if m.Type == wire.MsgSCCRQ || m.Type == wire.MsgSCCRP {
		a, ok := m.Find(wire.VendorIETF, wire.AVPNonce)
		if !ok {
			return false
		}
		t.remoteNonce = append(t.remoteNonce[:0], a.Value...)
	}
	if m.Type == wire.MsgSCCRQ {
		return wire.VerifyDigest(pkt, t.cfg.Encap, t.authKey) == nil
	}
	return wire.VerifyDigestNonce(pkt, t.cfg.Encap, t.authKey, t.localNonce, t.remoteNonce) == nil
}

// zlb encodes the tunnel's acknowledgement template: a ZLB, or with
// control message authentication an ACK carrying a digest (RFC 3931
// §4.2: a ZLB has no room for the Message Digest).
func (t *Tunnel) zlb() []byte {
	h := wire.Header{Control: true, HasLength: true, HasSeq: true, Version: t.version, TunnelID: t.peer.TunnelID}
	b := wire.AppendControlHeader(nil, t.cfg.Encap, h)
	if t.auth {
		b = wire.AppendMessageType(b, wire.MsgACK)
		b, _ = wire.AppendMessageDigestAVP(b, false)
	}
	wire.FinishControl(b, 0, t.cfg.Encap)
	return b
}

// Receive processes one control message addressed to this tunnel: pkt is
// the whole L2TP message (for EncapIP from the zero session ID on). The
// caller owns pkt; the tunnel copies what it keeps.
func (t *Tunnel) Receive(now time.Time, pkt []byte) {
	if t.state == StateClosed {
		return
	}
	m, err := wire.ParseMessage(pkt, t.cfg.Encap, t.avps[:0])
	t.avps = m.AVPs
	if err != nil {
		t.stats.Malformed++
		return
	}
	if t.state == StateIdle && !t.initiator && m.Type == wire.MsgSCCRQ {
		t.version = m.Header.Version
		t.setupAuth()
		t.ch.SetZLB(t.zlb())
	}
	// A v2-only peer refusing our v3 SCCRQ cannot sign its answer.
	v2Refusal := t.initiator && t.state == StateWaitCtlReply && t.cfg.Fallback && m.Header.Version == 2
	if t.auth && !v2Refusal && !t.verify(pkt, &m) {
		// RFC 3931 §4.3: a message that fails authentication is dropped
		// before it can touch the sequence state.
		t.stats.BadAuth++
		return
	}
	zlb := m.Type == wire.MsgZLB || m.Type == wire.MsgACK
	switch t.ch.Recv(now, m.Header.Ns, m.Header.Nr, zlb, pkt) {
	case reliable.Deliver:
		t.handle(now, &m)
		for {
			p, ok := t.ch.Next(now)
			if !ok {
				break
			}
			m, err = wire.ParseMessage(p, t.cfg.Encap, t.avps[:0])
			t.avps = m.AVPs
			if err != nil {
				t.stats.Malformed++
				continue
			}
			t.handle(now, &m)
		}
	}
}

// handle acts on one in-order control message (RFC 2661 §7).
func (t *Tunnel) handle(now time.Time, m *wire.Message) {
	if t.state == StateClosing && m.Type != wire.MsgStopCCN {
		return // only acks matter now; the channel sent them
	}
	if hasHidden(m) {
		if len(t.cfg.Secret) == 0 {
			t.stats.BadAuth++
			t.fail(now, m, &wire.ProtocolError{Action: wire.ActionStopCCN, Result: wire.ResultGeneralError, ErrorCode: wire.ErrCodeRange, Msg: "hidden AVP received but no secret is configured"})
			return
		}
		var err error
		t.clear, err = m.Unhide(t.cfg.Secret, t.clear[:0])
		if err != nil {
			t.stats.BadAuth++
			t.fail(now, m, &wire.ProtocolError{Action: wire.ActionStopCCN, Result: wire.ResultGeneralError, ErrorCode: wire.ErrCodeLength, Msg: "cannot unhide AVP: " + err.Error()})
			return
		}
	}
	if err := wire.Validate(m); err != nil {
		t.stats.Invalid++
		if pe, ok := err.(*wire.ProtocolError); ok {
			t.fail(now, m, pe)
		}
		return
	}
	switch m.Type {
	case wire.MsgSCCRQ:
		t.onSCCRQ(now, m)
	case wire.MsgSCCRP:
		t.onSCCRP(now, m)
	case wire.MsgSCCCN:
		t.onSCCCN(now, m)
	case wire.MsgStopCCN:
		t.onStopCCN(now, m)
	case wire.MsgHello:
		// acknowledged by the channel (RFC 2661 §6.5)
	case wire.MsgICRQ, wire.MsgOCRQ:
		t.onCallRequest(now, m)
	case wire.MsgICRP, wire.MsgOCRP:
		t.onCallReply(now, m)
	case wire.MsgICCN, wire.MsgOCCN:
		t.onCallConnected(now, m)
	case wire.MsgCDN:
		t.onCDN(now, m)
	case wire.MsgWEN, wire.MsgSLI:
		t.onLinkInfo(now, m)
	default:
		t.stats.UnexpectedMsg++
	}
}

// fail answers a protocol error the way the RFC says (RFC 2661 §4.1).
func (t *Tunnel) fail(now time.Time, m *wire.Message, pe *wire.ProtocolError) {
	switch pe.Action {
	case wire.ActionStopCCN:
		if t.peer.TunnelID == 0 {
			t.learnPeerTunnelID(m)
		}
		t.Close(now, Result{Code: pe.Result, Error: pe.ErrorCode, Message: pe.Msg})
	case wire.ActionCDN:
		if s := t.sessionFor(m); s != nil {
			t.closeSession(now, s, Result{Code: pe.Result, Error: pe.ErrorCode, Message: pe.Msg}, nil, true)
			return
		}
		if peerSID := peerSessionID(m, t.version); peerSID != 0 {
			// A call we never accepted: refuse it with a CDN of its own.
			b := t.begin(wire.MsgCDN, peerSID)
			b = wire.AppendResultCode(b, true, pe.Result, pe.ErrorCode, pe.Msg)
			b = t.appendSessionIDs(b, 0, peerSID)
			t.finish(now, b)
		}
	}
}

func hasHidden(m *wire.Message) bool {
	for i := range m.AVPs {
		if m.AVPs[i].Hidden {
			return true
		}
	}
	return false
}

func (t *Tunnel) learnPeerTunnelID(m *wire.Message) {
	if t.version == 3 {
		if a, ok := m.Find(wire.VendorIETF, wire.AVPAssignedConnectionID); ok {
			if v, err := a.Uint32(); err == nil {
				t.setPeerTunnelID(v)
			}
		}
		return
	}
	if a, ok := m.Find(wire.VendorIETF, wire.AVPAssignedTunnelID); ok {
		if v, err := a.Uint16(); err == nil {
			t.setPeerTunnelID(uint32(v))
		}
	}
}

func (t *Tunnel) setPeerTunnelID(id uint32) {
	t.peer.TunnelID = id
	t.ch.SetZLB(t.zlb())
}

// readPeer records the tunnel AVPs of an SCCRQ or SCCRP.
func (t *Tunnel) readPeer(m *wire.Message) {
	t.learnPeerTunnelID(m)
	for _, a := range m.AVPs {
		if a.Vendor != wire.VendorIETF {
			continue
		}
		switch a.Type {
		case wire.AVPHostName:
			t.peer.HostName = string(a.Value)
		case wire.AVPVendorName:
			t.peer.Vendor = string(a.Value)

		case wire.AVPFirmwareRevision:
			t.peer.Firmware, _ = a.Uint16()
		case wire.AVPReceiveWindowSize:
			if w, err := a.Uint16(); err == nil && w > 0 {
				t.peer.Window = w
				t.ch.SetPeerWindow(w)
			}
		case wire.AVPRouterID:
			t.peer.RouterID, _ = a.Uint32()
		case wire.AVPFramingCapabilities:
			t.peer.Framing, _ = a.Uint32()
		case wire.AVPBearerCapabilities:
			t.peer.Bearer, _ = a.Uint32()
		case wire.AVPTieBreaker:
			t.peer.TieBreak = append(t.peer.TieBreak[:0], a.Value...)
		case wire.AVPChallenge:
			t.peer.Challenge = true
		}
	}
}

// begin starts a control message to the peer; peerSession is the header
// Session ID (v2 only).
func (t *Tunnel) begin(typ wire.MsgType, peerSession uint32) []byte {
	h := wire.Header{Control: true, HasLength: true, HasSeq: true, Version: t.version, TunnelID: t.peer.TunnelID}
	if t.version == 2 {
		h.SessionID = peerSession
	}
	t.rv = nil
	// SCCRQ and SCCRP go unhidden: their receiver picks the secret from
	// the Host Name, and xl2tpd has no secret at all while it reads an
	// SCCRP, so hidden AVPs there cannot be read reliably.
	t.hideNow = typ != wire.MsgSCCRQ && typ != wire.MsgSCCRP
	b := wire.AppendControlHeader(t.scratch[:0], t.cfg.Encap, h)
	b = wire.AppendMessageType(b, typ)
	if t.auth {
		b, _ = wire.AppendMessageDigestAVP(b, false)
	}
	return b
}

// finish patches the length and hands the message to the channel.
func (t *Tunnel) finish(now time.Time, b []byte) {
	wire.FinishControl(b, 0, t.cfg.Encap)
	t.ch.Send(now, b)
	t.scratch = b
}

// hideable are the AVPs RFC 2661 §4.4 lets us hide that we send.
func hideable(typ wire.AVPType) bool {
	switch typ {
	case wire.AVPAssignedTunnelID, wire.AVPAssignedSessionID, wire.AVPCallSerialNumber,
		wire.AVPVendorName, wire.AVPFirmwareRevision, wire.AVPFramingCapabilities,
		wire.AVPBearerCapabilities, wire.AVPChallenge, wire.AVPChallengeResponse,
		wire.AVPFramingType, wire.AVPBearerType, wire.AVPTxConnectSpeed, wire.AVPRxConnectSpeed,
		wire.AVPCallingNumber, wire.AVPCalledNumber, wire.AVPProxyAuthenName,
		wire.AVPProxyAuthenChallenge, wire.AVPProxyAuthenID, wire.AVPProxyAuthenResponse,
		wire.AVPInitialReceivedLCPConfReq, wire.AVPLastSentLCPConfReq, wire.AVPLastReceivedLCPConfReq,
		wire.AVPProxyAuthenType:
		return true
	}
	return false
}

// avp appends an IETF AVP, hidden when the tunnel hides and RFC allows.
func (t *Tunnel) avp(b []byte, mandatory bool, typ wire.AVPType, v []byte) []byte {
	if t.version == 2 && t.hideNow && t.cfg.HideAVPs && len(t.cfg.Secret) > 0 && hideable(typ) {
		if t.rv == nil {
			var rv [16]byte
			t.rand(rv[:])
			b = wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPRandomVector, rv[:])
			t.rv = b[len(b)-16:]
		}
		var pad [8]byte
		n := 0
		if t.cfg.Rand != nil {
			var nb [1]byte
			t.rand(nb[:])
			n = int(nb[0] % 8)
			t.rand(pad[:n])
		}
		return wire.AppendHiddenAVP(b, mandatory, wire.VendorIETF, typ, v, t.cfg.Secret, t.rv, pad[:n])
	}
	return wire.AppendAVP(b, mandatory, wire.VendorIETF, typ, v)
}

func (t *Tunnel) avp16(b []byte, mandatory bool, typ wire.AVPType, v uint16) []byte {
	var x [2]byte
	binary.BigEndian.PutUint16(x[:], v)
	return t.avp(b, mandatory, typ, x[:])
}

func (t *Tunnel) avp32(b []byte, mandatory bool, typ wire.AVPType, v uint32) []byte {
	var x [4]byte
	binary.BigEndian.PutUint32(x[:], v)
	return t.avp(b, mandatory, typ, x[:])
}

// appendTunnelAVPs writes the AVPs SCCRQ and SCCRP share.
func (t *Tunnel) appendTunnelAVPs(b []byte) []byte {
	if t.version == 2 {
		b = wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPProtocolVersion, []byte{1, 0})
		b = t.avp32(b, true, wire.AVPFramingCapabilities, 0x3) // sync and async
		b = t.avp32(b, false, wire.AVPBearerCapabilities, 0)
	}
	b = wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPHostName, []byte(t.cfg.HostName))
	b = t.avp(b, false, wire.AVPVendorName, []byte("l2tpd"))
	b = t.avp16(b, false, wire.AVPFirmwareRevision, 0x0100)
	b = wire.AppendAVPUint16(b, false, wire.VendorIETF, wire.AVPReceiveWindowSize, t.cfg.ReceiveWindow)
	if t.version == 3 {
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPRouterID, t.cfg.RouterID)
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPAssignedConnectionID, t.cfg.LocalID)
		caps := make([]byte, 0, 2*len(t.cfg.Pseudowires))
		for _, pw := range t.cfg.Pseudowires {
			caps = binary.BigEndian.AppendUint16(caps, pw)
		}
		b = wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPPseudowireCapabilities, caps)
		if t.auth {
			b = wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPNonce, t.localNonce)
		}
		if t.initiator && t.cfg.Fallback {
			// Lets a v2-only peer address its StopCCN to us (RFC 3931 §4.7.3).
			b = wire.AppendAVPUint16(b, false, wire.VendorIETF, wire.AVPAssignedTunnelID, uint16(t.cfg.LocalID))
		}
	} else {
		b = t.avp16(b, true, wire.AVPAssignedTunnelID, uint16(t.cfg.LocalID))
	}
	return b
}

func (t *Tunnel) newChallenge() []byte {
	if len(t.cfg.Secret) == 0 {
		return nil
	}
	c := make([]byte, 16)
	t.rand(c)
	return c
}

func (t *Tunnel) sendSCCRQ(now time.Time) {
	b := t.begin(wire.MsgSCCRQ, 0)
	b = t.appendTunnelAVPs(b)
	b = wire.AppendAVP(b, false, wire.VendorIETF, wire.AVPTieBreaker, t.tieBreaker[:])
	if t.version == 2 {
		if t.challenge = t.newChallenge(); t.challenge != nil {
			b = t.avp(b, true, wire.AVPChallenge, t.challenge)
		}
	}
	t.finish(now, b)
	t.state = StateWaitCtlReply
}

// checkResponse verifies a Challenge Response (RFC 2661 §5.1.1): id is
// the message type of the message it arrived in.
func (t *Tunnel) checkResponse(m *wire.Message, id wire.MsgType) bool {
	if t.challenge == nil {
		return true
	}
	a, ok := m.Find(wire.VendorIETF, wire.AVPChallengeResponse)
	if !ok || len(a.Value) != 16 {
		return false
	}
	want := wire.ChallengeResponse(id, t.cfg.Secret, t.challenge)
	return subtle.ConstantTimeCompare(a.Value, want[:]) == 1
}

// answerChallenge appends our Challenge Response to the peer's Challenge,
// or reports that we cannot answer.
func (t *Tunnel) answerChallenge(b []byte, m *wire.Message, id wire.MsgType) ([]byte, bool) {
	a, ok := m.Find(wire.VendorIETF, wire.AVPChallenge)
	if !ok {
		return b, true
	}
	if len(t.cfg.Secret) == 0 {
		return b, false
	}
	r := wire.ChallengeResponse(id, t.cfg.Secret, a.Value)
	return t.avp(b, true, wire.AVPChallengeResponse, r[:]), true
}

// onSCCRQ answers a new control connection (RFC 2661 §7.2.1).
func (t *Tunnel) onSCCRQ(now time.Time, m *wire.Message) {
	if t.initiator || t.state != StateIdle {
		t.stats.UnexpectedMsg++
		return
	}
	t.version = m.Header.Version
	// A v3-capable peer probing with a v2 header (RFC 3931 §4.7.3) is
	// answered in v2: each peer is answered in the version it spoke.
	t.readPeer(m)
	t.ch.SetZLB(t.zlb())
	b := t.begin(wire.MsgSCCRP, 0)
	b = t.appendTunnelAVPs(b)
	var ok bool
	if t.version == 2 {
		if b, ok = t.answerChallenge(b, m, wire.MsgSCCRP); !ok {
			t.stats.BadAuth++
			t.Close(now, Result{Code: wire.ResultNotAuthorized, Message: "challenge received but no secret is configured"})
			return
		}
		if t.challenge = t.newChallenge(); t.challenge != nil {
			b = t.avp(b, true, wire.AVPChallenge, t.challenge)
		}
	}
	t.finish(now, b)
	t.state = StateWaitCtlConn
}

// onSCCRP completes the initiator's side (RFC 2661 §7.2.1).
func (t *Tunnel) onSCCRP(now time.Time, m *wire.Message) {
	if !t.initiator || t.state != StateWaitCtlReply {
		t.stats.UnexpectedMsg++
		return
	}
	if m.Header.Version != t.version {
		if !t.cfg.Fallback || m.Header.Version != 2 {
			t.stats.UnexpectedMsg++
			return
		}
		t.version = 2 // the peer answered our probe in v2 (RFC 3931 §4.7.3)
	}
	t.readPeer(m)
	if !t.checkResponse(m, wire.MsgSCCRP) {
		t.stats.BadAuth++
		t.Close(now, Result{Code: wire.ResultNotAuthorized, Message: "challenge response mismatch"})
		return
	}
	b := t.begin(wire.MsgSCCCN, 0)
	var ok bool
	if t.version == 2 {
		if b, ok = t.answerChallenge(b, m, wire.MsgSCCCN); !ok {
			t.stats.BadAuth++
			t.Close(now, Result{Code: wire.ResultNotAuthorized, Message: "challenge received but no secret is configured"})
			return
		}
	}
	t.finish(now, b)
	t.established(now)
}

// onSCCCN completes the responder's side.
func (t *Tunnel) onSCCCN(now time.Time, m *wire.Message) {
	if t.initiator || t.state != StateWaitCtlConn {
		t.stats.UnexpectedMsg++
		return
	}
	if !t.checkResponse(m, wire.MsgSCCCN) {
		t.stats.BadAuth++
		t.Close(now, Result{Code: wire.ResultNotAuthorized, Message: "challenge response mismatch"})
		return
	}
	t.established(now)
}

func (t *Tunnel) established(now time.Time) {
	t.state = StateEstablished
	t.upAt = now
	t.emit(Event{Kind: TunnelUp})
}

// onStopCCN tears down on the peer's request (RFC 2661 §5.7).
func (t *Tunnel) onStopCCN(now time.Time, m *wire.Message) {
	if t.state == StateClosing {
		return // both sides sent StopCCN; the channel acknowledged theirs
	}
	res := readResult(m)
	if t.initiator && t.state == StateWaitCtlReply && t.version == 3 && t.cfg.Fallback && res.Code == wire.ResultUnsupportedVersion {
		t.restartV2(now)
		return
	}
	t.dropSessions(Result{Code: wire.CDNLostCarrier, Message: "tunnel closed by peer"})
	t.closeResult = res
	t.state = StateClosing
	t.closeAt = now.Add(t.holdTime())
	t.emit(Event{Kind: TunnelDown, Result: res, ByPeer: true})
}

// restartV2 retries the SCCRQ in v2 after the peer refused v3.
func (t *Tunnel) restartV2(now time.Time) {
	t.version = 2
	t.peer = Peer{}
	t.setupAuth()
	t.ch = t.newChannel()
	t.emit(Event{Kind: TunnelFallback})
	t.sendSCCRQ(now)
}

// holdTime is one full retransmission cycle: how long a closed tunnel
// keeps acknowledging a peer's retransmitted StopCCN (RFC 2661 §5.7).
func (t *Tunnel) holdTime() time.Duration {
	return t.ch.GiveUpAfter()
}

func readResult(m *wire.Message) Result {
	a, ok := m.Find(wire.VendorIETF, wire.AVPResultCode)
	if !ok {
		return Result{}
	}
	code, ec, msg, err := wire.ParseResultCode(a.Value)
	if err != nil {
		return Result{}
	}
	return Result{Code: code, Error: ec, Message: string(msg)}
}

// Close sends StopCCN with res and clears every session (RFC 2661 §5.7).
func (t *Tunnel) Close(now time.Time, res Result) {
	if t.state == StateClosing || t.state == StateClosed {
		return
	}
	t.dropSessions(Result{Code: wire.CDNAdmin, Message: "tunnel closed"})
	b := t.begin(wire.MsgStopCCN, 0)
	if t.version == 3 {
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPAssignedConnectionID, t.cfg.LocalID)
	} else {
		b = t.avp16(b, true, wire.AVPAssignedTunnelID, uint16(t.cfg.LocalID))
	}
	b = wire.AppendResultCode(b, true, res.Code, res.Error, res.Message)
	t.finish(now, b)
	t.stopSent = true
	t.closeResult = res
	t.state = StateClosing
	t.closeAt = now.Add(t.holdTime())
	t.emit(Event{Kind: TunnelDown, Result: res})
}

// Deadline is when Poll next has work (zero: none).
func (t *Tunnel) Deadline() time.Time {
	d := t.ch.Deadline()
	switch t.state {
	case StateClosing:
		d = earliest(d, t.closeAt)
	case StateEstablished:
		// While a message is outstanding its retransmissions probe the
		// peer; the Hello timer runs only on an idle channel.
		if t.cfg.Hello > 0 && t.ch.Idle() {
			d = earliest(d, t.helloAt())
		}
		d = earliest(d, t.setupAt)
	}
	return d
}

func (t *Tunnel) helloAt() time.Time {
	last := t.ch.LastHeard()
	if last.IsZero() {
		last = t.upAt
	}
	return last.Add(t.cfg.Hello)
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// Poll runs the tunnel's timers and appends the packets to send now.
func (t *Tunnel) Poll(now time.Time, out [][]byte) [][]byte {
	if t.state == StateClosed {
		return out
	}
	switch t.state {
	case StateClosing:
		if !now.Before(t.closeAt) || (t.stopSent && t.ch.Idle()) {
			out = t.ch.Flush(now, out)
			t.state = StateClosed
			return out
		}
	case StateEstablished:
		if !t.setupAt.IsZero() && !now.Before(t.setupAt) {
			t.expireSetups(now)
		}
		if t.cfg.Hello > 0 && !now.Before(t.helloAt()) && t.ch.Idle() {
			t.finish(now, t.begin(wire.MsgHello, 0))
		}
	}
	out = t.ch.Poll(now, out)
	if t.ch.Failed() {
		// RFC 2661 §5.8: the peer stopped acknowledging; give up.
		t.dropSessions(Result{Code: wire.CDNLostCarrier, Message: "control channel lost"})
		if t.state != StateClosing {
			t.closeResult = Result{Code: wire.ResultGeneralError, Message: "peer not responding"}
			t.emit(Event{Kind: TunnelDown, Result: t.closeResult, Timeout: true})
		}
		t.state = StateClosed
	}
	return out
}

// Refuse answers an SCCRQ we will not serve with a StopCCN carrying res
// (RFC 2661 §7.2.1: StopCCN is the answer to an unacceptable SCCRQ). The
// tunnel then only acknowledges until it is done.
func (t *Tunnel) Refuse(now time.Time, pkt []byte, res Result) {
	m, err := wire.ParseMessage(pkt, t.cfg.Encap, t.avps[:0])
	t.avps = m.AVPs
	if err != nil || m.Type != wire.MsgSCCRQ {
		t.stats.Malformed++
		t.state = StateClosed
		return
	}
	t.version = m.Header.Version
	t.setupAuth()
	if t.auth {
		if a, ok := m.Find(wire.VendorIETF, wire.AVPNonce); ok {
			t.remoteNonce = append(t.remoteNonce[:0], a.Value...)
		}
	}
	t.ch.Recv(now, m.Header.Ns, m.Header.Nr, false, pkt)
	t.readPeer(&m)
	t.Close(now, res)
}

// TieBreakerValue is the Tie Breaker we sent in our SCCRQ.
func (t *Tunnel) TieBreakerValue() []byte { return t.tieBreaker[:] }

// LosesTieBreak reports whether our pending SCCRQ loses to a peer's SCCRQ
// carrying theirs (RFC 2661 §4.4.3): the lower value wins, and on equal
// values both sides discard their tunnels.
func (t *Tunnel) LosesTieBreak(theirs []byte) bool {
	if len(theirs) != len(t.tieBreaker) {
		return false
	}
	for i := range theirs {
		if t.tieBreaker[i] != theirs[i] {
			return t.tieBreaker[i] > theirs[i]
		}
	}
	return true
}

// Discard drops the tunnel silently, as the loser of a tie break must.
func (t *Tunnel) Discard() {
	t.dropSessions(Result{Code: wire.CDNGeneralError, Message: "tunnel discarded"})
	t.state = StateClosed
}
