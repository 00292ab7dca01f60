package datapath

import (
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tunDevice is the TUN device (IFF_TUN|IFF_NO_PI: each read and write is
// one bare IP packet) on a non-blocking descriptor outside the runtime
// poller: the TUN thread reads it, the socket threads write it.
type tunDevice struct {
	fd   int
	name string
	wait *waiter // the TUN thread's, set before it runs
	// vnet: reads and writes carry a virtio_net_hdr (IFF_VNET_HDR);
	// offloads: the TUN_F_ flags TUNSETOFFLOAD accepted
	vnet     bool
	offloads int

	closeOnce sync.Once

	// read burst state, TUN thread only
	bufs  [][]byte
	sizes []int
}

func openTUN(name string, mtu int, offload bool) (*tunDevice, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("datapath: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("datapath: TUN name %q: %w", name, err)
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if offload {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("datapath: TUNSETIFF %q: %w", name, err)
	}
	t := &tunDevice{fd: fd, name: ifr.Name(), vnet: offload}
	if offload {
		t.offloads = setTUNOffload(fd)
	}
	if err := linkUp(t.name, mtu); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return t, nil
}

// setTUNOffload asks for checksum offload, TSO and USO (Linux 6.2), then
// for less where the kernel refuses, and returns what it accepted.
func setTUNOffload(fd int) int {
	for _, f := range []int{
		unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_USO4 | unix.TUN_F_USO6,
		unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6,
		unix.TUN_F_CSUM,
	} {
		if unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, f) == nil {
			return f
		}
	}
	return 0
}

// linkUp sets the interface MTU and the IFF_UP flag.
func linkUp(name string, mtu int) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("datapath: %s: %w", name, err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(s, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("datapath: %s: set MTU %d: %w", name, mtu, err)
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("datapath: %s: get flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("datapath: %s: set up: %w", name, err)
	}
	return nil
}

// Write writes one IP packet; safe for concurrent use while the engine
// runs (the TUN is closed only after the socket threads stopped). With
// IFF_VNET_HDR an all-zero header (no offload asked) goes first.
func (t *tunDevice) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		var r uintptr
		var errno unix.Errno
		if t.vnet {
			var hdr [vnetHdrLen]byte
			iov := [2]unix.Iovec{{Base: &hdr[0]}, {Base: &b[0]}}
			iov[0].SetLen(vnetHdrLen)
			iov[1].SetLen(len(b))
			r, _, errno = unix.Syscall(unix.SYS_WRITEV, uintptr(t.fd), uintptr(unsafe.Pointer(&iov[0])), 2)
			if errno == 0 {
				r -= vnetHdrLen
			}
		} else {
			r, _, errno = unix.Syscall(unix.SYS_WRITE, uintptr(t.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		}
		switch errno {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, errno
	}
}

func (t *tunDevice) Close() error {
	t.closeOnce.Do(func() { unix.Close(t.fd) })
	return nil
}

// readBurst reads up to len(t.bufs) packets, each at offset headroom of
// its buffer, sleeping until at least one is there; it returns errStopped
// when the engine stops.
func (t *tunDevice) readBurst() (int, error) {
	n := 0
	for n < len(t.bufs) {
		if t.wait.st.done.Load() {
			return n, errStopped
		}
		off := headroom
		if t.vnet {
			off -= vnetHdrLen
		}
		r, err := unix.Read(t.fd, t.bufs[n][off:])
		switch err {
		case nil:
			if t.vnet {
				if r < vnetHdrLen {
					continue // cannot happen: the kernel always writes the header
				}
				r -= vnetHdrLen
			}
			t.sizes[n] = r
			n++
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if n > 0 {
				return n, nil
			}
			if !t.wait.wait(unix.POLLIN) {
				return 0, errStopped
			}
			continue
		}
		return n, err
	}
	return n, nil
}

// tunLoop reads packets from the TUN on a locked OS thread, encapsulates
// and sends them in batches until the engine stops.
func (e *Engine) tunLoop() error {
	defer lockThread()()
	t := e.tun
	t.bufs = make([][]byte, e.cfg.Batch)
	t.sizes = make([]int, e.cfg.Batch)
	for i := range t.bufs {
		// room for a 64 KiB super-packet behind the headroom
		t.bufs[i] = make([]byte, headroom+65536)
	}
	f := &tunForwarder{e: e}
	var seg *segArena
	if t.vnet {
		seg = newSegArena(f, 2*e.cfg.Batch, headroom+e.cfg.MTU+64)
	}
	for {
		n, err := t.readBurst()
		if err != nil && err != errStopped {
			e.drop(dropRead, nil)
		}
		for i := 0; i < n; i++ {
			if seg != nil {
				seg.forward(t.bufs[i], t.sizes[i])
				continue
			}
			f.forward(t.bufs[i], t.sizes[i])
		}
		f.flush()
		if seg != nil {
			seg.used = 0
		}
		if err == errStopped {
			return nil
		}
	}
}

// segArena holds the buffers the TUN reader cuts super-packets into; they
// are reused once the forwarder flushed what refers to them.
type segArena struct {
	f    *tunForwarder
	bufs [][]byte
	used int
	// counts since the last report, added to the engine's once per burst
}

func newSegArena(f *tunForwarder, n, size int) *segArena {
	a := &segArena{f: f, bufs: make([][]byte, n)}
	for i := range a.bufs {
		a.bufs[i] = make([]byte, size)
	}
	return a
}

// forward handles one packet read with its virtio header in front
// (b[headroom-vnetHdrLen:]): it completes a partial checksum or cuts a
// super-packet into segments before routing and queueing.
func (a *segArena) forward(b []byte, n int) {
	e := a.f.e
	h := parseVnetHdr(b[headroom-vnetHdrLen:])
	pkt := b[headroom : headroom+n]
	if h.gsoType != vnetGSONone {
		if !splitGSO(pkt, h, a) {
			e.drop(dropMalformed, nil)
			return
		}
		e.off.tunGSORead.Add(1)
		return
	}
	if h.flags&vnetNeedsCsum != 0 {
		if !completeChecksum(pkt, h) {
			e.drop(dropMalformed, nil)
			return
		}
		e.off.tunCsum.Add(1)
	}
	a.f.forward(b, n)
}

func (a *segArena) segBuf() []byte {
	if a.used == len(a.bufs) {
		// Every buffer is queued: send what is queued and start over.
		a.f.flush()
		a.used = 0
	}
	a.used++
	return a.bufs[a.used-1]
}

func (a *segArena) segDone(buf []byte, n int) {
	a.f.e.off.tunGSOSegments.Add(1)
	a.f.forward(buf, n)
}
