package control

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/store"
)

// ErrNotFound is returned by Clear* for an unknown ID.
var ErrNotFound = errors.New("control: no such tunnel or session")

// maxPacket bounds a control datagram; L2TP over UDP fits a jumbo frame.
const maxPacket = 9216

// Server runs the L2TP control plane: listeners, shards and the admin
// queries the daemon exposes. Tunnels are spread over a few shard
// goroutines; nothing runs per tunnel or per session.
type Server struct {
	cfg   Config
	log   *zap.Logger
	ready chan struct{}

	eng       *datapath.Engine
	dp        dataplane
	sockMu    sync.Mutex
	socks     []*datapath.Socket
	listeners listenerSet
	// routes are the pool routes in the kernel (reloadMu).
	routes routeState
	// snap is the running configuration: read by the shards on every
	// decision, replaced whole by Reload.
	snap     atomic.Pointer[snapshot]
	reloadMu sync.Mutex
	aaa      aaaState
	setup    histogram // ICRQ to ICCN
	online   histogram // ICRQ to the first NCP open
	state    stateStore
	shards   []*shard
	seed     maphash.Seed
	// access is the LAC role, when configured.
	access   atomic.Pointer[access]
	tunnels  atomic.Int64 // across shards, for Limits.MaxTunnels
	sessions atomic.Int64
	// inSetup counts sessions admitted and not yet established.
	inSetup atomic.Int64
	buckets globalBuckets
	refused refusalCounters
	drops   dropCounters
	dropLog dropLog     // the maintenance goroutine's drop summaries
	storeUp atomic.Bool // the shared store answers (state.go)
	claims  *claims     // workers asking a shared store (claim.go)
	foreign foreignMarks
	// sharedStore, set by tests before Run, replaces the configured
	// store and is treated as a database other nodes share.
	sharedStore store.Store
	// claimsByHand, set by tests before Run, starts no claim workers:
	// the test answers the claims itself.
	claimsByHand bool
	// pw holds what pseudowires and static tunnels opened.
	pw pwServer
}

// New checks cfg and returns a server that is not yet listening.
func New(cfg Config, log *zap.Logger) (*Server, error) {
	if len(cfg.Listen) == 0 {
		return nil, errors.New("control: no listen address")
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 1
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{cfg: cfg, log: log, ready: make(chan struct{}), seed: maphash.MakeSeed()}
	snap, err := buildSnapshot(cfg, nil)
	if err != nil {
		return nil, err
	}
	s.snap.Store(snap)
	for i := 0; i < cfg.Shards; i++ {
		s.shards = append(s.shards, newShard(s, i))
	}
	return s, nil
}

// Ready is closed once every listener is bound.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// LocalAddrs are the bound listener addresses (after Ready).
func (s *Server) LocalAddrs() []net.Addr {
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	var a []net.Addr
	for _, sk := range s.socks {
		a = append(a, sk.LocalAddr())
	}
	return a
}

// Run binds the listeners, opens the datapath and serves until ctx is
// done, then tears every tunnel down (StopCCN, result 6) before returning.
func (s *Server) Run(ctx context.Context) error {
	cfg := s.config()
	eng, err := datapath.New(datapath.Config{
		TUN: cfg.TUN.Name, MTU: cfg.TUN.MTU,
		DisableGSO: cfg.Datapath.DisableGSO, DisableGRO: cfg.Datapath.DisableGRO,
		DisableTUNOffload: cfg.Datapath.DisableTUNOffload,
	}, s)
	if err != nil {
		return fmt.Errorf("control: datapath: %w", err)
	}
	s.eng, s.dp = eng, eng
	for _, addr := range cfg.Listen {
		sk, err := s.listen(eng, addr)
		if err == nil {
			s.sockMu.Lock()
			s.addListenerLocked(addr, sk)
			s.sockMu.Unlock()
			continue
		}
		dctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = eng.Run(dctx) // releases what was opened
		return err
	}
	if cfg.TUN.Name != "" {
		if err := s.setupKernelRoutes(eng.TUNName()); err != nil {
			s.log.Warn("kernel routes for the pools", zap.Error(err))
		}
	}
	abort := func() {
		dctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = eng.Run(dctx) // releases the sockets and the TUN
	}
	if err := s.startPseudowires(cfg); err != nil {
		abort()
		return err
	}
	if err := s.openStore(ctx); err != nil {
		abort()
		return err
	}
	if err := s.startAAA(); err != nil {
		abort()
		s.closeStore()
		return err
	}
	// After the accounting spool exists, which takes over the previous
	// run's records before the Acct-Stops of its sessions are spooled.
	if err := s.connectStore(ctx); err != nil {
		abort()
		s.stopAAA()
		s.closeStore()
		return err
	}
	dctx, stopDatapath := context.WithCancel(context.Background())
	dpDone := make(chan error, 1)
	go func() { dpDone <- eng.Run(dctx) }()
	var wg sync.WaitGroup
	for _, sh := range s.shards {
		wg.Add(1)
		go func(sh *shard) { defer wg.Done(); sh.run() }(sh)
	}
	for _, sk := range s.socks {
		s.log.Info("listening", zap.String("addr", sk.LocalAddr().String()))
	}
	s.registerPseudowires(ctx, cfg)
	accCtx, stopAccess := context.WithCancel(context.Background())
	accDone := make(chan struct{})
	if cfg.LAC.Enabled() {
		err := s.startAccess(accCtx, cfg, accDone)
		if err != nil {
			stopAccess()
			s.closeStore()
			s.stopAAA()
			stopDatapath()
			<-dpDone
			for _, sh := range s.shards {
				close(sh.quit)
			}
			wg.Wait()
			return err
		}
	} else {
		close(accDone)
	}
	mctx, stopMaintain := context.WithCancel(ctx)
	maintained := make(chan struct{})
	go func() { defer close(maintained); s.maintain(mctx) }()
	close(s.ready)
	<-ctx.Done()
	stopAccess()
	<-accDone
	stopMaintain()
	<-maintained

	// Graceful stop: StopCCN to every tunnel, then wait (bounded) for acks.
	stopCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s.stopPseudowires(stopCtx)
	s.eachShard(stopCtx, func(sh *shard) { sh.closeAll() })
	for stopCtx.Err() == nil && s.tunnels.Load() > 0 {
		select {
		case <-stopCtx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.stopReconnect()
	s.stopAAA()
	s.closeStore()
	stopDatapath()
	err = <-dpDone
	for _, sh := range s.shards {
		close(sh.quit)
	}
	wg.Wait()
	return err
}

// inPacket is a control message or a PPP frame on its way to a shard.
type inPacket struct {
	buf   []byte
	from  netip.AddrPort
	to    netip.Addr
	sock  *datapath.Socket
	frame bool
	key   datapath.SessionKey
	encap wire.Encap
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, maxPacket); return &b }}

// Control is the datapath's upcall for a control message: it is
// classified by header only and queued to the shard that owns it.
func (s *Server) Control(sk *datapath.Socket, pkt []byte, from netip.AddrPort, to netip.Addr) {
	encap := s.encapOf(sk)
	h, off, err := wire.ParseHeader(pkt, encap)
	if err != nil {
		if v, ok := wire.VersionOf(pkt, wire.EncapUDP); encap == wire.EncapUDP && ok && v != 2 && v != 3 && len(pkt) >= 2 && pkt[0]&0x80 != 0 {
			s.refuseVersion(sk, from, to)
			s.drops.inc(dropVersion)
		} else {
			s.drops.inc(dropMalformed)
		}
		return
	}
	if !h.Control || len(pkt) > maxPacket {
		s.drops.inc(dropMalformed)
		return
	}
	var sh *shard
	if h.TunnelID == 0 {
		sh = s.shards[s.peerShard(from.Addr())]
	} else {
		sh = s.shards[int(h.TunnelID%uint32(len(s.shards)))]
	}
	if len(sh.in) >= overloadBacklog(sh) {
		// New work waits for the backlog to clear; established
		// tunnels' messages still go in.
		if mt, ok := peekMessageType(pkt, h, off); ok {
			switch {
			case mt == wire.MsgSCCRQ && h.TunnelID == 0:
				s.refused.inc(refuseOverloadSCCRQ)
				return
			case mt == wire.MsgICRQ:
				s.refused.inc(refuseOverloadICRQ)
				return
			}
		}
	}
	s.enqueue(sh, inPacket{from: from, to: to, sock: sk, encap: encap}, pkt)
}

// Frame is the datapath's upcall for a PPP frame that is not forwarded.
func (s *Server) Frame(key datapath.SessionKey, frame []byte) {
	if len(frame) > maxPacket {
		s.drops.inc(dropMalformed)
		return
	}
	id := key.Tunnel
	if key.Version == 3 {
		id = key.Session
	}
	s.enqueue(s.shards[int(id%uint32(len(s.shards)))], inPacket{frame: true, key: key}, frame)
}

func (s *Server) enqueue(sh *shard, p inPacket, data []byte) {
	bp := bufPool.Get().(*[]byte)
	p.buf = append((*bp)[:0], data...)
	select {
	case sh.in <- p:
	default:
		s.drops.inc(dropOverload)
		bufPool.Put(bp)
	}
}

func (s *Server) peerShard(a netip.Addr) int {
	b := a.As16()
	return int(maphash.Bytes(s.seed, b[:]) % uint64(len(s.shards)))
}

// refuseVersion answers a control message of a version we do not speak
// with a stateless v2 StopCCN, result 5, the highest version we support
// in the error field (RFC 2661 §4.4.2, RFC 3931 §4.7.3).
func (s *Server) refuseVersion(sk *datapath.Socket, from netip.AddrPort, to netip.Addr) {
	b := wire.AppendControlHeader(nil, wire.EncapUDP, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, Nr: 1})
	b = wire.AppendMessageType(b, wire.MsgStopCCN)
	b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPAssignedTunnelID, 0)
	b = wire.AppendResultCode(b, true, wire.ResultUnsupportedVersion, 3, "")
	wire.FinishControl(b, 0, wire.EncapUDP)
	_ = sk.WriteControl(b, from, to)
}

// eachShard runs fn in every shard's goroutine and waits for all.
func (s *Server) eachShard(ctx context.Context, fn func(*shard)) error {
	var wg sync.WaitGroup
	for _, sh := range s.shards {
		done := make(chan struct{})
		select {
		case sh.cmd <- func() { fn(sh); close(done) }:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-done:
			case <-ctx.Done():
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// Tunnels lists every tunnel.
func (s *Server) Tunnels(ctx context.Context) ([]TunnelInfo, error) {
	var mu sync.Mutex
	out := []TunnelInfo{}
	err := s.eachShard(ctx, func(sh *shard) {
		now := time.Now()
		for _, e := range sh.tunnels {
			ti := e.info(now)
			mu.Lock()
			out = append(out, ti)
			mu.Unlock()
		}
	})
	return out, err
}

// Sessions lists every session.
func (s *Server) Sessions(ctx context.Context) ([]SessionInfo, error) {
	var mu sync.Mutex
	out := []SessionInfo{}
	err := s.eachShard(ctx, func(sh *shard) {
		now := time.Now()
		for _, e := range sh.tunnels {
			e.t.Sessions(func(ss *tunnel.Session) {
				si := sh.sessionInfo(e, ss, now)
				mu.Lock()
				out = append(out, si)
				mu.Unlock()
			})
		}
	})
	out = append(out, s.staticSessionInfos(time.Now())...)
	if a := s.access.Load(); a != nil {
		out = append(out, a.sessions()...)
	}
	return out, err
}

// ClearTunnel sends StopCCN (result 1, general request) to a tunnel.
func (s *Server) ClearTunnel(ctx context.Context, id uint32) error {
	found := false
	err := s.eachShard(ctx, func(sh *shard) {
		if e := sh.tunnels[id]; e != nil {
			found = true
			e.t.Close(time.Now(), tunnel.Result{Code: wire.ResultClearConnection, Message: "cleared by administrator"})
			sh.service(e, time.Now())
		}
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: tunnel %d", ErrNotFound, id)
	}
	return nil
}

// ClearSession sends CDN (result 3, administrative) for a session.
func (s *Server) ClearSession(ctx context.Context, id uint32) error {
	return s.ClearSessionResult(ctx, id, 0)
}

// RunningConfig is the configuration in force, secrets replaced by
// "<hidden>", for l2tpctl show config.
func (s *Server) RunningConfig() Config {
	c := *s.config()
	hide := func(v string) string {
		if v == "" {
			return ""
		}
		return "<hidden>"
	}
	c.Peers = append([]Peer(nil), c.Peers...)
	for i := range c.Peers {
		c.Peers[i].Secret = hide(c.Peers[i].Secret)
	}
	c.Default.Secret = hide(c.Default.Secret)
	c.Users = nil
	r := c.RADIUS
	r.Auth, r.Acct, r.DAEClients = append([]RADIUSServer(nil), r.Auth...), append([]RADIUSServer(nil), r.Acct...), append([]DAEClient(nil), r.DAEClients...)
	for i := range r.Auth {
		r.Auth[i].Secret = hide(r.Auth[i].Secret)
	}
	for i := range r.Acct {
		r.Acct[i].Secret = hide(r.Acct[i].Secret)
	}
	for i := range r.DAEClients {
		r.DAEClients[i].Secret = hide(r.DAEClients[i].Secret)
	}
	c.RADIUS = r
	c.Store.URL = hide(c.Store.URL)
	return c
}

// ClearSessionResult is ClearSession with the CDN result code to send
// (RFC 2661 §4.4.2; 0 means 3, administrative).
func (s *Server) ClearSessionResult(ctx context.Context, id uint32, result uint16) error {
	var found atomic.Bool
	err := s.eachShard(ctx, func(sh *shard) {
		for _, e := range sh.tunnels {
			if e.t.Session(id) != nil {
				found.Store(true)
				now := time.Now()
				sh.clearSession(e, id, result, now)
				sh.service(e, now)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	if !found.Load() {
		// The LAC role's relayed sessions, by their L2TP session ID.
		res, cause := adminCDN(result)
		if a := s.access.Load(); a == nil || !a.clearSession(id, res, cause) {
			return fmt.Errorf("%w: session %d", ErrNotFound, id)
		}
	}
	return nil
}

// Stats returns the control plane's counters.
func (s *Server) Stats(ctx context.Context) (Stats, error) {
	st := Stats{Drops: s.drops.snapshot(), Counters: map[string]uint64{}, Refused: s.refused.snapshot(), SessionsInSetup: int(s.inSetup.Load())}
	if s.eng != nil {
		st.Offload = map[string]uint64{}
		s.datapathStats(st.Drops, st.Offload)
	}
	if c := s.aaa.client.Load(); c != nil {
		r := c.Stats()
		for k, v := range map[string]uint64{
			"radius_requests": r.Requests, "radius_retransmissions": r.Retransmissions, "radius_responses": r.Responses,
			"radius_timeouts": r.Timeouts, "radius_failovers": r.Failovers, "radius_busy": r.Busy, "radius_no_server": r.NoServer,
			"radius_servers_dead": r.ServersDead, "radius_servers_revived": r.ServersRevived,
		} {
			st.Counters[k] = v
		}
		st.Drops["radius_bad_message_authenticator"] = r.DropBadMessageAuth + r.DropNoMessageAuth
		st.Drops["radius_malformed"] = r.DropMalformed + r.DropUnknownID + r.DropAuthenticator + r.DropCode
		for _, sv := range c.Servers() {
			st.Servers = append(st.Servers, ServerInfo{Addr: sv.Addr.String(), Dead: sv.Dead, Pending: sv.Pending,
				Responses: sv.Responses, LatencySeconds: sv.Latency.Seconds(), Requests: sv.Requests, Unanswered: sv.Unanswered})
		}
	}
	if a := s.access.Load(); a != nil {
		a.stats(st.Counters)
	}
	if acct := s.aaa.acct.Load(); acct != nil {
		if sp, ok := acct.Spool().(interface{ Len() int }); ok {
			st.AcctQueue = sp.Len()
		}
	}
	st.SessionSetup, st.OnlineSetup = s.setup.snapshot(), s.online.snapshot()
	if s.state.async != nil {
		st.StoreQueue = s.state.async.Depth()
		st.StoreUp = s.storeUp.Load()
	}
	var mu sync.Mutex
	err := s.eachShard(ctx, func(sh *shard) {
		mu.Lock()
		defer mu.Unlock()
		st.Tunnels += len(sh.tunnels)
		for _, e := range sh.tunnels {
			st.Sessions += e.t.NumSessions()
			ts := e.t.Stats()
			st.Counters["control_retransmits"] += ts.Reliable.Retransmits
			st.Counters["control_duplicates"] += ts.Reliable.Duplicates
			st.Counters["control_out_of_order"] += ts.Reliable.OutOfOrder
		}
		for k, v := range sh.counters {
			st.Counters[k] += v
		}
	})
	return st, err
}

// datapathStats splits the datapath's Stats into drops, named
// "datapath_"+reason, and the offload_ entries, which count work and
// modes, not drops (offload nil: left out).
func (s *Server) datapathStats(drops, offload map[string]uint64) {
	for k, v := range s.eng.Stats() {
		if strings.HasPrefix(k, "offload_") {
			if offload != nil {
				offload[k] = v
			}
			continue
		}
		drops["datapath_"+k] = v
	}
}
