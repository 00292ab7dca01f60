package control

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/store"
	"github.com/l2tpd/l2tpd/store/memory"
	"github.com/l2tpd/l2tpd/store/postgres"
)

// Store selects where sessions are recorded.
type Store struct {
	// Backend is "memory" (the default) or "postgres".
	Backend string
	// URL is the PostgreSQL connection string.
	URL string
	// NodeID names this l2tpd among the nodes sharing the database; the
	// host name by default. It must stay the same across restarts so a
	// node finds the sessions it left behind.
	NodeID string
	// OutagePolicy says what happens to new sessions while a shared
	// store (postgres) is unreachable: OutageAdmit (the default) admits
	// them on this node's state alone and writes their leases and user
	// slots once the database answers again; OutageRefuse refuses them
	// (CDN, temporary lack of resources). Live sessions stay up either
	// way.
	OutagePolicy string
}

// Outage policies (Store.OutagePolicy).
const (
	OutageAdmit  = "admit"
	OutageRefuse = "refuse"
)

// stateStore is the Server's persistence: the store and the queue that
// keeps every write off the shards. It is set before the shards start
// and not changed after: a shared store that is reached later is handed
// to the Deferred in d, which answers ErrUnavailable until then.
type stateStore struct {
	s     store.Store
	async *store.Async
	node  string
	// shared: the store is a database other nodes may use, so leases
	// and user slots are claimed in it before a session gets them.
	shared bool
	// d is the shared store once reached (s is d when shared).
	d *store.Deferred
	// orphans are the sessions the previous run left open in a memory
	// store, for stopRecovered.
	orphans []store.SessionRecord
	// reached: the shared store has been reached once (registered,
	// recovered); the health probe starts then.
	reached *atomic.Bool
	// closeDB closes what reaching the shared store opened.
	closeDB func()
	closeMu *sync.Mutex
	// stopHealth ends the health probe, stopConnect the reconnection;
	// healthDone and connectDone (nil unless reconnecting) are closed
	// when they have.
	stopHealth  chan struct{}
	healthDone  chan struct{}
	stopConnect chan struct{}
	connectDone chan struct{}
	// healthMu orders the health reports (storeHealth).
	healthMu *sync.Mutex
}

// Reaching a shared store: each attempt is bounded; after a failed one
// at start the next comes after storeRetryMin, doubling up to
// storeRetryMax.
const (
	storeAttemptTimeout = 5 * time.Second
	storeRetryMin       = time.Second
	storeRetryMax       = 10 * time.Second
)

// nodeID is the configured node ID, else the machine's host name (not
// the L2TP Host Name, which nodes often share).
func (s *Server) nodeID() string {
	cfg := s.config()
	if cfg.Store.NodeID != "" {
		return cfg.Store.NodeID
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return cfg.HostName
}

// openStore sets up the configured store. The memory store is opened
// at once, the node registered and recovered. A shared store is only
// prepared: the write queue and the claim workers run over a Deferred
// that counts as unreachable until connectStore reaches the database.
func (s *Server) openStore(ctx context.Context) error {
	cfg := s.config().Store
	node := s.nodeID()
	shared := s.sharedStore != nil || cfg.Backend == "postgres"
	if !shared {
		if cfg.Backend != "" && cfg.Backend != "memory" {
			return fmt.Errorf("control: unknown store backend %q", cfg.Backend)
		}
		st := memory.New(memory.Config{})
		epoch, err := st.RegisterNode(ctx, node)
		if err != nil {
			return fmt.Errorf("control: store: register node %s: %w", node, err)
		}
		orphans, err := st.Recover(ctx, node, time.Now())
		if err != nil {
			return fmt.Errorf("control: store: recover node %s: %w", node, err)
		}
		async, err := store.NewAsync(st, store.AsyncConfig{
			Writer:   fmt.Sprintf("%s/%d", node, epoch),
			OnError:  func(err error) { s.log.Warn("store write failed, retrying", zap.Error(err)) },
			OnHealth: s.storeHealth,
		})
		if err != nil {
			return fmt.Errorf("control: store: %w", err)
		}
		s.state = stateStore{s: st, async: async, node: node, orphans: orphans, reached: new(atomic.Bool),
			closeDB: func() {}, closeMu: new(sync.Mutex), healthMu: new(sync.Mutex),
			stopHealth: make(chan struct{}), healthDone: make(chan struct{})}
		s.state.reached.Store(true)
		close(s.state.healthDone)
		s.storeUp.Store(true)
		s.log.Info("store open", zap.String("backend", "memory"), zap.String("node", node))
		return nil
	}
	d := store.NewDeferred()
	// No writer yet: it is named after the boot epoch, which only the
	// database gives. Until then writes wait in the queue.
	async, err := store.NewAsync(d, store.AsyncConfig{
		OnError:  func(err error) { s.log.Warn("store write failed, retrying", zap.Error(err)) },
		OnHealth: s.storeHealth,
	})
	if err != nil {
		return fmt.Errorf("control: store: %w", err)
	}
	s.state = stateStore{s: d, d: d, async: async, node: node, shared: true, reached: new(atomic.Bool),
		closeDB: func() {}, closeMu: new(sync.Mutex), healthMu: new(sync.Mutex),
		stopHealth: make(chan struct{}), healthDone: make(chan struct{})}
	s.storeUp.Store(false)
	s.startClaims()
	go s.probeStore(s.state.stopHealth, s.state.healthDone)
	return nil
}

// dialStore opens the shared store (applying pending migrations) and
// returns it with what closes it.
func (s *Server) dialStore(ctx context.Context) (store.Store, func(), error) {
	if s.sharedStore != nil {
		return s.sharedStore, func() {}, nil
	}
	pg, err := postgres.Open(ctx, s.config().Store.URL, postgres.Config{OnDropped: func(w store.Write, err error) {
		s.log.Error("store refused a write", zap.Error(err))
	}})
	if err != nil {
		return nil, nil, fmt.Errorf("control: store: %w", err)
	}
	return pg, pg.Close, nil
}

// reachStore makes one attempt at the shared store: open it, register
// the node (its boot epoch names the write queue's writer), take over
// the accounting records the previous run left, and close what that run
// left open (Recover). Only then do the Deferred and the write queue get
// the store, so that nothing this run queued (sessions admitted in the
// meantime, their accounting) lands before Recover, which would close
// it. It returns the sessions Recover closed, for stopRecovered.
func (s *Server) reachStore(ctx context.Context) ([]store.SessionRecord, error) {
	st, closeFn, err := s.dialStore(ctx)
	if err != nil {
		return nil, err
	}
	node := s.state.node
	epoch, err := st.RegisterNode(ctx, node)
	if err != nil {
		closeFn()
		return nil, fmt.Errorf("control: store: register node %s: %w", node, err)
	}
	if sp := s.storeSpool(); sp != nil {
		if err := sp.takeOver(ctx, st); err != nil {
			closeFn()
			return nil, err
		}
	}
	orphans, err := st.Recover(ctx, node, time.Now())
	if err != nil {
		closeFn()
		return nil, fmt.Errorf("control: store: recover node %s: %w", node, err)
	}
	s.state.closeMu.Lock()
	s.state.closeDB = closeFn
	s.state.closeMu.Unlock()
	if err := s.state.d.Set(st); err != nil {
		return nil, fmt.Errorf("control: store: %w", err)
	}
	if err := s.state.async.SetWriter(fmt.Sprintf("%s/%d", node, epoch)); err != nil {
		return nil, fmt.Errorf("control: store: %w", err)
	}
	return orphans, nil
}

// storeSpool is the accounting spool when it is in the store.
func (s *Server) storeSpool() *storeSpool {
	s.aaa.mu.Lock()
	defer s.aaa.mu.Unlock()
	sp, _ := s.aaa.spool.(*storeSpool)
	return sp
}

// connectStore reaches the shared store once, at start, after the
// accounting spool exists and before the shards run. When the database
// does not answer (store.ErrUnavailable), the node starts anyway, as
// during an outage: new sessions follow the outage policy, and a
// background loop keeps trying until it reaches the database. Any other
// failure (a malformed URL, refused credentials, a failed migration)
// fails the start.
func (s *Server) connectStore(ctx context.Context) error {
	if !s.state.shared {
		s.stopRecovered(s.state.orphans)
		s.state.orphans = nil
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, storeAttemptTimeout)
	orphans, err := s.reachStore(actx)
	cancel()
	switch {
	case err == nil:
		s.storeUp.Store(true)
		s.state.reached.Store(true)
		s.storeOpened(len(orphans))
		s.stopRecovered(orphans)
	case errors.Is(err, store.ErrUnavailable):
		s.log.Warn("store unreachable at start: serving without it and retrying in the background",
			zap.Error(err), zap.String("node", s.state.node), zap.String("outage_policy", s.outagePolicy()))
		s.state.stopConnect, s.state.connectDone = make(chan struct{}), make(chan struct{})
		go s.retryStore(s.state.stopConnect, s.state.connectDone)
	default:
		return err
	}
	return nil
}

func (s *Server) storeOpened(recovered int) {
	s.log.Info("store open", zap.String("backend", s.config().Store.Backend), zap.String("node", s.state.node),
		zap.Int("recovered_sessions", recovered), zap.String("outage_policy", s.outagePolicy()))
}

// retryStore tries to reach the shared store until it does or stop is
// closed. Once it has, the node is where a start with the database up
// would have put it, plus what it admitted meanwhile: the sessions the
// previous run left open get their Acct-Stop, and the sessions admitted
// since start get their leases and user slots written (storeHealth).
func (s *Server) retryStore(stop <-chan struct{}, done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	wait := storeRetryMin
	for attempt := 1; ; attempt++ {
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
		actx, acancel := context.WithTimeout(ctx, storeAttemptTimeout)
		orphans, err := s.reachStore(actx)
		acancel()
		if err == nil {
			s.storeOpened(len(orphans))
			s.stopRecovered(orphans)
			s.storeHealth(true)
			s.state.reached.Store(true)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, store.ErrUnavailable) {
			s.log.Warn("store still unreachable, retrying", zap.Error(err), zap.Int("attempt", attempt), zap.Duration("next_in", min(2*wait, storeRetryMax)))
		} else {
			s.log.Error("store refused this node, retrying", zap.Error(err), zap.Int("attempt", attempt), zap.Duration("next_in", min(2*wait, storeRetryMax)))
		}
		wait = min(2*wait, storeRetryMax)
	}
}

// newSpool is the accounting spool: the store's accounting queue when
// the store is shared (and so durable), else memory. A shared store
// not reached yet gives a spool that holds its records in memory until
// the store is reached (storeSpool).
func (s *Server) newSpool() (spool, error) {
	if !s.state.shared {
		return &aaa.MemSpool{}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sp, err := newStoreSpool(ctx, s.state.s, s.state.async, s.state.node, spoolConfig{
		Notify: func() {
			if a := s.aaa.acct.Load(); a != nil {
				a.Notify()
			}
		},
		OnError: func(err error) { s.log.Warn("accounting record not written to the store, retrying", zap.Error(err)) },
		OnRecovered: func(n int) {
			if n > 0 {
				s.log.Info("accounting records left by the previous run", zap.Int("records", n))
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// stopRecovered sends an Acct-Stop with cause NAS-Reboot for each
// session the previous run left open.
func (s *Server) stopRecovered(orphans []store.SessionRecord) {
	for _, o := range orphans {
		s.log.Info("closing a session left open by the previous run", zap.String("acct_session_id", o.AcctSessionID),
			zap.String("user", o.User), zap.Stringer("ipv4", o.IPv4))
		if acct := s.aaa.acct.Load(); acct != nil {
			rec := aaa.AcctRecord{
				Session: aaa.Session{User: o.User, NASPort: o.SessionID, AcctSessionID: o.AcctSessionID,
					TunnelClientEndpoint: o.Peer.Addr()},
				Status: aaa.AcctStop, Time: time.Now(), FramedIPAddress: o.IPv4, FramedIPv6Prefix: o.IPv6,
				InputOctets: o.Counters.InOctets, OutputOctets: o.Counters.OutOctets,
				InputPackets: o.Counters.InPackets, OutputPackets: o.Counters.OutPackets,
				TerminateCause: aaa.CauseNASReboot,
			}
			if !o.Start.IsZero() {
				rec.SessionTime = time.Since(o.Start)
			}
			if len(o.Class) > 0 {
				rec.Class = [][]byte{o.Class}
			}
			if err := acct.Send(rec); err != nil {
				s.log.Error("accounting Stop for a recovered session lost", zap.String("acct_session_id", o.AcctSessionID), zap.Error(err))
			}
		}
	}
}

// storeProbeInterval is how often a shared store is asked whether it
// answers, so an outage is seen even when nothing is written.
const storeProbeInterval = time.Second

func (s *Server) probeStore(stop, done chan struct{}) {
	defer close(done)
	if !s.state.shared {
		return
	}
	t := time.NewTicker(storeProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if s.state.reached.Load() { // before, retryStore is asking
				_ = s.state.async.Probe(context.Background())
			}
		}
	}
}

// storeHealth follows the store going down and coming back; when it
// comes back, each shard writes the leases and user slots it handed out
// meanwhile.
//
// Reports may arrive out of order (each comes from the goroutine that
// saw the change): one the queue no longer agrees with is stale, and
// the report of the later change follows it.
func (s *Server) storeHealth(up bool) {
	s.state.healthMu.Lock()
	if s.state.async.Up() != up {
		s.state.healthMu.Unlock()
		return
	}
	s.storeUp.Store(up)
	s.state.healthMu.Unlock()
	if !up {
		s.log.Warn("store unreachable", zap.String("outage_policy", s.outagePolicy()))
		return
	}
	s.log.Info("store reachable again")
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.eachShard(ctx, func(sh *shard) { sh.reconcile(time.Now()) })
	}()
}

// refusingForOutage: new sessions are refused at once (CDN result 4)
// because the shared store is unreachable and the policy says refuse.
func (s *Server) refusingForOutage() bool {
	return s.state.shared && !s.storeUp.Load() && s.outagePolicy() == OutageRefuse
}

// outagePolicy is the configured policy, admit by default.
func (s *Server) outagePolicy() string {
	if p := s.config().Store.OutagePolicy; p != "" {
		return p
	}
	return OutageAdmit
}

// stopReconnect ends the attempts to reach a shared store that was
// unreachable at start. An attempt that has reached it finishes first,
// Acct-Stops of the recovered sessions included: so it is called before
// accounting stops. Run calls it, and closeStore, from Run's goroutine.
func (s *Server) stopReconnect() {
	if s.state.connectDone == nil {
		return
	}
	select {
	case <-s.state.stopConnect:
	default:
		close(s.state.stopConnect)
	}
	<-s.state.connectDone
}

// closeStore flushes the queued writes (bounded) and closes the store.
func (s *Server) closeStore() {
	if s.state.async == nil {
		return
	}
	s.stopReconnect()
	close(s.state.stopHealth)
	<-s.state.healthDone
	s.stopClaims()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.state.async.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("store writes not flushed at shutdown", zap.Error(err), zap.Int("queued", s.state.async.Depth()))
	}
	s.state.closeMu.Lock()
	s.state.closeDB()
	s.state.closeMu.Unlock()
}

// recordStart writes a subscriber's session once it is online.
func (sh *shard) recordStart(sub *subscriber, now time.Time) {
	a := sh.srv.state.async
	if a == nil {
		return
	}
	rec := store.SessionRecord{
		ID: sub.acctID, Node: sh.srv.state.node, TunnelID: sub.e.t.ID(), SessionID: sub.sess.ID,
		PeerTunnelID: sub.e.t.Peer().TunnelID, PeerSessionID: sub.sess.PeerID, Peer: sub.e.peer,
		User: sub.user, IPv4: sub.ipv4, IPv6: sub.ipv6, AcctSessionID: sub.acctID, Start: now,
	}
	if len(sub.class) > 0 {
		rec.Class = sub.class[0]
	}
	if err := a.SessionStart(rec); err != nil {
		sh.counters["store_errors"]++
	}
	sub.recorded = true
}

// recordUpdate writes a subscriber's counters, so a crash loses at
// most one interim interval of them.
func (sh *shard) recordUpdate(sub *subscriber, now time.Time) {
	a := sh.srv.state.async
	if a == nil || !sub.recorded {
		return
	}
	if dc, ok := sh.srv.dp.Counters(sub.key); ok {
		c := store.Counters{InOctets: dc.RxBytes, OutOctets: dc.TxBytes, InPackets: dc.RxPackets, OutPackets: dc.TxPackets}
		if err := a.SessionUpdate(sub.acctID, c, now); err != nil {
			sh.counters["store_errors"]++
		}
	}
}

// recordStop closes a subscriber's session record with its counters.
func (sh *shard) recordStop(sub *subscriber, cause aaa.TerminateCause, now time.Time) {
	a := sh.srv.state.async
	if a == nil || !sub.recorded {
		return
	}
	var c store.Counters
	if dc, ok := sh.srv.dp.Counters(sub.key); ok {
		c = store.Counters{InOctets: dc.RxBytes, OutOctets: dc.TxBytes, InPackets: dc.RxPackets, OutPackets: dc.TxPackets}
	}
	if err := a.SessionStop(sub.acctID, cause.String(), c, now); err != nil {
		sh.counters["store_errors"]++
	}
}
