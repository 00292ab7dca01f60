package datapath

import (
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The forwarding threads (one per socket, one for the TUN) keep their
// descriptors out of the Go runtime's netpoller. A descriptor registered
// there (EPOLLIN|EPOLLOUT, edge-triggered) costs an ep_poll_callback on
// every transmit completion and every arrival, and those edges keep waking
// idle Ms parked in epoll_pwait for nothing: about a quarter of the
// downstream rate per core (docs/performance.md). Instead each thread is
// locked to its goroutine, calls recvmmsg/sendmmsg/read/write on a
// non-blocking descriptor itself and, only when the kernel says EAGAIN,
// sleeps in ppoll(2) on that descriptor and on the engine's stop eventfd.

// stopper wakes every forwarding thread for shutdown.
type stopper struct {
	efd  int
	done atomic.Bool
}

func newStopper() (*stopper, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return &stopper{efd: fd}, nil
}

// stop marks the stopper done and makes its eventfd readable for good
// (nobody reads it), which wakes every waiter now and later.
func (s *stopper) stop() {
	if s.done.Swap(true) {
		return
	}
	one := [8]byte{1}
	unix.Write(s.efd, one[:])
}

func (s *stopper) close() { unix.Close(s.efd) }

// waiter is a thread's ppoll set: its descriptor and the stop eventfd.
// It lives on the heap once so waiting allocates nothing.
type waiter struct {
	pfd [2]unix.PollFd
	st  *stopper
}

func newWaiter(st *stopper, fd int) *waiter {
	w := &waiter{st: st}
	w.pfd[0].Fd = int32(fd)
	w.pfd[1] = unix.PollFd{Fd: int32(st.efd), Events: unix.POLLIN}
	return w
}

// wait sleeps until the descriptor has one of events or the engine stops;
// it reports false when the engine stops.
func (w *waiter) wait(events int16) bool {
	w.pfd[0].Events = events
	for {
		if w.st.done.Load() {
			return false
		}
		w.pfd[0].Revents, w.pfd[1].Revents = 0, 0
		_, _, errno := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&w.pfd[0])), 2, 0, 0, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		// Errors (EBADF after a close, ENOMEM) and POLLERR/POLLHUP are
		// left to the next read or write to report.
		return !w.st.done.Load()
	}
}

// lockThread pins the calling goroutine to its OS thread for the life of
// a forwarding loop.
func lockThread() func() {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}
