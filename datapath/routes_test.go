package datapath

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// Prefixes routed behind a subscriber (RFC 2865 §5.22 Framed-Route,
// RFC 4818 Delegated-IPv6-Prefix): longest match next to the host
// route, refused when they meet another session's routes, accepted as
// sources from the subscriber, removed only by their session.
func TestExtraRoutes(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, nil)
	keyB := SessionKey{Version: 2, Tunnel: 100, Session: 201}
	other4 := netip.MustParseAddr("100.64.0.11")
	if err := r.e.Install(Session{Key: keyB, PeerTunnel: 7, PeerSession: 9, Peer: lac, Local: lnsAddr, Socket: r.sock, IPv4: other4}); err != nil {
		t.Fatal(err)
	}
	net4 := netip.MustParsePrefix("198.51.100.0/24")
	deleg := netip.MustParsePrefix("2001:db8:ff00::/56")
	for _, p := range []netip.Prefix{net4, deleg} {
		if err := r.e.AddRoute(key2, p); err != nil {
			t.Fatal(err)
		}
	}
	// The session's own routes may overlap its extra ones.
	if err := r.e.AddRoute(key2, netip.MustParsePrefix("100.64.0.8/30")); err == nil {
		t.Fatal("a route covering another session's address was accepted")
	} else if !errors.Is(err, ErrRouteOverlap) {
		t.Fatalf("err %v, want ErrRouteOverlap", err)
	}
	if err := r.e.AddRoute(key2, netip.MustParsePrefix("2001:db8:100::/63")); err != nil {
		t.Fatalf("a route over the session's own address: %v", err)
	}
	for _, p := range []string{"198.51.100.0/24", "198.51.100.128/25", "198.51.0.0/16", "2001:db8:ff00:10::/64", "2001:db8::/32"} {
		if err := r.e.AddRoute(keyB, netip.MustParsePrefix(p)); !errors.Is(err, ErrRouteOverlap) {
			t.Errorf("%s for another session: err %v, want ErrRouteOverlap", p, err)
		}
	}
	if err := r.e.RouteConflict(keyB, deleg); !errors.Is(err, ErrRouteOverlap) {
		t.Errorf("RouteConflict for another session: %v", err)
	}
	if err := r.e.RouteConflict(key2, deleg); err != nil {
		t.Errorf("RouteConflict for its own session: %v", err)
	}
	if err := r.e.AddRoute(SessionKey{Version: 2, Tunnel: 9, Session: 9}, netip.MustParsePrefix("203.0.113.0/24")); err == nil {
		t.Error("a route to a session not installed was accepted")
	}
	cases := map[string]SessionKey{
		"198.51.100.9":        key2,
		"100.64.0.10":         key2,
		"100.64.0.11":         keyB,
		"2001:db8:ff00:12::1": key2,
		"2001:db8:100:1::10":  key2,
	}
	for a, want := range cases {
		if got, ok := r.e.Lookup(netip.MustParseAddr(a)); !ok || got != want {
			t.Errorf("%s -> %v %v, want %v", a, got, ok, want)
		}
	}
	// Traffic from behind the subscriber is not spoofed; from a prefix
	// not routed to it, it is.
	r.e.receive(r.sock, v2Data(key2, pppFrame(ProtoIPv4, icmpEcho(netip.MustParseAddr("198.51.100.9"), web4))), lac, lnsAddr)
	r.e.receive(r.sock, v2Data(key2, pppFrame(ProtoIPv6, ipv6Packet(netip.MustParseAddr("2001:db8:ff00:12::1"), web6, 59, nil))), lac, lnsAddr)
	if len(r.tun.pkts) != 2 || r.stat("spoofed") != 0 {
		t.Fatalf("from routed prefixes: TUN got %d, spoofed %d", len(r.tun.pkts), r.stat("spoofed"))
	}
	r.e.receive(r.sock, v2Data(key2, pppFrame(ProtoIPv4, icmpEcho(netip.MustParseAddr("203.0.113.9"), web4))), lac, lnsAddr)
	if r.stat("spoofed") != 1 {
		t.Fatalf("spoofed %d", r.stat("spoofed"))
	}
	// Another session cannot remove them; their own session can.
	r.e.RemoveRoute(keyB, net4)
	if got, ok := r.e.Lookup(netip.MustParseAddr("198.51.100.9")); !ok || got != key2 {
		t.Fatalf("after another session's remove: %v %v", got, ok)
	}
	r.e.RemoveRoute(key2, net4)
	r.e.RemoveRoute(key2, deleg)
	for _, a := range []string{"198.51.100.9", "2001:db8:ff00:12::1"} {
		if got, ok := r.e.Lookup(netip.MustParseAddr(a)); ok {
			t.Errorf("%s still routed to %v", a, got)
		}
	}
	// Freed, the prefix may go to another session.
	if err := r.e.AddRoute(keyB, net4); err != nil {
		t.Fatal(err)
	}
}

// Looking a route up on the forwarding path's source check allocates
// nothing.
func TestExtraRouteSourceCheckAllocs(t *testing.T) {
	r := newRig(t, false, 8)
	r.installV2(t, nil)
	if err := r.e.AddRoute(key2, netip.MustParsePrefix("198.51.100.0/24")); err != nil {
		t.Fatal(err)
	}
	msg := v2Data(key2, pppFrame(ProtoIPv4, icmpEcho(netip.MustParseAddr("198.51.100.9"), web4)))
	n := testing.AllocsPerRun(100, func() { r.e.receive(r.sock, msg, lac, lnsAddr) })
	if n != 0 || r.stat("spoofed") != 0 {
		t.Fatalf("%v allocations, spoofed %d", n, r.stat("spoofed"))
	}
}

// The probing overlap check agrees with a walk of the whole table, for
// both families, with spans above and below the probing bound.
func TestRouteOverlapMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, v6 := range []bool{false, true} {
		rt := newRouteTable(v6)
		const width = 32
		// Prefixes of minBits..width bits in a narrow address space, so
		// they meet often but not always.
		rnd := func(minBits int) netip.Prefix {
			var b [16]byte
			b[0], b[1], b[2], b[3] = 0x20, byte(rng.IntN(2)), byte(rng.IntN(256)), byte(rng.IntN(256))
			bits := minBits + rng.IntN(width-minBits+1)
			if v6 {
				// The same layout 32 bits further in.
				copy(b[4:8], b[:4])
				b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
				return netip.PrefixFrom(netip.AddrFrom16(b), bits+32).Masked()
			}
			return netip.PrefixFrom(netip.AddrFrom4([4]byte(b[:4])), bits).Masked()
		}
		for i := 0; i < 40; i++ {
			rt.insert(rnd(width-14), sessionEntry(uint32(1+rng.IntN(5))))
		}
		hits := 0
		for i := 0; i < 2000; i++ {
			p := rnd(width - 14)
			key := SessionKey{Version: 2, Tunnel: 1, Session: uint32(1 + rng.IntN(5))}
			_, got := rt.overlap(p, key)
			rt.mu.Lock()
			_, want := rt.scan(p, key)
			rt.mu.Unlock()
			if got {
				hits++
			}
			if got != want {
				t.Fatalf("v6 %v: overlap(%v, %v) = %v, walk says %v", v6, p, key, got, want)
			}
		}
		// Both answers occur, or the comparison proves little.
		if hits < 200 || hits > 1800 {
			t.Fatalf("v6 %v: %d of 2000 overlap", v6, hits)
		}
	}
}
