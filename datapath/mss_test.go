package datapath

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// sum16 is the ones' complement sum (RFC 1071) of b, folded.
func sum16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return sum
}

// tcpChecksumOK verifies the TCP checksum of pkt from scratch over the
// pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1).
func tcpChecksumOK(t *testing.T, pkt []byte) bool {
	t.Helper()
	tcp := tcpSegment(pkt)
	var pseudo []byte
	if pkt[0]>>4 == 4 {
		pseudo = append(pseudo, pkt[12:20]...)
		pseudo = append(pseudo, 0, 6)
		pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(len(tcp)))
	} else {
		pseudo = append(pseudo, pkt[8:40]...)
		pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(tcp)))
		pseudo = append(pseudo, 0, 0, 0, 6)
	}
	return sum16(sum16(0, pseudo), tcp) == 0xffff
}

func setTCPChecksum(pkt []byte) {
	tcp := tcpSegment(pkt)
	binary.BigEndian.PutUint16(tcp[16:], 0)
	var pseudo []byte
	if pkt[0]>>4 == 4 {
		pseudo = append(append(pseudo, pkt[12:20]...), 0, 6)
		pseudo = binary.BigEndian.AppendUint16(pseudo, uint16(len(tcp)))
	} else {
		pseudo = append(pseudo, pkt[8:40]...)
		pseudo = binary.BigEndian.AppendUint32(pseudo, uint32(len(tcp)))
		pseudo = append(pseudo, 0, 0, 0, 6)
	}
	binary.BigEndian.PutUint16(tcp[16:], ^uint16(sum16(sum16(0, pseudo), tcp)))
}

// tcpSYN builds a TCP segment with flags and options, 4 payload bytes.
func tcpSYN(flags byte, opts []byte) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	tcp := make([]byte, 20, 20+len(opts)+4)
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	binary.BigEndian.PutUint32(tcp[4:], 0x01020304)
	tcp[12] = byte((20+len(opts))/4) << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 65535)
	tcp = append(tcp, opts...)
	return append(tcp, 'd', 'a', 't', 'a')
}

func ipv4Packet(src, dst netip.Addr, proto byte, payload []byte) []byte {
	p := make([]byte, 20, 20+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(20+len(payload)))
	p[8], p[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum16(0, p[:20])))
	return append(p, payload...)
}

func ipv6Packet(src, dst netip.Addr, next byte, payload []byte) []byte {
	p := make([]byte, 40, 40+len(payload))
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6], p[7] = next, 64
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	return append(p, payload...)
}

var (
	sub4  = netip.MustParseAddr("100.64.0.10")
	web4  = netip.MustParseAddr("192.0.2.80")
	sub6  = netip.MustParseAddr("2001:db8:100:1::10")
	web6  = netip.MustParseAddr("2001:db8:ffff::80")
	optsA = []byte{2, 4, 0x05, 0xb4, 1, 3, 3, 7, 4, 2} // MSS 1460, NOP, WS 7, SACK-perm
	optsB = []byte{1, 2, 4, 0x05, 0xb4, 1, 1}          // MSS value at an odd offset
)

func mss(t *testing.T, pkt []byte) uint16 {
	t.Helper()
	tcp := tcpSegment(pkt)
	opts := tcp[20 : int(tcp[12]>>4)*4]
	for i := 0; i < len(opts); {
		if opts[i] == 1 {
			i++
			continue
		}
		if opts[i] == 2 {
			return binary.BigEndian.Uint16(opts[i+2:])
		}
		i += int(opts[i+1])
	}
	t.Fatal("no MSS option")
	return 0
}

// RFC 9293 §3.7.1: the MSS option of SYNs (and SYN-ACKs) is lowered; the
// checksum, recomputed from scratch, stays valid (RFC 1624).
func TestClampMSS(t *testing.T) {
	hopByHop := func(tcp []byte) []byte { // RFC 8200 §4.3, PadN to 8 bytes
		return append([]byte{6, 0, 1, 4, 0, 0, 0, 0}, tcp...)
	}
	cases := []struct {
		name string
		pkt  []byte
	}{
		{"v4 SYN", ipv4Packet(sub4, web4, 6, tcpSYN(0x02, optsA))},
		{"v4 SYN-ACK odd offset", ipv4Packet(web4, sub4, 6, tcpSYN(0x12, optsB))},
		{"v6 SYN", ipv6Packet(sub6, web6, 6, tcpSYN(0x02, optsA))},
		{"v6 SYN odd offset", ipv6Packet(sub6, web6, 6, tcpSYN(0x02, optsB))},
		{"v6 SYN after hop-by-hop", ipv6Packet(sub6, web6, 0, hopByHop(tcpSYN(0x02, optsA)))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			setTCPChecksum(c.pkt)
			if !tcpChecksumOK(t, c.pkt) {
				t.Fatal("test packet has a bad checksum")
			}
			if !ClampMSS(c.pkt, 1400) {
				t.Fatal("not clamped")
			}
			if got := mss(t, c.pkt); got != 1400 {
				t.Fatalf("MSS %d, want 1400", got)
			}
			if !tcpChecksumOK(t, c.pkt) {
				t.Fatal("checksum wrong after clamping")
			}
			if ClampMSS(c.pkt, 1400) || ClampMSS(c.pkt, 1452) {
				t.Fatal("clamped an MSS already at or below the limit")
			}
		})
	}
}

func TestClampMSSLeavesOthersAlone(t *testing.T) {
	frag := ipv4Packet(sub4, web4, 6, tcpSYN(0x02, optsA))
	binary.BigEndian.PutUint16(frag[6:], 100) // fragment offset 800
	cases := []struct {
		name string
		pkt  []byte
	}{
		{"ACK", ipv4Packet(sub4, web4, 6, tcpSYN(0x10, optsA))},
		{"UDP", ipv4Packet(sub4, web4, 17, tcpSYN(0x02, optsA))},
		{"later fragment", frag},
		{"no MSS", ipv4Packet(sub4, web4, 6, tcpSYN(0x02, []byte{1, 3, 3, 7}))},
		{"MSS after EOL", ipv4Packet(sub4, web4, 6, tcpSYN(0x02, []byte{0, 2, 4, 5, 0xb4}))},
		{"option length 0", ipv4Packet(sub4, web4, 6, tcpSYN(0x02, []byte{3, 0, 2, 4, 5, 0xb4}))},
		{"option runs past header", ipv4Packet(sub4, web4, 6, tcpSYN(0x02, []byte{1, 1, 1, 2}))},
		{"v6 unknown extension", ipv6Packet(sub6, web6, 135, tcpSYN(0x02, optsA))},
		{"truncated", ipv4Packet(sub4, web4, 6, tcpSYN(0x02, optsA))[:30]},
	}
	for _, c := range cases {
		orig := append([]byte(nil), c.pkt...)
		if ClampMSS(c.pkt, 536) {
			t.Errorf("%s: clamped", c.name)
		}
		if string(orig) != string(c.pkt) {
			t.Errorf("%s: packet changed", c.name)
		}
	}
}

// Every MSS above the limit and every checksum value: the incremental
// update equals the full recomputation.
func TestClampMSSChecksumExhaustive(t *testing.T) {
	pkt := ipv4Packet(sub4, web4, 6, tcpSYN(0x02, optsB))
	tcp := tcpSegment(pkt)
	for _, old := range []uint16{1401, 1460, 0xff00, 0xffff, 0x0100 + 1400} {
		for seq := uint32(0); seq < 1<<16; seq += 251 {
			binary.BigEndian.PutUint32(tcp[4:], seq*65537)
			binary.BigEndian.PutUint16(tcp[23:], old)
			setTCPChecksum(pkt)
			if !ClampMSS(pkt, 1400) || !tcpChecksumOK(t, pkt) {
				t.Fatalf("MSS %d seq %#x: checksum %#04x wrong", old, seq, binary.BigEndian.Uint16(tcp[16:]))
			}
		}
	}
}

func FuzzClampMSS(f *testing.F) {
	f.Add(ipv4Packet(sub4, web4, 6, tcpSYN(0x02, optsA)), uint16(1400))
	f.Add(ipv6Packet(sub6, web6, 6, tcpSYN(0x02, optsB)), uint16(1300))
	f.Fuzz(func(t *testing.T, pkt []byte, limit uint16) {
		tcp := tcpSegment(pkt)
		valid := tcp != nil && len(tcp) >= 20
		if valid {
			setTCPChecksum(pkt)
		}
		if ClampMSS(pkt, limit) && !tcpChecksumOK(t, pkt) {
			t.Fatal("checksum wrong after clamping")
		}
	})
}
