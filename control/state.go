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
}

// stateStore is the Server's persistence: the store and the queue that
// keeps every write off the shards.
type stateStore struct {
	s     store.Store
	async *store.Async
	node  string
	close func()
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
	switch cfg.Backend {
	case "", "memory":
		st = memory.New(memory.Config{})
	case "postgres":
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
	for _, o := range orphans {
		s.log.Info("closing a session left open by the previous run", zap.String("acct_session_id", o.AcctSessionID),
			zap.String("user", o.User), zap.Stringer("ipv4", o.IPv4))
		if s.aaa.acct != nil {
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
			if err := s.aaa.acct.Send(rec); err != nil {
				s.log.Error("accounting Stop for a recovered session lost", zap.String("acct_session_id", o.AcctSessionID), zap.Error(err))
			}
		}
	}
	async, err := store.NewAsync(st, store.AsyncConfig{
		Writer:  fmt.Sprintf("%s/%d", node, epoch),
		OnError: func(err error) { s.log.Warn("store write failed, retrying", zap.Error(err)) },
	})
	if err != nil {
		closeFn()
		return fmt.Errorf("control: store: %w", err)
	}
	s.state = stateStore{s: st, async: async, node: node, close: closeFn}
	s.log.Info("store open", zap.String("backend", cfg.Backend), zap.String("node", node), zap.Int("recovered_sessions", len(orphans)))
	return nil
}

// closeStore flushes the queued writes (bounded) and closes the store.
func (s *Server) closeStore() {
	if s.state.async == nil {
		return
	}
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
