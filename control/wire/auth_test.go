package wire

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"errors"
	"testing"
)

// RFC 2661 §4.4.3 / §5.1.1: the response is MD5 over the message type of
// the message that carries it as one octet, the secret and the challenge.
func TestChallengeResponse(t *testing.T) {
	secret, challenge := []byte("secret"), []byte("0123456789abcdef")
	want := md5.Sum([]byte("\x02secret0123456789abcdef"))
	if got := ChallengeResponse(MsgSCCRP, secret, challenge); got != want {
		t.Errorf("SCCRP response %x, want %x", got, want)
	}
	want3 := md5.Sum([]byte("\x03secret0123456789abcdef"))
	if got := ChallengeResponse(MsgSCCCN, secret, challenge); got != want3 || got == want {
		t.Errorf("SCCCN response %x, want %x", got, want3)
	}
}

func buildSigned(t *testing.T, enc Encap, mt MsgType, sha bool, key, local, remote []byte) []byte {
	t.Helper()
	b := AppendControlHeader(nil, enc, Header{Version: 3, TunnelID: 42, Ns: 3, Nr: 4})
	b = AppendMessageType(b, mt)
	b, off := AppendMessageDigestAVP(b, sha)
	if b[off-6] != 0x80 || int(b[off-5]) != 6+1+map[bool]int{false: 16, true: 20}[sha] || b[off] != map[bool]byte{false: 0, true: 1}[sha] {
		t.Fatalf("digest AVP % x", b[off-6:])
	}
	b = AppendAVPString(b, true, VendorIETF, AVPHostName, "lcce")
	FinishControl(b, 0, enc)
	SignDigestNonce(b, enc, off, key, local, remote)
	return b
}

// RFC 3931 §5.4.1: HMAC over local nonce, remote nonce and the message
// with the digest zeroed; the receiver reverses the nonces.
func TestDigestSignVerify(t *testing.T) {
	key := DeriveAuthKey([]byte("secret"))
	mac := hmac.New(md5.New, []byte("secret"))
	mac.Write([]byte{2})
	if !bytes.Equal(key, mac.Sum(nil)) {
		t.Fatal("auth key is not HMAC-MD5(secret, 2)")
	}
	a, b := []byte("nonce of A"), []byte("nonce of B")
	for _, enc := range []Encap{EncapUDP, EncapIP} {
		for _, sha := range []bool{false, true} {
			msg := buildSigned(t, enc, MsgHello, sha, key, a, b)

			// The digest computed by hand.
			body := msg
			if enc == EncapIP {
				body = msg[4:]
			}
			zeroed := append([]byte(nil), body...)
			n := 16
			h := hmac.New(md5.New, key)
			if sha {
				n = 20
				h = hmac.New(sha1.New, key)
			}
			clear(zeroed[12+8+7 : 12+8+7+n])
			h.Write(a)
			h.Write(b)
			h.Write(zeroed)
			if !bytes.Equal(h.Sum(nil), body[12+8+7:12+8+7+n]) {
				t.Fatalf("enc %d sha %v: digest differs from HMAC(key, A+B+msg)", enc, sha)
			}

			// B receives: its local nonce is b, the remote one a.
			if err := VerifyDigestNonce(msg, enc, key, b, a); err != nil {
				t.Errorf("enc %d sha %v: %v", enc, sha, err)
			}
			if err := VerifyDigestNonce(msg, enc, key, a, b); !errors.Is(err, ErrBadDigest) {
				t.Errorf("nonces not reversed: %v", err)
			}
			if err := VerifyDigestNonce(msg, enc, DeriveAuthKey([]byte("other")), b, a); !errors.Is(err, ErrBadDigest) {
				t.Errorf("wrong key: %v", err)
			}
			bad := append([]byte(nil), msg...)
			bad[len(bad)-1] ^= 1
			if err := VerifyDigestNonce(bad, enc, key, b, a); !errors.Is(err, ErrBadDigest) {
				t.Errorf("tampered AVP: %v", err)
			}
			bad = append([]byte(nil), msg...)
			bad[NsNrOffset(enc)+1] ^= 1
			if err := VerifyDigestNonce(bad, enc, key, b, a); !errors.Is(err, ErrBadDigest) {
				t.Errorf("tampered Ns: %v", err)
			}
		}
	}
	// SCCRQ: no nonces in the HMAC input; an empty key is the
	// integrity-only digest of §4.3.
	for _, k := range [][]byte{key, nil} {
		b := AppendControlHeader(nil, EncapUDP, Header{Version: 3})
		b = AppendMessageType(b, MsgSCCRQ)
		b, off := AppendMessageDigestAVP(b, false)
		FinishControl(b, 0, EncapUDP)
		SignDigest(b, EncapUDP, off, k)
		if err := VerifyDigest(b, EncapUDP, k); err != nil {
			t.Errorf("SCCRQ: %v", err)
		}
	}
}

// RFC 3931 §5.4.1: with two Message Digest AVPs the message is accepted
// if either matches, both zeroed for the computation.
func TestDigestTwoAVPs(t *testing.T) {
	oldKey, newKey := DeriveAuthKey([]byte("old")), DeriveAuthKey([]byte("new"))
	b := AppendControlHeader(nil, EncapUDP, Header{Version: 3})
	b = AppendMessageType(b, MsgHello)
	b, off1 := AppendMessageDigestAVP(b, false)
	b, off2 := AppendMessageDigestAVP(b, true)
	FinishControl(b, 0, EncapUDP)
	// Compute both over the zeroed message, then patch both.
	m1, m2 := append([]byte(nil), b...), append([]byte(nil), b...)
	SignDigest(m1, EncapUDP, off1, oldKey)
	SignDigest(m2, EncapUDP, off2, newKey)
	copy(b[off1:off1+17], m1[off1:])
	copy(b[off2:off2+21], m2[off2:])
	for _, k := range [][]byte{oldKey, newKey} {
		if err := VerifyDigest(b, EncapUDP, k); err != nil {
			t.Errorf("%v", err)
		}
	}
	if err := VerifyDigest(b, EncapUDP, DeriveAuthKey([]byte("x"))); !errors.Is(err, ErrBadDigest) {
		t.Errorf("third key: %v", err)
	}
	// Without a digest after Message Type.
	c := AppendControlHeader(nil, EncapUDP, Header{Version: 3})
	c = AppendMessageType(c, MsgHello)
	FinishControl(c, 0, EncapUDP)
	if err := VerifyDigest(c, EncapUDP, oldKey); !errors.Is(err, ErrNoDigest) {
		t.Errorf("no digest: %v", err)
	}
}
