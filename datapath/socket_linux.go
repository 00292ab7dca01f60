package datapath

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Socket is a UDP socket (normally port 1701) carrying both control and
// data messages.
type Socket struct {
	e    *Engine
	conn *net.UDPConn
	io   socketIO
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

// readLoop reads batches until the socket is closed.
func (s *Socket) readLoop(ctx context.Context) error {
	if s.ip {
		return s.readLoopIP(ctx)
	}
	u := s.io.(*udpIO)
	for {
		n, err := u.readBatch()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			// Transient (ENOBUFS, ICMP errors surfacing): count and go on.
			s.e.drop(dropRead, nil)
			continue
		}
		for i := 0; i < n; i++ {
			h := &u.rx.hdrs[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				s.e.drop(dropTruncated, nil)
				continue
			}
			from := sockaddrAddrPort(&u.rx.names[i])
			to := parsePktinfo(u.rx.oob[i][:h.Hdr.Controllen])
			s.e.receive(s, u.rx.bufs[i][:h.Len], from, to)
		}
	}
}

const oobSize = 64

type mmsgState struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   [][]byte
	bufs  [][]byte // receive only
	// results of the last system call, set by the RawConn callback
	n   int
	err error
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

// udpIO does batched reads (recvmmsg) and writes (sendmmsg) through the
// runtime poller, with IP_PKTINFO/IPV6_PKTINFO for local addresses.
type udpIO struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	v6   bool
	rx   *mmsgState // reader goroutine only
	tx   *mmsgState // TUN goroutine only
	// pending slice of tx.hdrs for the current sendmmsg
	txFrom, txTo int
	rxFn, txFn   func(fd uintptr) bool
}

func newUDPIO(conn *net.UDPConn, batch int) (*udpIO, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("datapath: add socket: %w", err)
	}
	u := &udpIO{conn: conn, rc: rc, rx: newMmsgState(batch, true), tx: newMmsgState(batch, false)}
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
		if serr == nil {
			// Bursts must not be lost in the socket queue.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<20)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("datapath: add socket: %w", err)
	}
	u.rxFn = u.recvmmsg
	u.txFn = u.sendmmsg
	return u, nil
}

func (u *udpIO) localAddr() net.Addr { return u.conn.LocalAddr() }

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
	m.n, m.err = 0, nil
	if err := u.rc.Read(u.rxFn); err != nil {
		return 0, err
	}
	return m.n, m.err
}

func (u *udpIO) recvmmsg(fd uintptr) bool {
	m := u.rx
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&m.hdrs[0])),
			uintptr(len(m.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			m.n = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		m.err = errno
		return true
	}
}

// writeBatch sends msgs with sendmmsg. A message the kernel refuses with
// its source address (the address went away) is retried without it; any
// other refused message is skipped and counted.
func (u *udpIO) writeBatch(msgs []message) (failed int) {
	m := u.tx
	n := 0
	for _, msg := range msgs {
		if !u.fillName(&m.names[n], &m.hdrs[n].Hdr, msg.to) {
			failed++
			continue
		}
		m.iovs[n].Base = &msg.b[0]
		m.iovs[n].SetLen(len(msg.b))
		l := putPktinfo(m.oob[n], msg.from, u.v6)
		h := &m.hdrs[n].Hdr
		h.Control = nil
		if l > 0 {
			h.Control = &m.oob[n][0]
		}
		h.SetControllen(l)
		n++
	}
	u.txFrom, u.txTo = 0, n
	for u.txFrom < u.txTo {
		m.n, m.err = 0, nil
		if err := u.rc.Write(u.txFn); err != nil {
			return failed + u.txTo - u.txFrom
		}
		u.txFrom += m.n
		if m.err != nil {
			h := &m.hdrs[u.txFrom].Hdr
			if h.Control != nil && (m.err == unix.EADDRNOTAVAIL || m.err == unix.EINVAL) {
				h.Control = nil
				h.SetControllen(0)
				continue
			}
			failed++
			u.txFrom++
		}
	}
	clear(m.iovs[:n]) // do not keep the caller's buffers reachable
	return failed
}

func (u *udpIO) sendmmsg(fd uintptr) bool {
	m := u.tx
	for {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&m.hdrs[u.txFrom])),
			uintptr(u.txTo-u.txFrom), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			m.n = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		m.err = errno
		return true
	}
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
	if u.v6 && to.Addr().Is4() {
		to = netip.AddrPortFrom(netip.AddrFrom16(to.Addr().As16()), to.Port())
	}
	if !u.v6 {
		to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	}
	_, _, err := u.conn.WriteMsgUDPAddrPort(b, oob, to)
	if err != nil && len(oob) > 0 && (errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.EINVAL)) {
		// The address went away (reconfigured interface): let routing pick.
		_, _, err = u.conn.WriteMsgUDPAddrPort(b, nil, to)
	}
	return err
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
