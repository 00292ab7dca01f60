package control

import (
	"crypto/rand"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
)

// pwTick is how often a shard with pseudowires redials, replaces calls
// and reads its TAP devices' link state for Circuit Status.
const pwTick = time.Second

// maxBackoff bounds the wait before redialing a tunnel or placing a
// refused call again.
const maxBackoff = 30 * time.Second

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return time.Second
	}
	return min(2*d, maxBackoff)
}

// pwLink is a configured dynamic pseudowire, owned by the shard of its
// peer's address (where the peer's tunnels land too).
type pwLink struct {
	cfg       Pseudowire
	e         *entry // tunnel carrying its session; nil: none
	sid       uint32
	installed bool
	retryAt   time.Time
	backoff   time.Duration
	tapUp     bool // the TAP's link state as last read
}

// dialKey is one control connection we keep toward a peer.
type dialKey struct {
	netns, encap string
	peer         netip.AddrPort
	local        netip.Addr
}

// dialer keeps a control connection up toward a peer, for the
// pseudowires we place there and for static tunnels' Hellos. When the
// tunnel goes down it dials again after a backoff.
type dialer struct {
	key     dialKey
	label   string // static tunnel name, for show tunnels
	e       *entry
	at      time.Time
	backoff time.Duration
	refs    int
}

// pwShard is a shard's pseudowire state.
type pwShard struct {
	links     map[string]*pwLink
	bySession map[uint32]*pwLink
	dialers   map[dialKey]*dialer
	tickAt    time.Time
}

func newPWShard() *pwShard {
	return &pwShard{links: map[string]*pwLink{}, bySession: map[uint32]*pwLink{}, dialers: map[dialKey]*dialer{}}
}

func (pw Pseudowire) dialKey() dialKey {
	return dialKey{netns: pw.Netns, encap: pw.Encap, peer: netip.AddrPortFrom(pw.Peer, pw.peerPort()), local: pw.Local}
}

func (pw Pseudowire) peerPort() uint16 {
	if pw.Encap == EncapIP {
		return 0
	}
	return pw.Port
}

func (st StaticTunnel) dialKey() dialKey {
	port := st.PeerPort
	if st.Encap == EncapIP {
		port = 0
	}
	return dialKey{netns: st.Netns, encap: st.Encap, peer: netip.AddrPortFrom(st.Peer, port), local: st.Local}
}

// addPW starts serving a pseudowire in this shard.
func (sh *shard) addPW(cfg Pseudowire, now time.Time) {
	if _, dup := sh.pw.links[cfg.Name]; dup {
		return
	}
	sh.pw.links[cfg.Name] = &pwLink{cfg: cfg, tapUp: true}
	if cfg.Initiate {
		sh.refDialer(cfg.dialKey(), "", now)
	}
	sh.schedulePW(now)
}

// dropPW stops a pseudowire: its call is cleared (CDN, administrative).
func (sh *shard) dropPW(name string, now time.Time) {
	l := sh.pw.links[name]
	if l == nil {
		return
	}
	if l.e != nil {
		e := l.e
		_ = e.t.CloseSession(now, l.sid, tunnel.Result{Code: wire.CDNAdmin, Message: "pseudowire removed"}, nil)
		sh.service(e, now)
	}
	sh.removePW(l)
	delete(sh.pw.links, name)
	if l.cfg.Initiate {
		sh.unrefDialer(l.cfg.dialKey(), now)
	}
}

func (sh *shard) refDialer(k dialKey, label string, now time.Time) {
	d := sh.pw.dialers[k]
	if d == nil {
		d = &dialer{key: k, at: now}
		sh.pw.dialers[k] = d
	}
	d.refs++
	if label != "" {
		d.label = label
	}
}

func (sh *shard) unrefDialer(k dialKey, now time.Time) {
	d := sh.pw.dialers[k]
	if d == nil {
		return
	}
	if d.refs--; d.refs > 0 {
		return
	}
	delete(sh.pw.dialers, k)
	if d.e != nil && sh.tunnels[d.e.t.ID()] == d.e {
		d.e.t.Close(now, tunnel.Result{Code: wire.ResultClearConnection, Message: "no longer configured"})
		sh.service(d.e, now)
	}
}

// schedulePW keeps the shard's pseudowire tick in the timer heap.
func (sh *shard) schedulePW(now time.Time) {
	if len(sh.pw.links) == 0 && len(sh.pw.dialers) == 0 {
		sh.pw.tickAt = time.Time{}
		return
	}
	at := now.Add(pwTick)
	if !sh.pw.tickAt.IsZero() && !sh.pw.tickAt.After(at) && sh.pw.tickAt.After(now) {
		return
	}
	sh.pw.tickAt = at
	sh.timers.Push(at, timerKey{pw: true})
}

// tickPW redials lost tunnels, places the calls that are missing and
// reports TAP link changes as Circuit Status (RFC 4719 §2.3.2).
func (sh *shard) tickPW(now time.Time) {
	sh.pw.tickAt = time.Time{}
	for _, d := range sh.pw.dialers {
		if d.e != nil && sh.tunnels[d.e.t.ID()] != d.e {
			d.e = nil
			d.backoff = nextBackoff(d.backoff)
			d.at = now.Add(d.backoff)
		}
		if d.e == nil && !now.Before(d.at) {
			sh.dial(d, now)
		}
		if d.e != nil && d.e.t.State() == tunnel.StateEstablished {
			d.backoff = 0
		}
	}
	sh.readTAPs()
	for _, l := range sh.pw.links {
		if l.e != nil && (sh.tunnels[l.e.t.ID()] != l.e || l.e.t.Session(l.sid) == nil) {
			sh.removePW(l)
			delete(sh.pw.bySession, l.sid)
			l.e, l.sid = nil, 0
		}
		if l.e == nil {
			if l.cfg.Initiate && !now.Before(l.retryAt) {
				sh.placeCall(l, now)
			}
			continue
		}
		if s := l.e.t.Session(l.sid); s != nil && s.PW != nil && s.PW.Local.Active != l.tapUp {
			_ = l.e.t.SetCircuitStatus(now, l.sid, l.tapUp)
			sh.service(l.e, now)
		}
	}
	sh.schedulePW(now)
}

// readTAPs reads the link state of every pseudowire's TAP, one
// namespace switch per namespace.
func (sh *shard) readTAPs() {
	byNS := map[string][]*pwLink{}
	for _, l := range sh.pw.links {
		byNS[l.cfg.Netns] = append(byNS[l.cfg.Netns], l)
	}
	for ns, ls := range byNS {
		_ = datapath.InNetns(ns, func() error {
			for _, l := range ls {
				up, err := datapath.LinkUp(l.cfg.TAP)
				l.tapUp = err == nil && up
			}
			return nil
		})
	}
}

// dial opens a v3 control connection for d.
func (sh *shard) dial(d *dialer, now time.Time) {
	sock, err := sh.srv.pwSocket(d.key.netns, d.key.encap, d.key.local, d.key.peer.Addr())
	if err != nil {
		d.backoff = nextBackoff(d.backoff)
		d.at = now.Add(d.backoff)
		sh.srv.log.Warn("pseudowire: no socket toward peer", zap.String("peer", d.key.peer.String()), zap.String("netns", d.key.netns), zap.Error(err))
		return
	}
	id, ok := sh.allocTunnelID(3)
	if !ok {
		d.at = now.Add(time.Second)
		return
	}
	cfg := sh.srv.config()
	pol := cfg.match("", d.key.peer.Addr())
	encap := wire.EncapUDP
	if d.key.encap == EncapIP {
		encap = wire.EncapIP
	}
	var e *entry
	tc := tunnel.Config{
		Version:           3,
		Encap:             encap,
		LocalID:           id,
		HostName:          cfg.HostName,
		RouterID:          routerID(d.key.local),
		Secret:            []byte(pol.Secret),
		ReceiveWindow:     cfg.ReceiveWindow,
		Hello:             cfg.Hello,
		RetransmitInitial: cfg.RetransmitInitial,
		RetransmitCap:     cfg.RetransmitCap,
		MaxRetransmits:    cfg.MaxRetransmits,
		MaxSessions:       cfg.Limits.MaxSessionsPerTunnel,
		SetupTimeout:      cfg.SessionSetupTimeout,
		Rand:              rand.Reader,
		Pseudowires:       cfg.pwCapabilities(),
		Bind:              func(s *tunnel.Session) (tunnel.PWParams, *tunnel.Result) { return sh.bindPW(e, s) },
	}
	sh.v3SessionIDs(&tc)
	t := tunnel.NewInitiator(now, tc)
	e = &entry{t: t, peer: d.key.peer, local: d.key.local, sock: sock, host: pol.Name, key: peerKey{addr: d.key.peer}, encap: encap, label: d.label, netns: d.key.netns}
	sh.tunnels[id] = e
	sh.halfOpen[d.key.peer.Addr()]++
	sh.perPeer[d.key.peer.Addr()]++
	sh.srv.tunnels.Add(1)
	sh.counters["pseudowire_dials"]++
	d.e = e
	sh.service(e, now)
}

// routerID is the Router ID AVP of our v3 tunnels (RFC 3931 §5.4.3):
// the local IPv4 address when there is one.
func routerID(a netip.Addr) uint32 {
	if a = a.Unmap(); a.Is4() {
		b := a.As4()
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	return 0
}

// v3SessionIDs keeps a v3 tunnel's session IDs unique in the shard, in
// the shard's residue class and clear of static sessions.
func (sh *shard) v3SessionIDs(tc *tunnel.Config) {
	n := uint32(len(sh.srv.shards))
	tc.SessionIDFree = sh.sessionIDFree
	tc.SessionIDMap = func(id uint32) uint32 { return id - id%n + uint32(sh.index) }
}

// placeCall sends the ICRQ of an initiating pseudowire once its tunnel
// is up (RFC 3931 §3.2, RFC 4719 §2.2).
func (sh *shard) placeCall(l *pwLink, now time.Time) {
	d := sh.pw.dialers[l.cfg.dialKey()]
	if d == nil || d.e == nil || d.e.t.State() != tunnel.StateEstablished {
		return
	}
	p := &tunnel.PWParams{Active: l.tapUp}
	if l.cfg.CookieLen > 0 {
		p.Cookie = make([]byte, l.cfg.CookieLen)
		rand.Read(p.Cookie)
	}
	if l.cfg.L2SpecificSublayer {
		p.L2SS = tunnel.L2SSDefault
	}
	if l.cfg.Sequencing {
		p.Sequencing = tunnel.SequenceAll
	}
	id, err := d.e.t.StartCall(now, tunnel.CallParams{PseudowireType: PWType(l.cfg.Type), RemoteEndID: l.cfg.RemoteEndID, PW: p})
	if err != nil {
		l.backoff = nextBackoff(l.backoff)
		l.retryAt = now.Add(l.backoff)
		return
	}
	l.e, l.sid = d.e, id
	sh.pw.bySession[id] = l
	sh.counters["pseudowire_calls"]++
	sh.service(d.e, now)
}

// bindPW answers a peer's ICRQ for an Ethernet or VLAN pseudowire: the
// Remote End ID must name one configured toward this peer (RFC 4719
// §2.2). When both ends placed the call, the one placed by the end with
// the lower address is kept (both ends decide alike).
func (sh *shard) bindPW(e *entry, s *tunnel.Session) (tunnel.PWParams, *tunnel.Result) {
	var l *pwLink
	for _, c := range sh.pw.links {
		if c.cfg.Peer == e.peer.Addr().Unmap() && c.cfg.Netns == e.netns && c.cfg.RemoteEndID == s.PW.RemoteEndID && PWType(c.cfg.Type) == s.PseudowireType {
			l = c
			break
		}
	}
	if l == nil {
		sh.counters["pseudowire_unknown_remote_end"]++
		return tunnel.PWParams{}, &tunnel.Result{Code: wire.CDNInvalidDest, Message: "no pseudowire configured for this Remote End ID"}
	}
	if l.e != nil {
		if e.local.IsValid() && e.local.Unmap().Less(e.peer.Addr().Unmap()) {
			return tunnel.PWParams{}, &tunnel.Result{Code: wire.CDNTieBreakerLost, Message: "pseudowire already set up by this end"}
		}
		old, oldID := l.e, l.sid
		_ = old.t.CloseSession(sh.clock(), oldID, tunnel.Result{Code: wire.CDNTieBreakerLost, Message: "pseudowire set up by the peer"}, nil)
		if old != e {
			sh.service(old, sh.clock())
		} else {
			// The same tunnel reports the CDN's event with this call's.
			sh.removePW(l)
			delete(sh.pw.bySession, oldID)
			l.e, l.sid = nil, 0
		}
	}
	p := tunnel.PWParams{Active: l.tapUp, L2SS: s.PW.Remote.L2SS}
	if l.cfg.CookieLen > 0 {
		p.Cookie = make([]byte, l.cfg.CookieLen)
		rand.Read(p.Cookie)
	}
	if l.cfg.Sequencing && p.L2SS == tunnel.L2SSDefault {
		p.Sequencing = tunnel.SequenceAll
	}
	l.e, l.sid = e, s.ID
	sh.pw.bySession[s.ID] = l
	return p, nil
}

// pwSessionInfo adds a pseudowire's fields to its session's listing.
func (sh *shard) pwSessionInfo(e *entry, s *tunnel.Session, si *SessionInfo) {
	if !s.Pseudowire {
		return
	}
	si.Kind = kindName(s.PseudowireType)
	l := sh.pw.bySession[s.ID]
	if l == nil || l.e != e {
		return
	}
	si.Pseudowire, si.TAP, si.VLAN = l.cfg.Name, l.cfg.TAP, l.cfg.VLAN
	si.CircuitActive, si.PeerCircuitActive = s.PW.Local.Active, s.PW.Remote.Active
	si.CookieLen, si.PeerCookieLen = len(s.PW.Local.Cookie), len(s.PW.Remote.Cookie)
	if sh.srv.dp == nil {
		return
	}
	if c, ok := sh.srv.dp.Counters(datapath.SessionKey{Version: 3, Session: s.ID}); ok {
		si.RxPackets, si.RxBytes, si.TxPackets, si.TxBytes = c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes
	}
}

func kindName(t uint16) string {
	switch t {
	case tunnel.PseudowireEthernet:
		return PWEthernet
	case tunnel.PseudowireEthernetVLAN:
		return PWVLAN
	case tunnel.PseudowirePPP:
		return "ppp"
	}
	return ""
}
