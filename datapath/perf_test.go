//go:build linux

package datapath

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkForward measures the whole forwarding path through the kernel,
// in a network namespace of its own, in both directions:
//
//	up:     L2TPv2 data (PPP/IPv4) on the UDP socket → strip → TUN write
//	up-gso: the same, the generator sending UDP_SEGMENT super-datagrams of
//	        32 messages (what a NIC's GRO hands a UDP_GRO socket)
//	down:   TUN read → route to the session → L2TP+PPP in headroom → sendmmsg
//	down-gso: the same, the generator sending UDP_SEGMENT super-datagrams of
//	        32 datagrams to the subscriber (the kernel segments them before
//	        the TUN unless the TUN takes USO, as l2tpd's does)
//
// For each direction and IP packet size it runs four consumers against
// the same generator:
//
//   - impl=raw: a loop that makes the same system calls with equivalent
//     arguments (recvmmsg with names and IP_PKTINFO, one TUN write per
//     packet; TUN reads until EAGAIN, sendmmsg with a destination and
//     IP_PKTINFO per message) on non-blocking descriptors of its own,
//     waiting in poll(2) only on EAGAIN, but strips or prepends a fixed
//     10-byte header and has no session table and no checks: the limit;
//   - impl=rawpoll: the same loop with its descriptors under the Go
//     runtime's netpoller (os.File, RawConn callbacks, os.File.Write for
//     the TUN), the engine's former I/O model;
//   - impl=l2tpd-plain: the Engine with one installed session and UDP GSO,
//     UDP GRO and the TUN offloads disabled, so it makes the same system
//     calls as raw;
//   - impl=l2tpd: the Engine as configured by default, with UDP GSO toward
//     the peer, UDP GRO on the socket and IFF_VNET_HDR with checksum, TSO
//     and USO offload on the TUN (it fails if the kernel lacks the UDP
//     offloads or, where they apply, they did nothing).
//
// raw→l2tpd-plain is l2tpd's own per-packet work (classify, look up,
// check, count, route, encapsulate); raw→l2tpd is what the offloads gain.
//
// The generator runs on a locked OS thread of this process and blasts
// prebuilt packets with sendmmsg as fast as the kernel takes them:
// upstream to the LNS socket over loopback, downstream to the
// subscriber's address, which the kernel routes into the TUN. What the
// consumer forwards goes to UDP sockets nobody reads (the kernel drops it
// when their small receive buffers are full), so the kernel's work for
// every forwarded packet is the same for every consumer.
//
// One op is one forwarded packet. Besides ns/op it reports pkt/s (wall
// clock), pkt/cpu-s (packets per second of CPU spent by the process less
// the generator's thread: the rate per core), cores (that CPU over wall
// time), allocs/pkt and gc/s over the timed part.
//
// It needs root; go test runs it only with -bench. docs/performance.md
// has the results and how to reproduce them:
//
//	go test -run '^$' -bench '^BenchmarkForward$' -benchtime 1000000x ./datapath/
func BenchmarkForward(b *testing.B) {
	perfRequireRoot(b)
	for _, dir := range []string{"up", "up-gso", "down", "down-gso"} {
		for _, size := range []int{64, 1400} {
			for _, impl := range []string{"raw", "rawpoll", "l2tpd-plain", "l2tpd"} {
				b.Run(fmt.Sprintf("dir=%s/size=%d/impl=%s", dir, size, impl), func(b *testing.B) {
					runForward(b, dir, size, impl)
				})
			}
		}
	}
}

const (
	perfBatch   = 32 // the Engine's default batch
	perfHdrLen  = 10 // v2 data header without L, S, O (6) + FF 03 + protocol (4)
	perfWarmup  = 20000
	perfTimeout = 2 * time.Minute
	perfTUN     = "l2tpb0"
	perfSinkBuf = 4096 // receive buffer of the sockets nobody reads
	// perfGSOSegments is how many datagrams the generator puts in one
	// super-datagram for dir=up-gso.
	perfGSOSegments = 32
)

var (
	perfLNS     = netip.MustParseAddrPort("127.0.0.1:1701")
	perfTUNAddr = netip.MustParseAddr("10.99.0.1")   // on the TUN: upstream destination, downstream source
	perfSub     = netip.MustParseAddr("100.64.0.10") // the subscriber, routed to the TUN
	perfKey     = SessionKey{Version: 2, Tunnel: 100, Session: 200}
	perfPeerT   = uint32(7)
	perfPeerS   = uint32(8)
	perfNSSeq   atomic.Int64
)

// perfUDP4 is an IPv4/UDP packet of size bytes from src to dst:9 with a
// valid IP header checksum and no UDP checksum.
func perfUDP4(src, dst netip.Addr, size int) []byte {
	udp := make([]byte, size-20)
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 9)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	return ipv4Packet(src, dst, 17, udp)
}

// perfUpstream is the data message the LAC sends: the subscriber's packet
// to the TUN's address behind the 10-byte header the raw loop strips.
func perfUpstream(size int) []byte {
	return v2Data(perfKey, pppFrame(ProtoIPv4, perfUDP4(perfSub, perfTUNAddr, size)))
}

// perfDownHeader is what the raw loop prepends: the header the Engine
// builds for the benchmark's session.
func perfDownHeader() []byte {
	return AppendV2(nil, Header{Tunnel: perfPeerT, Session: perfPeerS}, []byte{0xff, 0x03, 0x00, 0x21})
}

func perfSession(peer netip.AddrPort, s *Socket) Session {
	return Session{
		Key: perfKey, PeerTunnel: perfPeerT, PeerSession: perfPeerS,
		Peer: peer, Local: perfLNS.Addr(), Socket: s, IPv4: perfSub,
	}
}

// The raw loop's fixed header handling produces exactly what the Engine
// forwards, so both consumers do the same job. Needs no root.
func TestPerfConsumersAgree(t *testing.T) {
	for _, size := range []int{64, 1400} {
		r := newRig(t, true, perfBatch)
		if err := r.e.Install(perfSession(lac, r.sock)); err != nil {
			t.Fatal(err)
		}
		msg := perfUpstream(size)
		r.e.receive(r.sock, msg, lac, lnsAddr)
		if len(r.tun.pkts) != 1 || !bytes.Equal(r.tun.pkts[0], msg[perfHdrLen:]) || len(msg)-perfHdrLen != size {
			t.Fatalf("%d bytes up: Engine wrote %x, raw loop writes %x", size, r.tun.pkts, msg[perfHdrLen:])
		}
		ip := perfUDP4(perfTUNAddr, perfSub, size)
		buf, n := tunPacket(ip)
		f := &tunForwarder{e: r.e}
		f.forward(buf, n)
		f.flush()
		want := append(perfDownHeader(), ip...)
		if len(r.io.sent) != 1 || !bytes.Equal(r.io.sent[0].b, want) || r.io.sent[0].to != lac || r.io.sent[0].from != perfLNS.Addr() {
			t.Fatalf("%d bytes down: Engine sent %+v, raw loop sends %x", size, r.io.sent, want)
		}
		if len(r.up.calls) != 0 || r.stat("malformed")+r.stat("no_route")+r.stat("spoofed") != 0 {
			t.Fatalf("%d bytes: upcalls %v, stats %v", size, r.up.calls, r.e.Stats())
		}
	}
}

func perfRequireRoot(b *testing.B) {
	switch {
	case os.Geteuid() != 0:
		b.Skip("BenchmarkForward needs root (a network namespace and a TUN device); run it as root with -bench Forward")
	case func() bool { _, err := exec.LookPath("ip"); return err != nil }():
		b.Skip("BenchmarkForward needs iproute2's ip command")
	case func() bool { _, err := os.Stat("/dev/net/tun"); return err != nil }():
		b.Skip("BenchmarkForward needs /dev/net/tun")
	}
}

func perfIP(b *testing.B, args ...string) {
	b.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		b.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// perfNamespace creates a network namespace deleted at cleanup, with lo
// up and IPv6 off (so the kernel sends nothing of its own into the TUN).
func perfNamespace(b *testing.B) string {
	name := fmt.Sprintf("l2tpd-perf-%d-%d", os.Getpid(), perfNSSeq.Add(1))
	perfIP(b, "netns", "add", name)
	b.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	perfIP(b, "-n", name, "link", "set", "lo", "up")
	perfIn(b, name, func() error {
		for _, p := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+p+"/disable_ipv6", []byte("1"), 0); err != nil {
				return err
			}
		}
		return nil
	})
	return name
}

// perfIn runs fn on a thread switched into the namespace; the sockets and
// devices fn opens stay there. The thread exits afterwards.
func perfIn(b *testing.B, ns string, fn func() error) {
	b.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// perfLNSSocket opens the LNS's socket at perfLNS: a net.UDPConn for
// l2tpd's Engine, else a non-blocking descriptor set up as the Engine
// sets up its sockets, for the raw loop.
func perfLNSSocket(l2tpd bool) (*net.UDPConn, int, error) {
	if l2tpd {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(perfLNS))
		return c, -1, err
	}
	fd, _, err := perfSocket(perfLNS, unix.SOCK_NONBLOCK)
	if err != nil {
		return nil, -1, err
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<20)
	return nil, fd, nil
}

// perfSocket opens an IPv4 UDP socket bound to addr and returns it with
// its bound address.
func perfSocket(addr netip.AddrPort, flags int) (int, netip.AddrPort, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|flags, 0)
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: addr.Addr().As4(), Port: int(addr.Port())}); err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, fmt.Errorf("bind %v: %w", addr, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return -1, netip.AddrPort{}, err
	}
	sa4 := sa.(*unix.SockaddrInet4)
	return fd, netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(sa4.Port)), nil
}

// perfSink opens a socket nobody reads, with a small receive buffer.
func perfSink(addr netip.AddrPort) (int, netip.AddrPort, error) {
	fd, bound, err := perfSocket(addr, 0)
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, perfSinkBuf)
	}
	return fd, bound, err
}

// perfOpenTUN opens the raw loop's TUN like the Engine opens its own.
func perfOpenTUN(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = linkUp(name, 1500)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// perfMmsg is a batch of message headers for recvmmsg or sendmmsg.
type perfMmsg struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	oob   [][]byte
	bufs  [][]byte
}

func newPerfMmsg(n, bufLen int) *perfMmsg {
	m := &perfMmsg{
		hdrs:  make([]unix.Mmsghdr, n),
		iovs:  make([]unix.Iovec, n),
		names: make([]unix.RawSockaddrInet4, n),
		oob:   make([][]byte, n),
		bufs:  make([][]byte, n),
	}
	for i := range m.hdrs {
		m.oob[i] = make([]byte, oobSize)
		m.bufs[i] = make([]byte, bufLen)
		h := &m.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		h.Iov = &m.iovs[i]
		h.SetIovlen(1)
	}
	return m
}

// address sets every header's destination and IP_PKTINFO source.
func (m *perfMmsg) address(to netip.AddrPort, from netip.Addr) {
	for i := range m.hdrs {
		m.names[i] = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: to.Addr().As4()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&m.names[i].Port))[:], to.Port())
		h := &m.hdrs[i].Hdr
		h.Namelen = unix.SizeofSockaddrInet4
		if l := putPktinfo(m.oob[i], from, false); l > 0 {
			h.Control = &m.oob[i][0]
			h.SetControllen(l)
		}
	}
}

func perfMmsgCall(trap uintptr, fd int, hdrs []unix.Mmsghdr, flags int) (int, unix.Errno) {
	n, _, errno := unix.Syscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), uintptr(flags), 0, 0)
	return int(n), errno
}

func perfPoll(fd int, events int16) {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: events}}
	unix.Poll(pfd, 100)
}

// perfRaw is the raw loop. Its descriptors are non-blocking. Without the
// poller (impl=raw) it makes the system calls itself and waits in poll(2)
// only on EAGAIN. With it (impl=rawpoll) the descriptors are os.Files
// under the Go runtime's netpoller, and the calls go through RawConn
// callbacks and os.File.Write the way the Engine makes them, so the
// difference between the two is the cost of the netpoller and the
// difference between rawpoll and l2tpd is l2tpd's own work.
type perfRaw struct {
	sock, tun     int
	sockF, tunF   *os.File // with the poller
	sockRC, tunRC syscall.RawConn
	stop          atomic.Bool
	fwd           atomic.Uint64

	// RawConn callback state and the callbacks, made once
	m                 *perfMmsg
	sizes             []int
	n                 int
	err               error
	recvFn, sendFn    func(fd uintptr) bool
	readFn            func(fd uintptr) bool
	sendFrom, sendTo  int
	readCount, resLen int
}

func newPerfRaw(sock, tun int, poller bool) (*perfRaw, error) {
	r := &perfRaw{sock: sock, tun: tun, m: newPerfMmsg(perfBatch, headroom+2048), sizes: make([]int, perfBatch)}
	r.recvFn, r.sendFn, r.readFn = r.recvmmsgOnce, r.sendmmsgOnce, r.readTUNOnce
	if !poller {
		return r, nil
	}
	r.sockF, r.tunF = os.NewFile(uintptr(sock), "udp"), os.NewFile(uintptr(tun), "tun")
	var err error
	if r.sockRC, err = r.sockF.SyscallConn(); err != nil {
		return nil, err
	}
	if r.tunRC, err = r.tunF.SyscallConn(); err != nil {
		return nil, err
	}
	return r, nil
}

// close stops the loop and, with the poller, closes the descriptors to
// wake it.
func (r *perfRaw) close() {
	r.stop.Store(true)
	if r.sockF != nil {
		r.sockF.Close()
		r.tunF.Close()
	}
}

func errnoErr(errno unix.Errno) error {
	if errno == 0 {
		return nil
	}
	return errno
}

func (r *perfRaw) recvmmsgOnce(fd uintptr) bool {
	for {
		n, errno := perfMmsgCall(unix.SYS_RECVMMSG, int(fd), r.m.hdrs, unix.MSG_DONTWAIT)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.n, r.err = n, errnoErr(errno)
		return true
	}
}

func (r *perfRaw) recvmmsg() (int, error) {
	r.n, r.err = 0, nil
	if r.sockRC != nil {
		if err := r.sockRC.Read(r.recvFn); err != nil {
			return 0, err
		}
	} else if !r.recvmmsgOnce(uintptr(r.sock)) {
		perfPoll(r.sock, unix.POLLIN)
	}
	return r.n, r.err
}

func (r *perfRaw) writeTUN(b []byte) (err error) {
	if r.tunF != nil {
		_, err = r.tunF.Write(b)
	} else {
		_, err = unix.Write(r.tun, b)
	}
	return err
}

// readTUNOnce reads packets into the buffers at headroom until EAGAIN or
// a full batch.
func (r *perfRaw) readTUNOnce(fd uintptr) bool {
	for r.n < perfBatch {
		n, err := unix.Read(int(fd), r.m.bufs[r.n][headroom:])
		switch err {
		case nil:
			r.sizes[r.n] = n
			r.n++
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return r.n > 0
		}
		r.err = err
		return true
	}
	return true
}

func (r *perfRaw) readTUN() (int, error) {
	r.n, r.err = 0, nil
	if r.tunRC != nil {
		if err := r.tunRC.Read(r.readFn); err != nil {
			return 0, err
		}
	} else if !r.readTUNOnce(uintptr(r.tun)) {
		perfPoll(r.tun, unix.POLLIN)
	}
	return r.n, r.err
}

func (r *perfRaw) sendmmsgOnce(fd uintptr) bool {
	for {
		n, errno := perfMmsgCall(unix.SYS_SENDMMSG, int(fd), r.m.hdrs[r.sendFrom:r.sendTo], unix.MSG_DONTWAIT)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.n, r.err = n, errnoErr(errno)
		return true
	}
}

func (r *perfRaw) sendmmsg(k int) error {
	for r.sendFrom, r.sendTo = 0, k; r.sendFrom < r.sendTo; r.sendFrom += r.n {
		r.n, r.err = 0, nil
		if r.sockRC != nil {
			if err := r.sockRC.Write(r.sendFn); err != nil {
				return err
			}
		} else if !r.sendmmsgOnce(uintptr(r.sock)) {
			perfPoll(r.sock, unix.POLLOUT)
		}
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

// up: recvmmsg, strip the fixed header, one TUN write per packet.
func (r *perfRaw) up() error {
	m := r.m
	for !r.stop.Load() {
		for i := range m.hdrs {
			m.iovs[i].Base = &m.bufs[i][0]
			m.iovs[i].SetLen(len(m.bufs[i]))
			h := &m.hdrs[i].Hdr
			h.Namelen = unix.SizeofSockaddrInet4
			h.Control = &m.oob[i][0]
			h.SetControllen(oobSize)
		}
		n, err := r.recvmmsg()
		if err != nil {
			return r.stopped(fmt.Errorf("recvmmsg: %w", err))
		}
		for i := 0; i < n; i++ {
			if err := r.writeTUN(m.bufs[i][perfHdrLen:m.hdrs[i].Len]); err != nil {
				return r.stopped(fmt.Errorf("TUN write: %w", err))
			}
		}
		r.fwd.Add(uint64(n))
	}
	return nil
}

// down: TUN reads until EAGAIN or a full batch, the fixed header
// prepended in headroom, sendmmsg.
func (r *perfRaw) down(to netip.AddrPort) error {
	m := r.m
	m.address(to, perfLNS.Addr())
	hdr := perfDownHeader()
	for !r.stop.Load() {
		k, err := r.readTUN()
		if err != nil {
			return r.stopped(fmt.Errorf("TUN read: %w", err))
		}
		for i := 0; i < k; i++ {
			p := headroom - perfHdrLen
			copy(m.bufs[i][p:], hdr)
			m.iovs[i].Base = &m.bufs[i][p]
			m.iovs[i].SetLen(r.sizes[i] + perfHdrLen)
		}
		if k > 0 {
			if err := r.sendmmsg(k); err != nil {
				return r.stopped(fmt.Errorf("sendmmsg: %w", err))
			}
		}
		r.fwd.Add(uint64(k))
	}
	return nil
}

// stopped reports err unless the loop was told to stop.
func (r *perfRaw) stopped(err error) error {
	if r.stop.Load() {
		return nil
	}
	return err
}

// perfGenerate blasts pkt to `to` from sock with sendmmsg until stop. With
// segs > 1 each message is a UDP_SEGMENT super-datagram of segs copies of
// pkt, which is what the LNS socket sees when a NIC's GRO coalesced the
// LAC's packets (over loopback the kernel splits it again for a socket
// without UDP_GRO).
func perfGenerate(sock int, pkt []byte, to netip.AddrPort, segs int, stop *atomic.Bool) {
	m := newPerfMmsg(perfBatch, 0)
	m.address(to, netip.Addr{})
	iovs := make([]unix.Iovec, segs)
	for i := range iovs {
		iovs[i].Base = &pkt[0]
		iovs[i].SetLen(len(pkt))
	}
	for i := range m.hdrs {
		m.iovs[i].Base = &pkt[0]
		m.iovs[i].SetLen(len(pkt))
		if segs > 1 {
			h := &m.hdrs[i].Hdr
			h.Iov = &iovs[0]
			h.SetIovlen(segs)
			h.Control = &m.oob[i][0]
			h.SetControllen(putSegment(m.oob[i], 0, uint16(len(pkt))))
		}
	}
	for !stop.Load() {
		perfMmsgCall(unix.SYS_SENDMMSG, sock, m.hdrs, unix.MSG_DONTWAIT)
	}
}

// perfUp is an Upcall that only counts: nothing should go up.
type perfUp struct{ n atomic.Uint64 }

func (u *perfUp) Control(*Socket, []byte, netip.AddrPort, netip.Addr) { u.n.Add(1) }
func (u *perfUp) Frame(SessionKey, []byte)                            { u.n.Add(1) }

// runForward sets up one namespace with a TUN, the generator and one
// consumer, and measures b.N forwarded packets at saturation.
func runForward(b *testing.B, dir string, size int, impl string) {
	l2tpd, poller := strings.HasPrefix(impl, "l2tpd"), impl == "rawpoll"
	up, genGSO := !strings.HasPrefix(dir, "down"), strings.HasSuffix(dir, "-gso")
	plain := impl == "l2tpd-plain"
	ns := perfNamespace(b)
	var (
		e      *Engine
		pu     = new(perfUp)
		rawTUN = -1
	)
	perfIn(b, ns, func() (err error) {
		if l2tpd {
			e, err = New(Config{TUN: perfTUN, MTU: 1500, Batch: perfBatch, DisableGSO: plain, DisableGRO: plain, DisableTUNOffload: plain}, pu)
			return err
		}
		rawTUN, err = perfOpenTUN(perfTUN)
		return err
	})
	if rawTUN >= 0 && !poller { // rawpoll's os.Files own their descriptors
		b.Cleanup(func() { unix.Close(rawTUN) })
	}
	perfIP(b, "-n", ns, "addr", "add", perfTUNAddr.String()+"/32", "dev", perfTUN)
	perfIP(b, "-n", ns, "route", "add", perfSub.String()+"/32", "dev", perfTUN)

	// Sockets: the LNS's, the generator's and the sink the consumer's
	// output ends in.
	var (
		lnsConn          *net.UDPConn
		lnsFD, gen, sink = -1, -1, -1
		genAddr, sinkTo  netip.AddrPort
		genPkt           []byte
		genTo            netip.AddrPort
	)
	perfIn(b, ns, func() (err error) {
		if lnsConn, lnsFD, err = perfLNSSocket(l2tpd); err != nil {
			return err
		}
		if up {
			gen, genAddr, err = perfSocket(netip.AddrPortFrom(perfLNS.Addr(), 0), 0)
			genPkt, genTo = perfUpstream(size), perfLNS
			if err == nil {
				sink, _, err = perfSink(netip.AddrPortFrom(perfTUNAddr, 9))
			}
		} else {
			gen, genAddr, err = perfSocket(netip.AddrPortFrom(perfTUNAddr, 0), 0)
			genPkt, genTo = make([]byte, size-28), netip.AddrPortFrom(perfSub, 9)
			if err == nil {
				sink, sinkTo, err = perfSink(netip.AddrPortFrom(perfLNS.Addr(), 0))
			}
		}
		return err
	})
	for _, fd := range []int{lnsFD, gen, sink} {
		if fd >= 0 && (fd != lnsFD || !poller) {
			b.Cleanup(func() { unix.Close(fd) })
		}
	}

	// The consumer.
	var (
		count func() uint64
		check func() error
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := func() {
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("consumer: %v", err)
			}
		})
	}
	if l2tpd {
		b.Cleanup(func() {
			if ctx.Err() == nil { // Run never started: close the TUN
				e.tun.Close()
			}
		})
		s, err := e.AddSocket(lnsConn)
		if err != nil {
			b.Fatal(err)
		}
		peer := genAddr
		if !up {
			peer = sinkTo
		}
		if err := e.Install(perfSession(peer, s)); err != nil {
			b.Fatal(err)
		}
		go func() { done <- e.Run(ctx) }()
		started()
		count = func() uint64 {
			c, _ := e.Counters(perfKey)
			if up {
				return c.RxPackets
			}
			return c.TxPackets
		}
		check = func() error {
			for reason, n := range e.Stats() {
				if n != 0 && !strings.HasPrefix(reason, "offload_") {
					return fmt.Errorf("%d packets dropped (%s); stats %v", n, reason, e.Stats())
				}
			}
			if n := pu.n.Load(); n != 0 {
				return fmt.Errorf("%d packets went up instead of being forwarded", n)
			}
			return nil
		}
	} else {
		r, err := newPerfRaw(lnsFD, rawTUN, poller)
		if err != nil {
			b.Fatal(err)
		}
		go func() {
			if up {
				done <- r.up()
			} else {
				done <- r.down(sinkTo)
			}
		}()
		go func() { <-ctx.Done(); r.close() }()
		started()
		count = r.fwd.Load
		check = func() error { return nil }
	}
	if l2tpd {
		st := e.Stats()
		if st["offload_udp_gso_sockets"]+st["offload_udp_gro_sockets"] != 0 && plain ||
			st["offload_udp_gso_sockets"]*st["offload_udp_gro_sockets"] != 1 && !plain {
			b.Fatalf("offloads not as asked: %v", st)
		}
	}
	segs := 1
	if genGSO {
		segs = perfGSOSegments
	}
	perfMeasure(b, count, check, func(stop *atomic.Bool) { perfGenerate(gen, genPkt, genTo, segs, stop) })
	if l2tpd && !plain {
		st := e.Stats()
		switch {
		case !up && st["offload_gso_sent"] == 0:
			b.Fatalf("no GSO super-datagram sent: %v", st)
		case genGSO && up && st["offload_gro_received"] == 0:
			b.Fatalf("no GRO-coalesced datagram received: %v", st)
		case genGSO && !up && st["offload_tun_gso_read"] == 0:
			b.Fatalf("no super-packet read from the TUN: %v", st)
		}
	}
}

// perfMeasure runs gen on a locked thread, waits for the consumer to
// forward perfWarmup packets, then times b.N more and reports the rates,
// the consumer's CPU (the process's less the generator thread's),
// allocations and GC cycles.
func perfMeasure(b *testing.B, count func() uint64, check func() error, gen func(stop *atomic.Bool)) {
	var stop atomic.Bool
	tidc := make(chan int, 1)
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tidc <- unix.Gettid()
		gen(&stop)
	}()
	stopGen := func() {
		if !stop.Swap(true) {
			<-genDone
		}
	}
	defer stopGen()
	// CPU clock of another thread of this process (CPUCLOCK_SCHED,
	// per thread), as pthread_getcpuclockid builds it.
	genClock := int32(^(<-tidc))<<3 | 6

	wait := func(target uint64, limit time.Duration) bool {
		deadline := time.Now().Add(limit)
		for count() < target {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(time.Millisecond)
		}
		return true
	}
	if !wait(perfWarmup, 10*time.Second) {
		b.Fatalf("only %d packets forwarded in 10s of warm-up", count())
	}
	if err := check(); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0, gen0 := perfProcessCPU(b), perfThreadCPU(b, genClock)
	n0 := count()
	b.ResetTimer()
	t0 := time.Now()
	ok := wait(n0+uint64(b.N), perfTimeout)
	b.StopTimer()
	elapsed := time.Since(t0)
	n1 := count()
	cpu1, gen1 := perfProcessCPU(b), perfThreadCPU(b, genClock)
	runtime.ReadMemStats(&ms1)
	stopGen()
	if !ok {
		b.Fatalf("forwarded %d of %d packets in %v", n1-n0, b.N, perfTimeout)
	}
	if err := check(); err != nil {
		b.Fatal(err)
	}
	pkts, secs := float64(n1-n0), elapsed.Seconds()
	cpu := (cpu1 - cpu0 - (gen1 - gen0)).Seconds()
	b.ReportMetric(pkts/secs, "pkt/s")
	if cpu > 0 {
		b.ReportMetric(pkts/cpu, "pkt/cpu-s")
	}
	b.ReportMetric(cpu/secs, "cores")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/pkts, "allocs/pkt")
	b.ReportMetric(float64(ms1.NumGC-ms0.NumGC)/secs, "gc/s")
}

func perfProcessCPU(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func perfThreadCPU(b *testing.B, clock int32) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		b.Fatal(errors.Join(errors.New("generator thread CPU clock"), err))
	}
	return time.Duration(ts.Nano())
}
