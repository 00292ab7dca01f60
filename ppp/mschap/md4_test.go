package mschap

import (
	"encoding/hex"
	"strings"
	"testing"
)

// RFC 1320 §A.5 test suite.
func TestMD4RFC1320Vectors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "31d6cfe0d16ae931b73c59d7e0c089c0"},
		{"a", "bde52cb31de33e46245e05fbdbd6fb24"},
		{"abc", "a448017aaf21d8525fc10ae87aa6729d"},
		{"message digest", "d9130a8164549fe818874806e1c7014b"},
		{"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "043f8582f241db351ce627e153e7f0e4"},
		{strings.Repeat("1234567890", 8), "e33b4ddc9c38f2199c3e7b164fcc0536"},
	}
	for _, c := range cases {
		got := MD4([]byte(c.in))
		if hex.EncodeToString(got[:]) != c.want {
			t.Errorf("MD4(%q) = %x, want %s", c.in, got, c.want)
		}
	}
}

// Lengths around the 55/56/64 byte padding boundaries must all hash
// differently and deterministically (RFC 1320 §3.1: padding is always
// performed).
func TestMD4PaddingBoundaries(t *testing.T) {
	seen := map[[16]byte]int{}
	for n := 50; n <= 130; n++ {
		b := make([]byte, n)
		h := MD4(b)
		if h != MD4(b) {
			t.Fatalf("MD4 not deterministic at length %d", n)
		}
		if m, dup := seen[h]; dup {
			t.Fatalf("lengths %d and %d collide", m, n)
		}
		seen[h] = n
	}
}
