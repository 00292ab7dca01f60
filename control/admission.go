package control

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l2tpd/l2tpd/control/wire"
)

// Admission control keeps a reconnect storm (every LAC redialling after
// an outage) from collapsing the LNS: what is over a limit gets the
// protocol's "not now" answer at once — StopCCN Result Code 2 with
// Error Code 4 for a tunnel (RFC 2661 §4.4.2, RFC 3931 §5.4.2), CDN
// Result Code 4 for a session — and the LAC retries later, instead of
// the LNS accepting more than RADIUS and the control plane can set up
// in time and timing everything out.

// Reasons a new tunnel or session is refused.
const (
	refuseTunnelLimit = iota
	refuseTunnelPerPeer
	refuseSCCRQRate
	refuseSCCRQRatePerPeer
	refuseSessionLimit
	refuseSessionPerPeer
	refuseSetupLimit
	refuseSetupPerPeer
	refuseICRQRate
	refuseICRQRatePerPeer
	refuseOverloadSCCRQ
	refuseOverloadICRQ
	numRefusals
)

var refusalNames = [numRefusals]string{
	"tunnel_limit", "tunnel_per_peer_limit", "sccrq_rate", "sccrq_rate_per_peer",
	"session_limit", "session_per_peer_limit", "setup_limit", "setup_per_peer_limit",
	"icrq_rate", "icrq_rate_per_peer", "overload_sccrq", "overload_icrq",
}

type refusalCounters [numRefusals]atomic.Uint64

func (r *refusalCounters) inc(reason int) { r[reason].Add(1) }

func (r *refusalCounters) snapshot() map[string]uint64 {
	m := make(map[string]uint64, numRefusals)
	for i := range r {
		m[refusalNames[i]] = r[i].Load()
	}
	return m
}

// tokenBucket is a rate limiter with a burst: it holds up to burst
// tokens and gains rate of them a second. Rate and burst are arguments,
// not state, so a reload changes them for every bucket at once.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take removes one token if there is one. A rate of zero or less is no
// limit; a burst below one is one.
func (b *tokenBucket) take(now time.Time, rate float64, burst int) bool {
	if rate <= 0 {
		return true
	}
	capacity := float64(max(burst, 1))
	if b.last.IsZero() {
		b.tokens = capacity
	} else if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(capacity, b.tokens+dt.Seconds()*rate)
	}
	if !now.Before(b.last) {
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// full reports whether the bucket would be full at now (an idle peer's
// state can then be forgotten without changing any answer).
func (b *tokenBucket) full(now time.Time, rate float64, burst int) bool {
	if rate <= 0 || b.last.IsZero() {
		return true
	}
	return b.tokens+now.Sub(b.last).Seconds()*rate >= float64(max(burst, 1))
}

// globalBuckets are the rate limits shared by every shard.
type globalBuckets struct {
	mu    sync.Mutex
	sccrq tokenBucket
	icrq  tokenBucket
}

func (g *globalBuckets) take(b *tokenBucket, now time.Time, rate float64, burst int) bool {
	if rate <= 0 {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return b.take(now, rate, burst)
}

// peerAdmission is what a shard knows of one peer address: its rate
// buckets and the sessions it holds. All inbound tunnels of an address
// land on the same shard, so no lock is needed.
type peerAdmission struct {
	sccrq, icrq tokenBucket
	sessions    int // admitted and not yet down (in setup included)
	setup       int // admitted, not yet established
}

// admissionSweep is how many peers a shard tracks before it forgets the
// idle ones.
const admissionSweep = 4096

func (sh *shard) peerAdm(a netip.Addr) *peerAdmission {
	if pa := sh.admPeers[a]; pa != nil {
		return pa
	}
	if len(sh.admPeers) >= admissionSweep {
		sh.sweepAdmission(sh.clock())
	}
	pa := &peerAdmission{}
	sh.admPeers[a] = pa
	return pa
}

// sweepAdmission forgets peers with no session and full buckets.
func (sh *shard) sweepAdmission(now time.Time) {
	l := sh.srv.config().Limits
	for a, pa := range sh.admPeers {
		if pa.sessions == 0 && pa.sccrq.full(now, l.SCCRQRatePerPeer, l.SCCRQBurstPerPeer) && pa.icrq.full(now, l.ICRQRatePerPeer, l.ICRQBurstPerPeer) {
			delete(sh.admPeers, a)
		}
	}
}

func (sh *shard) clock() time.Time {
	if sh.now.IsZero() {
		return time.Now()
	}
	return sh.now
}

// admitTunnel decides on a new SCCRQ from addr (already counted in the
// tunnel totals); it returns the refusal reason or -1.
func (sh *shard) admitTunnel(addr netip.Addr, now time.Time) int {
	l := sh.srv.config().Limits
	switch {
	case l.MaxTunnels > 0 && sh.srv.tunnels.Load() > int64(l.MaxTunnels):
		return refuseTunnelLimit
	case l.MaxTunnelsPerPeer > 0 && sh.perPeer[addr] > l.MaxTunnelsPerPeer:
		return refuseTunnelPerPeer
	}
	if !sh.peerAdm(addr).sccrq.take(now, l.SCCRQRatePerPeer, l.SCCRQBurstPerPeer) {
		return refuseSCCRQRatePerPeer
	}
	g := &sh.srv.buckets
	if !g.take(&g.sccrq, now, l.SCCRQRate, l.SCCRQBurst) {
		return refuseSCCRQRate
	}
	return -1
}

// admitSession is the tunnels' Admit hook: asked for each new session of
// e, it counts the session as in setup when it says yes. The session's
// events then move it along (see admitted, established, released); an
// admission that made no session is undone when e is serviced.
func (sh *shard) admitSession(e *entry) bool {
	now := sh.clock()
	l := sh.srv.config().Limits
	addr := e.peer.Addr()
	pa := sh.peerAdm(addr)
	reason := -1
	if sh.srv.refusingForOutage() {
		sh.counters["store_outage_refused"]++
		return false
	}
	switch {
	case l.MaxSessions > 0 && sh.srv.sessions.Load()+sh.srv.inSetup.Load() >= int64(l.MaxSessions):
		reason = refuseSessionLimit
	case l.MaxSessionsPerPeer > 0 && pa.sessions >= l.MaxSessionsPerPeer:
		reason = refuseSessionPerPeer
	case l.MaxSessionsInSetup > 0 && sh.srv.inSetup.Load() >= int64(l.MaxSessionsInSetup):
		reason = refuseSetupLimit
	case l.MaxSessionsInSetupPerPeer > 0 && pa.setup >= l.MaxSessionsInSetupPerPeer:
		reason = refuseSetupPerPeer
	case !pa.icrq.take(now, l.ICRQRatePerPeer, l.ICRQBurstPerPeer):
		reason = refuseICRQRatePerPeer
	case !sh.srv.buckets.take(&sh.srv.buckets.icrq, now, l.ICRQRate, l.ICRQBurst):
		reason = refuseICRQRate
	}
	if reason >= 0 {
		sh.srv.refused.inc(reason)
		return false
	}
	pa.sessions++
	pa.setup++
	sh.srv.inSetup.Add(1)
	e.pendingAdmit++
	return true
}

// admitted binds a pending admission of e to session sid (ICRP sent).
func (sh *shard) admitted(e *entry, sid uint32) {
	if e.pendingAdmit == 0 {
		return
	}
	e.pendingAdmit--
	if e.admitted == nil {
		e.admitted = make(map[uint32]bool)
	}
	e.admitted[sid] = true
}

// established moves session sid out of setup. A session that came up
// with no answered call first (an OCRQ we took as LAC) uses a pending
// admission directly.
func (sh *shard) established(e *entry, sid uint32) {
	inSetup, ok := e.admitted[sid]
	if !ok {
		if e.pendingAdmit == 0 {
			return
		}
		e.pendingAdmit--
		if e.admitted == nil {
			e.admitted = make(map[uint32]bool)
		}
		inSetup = true
	}
	if inSetup {
		sh.leaveSetup(e.peer.Addr())
	}
	e.admitted[sid] = false
}

// released gives back what session sid of e held, on any teardown.
func (sh *shard) released(e *entry, sid uint32) {
	inSetup, ok := e.admitted[sid]
	if !ok {
		return
	}
	delete(e.admitted, sid)
	sh.releaseSession(e.peer.Addr(), inSetup)
}

// settleAdmissions undoes admissions that made no session; with all
// set, it releases every session of e too (the tunnel is gone).
func (sh *shard) settleAdmissions(e *entry, all bool) {
	for ; e.pendingAdmit > 0; e.pendingAdmit-- {
		sh.releaseSession(e.peer.Addr(), true)
	}
	if all {
		for sid, inSetup := range e.admitted {
			delete(e.admitted, sid)
			sh.releaseSession(e.peer.Addr(), inSetup)
		}
	}
}

func (sh *shard) leaveSetup(a netip.Addr) {
	sh.srv.inSetup.Add(-1)
	if pa := sh.admPeers[a]; pa != nil && pa.setup > 0 {
		pa.setup--
	}
}

func (sh *shard) releaseSession(a netip.Addr, inSetup bool) {
	if inSetup {
		sh.leaveSetup(a)
	}
	if pa := sh.admPeers[a]; pa != nil && pa.sessions > 0 {
		pa.sessions--
	}
}

// overloadBacklog is the shard inbox depth from which new SCCRQs and
// ICRQs are dropped before they are queued: the rest of the inbox stays
// for established tunnels' acknowledgements, Hellos and PPP.
func overloadBacklog(sh *shard) int { return cap(sh.in) / 4 }

// peekMessageType reads the Message Type AVP, which RFC 2661 §4.1 and
// RFC 3931 §5.4 put first in every control message, without parsing the
// rest. off is where the AVPs start (h and off as wire.ParseHeader
// returned them); a ZLB has none.
func peekMessageType(pkt []byte, h wire.Header, off int) (wire.MsgType, bool) {
	// The message ends where its Length says (counted from the start of
	// the 12-octet control header, which follows the zero Session ID
	// over IP); what follows in the datagram is not part of it.
	end := off - controlHeaderLen + int(h.Length)
	if off < controlHeaderLen || end > len(pkt) || end < off+8 {
		return 0, false
	}
	a := pkt[off:end]
	flags := binary.BigEndian.Uint16(a)
	if flags&0x4000 != 0 || flags&0x03ff < 8 { // hidden, or too short
		return 0, false
	}
	if uint32(binary.BigEndian.Uint16(a[2:])) != wire.VendorIETF || binary.BigEndian.Uint16(a[4:]) != 0 {
		return 0, false
	}
	return wire.MsgType(binary.BigEndian.Uint16(a[6:])), true
}

// controlHeaderLen is the length of the L2TPv2 control header with its
// Length and Ns/Nr fields (RFC 2661 §3.1) and of the L2TPv3 control
// header (RFC 3931 §3.2.1): 12 octets both.
const controlHeaderLen = 12
