package config

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/l2tpd/l2tpd/control"
)

const pwDoc = `
listen: ["0.0.0.0:1701", "ip:192.0.2.1", "ip:[2001:db8::1]"]
pseudowires:
  - name: site-b
    peer: 192.0.2.2
    local: 192.0.2.1
    encap: ip
    type: ethernet
    vc_id: 100
    tap: pw-b
    cookie: 8
    sequencing: all
  - name: site-c-vlan
    peer: 2001:db8::3
    netns: blue
    type: vlan
    remote_end_id: "c:200"
    initiate: false
    tap: trunk0
    vlan: 100
    mtu: 9000
    l2_specific: none
    port: 1702
  - name: site-c-vlan2
    peer: 2001:db8::3
    netns: blue
    type: vlan
    vc_id: 201
    tap: trunk0
    vlan: 101
static_tunnels:
  - name: static-d
    local: 192.0.2.1
    peer: 192.0.2.4
    local_port: 1701
    peer_port: 5000
    hello: true
    sessions:
      - session_id: 1000
        peer_session_id: 2000
        cookie: "01:02:03:04"
        peer_cookie: "a1a2a3a4a5a6a7a8"
        tap: st-d
      - session_id: 1001
        peer_session_id: 2001
        type: vlan
        tap: st-trunk
        vlan: 300
        l2_specific: none
        mtu: 1400
`

func TestParsePseudowires(t *testing.T) {
	f, err := Parse([]byte(pwDoc))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Control()
	want := []control.Pseudowire{
		{Name: "site-b", Peer: netip.MustParseAddr("192.0.2.2"), Local: netip.MustParseAddr("192.0.2.1"), Port: 1701, Encap: "ip",
			Type: "ethernet", RemoteEndID: "\x00\x00\x00\x64", Initiate: true, TAP: "pw-b", MTU: 1500, CookieLen: 8, L2SpecificSublayer: true, Sequencing: true},
		{Name: "site-c-vlan", Peer: netip.MustParseAddr("2001:db8::3"), Port: 1702, Encap: "udp", Netns: "blue",
			Type: "vlan", RemoteEndID: "c:200", TAP: "trunk0", VLAN: 100, MTU: 9000},
		{Name: "site-c-vlan2", Peer: netip.MustParseAddr("2001:db8::3"), Port: 1701, Encap: "udp", Netns: "blue",
			Type: "vlan", RemoteEndID: "\x00\x00\x00\xc9", Initiate: true, TAP: "trunk0", VLAN: 101, MTU: 1500, L2SpecificSublayer: true},
	}
	if !reflect.DeepEqual(c.Pseudowires, want) {
		t.Fatalf("pseudowires\n%+v\nwant\n%+v", c.Pseudowires, want)
	}
	wantST := []control.StaticTunnel{{
		Name: "static-d", Peer: netip.MustParseAddr("192.0.2.4"), Local: netip.MustParseAddr("192.0.2.1"), PeerPort: 5000, LocalPort: 1701, Encap: "udp", Hello: true,
		Sessions: []control.StaticSession{
			{SessionID: 1000, PeerSessionID: 2000, Cookie: []byte{1, 2, 3, 4}, PeerCookie: []byte{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8}, L2SpecificSublayer: true, Type: "ethernet", TAP: "st-d", MTU: 1500},
			{SessionID: 1001, PeerSessionID: 2001, Type: "vlan", TAP: "st-trunk", VLAN: 300, MTU: 1400},
		},
	}}
	if !reflect.DeepEqual(c.StaticTunnels, wantST) {
		t.Fatalf("static tunnels\n%+v\nwant\n%+v", c.StaticTunnels, wantST)
	}
	if !reflect.DeepEqual(f.Listen, []string{"0.0.0.0:1701", "ip:192.0.2.1", "ip:[2001:db8::1]"}) {
		t.Fatalf("listen %v", f.Listen)
	}
	// Control() copies: the running config cannot be changed through it.
	c.StaticTunnels[0].Sessions[0].SessionID = 9
	if f.StaticTunnels[0].Sessions[0].SessionID != 1000 {
		t.Fatal("Control shares static sessions with the File")
	}
}

func TestPseudowireErrors(t *testing.T) {
	const pw = "pseudowires:\n  - name: a\n    peer: 192.0.2.2\n    type: ethernet\n    vc_id: 1\n    tap: t0\n"
	const st = "static_tunnels:\n  - name: s\n    local: 192.0.2.1\n    peer: 192.0.2.2\n    sessions:\n      - {session_id: 1, peer_session_id: 2, tap: s0}\n"
	if _, err := Parse([]byte(pw)); err != nil {
		t.Fatalf("base pseudowire: %v", err)
	}
	if _, err := Parse([]byte(st)); err != nil {
		t.Fatalf("base static tunnel: %v", err)
	}
	tests := []struct {
		name, doc string
		path      string
		line      int
		msg       string
	}{
		{"listen ip bad", "listen: [\"ip:nowhere\"]\n", "listen[0]", 1, "want ip: and an IP address"},
		{"pw unknown key", pw + "    colour: red\n", "pseudowires[0].colour", 7, "unknown key"},
		{"pw no peer", "pseudowires:\n  - {name: a, type: ethernet, vc_id: 1, tap: t0}\n", "pseudowires[0].peer", 2, "required"},
		{"pw no name", "pseudowires:\n  - {peer: 192.0.2.2, type: ethernet, vc_id: 1, tap: t0}\n", "pseudowires[0].name", 2, "required"},
		{"pw no id", "pseudowires:\n  - {name: a, peer: 192.0.2.2, type: ethernet, tap: t0}\n", "pseudowires[0].vc_id", 2, "required (or remote_end_id)"},
		{"pw both ids", pw + "    remote_end_id: x\n", "pseudowires[0].remote_end_id", 7, "either vc_id or remote_end_id"},
		{"pw vc zero", "pseudowires:\n  - {name: a, peer: 192.0.2.2, type: ethernet, vc_id: 0, tap: t0}\n", "pseudowires[0].vc_id", 2, "from 1 to 4294967295"},
		{"pw bad type", "pseudowires:\n  - {name: a, peer: 192.0.2.2, type: atm, vc_id: 1, tap: t0}\n", "pseudowires[0].type", 2, "want ethernet or vlan"},
		{"pw no type", "pseudowires:\n  - {name: a, peer: 192.0.2.2, vc_id: 1, tap: t0}\n", "pseudowires[0].type", 2, "required"},
		{"pw no tap", "pseudowires:\n  - {name: a, peer: 192.0.2.2, type: ethernet, vc_id: 1}\n", "pseudowires[0].tap", 2, "required"},
		{"pw long tap", "pseudowires:\n  - {name: a, peer: 192.0.2.2, type: ethernet, vc_id: 1, tap: abcdefghijklmnop}\n", "pseudowires[0].tap", 2, "longer than 15"},
		{"pw vlan missing", "pseudowires:\n  - {name: a, peer: 192.0.2.2, type: vlan, vc_id: 1, tap: t0}\n", "pseudowires[0].vlan", 2, "required for type vlan"},
		{"pw vlan on ethernet", pw + "    vlan: 5\n", "pseudowires[0].vlan", 7, "only type vlan"},
		{"pw vlan range", "pseudowires:\n  - {name: a, peer: 192.0.2.2, type: vlan, vc_id: 1, tap: t0, vlan: 4095}\n", "pseudowires[0].vlan", 2, "from 1 to 4094"},
		{"pw cookie length", pw + "    cookie: 6\n", "pseudowires[0].cookie", 7, "0, 4 or 8"},
		{"pw encap", pw + "    encap: gre\n", "pseudowires[0].encap", 7, "want udp or ip"},
		{"pw ip needs local", pw + "    encap: ip\n", "pseudowires[0].local", 7, "required with encap ip"},
		{"pw family", pw + "    local: 2001:db8::1\n", "pseudowires[0].local", 7, "same address family"},
		{"pw seq without l2ss", pw + "    l2_specific: none\n    sequencing: all\n", "pseudowires[0].sequencing", 8, "needs l2_specific: default (line 7)"},
		{"pw bad l2ss", pw + "    l2_specific: atm\n", "pseudowires[0].l2_specific", 7, "want default or none"},
		{"pw bad sequencing", pw + "    sequencing: some\n", "pseudowires[0].sequencing", 7, "want none or all"},
		{"pw bad netns", pw + "    netns: a/b\n", "pseudowires[0].netns", 7, "invalid namespace name"},
		{"pw duplicate name", pw + "  - {name: a, peer: 192.0.2.3, type: ethernet, vc_id: 2, tap: t1}\n", "pseudowires[1].name", 7, "duplicate name \"a\" (first used on line 2)"},
		{"pw same id same peer", pw + "  - {name: b, peer: 192.0.2.2, type: ethernet, vc_id: 1, tap: t1}\n", "pseudowires[1].vc_id", 7, "same ID (line 5)"},
		{"pw tap shared", pw + "  - {name: b, peer: 192.0.2.3, type: ethernet, vc_id: 1, tap: t0}\n", "pseudowires[1].tap", 7, "already carries a pseudowire (line 6)"},
		{"pw vlan reused", "pseudowires:\n  - {name: a, peer: 192.0.2.2, type: vlan, vc_id: 1, tap: t0, vlan: 7}\n  - {name: b, peer: 192.0.2.2, type: vlan, vc_id: 2, tap: t0, vlan: 7}\n", "pseudowires[1].vlan", 3, "VLAN 7 on TAP \"t0\" is already used (line 2)"},
		{"st no local", "static_tunnels:\n  - name: s\n    peer: 192.0.2.2\n    sessions: [{session_id: 1, peer_session_id: 2, tap: s0}]\n", "static_tunnels[0].local", 2, "required"},
		{"st no sessions", "static_tunnels:\n  - {name: s, local: 192.0.2.1, peer: 192.0.2.2}\n", "static_tunnels[0].sessions", 2, "at least one session"},
		{"st cookie hex", "static_tunnels:\n  - name: s\n    local: 192.0.2.1\n    peer: 192.0.2.2\n    sessions:\n      - session_id: 1\n        peer_session_id: 2\n        tap: s0\n        cookie: \"xyz\"\n", "static_tunnels[0].sessions[0].cookie", 9, "invalid cookie"},
		{"st cookie length", "static_tunnels:\n  - name: s\n    local: 192.0.2.1\n    peer: 192.0.2.2\n    sessions:\n      - {session_id: 1, peer_session_id: 2, tap: s0, peer_cookie: \"010203\"}\n", "static_tunnels[0].sessions[0].peer_cookie", 6, "0, 4 or 8 octets, got 3"},
		{"st session id zero", "static_tunnels:\n  - name: s\n    local: 192.0.2.1\n    peer: 192.0.2.2\n    sessions:\n      - {session_id: 0, peer_session_id: 2, tap: s0}\n", "static_tunnels[0].sessions[0].session_id", 6, "from 1 to"},
		{"st no peer session", "static_tunnels:\n  - name: s\n    local: 192.0.2.1\n    peer: 192.0.2.2\n    sessions:\n      - {session_id: 1, tap: s0}\n", "static_tunnels[0].sessions[0].peer_session_id", 6, "required"},
		{"st duplicate session id", "static_tunnels:\n  - name: s\n    local: 192.0.2.1\n    peer: 192.0.2.2\n    sessions:\n      - {session_id: 1, peer_session_id: 2, tap: s0}\n      - {session_id: 1, peer_session_id: 3, tap: s1}\n", "static_tunnels[0].sessions[1].session_id", 7, "already used by a static session (line 6)"},
		{"st name clashes with pw", pw + "static_tunnels:\n  - name: a\n    local: 192.0.2.1\n    peer: 192.0.2.2\n    sessions: [{session_id: 1, peer_session_id: 2, tap: s0}]\n", "static_tunnels[0].name", 8, "duplicate name \"a\""},
		{"st tap shared with pw", pw + "static_tunnels:\n  - name: s\n    local: 192.0.2.1\n    peer: 192.0.2.2\n    sessions: [{session_id: 1, peer_session_id: 2, tap: t0}]\n", "static_tunnels[0].sessions[0].tap", 11, "already carries a pseudowire"},
		{"st hello not bool", st + "    hello: yes please\n", "static_tunnels[0].hello", 7, "expected true or false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v, want an error at %s", err, tc.path)
			}
			for _, e := range errs {
				if e.Path == tc.path && e.Line == tc.line && strings.Contains(e.Msg, tc.msg) {
					return
				}
			}
			t.Fatalf("got\n%v\nwant %s (line %d): %s", err, tc.path, tc.line, tc.msg)
		})
	}
}

// A TAP in another namespace is another device.
func TestPseudowireTAPPerNamespace(t *testing.T) {
	doc := "pseudowires:\n  - {name: a, peer: 192.0.2.2, type: ethernet, vc_id: 1, tap: t0}\n  - {name: b, peer: 192.0.2.2, netns: red, type: ethernet, vc_id: 1, tap: t0}\n"
	if _, err := Parse([]byte(doc)); err != nil {
		t.Fatal(err)
	}
}
