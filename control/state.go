package control

import (
	"context"
	"errors"
	"fmt"
	"os"
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
// keeps every write off the shards.
type stateStore struct {
	s     store.Store
	async *store.Async
	node  string
	close func()
	// shared: the store is a database other nodes may use, so leases
	// and user slots are claimed in it before a session gets them.
	shared bool
	// orphans are the sessions the previous run left open, for
	// stopRecovered.
	orphans []store.SessionRecord
	// stopHealth ends the health probe; healthDone is closed when it
	// has.
	stopHealth chan struct{}
	healthDone chan struct{}
}

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

// openStore opens the configured store, registers this node and closes
// what it left open when it last stopped without a shutdown: each such
// session gets an Acct-Stop with cause NAS-Reboot (RFC 2866 §5.10) and
// its leases and user slots are freed.
func (s *Server) openStore(ctx context.Context) error {
	cfg := s.config().Store
	var st store.Store
	closeFn := func() {}
	shared := cfg.Backend == "postgres"
	switch {
	case s.sharedStore != nil:
		st, shared = s.sharedStore, true
	case cfg.Backend == "" || cfg.Backend == "memory":
		st = memory.New(memory.Config{})
	case cfg.Backend == "postgres":
		pg, err := postgres.Open(ctx, cfg.URL, postgres.Config{OnDropped: func(w store.Write, err error) {
			s.log.Error("store refused a write", zap.Error(err))
		}})
		if err != nil {
			return fmt.Errorf("control: store: %w", err)
		}
		st, closeFn = pg, pg.Close
	default:
		return fmt.Errorf("control: unknown store backend %q", cfg.Backend)
	}
	node := s.nodeID()
	epoch, err := st.RegisterNode(ctx, node)
	if err != nil {
		closeFn()
		return fmt.Errorf("control: store: register node %s: %w", node, err)
	}
	orphans, err := st.Recover(ctx, node, time.Now())
	if err != nil {
		closeFn()
		return fmt.Errorf("control: store: recover node %s: %w", node, err)
	}
	async, err := store.NewAsync(st, store.AsyncConfig{
		Writer:   fmt.Sprintf("%s/%d", node, epoch),
		OnError:  func(err error) { s.log.Warn("store write failed, retrying", zap.Error(err)) },
		OnHealth: s.storeHealth,
	})
	if err != nil {
		closeFn()
		return fmt.Errorf("control: store: %w", err)
	}
	s.state = stateStore{s: st, async: async, node: node, close: closeFn, shared: shared, orphans: orphans,
		stopHealth: make(chan struct{}), healthDone: make(chan struct{})}
	s.storeUp.Store(true)
	if s.state.shared {
		s.startClaims()
	}
	go s.probeStore(s.state.stopHealth, s.state.healthDone)
	s.log.Info("store open", zap.String("backend", cfg.Backend), zap.String("node", node), zap.Int("recovered_sessions", len(orphans)),
		zap.String("outage_policy", s.outagePolicy()))
	return nil
}

// newSpool is the accounting spool: the store's accounting queue when
// the store is shared (and so durable), else memory.
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
	})
	if err != nil {
		return nil, err
	}
	if n := sp.Len(); n > 0 {
		s.log.Info("accounting records left by the previous run", zap.Int("records", n))
	}
	return sp, nil
}

// stopRecovered sends an Acct-Stop with cause NAS-Reboot for each
// session the previous run left open.
func (s *Server) stopRecovered() {
	orphans := s.state.orphans
	s.state.orphans = nil
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
			_ = s.state.async.Probe(context.Background())
		}
	}
}

// storeHealth follows the store going down and coming back; when it
// comes back, each shard writes the leases and user slots it handed out
// meanwhile.
func (s *Server) storeHealth(up bool) {
	s.storeUp.Store(up)
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

// closeStore flushes the queued writes (bounded) and closes the store.
func (s *Server) closeStore() {
	if s.state.async == nil {
		return
	}
	close(s.state.stopHealth)
	<-s.state.healthDone
	s.stopClaims()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.state.async.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("store writes not flushed at shutdown", zap.Error(err), zap.Int("queued", s.state.async.Depth()))
	}
	s.state.close()
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
