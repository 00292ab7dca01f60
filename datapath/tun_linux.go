package datapath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// tunDevice is the TUN device (IFF_TUN|IFF_NO_PI: each read and write is
// one bare IP packet), non-blocking under the runtime poller.
type tunDevice struct {
	f    *os.File
	rc   syscall.RawConn
	name string

	// read burst state, TUN reader only
	bufs  [][]byte
	sizes []int
	n     int
	err   error
	rdFn  func(fd uintptr) bool
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
	t := &tunDevice{name: ifr.Name()}
	if err := linkUp(t.name, mtu); err != nil {
		unix.Close(fd)
		return nil, err
	}
	t.f = os.NewFile(uintptr(fd), "/dev/net/tun")
	if t.rc, err = t.f.SyscallConn(); err != nil {
		t.f.Close()
		return nil, fmt.Errorf("datapath: TUN: %w", err)
	}
	t.rdFn = t.readMany
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

// Write writes one IP packet; safe for concurrent use.
func (t *tunDevice) Write(b []byte) (int, error) { return t.f.Write(b) }

func (t *tunDevice) Close() error { return t.f.Close() }

// readBurst reads up to len(t.bufs) packets, each at offset headroom of
// its buffer, blocking until at least one is there.
func (t *tunDevice) readBurst() (int, error) {
	t.n, t.err = 0, nil
	if err := t.rc.Read(t.rdFn); err != nil {
		return 0, err
	}
	return t.n, t.err
}

func (t *tunDevice) readMany(fd uintptr) bool {
	for t.n < len(t.bufs) {
		n, err := unix.Read(int(fd), t.bufs[t.n][headroom:])
		switch err {
		case nil:
			t.sizes[t.n] = n
			t.n++
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return t.n > 0
		}
		t.err = err
		return true
	}
	return true
}

// tunLoop reads packets from the TUN, encapsulates and sends them in
// batches until the TUN is closed.
func (e *Engine) tunLoop(ctx context.Context) error {
	t := e.tun
	t.bufs = make([][]byte, e.cfg.Batch)
	t.sizes = make([]int, e.cfg.Batch)
	for i := range t.bufs {
		t.bufs[i] = make([]byte, bufSize)
	}
	f := &tunForwarder{e: e}
	for {
		n, err := t.readBurst()
		if err != nil {
			if errors.Is(err, os.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			e.drop(dropRead, nil)
		}
		for i := 0; i < n; i++ {
			f.forward(t.bufs[i], t.sizes[i])
		}
		f.flush()
	}
}
