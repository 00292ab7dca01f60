package datapath

import (
	"net/netip"
	"testing"
)

func routeOwner(t *testing.T, rt *routeTable, addr string) uint32 {
	t.Helper()
	a := netip.MustParseAddr(addr)
	var e *entry
	if a.Is4() {
		b := a.As4()
		e = rt.lookup(b[:])
	} else {
		b := a.As16()
		e = rt.lookup(b[:])
	}
	if e == nil {
		return 0
	}
	return e.s.Key.Session
}

func sessionEntry(id uint32) *entry {
	return &entry{s: Session{Key: SessionKey{Version: 2, Tunnel: 1, Session: id}}}
}

// Longest prefix wins, across lengths that are not multiples of 8.
func TestRouteTableIPv6LPM(t *testing.T) {
	rt := newRouteTable(true)
	rt.insert(netip.MustParsePrefix("2001:db8::/32"), sessionEntry(1))
	rt.insert(netip.MustParsePrefix("2001:db8:100::/40"), sessionEntry(2))
	rt.insert(netip.MustParsePrefix("2001:db8:100:1::/64"), sessionEntry(3))
	rt.insert(netip.MustParsePrefix("2001:db8:100:1::7/127"), sessionEntry(4))
	rt.insert(netip.MustParsePrefix("2001:db8:100:1::1/128"), sessionEntry(5))
	rt.insert(netip.MustParsePrefix("::/0"), sessionEntry(6))
	cases := map[string]uint32{
		"2001:db8:100:1::1":   5,
		"2001:db8:100:1::6":   4,
		"2001:db8:100:1::7":   4,
		"2001:db8:100:1::8":   3,
		"2001:db8:100:2::1":   2,
		"2001:db8:1ff:ffff::": 2,
		"2001:db8:200::1":     1,
		"2001:db9::1":         6,
	}
	for a, want := range cases {
		if got := routeOwner(t, rt, a); got != want {
			t.Errorf("%s -> session %d, want %d", a, got, want)
		}
	}
	rt.remove(netip.MustParsePrefix("::/0"), SessionKey{Version: 2, Tunnel: 1, Session: 6})
	rt.remove(netip.MustParsePrefix("2001:db8:100:1::7/127"), SessionKey{Version: 2, Tunnel: 1, Session: 4})
	if got := routeOwner(t, rt, "2001:db9::1"); got != 0 {
		t.Errorf("after removing the default route: session %d", got)
	}
	if got := routeOwner(t, rt, "2001:db8:100:1::7"); got != 3 {
		t.Errorf("after removing the /127: session %d, want 3", got)
	}
	// A prefix given with host bits set is the same route.
	rt.insert(netip.MustParsePrefix("2001:db8:300::99/48"), sessionEntry(7))
	if got := routeOwner(t, rt, "2001:db8:300:ffff::1"); got != 7 {
		t.Errorf("unmasked prefix: session %d, want 7", got)
	}
}

func TestRouteTableIPv4(t *testing.T) {
	rt := newRouteTable(false)
	rt.insert(netip.MustParsePrefix("100.64.0.10/32"), sessionEntry(1))
	rt.insert(netip.MustParsePrefix("100.64.0.11/32"), sessionEntry(2))
	rt.insert(netip.MustParsePrefix("198.51.100.0/29"), sessionEntry(3)) // a framed route
	for a, want := range map[string]uint32{"100.64.0.10": 1, "100.64.0.11": 2, "100.64.0.12": 0, "198.51.100.7": 3, "198.51.100.8": 0} {
		if got := routeOwner(t, rt, a); got != want {
			t.Errorf("%s -> session %d, want %d", a, got, want)
		}
	}
}

// A route taken over by a newer session is not removed with the old one.
func TestRouteTableRemoveOnlyOwner(t *testing.T) {
	rt := newRouteTable(false)
	p := netip.MustParsePrefix("100.64.0.10/32")
	rt.insert(p, sessionEntry(1))
	rt.insert(p, sessionEntry(2))
	rt.remove(p, SessionKey{Version: 2, Tunnel: 1, Session: 1})
	if got := routeOwner(t, rt, "100.64.0.10"); got != 2 {
		t.Fatalf("session %d, want 2", got)
	}
	rt.remove(p, SessionKey{Version: 2, Tunnel: 1, Session: 2})
	if got := routeOwner(t, rt, "100.64.0.10"); got != 0 {
		t.Fatalf("session %d after removal", got)
	}
	if rt.lengths[0].Load() != 0 || rt.refs[32] != 0 {
		t.Fatalf("length bitmap %#x refs %d after removing every route", rt.lengths[0].Load(), rt.refs[32])
	}
}

// Lookups allocate nothing.
func TestRouteLookupAllocs(t *testing.T) {
	rt := newRouteTable(true)
	for i := 0; i < 1000; i++ {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)})
		rt.insert(netip.PrefixFrom(a, 56), sessionEntry(uint32(i+1)))
	}
	dst := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0x01, 0x02, 0, 0x55, 9}
	if n := testing.AllocsPerRun(1000, func() { rt.lookup(dst[:]) }); n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
	if got := rt.lookup(dst[:]); got == nil || got.s.Key.Session != 0x0102+1 {
		t.Fatalf("lookup found %v", got)
	}
}

func TestSessionTable(t *testing.T) {
	st := newSessionTable()
	k2 := SessionKey{Version: 2, Tunnel: 5, Session: 6}
	k3 := SessionKey{Version: 3, Session: 6}
	st.set(k2, sessionEntry(6))
	if st.get(k3) != nil || st.get(k2) == nil {
		t.Fatal("v2 and v3 keys with the same Session ID collide")
	}
	st.set(k2, nil)
	if st.get(k2) != nil {
		t.Fatal("not removed")
	}
}
