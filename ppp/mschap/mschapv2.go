package mschap

import (
	"crypto/des"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"strings"
	"unicode/utf16"
)

// Sizes of the MS-CHAPv2 values (RFC 2759 §4, §5).
const (
	ChallengeSize     = 16 // authenticator and peer challenges
	NTResponseSize    = 24
	ResponseValueSize = 49 // Peer-Challenge, 8 reserved, NT-Response, Flags
	AuthResponseSize  = 42 // "S=" and 40 hex digits
)

// NTPasswordHash is MD4 over the UTF-16LE password (RFC 2759 §8.3).
func NTPasswordHash(password string) [16]byte {
	u := utf16.Encode([]rune(password))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i] = byte(c)
		b[2*i+1] = byte(c >> 8)
	}
	return MD4(b)
}

// ChallengeHash derives the 8-octet challenge (RFC 2759 §8.2). Only the
// user name without any domain prefix is hashed.
func ChallengeHash(peerChallenge, authChallenge *[16]byte, user string) [8]byte {
	h := sha1.New()
	h.Write(peerChallenge[:])
	h.Write(authChallenge[:])
	h.Write([]byte(stripDomain(user)))
	var sum [sha1.Size]byte
	h.Sum(sum[:0])
	var c [8]byte
	copy(c[:], sum[:8])
	return c
}

// stripDomain removes a "DOMAIN\" prefix (RFC 2759 §8.2: the user name
// without the domain is used).
func stripDomain(user string) string {
	if i := strings.LastIndexByte(user, '\\'); i >= 0 {
		return user[i+1:]
	}
	return user
}

// ChallengeResponse encrypts the challenge with the three DES keys made
// from the zero-padded password hash (RFC 2759 §8.5).
func ChallengeResponse(challenge [8]byte, passwordHash [16]byte) [24]byte {
	var z [21]byte
	copy(z[:], passwordHash[:])
	var out [24]byte
	for i := 0; i < 3; i++ {
		desEncrypt(challenge[:], z[7*i:7*i+7], out[8*i:8*i+8])
	}
	return out
}

// desEncrypt encrypts one block with a 7-octet key expanded to 8 octets
// (RFC 2759 §8.6); parity bits are set odd as in §9.3.
func desEncrypt(clear, key7, dst []byte) {
	k := DESKey(key7)
	c, err := des.NewCipher(k[:])
	if err != nil {
		// des.NewCipher only fails on a key length other than 8.
		panic(err)
	}
	c.Encrypt(dst, clear)
}

// DESKey spreads 56 key bits over 8 octets and sets odd parity
// (RFC 2759 §9.3).
func DESKey(k []byte) [8]byte {
	var out [8]byte
	out[0] = k[0]
	out[1] = k[0]<<7 | k[1]>>1
	out[2] = k[1]<<6 | k[2]>>2
	out[3] = k[2]<<5 | k[3]>>3
	out[4] = k[3]<<4 | k[4]>>4
	out[5] = k[4]<<3 | k[5]>>5
	out[6] = k[5]<<2 | k[6]>>6
	out[7] = k[6] << 1
	for i := range out {
		b := out[i] & 0xfe
		if bitsSet(b)%2 == 0 {
			b |= 1
		}
		out[i] = b
	}
	return out
}

func bitsSet(b byte) int {
	n := 0
	for ; b != 0; b &= b - 1 {
		n++
	}
	return n
}

// GenerateNTResponse computes the peer's NT-Response (RFC 2759 §8.1).
func GenerateNTResponse(authChallenge, peerChallenge *[16]byte, user, password string) [24]byte {
	c := ChallengeHash(peerChallenge, authChallenge, user)
	return ChallengeResponse(c, NTPasswordHash(password))
}

// VerifyNTResponse reports whether ntResponse was made with password, in
// constant time.
func VerifyNTResponse(authChallenge, peerChallenge *[16]byte, user, password string, ntResponse []byte) bool {
	want := GenerateNTResponse(authChallenge, peerChallenge, user, password)
	return subtle.ConstantTimeCompare(want[:], ntResponse) == 1
}

var (
	magic1 = []byte("Magic server to client signing constant")
	magic2 = []byte("Pad to make it do more than one iteration")
)

// GenerateAuthenticatorResponse computes the 42-octet "S=..." string the
// authenticator sends in its Success packet (RFC 2759 §8.7).
func GenerateAuthenticatorResponse(password string, ntResponse *[24]byte, peerChallenge, authChallenge *[16]byte, user string) string {
	return AuthenticatorResponseFromHash(NTPasswordHash(password), ntResponse, peerChallenge, authChallenge, user)
}

// AuthenticatorResponseFromHash is GenerateAuthenticatorResponse for a
// caller that stores the NT password hash instead of the password.
func AuthenticatorResponseFromHash(pwHash [16]byte, ntResponse *[24]byte, peerChallenge, authChallenge *[16]byte, user string) string {
	hashHash := MD4(pwHash[:])
	h := sha1.New()
	h.Write(hashHash[:])
	h.Write(ntResponse[:])
	h.Write(magic1)
	var digest [sha1.Size]byte
	h.Sum(digest[:0])
	c := ChallengeHash(peerChallenge, authChallenge, user)
	h.Reset()
	h.Write(digest[:])
	h.Write(c[:])
	h.Write(magic2)
	h.Sum(digest[:0])
	var out [AuthResponseSize]byte
	out[0], out[1] = 'S', '='
	hex.Encode(out[2:], digest[:])
	return strings.ToUpper(string(out[:]))
}

// CheckAuthenticatorResponse verifies the "S=..." string a peer received
// (RFC 2759 §8.8); hex digits are compared case-insensitively.
func CheckAuthenticatorResponse(password string, ntResponse *[24]byte, peerChallenge, authChallenge *[16]byte, user, received string) bool {
	if len(received) < AuthResponseSize {
		return false
	}
	want := GenerateAuthenticatorResponse(password, ntResponse, peerChallenge, authChallenge, user)
	got := strings.ToUpper(received[:AuthResponseSize])
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
