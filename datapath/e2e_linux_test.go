package datapath

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// requireRoot skips without root, unless L2TPD_E2E=1 demands the test.
func requireRoot(t *testing.T) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "needs root (network namespaces and a TUN device)"
	default:
		if _, err := exec.LookPath("ip"); err != nil {
			why = "needs iproute2's ip command"
		} else if _, err := os.Stat("/dev/net/tun"); err != nil {
			why = "needs /dev/net/tun"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("L2TPD_E2E") == "1" {
		t.Fatalf("L2TPD_E2E=1 but the test cannot run: %s", why)
	}
	t.Skip(why + "; set L2TPD_E2E=1 to make this a failure")
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// newNetns creates a network namespace removed at cleanup.
func newNetns(t *testing.T) string {
	name := fmt.Sprintf("l2tpd-dp-%d", os.Getpid())
	exec.Command("ip", "netns", "del", name).Run() // a leftover of a killed run
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// inNetns runs fn on a thread switched into the namespace; sockets and
// devices fn creates stay there. The thread is discarded afterwards.
func inNetns(t *testing.T, name string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
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
		t.Fatal(err)
	}
}

type chanUp struct {
	control chan []byte
	frames  chan []byte
	to      chan netip.Addr
}

func (u *chanUp) Control(s *Socket, pkt []byte, from netip.AddrPort, to netip.Addr) {
	u.control <- append([]byte(nil), pkt...)
	u.to <- to
}

func (u *chanUp) Frame(key SessionKey, frame []byte) { u.frames <- append([]byte(nil), frame...) }

func icmpChecksum(b []byte) uint16 { return ^uint16(sum16(0, b)) }

func echoRequest(src, dst netip.Addr, id, seq uint16) []byte {
	icmp := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'l', '2', 't', 'p'}
	binary.BigEndian.PutUint16(icmp[2:], icmpChecksum(icmp))
	return ipv4Packet(src, dst, 1, icmp)
}

// A real engine in a namespace: an L2TPv2 data message carrying an ICMP
// echo request to the TUN's address goes in through the UDP socket, the
// kernel answers, and the reply comes back through the TUN, routed to the
// session and encapsulated (RFC 2661 §3.1) to the LAC's socket. Control
// messages and PPP frames take the same socket both ways.
func TestEngineInNetns(t *testing.T) {
	requireRoot(t)
	ns := newNetns(t)
	up := &chanUp{control: make(chan []byte, 4), frames: make(chan []byte, 4), to: make(chan netip.Addr, 4)}
	var (
		e        *Engine
		lnsConn  *net.UDPConn
		lacConn  *net.UDPConn
		sock     *Socket
		tunAddr  = netip.MustParseAddr("10.99.0.1")
		subAddr  = netip.MustParseAddr("100.64.0.10")
		loopback = netip.MustParseAddr("127.0.0.1")
	)
	inNetns(t, ns, func() (err error) {
		if e, err = New(Config{TUN: "l2tpt0", MTU: 1400, Batch: 8}, up); err != nil {
			return err
		}
		if lnsConn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1701}); err != nil {
			return err
		}
		lacConn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	})
	t.Cleanup(func() { lacConn.Close() })
	if e.TUNName() != "l2tpt0" {
		t.Fatalf("TUN name %q", e.TUNName())
	}
	ipCmd(t, "-n", ns, "addr", "add", tunAddr.String()+"/32", "dev", "l2tpt0")
	ipCmd(t, "-n", ns, "route", "add", subAddr.String()+"/32", "dev", "l2tpt0")
	var err error
	if sock, err = e.AddSocket(lnsConn); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	lacAddr := lacConn.LocalAddr().(*net.UDPAddr).AddrPort()
	lnsAddr := lnsConn.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := e.Install(Session{
		Key: key2, PeerTunnel: 7, PeerSession: 8, Peer: lacAddr, Local: loopback,
		Socket: sock, IPv4: subAddr,
	}); err != nil {
		t.Fatal(err)
	}
	lacConn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)

	// Control message up, with the address it was sent to.
	zlb := []byte{0xc8, 0x02, 0, 12, 0, 100, 0, 0, 0, 1, 0, 2}
	if _, err := lacConn.WriteToUDPAddrPort(zlb, lnsAddr); err != nil {
		t.Fatal(err)
	}
	if got := <-up.control; !bytes.Equal(got, zlb) {
		t.Fatalf("control upcall % x", got)
	}
	if to := <-up.to; to != loopback {
		t.Fatalf("control message to %v, want %v", to, loopback)
	}
	if err := sock.WriteControl(zlb, lacAddr, loopback); err != nil {
		t.Fatal(err)
	}
	n, from, err := lacConn.ReadFromUDPAddrPort(buf)
	if err != nil || !bytes.Equal(buf[:n], zlb) || from != lnsAddr {
		t.Fatalf("WriteControl: % x from %v: %v", buf[:n], from, err)
	}

	// PPP control frames both ways.
	lcp := pppFrame(0xc021, []byte{9, 1, 0, 8, 1, 2, 3, 4})
	lacConn.WriteToUDPAddrPort(v2Data(key2, lcp), lnsAddr)
	if got := <-up.frames; !bytes.Equal(got, lcp) {
		t.Fatalf("frame upcall % x", got)
	}
	if err := e.SendFrame(key2, lcp[2:]); err != nil {
		t.Fatal(err)
	}
	n, _, err = lacConn.ReadFromUDPAddrPort(buf)
	if err != nil || !bytes.Equal(buf[:n], AppendV2(nil, Header{Tunnel: 7, Session: 8}, lcp)) {
		t.Fatalf("SendFrame: % x: %v", buf[:n], err)
	}

	// IPv4 through the kernel and back.
	req := echoRequest(subAddr, tunAddr, 0x4242, 1)
	if _, err := lacConn.WriteToUDPAddrPort(v2Data(key2, pppFrame(ProtoIPv4, req)), lnsAddr); err != nil {
		t.Fatal(err)
	}
	for {
		n, from, err = lacConn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no echo reply: %v; stats %v", err, e.Stats())
		}
		h, frame, err := ParseV2(buf[:n])
		if err != nil || h.Tunnel != 7 || h.Session != 8 || from != lnsAddr {
			t.Fatalf("reply header %+v from %v: %v", h, from, err)
		}
		proto, ip, ok := ParsePPP(frame)
		if !ok || proto != ProtoIPv4 || !bytes.Equal(frame[:2], []byte{0xff, 0x03}) {
			t.Fatalf("reply PPP frame % x", frame)
		}
		if ip[9] != 1 {
			continue // the kernel may route other traffic to the subscriber
		}
		icmp := ip[int(ip[0]&0xf)*4:]
		if netip.AddrFrom4([4]byte(ip[12:16])) != tunAddr || netip.AddrFrom4([4]byte(ip[16:20])) != subAddr ||
			icmp[0] != 0 || binary.BigEndian.Uint16(icmp[4:]) != 0x4242 || !bytes.Equal(icmp[8:], []byte("l2tp")) {
			t.Fatalf("not our echo reply: % x", ip)
		}
		break
	}
	c, _ := e.Counters(key2)
	if c.RxPackets != 2 || c.TxPackets < 2 {
		t.Fatalf("counters %+v", c)
	}
}
