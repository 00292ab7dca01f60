package wire

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"hash"
)

// ChallengeResponse computes the Challenge Response AVP value of L2TPv2
// tunnel authentication (RFC 2661 §4.4.3 and §5.1.1): MD5 over the
// message type of the message that carries the response as one octet
// (2 in an SCCRP, 3 in an SCCCN), the shared secret and the challenge.
// The receiver computes the same with the type of the message it got and
// compares with hmac.Equal.
func ChallengeResponse(msgType MsgType, secret, challenge []byte) [16]byte {
	h := md5.New()
	h.Write([]byte{byte(msgType)})
	h.Write(secret)
	h.Write(challenge)
	var out [16]byte
	h.Sum(out[:0])
	return out
}

// Digest types of the Message Digest AVP (RFC 3931 §5.4.1).
const (
	DigestMD5  uint8 = 0 // HMAC-MD5, 16-octet digest
	DigestSHA1 uint8 = 1 // HMAC-SHA-1, 20-octet digest
)

// Errors of control message authentication.
var (
	ErrNoDigest  = errors.New("wire: no Message Digest AVP after Message Type")
	ErrBadDigest = errors.New("wire: Message Digest does not match")
)

// DeriveAuthKey returns the key of RFC 3931 control message
// authentication, HMAC-MD5(secret, 0x02) (§5.4.1). The tunnel layer
// derives it once per control connection and passes it to SignDigest*
// and VerifyDigest*.
func DeriveAuthKey(secret []byte) []byte {
	mac := hmac.New(md5.New, secret)
	mac.Write([]byte{2})
	return mac.Sum(nil)
}

// AppendMessageDigestAVP appends a Message Digest AVP (HMAC-SHA-1 when
// sha1 is true, else HMAC-MD5) with a zero digest and returns the offset
// in out of its Digest Type octet. RFC 3931 §5.4.1 requires it directly
// after the Message Type AVP (a second one may follow the first), so
// append it right after AppendMessageType, then the other AVPs, then
// call FinishControl and SignDigest.
func AppendMessageDigestAVP(b []byte, sha1 bool) (out []byte, digestOffset int) {
	n, typ := 1+md5.Size, DigestMD5
	if sha1 {
		n, typ = 1+20, DigestSHA1
	}
	b = appendAVPHeader(b, true, false, VendorIETF, AVPMessageDigest, n)
	off := len(b)
	b = append(b, typ)
	for range n - 1 {
		b = append(b, 0)
	}
	return b, off
}

// SignDigest computes the digest of an SCCRQ (RFC 3931 §5.4.1: HMAC over
// the message alone, the nonce being inside it) or, with an empty key,
// the integrity-only digest of §4.3, and writes it into the Message
// Digest AVP at digestOffset. msg is the whole control message as
// returned by FinishControl: for EncapIP it starts with the zero session
// ID, which the digest does not cover. digestOffset is relative to msg.
// Every other message of an authenticated connection uses
// SignDigestNonce.
func SignDigest(msg []byte, enc Encap, digestOffset int, key []byte) {
	SignDigestNonce(msg, enc, digestOffset, key, nil, nil)
}

// SignDigestNonce is SignDigest for messages after the SCCRQ: the HMAC
// covers localNonce (the nonce this side sent in its SCCRQ/SCCRP), then
// remoteNonce (the peer's), then the message.
func SignDigestNonce(msg []byte, enc Encap, digestOffset int, key, localNonce, remoteNonce []byte) {
	typ := msg[digestOffset]
	d := msg[digestOffset+1 : digestOffset+1+digestSize(typ)]
	clear(d)
	mac := newHMAC(typ, key)
	mac.Write(localNonce)
	mac.Write(remoteNonce)
	mac.Write(digestBody(msg, enc))
	mac.Sum(d[:0])
}

// VerifyDigest checks the Message Digest of a received SCCRQ (or, with an
// empty key, of an integrity-only message). msg is the control message
// as received (for EncapIP including the zero session ID).
func VerifyDigest(msg []byte, enc Encap, key []byte) error {
	return VerifyDigestNonce(msg, enc, key, nil, nil)
}

// VerifyDigestNonce checks a received message after the SCCRQ. localNonce
// and remoteNonce are from the receiver's point of view; as RFC 3931
// §5.4.1 says, the digest is computed with them reversed (the sender's
// local nonce is our remote one). With two Message Digest AVPs the
// message is accepted if either matches; both are zeroed for the
// computation. This must run before any AVP of the message is used.
func VerifyDigestNonce(msg []byte, enc Encap, key, localNonce, remoteNonce []byte) error {
	body := digestBody(msg, enc)
	if body == nil {
		return ErrNoDigest
	}
	// Locate the digests: header, Message Type (8 octets), then one or two
	// Message Digest AVPs.
	hl := v3ControlHeaderLen
	if b0 := binary.BigEndian.Uint16(body); b0&versionMask == 2 {
		hl = v2ControlHeaderLen
	}
	var digests [2][2]int // value start, value end within body
	nd := 0
	p := hl + msgTypeAVPLen
	for nd < 2 && p+avpHeaderLen <= len(body) {
		var a AVP
		n, err := parseAVP(body[p:], &a)
		if err != nil || a.Vendor != VendorIETF || a.Type != AVPMessageDigest || len(a.Value) < 1 ||
			len(a.Value) != 1+digestSize(a.Value[0]) || digestSize(a.Value[0]) == 0 {
			break
		}
		digests[nd] = [2]int{p + avpHeaderLen, p + n}
		nd++
		p += n
	}
	if nd == 0 {
		return ErrNoDigest
	}
	var sum [20]byte
	for i := range nd {
		typ := body[digests[i][0]]
		mac := newHMAC(typ, key)
		mac.Write(remoteNonce)
		mac.Write(localNonce)
		// The message with every digest value zeroed (Digest Type kept).
		last := 0
		for j := range nd {
			s, e := digests[j][0]+1, digests[j][1]
			mac.Write(body[last:s])
			writeZeros(mac, e-s)
			last = e
		}
		mac.Write(body[last:])
		got := mac.Sum(sum[:0])
		if hmac.Equal(got, body[digests[i][0]+1:digests[i][1]]) {
			return nil
		}
	}
	return ErrBadDigest
}

func digestSize(typ uint8) int {
	switch typ {
	case DigestMD5:
		return md5.Size
	case DigestSHA1:
		return sha1.Size
	}
	return 0
}

func newHMAC(typ uint8, key []byte) hash.Hash {
	if typ == DigestSHA1 {
		return hmac.New(sha1.New, key)
	}
	return hmac.New(md5.New, key)
}

// digestBody returns the part of msg the digest covers: the control
// header and all AVPs (RFC 3931 §5.4.1), or nil if msg is not a control
// message.
func digestBody(msg []byte, enc Encap) []byte {
	h, _, err := parseHeader(msg, enc)
	if err != nil || !h.Control {
		return nil
	}
	if enc == EncapIP {
		msg = msg[ipSessionIDLen:]
	}
	return msg[:h.Length]
}

var zeros [32]byte

func writeZeros(h hash.Hash, n int) {
	for n > 0 {
		k := min(n, len(zeros))
		h.Write(zeros[:k])
		n -= k
	}
}
