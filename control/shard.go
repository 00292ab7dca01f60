package control

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/timerheap"
	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/ppp"
)

// Drop reasons counted by the shell (the tunnels count their own).
const (
	dropMalformed = iota
	dropVersion
	dropData
	dropOverload
	dropReadError
	dropUnknownTunnel
	dropWrongPeer
	dropHalfOpen
	dropTunnelLimit
	dropNotSCCRQ
	dropListenerRemoved
	numDrops
)

var dropNames = [numDrops]string{
	"malformed", "unsupported_version", "data_no_session", "shard_overload", "read_error",
	"unknown_tunnel", "wrong_peer_address", "half_open_limit", "tunnel_limit", "not_sccrq", "listener_removed",
}

type dropCounters [numDrops]atomic.Uint64

func (d *dropCounters) inc(r int) { d[r].Add(1) }

func (d *dropCounters) snapshot() map[string]uint64 {
	m := make(map[string]uint64, numDrops)
	for i := range d {
		m[dropNames[i]] = d[i].Load()
	}
	return m
}

// entry is a tunnel and where its peer is.
type entry struct {
	t     *tunnel.Tunnel
	peer  netip.AddrPort
	local netip.Addr
	sock  *datapath.Socket
	host  string // peer policy name
	key   peerKey
	// scheduled is the deadline already in the shard's timer heap.
	scheduled time.Time
	// pendingAdmit counts sessions admitted and not yet seen in an
	// event; admitted holds the admitted sessions (true: in setup).
	pendingAdmit int
	admitted     map[uint32]bool
	// encap is how the tunnel's control messages travel; netns is the
	// namespace of its socket; label names a static tunnel's quiescent
	// control connection.
	encap wire.Encap
	netns string
	label string
}

// peerKey identifies a peer's tunnel before we know our own ID for it:
// a retransmitted SCCRQ must find the tunnel its first copy made.
type peerKey struct {
	addr netip.AddrPort
	id   uint32
}

func (e *entry) info(now time.Time) TunnelInfo {
	p := e.t.Peer()
	since := e.t.Created()
	up := 0.0
	if !e.t.Up().IsZero() {
		since = e.t.Up()
	}
	up = now.Sub(since).Seconds()
	role := "lns"
	if e.t.Initiator() {
		role = "lac"
	}
	return TunnelInfo{
		TunnelID:      e.t.ID(),
		PeerTunnelID:  p.TunnelID,
		Peer:          e.peer.String(),
		PeerHostName:  p.HostName,
		Local:         e.local.String(),
		Role:          role,
		Version:       int(e.t.Version()),
		State:         e.t.State().String(),
		Sessions:      e.t.NumSessions(),
		Since:         since,
		UptimeSeconds: up,
		Retransmits:   e.t.Stats().Reliable.Retransmits,
		RTTSeconds:    e.t.Stats().Reliable.SRTT.Seconds(),
		StaticTunnel:  e.label,
	}
}

func (sh *shard) sessionInfo(e *entry, s *tunnel.Session, now time.Time) SessionInfo {
	since := s.Created
	if !s.UpAt.IsZero() {
		since = s.UpAt
	}
	si := SessionInfo{
		SessionID:     s.ID,
		PeerSessionID: s.PeerID,
		TunnelID:      e.t.ID(),
		PeerTunnelID:  e.t.Peer().TunnelID,
		Peer:          e.peer.String(),
		Version:       int(e.t.Version()),
		State:         s.State.String(),
		CallSerial:    s.Serial,
		CallingNumber: s.CallingNumber,
		CalledNumber:  s.CalledNumber,
		Since:         since,
		UptimeSeconds: now.Sub(since).Seconds(),
	}
	if sub := sh.subs[sessionKey(e.t, s.ID)]; sub != nil && sub.e == e {
		si.UserName, si.PPPState, si.ProxyLCP = sub.user, sub.pppState(), sub.proxied
		si.AcctSessionID = sub.acctID
		if sub.authProto != ppp.AuthNone {
			si.AuthProtocol = sub.authProto.String()
		}
		si.SessionTimeout, si.IdleTimeout, si.Interim = sub.sessionTimeout.Seconds(), sub.idleTimeout.Seconds(), sub.interim.Seconds()
		if sub.ipcpUp {
			si.IPv4 = sub.ipv4.String()
		}
		if sub.ipv6Up && sub.ipv6.IsValid() {
			si.IPv6 = sub.ipv6.String()
		}
		sub.attrInfo(&si)
		if c, ok := sh.srv.dp.Counters(sub.key); ok {
			si.RxPackets, si.RxBytes, si.TxPackets, si.TxBytes = c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes
		}
	}
	sh.pwSessionInfo(e, s, &si)
	return si
}

// timerKey says what a deadline in the shard's heap is for; it is
// stale unless it matches the owner's recorded deadline.
type timerKey struct {
	id  uint32 // tunnel
	sid uint32 // session, for a PPP timer; 0 for the tunnel's own
	pw  bool   // the shard's pseudowire tick
}

// shard owns a set of tunnels; only its goroutine touches them.
type shard struct {
	srv   *Server
	index int
	in    chan inPacket
	cmd   chan func()
	quit  chan struct{}

	tunnels  map[uint32]*entry
	byPeer   map[peerKey]uint32
	halfOpen map[netip.Addr]int
	perPeer  map[netip.Addr]int
	subs     map[datapath.SessionKey]*subscriber
	captures map[uint32]*capture // by tunnel ID, while an operator captures
	auth     chan authResult
	claimed  chan claimResult // the store's answers (claim.go)
	timers   timerheap.Heap[timerKey]
	out      [][]byte
	spare    *ppp.Output // lent to online subscribers (lendOutput)
	ra       []byte      // a router advertisement being sent (sendRA)
	// batch holds the PPP frames of one timer wake-up while batching,
	// sent together (one sendmmsg per socket) at its end.
	batch    *datapath.FrameBatch
	batching bool
	counters map[string]uint64
	admPeers map[netip.Addr]*peerAdmission
	// now is the time of what the shard is handling, for hooks the
	// tunnels call without one.
	now time.Time
	pw  *pwShard
}

func newShard(s *Server, i int) *shard {
	return &shard{
		srv:      s,
		index:    i,
		in:       make(chan inPacket, 4096),
		cmd:      make(chan func()),
		quit:     make(chan struct{}),
		tunnels:  make(map[uint32]*entry),
		byPeer:   make(map[peerKey]uint32),
		halfOpen: make(map[netip.Addr]int),
		perPeer:  make(map[netip.Addr]int),
		subs:     make(map[datapath.SessionKey]*subscriber),
		captures: make(map[uint32]*capture),
		auth:     make(chan authResult, 4096),
		claimed:  make(chan claimResult, 1024),
		counters: make(map[string]uint64),
		admPeers: make(map[netip.Addr]*peerAdmission),
		pw:       newPWShard(),
	}
}

func (sh *shard) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		sh.timers.Arm(timer)
		select {
		case p := <-sh.in:
			sh.receive(time.Now(), p)
			b := p.buf[:cap(p.buf)]
			bufPool.Put(&b)
		case fn := <-sh.cmd:
			sh.now = time.Now()
			fn()
		case ar := <-sh.auth:
			sh.onAuthResult(ar, time.Now())
		case cr := <-sh.claimed:
			sh.onClaim(cr, time.Now())
		case <-timer.C:
			sh.expire(time.Now())
		case <-sh.quit:
			return
		}
	}
}

// frameBatcher is a dataplane that sends PPP frames in batches.
type frameBatcher interface {
	NewFrameBatch() *datapath.FrameBatch
}

// maxFrameBatch bounds the frames held in the shard's batch.
const maxFrameBatch = 256

// sendFrame sends a PPP frame down, or queues it while the shard
// batches a timer wake-up's frames.
func (sh *shard) sendFrame(key datapath.SessionKey, f []byte) error {
	if !sh.batching {
		return sh.srv.dp.SendFrame(key, f)
	}
	err := sh.batch.Add(key, f)
	if sh.batch.Len() >= maxFrameBatch {
		sh.flushFrames()
	}
	return err
}

// flushFrames sends the frames queued in the shard's batch.
func (sh *shard) flushFrames() {
	if sh.batch != nil && sh.batch.Len() > 0 {
		if failed := sh.batch.Flush(); failed > 0 {
			sh.counters["ppp_send_errors"] += uint64(failed)
		}
	}
}

// expire services every tunnel whose deadline has passed. The PPP
// frames due (the online subscribers' LCP Echo-Requests) go out
// together at the end.
func (sh *shard) expire(now time.Time) {
	if sh.batch == nil {
		if b, ok := sh.srv.dp.(frameBatcher); ok {
			sh.batch = b.NewFrameBatch()
		}
	}
	sh.batching = sh.batch != nil
	defer func() {
		sh.batching = false
		sh.flushFrames()
	}()
	for {
		due, ok := sh.timers.PopDue(now)
		if !ok {
			break
		}
		it := due.Key
		if it.pw {
			if due.At.Equal(sh.pw.tickAt) {
				sh.tickPW(now)
			}
			continue
		}
		e := sh.tunnels[it.id]
		if e == nil {
			continue
		}
		if it.sid != 0 {
			sub := sh.subs[sessionKey(e.t, it.sid)]
			if sub == nil || sub.e != e || !sub.scheduled.Equal(due.At) {
				continue // stale
			}
			sub.scheduled = time.Time{}
			at := now
			if sub.ipcpUp || sub.ipv6Up {
				// The deadline was rounded to the grid (idleTick): the
				// engine takes the time it was due, so an echo
				// scheduled from it lands on the grid again however
				// late the wake-up.
				at = due.At
			}
			sh.tickPPP(sub, at)
			sh.service(e, now)
			continue
		}
		if !e.scheduled.Equal(due.At) {
			continue // stale
		}
		e.scheduled = time.Time{}
		sh.service(e, now)
	}
}

// service flushes a tunnel's output and events and reschedules it.
// Acting on an event (a PPP failure clearing its session) can queue more
// messages and events, so it repeats until the tunnel is quiet.
//
// Events are acted on before the messages that caused them leave: the
// ICRP must not reach the LAC before its session is in the datapath,
// or the LAC's first LCP Configure-Request, which may follow its ICCN
// at once (RFC 2661 §7.4.1: the LAC is established when it sends ICCN),
// can arrive for a session the datapath does not know and be dropped.
func (sh *shard) service(e *entry, now time.Time) {
	for i := 0; i < 8; i++ {
		// An event's action may service another tunnel: this round's
		// messages keep their own slice until they are written.
		out := e.t.Poll(now, sh.out[:0])
		sh.out = nil
		evs := e.t.Events()
		for _, ev := range evs {
			sh.report(e, ev, now)
		}
		if len(out) > 0 {
			// A session's PPP frames go before its L2TP messages (an
			// LCP Terminate-Request before the CDN), as unbatched.
			sh.flushFrames()
		}
		capt := sh.captures[e.t.ID()]
		for _, p := range out {
			if capt != nil {
				capt.add(true, p, e.peer, e.local)
			}
			if err := e.sock.WriteControl(p, e.peer, e.local); err != nil {
				sh.counters["send_errors"]++
			}
		}
		if sh.out == nil {
			sh.out = out[:0]
		}
		if len(evs) == 0 {
			break
		}
	}
	sh.settleAdmissions(e, false)
	if e.t.Done() {
		sh.remove(e)
		return
	}
	if d := e.t.Deadline(); !d.IsZero() && (e.scheduled.IsZero() || d.Before(e.scheduled)) {
		e.scheduled = d
		sh.timers.Push(d, timerKey{id: e.t.ID()})
	}
}

func (sh *shard) remove(e *entry) {
	sh.settleAdmissions(e, true)
	id := e.t.ID()
	delete(sh.tunnels, id)
	if sh.byPeer[e.key] == id {
		delete(sh.byPeer, e.key)
	}
	if e.t.Up().IsZero() {
		sh.decHalfOpen(e.peer.Addr())
	}
	if sh.perPeer[e.peer.Addr()]--; sh.perPeer[e.peer.Addr()] <= 0 {
		delete(sh.perPeer, e.peer.Addr())
	}
	sh.srv.tunnels.Add(-1)
}

func (sh *shard) decHalfOpen(a netip.Addr) {
	if sh.halfOpen[a]--; sh.halfOpen[a] <= 0 {
		delete(sh.halfOpen, a)
	}
}

// report logs an event and keeps the counters.
func (sh *shard) report(e *entry, ev tunnel.Event, now time.Time) {
	log := sh.srv.log
	tf := []zap.Field{zap.Uint32("tunnel_id", e.t.ID()), zap.Uint32("peer_tunnel_id", e.t.Peer().TunnelID), zap.String("peer", e.peer.String())}
	switch ev.Kind {
	case tunnel.TunnelUp:
		sh.decHalfOpen(e.peer.Addr())
		sh.counters["tunnels_established"]++
		log.Info("tunnel established", append(tf, zap.Uint8("version", e.t.Version()), zap.String("peer_host_name", e.t.Peer().HostName))...)
	case tunnel.TunnelDown:
		sh.counters["tunnels_closed"]++
		sh.counters["tunnels_closed_result_"+strconv.Itoa(int(ev.Result.Code))]++
		log.Info("tunnel down", append(tf, zap.Uint16("result", ev.Result.Code), zap.Uint16("error", ev.Result.Error),
			zap.String("message", ev.Result.Message), zap.Bool("by_peer", ev.ByPeer), zap.Bool("timeout", ev.Timeout))...)
	case tunnel.TunnelFallback:
		log.Info("peer refused L2TPv3, retrying in L2TPv2", tf...)
	case tunnel.SessionUp:
		sh.established(e, ev.SessionID)
		sh.srv.sessions.Add(1)
		sh.counters["sessions_established"]++
		sh.srv.setup.observe(now.Sub(ev.Session.Created))
		log.Info("session established", append(tf, zap.Uint32("session_id", ev.SessionID), zap.Uint32("peer_session_id", ev.Session.PeerID),
			zap.Uint32("call_serial", ev.Session.Serial), zap.Bool("proxy_lcp", ev.Session.Proxy.Present()))...)
		handlerFor(ev.Session).up(sh, e, ev.Session, now)
	case tunnel.SessionDown:
		sh.released(e, ev.SessionID)
		if !ev.Session.UpAt.IsZero() {
			sh.srv.sessions.Add(-1)
		}
		sh.counters["sessions_closed"]++
		sh.counters["sessions_closed_result_"+strconv.Itoa(int(ev.Result.Code))]++
		handlerFor(ev.Session).down(sh, e, ev, now)
		f := append(tf, zap.Uint32("session_id", ev.SessionID), zap.Uint16("result", ev.Result.Code), zap.Uint16("error", ev.Result.Error),
			zap.String("message", ev.Result.Message), zap.Bool("by_peer", ev.ByPeer))
		if ev.Cause != nil {
			f = append(f, zap.Uint16("disconnect_code", ev.Cause.Code), zap.String("disconnect_message", ev.Cause.Message))
		}
		log.Info("session down", f...)
	case tunnel.SessionAnswered:
		sh.admitted(e, ev.SessionID)
		handlerFor(ev.Session).answered(sh, e, ev.Session, now)
	case tunnel.SessionLinkInfo:
		log.Debug("session link info", append(tf, zap.Uint32("session_id", ev.SessionID))...)
		handlerFor(ev.Session).linkInfo(sh, e, ev.Session, now)
	}
}

// receive routes one control message or PPP frame.
func (sh *shard) receive(now time.Time, p inPacket) {
	sh.now = now
	if p.frame {
		sub := sh.subs[p.key]
		sh.frame(p.key, p.buf, now)
		if sub != nil {
			if e := sh.tunnels[sub.e.t.ID()]; e == sub.e {
				sh.service(e, now)
			}
		}
		return
	}
	h, _, err := wire.ParseHeader(p.buf, p.encap)
	if err != nil {
		sh.srv.drops.inc(dropMalformed)
		return
	}
	if h.TunnelID != 0 {
		e := sh.tunnels[h.TunnelID]
		if e == nil {
			sh.srv.drops.inc(dropUnknownTunnel)
			return
		}
		if e.peer.Addr() != p.from.Addr() {
			sh.srv.drops.inc(dropWrongPeer)
			return
		}
		if e.peer.Port() != p.from.Port() {
			// RFC 2661 §8.1: the peer may change its port after SCCRQ.
			e.peer = p.from
		}
		if c := sh.captures[h.TunnelID]; c != nil {
			c.add(false, p.buf, p.from, p.to)
		}
		e.t.Receive(now, p.buf)
		sh.service(e, now)
		return
	}
	sh.newTunnel(now, p, h)
}

// newTunnel handles a message with tunnel ID 0: an SCCRQ, possibly a
// retransmitted one.
func (sh *shard) newTunnel(now time.Time, p inPacket, h wire.Header) {
	var avps [32]wire.AVP
	m, err := wire.ParseMessage(p.buf, p.encap, avps[:0])
	if err != nil {
		sh.srv.drops.inc(dropMalformed)
		return
	}
	key := peerKey{addr: p.from, id: assignedID(&m)}
	if m.Type == wire.MsgStopCCN {
		// A peer that could not read our SCCRP has no ID of ours to use:
		// its StopCCN comes to tunnel 0 with its own Assigned Tunnel ID.
		if id, ok := sh.byPeer[key]; ok {
			if e := sh.tunnels[id]; e != nil {
				e.t.Receive(now, p.buf)
				sh.service(e, now)
				return
			}
		}
	}
	if m.Type != wire.MsgSCCRQ {
		sh.srv.drops.inc(dropNotSCCRQ)
		return
	}
	if id, ok := sh.byPeer[key]; ok {
		if e := sh.tunnels[id]; e != nil {
			e.t.Receive(now, p.buf) // a retransmission: re-acknowledged
			sh.service(e, now)
			return
		}
	}
	if sh.srv.socketDraining(p.sock) {
		// A removed listener carries its tunnels to their end and
		// takes no new ones, as if it were gone.
		sh.srv.drops.inc(dropListenerRemoved)
		return
	}
	cfg := sh.srv.config()
	addr := p.from.Addr()
	if sh.halfOpen[addr] >= cfg.Limits.MaxHalfOpenPerPeer && cfg.Limits.MaxHalfOpenPerPeer > 0 {
		sh.srv.drops.inc(dropHalfOpen)
		return
	}
	var host string
	if a, ok := m.Find(wire.VendorIETF, wire.AVPHostName); ok {
		host = string(a.Value)
	}
	pol := cfg.match(host, addr)
	var e *entry
	id, ok := sh.allocTunnelID(h.Version)
	if !ok {
		sh.srv.drops.inc(dropTunnelLimit)
		return
	}
	tc := tunnel.Config{
		Version:           h.Version,
		Encap:             p.encap,
		LocalID:           id,
		HostName:          cfg.HostName,
		Secret:            []byte(pol.Secret),
		HideAVPs:          pol.HideAVPs,
		ReceiveWindow:     cfg.ReceiveWindow,
		Hello:             cfg.Hello,
		RetransmitInitial: cfg.RetransmitInitial,
		RetransmitCap:     cfg.RetransmitCap,
		MaxRetransmits:    cfg.MaxRetransmits,
		MaxSessions:       cfg.Limits.MaxSessionsPerTunnel,
		SetupTimeout:      cfg.SessionSetupTimeout,
		Admit:             func() bool { return sh.admitSession(e) },
		Rand:              rand.Reader,
		Pseudowires:       cfg.pwCapabilities(),
		Bind:              func(s *tunnel.Session) (tunnel.PWParams, *tunnel.Result) { return sh.bindPW(e, s) },
	}
	if h.Version == 3 {
		// v3 data carries only the session ID: keep it unique in the
		// shard and in the shard's residue class, so PPP frames find it.
		n := uint32(len(sh.srv.shards))
		tc.SessionIDFree = sh.sessionIDFree
		tc.SessionIDMap = func(id uint32) uint32 { return id - id%n + uint32(sh.index) }
	}
	t := tunnel.NewResponder(now, tc)
	e = &entry{t: t, peer: p.from, local: p.to, sock: p.sock, host: pol.Name, key: key, encap: p.encap, netns: sh.srv.socketNetns(p.sock)}
	sh.tunnels[id] = e
	sh.byPeer[key] = id
	sh.halfOpen[addr]++
	sh.perPeer[addr]++
	sh.srv.tunnels.Add(1)
	sh.counters["sccrq_received"]++

	if pol.Reject {
		t.Refuse(now, p.buf, tunnel.Result{Code: wire.ResultNotAuthorized, Message: "peer not allowed"})
	} else if reason := sh.admitTunnel(addr, now); reason >= 0 {
		// RFC 2661 §4.4.2: general error, insufficient resources.
		sh.srv.refused.inc(reason)
		t.Refuse(now, p.buf, tunnel.Result{Code: wire.ResultGeneralError, Error: wire.ErrCodeResources, Message: refusalNames[reason]})
	} else {
		t.Receive(now, p.buf)
	}
	sh.service(e, now)
}

// assignedID is the peer's own tunnel ID from its SCCRQ.
func assignedID(m *wire.Message) uint32 {
	if a, ok := m.Find(wire.VendorIETF, wire.AVPAssignedConnectionID); ok && m.Header.Version == 3 {
		v, _ := a.Uint32()
		return v
	}
	if a, ok := m.Find(wire.VendorIETF, wire.AVPAssignedTunnelID); ok {
		if !a.Hidden {
			v, _ := a.Uint16()
			return uint32(v)
		}
	}
	return 0
}

// allocTunnelID picks an unused random ID that maps to this shard.
func (sh *shard) allocTunnelID(version uint8) (uint32, bool) {
	n := uint32(len(sh.srv.shards))
	for i := 0; i < 128; i++ {
		var b [4]byte
		rand.Read(b[:])
		id := binary.BigEndian.Uint32(b[:])
		if version == 2 {
			id &= 0xffff
		}
		id = id - id%n + uint32(sh.index)
		if id == 0 || (version == 2 && id > 0xffff) {
			continue
		}
		if _, used := sh.tunnels[id]; !used {
			return id, true
		}
	}
	return 0, false
}

// sessionIDFree keeps v3 session IDs unique within the shard; the shard
// index is not encoded in them, so cross-shard collisions are possible
// only for v3 data, which the datapath demultiplexes by tunnel too.
func (sh *shard) sessionIDFree(id uint32) bool {
	for _, e := range sh.tunnels {
		if e.t.Session(id) != nil {
			return false
		}
	}
	return true
}

// closeAll sends StopCCN (result 6, shutting down) on every tunnel.
func (sh *shard) closeAll() {
	now := time.Now()
	for _, e := range sh.tunnels {
		e.t.Close(now, tunnel.Result{Code: wire.ResultShuttingDown, Message: "l2tpd shutting down"})
		sh.service(e, now)
	}
}

// match picks the first peer policy for a host name and address.
func (c *Config) match(host string, addr netip.Addr) Peer {
	for _, p := range c.Peers {
		if p.HostName != "" && p.HostName != host {
			continue
		}
		if len(p.Addresses) > 0 {
			in := false
			for _, pfx := range p.Addresses {
				if pfx.Contains(addr) {
					in = true
					break
				}
			}
			if !in {
				continue
			}
		}
		return p
	}
	return c.Default
}
