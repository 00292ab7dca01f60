package datapath

import (
	"encoding/binary"
	"math/bits"
)

// TUN offloads. With IFF_VNET_HDR every TUN read and write starts with a
// struct virtio_net_hdr. Once TUNSETOFFLOAD advertises checksum, TSO and
// USO, the kernel hands the TUN reader TCP and UDP packets whose checksum
// is left to do (VIRTIO_NET_HDR_F_NEEDS_CSUM) and GSO super-packets of up
// to 64 KiB: locally generated TCP, and forwarded traffic a NIC's GRO
// coalesced. PPP has no segmentation offload, so the reader completes the
// checksum or cuts the super-packet into MTU-sized IP packets itself, one
// read for what would have been dozens.

// vnetHdrLen is the size of struct virtio_net_hdr (the TUN default).
const vnetHdrLen = 10

const (
	vnetNeedsCsum = 1
	vnetGSONone   = 0
	vnetGSOTCPv4  = 1
	vnetGSOTCPv6  = 4
	vnetGSOUDPL4  = 5
	vnetGSOECN    = 0x80
)

// vnetHdr is struct virtio_net_hdr, in host byte order (TUN's default).
type vnetHdr struct {
	flags, gsoType                         uint8
	hdrLen, gsoSize, csumStart, csumOffset uint16
}

func parseVnetHdr(b []byte) vnetHdr {
	return vnetHdr{
		flags: b[0], gsoType: b[1],
		hdrLen:     binary.NativeEndian.Uint16(b[2:]),
		gsoSize:    binary.NativeEndian.Uint16(b[4:]),
		csumStart:  binary.NativeEndian.Uint16(b[6:]),
		csumOffset: binary.NativeEndian.Uint16(b[8:]),
	}
}

func (h vnetHdr) put(b []byte) {
	b[0], b[1] = h.flags, h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}

// csumAdd adds b to the ones'-complement sum (RFC 1071) in 64-bit steps.
func csumAdd(sum uint64, b []byte) uint64 {
	var carry uint64
	for len(b) >= 8 {
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	if len(b) >= 4 {
		sum, carry = bits.Add64(sum, uint64(binary.BigEndian.Uint32(b)), carry)
		b = b[4:]
	}
	if len(b) >= 2 {
		sum, carry = bits.Add64(sum, uint64(binary.BigEndian.Uint16(b)), carry)
		b = b[2:]
	}
	if len(b) == 1 {
		sum, carry = bits.Add64(sum, uint64(b[0])<<8, carry)
	}
	sum, _ = bits.Add64(sum, 0, carry)
	return sum
}

// csumFold folds a sum to 16 bits.
func csumFold(sum uint64) uint16 {
	sum = sum>>32 + sum&0xffffffff
	sum = sum>>32 + sum&0xffffffff
	sum = sum>>16 + sum&0xffff
	sum = sum>>16 + sum&0xffff
	return uint16(sum)
}

// completeChecksum finishes a checksum the kernel left partial: the field
// at csumStart+csumOffset holds the pseudo-header sum, and the checksum
// covers everything from csumStart. It reports false when the offsets do
// not fit the packet.
func completeChecksum(pkt []byte, h vnetHdr) bool {
	start, off := int(h.csumStart), int(h.csumStart)+int(h.csumOffset)
	if start >= len(pkt) || off+2 > len(pkt) {
		return false
	}
	c := ^csumFold(csumAdd(0, pkt[start:]))
	if c == 0 && off == start+6 { // UDP: 0 means no checksum
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[off:], c)
	return true
}

// segSink takes the segments of a super-packet: buf returns a buffer with
// headroom for the next one (nil: no room left), done hands it over with
// the segment of n bytes at buf[headroom:].
type segSink interface {
	segBuf() []byte
	segDone(buf []byte, n int)
}

// splitGSO cuts the TCP or UDP super-packet pkt (an IP packet as the TUN
// handed it, h its virtio header) into segments of at most h.gsoSize
// payload bytes, each with its own IP and TCP/UDP header and checksums,
// and hands them to sink in order. It reports false for a packet it
// cannot split (nothing is handed over then), or when sink ran out of
// buffers midway. It must not allocate.
func splitGSO(pkt []byte, h vnetHdr, sink segSink) bool {
	var ipLen, proto int
	v4 := false
	switch {
	case len(pkt) >= 20 && pkt[0]>>4 == 4:
		v4, ipLen, proto = true, int(pkt[0]&0x0f)*4, int(pkt[9])
		if ipLen < 20 || int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) ||
			binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 { // fragments
			return false
		}
	case len(pkt) >= 40 && pkt[0]>>4 == 6:
		ipLen, proto = 40, int(pkt[6]) // the kernel puts no extension headers in GSO packets it hands out
		if int(binary.BigEndian.Uint16(pkt[4:]))+40 != len(pkt) {
			return false
		}
	default:
		return false
	}
	var hlen int
	switch h.gsoType &^ vnetGSOECN {
	case vnetGSOTCPv4, vnetGSOTCPv6:
		if proto != 6 || len(pkt) < ipLen+20 {
			return false
		}
		thl := int(pkt[ipLen+12]>>4) * 4
		if thl < 20 { // a Data Offset below 5 words (RFC 793 §3.1)
			return false
		}
		hlen = ipLen + thl
	case vnetGSOUDPL4:
		if proto != 17 {
			return false
		}
		hlen = ipLen + 8
	default:
		return false
	}
	gso := int(h.gsoSize)
	if gso == 0 || hlen > len(pkt) || hlen <= ipLen {
		return false
	}
	payload := pkt[hlen:]
	if len(payload) == 0 {
		return false
	}
	var id uint16
	var seq uint32
	if v4 {
		id = binary.BigEndian.Uint16(pkt[4:])
	}
	if proto == 6 {
		seq = binary.BigEndian.Uint32(pkt[ipLen+4:])
	}
	// The pseudo-header's addresses (RFC 793 §3.1, RFC 768, RFC 8200 §8.1).
	var addrSum uint64
	if v4 {
		addrSum = csumAdd(0, pkt[12:20])
	} else {
		addrSum = csumAdd(0, pkt[8:40])
	}
	for i := 0; len(payload) > 0; i++ {
		l := min(gso, len(payload))
		last := l == len(payload)
		buf := sink.segBuf()
		if buf == nil || len(buf) < headroom+hlen+l {
			return false
		}
		seg := buf[headroom : headroom+hlen+l]
		copy(seg, pkt[:hlen])
		copy(seg[hlen:], payload[:l])
		payload = payload[l:]
		l4 := seg[ipLen:]
		l4Len := hlen - ipLen + l
		if v4 {
			binary.BigEndian.PutUint16(seg[2:], uint16(hlen+l))
			binary.BigEndian.PutUint16(seg[4:], id+uint16(i))
			seg[10], seg[11] = 0, 0
			binary.BigEndian.PutUint16(seg[10:], ^csumFold(csumAdd(0, seg[:ipLen])))
		} else {
			binary.BigEndian.PutUint16(seg[4:], uint16(l4Len))
		}
		sum := addrSum + uint64(proto) + uint64(l4Len)
		if proto == 6 {
			binary.BigEndian.PutUint32(l4[4:], seq+uint32(i*gso))
			if !last {
				l4[13] &^= 0x01 | 0x08 // FIN, PSH only on the last segment
			}
			if i > 0 {
				l4[13] &^= 0x80 // CWR only on the first
			}
			l4[16], l4[17] = 0, 0
			binary.BigEndian.PutUint16(l4[16:], ^csumFold(csumAdd(sum, l4)))
		} else {
			binary.BigEndian.PutUint16(l4[4:], uint16(l4Len))
			l4[6], l4[7] = 0, 0
			c := ^csumFold(csumAdd(sum, l4))
			if c == 0 {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(l4[6:], c)
		}
		sink.segDone(buf, hlen+l)
	}
	return true
}
