package control

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// listener is one bound UDP socket. It reports the local address each
// packet was sent to (IP_PKTINFO) so replies leave from the address the
// LAC targeted: a wildcard-bound, multi-homed LNS must not answer from
// another address (Cisco LACs and ASAs drop such replies).
type listener struct {
	conn *net.UDPConn
	v6   bool
}

func listen(addr string) (*listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		ua, rerr := net.ResolveUDPAddr("udp", addr)
		if rerr != nil {
			return nil, fmt.Errorf("control: listen %q: %w", addr, err)
		}
		ap = ua.AddrPort()
	}
	network := "udp4"
	v6 := ap.Addr().Is6() && !ap.Addr().Is4In6()
	if v6 {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("control: listen %s: %w", addr, err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
		if serr == nil {
			// Control bursts (reconnect storms) must not be lost in the
			// socket queue.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("control: listen %s: pktinfo: %w", addr, err)
	}
	return &listener{conn: conn, v6: v6}, nil
}

// read reads one datagram and the local address it was sent to.
func (l *listener) read(b, oob []byte) (n int, from netip.AddrPort, to netip.Addr, err error) {
	n, oobn, _, from, err := l.conn.ReadMsgUDPAddrPort(b, oob)
	if err != nil {
		return 0, from, to, err
	}
	to = parsePktinfo(oob[:oobn])
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	return n, from, to, nil
}

func parsePktinfo(oob []byte) netip.Addr {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
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
		oob = oob[unix.CmsgSpace(int(h.Len)-unix.CmsgLen(0)):]
	}
	return netip.Addr{}
}

// write sends b to the peer from the local address src when known.
func (l *listener) write(b []byte, to netip.AddrPort, src netip.Addr, oob []byte) error {
	oob = oob[:0]
	if src.IsValid() && !src.IsUnspecified() {
		if src.Is4() && !l.v6 {
			oob = append(oob, unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: src.As4()})...)
		} else if l.v6 {
			oob = append(oob, unix.PktInfo6(&unix.Inet6Pktinfo{Addr: src.As16()})...)
		}
	}
	if l.v6 && to.Addr().Is4() {
		to = netip.AddrPortFrom(netip.AddrFrom16(to.Addr().As16()), to.Port())
	}
	_, _, err := l.conn.WriteMsgUDPAddrPort(b, oob, to)
	if err != nil && oob != nil && isAddrErr(err) {
		// The address went away (reconfigured interface): let routing pick.
		_, _, err = l.conn.WriteMsgUDPAddrPort(b, nil, to)
	}
	return err
}

func isAddrErr(err error) bool {
	return errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.EINVAL)
}
