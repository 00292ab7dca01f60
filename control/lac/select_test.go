package lac

import (
	"net/netip"
	"testing"
	"time"
)

// RFC 2868 §3.8: the lowest Tunnel-Preference is tried first; equal
// preferences share the calls; held-down LNSs go last.
func TestOrder(t *testing.T) {
	a := LNS{Name: "a", Addr: netip.MustParseAddrPort("192.0.2.1:1701"), Preference: 10}
	b := LNS{Name: "b", Addr: netip.MustParseAddrPort("192.0.2.2:1701"), Preference: 10}
	c := LNS{Name: "c", Addr: netip.MustParseAddrPort("192.0.2.3:1701"), Preference: 5}
	d := LNS{Name: "d", Addr: netip.MustParseAddrPort("192.0.2.4:1701"), Preference: 1}
	now := time.Unix(0, 0)
	r := newSeeded(3)
	deadD := func(x netip.AddrPort, _ time.Time) bool { return x == d.Addr }
	first := map[string]int{}
	for i := 0; i < 1000; i++ {
		o := order([]LNS{a, b, c, d}, now, deadD, r)
		if o[0].Name != "c" || o[3].Name != "d" {
			t.Fatalf("order %v", names(o))
		}
		first[o[1].Name]++
	}
	if first["a"] < 400 || first["b"] < 400 {
		t.Fatalf("equal preferences not shared: %v", first)
	}
	if o := order([]LNS{a, c, d}, now, nil, r); names(o) != "dca" {
		t.Fatalf("order %v", names(o))
	}
}

func names(l []LNS) string {
	s := ""
	for _, x := range l {
		s += x.Name
	}
	return s
}

func TestSelectByRealm(t *testing.T) {
	isp := []LNS{{Name: "isp"}}
	def := []LNS{{Name: "default"}}
	rules := []Realm{{Name: "isp.example", LNS: isp}, {Name: "*", LNS: def}}
	for _, tc := range []struct{ user, want string }{
		{"alice@isp.example", "isp"},
		{"alice@ISP.Example", "isp"},
		{"a@b@isp.example", "isp"},
		{"bob@other.example", "default"},
		{"carol", "default"},
	} {
		got := SelectByRealm(tc.user, rules)
		if len(got) != 1 || got[0].Name != tc.want {
			t.Errorf("%s: %v, want %s", tc.user, got, tc.want)
		}
	}
	if got := SelectByRealm("x@y", rules[:1]); got != nil {
		t.Errorf("no default rule: %v", got)
	}
}
