package control

import (
	"context"
	"errors"
	"math"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/control/pool"
	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/ppp"
	"github.com/l2tpd/l2tpd/store"
)

// Admission through a shared store. When several nodes share a database,
// a subscriber's address and its user's session slot are claimed in it
// before IPCP hands the address out: the shard picks a candidate from
// its local pool, a claim worker asks the store, and the answer comes
// back through the shard's claim queue. Meanwhile the subscriber's
// authentication is held, as for a RADIUS answer, and its peer simply
// retransmits. On a conflict (another node holds the address) the
// candidate stays taken in the local pool for a while and the next one
// is tried.

// framedPool names, in the store, addresses that are in no local pool
// (a RADIUS Framed-IP-Address outside them).
const framedPool = "framed"

// maxClaimTries bounds the candidates tried for one subscriber: nodes
// sharing a pool find each other's addresses one conflict at a time.
const maxClaimTries = 32

// foreignTTL is how long an address another node holds stays taken in
// the local pool before it is offered again.
const foreignTTL = time.Minute

// claimWorkers is the number of goroutines asking the store.
const claimWorkers = 4

// claimJob asks the store for what a subscriber needs.
type claimJob struct {
	sh  *shard
	key datapath.SessionKey
	sub *subscriber
	// Slot: take one of User's Max slots for Owner.
	slot bool
	max  int
	user string
	// Addr from Pool for Owner, when valid.
	pool  string
	addr  netip.Addr
	owner string
	// Prefix from Pool6, when valid; v6 marks a claim for the prefix
	// alone (IPv6CP opened).
	pool6  string
	prefix netip.Prefix
	v6     bool
	// reconcile: writing what was admitted during an outage.
	reconcile bool
}

// claimResult is the store's answer.
type claimResult struct {
	claimJob
	slotOK bool  // the slot was taken (or not asked for)
	err    error // nil, ErrLeased on the address, or ErrUnavailable
	err6   error // the same for the prefix
}

// claims runs the workers that ask the store.
type claims struct {
	jobs chan claimJob
	stop chan struct{}
	wg   sync.WaitGroup
}

func (s *Server) startClaims() {
	c := &claims{jobs: make(chan claimJob, 4096), stop: make(chan struct{})}
	n := claimWorkers
	if s.claimsByHand {
		n = 0 // a test takes the jobs and answers them
	}
	for i := 0; i < n; i++ {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				select {
				case j := <-c.jobs:
					r := s.runClaim(j)
					select {
					case j.sh.claimed <- r:
					case <-c.stop:
						return
					}
				case <-c.stop:
					return
				}
			}
		}()
	}
	s.claims = c
}

func (s *Server) stopClaims() {
	if s.claims == nil {
		return
	}
	close(s.claims.stop)
	s.claims.wg.Wait()
	s.claims = nil
}

// runClaim asks the store, on a worker.
func (s *Server) runClaim(j claimJob) claimResult {
	a, node := s.state.async, s.state.node
	r := claimResult{claimJob: j, slotOK: true}
	ctx := context.Background()
	if j.slot {
		ok, err := a.AcquireUserSlot(ctx, j.user, j.max, j.owner, node)
		if err != nil {
			r.slotOK, r.err = false, err
			return r
		}
		if !ok {
			r.slotOK = false
			return r
		}
	}
	// This node's own release of an address may still be in the write
	// queue: on a conflict, ask again once it is applied.
	retry := func(lease func() error) error {
		err := lease()
		if errors.Is(err, store.ErrLeased) {
			fctx, cancel := context.WithTimeout(ctx, time.Second)
			if a.Flush(fctx) == nil {
				err = lease()
			}
			cancel()
		}
		return err
	}
	if j.addr.IsValid() {
		r.err = retry(func() error { return a.LeaseIPv4(ctx, j.pool, j.addr, j.owner, node) })
	}
	if j.prefix.IsValid() && r.err == nil {
		r.err6 = retry(func() error { return a.LeaseIPv6(ctx, j.pool6, j.prefix, j.owner, node) })
	}
	return r
}

// foreignMarks are local pool addresses another node holds in the store.
// They stay taken locally until their time is up, then return to the
// pool, to be claimed again when they come up.
type foreignMarks struct {
	mu sync.Mutex
	l  []foreignMark // in marking order, so by until
}

type foreignMark struct {
	p      *pool.Pool
	addr   netip.Addr
	prefix netip.Prefix
	until  time.Time
}

// foreignOwner is the owner l2tpctl shows for such an address.
const foreignOwner = "leased by another node"

// mark keeps addr taken in p until now+foreignTTL. The address is the
// caller's candidate, already taken in p: it changes owner.
func (f *foreignMarks) mark(p *pool.Pool, addr netip.Addr, now time.Time) {
	p.ReleaseIPv4(addr)
	if p.Reserve(addr, foreignOwner) != nil {
		return
	}
	f.mu.Lock()
	f.l = append(f.l, foreignMark{p: p, addr: addr, until: now.Add(foreignTTL)})
	f.mu.Unlock()
}

// mark6 keeps prefix taken in p (leased there already, by the
// candidate's subscriber) until now+foreignTTL.
func (f *foreignMarks) mark6(p *pool.Pool, prefix netip.Prefix, now time.Time) {
	f.mu.Lock()
	f.l = append(f.l, foreignMark{p: p, prefix: prefix, until: now.Add(foreignTTL)})
	f.mu.Unlock()
}

// expire returns the addresses whose time is up to their pools.
func (f *foreignMarks) expire(now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for n < len(f.l) && !now.Before(f.l[n].until) {
		if m := f.l[n]; m.prefix.IsValid() {
			m.p.ReleaseIPv6(m.prefix)
		} else {
			m.p.ReleaseIPv4(m.addr)
		}
		n++
	}
	f.l = append(f.l[:0], f.l[n:]...)
	return n
}

// len is how many addresses are marked.
func (f *foreignMarks) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.l)
}

// userLimit is the configured sessions per user (0: none).
func (sh *shard) userLimit() int { return sh.srv.config().Limits.SessionsPerUser }

// admit finishes an accepted authentication: the user's session limit,
// then the subscriber's address (framed from RADIUS, else from its
// pool), before the PPP engine hears the answer.
func (sh *shard) admit(sub *subscriber, res ppp.AuthResult, framed netip.Addr, now time.Time) {
	srv := sh.srv
	if !srv.state.shared || srv.claims == nil {
		sh.admitLocal(sub, res, framed, now)
		return
	}
	if !srv.storeUp.Load() {
		if srv.outagePolicy() == OutageRefuse {
			sh.counters["store_outage_refused"]++
			sh.refuse(sub, now, "temporary lack of resources: store unavailable")
			return
		}
		sh.counters["store_outage_admitted"]++
		sub.reconcile = true
		sh.admitLocal(sub, res, framed, now)
		return
	}
	c := sub.claims()
	c.held, c.framed, c.tries = res, framed, 0
	sh.claimNext(sub, now)
}

// admitLocal decides on this node's state alone: the memory store, or a
// shared one that is unreachable.
func (sh *shard) admitLocal(sub *subscriber, res ppp.AuthResult, framed netip.Addr, now time.Time) {
	srv := sh.srv
	if lim := sh.userLimit(); lim > 0 && !srv.state.shared && srv.state.s != nil {
		// The memory store answers in memory: no network to wait on.
		ok, err := srv.state.s.AcquireUserSlot(context.Background(), sub.user, lim, sub.acctID, srv.state.node)
		if err == nil && !ok {
			sh.counters["user_limit_refused"]++
			sh.refuseUser(sub, now)
			return
		}
		sub.slot = err == nil
	}
	if a, ok := sh.framedAddress(sub, framed); ok {
		res.PeerIPv4 = a
	} else {
		res = ppp.AuthResult{Accept: false, Message: "no address available"}
		sh.counters["pool_exhausted"]++
	}
	sub.eng.AuthResult(now, res, sh.output(sub))
}

// claimNext picks the next candidate and asks the store for it.
func (sh *shard) claimNext(sub *subscriber, now time.Time) {
	srv := sh.srv
	srv.foreign.expire(now)
	if sub.claims().tries >= maxClaimTries {
		sh.counters["pool_exhausted"]++
		sh.deny(sub, now, "no address available")
		return
	}
	sub.claims().tries++
	a, ok := sh.framedAddress(sub, sub.claims().framed)
	if !ok {
		sh.counters["pool_exhausted"]++
		sh.deny(sub, now, "no address available")
		return
	}
	j := claimJob{sh: sh, key: sub.key, sub: sub, user: sub.user, owner: sub.acctID, addr: a, pool: sub.leasePool()}
	if lim := sh.userLimit(); lim > 0 && !sub.slot {
		j.slot, j.max = true, lim
	}
	select {
	case srv.claims.jobs <- j:
	default:
		sh.counters["store_claims_overloaded"]++
		sh.releaseIPv4(sub)
		sh.refuse(sub, now, "temporary lack of resources: store busy")
	}
}

// leasePool is the store's name for where the subscriber's address
// comes from.
func (s *subscriber) leasePool() string {
	if s.pool != nil && s.ipv4.IsValid() && s.pool.Contains(s.ipv4) {
		return s.pool.Name()
	}
	return framedPool
}

// onClaim applies the store's answer.
func (sh *shard) onClaim(r claimResult, now time.Time) {
	srv := sh.srv
	sub := sh.subs[r.key]
	if sub == nil || sub != r.sub {
		// Gone meanwhile: give back what the store gave.
		sh.counters["store_late_claims"]++
		if r.err == nil && r.addr.IsValid() {
			_ = srv.state.async.ReleaseIPv4(r.pool, r.addr)
		}
		if r.err == nil && r.err6 == nil && r.prefix.IsValid() {
			_ = srv.state.async.ReleaseIPv6(r.pool6, r.prefix)
		}
		if r.slot && r.slotOK {
			_ = srv.state.async.ReleaseUserSlot(r.user, r.owner)
		}
		return
	}
	if r.reconcile {
		sh.onReconcile(sub, r, now)
		return
	}
	if r.v6 {
		sh.onClaim6(sub, r, now)
		return
	}
	if r.slot && r.slotOK {
		sub.slot = true
	}
	switch {
	case errors.Is(r.err, store.ErrUnavailable):
		if srv.outagePolicy() == OutageRefuse {
			sh.counters["store_outage_refused"]++
			sh.releaseIPv4(sub)
			sh.refuse(sub, now, "temporary lack of resources: store unavailable")
			break
		}
		sh.counters["store_outage_admitted"]++
		sub.reconcile = true
		res := sub.claims().held
		if a, ok := sh.framedAddress(sub, sub.claims().framed); ok {
			res.PeerIPv4 = a
			sub.eng.AuthResult(now, res, sh.output(sub))
		} else {
			sh.counters["pool_exhausted"]++
			sh.deny(sub, now, "no address available")
		}
	case !r.slotOK:
		sh.counters["user_limit_refused"]++
		sh.releaseIPv4(sub)
		sh.refuseUser(sub, now)
	case errors.Is(r.err, store.ErrLeased):
		sh.counters["store_lease_conflicts"]++
		addr := sub.ipv4
		if sub.pool != nil && sub.pool.Contains(addr) {
			srv.foreign.mark(sub.pool, addr, now)
		}
		sub.ipv4 = netip.Addr{}
		if sub.claims().framed.IsValid() && sub.claims().framed == addr {
			sh.deny(sub, now, "address in use")
			break
		}
		sh.claimNext(sub, now)
	case r.err != nil:
		sh.counters["store_errors"]++
		sh.releaseIPv4(sub)
		sh.refuse(sub, now, "temporary lack of resources: store error")
	default:
		sub.leased = true
		res := sub.claims().held
		res.PeerIPv4 = sub.ipv4
		sub.eng.AuthResult(now, res, sh.output(sub))
	}
	sh.flushPPP(sub, now)
	if e := sh.tunnels[sub.e.t.ID()]; e == sub.e {
		sh.service(e, now)
	}
}

// deny fails the authentication with msg (PPP auth failure, then a CDN
// naming the authentication protocol).
func (sh *shard) deny(sub *subscriber, now time.Time, msg string) {
	sub.eng.AuthResult(now, ppp.AuthResult{Message: msg}, sh.output(sub))
}

// refuseUser fails the authentication of a user over its session limit.
func (sh *shard) refuseUser(sub *subscriber, now time.Time) {
	sh.srv.log.Info("session refused: user at its session limit", zap.String("user", sub.user), zap.Int("limit", sh.userLimit()))
	sh.deny(sub, now, "too many sessions for this user")
}

// refuse fails the authentication for want of resources: the CDN says
// so (result 4, temporary lack of facilities) rather than blaming the
// user's credentials.
func (sh *shard) refuse(sub *subscriber, now time.Time, msg string) {
	sub.refusal = &tunnel.Result{Code: wire.CDNNoResourcesTemp, Error: wire.ErrCodeResources, Message: msg}
	sh.deny(sub, now, msg)
}

// reconcile writes to the store what this shard admitted while it was
// unreachable: each such subscriber's address and user slot.
func (sh *shard) reconcile(now time.Time) {
	srv := sh.srv
	if srv.claims == nil {
		return
	}
	for _, sub := range sh.subs {
		if !sub.reconcile || (sub.claim != nil && sub.claim.reconciling) || sub.closing {
			continue
		}
		j := claimJob{sh: sh, key: sub.key, sub: sub, user: sub.user, owner: sub.acctID, reconcile: true}
		if sub.ipv4.IsValid() && !sub.leased {
			j.addr, j.pool = sub.ipv4, sub.leasePool()
		}
		if sub.ipv6.IsValid() && !sub.leased6 && sub.pool != nil {
			j.prefix, j.pool6 = sub.ipv6, sub.pool.Name()
		}
		if sh.userLimit() > 0 && !sub.slot {
			// Sessions admitted during the outage count, even beyond
			// the limit: they are not dropped for it.
			j.slot, j.max = true, math.MaxInt32
		}
		select {
		case srv.claims.jobs <- j:
			sub.claims().reconciling = true
		default:
			sh.counters["store_claims_overloaded"]++
			return
		}
	}
}

// onReconcile applies the answer for a subscriber admitted during an
// outage. Another node may have handed out the same address meanwhile:
// the session that finds its address taken is ended, since both
// subscribers would otherwise lose traffic to each other.
func (sh *shard) onReconcile(sub *subscriber, r claimResult, now time.Time) {
	sub.claims().reconciling = false
	if r.slot && r.slotOK {
		sub.slot = true
	}
	if r.err == nil && r.addr.IsValid() {
		sub.leased = true
	}
	if r.err == nil && r.err6 == nil && r.prefix.IsValid() {
		sub.leased6 = true
	}
	switch {
	case errors.Is(r.err, store.ErrUnavailable), errors.Is(r.err6, store.ErrUnavailable):
		// Down again: the next recovery retries.
	case errors.Is(r.err, store.ErrLeased), errors.Is(r.err6, store.ErrLeased):
		sh.counters["store_reconcile_conflicts"]++
		sh.srv.log.Error("address handed out during the store outage is held by another node: ending the session",
			zap.String("user", sub.user), zap.Stringer("ipv4", r.addr), zap.Stringer("ipv6", r.prefix), zap.String("acct_session_id", sub.acctID))
		sub.reconcile = false
		if errors.Is(r.err, store.ErrLeased) && sub.ipv4 == r.addr {
			sub.ipv4 = netip.Addr{} // not ours to release in the store
			if sub.pool != nil && sub.pool.Contains(r.addr) {
				sh.srv.foreign.mark(sub.pool, r.addr, now)
			}
		}
		if errors.Is(r.err6, store.ErrLeased) && sub.ipv6 == r.prefix && sub.pool != nil {
			sh.srv.foreign.mark6(sub.pool, r.prefix, now) // kept taken in the pool until it expires
			sub.ipv6 = netip.Prefix{}
		}
		if !sub.closing {
			sub.cause = aaa.CauseLostService
			sh.disconnect(sub, now)
			sh.service(sub.e, now)
		}
	case r.err != nil || r.err6 != nil:
		sh.counters["store_errors"]++
	default:
		sub.reconcile = false
		sh.counters["store_reconciled"]++
	}
}

// leaseIPv6 gives the subscriber a prefix from its pool when IPv6CP
// opens. In a shared store the prefix is claimed first: the route and
// the router advertisement wait for the answer (the subscriber's Router
// Solicitations are answered once it has one).
func (sh *shard) leaseIPv6(sub *subscriber, now time.Time) {
	srv := sh.srv
	pfx, err := sub.pool.LeaseIPv6(sub.owner())
	if err != nil {
		sh.counters["pool6_exhausted"]++
		return
	}
	if !srv.state.shared || srv.claims == nil {
		sub.ipv6 = pfx
		return
	}
	if !srv.storeUp.Load() {
		if srv.outagePolicy() == OutageRefuse {
			sub.pool.ReleaseIPv6(pfx)
			sh.counters["store_outage_refused_ipv6"]++
			return
		}
		sh.counters["store_outage_admitted"]++
		sub.ipv6, sub.reconcile = pfx, true
		return
	}
	sub.claims().tries6++
	j := claimJob{sh: sh, key: sub.key, sub: sub, user: sub.user, owner: sub.acctID, pool6: sub.pool.Name(), prefix: pfx, v6: true}
	select {
	case srv.claims.jobs <- j:
		sub.claims().cand6 = pfx
	default:
		sub.pool.ReleaseIPv6(pfx)
		sh.counters["store_claims_overloaded"]++
	}
}

// onClaim6 applies the store's answer for a prefix.
func (sh *shard) onClaim6(sub *subscriber, r claimResult, now time.Time) {
	srv := sh.srv
	sub.claims().cand6 = netip.Prefix{}
	switch {
	case errors.Is(r.err6, store.ErrUnavailable):
		if srv.outagePolicy() == OutageRefuse {
			sub.pool.ReleaseIPv6(r.prefix)
			sh.counters["store_outage_refused_ipv6"]++
			return
		}
		sh.counters["store_outage_admitted"]++
		sub.ipv6, sub.reconcile = r.prefix, true
	case errors.Is(r.err6, store.ErrLeased):
		sh.counters["store_lease_conflicts"]++
		srv.foreign.mark6(sub.pool, r.prefix, now)
		if sub.claims().tries6 >= maxClaimTries {
			sh.counters["pool6_exhausted"]++
			return
		}
		if sub.ipv6Up {
			sh.leaseIPv6(sub, now)
		}
		return
	case r.err6 != nil:
		sub.pool.ReleaseIPv6(r.prefix)
		sh.counters["store_errors"]++
		return
	default:
		sub.ipv6, sub.leased6 = r.prefix, true
	}
	sh.installRoutes(sub)
	if sub.ipv6Up {
		sh.sendRA(sub, now)
		sh.flushPPP(sub, now)
	}
}

// releaseClaims gives back, through the write queue, what the store
// holds for a subscriber that is going away.
func (sh *shard) releaseClaims(sub *subscriber) {
	a := sh.srv.state.async
	if a == nil {
		return
	}
	if sub.slot {
		sub.slot = false
		if sh.srv.state.shared {
			_ = a.ReleaseUserSlot(sub.user, sub.acctID)
		} else if err := sh.srv.state.s.ReleaseUserSlot(context.Background(), sub.user, sub.acctID); err != nil {
			sh.counters["store_errors"]++
		}
	}
}
