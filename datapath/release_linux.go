package datapath

import (
	"errors"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Release gives a UDP socket's address back to the system while the
// engine runs: a listener removed from the configuration, once no tunnel
// uses it. The descriptor is replaced in place by a loopback socket
// connected to itself, which nothing else can reach, so the reader
// thread polling it sleeps until the engine stops; the address can be
// bound again at once. It is called once, for a socket nothing sends on
// any more.
func (s *Socket) Release() error {
	u, ok := s.io.(*udpIO)
	if !ok {
		return errors.New("datapath: release: not a UDP socket")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return nil
	}
	var self unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	domain := unix.AF_INET
	if u.v6 {
		domain, self = unix.AF_INET6, &unix.SockaddrInet6{Addr: [16]byte{15: 1}}
	}
	nfd, err := unix.Socket(domain, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(nfd)
	if err := unix.Bind(nfd, self); err != nil {
		return err
	}
	if self, err = unix.Getsockname(nfd); err != nil {
		return err
	}
	if err := unix.Connect(nfd, self); err != nil {
		return err
	}
	// The reader sleeping in ppoll keeps the old socket (its poll wait
	// entry holds it) until the call returns. A wakeup on the old
	// socket has it look at the descriptor again, which by then is the
	// new socket: readable with one empty datagram, the call returns,
	// and the old socket and its port go. The reader drops the datagram
	// (counted as malformed).
	if err := unix.Send(nfd, nil, 0); err != nil {
		return err
	}
	if err := unix.Dup3(nfd, u.fd, unix.O_CLOEXEC); err != nil {
		return err
	}
	wakeOld(u.laddr)
	return nil
}

// wakeOld sends an empty datagram to a socket's old address (loopback
// for a wildcard one).
func wakeOld(a net.Addr) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return
	}
	to := ua.AddrPort()
	ip := to.Addr().Unmap()
	if ip.IsUnspecified() {
		ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if to.Addr().Is6() && !to.Addr().Is4In6() {
			ip = netip.IPv6Loopback()
		}
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, to.Port())))
	if err != nil {
		return
	}
	_, _ = c.Write(nil)
	c.Close()
}
