package control

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/ppp"
)

// RADIUS configures authentication, accounting and dynamic
// authorization; with no servers local users decide.
type RADIUS struct {
	Auth, Acct    []RADIUSServer
	NASIdentifier string
	NASIPAddress  netip.Addr
	Timeout       time.Duration
	Retries       int
	// DeadTime is how long a server that stopped answering is left
	// alone (30s when zero).
	DeadTime time.Duration
	// InterimInterval applies when the Access-Accept carries no
	// Acct-Interim-Interval; zero sends no interim updates then.
	InterimInterval time.Duration
	// DAEListen is the UDP address of the RFC 5176 server ("" off).
	DAEListen  string
	DAEClients []DAEClient
}

// RADIUSServer is one RADIUS server; the lowest Priority alive is used.
type RADIUSServer struct {
	Addr     netip.AddrPort
	Secret   string
	Priority int
}

// DAEClient may send Disconnect- and CoA-Requests.
type DAEClient struct {
	Addr   netip.Addr
	Secret string
}

// aaaState is the RADIUS side of a Server. A reload replaces the client
// whole: new requests go to the new one while the old one finishes what
// it has in flight, then closes.
type aaaState struct {
	// client sends Access-Requests and new accounting; nil with no
	// servers configured.
	client atomic.Pointer[aaa.Client]
	// acct delivers the spool; made the first time accounting servers
	// are configured and kept, so live sessions' records are delivered
	// even after a reload removes accounting (through the client they
	// started with).
	acct  atomic.Pointer[aaa.Accounting]
	spool spool

	mu      sync.Mutex // below, and the swaps above
	dae     *aaa.DAE
	daeConn *net.UDPConn
	drains  sync.WaitGroup
	stop    chan struct{}

	boot int64
	seq  atomic.Uint64
}

// spool is where accounting records wait for delivery: in memory, or in
// the store (storeSpool) when it is shared and durable.
type spool interface {
	aaa.Spool
	Len() int
}

// authResult carries a RADIUS answer back to the shard that asked.
type authResult struct {
	key datapath.SessionKey
	sub *subscriber
	res aaa.Result
}

// radiusClient builds the client for r; nil when r names no server.
func (s *Server) radiusClient(r RADIUS, hostName string) (*aaa.Client, error) {
	if len(r.Auth) == 0 && len(r.Acct) == 0 {
		return nil, nil
	}
	conv := func(l []RADIUSServer) []aaa.Server {
		var out []aaa.Server
		for _, v := range l {
			out = append(out, aaa.Server{Addr: v.Addr, Secret: v.Secret, Priority: v.Priority})
		}
		return out
	}
	retries := r.Retries
	if retries == 0 {
		retries = -1 // aaa: negative is none, zero its default
	}
	c, err := aaa.NewClient(aaa.Config{Auth: conv(r.Auth), Acct: conv(r.Acct), NAS: nasOf(r, hostName),
		Timing: aaa.Timing{Timeout: r.Timeout, Retries: retries, DeadTime: r.DeadTime}})
	if err != nil {
		return nil, fmt.Errorf("control: radius: %w", err)
	}
	return c, nil
}

func nasOf(r RADIUS, hostName string) aaa.NAS {
	nas := aaa.NAS{Identifier: r.NASIdentifier, IPAddress: r.NASIPAddress}
	if nas.Identifier == "" {
		nas.Identifier = hostName
	}
	return nas
}

func daeConfig(r RADIUS, hostName string) aaa.DAEConfig {
	var clients []aaa.DAEClient
	for _, c := range r.DAEClients {
		clients = append(clients, aaa.DAEClient{Addr: c.Addr, Secret: c.Secret})
	}
	return aaa.DAEConfig{Clients: clients, NAS: nasOf(r, hostName)}
}

func listenDAE(addr string) (*net.UDPConn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("control: dae listen %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("control: dae: %w", err)
	}
	return conn, nil
}

func (s *Server) startAAA() error {
	s.aaa.boot = bootTag(s.nodeID(), time.Now())
	s.aaa.stop = make(chan struct{})
	return s.applyRADIUS(&Config{}, s.config())
}

// radiusClientChanged reports whether a and b need different clients.
func radiusClientChanged(a, b *Config) bool {
	ra, rb := a.RADIUS, b.RADIUS
	return !slices.Equal(ra.Auth, rb.Auth) || !slices.Equal(ra.Acct, rb.Acct) || nasOf(ra, a.HostName) != nasOf(rb, b.HostName) ||
		ra.Timeout != rb.Timeout || ra.Retries != rb.Retries || ra.DeadTime != rb.DeadTime
}

// applyRADIUS moves the RADIUS side from old to cfg. What can fail (a
// client with a bad server, a DAE address already in use) is done
// first; on error nothing has changed.
func (s *Server) applyRADIUS(old, cfg *Config) error {
	a := &s.aaa
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.stop:
		return errors.New("control: shutting down")
	default:
	}
	ro, rn := old.RADIUS, cfg.RADIUS
	var conn *net.UDPConn
	if rn.DAEListen != "" && rn.DAEListen != ro.DAEListen {
		c, err := listenDAE(rn.DAEListen)
		if err != nil {
			return err
		}
		conn = c
	}
	swap := radiusClientChanged(old, cfg)
	var nc *aaa.Client
	if swap {
		c, err := s.radiusClient(rn, cfg.HostName)
		if err != nil {
			if conn != nil {
				conn.Close()
			}
			return err
		}
		nc = c
	}
	if swap && len(rn.Acct) > 0 && a.spool == nil {
		sp, err := s.newSpool()
		if err != nil {
			if conn != nil {
				conn.Close()
			}
			if nc != nil {
				nc.Close()
			}
			return err
		}
		a.spool = sp
	}

	if swap {
		oc := a.client.Load()
		if oc != nil && nc != nil {
			nc.Inherit(oc)
		}
		a.client.Store(nc)
		acct := a.acct.Load()
		var held *aaa.Client
		if acct != nil {
			held = acct.Client()
		}
		if len(rn.Acct) > 0 {
			if acct == nil {
				a.acct.Store(aaa.NewAccounting(nc, a.spool, aaa.AcctConfig{}))
			} else {
				acct.SetClient(nc)
			}
		}
		// A client no longer used for new work drains: it finishes
		// what it has in flight (with its own failover), then closes.
		// The accounting sender keeps its client when accounting is
		// removed: the live sessions' records still go there.
		inUse := func(c *aaa.Client) bool {
			return c == nc || (a.acct.Load() != nil && a.acct.Load().Client() == c)
		}
		retired := map[*aaa.Client]bool{}
		for _, c := range []*aaa.Client{oc, held} {
			if c != nil && !inUse(c) && !retired[c] {
				retired[c] = true
				s.drainClient(c, ro)
			}
		}
	}

	switch {
	case rn.DAEListen == "" && a.daeConn != nil:
		a.daeConn.Close()
		a.daeConn, a.dae = nil, nil
	case conn != nil:
		if a.daeConn != nil {
			a.daeConn.Close()
		}
		d := aaa.NewDAE(daeConfig(rn, cfg.HostName), s)
		a.dae, a.daeConn = d, conn
		go func() { _ = d.Serve(conn) }()
		s.log.Info("dynamic authorization server", zap.String("addr", conn.LocalAddr().String()))
	case a.dae != nil:
		a.dae.SetConfig(daeConfig(rn, cfg.HostName))
	}
	return nil
}

// drainClient closes c once nothing is in flight on it, or when every
// request could have failed over through all of r's servers.
func (s *Server) drainClient(c *aaa.Client, r RADIUS) {
	tries := max(r.Retries, 0) + 1
	wait := time.Duration(tries*(len(r.Auth)+len(r.Acct))+1)*max(r.Timeout, time.Second) + time.Second
	a := &s.aaa
	a.drains.Add(1)
	go func() {
		defer a.drains.Done()
		end := time.Now().Add(wait)
		for c.Pending() > 0 && time.Now().Before(end) {
			select {
			case <-a.stop:
				end = time.Now()
			case <-time.After(50 * time.Millisecond):
			}
		}
		c.Close()
	}()
}

// stopAAA flushes accounting (bounded) and closes the RADIUS side.
func (s *Server) stopAAA() {
	a := &s.aaa
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.daeConn != nil {
		a.daeConn.Close()
	}
	if acct := a.acct.Load(); acct != nil {
		deadline := time.Now().Add(3 * time.Second)
		for a.spool.Len() > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := a.spool.Len(); n > 0 {
			s.log.Warn("accounting records not delivered at shutdown", zap.Int("records", n))
		}
		acct.Close()
		if sp, ok := a.spool.(*storeSpool); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if err := sp.Close(ctx); err != nil {
				s.log.Warn("accounting records not written to the store at shutdown", zap.Error(err))
			}
			cancel()
		}
		if c := acct.Client(); c != a.client.Load() {
			c.Close()
		}
	}
	if c := a.client.Load(); c != nil {
		c.Close()
	}
	if a.stop != nil {
		close(a.stop)
	}
	a.drains.Wait()
}

// DAEAddr is the bound address of the dynamic authorization server.
func (s *Server) DAEAddr() net.Addr {
	s.aaa.mu.Lock()
	defer s.aaa.mu.Unlock()
	if s.aaa.daeConn == nil {
		return nil
	}
	return s.aaa.daeConn.LocalAddr()
}

// aaaSession describes a subscriber to RADIUS.
func (sh *shard) aaaSession(sub *subscriber) aaa.Session {
	e, s := sub.e, sub.sess
	cfg := sh.srv.config()
	return aaa.Session{
		User:                 sub.user,
		NASPort:              s.ID,
		CallingStationID:     s.CallingNumber,
		CalledStationID:      s.CalledNumber,
		TxConnectSpeed:       s.TxSpeed,
		RxConnectSpeed:       s.RxSpeed,
		AcctSessionID:        sub.acctID,
		TunnelClientEndpoint: e.peer.Addr(),
		TunnelServerEndpoint: e.local,
		TunnelAssignmentID:   e.t.Peer().HostName,
		TunnelClientAuthID:   e.t.Peer().HostName,
		TunnelServerAuthID:   cfg.HostName,
	}
}

// radiusAuth sends the PPP credentials to RADIUS; the answer comes back
// through the shard's queue.
func (sh *shard) radiusAuth(sub *subscriber, req *ppp.AuthRequest, now time.Time) bool {
	c := sh.srv.aaa.client.Load()
	if c == nil || len(sh.srv.config().RADIUS.Auth) == 0 {
		return false
	}
	key := sub.key
	r := &aaa.Request{Session: sh.aaaSession(sub), Auth: *req}
	done := func(res aaa.Result) {
		select {
		case sh.auth <- authResult{key: key, sub: sub, res: res}:
		default:
			// The shard is overwhelmed: the subscriber's PPP times the
			// authentication out and it retries.
			sh.srv.drops.inc(dropOverload)
		}
	}
	err := c.Authenticate(r, done)
	if errors.Is(err, aaa.ErrClosed) {
		// A reload replaced the client between the load and the call.
		if c = sh.srv.aaa.client.Load(); c != nil {
			err = c.Authenticate(r, done)
		}
	}
	if err != nil {
		sh.counters["radius_refused"]++
		sub.eng.AuthResult(now, ppp.AuthResult{Message: "authentication unavailable"}, sh.output(sub))
	}
	return true
}

// onAuthResult applies a RADIUS answer to its subscriber.
func (sh *shard) onAuthResult(ar authResult, now time.Time) {
	sub := sh.subs[ar.key]
	if sub == nil || sub != ar.sub {
		sh.counters["radius_late_answer"]++
		return
	}
	res := ar.res.PPP
	switch {
	case ar.res.Err != nil:
		sh.counters["radius_unavailable"]++
		res = ppp.AuthResult{Message: "authentication unavailable"}
	case !ar.res.Accept:
		sh.counters["auth_rejected"]++
	default:
		a := ar.res.Attrs
		sub.class = a.Class
		sub.sessionTimeout, sub.idleTimeout, sub.interim = a.SessionTimeout, a.IdleTimeout, a.AcctInterimInterval
		if a.FramedPool != "" {
			if p := sh.srv.snap.Load().pools[a.FramedPool]; p != nil {
				sub.pool = p
			}
		}
		sh.acceptAttributes(sub, &a, &res)
		sh.admit(sub, res, a.FramedIPAddress, now)
		sh.flushPPP(sub, now)
		if e := sh.tunnels[sub.e.t.ID()]; e == sub.e {
			sh.service(e, now)
		}
		return
	}
	sub.eng.AuthResult(now, res, sh.output(sub))
	sh.flushPPP(sub, now)
	if e := sh.tunnels[sub.e.t.ID()]; e == sub.e {
		sh.service(e, now)
	}
}

// framedAddress picks the subscriber's IPv4: RADIUS's Framed-IP-Address
// (reserved in its pool when it lies in one), or a pool lease.
func (sh *shard) framedAddress(sub *subscriber, framed netip.Addr) (netip.Addr, bool) {
	if sub.ipv4.IsValid() {
		return sub.ipv4, true
	}
	// 255.255.255.254 means "the NAS picks" (RFC 2865 §5.8).
	if framed.IsValid() && framed != netip.AddrFrom4([4]byte{255, 255, 255, 254}) && framed != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		if sub.pool != nil && sub.pool.Contains(framed) {
			if err := sub.pool.Reserve(framed, sub.owner()); err != nil {
				return netip.Addr{}, false
			}
		} else {
			sub.pool = nil // not ours to release
		}
		sub.ipv4 = framed
		return framed, true
	}
	if sub.pool == nil {
		return netip.Addr{}, false
	}
	a, err := sub.pool.LeaseIPv4(sub.owner())
	if err != nil {
		return netip.Addr{}, false
	}
	sub.ipv4 = a
	return a, true
}

// accounting sends a record when accounting servers are configured.
func (sh *shard) accounting(sub *subscriber, status aaa.AcctStatus, cause aaa.TerminateCause, now time.Time) {
	a := sh.srv.aaa.acct.Load()
	if a == nil || sub.acctID == "" {
		return
	}
	// A session is accounted from its Start to its Stop, or not at
	// all: by the configuration in force when it came online.
	if status == aaa.AcctStart {
		sub.accounted = len(sh.srv.config().RADIUS.Acct) > 0
	}
	if !sub.accounted {
		return
	}
	rec := aaa.AcctRecord{Session: sh.aaaSession(sub), Status: status, Time: now, FramedIPAddress: sub.ipv4,
		FramedIPv6Prefix: sub.ipv6, DelegatedIPv6Prefix: sub.delegatedPrefix(), Class: sub.class, TerminateCause: cause}
	if !sub.started.IsZero() {
		rec.SessionTime = now.Sub(sub.started)
	}
	if c, ok := sh.srv.dp.Counters(sub.key); ok {
		// Input is what the subscriber sent (RFC 2866 §5.3).
		rec.InputOctets, rec.InputPackets, rec.OutputOctets, rec.OutputPackets = c.RxBytes, c.RxPackets, c.TxBytes, c.TxPackets
	}
	if err := a.Send(rec); err != nil {
		sh.counters["accounting_errors"]++
		sh.srv.log.Error("accounting record lost", zap.String("acct_session_id", sub.acctID), zap.Error(err))
		return
	}
	sh.counters["accounting_"+status.String()]++
}

// newAcctSessionID is unique across restarts and nodes: a tag of the
// node and its start time, and a counter.
func (s *Server) newAcctSessionID() string {
	return fmt.Sprintf("%08X%08X", uint32(s.aaa.boot), uint32(s.aaa.seq.Add(1)))
}

// bootTag mixes the node ID and the start time into the first half of
// every Acct-Session-Id.
func bootTag(node string, start time.Time) int64 {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", node, start.UnixNano())
	return int64(h.Sum32())
}

// accountingStart opens the accounting session when the subscriber
// first gets an address.
func (sh *shard) accountingStart(sub *subscriber, now time.Time) {
	if !sub.started.IsZero() {
		return
	}
	sub.started = now
	sh.srv.online.observe(now.Sub(sub.sess.Created))
	sh.recordStart(sub, now)
	sh.accounting(sub, aaa.AcctStart, 0, now)
	if iv := sub.interimInterval(sh.srv.config()); iv > 0 {
		sub.interimNext = now.Add(iv)
	}
	if sub.sessionTimeout > 0 {
		sub.sessionEnd = now.Add(sub.sessionTimeout)
	}
	if sub.idleTimeout > 0 {
		sub.idleCheck = now.Add(sub.idleTimeout)
	}
}

func (sub *subscriber) interimInterval(cfg *Config) time.Duration {
	if sub.interim > 0 {
		return max(sub.interim, time.Minute) // RFC 2869 §5.16: not below 60s
	}
	return cfg.RADIUS.InterimInterval
}

// subscriberTimers runs accounting, Session-Timeout and Idle-Timeout.
func (sh *shard) subscriberTimers(sub *subscriber, now time.Time) {
	if !sub.interimNext.IsZero() && !now.Before(sub.interimNext) {
		sh.accounting(sub, aaa.AcctInterim, 0, now)
		sh.recordUpdate(sub, now)
		sub.interimNext = now.Add(sub.interimInterval(sh.srv.config()))
	}
	if !sub.sessionEnd.IsZero() && !now.Before(sub.sessionEnd) && !sub.closing {
		sub.cause = aaa.CauseSessionTimeout
		sh.disconnect(sub, now)
		return
	}
	if !sub.idleCheck.IsZero() && !now.Before(sub.idleCheck) && !sub.closing {
		// Only IP counts as activity: PPP control frames (LCP echoes)
		// pass through the control plane and are subtracted.
		c, _ := sh.srv.dp.Counters(sub.key)
		c.RxPackets -= min(c.RxPackets, sub.ctlRx)
		c.TxPackets -= min(c.TxPackets, sub.ctlTx)
		if c.RxPackets == sub.idleRx && c.TxPackets == sub.idleTx {
			sub.cause = aaa.CauseIdleTimeout
			sh.disconnect(sub, now)
			return
		}
		sub.idleRx, sub.idleTx = c.RxPackets, c.TxPackets
		sub.idleCheck = now.Add(sub.idleTimeout)
	}
}

// disconnect ends a subscriber's session from our side.
func (sh *shard) disconnect(sub *subscriber, now time.Time) {
	sub.closing = true
	sh.clearSession(sub.e, sub.sess.ID, 0, now)
}

// Disconnect ends the sessions a Disconnect-Request matches (RFC 5176).
func (s *Server) Disconnect(m aaa.Match) (int, error) {
	return s.eachMatch(m, func(sh *shard, sub *subscriber, now time.Time) {
		sub.cause = aaa.CauseAdminReset
		sh.disconnect(sub, now)
		sh.service(sub.e, now)
	})
}

// Change applies a CoA-Request's new timeouts (RFC 5176 §3.2).
func (s *Server) Change(m aaa.Match, c aaa.Change) (int, error) {
	return s.eachMatch(m, func(sh *shard, sub *subscriber, now time.Time) {
		if c.SessionTimeout > 0 {
			sub.sessionTimeout = c.SessionTimeout
			sub.sessionEnd = now.Add(c.SessionTimeout)
		}
		if c.IdleTimeout > 0 {
			sub.idleTimeout = c.IdleTimeout
			sub.idleCheck = now.Add(c.IdleTimeout)
		}
		sh.schedule(sub)
	})
}

func (s *Server) eachMatch(m aaa.Match, fn func(*shard, *subscriber, time.Time)) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var mu sync.Mutex
	n := 0
	err := s.eachShard(ctx, func(sh *shard) {
		now := time.Now()
		var hit []*subscriber
		for _, sub := range sh.subs {
			if m.AcctSessionID != "" && m.AcctSessionID != sub.acctID ||
				m.UserName != "" && m.UserName != sub.user ||
				m.FramedIP.IsValid() && m.FramedIP != sub.ipv4 {
				continue
			}
			if m.AcctSessionID == "" && m.UserName == "" && !m.FramedIP.IsValid() {
				continue
			}
			hit = append(hit, sub)
		}
		for _, sub := range hit {
			fn(sh, sub, now)
		}
		mu.Lock()
		n += len(hit)
		mu.Unlock()
	})
	return n, err
}

// stopCause is the Acct-Terminate-Cause of a session going down.
func stopCause(sub *subscriber, ev tunnel.Event) aaa.TerminateCause {
	switch {
	case sub.cause != 0:
		return sub.cause
	case ev.Cause != nil:
		return aaa.CauseFromDisconnect(ev.Cause.Code, ev.Cause.Direction)
	case ev.ByPeer:
		return aaa.CauseFromCDN(ev.Result.Code)
	}
	return aaa.CauseFromCDN(ev.Result.Code)
}
