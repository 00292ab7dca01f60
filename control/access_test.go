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

// RFC 2661 §4.4.5: Initial Received LCP CONFREQ is the client's first
// Configure-Request, Last Received its last one, Last Sent ours, each
// from the first option on; a PAP request's Identifier is kept for Proxy
// Authen ID.
func TestProxyRecording(t *testing.T) {
	s := &lacSession{}
	first := []byte{0xc0, 0x21, 1, 1, 0, 14, 1, 4, 0x05, 0xd4, 5, 6, 0, 0, 0, 1}
	second := []byte{0xc0, 0x21, 1, 2, 0, 10, 5, 6, 0, 0, 0, 2}
	ours := []byte{0xff, 0x03, 0xc0, 0x21, 1, 7, 0, 13, 1, 4, 0x05, 0xd4, 3, 5, 0xc2, 0x23, 5}
	ack := []byte{0xc0, 0x21, 2, 7, 0, 13, 1, 4, 0x05, 0xd4, 3, 5, 0xc2, 0x23, 5}
	pap := []byte{0xc0, 0x23, 1, 42, 0, 10, 1, 'u', 3, 'p', 'w', 'd'}
	s.record(first, true)
	s.record(ours, false)
	s.record(second, true)
	s.record(ack, true)
	s.record(pap, true)
	if string(s.proxy.InitialReceivedConfReq) != string(first[6:]) ||
		string(s.proxy.LastReceivedConfReq) != string(second[6:]) ||
		string(s.proxy.LastSentConfReq) != string(ours[8:]) || s.papID != 42 {
		t.Fatalf("%+v pap id %d", s.proxy, s.papID)
	}
	// Garbage is ignored.
	s.record([]byte{0xc0}, true)
	s.record([]byte{0xc0, 0x21, 1}, true)
	if string(s.proxy.LastReceivedConfReq) != string(second[6:]) {
		t.Fatal("garbage recorded")
	}
}

// RFC 2868 §3.7: the same Tunnel-Assignment-Id means the same tunnel; the
// preferred group's identifier is the call's group.
func TestAssignmentGroup(t *testing.T) {
	a := []aaa.Tunnel{{Tag: 1, AssignmentID: "b", Preference: 2}, {Tag: 2, AssignmentID: "a", Preference: 1}}
	b := []aaa.Tunnel{{Tag: 1, AssignmentID: "a", Preference: 5}}
	c := []aaa.Tunnel{{Tag: 1, AssignmentID: "b", Preference: 1}}
	ga, gb, gc := assignmentGroup(a), assignmentGroup(b), assignmentGroup(c)
	if ga == 0 || ga != gb || ga == gc {
		t.Fatalf("groups %d %d %d", ga, gb, gc)
	}
	if g := assignmentGroup([]aaa.Tunnel{{Tag: 1}}); g != 0 {
		t.Fatalf("no Tunnel-Assignment-Id: group %d", g)
	}
}
