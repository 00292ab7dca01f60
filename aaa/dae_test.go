package aaa

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"layeh.com/radius"
)

var daeFrom = netip.MustParseAddr("192.0.2.10")

func signedDAE(t testing.TB, code byte, attrs radius.Attributes, secret string) []byte {
	pkt, err := encodePacket(nil, code, 7, [16]byte{}, attrs, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

func errorCause(t *testing.T, resp []byte) uint32 {
	t.Helper()
	p, err := radius.Parse(resp, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := p.Lookup(101)
	if !ok {
		return 0
	}
	return binary.BigEndian.Uint32(v)
}

type failingSessions struct{}

func (failingSessions) Disconnect(Match) (int, error)     { return 0, errors.New("shard busy") }
func (failingSessions) Change(Match, Change) (int, error) { return 0, errors.New("shard busy") }

// RFC 5176 §3.1, §3.5, §2.3.
func TestDAEHandle(t *testing.T) {
	sess := &recordingSessions{n: 2}
	d := NewDAE(DAEConfig{Clients: []DAEClient{{Addr: daeFrom, Secret: "s3"}}, NAS: NAS{Identifier: "nas1"}}, sess)
	attrs := func(kv ...any) radius.Attributes {
		var a radius.Attributes
		for i := 0; i < len(kv); i += 2 {
			switch v := kv[i+1].(type) {
			case string:
				a.Add(radius.Type(kv[i].(int)), radius.Attribute(v))
			case uint32:
				a.Add(radius.Type(kv[i].(int)), radius.NewInteger(v))
			}
		}
		return a
	}
	cases := []struct {
		name  string
		code  byte
		attrs radius.Attributes
		from  netip.Addr
		want  byte // 0: dropped
		cause uint32
	}{
		{"disconnect by session", codeDisconnectRequest, attrs(44, "live", 32, "nas1"), daeFrom, codeDisconnectACK, 0},
		{"disconnect by user", codeDisconnectRequest, attrs(1, "live-user"), daeFrom, codeDisconnectACK, 0},
		{"unknown session", codeDisconnectRequest, attrs(44, "gone"), daeFrom, codeDisconnectNAK, ErrorSessionNotFound},
		{"no identification", codeDisconnectRequest, attrs(32, "nas1"), daeFrom, codeDisconnectNAK, ErrorMissingAttribute},
		{"other NAS", codeDisconnectRequest, attrs(44, "live", 32, "nas2"), daeFrom, codeDisconnectNAK, ErrorNASIdentification},
		{"timeout in disconnect", codeDisconnectRequest, attrs(44, "live", 27, uint32(5)), daeFrom, codeDisconnectNAK, ErrorUnsupportedAttribute},
		{"unknown attribute", codeDisconnectRequest, attrs(44, "live", 11, "filter"), daeFrom, codeDisconnectNAK, ErrorUnsupportedAttribute},
		{"CoA", codeCoARequest, attrs(44, "live", 27, uint32(60)), daeFrom, codeCoAACK, 0},
		{"CoA without change", codeCoARequest, attrs(44, "live"), daeFrom, codeCoANAK, ErrorMissingAttribute},
		{"unknown client", codeDisconnectRequest, attrs(44, "live"), netip.MustParseAddr("192.0.2.99"), 0, 0},
	}
	for _, c := range cases {
		req := signedDAE(t, c.code, c.attrs, "s3")
		resp, ok := d.Handle(nil, req, c.from)
		if c.want == 0 {
			if ok {
				t.Errorf("%s: answered", c.name)
			}
			continue
		}
		if !ok || resp[0] != c.want || resp[1] != req[1] {
			t.Errorf("%s: ok %v code %v, want %d", c.name, ok, resp, c.want)
			continue
		}
		var ra [16]byte
		copy(ra[:], req[4:20])
		if err := verifyResponse(resp, &ra, []byte("s3"), true); err != nil {
			t.Errorf("%s: response does not verify: %v", c.name, err)
		}
		if got := errorCause(t, resp); got != c.cause {
			t.Errorf("%s: Error-Cause %d, want %d", c.name, got, c.cause)
		}
	}
	if len(sess.changes) != 1 || sess.changes[0].SessionTimeout != time.Minute {
		t.Errorf("changes %+v", sess.changes)
	}
	// A wrong secret or a broken Message-Authenticator: silently dropped.
	req := signedDAE(t, codeDisconnectRequest, attrs(44, "live"), "other")
	if _, ok := d.Handle(nil, req, daeFrom); ok {
		t.Error("request with a wrong authenticator answered")
	}
	req = signedDAE(t, codeDisconnectRequest, attrs(44, "live"), "s3")
	req[headerLen+3] ^= 0xff
	if _, ok := d.Handle(nil, req, daeFrom); ok {
		t.Error("request with a bad Message-Authenticator answered")
	}
	if st := d.Stats(); st.DropAuth != 2 || st.DropClient != 1 {
		t.Errorf("stats %+v", st)
	}
	// Errors from the control plane: 506.
	f := NewDAE(DAEConfig{Clients: []DAEClient{{Addr: daeFrom, Secret: "s3"}}}, failingSessions{})
	resp, ok := f.Handle(nil, signedDAE(t, codeDisconnectRequest, attrs(44, "live"), "s3"), daeFrom)
	if !ok || resp[0] != codeDisconnectNAK || errorCause(t, resp) != ErrorResourcesUnavailable {
		t.Errorf("failing sessions: %v", resp)
	}
}

func FuzzDAEHandle(f *testing.F) {
	f.Add(byte(40), []byte{44, 6, 'l', 'i', 'v', 'e'}, false)
	f.Add(byte(43), []byte{44, 6, 'l', 'i', 'v', 'e', 27, 6, 0, 0, 0, 60}, false)
	f.Add(byte(40), []byte{8, 6, 10, 0, 0, 1, 33, 4, 1, 2}, false)
	f.Add(byte(40), []byte{1, 2}, true)
	d := NewDAE(DAEConfig{Clients: []DAEClient{{Addr: daeFrom, Secret: "s3"}}, NAS: NAS{Identifier: "nas1", IPAddress: netip.MustParseAddr("192.0.2.1")}}, &recordingSessions{n: 1})
	f.Fuzz(func(t *testing.T, code byte, body []byte, raw bool) {
		pkt := body
		if !raw {
			// Sign the body so parsing beyond the authenticator runs.
			if len(body) > maxPacket-headerLen {
				return
			}
			pkt = append([]byte{code, 1, 0, 0}, make([]byte, 16)...)
			pkt = append(pkt, body...)
			binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
			h := md5sum(pkt, "s3")
			copy(pkt[4:20], h)
		}
		resp, ok := d.Handle(nil, pkt, daeFrom)
		if !ok {
			return
		}
		if _, err := checkHeader(resp); err != nil || (resp[0] != pkt[0]+1 && resp[0] != pkt[0]+2) {
			t.Fatalf("bad response %x to %x", resp, pkt)
		}
	})
}
