package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
)

// pwServer holds the sockets and devices pseudowires and static tunnels
// need beyond the listeners: sockets per namespace, encapsulation and
// local address, TAP devices, and the static sessions installed.
type pwServer struct {
	mu      sync.Mutex
	socks   map[sockKey]*datapath.Socket
	taps    map[tapKey]bool
	statics map[staticKey]staticSession
	// captures are the static sessions being captured, by session ID.
	captures map[uint32]*capture
	// meta maps a socket to its encapsulation and namespace; read for
	// every control message, so it is replaced whole.
	meta atomic.Pointer[map[*datapath.Socket]sockMeta]
	// staticIDs are the session IDs static sessions use: dynamic
	// sessions stay clear of them.
	staticIDs atomic.Pointer[map[uint32]bool]
	stopped   atomic.Bool
}

type sockKey struct {
	netns, encap string
	local        netip.AddrPort
}

type tapKey struct{ netns, name string }

type sockMeta struct {
	encap wire.Encap
	netns string
}

func (s *Server) encapOf(sk *datapath.Socket) wire.Encap {
	if m := s.pw.meta.Load(); m != nil {
		return (*m)[sk].encap
	}
	return wire.EncapUDP
}

func (s *Server) socketNetns(sk *datapath.Socket) string {
	if m := s.pw.meta.Load(); m != nil {
		return (*m)[sk].netns
	}
	return ""
}

func (s *Server) staticSessionID(id uint32) bool {
	if m := s.pw.staticIDs.Load(); m != nil {
		return (*m)[id]
	}
	return false
}

// noteSocket records a socket's encapsulation and namespace; s.pw.mu held.
func (s *Server) noteSocket(sk *datapath.Socket, m sockMeta) {
	next := map[*datapath.Socket]sockMeta{}
	if old := s.pw.meta.Load(); old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[sk] = m
	s.pw.meta.Store(&next)
}

// listen opens one listen entry: "host:port" (UDP) or "ip:ADDR" (L2TPv3
// over IP, protocol 115).
func (s *Server) listen(eng *datapath.Engine, addr string) (*datapath.Socket, error) {
	if rest, ok := strings.CutPrefix(addr, "ip:"); ok {
		a, err := netip.ParseAddr(strings.Trim(rest, "[]"))
		if err != nil {
			return nil, fmt.Errorf("control: listen %q: %w", addr, err)
		}
		return s.openSocket(eng, "", EncapIP, netip.AddrPortFrom(a, 0))
	}
	conn, err := listenUDP(addr)
	if err != nil {
		return nil, err
	}
	sk, err := eng.AddSocket(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return sk, nil
}

// openSocket opens (once) a socket in a namespace: UDP bound to local,
// or raw IP protocol 115 bound to local's address.
func (s *Server) openSocket(eng *datapath.Engine, netns, encap string, local netip.AddrPort) (*datapath.Socket, error) {
	s.pw.mu.Lock()
	defer s.pw.mu.Unlock()
	if s.pw.socks == nil {
		s.pw.socks = map[sockKey]*datapath.Socket{}
	}
	k := sockKey{netns: netns, encap: encap, local: local}
	if sk := s.pw.socks[k]; sk != nil {
		return sk, nil
	}
	var sk *datapath.Socket
	err := datapath.InNetns(netns, func() error {
		var err error
		if encap == EncapIP {
			sk, err = eng.AddIPSocket(local.Addr())
			return err
		}
		conn, err := listenUDP(local.String())
		if err != nil {
			return err
		}
		if sk, err = eng.AddSocket(conn); err != nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	s.pw.socks[k] = sk
	m := sockMeta{netns: netns}
	if encap == EncapIP {
		m.encap = wire.EncapIP
	}
	s.noteSocket(sk, m)
	return sk, nil
}

// pwSocket finds the socket a pseudowire toward peer sends from: in the
// default namespace a UDP listener that covers local serves, otherwise
// one is opened on local (or the unspecified address) port 1701.
func (s *Server) pwSocket(netns, encap string, local, peer netip.Addr) (*datapath.Socket, error) {
	if s.eng == nil {
		return nil, errors.New("control: no datapath")
	}
	if !local.IsValid() {
		local = netip.IPv4Unspecified()
		if peer.Unmap().Is6() {
			local = netip.IPv6Unspecified()
		}
	}
	port := uint16(1701)
	if encap == EncapIP {
		port = 0
	}
	if netns == "" && encap == EncapUDP {
		if sk := s.listenerFor(local, port); sk != nil {
			return sk, nil
		}
	}
	return s.openSocket(s.eng, netns, encap, netip.AddrPortFrom(local, port))
}

// listenerFor is a UDP listener of the default namespace bound to local
// (or to the unspecified address of its family) and port. With local
// unspecified any listener of its family on port serves: routing then
// picks the source address, as for the unspecified listener.
func (s *Server) listenerFor(local netip.Addr, port uint16) *datapath.Socket {
	s.sockMu.Lock()
	defer s.sockMu.Unlock()
	local = local.Unmap()
	var fallback *datapath.Socket
	for _, sk := range s.socks {
		if s.encapOf(sk) != wire.EncapUDP {
			continue
		}
		ua, ok := sk.LocalAddr().(*net.UDPAddr)
		if !ok {
			continue
		}
		ap := ua.AddrPort()
		a := ap.Addr().Unmap()
		if ap.Port() != port || a.Is4() != local.Is4() {
			continue
		}
		if a == local || a.IsUnspecified() {
			return sk
		}
		if local.IsUnspecified() && fallback == nil {
			fallback = sk
		}
	}
	return fallback
}

// openTAP opens (once) a pseudowire's TAP device in its namespace.
func (s *Server) openTAP(netns, name string, mtu int) error {
	s.pw.mu.Lock()
	defer s.pw.mu.Unlock()
	k := tapKey{netns, name}
	if s.pw.taps[k] {
		return nil
	}
	if err := datapath.InNetns(netns, func() error { return s.eng.OpenTAP(name, mtu) }); err != nil {
		return err
	}
	if s.pw.taps == nil {
		s.pw.taps = map[tapKey]bool{}
	}
	s.pw.taps[k] = true
	return nil
}

func (s *Server) closeTAP(netns, name string) {
	s.pw.mu.Lock()
	defer s.pw.mu.Unlock()
	k := tapKey{netns, name}
	if !s.pw.taps[k] {
		return
	}
	delete(s.pw.taps, k)
	if err := s.eng.CloseTAP(name); err != nil {
		s.log.Warn("pseudowire: close TAP", zap.String("tap", name), zap.Error(err))
	}
}

// startPseudowires opens what the configured pseudowires and static
// tunnels need and installs the static sessions (before the shards run).
func (s *Server) startPseudowires(cfg *Config) error {
	for _, pw := range cfg.Pseudowires {
		if err := s.openTAP(pw.Netns, pw.TAP, pw.MTU); err != nil {
			return fmt.Errorf("control: pseudowire %s: TAP %s: %w", pw.Name, pw.TAP, err)
		}
		if pw.Netns != "" || pw.Encap == EncapIP {
			// The peer's SCCRQ needs somewhere to arrive.
			if _, err := s.pwSocket(pw.Netns, pw.Encap, pw.Local, pw.Peer); err != nil {
				return fmt.Errorf("control: pseudowire %s: socket: %w", pw.Name, err)
			}
		}
	}
	for _, st := range cfg.StaticTunnels {
		for _, ss := range st.Sessions {
			if err := s.installStatic(st, ss); err != nil {
				return err
			}
		}
	}
	s.updateStaticIDs()
	return nil
}

// registerPseudowires hands each pseudowire and quiescent tunnel to the
// shard of its peer.
func (s *Server) registerPseudowires(ctx context.Context, cfg *Config) {
	for _, pw := range cfg.Pseudowires {
		s.onPeerShard(ctx, pw.Peer, func(sh *shard) { sh.addPW(pw, time.Now()) })
	}
	for _, st := range cfg.StaticTunnels {
		if st.Hello {
			s.onPeerShard(ctx, st.Peer, func(sh *shard) { sh.refDialer(st.dialKey(), st.Name, time.Now()); sh.schedulePW(time.Now()) })
		}
	}
}

// onPeerShard runs fn in the shard that owns peer's tunnels and waits.
func (s *Server) onPeerShard(ctx context.Context, peer netip.Addr, fn func(*shard)) {
	sh := s.shards[s.peerShard(peer)]
	done := make(chan struct{})
	select {
	case sh.cmd <- func() { fn(sh); close(done) }:
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// stopPseudowires stops redialing before the tunnels are closed.
func (s *Server) stopPseudowires(ctx context.Context) {
	s.pw.stopped.Store(true)
	_ = s.eachShard(ctx, func(sh *shard) {
		sh.pw.dialers = map[dialKey]*dialer{}
		for _, l := range sh.pw.links {
			l.cfg.Initiate = false
		}
	})
}
