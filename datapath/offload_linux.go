package datapath

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP segmentation offload (UDP_SEGMENT, Linux 4.18) and UDP GRO
// (UDP_GRO, Linux 5.0) on the L2TP sockets.
//
// Every session of a tunnel shares the tunnel's 5-tuple, so the messages
// the TUN thread queues for one socket mostly go to the same peer from the
// same local address. Consecutive messages with the same destination and
// source, all of one size except a shorter last one, leave as one GSO
// super-datagram: one sendmmsg entry whose iovecs are the messages, cut
// back into datagrams of that size by the kernel (or the NIC). The kernel
// refuses GSO for a route whose device cannot checksum (EIO) or a segment
// larger than the path MTU (EINVAL); such an entry is sent again one
// message at a time and counted (gso_fallback), and the socket stops
// merging that size (EINVAL) or pauses merging for a while (EIO; see
// gsoRefused).
//
// With UDP_GRO the kernel hands the reader datagrams of one 5-tuple
// coalesced into one buffer, with the segment size in a UDP_GRO control
// message; the reader cuts them apart again at that size.

const (
	// maxGSOSegments is the kernel's UDP_MAX_SEGMENTS before Linux 6.9
	// raised it to 128.
	maxGSOSegments = 64
	// maxGSOBytes bounds a super-datagram's payload below the 64 KiB IP
	// length limit with room for the IPv6 and UDP headers.
	maxGSOBytes = 65000
)

// offloadStats counts the offload modes in use and their work; Stats
// reports them under the offload_ names.
type offloadStats struct {
	gsoSockets, groSockets   atomic.Uint64 // sockets with the offload active
	gsoSent, gsoSegments     atomic.Uint64 // super-datagrams sent, datagrams in them
	gsoFallback              atomic.Uint64 // super-datagrams the kernel refused, sent one by one
	groReceived, groSegments atomic.Uint64 // coalesced datagrams read, datagrams in them
	tunVnet, tunOffloads     atomic.Uint64 // the TUN's IFF_VNET_HDR (0/1), its TUN_F_ flags
	tunGSORead               atomic.Uint64 // super-packets read from the TUN
	tunGSOSegments           atomic.Uint64 // packets cut from them
	tunCsum                  atomic.Uint64 // partial checksums completed
}

func (o *offloadStats) addTo(m map[string]uint64) {
	m["offload_udp_gso_sockets"] = o.gsoSockets.Load()
	m["offload_udp_gro_sockets"] = o.groSockets.Load()
	m["offload_gso_sent"] = o.gsoSent.Load()
	m["offload_gso_segments"] = o.gsoSegments.Load()
	m["offload_gso_fallback"] = o.gsoFallback.Load()
	m["offload_gro_received"] = o.groReceived.Load()
	m["offload_gro_segments"] = o.groSegments.Load()
	m["offload_tun_vnet_hdr"] = o.tunVnet.Load()
	m["offload_tun_flags"] = o.tunOffloads.Load()
	m["offload_tun_gso_read"] = o.tunGSORead.Load()
	m["offload_tun_gso_segments"] = o.tunGSOSegments.Load()
	m["offload_tun_csum"] = o.tunCsum.Load()
}

// enableOffloads turns on what the kernel supports and cfg allows on the
// UDP socket fd.
func enableOffloads(fd int, cfg Config) (gso, gro bool) {
	if !cfg.DisableGSO {
		// The option exists (reads as 0) on kernels that can segment.
		_, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		gso = err == nil
	}
	if !cfg.DisableGRO {
		gro = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	}
	return gso, gro
}

// putSegment appends a UDP_SEGMENT control message with the segment size
// at oob[off:] and returns the new length.
func putSegment(oob []byte, off int, size uint16) int {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[off]))
	h.Level, h.Type = unix.IPPROTO_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[off+unix.CmsgLen(0)])) = size // host order
	return off + unix.CmsgSpace(2)
}

// parseGRO returns the segment size of a UDP_GRO control message in oob,
// or 0.
func parseGRO(oob []byte) int {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || uint64(h.Len) > uint64(len(oob)) {
			break
		}
		data := oob[unix.CmsgLen(0):h.Len]
		if h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO && len(data) >= 4 {
			return int(*(*int32)(unsafe.Pointer(&data[0]))) // host order
		}
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return 0
}
