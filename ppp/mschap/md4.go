package mschap

import (
	"encoding/binary"
	"math/bits"
)

// MD4Size is the size of an MD4 digest in bytes.
const MD4Size = 16

// MD4 returns the MD4 digest of data (RFC 1320). MD4 is broken as a
// general hash; it is here only because the NT password hash of MS-CHAP
// is defined with it.
func MD4(data []byte) [MD4Size]byte {
	s := [4]uint32{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}
	n := len(data)
	for len(data) >= 64 {
		md4Block(&s, data[:64])
		data = data[64:]
	}
	// RFC 1320 §3.1-3.2: pad with 0x80, zeros to 56 mod 64, then the bit
	// length, little endian.
	var tail [128]byte
	k := copy(tail[:], data)
	tail[k] = 0x80
	end := 64
	if k >= 56 {
		end = 128
	}
	binary.LittleEndian.PutUint64(tail[end-8:end], uint64(n)<<3)
	md4Block(&s, tail[:64])
	if end == 128 {
		md4Block(&s, tail[64:128])
	}
	var out [MD4Size]byte
	for i, v := range s {
		binary.LittleEndian.PutUint32(out[4*i:], v)
	}
	return out
}

var md4Shift = [3][4]int{{3, 7, 11, 19}, {3, 5, 9, 13}, {3, 9, 11, 15}}
var md4Round3Order = [16]int{0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15}

func md4Block(s *[4]uint32, p []byte) {
	var x [16]uint32
	for i := range x {
		x[i] = binary.LittleEndian.Uint32(p[4*i:])
	}
	a, b, c, d := s[0], s[1], s[2], s[3]
	// Round 1 (RFC 1320 §3.4): F(X,Y,Z) = XY v not(X) Z.
	for i := 0; i < 16; i++ {
		f := (b & c) | (^b & d)
		a = bits.RotateLeft32(a+f+x[i], md4Shift[0][i%4])
		a, b, c, d = d, a, b, c
	}
	// Round 2: G(X,Y,Z) = XY v XZ v YZ, constant 0x5A827999.
	for i := 0; i < 16; i++ {
		k := (i%4)*4 + i/4
		g := (b & c) | (b & d) | (c & d)
		a = bits.RotateLeft32(a+g+x[k]+0x5a827999, md4Shift[1][i%4])
		a, b, c, d = d, a, b, c
	}
	// Round 3: H(X,Y,Z) = X xor Y xor Z, constant 0x6ED9EBA1.
	for i := 0; i < 16; i++ {
		h := b ^ c ^ d
		a = bits.RotateLeft32(a+h+x[md4Round3Order[i]]+0x6ed9eba1, md4Shift[2][i%4])
		a, b, c, d = d, a, b, c
	}
	s[0] += a
	s[1] += b
	s[2] += c
	s[3] += d
}
