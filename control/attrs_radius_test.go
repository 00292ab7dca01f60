package control

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/aaa/radiustest"
	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/ppp"
)

const attrUsers = `erin Cleartext-Password := "routes"
	Framed-IP-Address = 100.64.0.16,
	MS-Primary-DNS-Server = 198.51.100.53,
	MS-Secondary-DNS-Server = 198.51.100.54,
	Framed-IPv6-Prefix = 2001:db8:100:42::/64,
	Delegated-IPv6-Prefix = 2001:db8:ff00::/56,
	Framed-Route = "203.0.113.0/24 0.0.0.0 1",
	Framed-Route = "198.18.0.0/24 192.0.2.99 1",
	Framed-IPv6-Route = "2001:db8:fe00::/48 :: 1"
frank Cleartext-Password := "overlap"
	Framed-Route = "203.0.113.128/25",
	Framed-IPv6-Prefix = 2001:db8:100:42::/64
gina Cleartext-Password := "outside"
	Framed-IPv6-Prefix = 2001:db8:abc:1::/64,
	Framed-Route = "100.64.0.16/28",
	Framed-Route = "192.0.2.128/25",
	Framed-Route = "not a route"
hank Cleartext-Password := "taken"
	Framed-IPv6-Prefix = 2001:db8:abc:1::/64
`

// A real FreeRADIUS answers with name servers, an IPv6 prefix, a
// delegated prefix and routes: IPCP offers the name servers (RFC 2548
// §2.2.1, RFC 1877), the RA carries the Framed-IPv6-Prefix (RFC 3162
// §2.3), the datapath routes the Framed-Route (RFC 2865 §5.22),
// Framed-IPv6-Route (RFC 3162 §2.5) and Delegated-IPv6-Prefix (RFC 4818)
// prefixes to the session, accounting carries the delegated prefix, a
// route through another gateway or over another session's is refused
// without harm to the session, and teardown takes every route away.
func TestRADIUSNetworkAttributes(t *testing.T) {
	fr := radiustest.New(t, attrUsers)
	fr.Start()
	s, addr := pppServer(t, func(c *Config) {
		c.PPP.Auth = []string{"pap"}
		c.RADIUS = RADIUS{
			Auth:    []RADIUSServer{{Addr: fr.Auth(), Secret: radiustest.Secret}},
			Acct:    []RADIUSServer{{Addr: fr.Acct(), Secret: radiustest.Secret}},
			Timeout: time.Second,
		}
	})
	// Kernel routes toward a TUN, recorded instead of run.
	cmds := make(chan string, 64)
	s.reloadMu.Lock()
	s.routes.sessMu.Lock()
	s.routes.dev, s.routes.installed = "tun9", map[netip.Prefix]bool{}
	s.routes.ip = func(args ...string) error {
		select {
		case cmds <- strings.Join(args, " "):
		default:
		}
		return nil
	}
	s.routes.sessMu.Unlock()
	s.reloadMu.Unlock()
	kernel := map[string]bool{}
	drain := func() {
		for {
			select {
			case c := <-cmds:
				kernel[c] = true
			default:
				return
			}
		}
	}
	defer func() {
		if t.Failed() {
			st, _ := s.Stats(context.Background())
			t.Logf("counters %v\nradius log tail: %s", st.Counters, tail(fr.Log(), 3000))
		}
	}()
	l := newSubscriberLAC(t, addr, 2, "erin", "routes", []ppp.AuthProto{ppp.AuthPAP}, true)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	var si SessionInfo
	if !l.pump(func() bool {
		ss, _ := s.Sessions(context.Background())
		if len(ss) == 1 && ss[0].IPv4 != "" && ss[0].IPv6 != "" && len(l.ras) > 0 {
			si = ss[0]
			return l.client.IPCPState() == ppp.StateOpened
		}
		return false
	}, 5*time.Second) {
		t.Fatalf("not online: IPCP %v IPv6CP %v", l.client.IPCPState(), l.client.IPv6CPState())
	}
	var ipcp ppp.NetworkInfo
	for _, e := range l.events {
		if e.Kind == ppp.EventNetworkUp && e.Network.Protocol == ppp.ProtoIPCP {
			ipcp = e.Network
		}
	}
	if ipcp.DNS1 != netip.MustParseAddr("198.51.100.53") || ipcp.DNS2 != netip.MustParseAddr("198.51.100.54") {
		t.Fatalf("IPCP gave DNS %v %v, want RADIUS's (not ppp.dns)", ipcp.DNS1, ipcp.DNS2)
	}
	framed6 := netip.MustParsePrefix("2001:db8:100:42::/64")
	if si.IPv6 != framed6.String() {
		t.Fatalf("session prefix %s, want the Framed-IPv6-Prefix", si.IPv6)
	}
	checkRA(t, l.ras[0], framed6)
	// The prefix lies in the pool: it is reserved there.
	leased := func(p netip.Prefix) bool {
		for _, le := range s.snap.Load().pools["default"].Leases() {
			if le.Prefix == p {
				return true
			}
		}
		return false
	}
	if !leased(framed6) {
		t.Fatal("Framed-IPv6-Prefix not reserved in its pool")
	}
	key := datapath.SessionKey{Version: 2, Tunnel: si.TunnelID, Session: si.SessionID}
	routed := map[string]bool{
		"203.0.113.7":         true,  // Framed-Route, gateway 0.0.0.0
		"100.64.0.16":         true,  // the host route
		"2001:db8:ff00:12::1": true,  // Delegated-IPv6-Prefix
		"2001:db8:fe00:1::1":  true,  // Framed-IPv6-Route
		"2001:db8:100:42::9":  true,  // Framed-IPv6-Prefix
		"198.18.0.1":          false, // gateway other than the subscriber
	}
	for a, want := range routed {
		got, ok := s.eng.Lookup(netip.MustParseAddr(a))
		if (ok && got == key) != want {
			t.Errorf("%s routed to %v %v, want routed to the session: %v", a, got, ok, want)
		}
	}
	slices.Sort(si.Routes)
	if si.DelegatedIPv6Prefix != "2001:db8:ff00::/56" || !slices.Equal(si.Routes, []string{"2001:db8:fe00::/48", "203.0.113.0/24"}) ||
		!slices.Equal(si.DNS, []string{"198.51.100.53", "198.51.100.54"}) {
		t.Fatalf("l2tpctl view: delegated %q routes %q dns %q", si.DelegatedIPv6Prefix, si.Routes, si.DNS)
	}
	waitFor(t, "Accounting Start with the delegated prefix", func() bool {
		for _, r := range fr.Detail() {
			if r["Acct-Status-Type"] == "Start" && r["User-Name"] == "erin" && strings.Contains(r["Delegated-IPv6-Prefix"], "2001:db8:ff00::/56") {
				return true
			}
		}
		return false
	})
	st, _ := s.Stats(context.Background())
	if st.Counters["radius_routes_refused"] != 1 || st.Counters["radius_routes_installed"] != 3 {
		t.Fatalf("counters %v", st.Counters)
	}

	// The pool's route covers the Framed-IPv6-Prefix; routes outside
	// every pool get a kernel route toward the TUN.
	waitFor(t, "kernel routes for erin", func() bool {
		drain()
		return kernel["-4 route replace 203.0.113.0/24 dev tun9"] && kernel["-6 route replace 2001:db8:ff00::/56 dev tun9"] &&
			kernel["-6 route replace 2001:db8:fe00::/48 dev tun9"]
	})
	if kernel["-6 route replace 2001:db8:100:42::/64 dev tun9"] {
		t.Fatal("kernel route for a prefix the pool's route covers")
	}

	// A second subscriber's route over erin's is refused, and so is
	// its Framed-IPv6-Prefix, leased to erin; it comes up all the same,
	// and erin keeps both.
	l2 := newSubscriberLAC(t, addr, 2, "frank", "overlap", []ppp.AuthProto{ppp.AuthPAP}, true)
	l2.dial(t, nil)
	l2.client.Start(time.Now(), &l2.out)
	l2.flush()
	if !l2.pump(func() bool {
		return l2.client.IPCPState() == ppp.StateOpened && l2.client.IPv6CPState() == ppp.StateOpened
	}, 5*time.Second) {
		t.Fatal("frank not online")
	}
	waitFor(t, "the overlapping route and prefix refused", func() bool {
		st, _ := s.Stats(context.Background())
		return st.Counters["radius_routes_refused"] == 2 && st.Counters["radius_ipv6_prefix_refused"] == 1
	})
	for _, a := range []string{"203.0.113.200", "2001:db8:100:42::1"} {
		if got, ok := s.eng.Lookup(netip.MustParseAddr(a)); !ok || got != key {
			t.Fatalf("%s routed to %v %v, want erin's session", a, got, ok)
		}
	}

	// A Framed-IPv6-Prefix outside every pool is used as given, with a
	// kernel route; a Framed-Route covering erin's address is refused.
	l3 := newSubscriberLAC(t, addr, 2, "gina", "outside", []ppp.AuthProto{ppp.AuthPAP}, true)
	l3.dial(t, nil)
	l3.client.Start(time.Now(), &l3.out)
	l3.flush()
	if !l3.pump(func() bool {
		return l3.client.IPCPState() == ppp.StateOpened && l3.client.IPv6CPState() == ppp.StateOpened && len(l3.ras) > 0
	}, 5*time.Second) {
		t.Fatal("gina not online")
	}
	outside := netip.MustParsePrefix("2001:db8:abc:1::/64")
	checkRA(t, l3.ras[0], outside)
	waitFor(t, "gina's prefix and route", func() bool {
		drain()
		st, _ := s.Stats(context.Background())
		k, ok := s.eng.Lookup(netip.MustParseAddr("2001:db8:abc:1::5"))
		k2, ok2 := s.eng.Lookup(netip.MustParseAddr("192.0.2.200"))
		return ok && ok2 && k == k2 && k != key && st.Counters["radius_routes_refused"] == 4 &&
			kernel["-6 route replace 2001:db8:abc:1::/64 dev tun9"] && kernel["-4 route replace 192.0.2.128/25 dev tun9"]
	})
	if got, ok := s.eng.Lookup(netip.MustParseAddr("100.64.0.16")); !ok || got != key {
		t.Fatalf("erin's address routed to %v %v", got, ok)
	}
	ginaKey, _ := s.eng.Lookup(netip.MustParseAddr("2001:db8:abc:1::5"))
	// The same prefix outside the pools for another subscriber is
	// refused: gina keeps it.
	l4 := newSubscriberLAC(t, addr, 2, "hank", "taken", []ppp.AuthProto{ppp.AuthPAP}, true)
	l4.dial(t, nil)
	l4.client.Start(time.Now(), &l4.out)
	l4.flush()
	if !l4.pump(func() bool { return l4.client.IPv6CPState() == ppp.StateOpened }, 5*time.Second) {
		t.Fatal("hank not online")
	}
	waitFor(t, "hank's prefix refused", func() bool {
		st, _ := s.Stats(context.Background())
		return st.Counters["radius_ipv6_prefix_refused"] == 2
	})
	if got, ok := s.eng.Lookup(netip.MustParseAddr("2001:db8:abc:1::5")); !ok || got != ginaKey {
		t.Fatalf("gina's prefix routed to %v %v, want %v", got, ok, ginaKey)
	}

	// Teardown removes every route and gives the prefix back.
	if n, err := s.Disconnect(aaa.Match{UserName: "erin"}); err != nil || n != 1 {
		t.Fatalf("disconnect: %d %v", n, err)
	}
	waitFor(t, "erin's routes gone", func() bool {
		for a := range routed {
			if got, ok := s.eng.Lookup(netip.MustParseAddr(a)); ok && got == key {
				return false
			}
		}
		drain()
		return !leased(framed6) && kernel["-4 route del 203.0.113.0/24 dev tun9"] && kernel["-6 route del 2001:db8:ff00::/56 dev tun9"] &&
			kernel["-6 route del 2001:db8:fe00::/48 dev tun9"]
	})
	if n, err := s.Disconnect(aaa.Match{UserName: "gina"}); err != nil || n != 1 {
		t.Fatalf("disconnect: %d %v", n, err)
	}
	waitFor(t, "gina's kernel routes gone", func() bool {
		drain()
		return kernel["-6 route del 2001:db8:abc:1::/64 dev tun9"] && kernel["-4 route del 192.0.2.128/25 dev tun9"]
	})
}
