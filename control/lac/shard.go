package lac

import (
	"encoding/binary"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/timerheap"
	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
)

// sender writes control messages; the datapath socket, or a test double.
type sender interface {
	WriteControl(pkt []byte, to netip.AddrPort) error
}

// dataplane is where established sessions are installed.
type dataplane interface {
	Install(s datapath.Session) error
	Remove(key datapath.SessionKey)
}

type realSender struct{ sk *datapath.Socket }

func (r *realSender) WriteControl(pkt []byte, to netip.AddrPort) error {
	return r.sk.WriteControl(pkt, to, netip.Addr{})
}

type counters struct {
	tunnelsOpened, tunnelsUp, tunnelsFailed atomic.Uint64
	callsDialed, callsUp, callsFailed       atomic.Uint64
	failovers, overload, unknownTunnel      atomic.Uint64
	retransmits                             atomic.Uint64
}

// keySet is the set of datapath keys of a shard's sessions, readable
// from any goroutine.
type keySet struct{ m sync.Map }

func (k *keySet) Load(key datapath.SessionKey) bool { _, ok := k.m.Load(key); return ok }

type poolKey struct {
	addr  netip.AddrPort
	group uint32
}

// tunnelEntry is one tunnel toward an LNS and the calls it carries.
type tunnelEntry struct {
	t         *tunnel.Tunnel
	lns       LNS
	peer      netip.AddrPort // where the LNS answers from
	pool      poolKey
	scheduled time.Time
	pending   []*call          // waiting for the tunnel to come up
	calls     map[uint32]*call // by our session ID
	full      bool             // the LNS or the core refused more sessions
	// awaitICCN are the calls installed whose handler hears of them once
	// their ICCN has left, by the session ID the ICCN names (the LNS's in
	// v2 headers, ours in v3's Local Session ID).
	awaitICCN map[uint32]*call
	idleSince time.Time
	wasUp     bool
	opening   bool   // holds one of the LNS's opening slots
	retx      uint64 // retransmissions already counted
}

func (te *tunnelEntry) load() int { return len(te.calls) + len(te.pending) }

// call is one Dial from request to Down.
type call struct {
	id       CallID
	req      CallRequest
	h        Handler
	cands    []LNS
	next     int // index into cands of the LNS being tried
	attempts int
	te       *tunnelEntry
	sid      uint32
	up       bool
	key      datapath.SessionKey
	dialed   time.Time
	tunUp    time.Time
	deadline time.Time // setup timeout
	timer    time.Time // the handler's timer
	// closing says why we sent a CDN for a call that is not up yet.
	closing error
	last    tunnel.Result
	upInfo  Session // what Up will say, once the ICCN is out
}

type timerKind uint8

const (
	timerTunnel timerKind = iota
	timerSetup
	timerHandler
)

// timerKey says what a deadline in the shard's heap is for; it is
// stale unless it matches the owner's recorded deadline.
type timerKey struct {
	kind timerKind
	id   uint64 // tunnel ID or CallID
}

type inPacket struct {
	buf   []byte
	from  netip.AddrPort
	frame bool
	key   datapath.SessionKey
}

const maxPacket = 4096

var bufPool = sync.Pool{New: func() any { b := make([]byte, maxPacket); return &b }}

// shard owns tunnels and calls; only its goroutine touches them.
type shard struct {
	cfg   *Config
	log   *zap.Logger
	dead  *deadSet
	index int
	n     int
	out   sender
	dp    dataplane
	sock  *datapath.Socket

	in   chan inPacket
	mu   sync.Mutex
	cmds []func(time.Time)
	wake chan struct{}
	quit chan struct{}

	tunnels map[uint32]*tunnelEntry
	pools   map[poolKey][]*tunnelEntry
	calls   map[CallID]*call
	byKey   map[datapath.SessionKey]*call
	v3ids   map[uint32]struct{}
	timers  timerheap.Heap[timerKey]
	pkts    [][]byte
	ups     []Session // installed, the handler not told yet
	// deferred calls wait for a tunnel to their LNS to finish opening.
	deferred []*call
	l        *LAC

	ctr       counters
	ntunnels  atomic.Int64
	nsessions atomic.Int64
	owns      keySet
}

func newShard(l *LAC, i int, out sender) *shard {
	return &shard{
		l:       l,
		cfg:     &l.cfg,
		log:     l.log,
		dead:    &l.dead,
		index:   i,
		n:       l.cfg.Shards,
		out:     out,
		dp:      l.eng,
		sock:    l.sock,
		in:      make(chan inPacket, 8192),
		wake:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		tunnels: make(map[uint32]*tunnelEntry),
		pools:   make(map[poolKey][]*tunnelEntry),
		calls:   make(map[CallID]*call),
		byKey:   make(map[datapath.SessionKey]*call),
		v3ids:   make(map[uint32]struct{}),
	}
}

// post queues fn for the shard goroutine; it never blocks.
func (sh *shard) post(fn func(time.Time)) {
	sh.mu.Lock()
	sh.cmds = append(sh.cmds, fn)
	sh.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

func (sh *shard) enqueue(p inPacket, data []byte) {
	var bp *[]byte
	if len(data) <= maxPacket {
		bp = bufPool.Get().(*[]byte)
		p.buf = append((*bp)[:0], data...)
	} else {
		p.buf = append([]byte(nil), data...)
	}
	select {
	case sh.in <- p:
	default:
		sh.ctr.overload.Add(1)
		if bp != nil {
			bufPool.Put(bp)
		}
	}
}

func (sh *shard) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var cmds []func(time.Time)
	for {
		sh.timers.Arm(timer)
		select {
		case p := <-sh.in:
			sh.receive(time.Now(), p)
			if cap(p.buf) == maxPacket {
				b := p.buf[:maxPacket]
				bufPool.Put(&b)
			}
		case <-sh.wake:
			sh.mu.Lock()
			cmds, sh.cmds = sh.cmds, cmds[:0]
			sh.mu.Unlock()
			for i, fn := range cmds {
				fn(time.Now())
				cmds[i] = nil
			}
		case <-timer.C:
			sh.expire(time.Now())
		case <-sh.quit:
			return
		}
	}
}

// nextDeadline is the earliest timer (zero: none), for tests.
func (sh *shard) nextDeadline() time.Time {
	at, _ := sh.timers.Next()
	return at
}

func (sh *shard) rand(b []byte) {
	io.ReadFull(sh.cfg.Rand, b) //nolint:errcheck // a short read leaves zeros
}

// expire runs every timer that is due.
func (sh *shard) expire(now time.Time) {
	for {
		due, ok := sh.timers.PopDue(now)
		if !ok {
			break
		}
		it := due.Key
		switch it.kind {
		case timerTunnel:
			te := sh.tunnels[uint32(it.id)]
			if te == nil || !te.scheduled.Equal(due.At) {
				continue
			}
			te.scheduled = time.Time{}
			sh.service(now, te)
		case timerSetup:
			c := sh.calls[CallID(it.id)]
			if c == nil || c.up || !c.deadline.Equal(due.At) {
				continue
			}
			sh.abort(now, c, ErrSetupTimeout, tunnel.Result{Code: wire.CDNTimeout, Message: "call setup timed out"})
		case timerHandler:
			c := sh.calls[CallID(it.id)]
			if c == nil || !c.timer.Equal(due.At) {
				continue
			}
			c.timer = time.Time{}
			if tk, ok := c.h.(Ticker); ok {
				tk.Tick(c.id, now)
			}
		}
	}
}

func (sh *shard) setTimer(id CallID, at time.Time) {
	c := sh.calls[id]
	if c == nil {
		return
	}
	c.timer = at
	if !at.IsZero() {
		sh.timers.Push(at, timerKey{kind: timerHandler, id: uint64(id)})
	}
}

// dial takes a new call.
func (sh *shard) dial(now time.Time, id CallID, req CallRequest, cands []LNS, h Handler) {
	sh.ctr.callsDialed.Add(1)
	c := &call{id: id, req: req, h: h, dialed: now, deadline: now.Add(sh.cfg.SetupTimeout)}
	c.cands = order(cands, now, sh.dead.isDead, sh.cfg.Rand)
	sh.calls[id] = c
	sh.timers.Push(c.deadline, timerKey{kind: timerSetup, id: uint64(id)})
	sh.place(now, c)
}

// place puts a call on a tunnel to its current candidate, opening one
// when none can take it, or moves on to the next candidate.
func (sh *shard) place(now time.Time, c *call) {
	for c.next < len(c.cands) {
		lns := c.cands[c.next]
		c.attempts++
		te, wait := sh.tunnelFor(now, lns, c.req.Group)
		if wait {
			// Another tunnel to this LNS is still opening.
			c.attempts--
			c.te, c.sid = nil, 0
			sh.deferred = append(sh.deferred, c)
			return
		}
		if te == nil {
			c.next++
			continue
		}
		c.te, c.sid = te, 0
		if te.t.State() != tunnel.StateEstablished {
			te.pending = append(te.pending, c)
			return
		}
		if sh.startCall(now, te, c) {
			sh.service(now, te)
			return
		}
		// The tunnel is full: try again on the same LNS (a new tunnel).
		te.full = true
	}
	sh.fail(now, c, ErrAllFailed, c.last)
}

// failover moves a call that was refused or lost its tunnel before it
// came up to the next candidate.
func (sh *shard) failover(now time.Time, c *call, res tunnel.Result) {
	c.te, c.sid, c.last = nil, 0, res
	c.next++
	if c.next < len(c.cands) {
		sh.ctr.failovers.Add(1)
		sh.log.Debug("call failing over", zap.Uint64("call_id", uint64(c.id)), zap.String("lns", c.cands[c.next].Addr.String()),
			zap.Uint16("result", res.Code), zap.String("message", res.Message))
	}
	sh.place(now, c)
}

func (sh *shard) fail(now time.Time, c *call, err error, res tunnel.Result) {
	delete(sh.calls, c.id)
	sh.ctr.callsFailed.Add(1)
	c.h.Down(c.id, Reason{Err: err, Result: res})
}

// startCall sends the call's ICRQ on an established tunnel.
func (sh *shard) startCall(now time.Time, te *tunnelEntry, c *call) bool {
	r := c.req
	sid, err := te.t.StartCall(now, tunnel.CallParams{
		BearerType: r.BearerType, FramingType: r.FramingType,
		TxSpeed: r.TxSpeed, RxSpeed: r.RxSpeed,
		CallingNumber: r.CallingNumber, CalledNumber: r.CalledNumber,
		Serial: uint32(c.id >> 8), PseudowireType: tunnel.PseudowirePPP, Proxy: r.Proxy,
	})
	if err != nil {
		return false
	}
	c.sid = sid
	te.calls[sid] = c
	te.idleSince = time.Time{}
	if te.t.Version() == 3 {
		sh.v3ids[sid] = struct{}{}
	}
	return true
}

// retryDeferred places again the calls that waited for a tunnel to
// finish opening.
func (sh *shard) retryDeferred(now time.Time) {
	d := sh.deferred
	sh.deferred = nil
	for _, c := range d {
		if sh.calls[c.id] == c && c.te == nil && c.closing == nil {
			sh.place(now, c)
		}
	}
}

// tunnelFor finds a tunnel to lns that can take one more call, or opens
// one; wait says a new tunnel must wait until another one to the same
// LNS has finished opening (LNS.MaxOpening).
func (sh *shard) tunnelFor(now time.Time, lns LNS, group uint32) (*tunnelEntry, bool) {
	key := poolKey{lns.Addr, group}
	max := lns.MaxSessionsPerTunnel
	if max <= 0 {
		max = 65535
	}
	for _, te := range sh.pools[key] {
		st := te.t.State()
		if (st == tunnel.StateEstablished || st == tunnel.StateWaitCtlReply) && !te.full && te.load() < max {
			return te, false
		}
	}
	if !sh.l.opening.acquire(lns, sh.index) {
		return nil, true
	}
	id, ok := sh.allocTunnelID()
	if !ok {
		sh.wakeWaiting(now, sh.l.opening.release(lns.Addr))
		return nil, false
	}
	version, fallback := lns.Version, false
	if version == 0 {
		version, fallback = 3, true
	}
	cfg := tunnel.Config{
		Version: version, Fallback: fallback, Encap: wire.EncapUDP, LocalID: id,
		HostName: sh.cfg.HostName, RouterID: id, Secret: lns.Secret, HideAVPs: lns.HideAVPs,
		ReceiveWindow: sh.cfg.ReceiveWindow, Hello: sh.cfg.Hello,
		RetransmitInitial: sh.cfg.RetransmitInitial, RetransmitCap: sh.cfg.RetransmitCap,
		MaxRetransmits: sh.cfg.MaxRetransmits, MaxSessions: max, Rand: sh.cfg.Rand,
		// No tunnel.Config.SetupTimeout: Config.SetupTimeout bounds each
		// call from Dial to session up, across candidates, and clears it
		// (CDN result 10) itself; a second bound in the tunnel would
		// clear the call before its own timer moves it on.
		SessionIDMap: sh.mapSessionID,
		SessionIDFree: func(id uint32) bool {
			_, used := sh.v3ids[id]
			return !used
		},
	}
	te := &tunnelEntry{lns: lns, peer: lns.Addr, pool: key, calls: make(map[uint32]*call), opening: true}
	te.t = tunnel.NewInitiator(now, cfg)
	sh.tunnels[id] = te
	sh.pools[key] = append(sh.pools[key], te)
	sh.ctr.tunnelsOpened.Add(1)
	sh.ntunnels.Add(1)
	sh.log.Debug("opening tunnel", zap.Uint32("tunnel_id", id), zap.String("lns", lns.Addr.String()), zap.Uint8("version", version))
	sh.service(now, te)
	return te, false
}

// opened releases the LNS's opening slot once the tunnel is up or gone.
func (sh *shard) opened(now time.Time, te *tunnelEntry) {
	if !te.opening {
		return
	}
	te.opening = false
	sh.wakeWaiting(now, sh.l.opening.release(te.lns.Addr))
}

// wakeWaiting retries the deferred calls of the shards a release named.
func (sh *shard) wakeWaiting(now time.Time, shards []int) {
	for _, i := range shards {
		if i == sh.index || i >= len(sh.l.shards) {
			if len(sh.deferred) > 0 {
				sh.retryDeferred(now)
			}
			continue
		}
		o := sh.l.shards[i]
		o.post(o.retryDeferred)
	}
}

// allocTunnelID picks an unused tunnel ID in this shard's residue class,
// so that a reply's header Tunnel ID names its shard. IDs stay within
// 16 bits for L2TPv2 and for a v3 attempt that falls back to v2.
func (sh *shard) allocTunnelID() (uint32, bool) {
	n := uint32(sh.nshards())
	for i := 0; i < 64; i++ {
		var b [2]byte
		sh.rand(b[:])
		id := uint32(binary.BigEndian.Uint16(b[:]))
		id = id - id%n + uint32(sh.index)
		if id > 0xffff {
			id -= n
		}
		if id == 0 {
			continue
		}
		if _, used := sh.tunnels[id]; !used {
			return id, true
		}
	}
	// Dense: scan.
	for id := uint32(sh.index); id <= 0xffff; id += n {
		if _, used := sh.tunnels[id]; !used && id != 0 {
			return id, true
		}
	}
	return 0, false
}

// mapSessionID keeps session IDs in the shard's residue class, so a v3
// data message's Session ID alone names the owning shard.
func (sh *shard) mapSessionID(id uint32) uint32 {
	n := uint32(sh.nshards())
	v := id - id%n + uint32(sh.index)
	if id <= 0xffff && v > 0xffff {
		v -= n
	}
	return v
}

func (sh *shard) nshards() int {
	if sh.n <= 0 {
		return 1
	}
	return sh.n
}

// service flushes a tunnel's output and events and reschedules it.
func (sh *shard) service(now time.Time, te *tunnelEntry) {
	// Events first: a session that came up with the ICRP is installed in
	// the datapath before its ICCN leaves, so the LNS's first LCP frame,
	// sent on receipt of the ICCN, finds it. The handler hears of it only
	// after the ICCN is out, so its PPP never overtakes the ICCN.
	sh.drainEvents(now, te)
	for i := 0; i < 8; i++ {
		sh.pkts = te.t.Poll(now, sh.pkts[:0])
		for _, p := range sh.pkts {
			_ = sh.out.WriteControl(p, te.peer)
			if len(te.awaitICCN) > 0 {
				sh.sentICCN(te, p)
			}
		}
		if te.opening && te.t.State() == tunnel.StateEstablished {
			// The SCCCN is out: l2tpns holds a tunnel as opening until it
			// has it, and would take the next SCCRQ for a duplicate.
			sh.opened(now, te)
		}
		sh.announce()
		if sh.drainEvents(now, te) == 0 {
			break
		}
	}
	sh.announce()
	if r := te.t.Stats().Reliable.Retransmits; r != te.retx {
		if r > te.retx {
			sh.ctr.retransmits.Add(r - te.retx)
		}
		te.retx = r // a v2 fallback starts a new channel
	}
	if te.t.Done() {
		sh.removeTunnel(now, te)
		return
	}
	d := te.t.Deadline()
	if st := te.t.State(); st == tunnel.StateEstablished && sh.cfg.TunnelIdle > 0 && te.load() == 0 {
		if te.idleSince.IsZero() {
			te.idleSince = now
		}
		idleAt := te.idleSince.Add(sh.cfg.TunnelIdle)
		if !now.Before(idleAt) {
			te.t.Close(now, tunnel.Result{Code: wire.ResultClearConnection, Message: "idle"})
			sh.service(now, te)
			return
		}
		if d.IsZero() || idleAt.Before(d) {
			d = idleAt
		}
	}
	if !d.IsZero() && (te.scheduled.IsZero() || d.Before(te.scheduled)) {
		te.scheduled = d
		sh.timers.Push(d, timerKey{kind: timerTunnel, id: uint64(te.t.ID())})
	}
}

// sentICCN moves the call whose ICCN p is (if it is one) to the calls to
// announce. Only the header and the first AVP are read, except in v3.
func (sh *shard) sentICCN(te *tunnelEntry, p []byte) {
	if len(p) < 20 || binary.BigEndian.Uint16(p[14:]) != 0 || binary.BigEndian.Uint16(p[16:]) != uint16(wire.AVPMessageType) ||
		binary.BigEndian.Uint16(p[18:]) != uint16(wire.MsgICCN) {
		return
	}
	var id uint32
	if p[1]&0x0f == 3 {
		m, err := wire.ParseMessage(p, wire.EncapUDP, nil)
		if err != nil {
			return
		}
		a, ok := m.Find(wire.VendorIETF, wire.AVPLocalSessionID)
		if !ok {
			return
		}
		if id, err = a.Uint32(); err != nil {
			return
		}
	} else {
		id = uint32(binary.BigEndian.Uint16(p[6:]))
	}
	c := te.awaitICCN[id]
	if c == nil {
		return
	}
	delete(te.awaitICCN, id)
	if sh.calls[c.id] == c && c.up {
		sh.ups = append(sh.ups, c.upInfo)
	}
}

func (sh *shard) drainEvents(now time.Time, te *tunnelEntry) int {
	evs := te.t.Events()
	for _, ev := range evs {
		sh.report(now, te, ev)
	}
	return len(evs)
}

// announce tells handlers of the sessions installed since the last call.
func (sh *shard) announce() {
	for len(sh.ups) > 0 {
		u := sh.ups[0]
		sh.ups = sh.ups[1:]
		if c := sh.calls[u.ID]; c != nil && c.up {
			c.h.Up(u)
		}
	}
	sh.ups = sh.ups[:0]
}

func (sh *shard) removeTunnel(now time.Time, te *tunnelEntry) {
	id := te.t.ID()
	if sh.tunnels[id] != te {
		return
	}
	delete(sh.tunnels, id)
	p := sh.pools[te.pool]
	for i, x := range p {
		if x == te {
			p = append(p[:i], p[i+1:]...)
			break
		}
	}
	if len(p) == 0 {
		delete(sh.pools, te.pool)
	} else {
		sh.pools[te.pool] = p
	}
	sh.ntunnels.Add(-1)
	sh.opened(now, te)
}

// report acts on one tunnel event.
func (sh *shard) report(now time.Time, te *tunnelEntry, ev tunnel.Event) {
	switch ev.Kind {
	case tunnel.TunnelUp:
		te.wasUp = true
		sh.ctr.tunnelsUp.Add(1)
		sh.dead.clear(te.lns.Addr)
		sh.log.Debug("tunnel established", zap.Uint32("tunnel_id", te.t.ID()), zap.Uint32("peer_tunnel_id", te.t.Peer().TunnelID),
			zap.String("peer", te.peer.String()), zap.Uint8("version", te.t.Version()))
		pending := te.pending
		te.pending = nil
		for _, c := range pending {
			c.tunUp = now
			if !sh.startCall(now, te, c) {
				te.full = true
				sh.place(now, c)
			}
		}
	case tunnel.TunnelFallback:
		sh.log.Debug("LNS refused L2TPv3, retrying in L2TPv2", zap.Uint32("tunnel_id", te.t.ID()))
	case tunnel.TunnelDown:
		defer sh.opened(now, te)
		if !te.wasUp {
			sh.ctr.tunnelsFailed.Add(1)
			sh.dead.mark(te.lns.Addr, now.Add(sh.cfg.HoldDown))
			sh.log.Info("tunnel to LNS failed", zap.String("lns", te.lns.Addr.String()), zap.String("name", te.lns.Name),
				zap.Uint16("result", ev.Result.Code), zap.String("message", ev.Result.Message), zap.Bool("timeout", ev.Timeout))
		} else {
			sh.log.Debug("tunnel down", zap.Uint32("tunnel_id", te.t.ID()), zap.Uint16("result", ev.Result.Code),
				zap.String("message", ev.Result.Message), zap.Bool("by_peer", ev.ByPeer), zap.Bool("timeout", ev.Timeout))
		}
		te.full = true
		pending := te.pending
		te.pending = nil
		for _, c := range pending {
			if c.closing != nil {
				sh.fail(now, c, c.closing, ev.Result)
				continue
			}
			sh.failover(now, c, ev.Result)
		}
	case tunnel.SessionUp:
		c := te.calls[ev.SessionID]
		if c == nil {
			return
		}
		sh.sessionUp(now, te, c, ev.Session)
	case tunnel.SessionDown:
		c := te.calls[ev.SessionID]
		if c == nil {
			return
		}
		delete(te.calls, ev.SessionID)
		delete(sh.v3ids, ev.SessionID)
		if c.up {
			sh.dp.Remove(c.key)
			sh.owns.m.Delete(c.key)
			delete(sh.byKey, c.key)
			delete(sh.calls, c.id)
			sh.nsessions.Add(-1)
			c.h.Down(c.id, Reason{Result: ev.Result, Cause: ev.Cause, ByPeer: ev.ByPeer})
			return
		}
		if c.closing != nil {
			sh.fail(now, c, c.closing, ev.Result)
			return
		}
		sh.failover(now, c, ev.Result)
	}
}

func (sh *shard) sessionUp(now time.Time, te *tunnelEntry, c *call, s *tunnel.Session) {
	t := te.t
	key := datapath.SessionKey{Version: 2, Tunnel: t.ID(), Session: s.ID}
	if t.Version() == 3 {
		key = datapath.SessionKey{Version: 3, Session: s.ID}
	}
	err := sh.dp.Install(datapath.Session{Key: key, PeerTunnel: t.Peer().TunnelID, PeerSession: s.PeerID,
		Peer: te.peer, Socket: sh.sock})
	if err != nil {
		sh.log.Warn("datapath install", zap.Error(err))
		c.closing = err
		_ = t.CloseSession(now, s.ID, tunnel.Result{Code: wire.CDNGeneralError, Error: wire.ErrCodeResources, Message: "datapath"}, nil)
		return
	}
	c.up, c.key = true, key
	if c.tunUp.IsZero() {
		c.tunUp = c.dialed // the tunnel was already up
	}
	sh.byKey[key] = c
	sh.owns.m.Store(key, struct{}{})
	sh.nsessions.Add(1)
	sh.ctr.callsUp.Add(1)
	c.upInfo = Session{
		ID: c.id, Key: key, LNS: te.lns, Version: t.Version(),
		TunnelID: t.ID(), PeerTunnelID: t.Peer().TunnelID, SessionID: s.ID, PeerSessionID: s.PeerID,
		PeerHostName: t.Peer().HostName, Dialed: c.dialed, TunnelUp: c.tunUp, SessionUp: now, Attempts: c.attempts,
	}
	// The ICCN may wait in the control channel behind a full window; PPP
	// sent before it reaches the LNS first and is dropped there (l2tpns
	// ignores LCP in a session that is not connected yet).
	if te.awaitICCN == nil {
		te.awaitICCN = make(map[uint32]*call)
	}
	if t.Version() == 3 {
		te.awaitICCN[s.ID] = c
	} else {
		te.awaitICCN[s.PeerID] = c
	}
}

// abort ends a call that is not up yet.
func (sh *shard) abort(now time.Time, c *call, why error, res tunnel.Result) {
	c.closing = why
	te := c.te
	if te != nil && c.sid != 0 && te.calls[c.sid] == c {
		_ = te.t.CloseSession(now, c.sid, res, nil)
		sh.service(now, te)
		return
	}
	if te != nil {
		for i, p := range te.pending {
			if p == c {
				te.pending = append(te.pending[:i], te.pending[i+1:]...)
				break
			}
		}
	}
	sh.fail(now, c, why, res)
}

// hangup clears a call on the owner's request.
func (sh *shard) hangup(now time.Time, id CallID, res tunnel.Result, cause *tunnel.Disconnect) {
	c := sh.calls[id]
	if c == nil {
		return
	}
	if res.Code == 0 {
		res.Code = wire.CDNAdmin
	}
	if !c.up {
		sh.abort(now, c, ErrHangup, res)
		return
	}
	_ = c.te.t.CloseSession(now, c.sid, res, cause)
	sh.service(now, c.te)
}

// receive routes a control message to its tunnel or a frame to its call.
func (sh *shard) receive(now time.Time, p inPacket) {
	if p.frame {
		if c := sh.byKey[p.key]; c != nil {
			c.h.Frame(c.id, p.buf)
		}
		return
	}
	h, _, err := wire.ParseHeader(p.buf, wire.EncapUDP)
	if err != nil {
		sh.ctr.unknownTunnel.Add(1)
		return
	}
	te := sh.tunnels[h.TunnelID]
	if te == nil || te.peer.Addr() != p.from.Addr() {
		sh.ctr.unknownTunnel.Add(1)
		return
	}
	if te.peer.Port() != p.from.Port() {
		// RFC 2661 §8.1: the LNS may answer from another port.
		te.peer = p.from
	}
	te.t.Receive(now, p.buf)
	sh.service(now, te)
}

// closeAll sends StopCCN on every tunnel (shutdown).
func (sh *shard) closeAll(now time.Time) {
	for _, te := range sh.tunnels {
		te.t.Close(now, tunnel.Result{Code: wire.ResultShuttingDown, Message: "LAC shutting down"})
		sh.service(now, te)
	}
	for _, c := range sh.calls {
		sh.fail(now, c, ErrStopped, tunnel.Result{})
	}
}
