package control

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/datapath"
)

// A listener removed by a reload drains: the tunnels it carries keep
// running (their sessions are subscribers), no new tunnel is accepted on
// it, and its socket is closed when the last of them ends. An operator
// who wants them gone at once clears them (l2tpctl clear tunnel); the
// dry run lists them.

// listener is one bound listen address.
type listener struct {
	addr     string // as configured
	sk       *datapath.Socket
	draining bool
}

// listenerSet is the Server's listeners, guarded by Server.sockMu.
type listenerSet struct {
	byAddr map[string]*listener
	// draining is read by the shards on every new SCCRQ; replaced
	// whole (copy on write) under sockMu.
	draining atomic.Pointer[map[*datapath.Socket]bool]
	// retired are removed listeners that could not be closed.
	retired []*datapath.Socket
}

// socketDraining reports whether sk belongs to a removed listener.
func (s *Server) socketDraining(sk *datapath.Socket) bool {
	m := s.listeners.draining.Load()
	return m != nil && (*m)[sk]
}

// addListenerLocked records a bound socket for addr (sockMu held).
func (s *Server) addListenerLocked(addr string, sk *datapath.Socket) {
	if s.listeners.byAddr == nil {
		s.listeners.byAddr = make(map[string]*listener)
	}
	s.listeners.byAddr[addr] = &listener{addr: addr, sk: sk}
	s.socks = append(s.socks, sk)
}

func (s *Server) setDrainingLocked() {
	m := make(map[*datapath.Socket]bool)
	for _, sk := range s.listeners.retired {
		m[sk] = true
	}
	for _, l := range s.listeners.byAddr {
		if l.draining {
			m[l.sk] = true
		}
	}
	s.listeners.draining.Store(&m)
}

// bindListeners binds addrs for a reload. A removed listener that is
// still draining is taken back as it is. On any error nothing is kept.
func (s *Server) bindListeners(addrs []string) ([]*listener, error) {
	var out, fresh []*listener
	for _, addr := range addrs {
		s.sockMu.Lock()
		l := s.listeners.byAddr[addr]
		s.sockMu.Unlock()
		if l != nil {
			out = append(out, l) // draining: revived by applyListeners
			continue
		}
		sk, err := s.listen(s.eng, addr)
		if err == nil {
			nl := &listener{addr: addr, sk: sk}
			out, fresh = append(out, nl), append(fresh, nl)
			continue
		}
		for _, l := range fresh {
			_ = l.sk.Release()
		}
		return nil, fmt.Errorf("control: listen %s: %w", addr, err)
	}
	return out, nil
}

// applyListeners puts bound listeners in service and drains removed ones.
func (s *Server) applyListeners(added []*listener, removed []string) {
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	for _, l := range added {
		if cur := s.listeners.byAddr[l.addr]; cur != nil {
			cur.draining = false
			s.log.Info("listener back in service", zap.String("addr", l.addr))
			continue
		}
		s.listeners.retired = slices.DeleteFunc(s.listeners.retired, func(sk *datapath.Socket) bool { return sk == l.sk })
		s.addListenerLocked(l.addr, l.sk)
		s.log.Info("listening", zap.String("addr", l.sk.LocalAddr().String()))
	}
	for _, addr := range removed {
		if l := s.listeners.byAddr[addr]; l != nil && !l.draining {
			l.draining = true
			s.log.Info("listener removed: its tunnels are kept until they end", zap.String("addr", addr))
		}
	}
	s.setDrainingLocked()
}

// reapListeners closes the removed listeners no tunnel uses any more.
func (s *Server) reapListeners(ctx context.Context) error {
	s.sockMu.Lock()
	var drain []*listener
	for _, l := range s.listeners.byAddr {
		if l.draining {
			drain = append(drain, l)
		}
	}
	s.sockMu.Unlock()
	if len(drain) == 0 {
		return nil
	}
	var mu sync.Mutex
	used := map[*datapath.Socket]int{}
	if err := s.eachShard(ctx, func(sh *shard) {
		for _, e := range sh.tunnels {
			mu.Lock()
			used[e.sock]++
			mu.Unlock()
		}
	}); err != nil {
		return err
	}
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	for _, l := range drain {
		if used[l.sk] > 0 || !l.draining || s.listeners.byAddr[l.addr] != l {
			continue
		}
		if err := l.sk.Release(); err != nil {
			// An ip: socket (it may serve pseudowires too) stays
			// open until a restart, taking no new tunnel.
			s.log.Warn("a removed listener stays open until restart", zap.String("addr", l.addr), zap.Error(err))
			s.listeners.retired = append(s.listeners.retired, l.sk)
		}
		delete(s.listeners.byAddr, l.addr)
		s.socks = slices.DeleteFunc(s.socks, func(sk *datapath.Socket) bool { return sk == l.sk })
		s.log.Info("removed listener closed", zap.String("addr", l.addr))
	}
	s.setDrainingLocked()
	return nil
}

// tunnelsOnListeners lists the tunnels carried by the listeners addrs.
func (s *Server) tunnelsOnListeners(ctx context.Context, addrs []string) ([]uint32, error) {
	s.sockMu.Lock()
	socks := map[*datapath.Socket]bool{}
	for _, a := range addrs {
		if l := s.listeners.byAddr[a]; l != nil {
			socks[l.sk] = true
		}
	}
	s.sockMu.Unlock()
	out := []uint32{}
	if len(socks) == 0 {
		return out, nil
	}
	var mu sync.Mutex
	err := s.eachShard(ctx, func(sh *shard) {
		for id, e := range sh.tunnels {
			if socks[e.sock] {
				mu.Lock()
				out = append(out, id)
				mu.Unlock()
			}
		}
	})
	slices.Sort(out)
	return out, err
}

// maintainInterval is how often removed listeners and drained pools are
// checked for their last user.
const maintainInterval = time.Second

// maintain runs until ctx ends: it closes removed listeners and removes
// the kernel routes of drained pools once nothing uses them.
func (s *Server) maintain(ctx context.Context) {
	t := time.NewTicker(maintainInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.reloadMu.Lock()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = s.reapListeners(cctx)
		cancel()
		s.syncRoutes()
		s.reloadMu.Unlock()
		s.logDrops(time.Now())
	}
}
