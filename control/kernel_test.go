package control

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// Routes follow reloads: an added pool is routed at once, a redefined
// pool's old prefix stays while a lease in it lives and goes with the
// lease, a removed pool without leases loses its route.
func TestRoutesFollowPools(t *testing.T) {
	r := func(first, last string) []AddrRange {
		return []AddrRange{{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last)}}
	}
	s, _ := startServer(t, func(c *Config) { c.Pools = []Pool{{Name: "a", IPv4: r("100.64.0.0", "100.64.0.255")}} })
	// The routes a TUN would get, recorded instead of run. reloadMu
	// keeps the periodic check out while the test looks.
	var cmds []string
	s.reloadMu.Lock()
	s.routes = routeState{dev: "tun9", installed: map[netip.Prefix]bool{}, ip: func(args ...string) error {
		cmds = append(cmds, strings.Join(args, " "))
		return nil
	}}
	locked := true
	lock := func(on bool) {
		if on != locked {
			if on {
				s.reloadMu.Lock()
			} else {
				s.reloadMu.Unlock()
			}
			locked = on
		}
	}
	defer lock(false)
	routed := func() []string {
		var out []string
		for p := range s.routes.installed {
			out = append(out, p.String())
		}
		slices.Sort(out)
		return out
	}
	if err := s.syncRoutes(); err != nil {
		t.Fatal(err)
	}
	if got := routed(); !slices.Equal(got, []string{"100.64.0.0/24"}) || cmds[0] != "-4 route replace 100.64.0.0/24 dev tun9" {
		t.Fatalf("at start: %v %q", got, cmds)
	}
	// A live lease in pool a, then a is redefined and b added.
	if _, err := s.snap.Load().pools["a"].LeaseIPv4("sub1"); err != nil {
		t.Fatal(err)
	}
	next := *s.config()
	next.Pools = []Pool{{Name: "a", IPv4: r("100.65.0.0", "100.65.0.127")}, {Name: "b", IPv4: r("100.66.0.0", "100.66.1.255"),
		IPv6: netip.MustParsePrefix("2001:db8:7::/48")}}
	lock(false)
	if _, err := s.Reload(context.Background(), next, false); err != nil {
		t.Fatal(err)
	}
	lock(true)
	want := []string{"100.64.0.0/24", "100.65.0.0/25", "100.66.0.0/23", "2001:db8:7::/48"}
	if got := routed(); !slices.Equal(got, want) {
		t.Fatalf("after the reload: %v, want %v (the old prefix kept for its lease)", got, want)
	}
	if !slices.Contains(cmds, "-6 route replace 2001:db8:7::/48 dev tun9") {
		t.Fatalf("commands %q", cmds)
	}
	// The lease ends: the old prefix goes at the next check.
	old := s.routes.draining[0].p
	l := old.Leases()[0]
	old.ReleaseIPv4(l.Prefix.Addr())
	s.syncRoutes()
	if got := routed(); !slices.Equal(got, want[1:]) || cmds[len(cmds)-1] != "-4 route del 100.64.0.0/24 dev tun9" {
		t.Fatalf("after the last lease: %v, last command %q", got, cmds[len(cmds)-1])
	}
	// b removed with no lease: its routes go with the reload.
	next = *s.config()
	next.Pools = next.Pools[:1]
	lock(false)
	if _, err := s.Reload(context.Background(), next, false); err != nil {
		t.Fatal(err)
	}
	lock(true)
	if got := routed(); !slices.Equal(got, []string{"100.65.0.0/25"}) {
		t.Fatalf("after removing b: %v", got)
	}
}

// ppp.local_ipv4 goes on the TUN at start, and a reload that changes it
// adds the new address; the old one stays, since live subscribers were
// told it in IPCP.
func TestTUNAddressFollowsReload(t *testing.T) {
	a, b := netip.MustParseAddr("100.64.0.1"), netip.MustParseAddr("100.64.9.1")
	s, _ := startServer(t, func(c *Config) { c.PPP.LocalIPv4 = a })
	var cmds []string
	s.reloadMu.Lock()
	s.routes = routeState{dev: "tun9", installed: map[netip.Prefix]bool{}, ip: func(args ...string) error {
		cmds = append(cmds, strings.Join(args, " "))
		return nil
	}}
	if err := s.syncRoutes(); err != nil {
		t.Fatal(err)
	}
	s.syncRoutes() // already there: not again
	s.reloadMu.Unlock()
	if !slices.Equal(cmds, []string{"addr replace 100.64.0.1/32 dev tun9"}) {
		t.Fatalf("at start: %q", cmds)
	}
	next := *s.config()
	next.PPP.LocalIPv4 = b
	next.TUN.Name = "tun9"
	prev := *s.config()
	prev.TUN.Name = "tun9"
	if d := diffConfig(&prev, &next); !slices.ContainsFunc(d.Changes, func(c string) bool {
		return strings.HasPrefix(c, "ppp.local_ipv4 100.64.0.1 -> 100.64.9.1: added to the TUN")
	}) {
		t.Fatalf("diff %q", d.Changes)
	}
	next.TUN.Name = ""
	if _, err := s.Reload(context.Background(), next, false); err != nil {
		t.Fatal(err)
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if !slices.Equal(cmds, []string{"addr replace 100.64.0.1/32 dev tun9", "addr replace 100.64.9.1/32 dev tun9"}) {
		t.Fatalf("after the reload: %q", cmds)
	}
}
