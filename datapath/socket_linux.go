package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket is a UDP socket (normally port 1701) carrying both control and
// data messages.
type Socket struct {
	e  *Engine
	io socketIO
	// txq is the TUN reader's queue for the next sendmmsg; only the TUN
	// reader touches it.
	txq []message
	// ip: raw IP protocol 115 socket (RFC 3931 §4.1.1.2), not UDP.
	ip bool
	// pwq is the TAP reader's send queue; only the TAP reader touches it.
	pwq *pwQueue
}

// message is one datagram to send: payload, destination and the local
// source address (zero: let routing choose).
type message struct {
	b    []byte
	to   netip.AddrPort
	from netip.Addr
}

// socketIO is the socket's system side; tests substitute a recorder.
type socketIO interface {
	// writeBatch sends msgs and returns how many could not be sent.
	writeBatch(msgs []message) (failed int)
	// writeOne sends one datagram; safe for concurrent use.
	writeOne(b []byte, to netip.AddrPort, from netip.Addr) error
	localAddr() net.Addr
}

// LocalAddr is the socket's bound address.
func (s *Socket) LocalAddr() net.Addr { return s.io.localAddr() }

// WriteControl sends a control message through the socket from the local
// address from (zero: let routing choose); safe for concurrent use.
func (s *Socket) WriteControl(pkt []byte, to netip.AddrPort, from netip.Addr) error {
	if err := s.io.writeOne(pkt, to, from); err != nil {
		return fmt.Errorf("datapath: write control to %v: %w", to, err)
	}
	return nil
}

// readLoop reads batches on a locked OS thread until the engine stops.
func (s *Socket) readLoop() error {
	defer lockThread()()
	if s.ip {
		return s.readLoopIP()
	}
	u := s.io.(*udpIO)
	for {
		n, err := u.readBatch()
		if err != nil {
			if err == errStopped {
				return nil
			}
			// Transient (ENOBUFS, ICMP errors surfacing): count and go on.
			s.e.drop(dropRead, nil)
			continue
		}
		s.deliverBatch(u, n)
	}
}

// deliverBatch hands the n datagrams of the last readBatch to the engine,
// cutting apart what GRO coalesced. It must not allocate.
func (s *Socket) deliverBatch(u *udpIO, n int) {
	var groReceived, groSegments uint64
	for i := 0; i < n; i++ {
		h := &u.rx.hdrs[i]
		if h.Hdr.Flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			s.e.drop(dropTruncated, nil)
			continue
		}
		pkt := u.rx.bufs[i][:h.Len]
		oob := u.rx.oob[i][:h.Hdr.Controllen]
		from := sockaddrAddrPort(&u.rx.names[i])
		to := parsePktinfo(oob)
		seg := 0
		if u.gro {
			seg = parseGRO(oob)
		}
		if seg <= 0 || seg >= len(pkt) {
			s.e.receive(s, pkt, from, to)
			continue
		}
		// Coalesced by GRO: datagrams of seg bytes, the last one
		// possibly shorter.
		groReceived++
		for len(pkt) > 0 {
			l := min(seg, len(pkt))
			s.e.receive(s, pkt[:l], from, to)
			pkt = pkt[l:]
			groSegments++
		}
	}
	if groReceived > 0 {
		u.off.groReceived.Add(groReceived)
		u.off.groSegments.Add(groSegments)
	}
}

// errStopped ends a forwarding loop: the engine is shutting down.
var errStopped = errors.New("datapath: stopped")

// oobSize holds IPV6_PKTINFO or IP_PKTINFO and UDP_GRO or UDP_SEGMENT.
const oobSize = 128

type mmsgState struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   [][]byte
	bufs  [][]byte // receive only
	// send only: per header, its number of segments (iovecs, from iov
	// first) and the length of its IP_PKTINFO part of oob; single holds
	// a refused GSO entry's messages, one per header
	segs, first, pktLen []int
	single              []unix.Mmsghdr
}

func newMmsgState(batch int, withBufs bool) *mmsgState {
	m := &mmsgState{
		hdrs:  make([]unix.Mmsghdr, batch),
		iovs:  make([]unix.Iovec, batch),
		names: make([]unix.RawSockaddrInet6, batch),
		oob:   make([][]byte, batch),
	}
	if withBufs {
		m.bufs = make([][]byte, batch)
	} else {
		m.segs, m.first, m.pktLen = make([]int, batch), make([]int, batch), make([]int, batch)
		m.single = make([]unix.Mmsghdr, batch)
		for i := range m.single {
			m.single[i].Hdr.SetIovlen(1)
		}
	}
	for i := range m.hdrs {
		m.oob[i] = make([]byte, oobSize)
		if withBufs {
			m.bufs[i] = make([]byte, bufSize)
		}
		h := &m.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		h.Iov = &m.iovs[i]
		h.SetIovlen(1)
	}
	return m
}

// udpIO does batched reads (recvmmsg) and writes (sendmmsg) on a
// non-blocking descriptor of its own, outside the runtime poller, with
// IP_PKTINFO/IPV6_PKTINFO for local addresses.
type udpIO struct {
	fd    int
	laddr net.Addr
	v6    bool
	rx    *mmsgState // reader thread only
	tx    *mmsgState // TUN thread only
	// rxWait and txWait sleep on the descriptor (and the engine's stop
	// eventfd) for the reader and the TUN thread; set before either runs.
	rxWait, txWait *waiter
	// gso, gro: UDP_SEGMENT on send, UDP_GRO on receive are on
	gso, gro bool
	// gsoBelow: only messages shorter than this are merged; it drops to
	// the segment size the kernel refused as larger than the path MTU
	// (written by the TUN thread and the control shards' frame batches)
	gsoBelow atomic.Int32
	// gsoPause counts down the batches left unmerged after an EIO.
	gsoPause atomic.Int32
	off      *offloadStats

	// mu orders writeOne against close: the descriptor number must not be
	// used once closed (it may be reused by then).
	mu     sync.RWMutex
	closed bool
}

// newUDPIO takes conn's socket out of the runtime poller: it keeps a
// duplicate descriptor and closes conn, which removes the socket from the
// poller's epoll set.
func newUDPIO(conn *net.UDPConn, cfg Config, off *offloadStats) (*udpIO, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("datapath: add socket: %w", err)
	}
	u := &udpIO{fd: -1, laddr: conn.LocalAddr(), rx: newMmsgState(cfg.Batch, true), tx: newMmsgState(cfg.Batch, false), off: off}
	u.gsoBelow.Store(1 << 16)
	var serr error
	err = rc.Control(func(fd uintptr) {
		var domain int
		domain, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if serr != nil {
			return
		}
		u.v6 = domain == unix.AF_INET6
		if u.v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
			// IPv4 packets on a dual-stack socket report IP_PKTINFO.
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
		if serr != nil {
			return
		}
		// Bursts must not be lost in the socket queue.
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<20)
		u.gso, u.gro = enableOffloads(int(fd), cfg)
		u.fd, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		if serr == nil {
			serr = unix.SetNonblock(u.fd, true)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		if u.fd >= 0 {
			unix.Close(u.fd)
		}
		return nil, fmt.Errorf("datapath: add socket: %w", err)
	}
	conn.Close()
	if u.gso {
		off.gsoSockets.Add(1)
	}
	if u.gro {
		off.groSockets.Add(1)
	}
	return u, nil
}

func (u *udpIO) localAddr() net.Addr { return u.laddr }

// start readies the socket for its reader thread and the TUN thread.
func (u *udpIO) start(st *stopper) {
	u.rxWait, u.txWait = newWaiter(st, u.fd), newWaiter(st, u.fd)
}

func (u *udpIO) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.closed {
		u.closed = true
		unix.Close(u.fd)
	}
}

// readBatch receives at least one datagram, sleeping while there is none;
// it returns errStopped when the engine stops.
func (u *udpIO) readBatch() (int, error) {
	m := u.rx
	for i := range m.hdrs {
		m.iovs[i].Base = &m.bufs[i][0]
		m.iovs[i].SetLen(len(m.bufs[i]))
		h := &m.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.Control = &m.oob[i][0]
		h.SetControllen(oobSize)
		h.Flags = 0
		m.hdrs[i].Len = 0
	}
	for {
		if u.rxWait.st.done.Load() {
			return 0, errStopped
		}
		n, errno := mmsgCall(unix.SYS_RECVMMSG, u.fd, m.hdrs)
		switch errno {
		case 0:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if !u.rxWait.wait(unix.POLLIN) {
				return 0, errStopped
			}
			continue
		}
		return 0, errno
	}
}

func mmsgCall(trap uintptr, fd int, hdrs []unix.Mmsghdr) (int, unix.Errno) {
	n, _, errno := unix.Syscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])),
		uintptr(len(hdrs)), unix.MSG_DONTWAIT, 0, 0)
	return int(n), errno
}

// writeBatch sends msgs with sendmmsg. With GSO, consecutive messages to
// the same peer from the same address share one entry (see
// offload_linux.go). A message the kernel refuses with its source address
// (the address went away) is retried without it; any other refused
// message is skipped and counted.
func (u *udpIO) writeBatch(msgs []message) (failed int) {
	m := u.tx
	nh, ni := 0, 0 // headers and iovecs used
	segSize, total := 0, 0
	open := false // the last header can take another segment
	below, gso := int(u.gsoBelow.Load()), u.gsoOn()
	for k := range msgs {
		msg := &msgs[k]
		l := len(msg.b)
		if open && l <= segSize && m.segs[nh-1] < maxGSOSegments && total+l <= maxGSOBytes &&
			msg.to == msgs[k-1].to && msg.from == msgs[k-1].from {
			m.iovs[ni].Base = &msg.b[0]
			m.iovs[ni].SetLen(l)
			ni++
			m.segs[nh-1]++
			total += l
			open = l == segSize
			continue
		}
		h := &m.hdrs[nh].Hdr
		if !u.fillName(&m.names[nh], h, msg.to) {
			failed++
			open = false
			continue
		}
		m.iovs[ni].Base = &msg.b[0]
		m.iovs[ni].SetLen(l)
		h.Iov = &m.iovs[ni]
		m.first[nh], m.segs[nh] = ni, 1
		m.pktLen[nh] = putPktinfo(m.oob[nh], msg.from, u.v6)
		ni++
		nh++
		segSize, total, open = l, l, gso && l < below
	}
	m.finishHeaders(nh)
	failed += u.send(m.hdrs[:nh], true)
	clear(m.iovs[:ni]) // do not keep the caller's buffers reachable
	return failed
}

// finishHeaders completes the first nh send headers: each one's iovec
// count, and its control messages, the source address and, for a GSO
// entry (more than one segment), the segment size.
func (m *mmsgState) finishHeaders(nh int) {
	for i := 0; i < nh; i++ {
		h := &m.hdrs[i].Hdr
		h.SetIovlen(m.segs[i])
		l := m.pktLen[i]
		if m.segs[i] > 1 {
			l = putSegment(m.oob[i], l, uint16(m.iovs[m.first[i]].Len))
		}
		h.Control = nil
		if l > 0 {
			h.Control = &m.oob[i][0]
		}
		h.SetControllen(l)
	}
}

// send sends hdrs with sendmmsg, the GSO entries among them (gso set)
// counted, or one by one when the kernel refuses them. It returns the
// number of datagrams not sent.
func (u *udpIO) send(hdrs []unix.Mmsghdr, gso bool) (failed int) {
	m := u.tx
	var gsoSent, gsoSegments uint64
	for i := 0; i < len(hdrs); {
		sent, errno := mmsgCall(unix.SYS_SENDMMSG, u.fd, hdrs[i:])
		switch errno {
		case 0:
			if gso {
				for j := i; j < i+sent; j++ {
					if m.segs[j] > 1 {
						gsoSent++
						gsoSegments += uint64(m.segs[j])
					}
				}
			}
			i += sent
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if !u.txWait.wait(unix.POLLOUT) {
				for j := i; j < len(hdrs); j++ {
					failed += int(hdrs[j].Hdr.Iovlen)
				}
				i = len(hdrs)
			}
			continue
		}
		if gso && m.segs[i] > 1 {
			u.gsoRefused(errno, int(m.iovs[m.first[i]].Len))
			failed += u.sendSingles(i)
			i++
			continue
		}
		h := &hdrs[i].Hdr
		if h.Control != nil && (errno == unix.EADDRNOTAVAIL || errno == unix.EINVAL) {
			h.Control = nil
			h.SetControllen(0)
			continue
		}
		failed++
		i++
	}
	if gsoSent > 0 {
		u.off.gsoSent.Add(gsoSent)
		u.off.gsoSegments.Add(gsoSegments)
	}
	return failed
}

// gsoPauseBatches is how many batches go unmerged after the kernel
// refused a GSO entry with EIO, before merging is tried again.
const gsoPauseBatches = 1024

// gsoRefused counts a GSO entry of segments of size the kernel refused
// with errno (its messages are then sent one by one) and adjusts the
// merging: segments this large do not fit the path MTU (EINVAL,
// EMSGSIZE: the kernel fragments single datagrams but not GSO segments),
// so they are not merged again; a route whose device cannot checksum
// (EIO) refuses every entry, so merging pauses for gsoPauseBatches
// batches instead of failing each one.
func (u *udpIO) gsoRefused(errno unix.Errno, size int) {
	u.off.gsoFallback.Add(1)
	switch errno {
	case unix.EINVAL, unix.EMSGSIZE:
		u.lowerGSO(size)
	case unix.EIO:
		u.gsoPause.Store(gsoPauseBatches)
	}
}

// gsoOn reports whether a batch about to be built may merge messages,
// counting down a pause.
func (u *udpIO) gsoOn() bool {
	if !u.gso {
		return false
	}
	if u.gsoPause.Load() > 0 {
		u.gsoPause.Add(-1)
		return false
	}
	return true
}

// lowerGSO stops merging segments of size or more: the kernel refused
// them as larger than the path MTU.
func (u *udpIO) lowerGSO(size int) {
	for {
		old := u.gsoBelow.Load()
		if int(old) <= size || u.gsoBelow.CompareAndSwap(old, int32(size)) {
			return
		}
	}
}

// sendSingles sends the messages of GSO entry i one per entry.
func (u *udpIO) sendSingles(i int) (failed int) {
	m := u.tx
	src := &m.hdrs[i].Hdr
	n := m.segs[i]
	for j := 0; j < n; j++ {
		h := &m.single[j].Hdr
		h.Name, h.Namelen = src.Name, src.Namelen
		h.Iov = &m.iovs[m.first[i]+j]
		h.Control = nil
		if m.pktLen[i] > 0 {
			h.Control = &m.oob[i][0]
		}
		h.SetControllen(m.pktLen[i])
	}
	return u.send(m.single[:n], false)
}

func (u *udpIO) fillName(sa *unix.RawSockaddrInet6, h *unix.Msghdr, to netip.AddrPort) bool {
	a := to.Addr()
	if u.v6 {
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], to.Port())
		h.Namelen = unix.SizeofSockaddrInet6
		return true
	}
	if !a.Unmap().Is4() {
		return false
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], to.Port())
	h.Namelen = unix.SizeofSockaddrInet4
	return true
}

// putPktinfo writes the control message selecting the source address
// (RFC 3542 §6.1 for IPv6; IP_PKTINFO ipi_spec_dst for IPv4) into oob and
// returns its length, 0 when from is zero.
func putPktinfo(oob []byte, from netip.Addr, v6 bool) int {
	if !from.IsValid() || from.IsUnspecified() {
		return 0
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	data := oob[unix.CmsgLen(0):]
	if v6 {
		h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
		*(*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0])) = unix.Inet6Pktinfo{Addr: from.As16()}
		return unix.CmsgSpace(unix.SizeofInet6Pktinfo)
	}
	if !from.Unmap().Is4() {
		return 0
	}
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	*(*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0])) = unix.Inet4Pktinfo{Spec_dst: from.Unmap().As4()}
	return unix.CmsgSpace(unix.SizeofInet4Pktinfo)
}

// writeOne sends one datagram with sendmsg; control-plane rate, so it may
// allocate.
func (u *udpIO) writeOne(b []byte, to netip.AddrPort, from netip.Addr) error {
	var oobBuf [oobSize]byte
	oob := oobBuf[:putPktinfo(oobBuf[:], from, u.v6)]
	var sa unix.Sockaddr
	if u.v6 {
		sa = &unix.SockaddrInet6{Addr: to.Addr().As16(), Port: int(to.Port())}
	} else if a := to.Addr().Unmap(); a.Is4() {
		sa = &unix.SockaddrInet4{Addr: a.As4(), Port: int(to.Port())}
	} else {
		return fmt.Errorf("%v: %w", to, unix.EAFNOSUPPORT)
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.closed {
		return net.ErrClosed
	}
	err := u.sendmsg(b, oob, sa)
	if err != nil && len(oob) > 0 && (errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.EINVAL)) {
		// The address went away (reconfigured interface): let routing pick.
		err = u.sendmsg(b, nil, sa)
	}
	return err
}

// sendmsg sends one datagram, waiting a bounded time for buffer space.
func (u *udpIO) sendmsg(b, oob []byte, sa unix.Sockaddr) error {
	for tries := 0; ; tries++ {
		_, err := unix.SendmsgN(u.fd, b, oob, sa, unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN && tries < 10:
			unix.Poll([]unix.PollFd{{Fd: int32(u.fd), Events: unix.POLLOUT}}, 100)
			continue
		}
		return err
	}
}

func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// parsePktinfo returns the destination address reported by IP_PKTINFO or
// IPV6_PKTINFO, or the zero Addr.
func parsePktinfo(oob []byte) netip.Addr {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || uint64(h.Len) > uint64(len(oob)) {
			break
		}
		data := oob[unix.CmsgLen(0):h.Len]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom4(info.Addr)
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			return netip.AddrFrom16(info.Addr).Unmap()
		}
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return netip.Addr{}
}
