package datapath

import "encoding/binary"

// ClampMSS lowers the Maximum Segment Size option (RFC 9293 §3.7.1, kind
// 2) of a TCP SYN carried in the IPv4 or IPv6 packet pkt to mss, updating
// the TCP checksum incrementally (RFC 1624 eqn. 3). It reports whether it
// changed the packet. Anything else, including fragments after the first
// and truncated headers, is left alone.
func ClampMSS(pkt []byte, mss uint16) bool {
	tcp := tcpSegment(pkt)
	if len(tcp) < 20 || tcp[13]&0x02 == 0 {
		return false
	}
	doff := int(tcp[12]>>4) * 4
	if doff < 20 || doff > len(tcp) {
		return false
	}
	opts := tcp[20:doff]
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // End of Option List
			return false
		case 1: // No-Operation
			i++
			continue
		}
		if i+1 >= len(opts) {
			return false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return false
		}
		if opts[i] == 2 && l == 4 {
			old := binary.BigEndian.Uint16(opts[i+2:])
			if old <= mss {
				return false
			}
			pos := 20 + i + 2 // offset of the MSS value in the segment
			ck := binary.BigEndian.Uint16(tcp[16:])
			ck = checksumReplaceByte(ck, pos, tcp[pos], byte(mss>>8))
			ck = checksumReplaceByte(ck, pos+1, tcp[pos+1], byte(mss))
			binary.BigEndian.PutUint16(tcp[pos:], mss)
			binary.BigEndian.PutUint16(tcp[16:], ck)
			return true
		}
		i += l
	}
	return false
}

// checksumReplaceByte updates an Internet checksum for byte pos of the
// summed data changing from old to new (RFC 1624: HC' = ~(~HC + ~m + m')).
// The pseudo-header has even length, so the parity of pos within the
// segment decides whether the byte is the high or low half of its word.
func checksumReplaceByte(ck uint16, pos int, old, new byte) uint16 {
	m, m2 := uint32(old), uint32(new)
	if pos%2 == 0 {
		m, m2 = m<<8, m2<<8
	}
	sum := uint32(^ck) + (^m & 0xffff) + m2
	sum = (sum & 0xffff) + sum>>16
	sum = (sum & 0xffff) + sum>>16
	return ^uint16(sum)
}

// tcpSegment returns the TCP segment of an unfragmented (or first
// fragment) IPv4 or IPv6 packet, or nil.
func tcpSegment(pkt []byte) []byte {
	if len(pkt) < 1 {
		return nil
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return nil
		}
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl || pkt[9] != 6 {
			return nil
		}
		if binary.BigEndian.Uint16(pkt[6:])&0x1fff != 0 {
			return nil
		}
		if tot := int(binary.BigEndian.Uint16(pkt[2:])); tot >= ihl && tot < len(pkt) {
			pkt = pkt[:tot]
		}
		return pkt[ihl:]
	case 6:
		if len(pkt) < 40 {
			return nil
		}
		next, off := pkt[6], 40
		// A few extension headers may precede TCP (RFC 8200 §4).
		for range 4 {
			switch next {
			case 6:
				return pkt[off:]
			case 0, 43, 60: // Hop-by-Hop, Routing, Destination Options
				if len(pkt) < off+2 {
					return nil
				}
				next, off = pkt[off], off+(int(pkt[off+1])+1)*8
			case 44: // Fragment
				if len(pkt) < off+8 || binary.BigEndian.Uint16(pkt[off+2:])&0xfff8 != 0 {
					return nil
				}
				next, off = pkt[off], off+8
			default:
				return nil
			}
			if off > len(pkt) {
				return nil
			}
		}
		if next == 6 {
			return pkt[off:]
		}
	}
	return nil
}
