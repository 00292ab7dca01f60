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
	"strings"
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

// waitLocal6 waits until the kernel of namespace ns delivers to its own
// IPv6 address a. Even with nodad, the address's local route is put in
// place by the kernel's address work queue after `ip addr add` returns;
// a packet arriving before that is dropped (Ip6InAddrErrors), which on
// a loaded machine happens often enough to matter.
func waitLocal6(t *testing.T, ns string, a netip.Addr) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", ns, "-6", "route", "show", "table", "local", a.String()).CombinedOutput()
		if err == nil && strings.Contains(string(out), a.String()) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%v never became a local address in %s: %v: %s", a, ns, err, out)
		}
		time.Sleep(10 * time.Millisecond)
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

	// IPv6 once IPv6CP is up: the session is reinstalled with its prefix.
	tun6, sub6 := netip.MustParseAddr("fd00:99::1"), netip.MustParseAddr("fd00:100:1::10")
	ipCmd(t, "-n", ns, "addr", "add", tun6.String()+"/128", "dev", "l2tpt0", "nodad")
	ipCmd(t, "-n", ns, "-6", "route", "add", "fd00:100:1::/64", "dev", "l2tpt0")
	waitLocal6(t, ns, tun6)
	if err := e.Install(Session{
		Key: key2, PeerTunnel: 7, PeerSession: 8, Peer: lacAddr, Local: loopback,
		Socket: sock, IPv4: subAddr, IPv6: netip.MustParsePrefix("fd00:100:1::/64"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := lacConn.WriteToUDPAddrPort(v2Data(key2, pppFrame(ProtoIPv6, echoRequest6(sub6, tun6, 0x4343))), lnsAddr); err != nil {
		t.Fatal(err)
	}
	for {
		n, _, err = lacConn.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no IPv6 echo reply: %v; stats %v", err, e.Stats())
		}
		_, frame, err := ParseV2(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		proto, ip, _ := ParsePPP(frame)
		if proto != ProtoIPv6 || ip[6] != 58 || ip[40] != 129 {
			continue // not an ICMPv6 Echo Reply (RFC 4443 §4.2)
		}
		if netip.AddrFrom16([16]byte(ip[8:24])) != tun6 || netip.AddrFrom16([16]byte(ip[24:40])) != sub6 ||
			binary.BigEndian.Uint16(ip[44:]) != 0x4343 {
			t.Fatalf("not our echo reply: % x", ip)
		}
		break
	}
	c, _ := e.Counters(key2)
	if c.RxPackets != 3 || c.TxPackets < 3 {
		t.Fatalf("counters %+v", c)
	}

	// A second socket, IPv6, added while the engine runs: the session's
	// traffic leaves through it by sendmmsg with IPV6_PKTINFO.
	var lns6, lac6 *net.UDPConn
	inNetns(t, ns, func() (err error) {
		if lns6, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: 1701}); err != nil {
			return err
		}
		lac6, err = net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
		return err
	})
	t.Cleanup(func() { lac6.Close() })
	sock6, err := e.AddSocket(lns6)
	if err != nil {
		t.Fatal(err)
	}
	key6 := SessionKey{Version: 2, Tunnel: 101, Session: 201}
	sub2 := netip.MustParseAddr("100.64.0.11")
	ipCmd(t, "-n", ns, "route", "add", sub2.String()+"/32", "dev", "l2tpt0")
	lac6Addr := lac6.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := e.Install(Session{Key: key6, PeerTunnel: 9, PeerSession: 10, Peer: lac6Addr, Local: netip.IPv6Loopback(), Socket: sock6, IPv4: sub2}); err != nil {
		t.Fatal(err)
	}
	lac6.SetReadDeadline(time.Now().Add(10 * time.Second))
	lns6Addr := lns6.LocalAddr().(*net.UDPAddr).AddrPort()
	if _, err := lac6.WriteToUDPAddrPort(v2Data(key6, pppFrame(ProtoIPv4, echoRequest(sub2, tunAddr, 0x4444, 1))), lns6Addr); err != nil {
		t.Fatal(err)
	}
	for {
		n, from, err := lac6.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no echo reply over IPv6: %v; stats %v", err, e.Stats())
		}
		h, frame, err := ParseV2(buf[:n])
		if err != nil || h.Tunnel != 9 || h.Session != 10 || from.Addr() != netip.IPv6Loopback() || from.Port() != 1701 {
			t.Fatalf("reply %+v from %v: %v", h, from, err)
		}
		if _, ip, _ := ParsePPP(frame); ip[9] == 1 && binary.BigEndian.Uint16(ip[24:]) == 0x4444 {
			break
		}
	}
}

// echoRequest6 is an ICMPv6 Echo Request (RFC 4443 §4.1) with its
// checksum over the pseudo-header (RFC 8200 §8.1).
func echoRequest6(src, dst netip.Addr, id uint16) []byte {
	icmp := []byte{128, 0, 0, 0, byte(id >> 8), byte(id), 0, 1, 'l', '2', 't', 'p'}
	s, d := src.As16(), dst.As16()
	pseudo := append(append(s[:], d[:]...), 0, 0, 0, byte(len(icmp)), 0, 0, 0, 58)
	binary.BigEndian.PutUint16(icmp[2:], ^uint16(sum16(sum16(0, pseudo), icmp)))
	return ipv6Packet(src, dst, 58, icmp)
}
