package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/datapath"
)

// staticKey names a static session: its tunnel and its session ID.
type staticKey struct {
	tunnel string
	id     uint32
}

// staticSession is an installed static session and where it came from.
type staticSession struct {
	st StaticTunnel
	ss StaticSession
	at time.Time
}

func kindOf(t string) datapath.Kind {
	if t == PWVLAN {
		return datapath.KindVLAN
	}
	return datapath.KindEthernet
}

// installStatic opens a static session's socket and TAP and installs it
// in the datapath (RFC 3931 §3.1: no control connection sets it up).
func (s *Server) installStatic(st StaticTunnel, ss StaticSession) error {
	fail := func(err error) error {
		return fmt.Errorf("control: static tunnel %s session %d: %w", st.Name, ss.SessionID, err)
	}
	localPort, peerPort := st.LocalPort, st.PeerPort
	if st.Encap == EncapIP {
		localPort, peerPort = 0, 0
	}
	var sk *datapath.Socket
	if st.Netns == "" && st.Encap == EncapUDP {
		sk = s.listenerFor(st.Local, localPort)
	}
	if sk == nil {
		var err error
		if sk, err = s.openSocket(s.eng, st.Netns, st.Encap, netip.AddrPortFrom(st.Local, localPort)); err != nil {
			return fail(err)
		}
	}
	if err := s.openTAP(st.Netns, ss.TAP, ss.MTU); err != nil {
		return fail(err)
	}
	ds := datapath.Session{
		Key:                datapath.SessionKey{Version: 3, Session: ss.SessionID},
		PeerSession:        ss.PeerSessionID,
		Peer:               netip.AddrPortFrom(st.Peer, peerPort),
		Local:              st.Local,
		Socket:             sk,
		Cookie:             ss.Cookie,
		PeerCookie:         ss.PeerCookie,
		L2SpecificSublayer: ss.L2SpecificSublayer,
		Kind:               kindOf(ss.Type),
		TAP:                ss.TAP,
	}
	if ds.Kind == datapath.KindVLAN {
		ds.VLAN = ss.VLAN
	}
	if err := s.dp.Install(ds); err != nil {
		return fail(err)
	}
	s.pw.mu.Lock()
	if s.pw.statics == nil {
		s.pw.statics = map[staticKey]staticSession{}
	}
	s.pw.statics[staticKey{st.Name, ss.SessionID}] = staticSession{st: st, ss: ss, at: time.Now()}
	s.pw.mu.Unlock()
	s.log.Info("static session installed", zap.String("static_tunnel", st.Name), zap.Uint32("session_id", ss.SessionID),
		zap.Uint32("peer_session_id", ss.PeerSessionID), zap.String("peer", st.Peer.String()), zap.String("tap", ss.TAP))
	return nil
}

func (s *Server) removeStatic(k staticKey) {
	s.pw.mu.Lock()
	old, ok := s.pw.statics[k]
	delete(s.pw.statics, k)
	s.pw.mu.Unlock()
	if !ok {
		return
	}
	s.dp.Remove(datapath.SessionKey{Version: 3, Session: k.id})
	s.log.Info("static session removed", zap.String("static_tunnel", k.tunnel), zap.Uint32("session_id", k.id), zap.String("tap", old.ss.TAP))
}

func (s *Server) updateStaticIDs() {
	s.pw.mu.Lock()
	ids := make(map[uint32]bool, len(s.pw.statics))
	for k := range s.pw.statics {
		ids[k.id] = true
	}
	s.pw.mu.Unlock()
	s.pw.staticIDs.Store(&ids)
}

// staticSessionInfos lists the static sessions for show sessions.
func (s *Server) staticSessionInfos(now time.Time) []SessionInfo {
	s.pw.mu.Lock()
	defer s.pw.mu.Unlock()
	var out []SessionInfo
	for k, v := range s.pw.statics {
		peerPort := v.st.PeerPort
		if v.st.Encap == EncapIP {
			peerPort = 0
		}
		si := SessionInfo{
			SessionID: k.id, PeerSessionID: v.ss.PeerSessionID, Peer: netip.AddrPortFrom(v.st.Peer, peerPort).String(),
			Version: 3, State: "static", Since: v.at, UptimeSeconds: now.Sub(v.at).Seconds(),
			Kind: v.ss.Type, StaticTunnel: k.tunnel, TAP: v.ss.TAP, VLAN: v.ss.VLAN,
			CookieLen: len(v.ss.Cookie), PeerCookieLen: len(v.ss.PeerCookie),
		}
		if c, ok := s.dp.Counters(datapath.SessionKey{Version: 3, Session: k.id}); ok {
			si.RxPackets, si.RxBytes, si.TxPackets, si.TxBytes = c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes
		}
		out = append(out, si)
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return int(a.SessionID) - int(b.SessionID) })
	return out
}

func staticsByKey(c *Config) map[staticKey]staticSession {
	m := map[staticKey]staticSession{}
	for _, st := range c.StaticTunnels {
		for _, ss := range st.Sessions {
			m[staticKey{st.Name, ss.SessionID}] = staticSession{st: st, ss: ss}
		}
	}
	return m
}

func sameStatic(a, b staticSession) bool {
	ta, tb := a.st, b.st
	ta.Sessions, tb.Sessions, ta.Hello, tb.Hello = nil, nil, false, false
	return ta.Name == tb.Name && ta.Peer == tb.Peer && ta.Local == tb.Local && ta.PeerPort == tb.PeerPort && ta.LocalPort == tb.LocalPort &&
		ta.Encap == tb.Encap && ta.Netns == tb.Netns && a.ss.SessionID == b.ss.SessionID && a.ss.PeerSessionID == b.ss.PeerSessionID &&
		slices.Equal(a.ss.Cookie, b.ss.Cookie) && slices.Equal(a.ss.PeerCookie, b.ss.PeerCookie) && a.ss.L2SpecificSublayer == b.ss.L2SpecificSublayer &&
		a.ss.Type == b.ss.Type && a.ss.TAP == b.ss.TAP && a.ss.VLAN == b.ss.VLAN && a.ss.MTU == b.ss.MTU
}

func samePW(a, b Pseudowire) bool { return a == b }

// diffPseudowires lists what a reload changes in pseudowires and static
// tunnels.
func diffPseudowires(a, b *Config, add func(string, ...any)) {
	ap, bp := map[string]Pseudowire{}, map[string]Pseudowire{}
	for _, p := range a.Pseudowires {
		ap[p.Name] = p
	}
	for _, p := range b.Pseudowires {
		bp[p.Name] = p
	}
	for _, n := range sortedKeys(bp) {
		if p, ok := ap[n]; !ok {
			add("pseudowire %s added", n)
		} else if !samePW(p, bp[n]) {
			add("pseudowire %s changed: its session is set up again", n)
		}
	}
	for _, n := range sortedKeys(ap) {
		if _, ok := bp[n]; !ok {
			add("pseudowire %s removed", n)
		}
	}
	as, bs := staticsByKey(a), staticsByKey(b)
	for k, v := range bs {
		if o, ok := as[k]; !ok {
			add("static tunnel %s session %d added", k.tunnel, k.id)
		} else if !sameStatic(o, v) {
			add("static tunnel %s session %d changed", k.tunnel, k.id)
		}
	}
	for k := range as {
		if _, ok := bs[k]; !ok {
			add("static tunnel %s session %d removed", k.tunnel, k.id)
		}
	}
	ah, bh := helloTunnels(a), helloTunnels(b)
	for n := range bh {
		if o, ok := ah[n]; !ok || o.dialKey() != bh[n].dialKey() {
			add("static tunnel %s hello on", n)
		}
	}
	for n := range ah {
		if o, ok := bh[n]; !ok || o.dialKey() != ah[n].dialKey() {
			add("static tunnel %s hello off", n)
		}
	}
}

func helloTunnels(c *Config) map[string]StaticTunnel {
	m := map[string]StaticTunnel{}
	for _, st := range c.StaticTunnels {
		if st.Hello {
			m[st.Name] = st
		}
	}
	return m
}

// applyPseudowires brings pseudowires and static tunnels from a to b: a
// removed or changed static session leaves the datapath, a new or
// changed one is installed; a removed or changed pseudowire's call is
// cleared and a new one placed.
func (s *Server) applyPseudowires(ctx context.Context, a, b *Config) error {
	if s.eng == nil {
		return nil
	}
	var errs []error
	as, bs := staticsByKey(a), staticsByKey(b)
	for k, o := range as {
		if n, ok := bs[k]; !ok || !sameStatic(o, n) {
			s.removeStatic(k)
		}
	}
	live := s.liveSessionIDs(ctx)
	for k, n := range bs {
		if o, ok := as[k]; !ok || !sameStatic(o, n) {
			if live[k.id] {
				errs = append(errs, fmt.Errorf("control: static tunnel %s session %d: the ID is in use by a dynamic session; not installed", k.tunnel, k.id))
				continue
			}
			if err := s.installStatic(n.st, n.ss); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.updateStaticIDs()
	ap, bp := map[string]Pseudowire{}, map[string]Pseudowire{}
	for _, p := range a.Pseudowires {
		ap[p.Name] = p
	}
	for _, p := range b.Pseudowires {
		bp[p.Name] = p
	}
	for n, o := range ap {
		if p, ok := bp[n]; !ok || !samePW(o, p) {
			s.onPeerShard(ctx, o.Peer, func(sh *shard) { sh.dropPW(n, time.Now()) })
		}
	}
	for n, p := range bp {
		if o, ok := ap[n]; ok && samePW(o, p) {
			continue
		}
		if err := s.openTAP(p.Netns, p.TAP, p.MTU); err != nil {
			errs = append(errs, fmt.Errorf("control: pseudowire %s: TAP %s: %w", p.Name, p.TAP, err))
			continue
		}
		if p.Netns != "" || p.Encap == EncapIP {
			if _, err := s.pwSocket(p.Netns, p.Encap, p.Local, p.Peer); err != nil {
				errs = append(errs, fmt.Errorf("control: pseudowire %s: socket: %w", p.Name, err))
				continue
			}
		}
		s.onPeerShard(ctx, p.Peer, func(sh *shard) { sh.addPW(p, time.Now()) })
	}
	ah, bh := helloTunnels(a), helloTunnels(b)
	for n, o := range ah {
		if st, ok := bh[n]; !ok || st.dialKey() != o.dialKey() {
			s.onPeerShard(ctx, o.Peer, func(sh *shard) { sh.unrefDialer(o.dialKey(), time.Now()) })
		}
	}
	for n, st := range bh {
		if o, ok := ah[n]; !ok || st.dialKey() != o.dialKey() {
			s.onPeerShard(ctx, st.Peer, func(sh *shard) { sh.refDialer(st.dialKey(), st.Name, time.Now()); sh.schedulePW(time.Now()) })
		}
	}
	s.closeUnusedTAPs(b)
	return errors.Join(errs...)
}

// liveSessionIDs are the session IDs of the dynamic sessions now.
func (s *Server) liveSessionIDs(ctx context.Context) map[uint32]bool {
	ids := map[uint32]bool{}
	var mu sync.Mutex
	_ = s.eachShard(ctx, func(sh *shard) {
		for _, e := range sh.tunnels {
			if e.t.Version() != 3 {
				continue
			}
			e.t.Sessions(func(ss *tunnel.Session) {
				mu.Lock()
				ids[ss.ID] = true
				mu.Unlock()
			})
		}
	})
	return ids
}

// closeUnusedTAPs closes the TAP devices no configuration uses any more.
func (s *Server) closeUnusedTAPs(c *Config) {
	used := map[tapKey]bool{}
	for _, p := range c.Pseudowires {
		used[tapKey{p.Netns, p.TAP}] = true
	}
	for _, st := range c.StaticTunnels {
		for _, ss := range st.Sessions {
			used[tapKey{st.Netns, ss.TAP}] = true
		}
	}
	s.pw.mu.Lock()
	var stale []tapKey
	for k := range s.pw.taps {
		if !used[k] {
			stale = append(stale, k)
		}
	}
	s.pw.mu.Unlock()
	for _, k := range stale {
		s.closeTAP(k.netns, k.name)
	}
}
