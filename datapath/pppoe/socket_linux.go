package pppoe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ListenOptions tunes a Conn.
type ListenOptions struct {
	// Batch is how many frames one recvmmsg may return (default 64).
	Batch int
	// Promisc puts the interface in promiscuous mode for the socket's
	// lifetime: emulated Hosts with their own MAC addresses need it.
	Promisc bool
}

// frameBuf is the receive buffer size: a full Ethernet frame.
const frameBuf = 1536

// Conn is a raw AF_PACKET socket on one Ethernet interface that receives
// the PPPoE EtherTypes only (a socket filter drops the rest in the
// kernel) and sends whole Ethernet frames.
type Conn struct {
	f       *os.File
	rc      syscall.RawConn
	name    string
	ifindex int
	mac     MAC
	closed  atomic.Bool

	// receive side, reader goroutine only
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrLinklayer
	bufs  [][]byte
	rxN   int
	rxErr error
	rxFn  func(fd uintptr) bool

	// send side
	wmu   sync.Mutex
	whdrs []unix.Mmsghdr
	wiovs []unix.Iovec
	wFrom int
	wTo   int
	wN    int
	wErr  error
	wFn   func(fd uintptr) bool
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// pppoeFilter accepts EtherTypes 0x8863 and 0x8864 (classic BPF: load
// the half-word at offset 12, compare, return).
var pppoeFilter = []unix.SockFilter{
	{Code: 0x28, K: 12},
	{Code: 0x15, Jt: 2, K: EtherTypeDiscovery},
	{Code: 0x15, Jt: 1, K: EtherTypeSession},
	{Code: 0x06, K: 0},
	{Code: 0x06, K: 0xffff},
}

// Listen opens the socket on the named interface.
func Listen(ifname string, opt ListenOptions) (*Conn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("pppoe: %w", err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("pppoe: %s is not an Ethernet interface", ifname)
	}
	if opt.Batch <= 0 {
		opt.Batch = 64
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("pppoe: socket on %s: %w", ifname, err)
	}
	setup := func() error {
		prog := unix.SockFprog{Len: uint16(len(pppoeFilter)), Filter: &pppoeFilter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
			return fmt.Errorf("attach filter: %w", err)
		}
		// Our own frames are not input (kernels before 4.20 lack the
		// option; the reader skips PACKET_OUTGOING then).
		_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		if opt.Promisc {
			mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
			if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
				return fmt.Errorf("promiscuous mode: %w", err)
			}
		}
		return nil
	}
	if err := setup(); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pppoe: %s: %w", ifname, err)
	}
	f := os.NewFile(uintptr(fd), "pppoe:"+ifname)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pppoe: %s: %w", ifname, err)
	}
	c := &Conn{f: f, rc: rc, name: ifname, ifindex: ifi.Index}
	copy(c.mac[:], ifi.HardwareAddr)
	c.hdrs = make([]unix.Mmsghdr, opt.Batch)
	c.iovs = make([]unix.Iovec, opt.Batch)
	c.names = make([]unix.RawSockaddrLinklayer, opt.Batch)
	c.bufs = make([][]byte, opt.Batch)
	c.whdrs = make([]unix.Mmsghdr, opt.Batch)
	c.wiovs = make([]unix.Iovec, opt.Batch)
	for i := range c.hdrs {
		c.bufs[i] = make([]byte, frameBuf)
		h := &c.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&c.names[i]))
		h.Iov = &c.iovs[i]
		h.SetIovlen(1)
		w := &c.whdrs[i].Hdr
		w.Iov = &c.wiovs[i]
		w.SetIovlen(1)
	}
	c.rxFn = c.recvmmsg
	c.wFn = c.sendmmsg
	return c, nil
}

// HardwareAddr is the interface's MAC address.
func (c *Conn) HardwareAddr() MAC { return c.mac }

// Name is the interface name.
func (c *Conn) Name() string { return c.name }

// Close closes the socket; Run returns.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.f.Close()
}

// Run reads batches until the socket is closed or ctx is done, and calls
// fn for every PPPoE frame, on this goroutine. fn must not block; pkt is
// the whole Ethernet frame and f its parse, both valid only during the
// call. A relay may rewrite pkt in place and send it from fn.
func (c *Conn) Run(ctx context.Context, fn func(f *Frame, pkt []byte)) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for {
		n, err := c.readBatch()
		if err != nil {
			if c.closed.Load() || errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.ENOBUFS) {
				continue
			}
			return fmt.Errorf("pppoe: read %s: %w", c.name, err)
		}
		for i := 0; i < n; i++ {
			h := &c.hdrs[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 || c.names[i].Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			pkt := c.bufs[i][:h.Len]
			f, err := ParseFrame(pkt)
			if err != nil {
				continue
			}
			fn(&f, pkt)
		}
	}
}

func (c *Conn) readBatch() (int, error) {
	for i := range c.hdrs {
		c.iovs[i].Base = &c.bufs[i][0]
		c.iovs[i].SetLen(len(c.bufs[i]))
		h := &c.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrLinklayer
		h.Flags = 0
		c.hdrs[i].Len = 0
	}
	c.rxN, c.rxErr = 0, nil
	if err := c.rc.Read(c.rxFn); err != nil {
		return 0, err
	}
	return c.rxN, c.rxErr
}

func (c *Conn) recvmmsg(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.hdrs[0])),
			uintptr(len(c.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			c.rxN = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.rxErr = errno
		return true
	}
}

// Write sends one Ethernet frame; safe for concurrent use.
func (c *Conn) Write(frame []byte) error {
	_, err := c.WriteBatch([][]byte{frame})
	return err
}

// WriteBatch sends frames with sendmmsg, in batches of the socket's
// batch size, and returns how many were sent; safe for concurrent use.
func (c *Conn) WriteBatch(frames [][]byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	sent := 0
	for len(frames) > 0 {
		n := min(len(frames), len(c.whdrs))
		for i := 0; i < n; i++ {
			c.wiovs[i].Base = &frames[i][0]
			c.wiovs[i].SetLen(len(frames[i]))
		}
		c.wFrom, c.wTo = 0, n
		for c.wFrom < c.wTo {
			c.wN, c.wErr = 0, nil
			if err := c.rc.Write(c.wFn); err != nil {
				clear(c.wiovs[:n])
				return sent, fmt.Errorf("pppoe: write %s: %w", c.name, err)
			}
			c.wFrom += c.wN
			sent += c.wN
			if c.wErr != nil {
				// The frame at wFrom was refused (too big, interface
				// down): skip it.
				err := c.wErr
				c.wFrom++
				if c.wFrom >= c.wTo {
					clear(c.wiovs[:n])
					return sent, fmt.Errorf("pppoe: write %s: %w", c.name, err)
				}
			}
		}
		clear(c.wiovs[:n]) // do not keep the caller's buffers reachable
		frames = frames[n:]
	}
	return sent, nil
}

func (c *Conn) sendmmsg(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&c.whdrs[c.wFrom])),
			uintptr(c.wTo-c.wFrom), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			c.wN = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.wErr = errno
		return true
	}
}
