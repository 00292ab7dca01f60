package datapath

import (
	"fmt"
	"net/netip"
	"testing"
)

func udpPacket(src, dst netip.Addr, size int) []byte {
	if src.Is4() {
		return ipv4Packet(src, dst, 17, make([]byte, size-20))
	}
	return ipv6Packet(src, dst, 17, make([]byte, size-40))
}

// BenchmarkDecap: classify, parse, look up, check and write to a TUN
// (a recorder) for one data message.
func BenchmarkDecap(b *testing.B) {
	for _, size := range []int{64, 1400} {
		b.Run(fmt.Sprintf("v2/%d", size), func(b *testing.B) {
			r := newRig(b, false, 32)
			r.installV2(b, nil)
			pkt := v2Data(key2, pppFrame(ProtoIPv4, udpPacket(sub4, web4, size)))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				r.e.receive(r.sock, pkt, lac, lnsAddr)
			}
		})
		b.Run(fmt.Sprintf("v3/%d", size), func(b *testing.B) {
			r := newRig(b, false, 32)
			s := r.installV3(b, nil)
			pkt := AppendV3(nil, Header{Session: key3.Session, Cookie: s.Cookie, L2SS: true}, pppFrame(ProtoIPv4, udpPacket(sub4, web4, size)))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				r.e.receive(r.sock, pkt, lac, lnsAddr)
			}
		})
	}
}

// BenchmarkEncap: route, encapsulate in headroom and queue a TUN packet,
// flushing a batch to a recording socket every 32 packets, among 10,000
// installed sessions.
func BenchmarkEncap(b *testing.B) {
	for _, size := range []int{64, 1400} {
		for _, v6 := range []bool{false, true} {
			name := fmt.Sprintf("IPv4/%d", size)
			if v6 {
				name = fmt.Sprintf("IPv6/%d", size)
			}
			b.Run(name, func(b *testing.B) {
				r := newRig(b, false, 32)
				for i := 1; i <= 10000; i++ {
					a4 := netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})
					a6 := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x10, byte(i >> 8), byte(i)})
					err := r.e.Install(Session{Key: SessionKey{Version: 2, Tunnel: 1, Session: uint32(i)}, PeerTunnel: 1, PeerSession: uint32(i),
						Peer: lac, Socket: r.sock, IPv4: a4, IPv6: netip.PrefixFrom(a6, 56)})
					if err != nil {
						b.Fatal(err)
					}
				}
				dst := netip.AddrFrom4([4]byte{100, 64, 7, 7})
				src := web4
				if v6 {
					dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x10, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 1})
					src = web6
				}
				buf, n := tunPacket(udpPacket(src, dst, size))
				f := &tunForwarder{e: r.e, pending: make([]*Socket, 0, 4)}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					f.forward(buf, n)
					if i++; i%32 == 0 {
						f.flush()
					}
				}
				f.flush()
				if r.io.count == 0 {
					b.Fatal("nothing sent")
				}
			})
		}
	}
}
