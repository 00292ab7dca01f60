package config

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/l2tpd/l2tpd/control"
)

func TestParseLAC(t *testing.T) {
	doc := `lac:
  listen: ["0.0.0.0:0"]
  auth: [pap, chap]
  pppoe:
    - {interface: eth1, ac_name: bras1, service_names: [internet, ""]}
    - {interface: eth2, max_sessions: 4000, max_sessions_per_mac: 2}
  lns:
    - {name: a, address: "192.0.2.1:1701", secret: s1, version: "2", hide_avps: true, preference: 1}
    - {name: b, address: 192.0.2.2, secret: s2, version: auto, preference: 2}
    - {name: c, address: 192.0.2.3}
  realms:
    - {realm: isp.example, lns: [a, b]}
    - {realm: "*", lns: [b]}
  radius_tunnels: true
radius:
  auth_servers: [{address: "192.0.2.9:1812", secret: r}]
`
	f, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	l := f.Control().LAC
	if l.PPPoE[1].MaxSessions != 4000 || l.PPPoE[1].MaxSessionsPerMAC != 2 || l.PPPoE[0].MaxSessions != 0 {
		t.Errorf("limits %+v", l.PPPoE)
	}
	if !l.Enabled() || len(l.PPPoE) != 2 || l.PPPoE[0].ACName != "bras1" || len(l.PPPoE[0].ServiceNames) != 2 || !l.RADIUSTunnels {
		t.Fatalf("%+v", l)
	}
	want := []control.LACPeer{
		{Name: "a", Address: netip.MustParseAddrPort("192.0.2.1:1701"), Secret: "s1", Version: 2, HideAVPs: true, Preference: 1},
		{Name: "b", Address: netip.MustParseAddrPort("192.0.2.2:1701"), Secret: "s2", Preference: 2},
		{Name: "c", Address: netip.MustParseAddrPort("192.0.2.3:1701"), Version: 2},
	}
	for i := range want {
		if l.LNS[i] != want[i] {
			t.Errorf("lns[%d] = %+v, want %+v", i, l.LNS[i], want[i])
		}
	}
	if len(l.Realms) != 2 || l.Realms[1].Realm != "*" || strings.Join(l.Realms[0].LNS, ",") != "a,b" || strings.Join(l.Auth, ",") != "pap,chap" {
		t.Fatalf("%+v", l)
	}
}

func TestLACErrors(t *testing.T) {
	doc := `lac:
  auth: [eap]
  pppoe:
    - {ac_name: x}
    - {interface: eth1}
    - {interface: eth1}
  lns:
    - {name: a, address: "not an address", secret: s, version: "4"}
    - {name: a, address: 192.0.2.1}
  realms:
    - {realm: x, lns: [c]}
`
	_, err := Parse([]byte(doc))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`lac.auth[0] (line 2): unknown protocol "eap"`,
		`lac.pppoe[0] (line 4): needs interface`,
		`lac.pppoe[2].interface (line 6): interface "eth1" listed twice`,
		`lac.lns[0].address (line 8): invalid address "not an address"`,
		`lac.lns[0].version (line 8): version "4"`,
		`lac.lns[1].name (line 9): LNS "a" defined twice`,
		`lac.realms[0].lns[0] (line 11): no LNS named "c" in lac.lns`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
	if _, err := Parse([]byte("lac:\n  pppoe: [{interface: eth1}]\n")); err == nil || !strings.Contains(err.Error(), "needs realms or radius_tunnels") {
		t.Errorf("no LNS choice accepted: %v", err)
	}
	if _, err := Parse([]byte("lac:\n  pppoe: [{interface: eth1}]\n  radius_tunnels: true\n")); err == nil || !strings.Contains(err.Error(), "lac.radius_tunnels: needs radius.auth_servers") {
		t.Errorf("radius_tunnels without servers: %v", err)
	}
}
