package control

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/l2tpd/l2tpd/aaa"
)

// RFC 2868 §3: each tagged group of an Access-Accept is a candidate;
// groups for other tunnel types, without a usable endpoint or with a
// Tunnel-Password that could not be decrypted are skipped.
func TestTunnelCandidates(t *testing.T) {
	ts := []aaa.Tunnel{
		{Tag: 1, Type: aaa.TunnelTypeL2TP, ServerEndpoint: "192.0.2.1", Password: []byte("s1"), Preference: 2, HasPreference: true, AssignmentID: "a"},
		{Tag: 2, Type: 1 /* PPTP */, ServerEndpoint: "192.0.2.2"},
		{Tag: 3, Type: aaa.TunnelTypeL2TP, ServerEndpoint: "lns.example"},
		{Tag: 4, Type: aaa.TunnelTypeL2TP, ServerEndpoint: "192.0.2.4", Password: []byte{1}, PasswordEncrypted: true},
		{Tag: 5, Type: aaa.TunnelTypeL2TP, ServerEndpoint: " 2001:db8::5 ", Preference: 1},
	}
	got := tunnelCandidates(ts)
	if len(got) != 2 {
		t.Fatalf("%+v", got)
	}
	if got[0].Name != "a" || got[0].Addr != netip.MustParseAddrPort("192.0.2.1:1701") || string(got[0].Secret) != "s1" ||
		got[0].Preference != 2 || got[0].Version != 2 {
		t.Errorf("%+v", got[0])
	}
	if got[1].Name != "2001:db8::5" || got[1].Addr != netip.MustParseAddrPort("[2001:db8::5]:1701") || got[1].Preference != 1 {
		t.Errorf("%+v", got[1])
	}
}

func TestValidateLAC(t *testing.T) {
	if err := validateLAC(&LAC{}); err != nil {
		t.Fatal(err)
	}
	l := &LAC{PPPoE: []PPPoEAccess{{Interface: "eth1"}}, LNS: []LACPeer{{Name: "a", Version: 4}, {Name: "a"}},
		Realms: []LACRealm{{Realm: "x", LNS: []string{"b"}}}, Auth: []string{"eap"}}
	err := validateLAC(l)
	for _, want := range []string{`LNS name "a" empty or repeated`, `version 4`, `names no LNS "b"`, `auth "eap"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}
