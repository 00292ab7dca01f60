package control

import (
	"encoding/binary"
	"net/netip"
)

// Router advertisement toward a subscriber (RFC 4861 §4.2, RFC 5072 §4):
// IPv6CP only agrees on interface identifiers; the subscriber learns its
// /64 from an RA we send over its PPP link, at IPv6CP up and in answer to
// its Router Solicitations.
const (
	icmpv6RouterSolicit = 133
	icmpv6RouterAdvert  = 134
	raRouterLifetime    = 1800
	raValidLifetime     = 86400
	raPreferredLifetime = 14400
)

var allNodes = netip.MustParseAddr("ff02::1")

// isRouterSolicit reports whether pkt is an ICMPv6 Router Solicitation
// (no extension headers: an RS never carries them).
func isRouterSolicit(pkt []byte) bool {
	return len(pkt) >= 48 && pkt[0]>>4 == 6 && pkt[6] == 58 && pkt[7] == 255 && pkt[40] == icmpv6RouterSolicit
}

// appendRA appends a PPP frame (protocol field first) carrying a router
// advertisement for prefix from the link-local address of iid.
func appendRA(b []byte, iid [8]byte, prefix netip.Prefix, mtu int) []byte {
	b = append(b, 0x00, 0x57)
	const payload = 16 + 32 + 8 // RA header, Prefix Information, MTU
	var src [16]byte
	src[0], src[1] = 0xfe, 0x80
	copy(src[8:], iid[:])
	dst := allNodes.As16()
	// IPv6 header.
	b = append(b, 0x60, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, payload)
	b = append(b, 58, 255)
	b = append(b, src[:]...)
	b = append(b, dst[:]...)
	icmp := len(b)
	// RA: type, code, checksum, cur hop limit, flags, router lifetime,
	// reachable time, retrans timer.
	b = append(b, icmpv6RouterAdvert, 0, 0, 0, 64, 0)
	b = binary.BigEndian.AppendUint16(b, raRouterLifetime)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	// Prefix Information: on-link and autonomous (RFC 4861 §4.6.2).
	p := prefix.Masked().Addr().As16()
	// Autonomous only for a /64: SLAAC needs a 64-bit interface ID.
	flags := byte(0x80)
	if prefix.Bits() == 64 {
		flags |= 0x40
	}
	b = append(b, 3, 4, byte(prefix.Bits()), flags)
	b = binary.BigEndian.AppendUint32(b, raValidLifetime)
	b = binary.BigEndian.AppendUint32(b, raPreferredLifetime)
	b = append(b, 0, 0, 0, 0)
	b = append(b, p[:]...)
	// MTU.
	b = append(b, 5, 1, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(mtu))
	ck := icmpv6Checksum(src, dst, b[icmp:])
	binary.BigEndian.PutUint16(b[icmp+2:], ck)
	return b
}

func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(msg)))
	l[7] = 58
	add(l[:])
	add(msg)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
