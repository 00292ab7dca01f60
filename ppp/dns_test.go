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
