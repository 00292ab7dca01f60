package datapath

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// tunDevice is the TUN device (IFF_TUN|IFF_NO_PI: each read and write is
// one bare IP packet) on a non-blocking descriptor outside the runtime
// poller: the TUN thread reads it, the socket threads write it.
type tunDevice struct {
	fd   int
	name string
	wait *waiter // the TUN thread's, set before it runs

	closeOnce sync.Once

	// read burst state, TUN thread only
	bufs  [][]byte
	sizes []int
}

func openTUN(name string, mtu int) (*tunDevice, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("datapath: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("datapath: TUN name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("datapath: TUNSETIFF %q: %w", name, err)
	}
	t := &tunDevice{fd: fd, name: ifr.Name()}
	if err := linkUp(t.name, mtu); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return t, nil
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
// runs (the TUN is closed only after the socket threads stopped).
func (t *tunDevice) Write(b []byte) (int, error) {
	for {
		n, err := unix.Write(t.fd, b)
		if err == unix.EINTR {
			continue
		}
		return n, err
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
		r, err := unix.Read(t.fd, t.bufs[n][headroom:])
		switch err {
		case nil:
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
		t.bufs[i] = make([]byte, bufSize)
	}
	f := &tunForwarder{e: e}
	for {
		n, err := t.readBurst()
		if err != nil && err != errStopped {
			e.drop(dropRead, nil)
		}
		for i := 0; i < n; i++ {
			f.forward(t.bufs[i], t.sizes[i])
		}
		f.flush()
		if err == errStopped {
			return nil
		}
	}
}
