package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"sync"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/pool"
	"github.com/l2tpd/l2tpd/ppp"
)

// snapshot is one immutable running configuration with what is built
// from it: the pools and the local users.
type snapshot struct {
	cfg   *Config
	pools map[string]*pool.Pool
	users ppp.LocalUsers
	hash  string
}

func (s *Server) config() *Config { return s.snap.Load().cfg }

// ConfigHash identifies the running configuration (for metrics and logs).
func (s *Server) ConfigHash() string { return s.snap.Load().hash }

func configHash(cfg *Config) string {
	b, _ := json.Marshal(cfg)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// buildSnapshot makes the pools of cfg. Pools whose definition did not
// change are carried over from old with their leases; a changed pool is
// made anew with the live leases that still fit reserved in it.
func buildSnapshot(cfg Config, old *snapshot) (*snapshot, error) {
	if err := validateLAC(&cfg.LAC); err != nil {
		return nil, err
	}
	c := cfg
	snap := &snapshot{cfg: &c, pools: make(map[string]*pool.Pool), users: ppp.LocalUsers(cfg.Users), hash: configHash(&c)}
	if snap.users == nil {
		snap.users = ppp.LocalUsers{}
	}
	for _, pc := range cfg.Pools {
		if old != nil {
			if prev := old.poolConfig(pc.Name); prev != nil && samePool(*prev, pc) {
				snap.pools[pc.Name] = old.pools[pc.Name]
				continue
			}
		}
		var r4 []pool.Range
		for _, r := range pc.IPv4 {
			r4 = append(r4, pool.Range{First: r.First, Last: r.Last})
		}
		p, err := pool.New(pc.Name, r4, pc.IPv6, pc.IPv6Length)
		if err != nil {
			return nil, fmt.Errorf("control: pool %s: %w", pc.Name, err)
		}
		snap.pools[pc.Name] = p
	}
	return snap, nil
}

func (s *snapshot) poolConfig(name string) *Pool {
	for i := range s.cfg.Pools {
		if s.cfg.Pools[i].Name == name {
			return &s.cfg.Pools[i]
		}
	}
	return nil
}

func samePool(a, b Pool) bool {
	return a.Name == b.Name && slices.Equal(a.IPv4, b.IPv4) && a.IPv6 == b.IPv6 && a.IPv6Length == b.IPv6Length
}

// Diff is what a reload changes and what it touches.
type Diff struct {
	Changes []string `json:"changes"`
	// RequiresRestart lists changes a running daemon cannot apply; a
	// reload containing any is rejected.
	RequiresRestart []string `json:"requires_restart,omitempty"`
	// AffectedTunnels are tunnels whose peer policy changed: they keep
	// the settings they started with until they reconnect.
	AffectedTunnels []uint32 `json:"affected_tunnels"`
	// DrainingSessions hold addresses from pools that were removed or
	// redefined: they keep them, no new lease comes from the old pool.
	DrainingSessions []uint32 `json:"draining_sessions"`
	// ListenerTunnels run over removed listeners: they are kept until
	// they end, and the socket closes with the last of them.
	ListenerTunnels []uint32 `json:"listener_tunnels"`
	Applied         bool     `json:"applied"`
	ConfigHash      string   `json:"config_hash"`
}

// Reload applies cfg as a diff against the running configuration, or
// with dryRun only reports the diff. New tunnels and sessions use the
// new settings at once; live ones keep theirs; removed pools drain.
func (s *Server) Reload(ctx context.Context, cfg Config, dryRun bool) (Diff, error) {
	// A reload waits for Run to have bound, opened and started
	// everything it would change.
	select {
	case <-s.ready:
	case <-ctx.Done():
		return Diff{}, fmt.Errorf("control: reload before start-up finished: %w", ctx.Err())
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	old := s.snap.Load()
	d := diffConfig(old.cfg, &cfg)
	d.ConfigHash = configHash(&cfg)
	if err := s.impact(ctx, old, &cfg, &d); err != nil {
		return d, err
	}
	removed := listenAdded(&cfg, old.cfg)
	lt, err := s.tunnelsOnListeners(ctx, removed)
	if err != nil {
		return d, err
	}
	d.ListenerTunnels = lt
	for _, a := range removed {
		for i, c := range d.Changes {
			if c == "listen "+a+" removed" {
				d.Changes[i] = fmt.Sprintf("listen %s removed: no new tunnels on it; its tunnels are kept until they end", a)
			}
		}
	}
	if len(d.RequiresRestart) > 0 {
		return d, fmt.Errorf("control: reload rejected: %v need a restart", d.RequiresRestart)
	}
	if dryRun {
		return d, nil
	}
	snap, err := buildSnapshot(cfg, old)
	if err != nil {
		return d, err
	}
	// New listeners are bound before anything changes: an address in
	// use rejects the reload whole.
	var added []*listener
	if s.eng != nil {
		if added, err = s.bindListeners(listenAdded(old.cfg, &cfg)); err != nil {
			return d, fmt.Errorf("control: reload rejected: %w", err)
		}
	}
	// RADIUS goes first: it is the part that can still fail (a DAE
	// address in use), and the new servers must be in place when the
	// shards see a configuration that names them.
	if s.aaa.stop != nil && (!radiusEqual(old.cfg.RADIUS, cfg.RADIUS) || old.cfg.HostName != cfg.HostName) {
		if err := s.applyRADIUS(old.cfg, &cfg); err != nil {
			for _, l := range added {
				if !l.draining {
					_ = l.sk.Release()
				}
			}
			return d, fmt.Errorf("control: reload rejected: %w", err)
		}
	}
	// Live leases of redefined pools are reserved in their successors so
	// no address is handed out twice; the sessions move to the new pool
	// when their address fits it, otherwise they stay with the old one
	// (which drains).
	for name, np := range snap.pools {
		op := old.pools[name]
		if op == nil || op == np {
			continue
		}
		for _, l := range op.Leases() {
			if l.Prefix.Bits() == 32 && np.Contains(l.Prefix.Addr()) {
				_ = np.Reserve(l.Prefix.Addr(), l.Owner)
			}
		}
	}
	for name, op := range old.pools {
		if snap.pools[name] != op {
			op.Drain()
			if pc := old.poolConfig(name); pc != nil {
				s.drainPool(op, *pc)
			}
		}
	}
	s.snap.Store(snap)
	err = s.eachShard(ctx, func(sh *shard) {
		for _, sub := range sh.subs {
			if sub.pool == nil {
				continue
			}
			np := snap.pools[sub.pool.Name()]
			if np != nil && np != sub.pool && sub.ipv4.IsValid() && np.Contains(sub.ipv4) {
				sub.pool.ReleaseIPv4(sub.ipv4)
				sub.pool = np
			}
		}
	})
	if s.eng != nil {
		s.applyListeners(added, removed)
		_ = s.reapListeners(ctx)
	}
	_ = s.syncRoutes()
	if perr := s.applyPseudowires(ctx, old.cfg, &cfg); perr != nil {
		s.log.Error("reload: pseudowires", zap.Error(perr))
		err = errors.Join(err, perr)
	}
	d.Applied = true
	s.log.Info("configuration reloaded", zap.String("config_hash", d.ConfigHash), zap.Strings("changes", d.Changes))
	return d, err
}

// limitChanges names each limit that differs, with both values.
func limitChanges(a, b Limits) []string {
	var out []string
	num := func(key string, x, y float64) {
		if x != y {
			out = append(out, fmt.Sprintf("%s %g -> %g", key, x, y))
		}
	}
	i := func(key string, x, y int) { num(key, float64(x), float64(y)) }
	i("max_tunnels", a.MaxTunnels, b.MaxTunnels)
	i("max_tunnels_per_peer", a.MaxTunnelsPerPeer, b.MaxTunnelsPerPeer)
	i("max_half_open_per_peer", a.MaxHalfOpenPerPeer, b.MaxHalfOpenPerPeer)
	i("max_sessions", a.MaxSessions, b.MaxSessions)
	i("max_sessions_per_tunnel", a.MaxSessionsPerTunnel, b.MaxSessionsPerTunnel)
	i("max_sessions_per_peer", a.MaxSessionsPerPeer, b.MaxSessionsPerPeer)
	i("max_sessions_in_setup", a.MaxSessionsInSetup, b.MaxSessionsInSetup)
	i("max_sessions_in_setup_per_peer", a.MaxSessionsInSetupPerPeer, b.MaxSessionsInSetupPerPeer)
	num("sccrq_rate", a.SCCRQRate, b.SCCRQRate)
	i("sccrq_burst", a.SCCRQBurst, b.SCCRQBurst)
	num("sccrq_rate_per_peer", a.SCCRQRatePerPeer, b.SCCRQRatePerPeer)
	i("sccrq_burst_per_peer", a.SCCRQBurstPerPeer, b.SCCRQBurstPerPeer)
	num("icrq_rate", a.ICRQRate, b.ICRQRate)
	i("icrq_burst", a.ICRQBurst, b.ICRQBurst)
	num("icrq_rate_per_peer", a.ICRQRatePerPeer, b.ICRQRatePerPeer)
	i("icrq_burst_per_peer", a.ICRQBurstPerPeer, b.ICRQBurstPerPeer)
	i("sessions_per_user", a.SessionsPerUser, b.SessionsPerUser)
	return out
}

func listenAdded(a, b *Config) []string {
	var out []string
	for _, l := range b.Listen {
		if !slices.Contains(a.Listen, l) {
			out = append(out, l)
		}
	}
	return out
}

// diffConfig lists the differences an operator cares about.
func diffConfig(a, b *Config) Diff {
	d := Diff{Changes: []string{}, AffectedTunnels: []uint32{}, DrainingSessions: []uint32{}, ListenerTunnels: []uint32{}}
	add := func(f string, args ...any) { d.Changes = append(d.Changes, fmt.Sprintf(f, args...)) }
	for _, l := range listenAdded(a, b) {
		add("listen %s added", l)
	}
	for _, l := range listenAdded(b, a) {
		add("listen %s removed", l)
	}
	if a.Shards != b.Shards {
		d.RequiresRestart = append(d.RequiresRestart, "control.shards")
	}
	if a.TUN != b.TUN {
		d.RequiresRestart = append(d.RequiresRestart, "tun")
	}
	// The sockets and the TUN are opened with their offloads once.
	if a.Datapath.DisableGSO != b.Datapath.DisableGSO {
		d.RequiresRestart = append(d.RequiresRestart, "datapath.gso")
	}
	if a.Datapath.DisableGRO != b.Datapath.DisableGRO {
		d.RequiresRestart = append(d.RequiresRestart, "datapath.gro")
	}
	if a.Datapath.DisableTUNOffload != b.Datapath.DisableTUNOffload {
		d.RequiresRestart = append(d.RequiresRestart, "datapath.tun_offload")
	}
	diffRADIUS(a, b, add)
	if a.Store != b.Store {
		d.RequiresRestart = append(d.RequiresRestart, "store")
	}
	if !reflect.DeepEqual(a.LAC, b.LAC) {
		// The access interfaces and the LAC engine are opened once.
		d.RequiresRestart = append(d.RequiresRestart, "lac")
	}
	if a.HostName != b.HostName {
		add("hostname %q -> %q (new tunnels)", a.HostName, b.HostName)
	}
	if a.ReceiveWindow != b.ReceiveWindow || a.Hello != b.Hello || a.RetransmitInitial != b.RetransmitInitial ||
		a.RetransmitCap != b.RetransmitCap || a.MaxRetransmits != b.MaxRetransmits || a.SessionSetupTimeout != b.SessionSetupTimeout {
		add("control channel timers or window changed (new tunnels)")
	}
	for _, c := range limitChanges(a.Limits, b.Limits) {
		add("limits.%s", c)
	}
	if !ppEqual(a.PPP, b.PPP) {
		add("ppp settings changed (new sessions)")
	}
	if a.PPP.LocalIPv4 != b.PPP.LocalIPv4 && b.PPP.LocalIPv4.IsValid() && a.TUN.Name != "" {
		add("ppp.local_ipv4 %s -> %s: added to the TUN; the old address stays on it for the live sessions until restart", a.PPP.LocalIPv4, b.PPP.LocalIPv4)
	}
	ap, bp := peersByName(a), peersByName(b)
	for _, n := range sortedKeys(bp) {
		if _, ok := ap[n]; !ok {
			add("peer %s added", n)
		} else if !peerEqual(ap[n], bp[n]) {
			add("peer %s changed", n)
		}
	}
	for _, n := range sortedKeys(ap) {
		if _, ok := bp[n]; !ok {
			add("peer %s removed", n)
		}
	}
	if !peerEqual(a.Default, b.Default) {
		add("default_peer changed")
	}
	apl, bpl := poolsByName(a), poolsByName(b)
	for _, n := range sortedKeys(bpl) {
		if p, ok := apl[n]; !ok {
			add("pool %s added", n)
		} else if !samePool(p, bpl[n]) {
			add("pool %s redefined: live leases kept, the old definition drains", n)
		}
	}
	for _, n := range sortedKeys(apl) {
		if _, ok := bpl[n]; !ok {
			add("pool %s removed: drains", n)
		}
	}
	if !maps.Equal(a.Users, b.Users) {
		add("local users changed (%d -> %d)", len(a.Users), len(b.Users))
	}
	diffPseudowires(a, b, add)
	return d
}

func ppEqual(a, b PPP) bool {
	return a.MRU == b.MRU && slices.Equal(a.Auth, b.Auth) && a.EchoInterval == b.EchoInterval && a.EchoFailures == b.EchoFailures &&
		a.LocalIPv4 == b.LocalIPv4 && slices.Equal(a.DNS, b.DNS) && a.IPv6 == b.IPv6 && a.Pool == b.Pool
}

func peerEqual(a, b Peer) bool {
	return a.Name == b.Name && a.HostName == b.HostName && slices.Equal(a.Addresses, b.Addresses) && a.Secret == b.Secret &&
		a.HideAVPs == b.HideAVPs && a.Reject == b.Reject && a.Renegotiate == b.Renegotiate && a.Pool == b.Pool
}

func peersByName(c *Config) map[string]Peer {
	m := make(map[string]Peer, len(c.Peers))
	for _, p := range c.Peers {
		m[p.Name] = p
	}
	return m
}

func poolsByName(c *Config) map[string]Pool {
	m := make(map[string]Pool, len(c.Pools))
	for _, p := range c.Pools {
		m[p.Name] = p
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	k := slices.Collect(maps.Keys(m))
	sort.Strings(k)
	return k
}

// impact finds the live tunnels whose peer policy changes and the
// sessions holding addresses from pools that drain.
func (s *Server) impact(ctx context.Context, old *snapshot, cfg *Config, d *Diff) error {
	var mu sync.Mutex
	return s.eachShard(ctx, func(sh *shard) {
		for id, e := range sh.tunnels {
			p := e.t.Peer()
			a, b := old.cfg.match(p.HostName, e.peer.Addr()), cfg.match(p.HostName, e.peer.Addr())
			if !peerEqual(a, b) {
				mu.Lock()
				d.AffectedTunnels = append(d.AffectedTunnels, id)
				mu.Unlock()
			}
		}
		for _, sub := range sh.subs {
			if sub.pool == nil || !sub.ipv4.IsValid() {
				continue
			}
			var np *Pool
			for i := range cfg.Pools {
				if cfg.Pools[i].Name == sub.pool.Name() {
					np = &cfg.Pools[i]
				}
			}
			op := old.poolConfig(sub.pool.Name())
			if np == nil || op == nil || !samePool(*op, *np) && !rangesContain(np.IPv4, sub.ipv4) {
				mu.Lock()
				d.DrainingSessions = append(d.DrainingSessions, sub.sess.ID)
				mu.Unlock()
			}
		}
	})
}

func rangesContain(rs []AddrRange, a netip.Addr) bool {
	for _, r := range rs {
		if !a.Less(r.First) && !r.Last.Less(a) {
			return true
		}
	}
	return false
}

func radiusEqual(a, b RADIUS) bool {
	return slices.Equal(a.Auth, b.Auth) && slices.Equal(a.Acct, b.Acct) && a.NASIdentifier == b.NASIdentifier &&
		a.NASIPAddress == b.NASIPAddress && a.Timeout == b.Timeout && a.Retries == b.Retries && a.DeadTime == b.DeadTime &&
		a.InterimInterval == b.InterimInterval && a.DAEListen == b.DAEListen && slices.Equal(a.DAEClients, b.DAEClients)
}

// diffRADIUS describes a RADIUS change, all of which applies live: new
// requests use the new servers, requests in flight finish where they
// were sent.
func diffRADIUS(a, b *Config, add func(string, ...any)) {
	ra, rb := a.RADIUS, b.RADIUS
	servers := func(what string, x, y []RADIUSServer) {
		switch {
		case slices.Equal(x, y):
		case len(x) == 0:
			add("radius %s servers added (%d)", what, len(y))
		case len(y) == 0:
			add("radius %s servers removed", what)
		default:
			add("radius %s servers changed (%d -> %d)", what, len(x), len(y))
		}
	}
	servers("auth", ra.Auth, rb.Auth)
	switch {
	case len(ra.Auth) > 0 && len(rb.Auth) == 0:
		add("authentication of new sessions by local users")
	case len(ra.Auth) == 0 && len(rb.Auth) > 0:
		add("authentication of new sessions by RADIUS")
	}
	servers("accounting", ra.Acct, rb.Acct)
	if len(ra.Acct) > 0 && len(rb.Acct) == 0 {
		add("no accounting for new sessions; live sessions' records still go to the old accounting servers")
	}
	if ra.NASIdentifier != rb.NASIdentifier || ra.NASIPAddress != rb.NASIPAddress {
		add("radius NAS identity changed (new requests)")
	}
	if ra.Timeout != rb.Timeout || ra.Retries != rb.Retries || ra.DeadTime != rb.DeadTime {
		add("radius timeout, retries or dead time changed (new requests)")
	}
	if ra.InterimInterval != rb.InterimInterval {
		add("radius interim interval %s -> %s", ra.InterimInterval, rb.InterimInterval)
	}
	if ra.DAEListen != rb.DAEListen {
		add("dae listen %q -> %q", ra.DAEListen, rb.DAEListen)
	}
	if !slices.Equal(ra.DAEClients, rb.DAEClients) {
		add("dae clients changed (%d -> %d)", len(ra.DAEClients), len(rb.DAEClients))
	}
}
