package datapath

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// csumAdd/csumFold agree with the plain 16-bit RFC 1071 sum of the MSS
// tests on every length and alignment.
func TestChecksumMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		ref := sum16(0, b)
		for ref>>16 != 0 {
			ref = ref>>16 + ref&0xffff
		}
		if got := csumFold(csumAdd(0, b)); uint32(got) != ref {
			t.Fatalf("%d bytes: %#x, want %#x", n, got, ref)
		}
	}
	all := bytes.Repeat([]byte{0xff}, 4096) // carries everywhere
	if got := csumFold(csumAdd(0xffffffffffff, all)); got != 0xffff {
		t.Fatalf("all ones: %#x", got)
	}
}

// l4ChecksumOK verifies the TCP or UDP checksum of an IPv4 or IPv6 packet
// with the reference sum (RFC 793 §3.1, RFC 768, RFC 8200 §8.1).
func l4ChecksumOK(t *testing.T, pkt []byte) bool {
	t.Helper()
	var pseudo []byte
	var l4 []byte
	if pkt[0]>>4 == 4 {
		ihl := int(pkt[0]&0xf) * 4
		l4 = pkt[ihl:]
		pseudo = append(append([]byte(nil), pkt[12:20]...), 0, pkt[9], byte(len(l4)>>8), byte(len(l4)))
	} else {
		l4 = pkt[40:]
		pseudo = append(append([]byte(nil), pkt[8:40]...), 0, 0, byte(len(l4)>>8), byte(len(l4)), 0, 0, 0, pkt[6])
	}
	s := sum16(sum16(0, pseudo), l4)
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return s == 0xffff
}

func ipv4HeaderOK(pkt []byte) bool {
	s := sum16(0, pkt[:int(pkt[0]&0xf)*4])
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return s == 0xffff
}

// segCollector is a segSink that keeps copies.
type segCollector struct {
	buf  []byte
	segs [][]byte
	max  int // buffers it hands out before it runs dry (0: no limit)
}

func (c *segCollector) segBuf() []byte {
	if c.max > 0 && len(c.segs) == c.max {
		return nil
	}
	return c.buf
}

func (c *segCollector) segDone(buf []byte, n int) {
	c.segs = append(c.segs, append([]byte(nil), buf[headroom:headroom+n]...))
}

func tcpHeader(seq uint32, flags byte) []byte {
	h := make([]byte, 32) // 12 bytes of options (NOP NOP timestamp)
	binary.BigEndian.PutUint16(h[0:], 443)
	binary.BigEndian.PutUint16(h[2:], 50000)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], 0x01020304)
	h[12], h[13] = 8<<4, flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	copy(h[20:], []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2})
	return h
}

func testPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// A TSO super-packet is cut into gso_size segments, each a valid packet:
// IPv4 total length, consecutive IDs and header checksum, or the IPv6
// payload length; the sequence number advancing by the payload; FIN and
// PSH only on the last segment, CWR only on the first; a full TCP
// checksum (RFC 793 §3.1). The payloads concatenate to the original.
func TestSplitGSOTCP(t *testing.T) {
	src4, dst4 := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("100.64.0.10")
	src6, dst6 := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:100:1::10")
	const seq, gso = 0xfffff000, 1448 // the sequence number wraps
	data := testPayload(3500)
	for _, c := range []struct {
		name    string
		pkt     []byte
		gsoType uint8
	}{
		{"IPv4", ipv4Packet(src4, dst4, 6, append(tcpHeader(seq, 0x80|0x10|0x08|0x01), data...)), vnetGSOTCPv4},
		{"IPv6", ipv6Packet(src6, dst6, 6, append(tcpHeader(seq, 0x80|0x10|0x08|0x01), data...)), vnetGSOTCPv6},
	} {
		t.Run(c.name, func(t *testing.T) {
			v4 := c.pkt[0]>>4 == 4
			if v4 {
				binary.BigEndian.PutUint16(c.pkt[4:], 0xfffe) // the ID wraps
				c.pkt[6] = 0x40                               // DF
				c.pkt[10], c.pkt[11] = 0, 0
				binary.BigEndian.PutUint16(c.pkt[10:], ^uint16(sum16(0, c.pkt[:20])))
			}
			col := &segCollector{buf: make([]byte, headroom+1600)}
			if !splitGSO(c.pkt, vnetHdr{flags: vnetNeedsCsum, gsoType: c.gsoType, gsoSize: gso}, col) {
				t.Fatal("not split")
			}
			if len(col.segs) != 3 {
				t.Fatalf("%d segments", len(col.segs))
			}
			ipLen := 40
			if v4 {
				ipLen = 20
			}
			var got []byte
			for i, s := range col.segs {
				want := min(gso, len(data)-i*gso)
				if len(s) != ipLen+32+want {
					t.Fatalf("segment %d: %d bytes", i, len(s))
				}
				if v4 {
					if int(binary.BigEndian.Uint16(s[2:])) != len(s) || binary.BigEndian.Uint16(s[4:]) != uint16(0xfffe+i) ||
						s[6] != 0x40 || !ipv4HeaderOK(s) {
						t.Fatalf("segment %d: IPv4 header % x", i, s[:20])
					}
				} else if int(binary.BigEndian.Uint16(s[4:])) != len(s)-40 {
					t.Fatalf("segment %d: payload length %d", i, binary.BigEndian.Uint16(s[4:]))
				}
				tcp := s[ipLen:]
				if binary.BigEndian.Uint32(tcp[4:]) != seq+uint32(i*gso) {
					t.Fatalf("segment %d: seq %#x", i, binary.BigEndian.Uint32(tcp[4:]))
				}
				wantFlags := byte(0x10)
				if i == 0 {
					wantFlags |= 0x80
				}
				if i == len(col.segs)-1 {
					wantFlags |= 0x08 | 0x01
				}
				if tcp[13] != wantFlags {
					t.Fatalf("segment %d: flags %#x, want %#x", i, tcp[13], wantFlags)
				}
				if !bytes.Equal(tcp[20:32], c.pkt[ipLen+20:ipLen+32]) || !bytes.Equal(tcp[8:12], c.pkt[ipLen+8:ipLen+12]) {
					t.Fatalf("segment %d: options or ACK changed", i)
				}
				if !l4ChecksumOK(t, s) {
					t.Fatalf("segment %d: bad TCP checksum", i)
				}
				got = append(got, tcp[32:]...)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("payloads do not concatenate to the original")
			}
		})
	}
}

// A USO super-packet becomes datagrams of gso_size with their own UDP
// length and checksum (RFC 768).
func TestSplitGSOUDP(t *testing.T) {
	data := testPayload(2500)
	udp := append([]byte{0x9c, 0x40, 0, 9, 0, 0, 0, 0}, data...)
	for _, pkt := range [][]byte{
		ipv4Packet(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("100.64.0.10"), 17, udp),
		ipv6Packet(netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:100:1::10"), 17, udp),
	} {
		col := &segCollector{buf: make([]byte, headroom+1600)}
		if !splitGSO(pkt, vnetHdr{flags: vnetNeedsCsum, gsoType: vnetGSOUDPL4, gsoSize: 1000}, col) || len(col.segs) != 3 {
			t.Fatalf("split into %d", len(col.segs))
		}
		var got []byte
		for i, s := range col.segs {
			ipLen := 40
			if s[0]>>4 == 4 {
				ipLen = 20
				if !ipv4HeaderOK(s) {
					t.Fatalf("segment %d: IPv4 header", i)
				}
			}
			u := s[ipLen:]
			if int(binary.BigEndian.Uint16(u[4:])) != len(u) || !bytes.Equal(u[:4], udp[:4]) || !l4ChecksumOK(t, s) {
				t.Fatalf("segment %d: UDP header % x", i, u[:8])
			}
			got = append(got, u[8:]...)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("payloads do not concatenate to the original")
		}
	}
}

// What cannot be split is refused before anything is handed over.
func TestSplitGSORefuses(t *testing.T) {
	udp := append([]byte{0x9c, 0x40, 0, 9, 0, 0, 0, 0}, testPayload(3000)...)
	good := ipv4Packet(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("100.64.0.10"), 17, udp)
	frag := append([]byte(nil), good...)
	frag[6] = 0x20 // MF
	short := good[:100]
	h := vnetHdr{gsoType: vnetGSOUDPL4, gsoSize: 1000}
	for name, c := range map[string]struct {
		pkt []byte
		h   vnetHdr
	}{
		"fragment":        {frag, h},
		"length mismatch": {short, h},
		"TCP type on UDP": {good, vnetHdr{gsoType: vnetGSOTCPv4, gsoSize: 1000}},
		"UFO":             {good, vnetHdr{gsoType: 3, gsoSize: 1000}},
		"gso_size 0":      {good, vnetHdr{gsoType: vnetGSOUDPL4}},
		"segment too big": {good, vnetHdr{gsoType: vnetGSOUDPL4, gsoSize: 2000}},
		"not IP":          {[]byte{0x10, 0, 0, 0}, h},
	} {
		col := &segCollector{buf: make([]byte, headroom+1600)}
		if splitGSO(c.pkt, c.h, col) || len(col.segs) != 0 {
			t.Errorf("%s: split into %d", name, len(col.segs))
		}
	}
}

// A partial checksum left by the kernel (the field holds the
// pseudo-header sum) is completed.
func TestCompleteChecksum(t *testing.T) {
	udp := append([]byte{0x9c, 0x40, 0, 9, 0, 0, 0, 0}, testPayload(501)...)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	pkt := ipv4Packet(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("100.64.0.10"), 17, udp)
	partial := csumFold(csumAdd(0, pkt[12:20]) + 17 + uint64(len(udp)))
	binary.BigEndian.PutUint16(pkt[26:], partial)
	if !completeChecksum(pkt, vnetHdr{flags: vnetNeedsCsum, csumStart: 20, csumOffset: 6}) || !l4ChecksumOK(t, pkt) {
		t.Fatal("checksum not completed")
	}
	if completeChecksum(pkt, vnetHdr{flags: vnetNeedsCsum, csumStart: 20, csumOffset: 600}) {
		t.Fatal("offset outside the packet accepted")
	}
}

// Splitting allocates nothing.
func TestSplitGSONoAllocs(t *testing.T) {
	pkt := ipv4Packet(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("100.64.0.10"), 6,
		append(tcpHeader(1, 0x18), testPayload(60000)...))
	sink := &countSink{buf: make([]byte, headroom+1600)}
	if a := testing.AllocsPerRun(100, func() {
		splitGSO(pkt, vnetHdr{gsoType: vnetGSOTCPv4, gsoSize: 1448}, sink)
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
	if sink.n == 0 {
		t.Fatal("nothing split")
	}
}

type countSink struct {
	buf []byte
	n   int
}

func (c *countSink) segBuf() []byte      { return c.buf }
func (c *countSink) segDone([]byte, int) { c.n++ }

// Whatever the kernel's header says, splitting never panics or writes
// outside its buffers, and what it hands over is well formed: segments no
// larger than the segment size plus headers, valid IPv4 header and
// TCP/UDP checksums, and payloads that add up to the input's. Completing
// a checksum never writes outside the packet.
func FuzzSplitGSO(f *testing.F) {
	tcp := ipv4Packet(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("100.64.0.10"), 6,
		append(tcpHeader(7, 0x18), testPayload(3000)...))
	udp6 := ipv6Packet(netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), 17,
		append([]byte{0, 1, 0, 2, 0x0b, 0xc0, 0, 0}, testPayload(3000)...))
	f.Add(tcp, uint8(vnetGSOTCPv4), uint16(1448), uint16(20), uint16(16))
	f.Add(udp6, uint8(vnetGSOUDPL4), uint16(1000), uint16(40), uint16(6))
	f.Add(udp6[:60], uint8(vnetGSONone), uint16(0), uint16(40), uint16(6))
	f.Fuzz(func(t *testing.T, pkt []byte, gsoType uint8, gsoSize, csumStart, csumOffset uint16) {
		h := vnetHdr{flags: vnetNeedsCsum, gsoType: gsoType, gsoSize: gsoSize, csumStart: csumStart, csumOffset: csumOffset}
		orig := append([]byte(nil), pkt...)
		col := &segCollector{buf: make([]byte, headroom+1600)}
		if splitGSO(pkt, h, col) {
			total := 0
			for i, s := range col.segs {
				ipLen := 40
				if s[0]>>4 == 4 {
					ipLen = int(s[0]&0xf) * 4
					if !ipv4HeaderOK(s) {
						t.Fatalf("segment %d: IPv4 header checksum", i)
					}
				}
				if !l4ChecksumOK(t, s) {
					t.Fatalf("segment %d: L4 checksum", i)
				}
				if len(s) > ipLen+60+int(gsoSize) {
					t.Fatalf("segment %d: %d bytes for segment size %d", i, len(s), gsoSize)
				}
				total += len(s)
			}
			if len(col.segs) == 0 || total < len(orig) {
				t.Fatalf("%d segments, %d bytes from %d", len(col.segs), total, len(orig))
			}
		}
		if !bytes.Equal(pkt, orig) {
			t.Fatal("splitting changed its input")
		}
		completeChecksum(pkt, h)
	})
}

// A TCP Data Offset below 5 words (RFC 793 §3.1) cannot describe a
// header: such a super-packet is refused, never cut (a fuzz finding: the
// segments were shorter than the TCP header the cutter rewrote).
func TestSplitGSOShortTCPDataOffset(t *testing.T) {
	for _, words := range []byte{0, 1, 4} {
		th := tcpHeader(7, 0x18)
		th[12] = words << 4
		pkt := ipv4Packet(netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("100.64.0.10"), 6,
			append(th, testPayload(3000)...))
		col := &segCollector{buf: make([]byte, headroom+1600)}
		h := vnetHdr{flags: vnetNeedsCsum, gsoType: vnetGSOTCPv4, gsoSize: 6, csumStart: 20, csumOffset: 16}
		if splitGSO(pkt, h, col) {
			t.Fatalf("data offset %d words: cut into %d segments", words, len(col.segs))
		}
	}
}
