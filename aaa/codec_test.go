package aaa

import (
	"crypto/md5"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2868"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/microsoft"

	"github.com/l2tpd/l2tpd/ppp"
)

func md5sum(pkt []byte, secret string) []byte {
	h := md5.New()
	h.Write(pkt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// RFC 2865 §5.22, RFC 3162 §2.5.
func TestParseRoute(t *testing.T) {
	for in, want := range map[string]Route{
		"192.0.2.0/24 192.0.2.1 1":   {netip.MustParsePrefix("192.0.2.0/24"), netip.MustParseAddr("192.0.2.1"), 1},
		"10.0.0.0 0.0.0.0 5":         {netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("0.0.0.0"), 5},
		"172.16.0.0":                 {Prefix: netip.MustParsePrefix("172.16.0.0/16")},
		"198.51.100.7/24":            {Prefix: netip.MustParsePrefix("198.51.100.0/24")},
		"2001:db8::/32 :: 1":         {netip.MustParsePrefix("2001:db8::/32"), netip.MustParseAddr("::"), 1},
		"192.168.1.0/24 0.0.0.0 1 2": {netip.MustParsePrefix("192.168.1.0/24"), netip.MustParseAddr("0.0.0.0"), 1},
	} {
		got, err := ParseRoute(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "10.0.0.0/33", "10.0.0.0/8 2001:db8::1", "10.0.0.0/8 10.0.0.1 -1"} {
		if _, err := ParseRoute(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Attributes encoded with layeh's dictionaries decode into the same
// values (RFC 2865 §5, RFC 2869 §5.19, RFC 3162 §2.3, RFC 4818, RFC 2548).
func TestParseAttributesRoundTrip(t *testing.T) {
	p := radius.New(radius.CodeAccessAccept, []byte("s"))
	rfc2865.FramedIPAddress_Set(p, netip.MustParseAddr("10.0.0.9").AsSlice())
	rfc2865.FramedIPNetmask_Set(p, netip.MustParseAddr("255.255.255.0").AsSlice())
	rfc2869.FramedPool_SetString(p, "pool-a")
	p.Add(97, radius.Attribute{0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0})
	p.Add(123, radius.Attribute{0, 56, 0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0x10})
	rfc2865.FramedRoute_AddString(p, "203.0.113.0/24 0.0.0.0 3")
	rfc2865.FramedRoute_AddString(p, "bogus")
	rfc2865.SessionTimeout_Set(p, 7200)
	rfc2865.IdleTimeout_Set(p, 900)
	rfc2869.AcctInterimInterval_Set(p, 60)
	rfc2865.Class_Add(p, []byte("c1"))
	rfc2865.Class_Add(p, []byte("c2"))
	rfc2865.ReplyMessage_AddString(p, "a")
	rfc2865.ReplyMessage_AddString(p, "b")
	microsoft.MSPrimaryDNSServer_Set(p, netip.MustParseAddr("192.0.2.53").AsSlice())
	microsoft.MSSecondaryDNSServer_Set(p, netip.MustParseAddr("192.0.2.54").AsSlice())
	s := "S=0123456789ABCDEF0123456789ABCDEF01234567"
	microsoft.MSCHAP2Success_Set(p, append([]byte{7}, s...))
	rfc2868.TunnelType_Add(p, 1, rfc2868.TunnelType_Value_L2TP) // RFC 2868 §3.1
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseAttributes(b[headerLen:])
	if err != nil {
		t.Fatal(err)
	}
	want := Attributes{
		FramedIPAddress: netip.MustParseAddr("10.0.0.9"), FramedIPNetmask: netip.MustParseAddr("255.255.255.0"),
		FramedPool: "pool-a", FramedIPv6Prefix: []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/64")},
		DelegatedIPv6Prefix: []netip.Prefix{netip.MustParsePrefix("2001:db8:ff00:1000::/56")},
		FramedRoutes:        []Route{{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParseAddr("0.0.0.0"), 3}},
		DNS1:                netip.MustParseAddr("192.0.2.53"), DNS2: netip.MustParseAddr("192.0.2.54"),
		SessionTimeout: 2 * time.Hour, IdleTimeout: 15 * time.Minute, AcctInterimInterval: time.Minute,
		Class: [][]byte{[]byte("c1"), []byte("c2")}, ReplyMessage: "a\nb", MSCHAP2Success: s, BadRoutes: 1,
		Tunnels: []Tunnel{{Tag: 1, Type: TunnelTypeL2TP}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// RFC 2865 §5.3 (CHAP-Password), RFC 2548 §2.3.2 (MS-CHAP2-Response
// layout), RFC 2868 §3 (tunnel attributes, tag 1), RFC 2869 §5.11.
func TestAccessAttributes(t *testing.T) {
	r := &Request{Session: Session{NASPort: 3, TxConnectSpeed: 1000, RxConnectSpeed: 2000, AcctSessionID: "a1",
		TunnelClientEndpoint: netip.MustParseAddr("2001:db8::1"), TunnelServerEndpoint: netip.MustParseAddr("2001:db8::2"), TunnelClientAuthID: "lac"},
		Auth: ppp.AuthRequest{Protocol: ppp.AuthMSCHAPv2, User: "bob", ID: 4, Challenge: make([]byte, 16)}}
	r.Auth.PeerChallenge[0], r.Auth.NTResponse[23] = 0xaa, 0xbb
	attrs, err := accessAttributes(NAS{Identifier: "n", IPAddress: netip.MustParseAddr("192.0.2.1")}, r)
	if err != nil {
		t.Fatal(err)
	}
	p := &radius.Packet{Attributes: attrs}
	resp := microsoft.MSCHAP2Response_Get(p)
	if len(resp) != 50 || resp[0] != 4 || resp[2] != 0xaa || resp[49] != 0xbb {
		t.Fatalf("MS-CHAP2-Response %x", resp)
	}
	if tag, v := rfc2868.TunnelMediumType_Get(p); tag != 1 || v != rfc2868.TunnelMediumType_Value_IPv6 {
		t.Errorf("Tunnel-Medium-Type %d %v", tag, v)
	}
	if tag, v := rfc2868.TunnelClientEndpoint_GetString(p); tag != 1 || v != "2001:db8::1" {
		t.Errorf("Tunnel-Client-Endpoint %d %q", tag, v)
	}
	if rfc2869.ConnectInfo_GetString(p) != "1000/2000" || rfc2865.NASPortType_Get(p) != rfc2865.NASPortType_Value_Virtual ||
		rfc2865.ServiceType_Get(p) != rfc2865.ServiceType_Value_FramedUser || rfc2865.FramedProtocol_Get(p) != rfc2865.FramedProtocol_Value_PPP {
		t.Errorf("session attributes %v", attrs)
	}
	r.Auth = ppp.AuthRequest{Protocol: ppp.AuthCHAPMD5, User: "bob", ID: 9, Challenge: []byte("ch"), Response: make([]byte, 16)}
	attrs, _ = accessAttributes(NAS{}, r)
	p = &radius.Packet{Attributes: attrs}
	if cp := rfc2865.CHAPPassword_Get(p); len(cp) != 17 || cp[0] != 9 || string(rfc2865.CHAPChallenge_Get(p)) != "ch" {
		t.Errorf("CHAP attributes %x", cp)
	}
	r.Auth.Response = r.Auth.Response[:15]
	if _, err := accessAttributes(NAS{}, r); err == nil {
		t.Error("short CHAP response accepted")
	}
}

func FuzzParseAttributes(f *testing.F) {
	f.Add([]byte{8, 6, 10, 0, 0, 1, 27, 6, 0, 0, 1, 0})
	f.Add([]byte{26, 12, 0, 0, 1, 55, 28, 6, 1, 2, 3, 4})
	f.Add([]byte{97, 4, 0, 0, 22, 10, 'x', '/', '1', ' ', '0', '.', '0', '.'})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAttributes(b)
		if err != nil {
			return
		}
		for _, p := range append(a.FramedIPv6Prefix, a.DelegatedIPv6Prefix...) {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("prefix %v", p)
			}
		}
		for _, r := range a.FramedRoutes {
			if !r.Prefix.IsValid() {
				t.Fatalf("route %+v", r)
			}
		}
	})
}

// FuzzReceive feeds responses to an engine with one request in flight:
// nothing panics and only a correctly signed answer completes it.
func FuzzReceive(f *testing.F) {
	f.Add([]byte{2, 0, 0, 20}, false)
	f.Add([]byte{2, 0, 0, 38, 80, 18}, true)
	f.Fuzz(func(t *testing.T, b []byte, sign bool) {
		e := newTestEngine([]Server{{Addr: addrPort("127.0.0.1:1"), Secret: "s"}}, Timing{})
		var got []error
		e.submit(t0, papTxn(t, &got))
		req := takeOut(e)[0].pkt
		if sign && len(b) >= 4 && len(b) <= 1000 {
			b = fakeResponse(req, b[0], b[4:], "s", b[1]&1 == 1)
		}
		e.receive(t0, 0, 0, b)
		if len(e.done) == 1 {
			resp := e.done[0].resp
			if resp[0] != codeAccessAccept && resp[0] != codeAccessReject && resp[0] != codeAccessChallenge {
				t.Fatalf("completed by code %d", resp[0])
			}
			if off, err := findMA(resp); err != nil || off < 0 {
				t.Fatal("completed without Message-Authenticator")
			}
		}
	})
}
