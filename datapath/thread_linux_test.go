package datapath

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var threadNSSeq atomic.Int64

// threadNetns creates a network namespace of its own (unique per test in
// this process) with lo up, removed at cleanup.
func threadNetns(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	name := fmt.Sprintf("l2tpd-thr-%d-%d", os.Getpid(), threadNSSeq.Add(1))
	exec.Command("ip", "netns", "del", name).Run()
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// runEngine runs e until the test ends and checks that Run returns
// promptly once told to stop, with its threads asleep in ppoll.
func runEngine(t *testing.T, e *Engine) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
	})
}

// The socket's own descriptor stays usable for control messages in both
// directions, and the engine's stop wakes a reader asleep in ppoll and
// closes the descriptor: afterwards writes fail and the port is free.
func TestSocketThreadLifecycle(t *testing.T) {
	ns := threadNetns(t)
	up := &chanUp{control: make(chan []byte, 4), frames: make(chan []byte, 4), to: make(chan netip.Addr, 4)}
	var (
		e        *Engine
		lns, lac *net.UDPConn
	)
	inNetns(t, ns, func() (err error) {
		if e, err = New(Config{}, up); err != nil {
			return err
		}
		if lns, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			return err
		}
		lac, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	})
	defer lac.Close()
	lnsAddr := lns.LocalAddr().(*net.UDPAddr).AddrPort()
	lacAddr := lac.LocalAddr().(*net.UDPAddr).AddrPort()
	s, err := e.AddSocket(lns)
	if err != nil {
		t.Fatal(err)
	}
	// AddSocket closed conn: the engine reads its own descriptor.
	if _, err := lns.WriteToUDPAddrPort([]byte{1}, lacAddr); err == nil {
		t.Fatal("conn still open after AddSocket")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	hello := []byte{0xc8, 0x02, 0, 12, 0, 100, 0, 0, 0, 3, 0, 4}
	for i := 0; i < 3; i++ { // the reader sleeps between datagrams
		time.Sleep(20 * time.Millisecond)
		lac.WriteToUDPAddrPort(hello, lnsAddr)
		select {
		case got := <-up.control:
			if !bytes.Equal(got, hello) {
				t.Fatalf("control % x", got)
			}
			<-up.to
		case <-time.After(5 * time.Second):
			t.Fatalf("control message %d not read", i)
		}
	}
	if err := s.WriteControl(hello, lacAddr, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	lac.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, from, err := lac.ReadFromUDPAddrPort(buf); err != nil || !bytes.Equal(buf[:n], hello) || from != lnsAddr {
		t.Fatalf("WriteControl: read % x from %v: %v", buf[:n], from, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of cancel")
	}
	if err := s.WriteControl(hello, lacAddr, netip.Addr{}); err == nil {
		t.Fatal("WriteControl after Run returned succeeded")
	}
	inNetns(t, ns, func() error {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(lnsAddr))
		if err != nil {
			return fmt.Errorf("port still held after Run returned: %w", err)
		}
		return c.Close()
	})
	if _, err := e.AddSocket(lac); err == nil {
		t.Fatal("AddSocket after Run returned succeeded")
	}
}

// An L2TPv3-over-IP socket (RFC 3931 §4.1.1.2) reads control messages
// (Session ID 0) on its own descriptor and sends through it.
func TestIPSocketThread(t *testing.T) {
	ns := threadNetns(t)
	up := &chanUp{control: make(chan []byte, 4), frames: make(chan []byte, 4), to: make(chan netip.Addr, 4)}
	var (
		e    *Engine
		s    *Socket
		peer int
	)
	local := netip.MustParseAddr("127.0.0.1")
	inNetns(t, ns, func() (err error) {
		if e, err = New(Config{}, up); err != nil {
			return err
		}
		if s, err = e.AddIPSocket(local); err != nil {
			return err
		}
		peer, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProto)
		return err
	})
	defer unix.Close(peer)
	runEngine(t, e)
	ctl := []byte{0, 0, 0, 0, 0xc8, 0x03, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0}
	if err := unix.Sendto(peer, ctl, 0, &unix.SockaddrInet4{Addr: local.As4()}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-up.control:
		if !bytes.Equal(got, ctl) {
			t.Fatalf("control % x", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("control message not read")
	}
	if err := s.WriteControl(ctl, netip.AddrPortFrom(local, 0), netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	// The raw peer socket sees both copies (ours and the engine's); the
	// IPv4 header comes first.
	unix.SetsockoptTimeval(peer, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	buf := make([]byte, 256)
	for i := 0; i < 2; i++ {
		n, _, err := unix.Recvfrom(peer, buf, 0)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !bytes.Equal(buf[20:n], ctl) {
			t.Fatalf("read %d: % x", i, buf[20:n])
		}
	}
}
