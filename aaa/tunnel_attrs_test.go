package aaa

import (
	"bytes"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2868"

	"github.com/l2tpd/l2tpd/ppp"
)

func attr(t radius.Type, v ...byte) []byte { return append([]byte{byte(t), byte(2 + len(v))}, v...) }

// RFC 2868 §3.5: our encryption matches layeh's, and the in-place
// decryption gives the password back, for lengths across block edges.
func TestTunnelPasswordRoundTrip(t *testing.T) {
	secret := []byte("testing123")
	var ra [16]byte
	copy(ra[:], "0123456789abcdef")
	for _, pw := range []string{"", "x", "fifteen-octets!", "sixteen-octets!!", "a-password-longer-than-two-blocks-of-md5"} {
		v, err := EncryptTunnelPassword(1, [2]byte{0x81, 0x23}, []byte(pw), secret, ra)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := radius.NewTunnelPassword([]byte(pw), []byte{0x81, 0x23}, secret, ra[:])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v[1:], ref) {
			t.Fatalf("%q: ours %x, layeh %x", pw, v[1:], ref)
		}
		got, _, err := radius.TunnelPassword(v[1:], secret, ra[:])
		if err != nil || string(got) != pw {
			t.Fatalf("%q: layeh decrypts ours to %q %v", pw, got, err)
		}
		attrs := attr(rfc2868.TunnelPassword_Type, v...)
		a, _ := ParseAttributes(attrs)
		if len(a.Tunnels) != 1 || !a.Tunnels[0].PasswordEncrypted {
			t.Fatalf("%q: before decryption %+v", pw, a.Tunnels)
		}
		decryptTunnelPasswords(attrs, secret, ra)
		a, err = ParseAttributes(attrs)
		if err != nil || len(a.Tunnels) != 1 || a.Tunnels[0].PasswordEncrypted || string(a.Tunnels[0].Password) != pw || a.Tunnels[0].Tag != 1 {
			t.Fatalf("%q: decrypted %+v %v", pw, a.Tunnels, err)
		}
		// A second pass leaves clear text alone (the Salt's top bit is clear).
		decryptTunnelPasswords(attrs, secret, ra)
		if a2, _ := ParseAttributes(attrs); string(a2.Tunnels[0].Password) != pw {
			t.Fatalf("%q: decrypted twice", pw)
		}
	}
}

// RFC 2868 §3: attributes sharing a tag describe one tunnel; integer
// attributes always carry a Tag octet, strings only when it is 1..31.
func TestTunnelAttributesByTag(t *testing.T) {
	var b []byte
	b = append(b, attr(rfc2868.TunnelType_Type, 1, 0, 0, 3)...)
	b = append(b, attr(rfc2868.TunnelMediumType_Type, 1, 0, 0, 1)...)
	b = append(b, attr(rfc2868.TunnelServerEndpoint_Type, append([]byte{1}, "192.0.2.10"...)...)...)
	b = append(b, attr(rfc2868.TunnelPreference_Type, 1, 0, 0, 20)...)
	b = append(b, attr(rfc2868.TunnelType_Type, 2, 0, 0, 3)...)
	b = append(b, attr(rfc2868.TunnelServerEndpoint_Type, append([]byte{2}, "lns2.isp.example"...)...)...)
	b = append(b, attr(rfc2868.TunnelPreference_Type, 2, 0, 0, 10)...)
	b = append(b, attr(rfc2868.TunnelAssignmentID_Type, append([]byte{2}, "group-b"...)...)...)
	b = append(b, attr(rfc2868.TunnelClientAuthID_Type, append([]byte{2}, "lac1"...)...)...)
	b = append(b, attr(rfc2868.TunnelServerAuthID_Type, append([]byte{2}, "lns2"...)...)...)
	// Untagged: the string starts with a printable octet.
	b = append(b, attr(rfc2868.TunnelServerEndpoint_Type, []byte("2001:db8::1")...)...)
	b = append(b, attr(rfc2868.TunnelType_Type, 0, 0, 0, 3)...)
	a, err := ParseAttributes(b)
	if err != nil || a.Malformed != 0 {
		t.Fatalf("%v malformed %d", err, a.Malformed)
	}
	if len(a.Tunnels) != 3 {
		t.Fatalf("tunnels %+v", a.Tunnels)
	}
	t1, t2, t0 := a.Tunnels[0], a.Tunnels[1], a.Tunnels[2]
	if t1.Tag != 1 || t1.Type != TunnelTypeL2TP || t1.MediumType != TunnelMediumIPv4 || t1.Preference != 20 || !t1.HasPreference {
		t.Errorf("tag 1: %+v", t1)
	}
	if addr, ok := t1.ServerAddr(); !ok || addr.String() != "192.0.2.10" {
		t.Errorf("tag 1 endpoint %v %v", addr, ok)
	}
	if t2.ServerEndpoint != "lns2.isp.example" || t2.AssignmentID != "group-b" || t2.ClientAuthID != "lac1" || t2.ServerAuthID != "lns2" || t2.Preference != 10 {
		t.Errorf("tag 2: %+v", t2)
	}
	if _, ok := t2.ServerAddr(); ok {
		t.Error("FQDN parsed as an address")
	}
	if t0.Tag != 0 || t0.ServerEndpoint != "2001:db8::1" || t0.Type != TunnelTypeL2TP || t0.HasPreference {
		t.Errorf("untagged: %+v", t0)
	}
	// Wrong sizes and tags out of range are counted, not fatal.
	bad := attr(rfc2868.TunnelType_Type, 0x20, 0, 0, 3)
	bad = append(bad, attr(rfc2868.TunnelPreference_Type, 1, 0, 0)...)
	bad = append(bad, attr(rfc2868.TunnelPassword_Type, 1, 0x80, 0, 1)...)
	if a, err := ParseAttributes(bad); err != nil || a.Malformed != 3 || len(a.Tunnels) != 0 {
		t.Fatalf("bad: %+v %v", a, err)
	}
}

// An Access-Accept with Tunnel-Password reaches the caller decrypted
// with the server's secret and our Request Authenticator (RFC 2868 §3.5).
func TestClientDecryptsTunnelPassword(t *testing.T) {
	conn, addr := listenDAE(t)
	defer conn.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var ra [16]byte
			copy(ra[:], buf[4:20])
			pw, _ := EncryptTunnelPassword(1, [2]byte{0x85, 0x01}, []byte("tunnel-secret"), []byte("testing123"), ra)
			attrs := attr(rfc2868.TunnelType_Type, 1, 0, 0, 3)
			attrs = append(attrs, attr(rfc2868.TunnelServerEndpoint_Type, append([]byte{1}, "192.0.2.7"...)...)...)
			attrs = append(attrs, attr(rfc2868.TunnelPassword_Type, pw...)...)
			conn.WriteToUDPAddrPort(fakeResponse(buf[:n], codeAccessAccept, attrs, "testing123", true), from)
		}
	}()
	c, err := NewClient(Config{Auth: []Server{{Addr: addr, Secret: "testing123"}}, Timing: Timing{Timeout: time.Second, Retries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := authSync(t, c, &Request{Auth: ppp.AuthRequest{Protocol: ppp.AuthPAP, User: "u@isp.example", Password: []byte("p")}})
	if !r.Accept || len(r.Attrs.Tunnels) != 1 {
		t.Fatalf("result %+v", r)
	}
	tn := r.Attrs.Tunnels[0]
	if tn.PasswordEncrypted || string(tn.Password) != "tunnel-secret" || tn.ServerEndpoint != "192.0.2.7" {
		t.Fatalf("tunnel %+v", tn)
	}
}

// FuzzTunnelAttributes: decoding never panics, and decryption after
// encryption gives any password back.
func FuzzTunnelAttributes(f *testing.F) {
	f.Add([]byte{64, 6, 1, 0, 0, 3, 67, 5, 1, 'a', 'b'}, []byte("pw"), []byte("s"))
	f.Add([]byte{69, 21, 1, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte(""), []byte("x"))
	f.Fuzz(func(t *testing.T, b, pw, secret []byte) {
		ParseAttributes(b)
		c := append([]byte(nil), b...)
		decryptTunnelPasswords(c, secret, [16]byte{1})
		ParseAttributes(c)
		v, err := EncryptTunnelPassword(3, [2]byte{1, 2}, pw, secret, [16]byte{9})
		if err != nil {
			if len(pw) <= 239 {
				t.Fatalf("encrypt %d octets: %v", len(pw), err)
			}
			return
		}
		a := attr(rfc2868.TunnelPassword_Type, v...)
		decryptTunnelPasswords(a, secret, [16]byte{9})
		got, _ := ParseAttributes(a)
		if len(got.Tunnels) != 1 || !bytes.Equal(got.Tunnels[0].Password, pw) {
			t.Fatalf("round trip %x → %+v", pw, got.Tunnels)
		}
	})
}
