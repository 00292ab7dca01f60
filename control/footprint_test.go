package control

import (
	"testing"
	"unsafe"
)

// A subscriber's record is one allocation of at most 448 bytes: what
// only some subscribers use (RADIUS network attributes, IPv6 router
// advertisements, claims in a shared store, PPP output between calls)
// hangs off it and is allocated when used. At 100,000 subscribers every
// 64 bytes more is 6.4 MB (docs/performance.md).
func TestSubscriberFootprint(t *testing.T) {
	if n := unsafe.Sizeof(subscriber{}); n > 448 {
		t.Fatalf("subscriber is %d bytes, above 448", n)
	}
}
