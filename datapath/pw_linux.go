package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// tapDev is a TAP device (IFF_TAP|IFF_NO_PI: each read and write is one
// Ethernet frame without FCS) and the pseudowire sessions bound to it:
// one Ethernet session, or VLAN sessions demultiplexed by VID.
type tapDev struct {
	name string
	f    *os.File
	rc   syscall.RawConn
	fd   int32
	w    packetWriter // f, or a test double

	eth   atomic.Pointer[entry]
	vlan  [4096]atomic.Pointer[entry]
	nvlan int // VLAN sessions bound, under pwState.mu
}

// pwState holds the TAP devices and the state of their one reader.
type pwState struct {
	mu   sync.RWMutex // taps and bindings
	taps map[string]*tapDev
	byFD map[int32]*tapDev

	epfd, evfd int // epoll over all TAP fds; eventfd to wake the reader
	started    bool
	stopped    atomic.Bool

	// reader state, TAP reader only
	bufs  [][]byte
	sizes []int
	n     int
	err   error
	rdFn  func(fd uintptr) bool
}

// pwQueue is a socket's send queue for the TAP reader, with system call
// state of its own so it never shares the TUN reader's.
type pwQueue struct {
	io socketIO
	q  []message
}

func (e *Engine) pwState() (*pwState, error) {
	if e.pw != nil {
		return e.pw, nil
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("datapath: epoll: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("datapath: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, fmt.Errorf("datapath: epoll: %w", err)
	}
	e.pw = &pwState{taps: make(map[string]*tapDev), byFD: make(map[int32]*tapDev), epfd: epfd, evfd: evfd}
	return e.pw, nil
}

// OpenTAP creates the TAP device name (IFF_TAP|IFF_NO_PI), or attaches to
// it if it exists, sets its MTU (0: 1500) and brings it up. Opening a name
// already open is a no-op. Frames read from all TAPs go through one reader
// goroutine (epoll, batched reads), started by Run.
func (e *Engine) OpenTAP(name string, mtu int) error {
	if mtu == 0 {
		mtu = 1500
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ps, err := e.pwState()
	if err != nil {
		return err
	}
	if ps.stopped.Load() {
		return errors.New("datapath: open TAP: engine stopped")
	}
	ps.mu.RLock()
	_, open := ps.taps[name]
	ps.mu.RUnlock()
	if open {
		return nil
	}
	t, err := openTAP(name, mtu)
	if err != nil {
		return err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: t.fd}
	if err := unix.EpollCtl(ps.epfd, unix.EPOLL_CTL_ADD, int(t.fd), &ev); err != nil {
		t.f.Close()
		return fmt.Errorf("datapath: TAP %s: epoll: %w", name, err)
	}
	ps.mu.Lock()
	ps.taps[name] = t
	ps.byFD[t.fd] = t
	ps.mu.Unlock()
	if e.runCtx != nil {
		e.startTAPReader()
	}
	return nil
}

func openTAP(name string, mtu int) (*tapDev, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("datapath: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("datapath: TAP name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("datapath: TUNSETIFF %q (TAP): %w", name, err)
	}
	if err := linkUp(ifr.Name(), mtu); err != nil {
		unix.Close(fd)
		return nil, err
	}
	t := &tapDev{name: name, fd: int32(fd), f: os.NewFile(uintptr(fd), "/dev/net/tun")}
	if t.rc, err = t.f.SyscallConn(); err != nil {
		t.f.Close()
		return nil, fmt.Errorf("datapath: TAP %s: %w", name, err)
	}
	t.w = t.f
	return t, nil
}

// CloseTAP closes a TAP opened with OpenTAP (the kernel deletes a device
// it created). Sessions still bound to it drop what they receive
// (tap_write) until removed.
func (e *Engine) CloseTAP(name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps := e.pw
	if ps == nil {
		return fmt.Errorf("datapath: close TAP %s: not open", name)
	}
	ps.mu.Lock()
	t := ps.taps[name]
	if t != nil {
		delete(ps.taps, name)
		delete(ps.byFD, t.fd)
	}
	ps.mu.Unlock()
	if t == nil {
		return fmt.Errorf("datapath: close TAP %s: not open", name)
	}
	if t.f == nil {
		return nil
	}
	unix.EpollCtl(ps.epfd, unix.EPOLL_CTL_DEL, int(t.fd), nil)
	return t.f.Close()
}

// bindTAP attaches a pseudowire entry to its TAP (and detaches the entry
// it replaces); called with e.mu held, before ent is published.
func (e *Engine) bindTAP(ent, old *entry) error {
	s := ent.s
	if s.Kind == KindPPP {
		e.unbindTAP(old)
		return nil
	}
	ps := e.pw
	if ps == nil {
		return fmt.Errorf("datapath: session %v: TAP %s not open", s.Key, s.TAP)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	t := ps.taps[s.TAP]
	if t == nil {
		return fmt.Errorf("datapath: session %v: TAP %s not open", s.Key, s.TAP)
	}
	other := func(p *entry) bool { return p != nil && p.s.Key != s.Key }
	switch s.Kind {
	case KindEthernet:
		if cur := t.eth.Load(); other(cur) {
			return fmt.Errorf("datapath: session %v: TAP %s carries session %v", s.Key, s.TAP, cur.s.Key)
		}
		own := 0
		if old != nil && old.tap == t && old.s.Kind == KindVLAN {
			own = 1
		}
		if t.nvlan > own {
			return fmt.Errorf("datapath: session %v: TAP %s carries VLAN sessions", s.Key, s.TAP)
		}
	case KindVLAN:
		if cur := t.eth.Load(); other(cur) {
			return fmt.Errorf("datapath: session %v: TAP %s carries Ethernet session %v", s.Key, s.TAP, cur.s.Key)
		}
		if cur := t.vlan[s.VLAN].Load(); other(cur) {
			return fmt.Errorf("datapath: session %v: VLAN %d of TAP %s carries session %v", s.Key, s.VLAN, s.TAP, cur.s.Key)
		}
	}
	if old != nil {
		unbindLocked(old)
	}
	ent.tap = t
	if s.Kind == KindEthernet {
		t.eth.Store(ent)
	} else {
		t.vlan[s.VLAN].Store(ent)
		t.nvlan++
	}
	return nil
}

// unbindTAP detaches a removed or replaced entry from its TAP.
func (e *Engine) unbindTAP(old *entry) {
	if old == nil || old.tap == nil {
		return
	}
	e.pw.mu.Lock()
	unbindLocked(old)
	e.pw.mu.Unlock()
}

func unbindLocked(old *entry) {
	t := old.tap
	if t == nil {
		return
	}
	if old.s.Kind == KindEthernet {
		if cur := t.eth.Load(); cur != nil && cur.s.Key == old.s.Key {
			t.eth.Store(nil)
		}
		return
	}
	if cur := t.vlan[old.s.VLAN].Load(); cur != nil && cur.s.Key == old.s.Key {
		t.vlan[old.s.VLAN].Store(nil)
		t.nvlan--
	}
}

// startTAPReader starts the TAP reader once there are TAPs and Run has
// started; called with e.mu held.
func (e *Engine) startTAPReader() {
	ps := e.pw
	if ps == nil || ps.started || ps.stopped.Load() || e.runCtx.Err() != nil {
		return
	}
	ps.started = true
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.fail(e.tapLoop(ps))
	}()
}

// stopTAPReader wakes the TAP reader to make it close the TAPs and exit;
// called with e.mu held when Run ends.
func (e *Engine) stopTAPReader() {
	ps := e.pw
	if ps == nil {
		return
	}
	ps.stopped.Store(true)
	if !ps.started {
		ps.closeAll()
		return
	}
	var one = [8]byte{1}
	unix.Write(ps.evfd, one[:])
}

func (ps *pwState) closeAll() {
	ps.mu.Lock()
	for name, t := range ps.taps {
		if t.f != nil {
			t.f.Close()
		}
		delete(ps.taps, name)
		delete(ps.byFD, t.fd)
	}
	ps.mu.Unlock()
	unix.Close(ps.epfd)
	unix.Close(ps.evfd)
}

// tapLoop is the one TAP reader: it waits in epoll for any TAP to be
// readable, reads a burst of frames from it, encapsulates them in place
// and sends them in sendmmsg batches per socket.
func (e *Engine) tapLoop(ps *pwState) error {
	defer ps.closeAll()
	ps.bufs = make([][]byte, e.cfg.Batch)
	ps.sizes = make([]int, e.cfg.Batch)
	for i := range ps.bufs {
		ps.bufs[i] = make([]byte, bufSize)
	}
	ps.rdFn = ps.readMany
	f := &pwForwarder{e: e}
	events := make([]unix.EpollEvent, 16)
	for {
		n, err := unix.EpollWait(ps.epfd, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("datapath: TAP reader: epoll: %w", err)
		}
		if ps.stopped.Load() {
			return nil
		}
		for i := range events[:n] {
			fd := events[i].Fd
			if int(fd) == ps.evfd {
				continue
			}
			ps.mu.RLock()
			t := ps.byFD[fd]
			ps.mu.RUnlock()
			if t == nil {
				continue
			}
			ps.n, ps.err = 0, nil
			if err := t.rc.Read(ps.rdFn); err != nil {
				continue // closed meanwhile
			}
			for j := 0; j < ps.n; j++ {
				f.forward(t, ps.bufs[j], ps.sizes[j])
			}
			f.flush()
			if ps.err != nil {
				// The device went away under us: stop polling it.
				e.drop(dropRead, nil)
				unix.EpollCtl(ps.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
			}
		}
	}
}

// readMany reads frames at offset headroom until the burst is full or
// the TAP is drained; it never waits (epoll does).
func (ps *pwState) readMany(fd uintptr) bool {
	for ps.n < len(ps.bufs) {
		n, err := unix.Read(int(fd), ps.bufs[ps.n][headroom:])
		switch err {
		case nil:
			ps.sizes[ps.n] = n
			ps.n++
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return true
		}
		ps.err = err
		return true
	}
	return true
}

// pwForwarder is the state of the TAP reader: the sockets that have
// messages queued since the last flush.
type pwForwarder struct {
	e       *Engine
	pending []*Socket
}

// forward sends the Ethernet frame in b[headroom:headroom+n], read from
// t, to its session: the TAP's Ethernet session, or the VLAN session of
// the frame's outermost VID. The queued message refers to b until flush.
// It must not allocate.
func (f *pwForwarder) forward(t *tapDev, b []byte, n int) {
	e := f.e
	if n < 14 {
		e.drop(dropMalformed, nil)
		return
	}
	ent := t.eth.Load()
	if ent == nil {
		if vid, ok := VLANID(b[headroom : headroom+n]); ok {
			ent = t.vlan[vid].Load()
		}
		if ent == nil {
			e.drop(dropNoPW, nil)
			return
		}
	}
	s := ent.s.Socket
	msg := ent.encapPW(b, headroom, n)
	ent.ctr.tapped(true, msg, ent.s.Peer, ent.s.Local)
	ent.ctr.txPackets.Add(1)
	ent.ctr.txBytes.Add(uint64(n))
	if s.pwq == nil {
		s.pwq = newPWQueue(s, e.cfg.Batch)
	}
	q := s.pwq
	if len(q.q) == 0 {
		f.pending = append(f.pending, s)
	}
	q.q = append(q.q, message{b: msg, to: ent.s.Peer, from: ent.s.Local})
	if len(q.q) == cap(q.q) {
		f.flushSocket(s)
	}
}

func newPWQueue(s *Socket, batch int) *pwQueue {
	q := &pwQueue{io: s.io, q: make([]message, 0, batch)}
	switch io := s.io.(type) {
	case *udpIO:
		q.io = io.txClone(batch)
	case *ipIO:
		q.io = &ipIO{udpIO: io.udpIO.txClone(batch)}
	}
	return q
}

// txClone is a udpIO on the same socket with send state of its own.
func (u *udpIO) txClone(batch int) *udpIO {
	c := &udpIO{fd: u.fd, laddr: u.laddr, v6: u.v6, tx: newMmsgState(batch, false),
		txWait: newWaiter(u.txWait.st, u.fd), gso: u.gso, off: u.off}
	c.gsoBelow.Store(1 << 16)
	return c
}

func (f *pwForwarder) flushSocket(s *Socket) {
	q := s.pwq
	if len(q.q) == 0 {
		return
	}
	if failed := q.io.writeBatch(q.q); failed > 0 {
		f.e.drops[dropSend].Add(uint64(failed))
	}
	clear(q.q)
	q.q = q.q[:0]
}

func (f *pwForwarder) flush() {
	for _, s := range f.pending {
		f.flushSocket(s)
	}
	clear(f.pending)
	f.pending = f.pending[:0]
}

// LinkUp reports whether an interface is administratively up and
// operationally up (IFF_UP and IFF_RUNNING: for a TAP, a reader is
// attached and the carrier is on). It looks in the calling thread's
// network namespace: wrap it in InNetns for a TAP in another one.
func LinkUp(name string) (bool, error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("datapath: %s: %w", name, err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return false, fmt.Errorf("datapath: %s: %w", name, err)
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return false, fmt.Errorf("datapath: %s: get flags: %w", name, err)
	}
	fl := ifr.Uint16()
	return fl&unix.IFF_UP != 0 && fl&unix.IFF_RUNNING != 0, nil
}

// InNetns runs fn on an OS thread switched into the network namespace
// /run/netns/<name>; sockets and devices fn creates stay in that
// namespace. The thread exits afterwards instead of going back to the
// scheduler. An empty name runs fn directly.
func InNetns(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("datapath: netns %s: %w", name, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("datapath: netns %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// ipIO is a raw IP protocol 115 socket: the batched system calls of
// udpIO, with its own local address and single writes.
type ipIO struct {
	*udpIO
}

// IPProto is the IP protocol number of L2TPv3 over IP (RFC 3931 §4.1.1.2).
const IPProto = 115

// AddIPSocket opens a raw IP protocol 115 socket bound to local (IPv4 or
// IPv6 by its family; unspecified: any address) and takes over reading it
// like AddSocket: control messages (Session ID 0) go up through
// Upcall.Control with the zero word included and the peer's address with
// port 0, data messages of v3 sessions are forwarded. Sessions whose
// Socket is an IP socket send IP-encapsulated messages.
func (e *Engine) AddIPSocket(local netip.Addr) (*Socket, error) {
	if !local.IsValid() {
		return nil, errors.New("datapath: add IP socket: no local address")
	}
	local = local.Unmap()
	network := "ip4:115"
	if local.Is6() {
		network = "ip6:115"
	}
	c, err := net.ListenIP(network, &net.IPAddr{IP: local.AsSlice(), Zone: local.Zone()})
	if err != nil {
		return nil, fmt.Errorf("datapath: add IP socket: %w", err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("datapath: add IP socket: %w", err)
	}
	u := &udpIO{fd: -1, laddr: c.LocalAddr(), v6: local.Is6(), rx: newMmsgState(e.cfg.Batch, true), tx: newMmsgState(e.cfg.Batch, false), off: &e.off}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if u.v6 {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1)
		}
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
		_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, 8<<20)
		if serr == nil {
			// A descriptor of our own, outside the runtime poller (see
			// newUDPIO).
			u.fd, serr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
		}
		if serr == nil {
			serr = unix.SetNonblock(u.fd, true)
		}
	})
	if err == nil {
		err = serr
	}
	c.Close()
	if err != nil {
		if u.fd >= 0 {
			unix.Close(u.fd)
		}
		return nil, fmt.Errorf("datapath: add IP socket: %w", err)
	}
	s := &Socket{e: e, io: &ipIO{udpIO: u}, ip: true, txq: make([]message, 0, e.cfg.Batch)}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stopperLocked()
	if st.done.Load() {
		u.close()
		return nil, errors.New("datapath: add IP socket: engine stopped")
	}
	u.start(st)
	e.sockets = append(e.sockets, s)
	if e.runCtx != nil {
		e.startReader(s)
	}
	return s, nil
}

// writeOne sends one message (to's port is ignored); control-plane rate,
// so it may allocate.
func (p *ipIO) writeOne(b []byte, to netip.AddrPort, from netip.Addr) error {
	var oobBuf [oobSize]byte
	oob := oobBuf[:putPktinfo(oobBuf[:], from, p.v6)]
	var sa unix.Sockaddr
	if p.v6 {
		sa = &unix.SockaddrInet6{Addr: to.Addr().As16()}
	} else if a := to.Addr().Unmap(); a.Is4() {
		sa = &unix.SockaddrInet4{Addr: a.As4()}
	} else {
		return fmt.Errorf("%v: %w", to, unix.EAFNOSUPPORT)
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return net.ErrClosed
	}
	err := p.sendmsg(b, oob, sa)
	if err != nil && len(oob) > 0 && (errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.EINVAL)) {
		err = p.sendmsg(b, nil, sa)
	}
	return err
}

// readLoopIP reads batches from a raw IP socket until the engine stops.
// IPv4 raw sockets deliver the IP header, which is skipped; IPv6 ones do
// not.
func (s *Socket) readLoopIP() error {
	u := s.io.(*ipIO).udpIO
	for {
		n, err := u.readBatch()
		if err != nil {
			if err == errStopped {
				return nil
			}
			s.e.drop(dropRead, nil)
			continue
		}
		for i := 0; i < n; i++ {
			h := &u.rx.hdrs[i]
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				s.e.drop(dropTruncated, nil)
				continue
			}
			pkt := u.rx.bufs[i][:h.Len]
			if !u.v6 {
				if len(pkt) < 20 || int(pkt[0]&0x0f)*4 > len(pkt) {
					s.e.drop(dropMalformed, nil)
					continue
				}
				pkt = pkt[int(pkt[0]&0x0f)*4:]
			}
			from := sockaddrAddrPort(&u.rx.names[i])
			to := parsePktinfo(u.rx.oob[i][:h.Hdr.Controllen])
			s.e.receiveIP(s, pkt, from, to)
		}
	}
}

// ipEncap reports whether the socket carries L2TPv3 over IP.
func (s *Socket) ipEncap() bool { return s != nil && s.ip }

// close closes the socket's descriptor once its threads have stopped.
func (s *Socket) close() {
	switch io := s.io.(type) {
	case *udpIO:
		io.close()
	case *ipIO:
		io.udpIO.close()
	}
}
