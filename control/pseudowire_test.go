package control

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
)

func pwTestConfig() Config {
	cfg := DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.Pseudowires = []Pseudowire{
		{Name: "eth", Peer: netip.MustParseAddr("192.0.2.2"), Port: 1701, Encap: EncapUDP, Type: PWEthernet, RemoteEndID: "\x00\x00\x00\x64",
			Initiate: true, TAP: "pw0", MTU: 1500, CookieLen: 8, L2SpecificSublayer: true, Sequencing: true},
		{Name: "blue", Peer: netip.MustParseAddr("192.0.2.2"), Port: 1701, Encap: EncapUDP, Netns: "blue", Type: PWVLAN, RemoteEndID: "x",
			TAP: "trunk", VLAN: 7, MTU: 1500, CookieLen: 4},
	}
	return cfg
}

// RFC 3931 §5.4.3: the Pseudowire Capabilities List offers PPP and the
// configured types, each once.
func TestPWCapabilities(t *testing.T) {
	cfg := pwTestConfig()
	cfg.Pseudowires = append(cfg.Pseudowires, cfg.Pseudowires[0])
	if got := cfg.pwCapabilities(); !slices.Equal(got, []uint16{tunnel.PseudowirePPP, tunnel.PseudowireEthernet, tunnel.PseudowireEthernetVLAN}) {
		t.Fatalf("capabilities %v", got)
	}
	def := DefaultConfig()
	if got := def.pwCapabilities(); !slices.Equal(got, []uint16{tunnel.PseudowirePPP}) {
		t.Fatalf("without pseudowires: %v", got)
	}
}

func TestHandlerFor(t *testing.T) {
	for _, tc := range []struct {
		s    *tunnel.Session
		want pwHandler
	}{
		{nil, pppPW{}},
		{&tunnel.Session{PseudowireType: tunnel.PseudowirePPP}, pppPW{}},
		{&tunnel.Session{PseudowireType: tunnel.PseudowireEthernet}, pppPW{}}, // not negotiated as a pseudowire
		{&tunnel.Session{PseudowireType: tunnel.PseudowireEthernet, Pseudowire: true}, ethernetPW{}},
		{&tunnel.Session{PseudowireType: tunnel.PseudowireEthernetVLAN, Pseudowire: true}, vlanPW{}},
	} {
		if got := handlerFor(tc.s); got != tc.want {
			t.Errorf("handlerFor(%+v) = %T, want %T", tc.s, got, tc.want)
		}
	}
}

func pwTestShard(t *testing.T, cfg Config) *shard {
	t.Helper()
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	sh := s.shards[0]
	for _, pw := range cfg.Pseudowires {
		sh.addPW(pw, time.Now())
	}
	return sh
}

// RFC 4719 §2.2: the answering end binds an ICRQ to the pseudowire its
// Remote End ID names toward that peer, in that namespace, of that type;
// it assigns its own cookie, follows the caller's sublayer and asks for
// sequencing as configured.
func TestBindPW(t *testing.T) {
	sh := pwTestShard(t, pwTestConfig())
	e := &entry{peer: netip.MustParseAddrPort("192.0.2.2:1701"), local: netip.MustParseAddr("192.0.2.1")}
	s := &tunnel.Session{ID: 11, PseudowireType: tunnel.PseudowireEthernet, PW: &tunnel.PW{RemoteEndID: "\x00\x00\x00\x64", Remote: tunnel.PWParams{L2SS: tunnel.L2SSDefault}}}
	p, res := sh.bindPW(e, s)
	if res != nil {
		t.Fatalf("refused: %+v", res)
	}
	if len(p.Cookie) != 8 || p.L2SS != tunnel.L2SSDefault || p.Sequencing != tunnel.SequenceAll || !p.Active {
		t.Fatalf("params %+v", p)
	}
	if l := sh.pw.bySession[11]; l == nil || l.cfg.Name != "eth" || l.e != e {
		t.Fatalf("session not bound: %+v", l)
	}

	for name, tc := range map[string]struct {
		e *entry
		s *tunnel.Session
	}{
		"unknown Remote End ID": {e, &tunnel.Session{ID: 12, PseudowireType: tunnel.PseudowireEthernet, PW: &tunnel.PW{RemoteEndID: "\x00\x00\x00\x65"}}},
		"other type":            {e, &tunnel.Session{ID: 13, PseudowireType: tunnel.PseudowireEthernetVLAN, PW: &tunnel.PW{RemoteEndID: "\x00\x00\x00\x64"}}},
		"other peer":            {&entry{peer: netip.MustParseAddrPort("192.0.2.9:1701")}, &tunnel.Session{ID: 14, PseudowireType: tunnel.PseudowireEthernet, PW: &tunnel.PW{RemoteEndID: "\x00\x00\x00\x64"}}},
		"other namespace":       {e, &tunnel.Session{ID: 15, PseudowireType: tunnel.PseudowireEthernetVLAN, PW: &tunnel.PW{RemoteEndID: "x"}}},
	} {
		if _, res := sh.bindPW(tc.e, tc.s); res == nil || res.Code != wire.CDNInvalidDest {
			t.Errorf("%s: result %+v, want CDN %d", name, res, wire.CDNInvalidDest)
		}
	}
	if sh.counters["pseudowire_unknown_remote_end"] != 4 {
		t.Errorf("counted %d unknown Remote End IDs, want 4", sh.counters["pseudowire_unknown_remote_end"])
	}
	// In its namespace the VLAN pseudowire binds, with the sublayer the
	// caller chose (none) and so no sequencing.
	blue := &entry{peer: netip.MustParseAddrPort("192.0.2.2:1701"), netns: "blue"}
	p, res = sh.bindPW(blue, &tunnel.Session{ID: 16, PseudowireType: tunnel.PseudowireEthernetVLAN, PW: &tunnel.PW{RemoteEndID: "x"}})
	if res != nil || len(p.Cookie) != 4 || p.L2SS != tunnel.L2SSNone || p.Sequencing != tunnel.SequenceNone {
		t.Fatalf("namespace pseudowire: %+v %+v", p, res)
	}
}

// Both ends placed the call: the call placed by the end with the lower
// address is kept, at both ends alike.
func TestBindPWTie(t *testing.T) {
	t.Run("ours kept", func(t *testing.T) {
		sh := pwTestShard(t, pwTestConfig())
		ours := &entry{peer: netip.MustParseAddrPort("192.0.2.2:1701"), local: netip.MustParseAddr("192.0.2.1")}
		l := sh.pw.links["eth"]
		l.e, l.sid = ours, 99
		_, res := sh.bindPW(ours, &tunnel.Session{ID: 12, PseudowireType: tunnel.PseudowireEthernet, PW: &tunnel.PW{RemoteEndID: "\x00\x00\x00\x64"}})
		if res == nil || res.Code != wire.CDNTieBreakerLost {
			t.Fatalf("result %+v, want CDN %d", res, wire.CDNTieBreakerLost)
		}
		if l.e != ours || l.sid != 99 {
			t.Fatal("our call was given up")
		}
	})
	t.Run("theirs kept", func(t *testing.T) {
		cfg := pwTestConfig()
		cfg.Pseudowires[0].Peer = netip.MustParseAddr("192.0.2.0")
		sh := pwTestShard(t, cfg)
		old := &entry{t: tunnel.NewResponder(time.Now(), tunnel.Config{Version: 3}), peer: netip.MustParseAddrPort("192.0.2.0:1701")}
		l := sh.pw.links["eth"]
		l.e, l.sid = old, 99
		in := &entry{peer: netip.MustParseAddrPort("192.0.2.0:1701"), local: netip.MustParseAddr("192.0.2.1")}
		if _, res := sh.bindPW(in, &tunnel.Session{ID: 12, PseudowireType: tunnel.PseudowireEthernet, PW: &tunnel.PW{RemoteEndID: "\x00\x00\x00\x64"}}); res != nil {
			t.Fatalf("refused the peer's call: %+v", res)
		}
		if l.e != in || l.sid != 12 {
			t.Fatalf("bound to %p/%d, want the peer's call", l.e, l.sid)
		}
	})
}

// A reload lists what it changes in pseudowires and static tunnels.
func TestDiffPseudowires(t *testing.T) {
	a := pwTestConfig()
	a.StaticTunnels = []StaticTunnel{{Name: "st", Peer: netip.MustParseAddr("192.0.2.3"), Local: netip.MustParseAddr("192.0.2.1"), Encap: EncapUDP,
		Sessions: []StaticSession{{SessionID: 1, PeerSessionID: 2, TAP: "s1", Type: PWEthernet}, {SessionID: 3, PeerSessionID: 4, TAP: "s3", Type: PWEthernet}}}}
	b := pwTestConfig()
	b.Pseudowires = b.Pseudowires[:1]
	b.Pseudowires[0].CookieLen = 4
	b.Pseudowires = append(b.Pseudowires, Pseudowire{Name: "new", Peer: netip.MustParseAddr("192.0.2.5"), Type: PWEthernet, RemoteEndID: "n", TAP: "n0"})
	b.StaticTunnels = []StaticTunnel{{Name: "st", Peer: netip.MustParseAddr("192.0.2.3"), Local: netip.MustParseAddr("192.0.2.1"), Encap: EncapUDP, Hello: true,
		Sessions: []StaticSession{{SessionID: 1, PeerSessionID: 2, TAP: "s1", Type: PWEthernet}, {SessionID: 5, PeerSessionID: 6, TAP: "s5", Type: PWEthernet, Cookie: []byte{1, 2, 3, 4}}}}}
	got := strings.Join(diffConfig(&a, &b).Changes, "\n")
	for _, want := range []string{
		"pseudowire eth changed", "pseudowire new added", "pseudowire blue removed",
		"static tunnel st session 5 added", "static tunnel st session 3 removed", "static tunnel st hello on",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("changes lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "session 1 ") {
		t.Errorf("an unchanged static session is listed:\n%s", got)
	}
}
