package control

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/control/pool"
	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/ppp"
)

// dataplane is what the control plane needs of the datapath: sessions
// installed and removed, PPP control frames sent down.
type dataplane interface {
	Install(datapath.Session) error
	Remove(datapath.SessionKey)
	SendFrame(datapath.SessionKey, []byte) error
	Counters(datapath.SessionKey) (datapath.Counters, bool)
}

// subscriber is the PPP side of one established L2TP session: its PPP
// engine, its addresses and its datapath entry. It belongs to the shard
// of its tunnel.
type subscriber struct {
	e    *entry
	sess *tunnel.Session
	key  datapath.SessionKey
	eng  *ppp.Session
	// out collects what eng produces; an online subscriber has none
	// between calls (see lendOutput).
	out  *ppp.Output
	pool *pool.Pool
	user string
	ipv4 netip.Addr
	ipv6 netip.Prefix
	// RADIUS network attributes (attrs.go): what the Access-Accept
	// asked for (nil when nothing), the extra routes installed, and
	// whether ipv6 (a Framed-IPv6-Prefix outside the pools) has a kernel
	// route.
	attrs      *netAttrs
	routes     []sessionRoute
	ipv6Kernel bool
	proxied    bool
	policy     ppp.Renegotiate
	v6         *subIPv6 // from IPv6CP up
	ipcpUp     bool
	ipv6Up     bool
	authProto  ppp.AuthProto

	// RADIUS: accounting and the limits an Access-Accept set.
	acctID                               string
	accounted                            bool // Start sent: Interim and Stop follow
	class                                [][]byte
	started                              time.Time
	sessionTimeout, idleTimeout, interim time.Duration
	interimNext, sessionEnd, idleCheck   time.Time
	idleRx, idleTx                       uint64
	cause                                aaa.TerminateCause
	recorded                             bool // in the store
	// Admission through a shared store (claim.go): what the store holds,
	// and whether this was admitted during an outage; the claims' own
	// state only while the store is asked.
	slot, leased, leased6 bool
	reconcile             bool
	claim                 *subClaim
	refusal               *tunnel.Result // the CDN when refused for want of resources
	// ctlRx and ctlTx count the PPP control frames (not IP) the session
	// exchanged, so Idle-Timeout can tell traffic from keepalives.
	ctlRx, ctlTx uint64
	scheduled    time.Time
	closing      bool
}

// subIPv6 is a subscriber's router advertisement state once IPv6CP is
// up: our interface identifier and the next unsolicited RA.
type subIPv6 struct {
	localIID [8]byte
	raNext   time.Time
}

// subClaim is a subscriber's admission through a shared store: the
// accepted authentication held while the store is asked, the RADIUS
// Framed-IP-Address, the candidates tried and the prefix being claimed.
type subClaim struct {
	held        ppp.AuthResult
	framed      netip.Addr
	cand6       netip.Prefix
	tries       int
	tries6      int
	reconciling bool
}

// claims returns the subscriber's claim state, made on first use.
func (s *subscriber) claims() *subClaim {
	if s.claim == nil {
		s.claim = new(subClaim)
	}
	return s.claim
}

// cand6 is the prefix being claimed in the store, if any.
func (s *subscriber) cand6() netip.Prefix {
	if s.claim == nil {
		return netip.Prefix{}
	}
	return s.claim.cand6
}

// pppState names the subscriber's progress for l2tpctl.
func (s *subscriber) pppState() string {
	if s.eng.Down() {
		return "down"
	}
	if s.ipcpUp || s.ipv6Up {
		return "network"
	}
	return strings.ToLower(s.eng.Phase().String())
}

func authProtos(names []string) []ppp.AuthProto {
	var l []ppp.AuthProto
	for _, n := range names {
		switch n {
		case "pap":
			l = append(l, ppp.AuthPAP)
		case "chap":
			l = append(l, ppp.AuthCHAPMD5)
		case "mschapv2":
			l = append(l, ppp.AuthMSCHAPv2)
		}
	}
	return l
}

func renegotiatePolicy(s string) ppp.Renegotiate {
	switch s {
	case "never":
		return ppp.RenegotiateNever
	case "always":
		return ppp.RenegotiateAlways
	}
	return ppp.RenegotiateOnMismatch
}

// sessionKey is how the datapath finds a session in received headers.
func sessionKey(t *tunnel.Tunnel, id uint32) datapath.SessionKey {
	if t.Version() == 3 {
		return datapath.SessionKey{Version: 3, Session: id}
	}
	return datapath.SessionKey{Version: 2, Tunnel: t.ID(), Session: id}
}

// preparePPP readies a session's PPP side as soon as we answered its
// ICRQ: the engine exists (and buffers early frames) and the datapath
// hands frames up, because the LAC's first LCP Configure-Request can
// arrive right behind its ICCN.
func (sh *shard) preparePPP(e *entry, s *tunnel.Session) *subscriber {
	srv := sh.srv
	// v2 carries only PPP; v3 says so with the Pseudowire Type.
	if srv.dp == nil || (e.t.Version() == 3 && s.PseudowireType != tunnel.PseudowirePPP) {
		return nil
	}
	key := sessionKey(e.t, s.ID)
	if sub := sh.subs[key]; sub != nil {
		return sub
	}
	eng, err := ppp.NewSession(sh.pppConfig())
	if err != nil {
		srv.log.Error("ppp session", zap.Error(err))
		return nil
	}
	snap := srv.snap.Load()
	pol := snap.cfg.match(e.t.Peer().HostName, e.peer.Addr())
	poolName := snap.cfg.PPP.Pool
	if pol.Pool != "" {
		poolName = pol.Pool
	}
	sub := &subscriber{e: e, sess: s, key: key, eng: eng, out: new(ppp.Output), pool: snap.pools[poolName], policy: renegotiatePolicy(pol.Renegotiate),
		acctID: srv.newAcctSessionID()}
	if err := srv.dp.Install(sh.datapathSession(sub)); err != nil {
		srv.log.Error("datapath install", zap.Error(err), zap.Uint32("session_id", s.ID))
		return nil
	}
	sh.subs[key] = sub
	return sub
}

func (sh *shard) pppConfig() ppp.Config {
	cfg := sh.srv.config()
	pc := ppp.Config{
		Role:         ppp.RoleServer,
		Rand:         rand.Reader,
		MRU:          cfg.PPP.MRU,
		Auth:         authProtos(cfg.PPP.Auth),
		Name:         cfg.HostName,
		EchoInterval: cfg.PPP.EchoInterval,
		EchoFailures: cfg.PPP.EchoFailures,
		IPv4:         true,
		LocalIPv4:    cfg.PPP.LocalIPv4,
		IPv6:         cfg.PPP.IPv6,
	}
	if cfg.PPP.MRU > 1500 {
		pc.MaxMRU = cfg.PPP.MRU // accept what we ask for
	}
	if len(cfg.PPP.DNS) > 0 {
		pc.DNS1 = cfg.PPP.DNS[0]
	}
	if len(cfg.PPP.DNS) > 1 {
		pc.DNS2 = cfg.PPP.DNS[1]
	}
	return pc
}

// startPPP begins PPP on a session that just reached established, from
// the proxied LCP when the LAC sent it and the peer's policy allows.
func (sh *shard) startPPP(e *entry, s *tunnel.Session, now time.Time) {
	sub := sh.preparePPP(e, s)
	if sub == nil {
		if sh.srv.dp != nil && (e.t.Version() == 2 || s.PseudowireType == tunnel.PseudowirePPP) {
			_ = e.t.CloseSession(now, s.ID, tunnel.Result{Code: wire.CDNNoResourcesTemp, Error: wire.ErrCodeResources, Message: "datapath"}, nil)
		}
		return
	}
	if s.Proxy.Present() {
		pc := sh.pppConfig()
		d := ppp.EvaluateProxy(&pc, proxyOf(s), sub.policy)
		sub.proxied = d.Accept
		sub.eng.StartProxy(now, d, sh.output(sub))
	} else {
		sub.eng.Start(now, sh.output(sub))
	}
	sh.flushPPP(sub, now)
}

func (sh *shard) datapathSession(sub *subscriber) datapath.Session {
	e, s := sub.e, sub.sess
	return datapath.Session{
		Key:         sub.key,
		PeerTunnel:  e.t.Peer().TunnelID,
		PeerSession: s.PeerID,
		Peer:        e.peer,
		Local:       e.local,
		Socket:      e.sock,
		IPv4:        sub.ipv4,
		IPv6:        sub.ipv6,
		Sequencing:  s.SequencingRequired,
		MSSClamp:    mssFor(sh.srv.config()),
	}
}

// mssFor is the TCP MSS that fits the TUN MTU (IPv4 + TCP headers).
func mssFor(cfg *Config) uint16 {
	if cfg.TUN.MTU <= 40 {
		return 0
	}
	return uint16(cfg.TUN.MTU - 40)
}

func proxyOf(s *tunnel.Session) *ppp.ProxyLCP {
	p := s.Proxy
	return &ppp.ProxyLCP{
		InitialReceived: p.InitialReceivedConfReq,
		LastSent:        p.LastSentConfReq,
		LastReceived:    p.LastReceivedConfReq,
		HasAuth:         p.AuthenType != 0,
		AuthType:        p.AuthenType,
		AuthName:        p.AuthenName,
		AuthChallenge:   p.AuthenChallenge,
		AuthID:          uint8(p.AuthenID),
		AuthResponse:    p.AuthenResponse,
	}
}

// frame feeds a PPP frame from the datapath to its session's engine.
func (sh *shard) frame(key datapath.SessionKey, frame []byte, now time.Time) {
	sub := sh.subs[key]
	if sub == nil {
		sh.counters["ppp_frame_no_session"]++
		return
	}
	sub.ctlRx++
	sh.lendOutput(sub)
	sub.eng.Input(now, frame, sh.output(sub))
	sh.flushPPP(sub, now)
}

// flushPPP sends what the engine produced, acts on its events and
// reschedules it.
func (sh *shard) flushPPP(sub *subscriber, now time.Time) {
	for {
		out := sh.output(sub)
		for i := 0; i < out.NumFrames(); i++ {
			sub.ctlTx++
			if err := sh.sendFrame(sub.key, out.Frame(i)); err != nil {
				sh.counters["ppp_send_errors"]++
			}
		}
		// IPv6 from the subscriber's link-local address comes here, not
		// to the TUN: answer Router Solicitations. Other IP that reached
		// the engine before the datapath had the session's address is
		// dropped: the window is one round trip.
		for _, d := range out.Data {
			if d.Protocol == ppp.ProtoIPv6 && isRouterSolicit(d.Packet) {
				sh.sendRA(sub, now)
				continue
			}
			sh.counters["ppp_early_ip_dropped"]++
		}
		events := append([]ppp.Event(nil), out.Events...)
		out.Reset()
		if len(events) == 0 {
			break
		}
		for _, ev := range events {
			sh.pppEvent(sub, ev, now)
		}
		if out = sh.output(sub); out.NumFrames() == 0 && len(out.Events) == 0 {
			break
		}
	}
	sh.returnOutput(sub)
	if sh.subs[sub.key] != sub {
		return
	}
	sh.schedule(sub)
}

// lendOutput gives an online subscriber the shard's spare Output for
// one call into its engine, and returnOutput takes it back once the
// call's frames and events are handled. An online subscriber only
// exchanges keepalives, so 100,000 of them share one set of output
// buffers instead of each keeping what its negotiation grew. Nested
// use (acting on one subscriber's event touches another) only costs
// the inner one fresh buffers.
func (sh *shard) lendOutput(sub *subscriber) { sh.output(sub) }

// output is the subscriber's Output, lent from the shard's spare (or a
// new one) when it has none.
func (sh *shard) output(sub *subscriber) *ppp.Output {
	if sub.out == nil {
		if sub.out, sh.spare = sh.spare, nil; sub.out == nil {
			sub.out = new(ppp.Output)
		}
	}
	return sub.out
}

func (sh *shard) returnOutput(sub *subscriber) {
	if (sub.ipcpUp || sub.ipv6Up) && sub.out != nil {
		sub.out.Reset()
		if sh.spare == nil {
			sh.spare = sub.out
		}
		sub.out = nil
	}
}

// schedule puts the subscriber's next deadline in the shard's heap: its
// PPP timers, router advertisements, accounting and RADIUS timeouts.
func (sh *shard) schedule(sub *subscriber) {
	d, ok := sub.eng.Deadline()
	for _, t := range []time.Time{sub.interimNext, sub.sessionEnd, sub.idleCheck} {
		if !t.IsZero() && (!ok || t.Before(d)) {
			d, ok = t, true
		}
	}
	if sub.ipv6Up && sub.v6 != nil && !sub.v6.raNext.IsZero() && (!ok || sub.v6.raNext.Before(d)) {
		d, ok = sub.v6.raNext, true
	}
	if ok && (sub.ipcpUp || sub.ipv6Up) {
		// Online, what is left is keepalive and housekeeping: share the
		// shard's wake-ups (see idleTick).
		d = idleDeadline(d)
	}
	if ok && (sub.scheduled.IsZero() || d.Before(sub.scheduled)) {
		sub.scheduled = d
		sh.timers.Push(d, timerKey{id: sub.e.t.ID(), sid: sub.sess.ID})
	}
}

// idleTick is the grid an online subscriber's deadlines are rounded up
// to. An idle subscriber's next deadline is its LCP Echo-Request (every
// echo_interval); rounded to a common grid, all the shard's subscribers
// due in the same quarter second are served by one timer wake-up
// instead of one each. A deadline moves by less than idleTick and an
// echo sent on the grid schedules the next one on the grid, so the echo
// period stays echo_interval (to within idleTick for the first one).
// Negotiation timers (the PPP restart timer) are not rounded.
const idleTick = 250 * time.Millisecond

// idleDeadline rounds d up to the idleTick grid of the wall clock,
// keeping d's monotonic reading (Add moves both alike).
func idleDeadline(d time.Time) time.Time {
	if r := time.Duration(d.UnixNano() % int64(idleTick)); r > 0 {
		return d.Add(idleTick - r)
	} else if r < 0 {
		return d.Add(-r)
	}
	return d
}

// pppEvent acts on one PPP engine event.
func (sh *shard) pppEvent(sub *subscriber, ev ppp.Event, now time.Time) {
	log := sh.srv.log
	fields := []zap.Field{zap.Uint32("tunnel_id", sub.e.t.ID()), zap.Uint32("session_id", sub.sess.ID)}
	switch ev.Kind {
	case ppp.EventAuthRequest:
		sub.user = ev.Auth.User
		sub.authProto = ev.Auth.Protocol
		if sh.radiusAuth(sub, ev.Auth, now) {
			break // the answer comes back through the shard's queue
		}
		res := sh.srv.snap.Load().users.Authenticate(ev.Auth)
		if res.Accept {
			sh.admit(sub, res, netip.Addr{}, now)
			break
		}
		sh.counters["auth_rejected"]++
		log.Info("authentication rejected", append(fields, zap.String("user", ev.Auth.User), zap.String("protocol", ev.Auth.Protocol.String()))...)
		sub.eng.AuthResult(now, res, sh.output(sub))
	case ppp.EventAuthenticated:
		sh.counters["auth_accepted"]++
		log.Info("subscriber authenticated", append(fields, zap.String("user", sub.user), zap.Bool("proxy", sub.proxied))...)
	case ppp.EventNetworkUp:
		if ev.Network.Protocol == ppp.ProtoIPCP {
			sub.ipv4, sub.ipcpUp = ev.Network.PeerIPv4, true
		} else if ev.Network.Protocol == ppp.ProtoIPv6CP {
			sub.v6, sub.ipv6Up = &subIPv6{localIID: ev.Network.LocalIID}, true
			if sub.netAttrs().framed6.IsValid() {
				sh.framedIPv6(sub)
			} else if _, bits := sub.poolIPv6(); bits > 0 && !sub.ipv6.IsValid() && !sub.cand6().IsValid() {
				sh.leaseIPv6(sub, now)
			}
		}
		sh.installRoutes(sub)
		sh.addRoutes(sub, ev.Network.Protocol == ppp.ProtoIPv6CP)
		if ev.Network.Protocol == ppp.ProtoIPv6CP {
			sh.sendRA(sub, now)
		}
		sh.accountingStart(sub, now)
		online := append(fields, zap.String("user", sub.user))
		if sub.ipv4.IsValid() {
			online = append(online, zap.Stringer("ipv4", sub.ipv4))
		}
		if sub.ipv6.IsValid() {
			online = append(online, zap.Stringer("ipv6", sub.ipv6))
		}
		log.Info("subscriber online", online...)
	case ppp.EventNetworkDown:
		sh.removeRoutes(sub, ev.Network.Protocol == ppp.ProtoIPv6CP)
		if ev.Network.Protocol == ppp.ProtoIPCP {
			sub.ipcpUp = false
			sh.releaseIPv4(sub)
		} else {
			sub.ipv6Up = false
		}
		sh.installRoutes(sub)
	case ppp.EventLinkDown:
		res, cause := cdnFor(ev.Reason, sub.authProto)
		if sub.refusal != nil {
			res = *sub.refusal
		}
		if sub.cause == 0 {
			sub.cause = aaa.CauseFromPPP(ev.Reason)
		}
		log.Info("ppp down", append(fields, zap.String("user", sub.user), zap.String("reason", ev.Reason.String()))...)
		sh.counters["ppp_down_"+strings.ReplaceAll(ev.Reason.String(), " ", "_")]++
		sub.closing = true
		_ = sub.e.t.CloseSession(now, sub.sess.ID, res, cause)
	}
}

// owner names a lease in the pool's listing.
func (s *subscriber) owner() string {
	return fmt.Sprintf("%s tunnel %d session %d", s.user, s.e.t.ID(), s.sess.ID)
}

// installRoutes updates the datapath entry with the addresses in use.
func (sh *shard) installRoutes(sub *subscriber) {
	if err := sh.srv.dp.Install(sh.datapathSession(sub)); err != nil {
		sh.counters["datapath_install_errors"]++
	}
	sh.reinstallRoutes(sub)
}

func (sh *shard) releaseIPv4(sub *subscriber) {
	if sub.leased && sub.ipv4.IsValid() {
		// The store's copy goes through the write queue, after the
		// session's other writes.
		if err := sh.srv.state.async.ReleaseIPv4(sub.leasePool(), sub.ipv4); err != nil {
			sh.counters["store_errors"]++
		}
	}
	sub.leased = false
	if sub.ipv4.IsValid() && sub.pool != nil {
		sub.pool.ReleaseIPv4(sub.ipv4)
	}
	sub.ipv4 = netip.Addr{}
}

// stopPPP forgets a session's PPP side when its L2TP session is gone.
func (sh *shard) stopPPP(key datapath.SessionKey) {
	sub := sh.subs[key]
	if sub == nil {
		return
	}
	delete(sh.subs, key)
	sh.releaseNetAttrs(sub)
	sh.srv.dp.Remove(sub.key)
	sh.releaseIPv4(sub)
	sh.releaseClaims(sub)
	if sub.leased6 && sub.ipv6.IsValid() && sub.pool != nil {
		if err := sh.srv.state.async.ReleaseIPv6(sub.pool.Name(), sub.ipv6); err != nil {
			sh.counters["store_errors"]++
		}
	}
	for _, p := range []netip.Prefix{sub.ipv6, sub.cand6()} {
		if p.IsValid() && sub.pool != nil {
			sub.pool.ReleaseIPv6(p)
		}
	}
}

// tickPPP runs a subscriber's PPP timers.
func (sh *shard) tickPPP(sub *subscriber, now time.Time) {
	if sub.ipv6Up && sub.v6 != nil && !sub.v6.raNext.IsZero() && !now.Before(sub.v6.raNext) {
		sh.sendRA(sub, now)
	}
	sh.subscriberTimers(sub, now)
	if sh.subs[sub.key] != sub {
		return // disconnected
	}
	sh.lendOutput(sub)
	sub.eng.Tick(now, sh.output(sub))
	sh.flushPPP(sub, now)
}

// poolIPv6 is the subscriber's pool's IPv6 prefix, if it has one.
func (s *subscriber) poolIPv6() (netip.Prefix, int) {
	if s.pool == nil {
		return netip.Prefix{}, 0
	}
	p, l := s.pool.IPv6()
	if !p.IsValid() {
		return p, 0
	}
	return p, l
}

// cdnFor maps why PPP went down to the CDN result and the RFC 3145
// disconnect cause sent to the LAC; authentication failures name the
// authentication protocol in use.
func cdnFor(r ppp.DownReason, auth ppp.AuthProto) (tunnel.Result, *tunnel.Disconnect) {
	const lcp, none = 0xc021, 0
	res := tunnel.Result{Code: wire.CDNGeneralError, Message: r.String()}
	c := &tunnel.Disconnect{Protocol: lcp, Message: r.String()}
	switch r {
	case ppp.ReasonAdminClose:
		res.Code, c.Code, c.Protocol = wire.CDNAdmin, 1, none
	case ppp.ReasonPeerTerminate:
		c.Code, c.Protocol, c.Direction = 3, none, 1
	case ppp.ReasonEchoTimeout:
		res.Code, c.Code = wire.CDNLostCarrier, 8
	case ppp.ReasonNegotiation:
		c.Code = 5
	case ppp.ReasonLoopback:
		c.Code = 7
	case ppp.ReasonNoAuthProtocol:
		c.Code = 15
	case ppp.ReasonAuthFailed:
		c.Code, c.Protocol = 16, authProtocolNumber(auth)
	case ppp.ReasonAuthTimeout:
		c.Code, c.Protocol = 13, authProtocolNumber(auth)
	case ppp.ReasonNetworkFailed:
		c.Code, c.Protocol = 18, none
	case ppp.ReasonProtocolRejected:
		c.Code = 6
	}
	return res, c
}

// raInterval spaces unsolicited RAs well inside the router lifetime
// (RFC 4861 §6.2.1: MaxRtrAdvInterval below AdvDefaultLifetime).
const raInterval = 600 * time.Second

// sendRA advertises the subscriber's prefix over its PPP link.
func (sh *shard) sendRA(sub *subscriber, now time.Time) {
	if !sub.ipv6.IsValid() || sub.v6 == nil {
		return
	}
	sub.v6.raNext = now.Add(raInterval)
	// The link MTU is what we accept: our MRU.
	mtu := int(sh.srv.config().PPP.MRU)
	if mtu == 0 {
		mtu = 1500
	}
	sh.ra = appendRA(sh.ra[:0], sub.v6.localIID, sub.ipv6, mtu)
	sub.ctlTx++
	if err := sh.sendFrame(sub.key, sh.ra); err != nil {
		sh.counters["ppp_send_errors"]++
		return
	}
	sh.counters["router_advertisements"]++
}

// authProtocolNumber is the PPP protocol number of an authentication
// protocol, for the RFC 3145 Control Protocol Number field.
func authProtocolNumber(a ppp.AuthProto) uint16 {
	switch a {
	case ppp.AuthPAP:
		return 0xc023
	case ppp.AuthCHAPMD5, ppp.AuthMSCHAPv2:
		return 0xc223
	}
	return 0xc021
}

// clearSession ends a session on the operator's request: an LCP
// Terminate-Request to the subscriber, then at once a CDN (result 3,
// RFC 3145 cause 1, administrative disconnect) so the LAC frees it.
func (sh *shard) clearSession(e *entry, id uint32, result uint16, now time.Time) {
	if sub := sh.subs[sessionKey(e.t, id)]; sub != nil && sub.e == e {
		if sub.cause == 0 {
			sub.cause = aaa.CauseAdminReset
		}
		out := sh.output(sub)
		sub.eng.Close(now, out)
		for i := 0; i < out.NumFrames(); i++ {
			_ = sh.srv.dp.SendFrame(sub.key, out.Frame(i))
		}
		out.Reset()
	}
	res, cause := adminCDN(result)
	_ = e.t.CloseSession(now, id, res, cause)
}

// adminCDN is the CDN of a session the operator clears: result 3 unless
// result says otherwise, RFC 3145 cause 1 (administrative disconnect).
func adminCDN(result uint16) (tunnel.Result, *tunnel.Disconnect) {
	res, cause := cdnFor(ppp.ReasonAdminClose, ppp.AuthNone)
	res.Message = "cleared by administrator"
	if result != 0 {
		res.Code = result
	}
	return res, cause
}
