package control

import (
	"net/netip"
	"testing"

	"github.com/l2tpd/l2tpd/aaa"
)

// RFC 2865 §5.22, RFC 3162 §2.5: a route's gateway toward a PPP
// subscriber can only be the subscriber itself; unspecified means it.
func TestRouteGatewayIsTheSubscriber(t *testing.T) {
	sub := &subscriber{ipv4: netip.MustParseAddr("100.64.0.16"), ipv6: netip.MustParsePrefix("2001:db8:100:42::/64")}
	sh := &shard{}
	for _, tc := range []struct {
		route string
		ok    bool
	}{
		{"203.0.113.0/24", true},
		{"203.0.113.0/24 0.0.0.0 1", true},
		{"203.0.113.0/24 100.64.0.16 5", true},
		{"203.0.113.0/24 100.64.0.17", false},
		{"2001:db8:fe00::/48 :: 1", true},
		{"2001:db8:fe00::/48 fe80::1", true},
		{"2001:db8:fe00::/48 2001:db8:100:42::1", true},
		{"2001:db8:fe00::/48 2001:db8:100:43::1", false},
	} {
		r, err := aaa.ParseRoute(tc.route)
		if err != nil {
			t.Fatalf("%q: %v", tc.route, err)
		}
		if got := sh.gatewayOK(sub, r); got != tc.ok {
			t.Errorf("%q: gateway accepted %v, want %v", tc.route, got, tc.ok)
		}
	}
}

// attrInfo shows the delegated prefix apart from the other routes, and
// only while it is routed.
func TestAttrInfo(t *testing.T) {
	d := netip.MustParsePrefix("2001:db8:ff00::/56")
	sub := &subscriber{attrs: &netAttrs{delegated: d, dns1: netip.MustParseAddr("198.51.100.53")}}
	var si SessionInfo
	sub.attrInfo(&si)
	if si.DelegatedIPv6Prefix != "" || len(si.Routes) != 0 || len(si.DNS) != 1 {
		t.Fatalf("before routing: %+v", si)
	}
	sub.routes = []sessionRoute{{p: netip.MustParsePrefix("203.0.113.0/24")}, {p: d}}
	si = SessionInfo{}
	sub.attrInfo(&si)
	if si.DelegatedIPv6Prefix != d.String() || len(si.Routes) != 1 || si.Routes[0] != "203.0.113.0/24" {
		t.Fatalf("routed: %+v", si)
	}
	if sub.delegatedPrefix() != d {
		t.Fatal("accounting would not carry the delegated prefix")
	}
}
