package ppp

import (
	"net/netip"
	"testing"
	"time"
)

// perUserDNS accepts everyone and names the subscriber's own servers,
// as a RADIUS MS-Primary/Secondary-DNS-Server reply does.
type perUserDNS struct{ dns1, dns2 netip.Addr }

func (u perUserDNS) Authenticate(*AuthRequest) AuthResult {
	return AuthResult{Accept: true, DNS1: u.dns1, DNS2: u.dns2}
}

// RFC 1877 §1.1, §1.3: the name servers in the authentication result
// replace the configured ones in the server's IPCP Naks, so the client
// ends up with them; only the one given is replaced.
func TestAuthResultDNS(t *testing.T) {
	for _, tc := range []struct {
		name         string
		give         perUserDNS
		want1, want2 string
	}{
		{"both", perUserDNS{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")}, "198.51.100.1", "198.51.100.2"},
		{"primary only", perUserDNS{dns1: netip.MustParseAddr("198.51.100.1")}, "198.51.100.1", "192.0.2.54"},
		{"none", perUserDNS{}, "192.0.2.53", "192.0.2.54"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, clientConfig("alice", "x"), serverConfig(AuthPAP), tc.give)
			p.start()
			p.run(time.Second)
			if p.c.IPCPState() != StateOpened {
				t.Fatalf("IPCP %v; events %v", p.c.IPCPState(), kinds(p.cEvents))
			}
			var got NetworkInfo
			for _, e := range p.cEvents {
				if e.Kind == EventNetworkUp && e.Network.Protocol == ProtoIPCP {
					got = e.Network
				}
			}
			if got.DNS1.String() != tc.want1 || got.DNS2.String() != tc.want2 {
				t.Fatalf("client got DNS %v %v, want %s %s", got.DNS1, got.DNS2, tc.want1, tc.want2)
			}
			for _, e := range p.sEvents {
				if e.Kind == EventNetworkUp && e.Network.Protocol == ProtoIPCP && (e.Network.DNS1.String() != tc.want1 || e.Network.DNS2.String() != tc.want2) {
					t.Fatalf("server reports DNS %v %v", e.Network.DNS1, e.Network.DNS2)
				}
			}
		})
	}
}

// addressing accepts everyone and assigns the given address and name
// servers, as a RADIUS Access-Accept does.
type addressing struct{ peer, dns1, dns2 netip.Addr }

func (u addressing) Authenticate(*AuthRequest) AuthResult {
	return AuthResult{Accept: true, PeerIPv4: u.peer, DNS1: u.dns1, DNS2: u.dns2}
}

// RFC 1332 §3.3, RFC 1877 §1.1: addresses the server cannot offer in
// IPCP (configured as IPv6, or IPv4-mapped) are rejected on the wire
// but reported in NetworkUp as configured; an IPv4 address from the
// authentication result replaces them.
func TestIPCPAddressesReportedAsGiven(t *testing.T) {
	v6peer, v6dns, mapped := netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("::ffff:192.0.2.54")
	for _, tc := range []struct {
		name                   string
		auth                   addressing
		peer, dns1, dns2       netip.Addr
		clientGetsAddr, gotDNS bool
	}{
		{"as configured", addressing{}, v6peer, v6dns, mapped, false, false},
		{"from the authentication result", addressing{netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("198.51.100.1"), netip.Addr{}},
			netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("198.51.100.1"), mapped, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := serverConfig(AuthPAP)
			sc.PeerIPv4, sc.DNS1, sc.DNS2 = v6peer, v6dns, mapped
			p := newPair(t, clientConfig("alice", "x"), sc, tc.auth)
			p.start()
			p.run(time.Second)
			if p.s.IPCPState() != StateOpened || p.c.IPCPState() != StateOpened {
				t.Fatalf("IPCP %v/%v; events %v", p.s.IPCPState(), p.c.IPCPState(), kinds(p.sEvents))
			}
			se, _ := findEvent(p.sEvents, EventNetworkUp, ProtoIPCP)
			if n := se.Network; n.PeerIPv4 != tc.peer || n.DNS1 != tc.dns1 || n.DNS2 != tc.dns2 || n.LocalIPv4 != sc.LocalIPv4 {
				t.Errorf("server reports %v peer %v DNS %v %v", n.LocalIPv4, n.PeerIPv4, n.DNS1, n.DNS2)
			}
			ce, _ := findEvent(p.cEvents, EventNetworkUp, ProtoIPCP)
			if got := ce.Network.LocalIPv4 == tc.peer; got != tc.clientGetsAddr {
				t.Errorf("client address %v", ce.Network.LocalIPv4)
			}
			if got := ce.Network.DNS1 == tc.dns1; got != tc.gotDNS || ce.Network.DNS2.IsValid() {
				t.Errorf("client DNS %v %v", ce.Network.DNS1, ce.Network.DNS2)
			}
		})
	}
}
