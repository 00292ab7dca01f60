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
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newNetnsNamed creates a network namespace unique to this process,
// removed at cleanup.
func newNetnsNamed(t *testing.T, tag string) string {
	t.Helper()
	name := fmt.Sprintf("l2pw-%d-%s", os.Getpid(), tag)
	exec.Command("ip", "netns", "del", name).Run() // a leftover of a killed run
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// pwEnd is one end of a static pseudowire: an engine in its own
// namespace with a TAP and a socket, and nothing else.
type pwEnd struct {
	ns   string
	up   *chanUp
	e    *Engine
	sock *Socket
	addr netip.Addr // transport address
}

// pwPair is two namespaces joined by a veth pair carrying the transport.
type pwPair struct{ a, b *pwEnd }

func newPWPair(t *testing.T, tag string, v6, ip bool) *pwPair {
	t.Helper()
	requireRoot(t)
	p := &pwPair{a: &pwEnd{ns: newNetnsNamed(t, tag+"a")}, b: &pwEnd{ns: newNetnsNamed(t, tag+"b")}}
	ipCmd(t, "link", "add", "pwv", "netns", p.a.ns, "type", "veth", "peer", "name", "pwv", "netns", p.b.ns)
	plen := "/24"
	p.a.addr, p.b.addr = netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if v6 {
		plen = "/64"
		p.a.addr, p.b.addr = netip.MustParseAddr("2001:db8:f::1"), netip.MustParseAddr("2001:db8:f::2")
	}
	for _, end := range []*pwEnd{p.a, p.b} {
		ipCmd(t, "-n", end.ns, "addr", "add", end.addr.String()+plen, "dev", "pwv", "nodad")
		ipCmd(t, "-n", end.ns, "link", "set", "pwv", "up")
		if v6 {
			waitLocal6(t, end.ns, end.addr)
		}
		end := end
		err := InNetns(end.ns, func() (err error) {
			end.up = &chanUp{control: make(chan []byte, 64), frames: make(chan []byte, 64), to: make(chan netip.Addr, 64)}
			if end.e, err = New(Config{Batch: 8}, end.up); err != nil {
				return err
			}
			if err := end.e.OpenTAP("pwtap", 1500); err != nil {
				return err
			}
			if ip {
				end.sock, err = end.e.AddIPSocket(end.addr)
				return err
			}
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(end.addr, 1701)))
			if err != nil {
				return err
			}
			end.sock, err = end.e.AddSocket(c)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- end.e.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return")
			}
		})
	}
	return p
}

// install sets up the pseudowire with fixed IDs and 8-byte cookies, as
// a static configuration does: a sends to Session ID 2002, b to 1001.
func (p *pwPair) install(t *testing.T, kind Kind, vidA, vidB uint16, ip bool) {
	t.Helper()
	port := uint16(1701)
	if ip {
		port = 0
	}
	ca, cb := []byte("cookieAA"), []byte("cookieBB")
	if err := p.a.e.Install(Session{Key: SessionKey{Version: 3, Session: 1001}, PeerSession: 2002,
		Peer: netip.AddrPortFrom(p.b.addr, port), Local: p.a.addr, Socket: p.a.sock,
		Cookie: ca, PeerCookie: cb, L2SpecificSublayer: true, Sequencing: true,
		Kind: kind, TAP: "pwtap", VLAN: vidA}); err != nil {
		t.Fatal(err)
	}
	if err := p.b.e.Install(Session{Key: SessionKey{Version: 3, Session: 2002}, PeerSession: 1001,
		Peer: netip.AddrPortFrom(p.a.addr, port), Local: p.b.addr, Socket: p.b.sock,
		Cookie: cb, PeerCookie: ca, L2SpecificSublayer: true, Sequencing: true,
		Kind: kind, TAP: "pwtap", VLAN: vidB}); err != nil {
		t.Fatal(err)
	}
}

// ping sends ICMP echo requests (RFC 792) from src in namespace ns to
// dst until one is answered or two seconds pass.
func ping(ns string, src, dst netip.Addr) error {
	var c net.PacketConn
	if err := InNetns(ns, func() (err error) {
		c, err = net.ListenPacket("ip4:icmp", src.String())
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(2 * time.Second)
	buf := make([]byte, 1500)
	for seq := uint16(1); time.Now().Before(deadline); seq++ {
		req := []byte{8, 0, 0, 0, 0x12, 0x34, byte(seq >> 8), byte(seq), 'p', 'w'}
		binary.BigEndian.PutUint16(req[2:], icmpChecksum(req))
		if _, err := c.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			if from.(*net.IPAddr).IP.Equal(dst.AsSlice()) && n >= 8 && buf[0] == 0 && buf[4] == 0x12 && buf[5] == 0x34 {
				return nil
			}
		}
	}
	return fmt.Errorf("no echo reply from %v in %s", dst, ns)
}

// udpThrough sends a datagram from the a side to a listener on the b
// side and reports whether it arrived intact.
func udpThrough(t *testing.T, nsA, nsB string, from, to netip.Addr) bool {
	t.Helper()
	var lis, snd *net.UDPConn
	if err := InNetns(nsB, func() (err error) {
		lis, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, 9999)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if err := InNetns(nsA, func() (err error) {
		snd, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(to, 9999)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	payload := []byte(strings.Repeat("pseudowire", 100))
	lis.SetReadDeadline(time.Now().Add(time.Second))
	snd.Write(payload)
	buf := make([]byte, 2048)
	n, err := lis.Read(buf)
	return err == nil && string(buf[:n]) == string(payload)
}

// RFC 4719 with RFC 3931 §4.1.2.1 / §4.1.1.2: two engines in two
// namespaces, each with a TAP addressed directly, joined only by static
// Install calls: ARP, ping and a 1000-byte UDP datagram cross the
// pseudowire over UDP and over IP, on IPv4 and IPv6 transport, with
// 8-byte cookies and a sequenced default L2-specific sublayer. A wrong
// cookie is dropped and counted.
func TestPWEthernetInNetns(t *testing.T) {
	for _, c := range []struct {
		name   string
		v6, ip bool
	}{{"udp4", false, false}, {"udp6", true, false}, {"ip4", false, true}, {"ip6", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			p := newPWPair(t, c.name, c.v6, c.ip)
			p.install(t, KindEthernet, 0, 0, c.ip)
			inA, inB := netip.MustParseAddr("10.200.0.1"), netip.MustParseAddr("10.200.0.2")
			ipCmd(t, "-n", p.a.ns, "addr", "add", inA.String()+"/24", "dev", "pwtap")
			ipCmd(t, "-n", p.b.ns, "addr", "add", inB.String()+"/24", "dev", "pwtap")
			if err := ping(p.a.ns, inA, inB); err != nil {
				t.Fatalf("%v; stats a %v b %v", err, p.a.e.Stats(), p.b.e.Stats())
			}
			if !udpThrough(t, p.a.ns, p.b.ns, inA, inB) {
				t.Fatalf("UDP datagram lost; stats a %v b %v", p.a.e.Stats(), p.b.e.Stats())
			}
			ka, kb := SessionKey{Version: 3, Session: 1001}, SessionKey{Version: 3, Session: 2002}
			ca, _ := p.a.e.Counters(ka)
			cb, _ := p.b.e.Counters(kb)
			// An ARP request, an echo request and the datagram one way; the
			// ARP and echo replies the other.
			if ca.TxPackets < 3 || cb.RxPackets < 3 || ca.RxPackets < 2 || cb.TxPackets < 2 {
				t.Fatalf("counters a %+v b %+v", ca, cb)
			}
			if ok, err := LinkUp("pwv"); err == nil || ok {
				t.Fatalf("LinkUp of an interface only in the namespaces: %v %v", ok, err)
			}
			// Control messages take the same socket both ways; over IP
			// they start with a zero Session ID (RFC 3931 §4.1.1.2), which
			// goes up with them.
			ctl := []byte{0xc8, 0x03, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0}
			if c.ip {
				ctl = append([]byte{0, 0, 0, 0}, ctl...)
			}
			if err := p.a.sock.WriteControl(ctl, netip.AddrPortFrom(p.b.addr, map[bool]uint16{false: 1701, true: 0}[c.ip]), p.a.addr); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-p.b.up.control:
				if !bytes.Equal(got, ctl) {
					t.Fatalf("control message went up as % x", got)
				}
				if to := <-p.b.up.to; to != p.b.addr {
					t.Fatalf("control message to %v", to)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("control message lost; stats %v", p.b.e.Stats())
			}
			var linkOK bool
			if err := InNetns(p.a.ns, func() (err error) { linkOK, err = LinkUp("pwtap"); return err }); err != nil || !linkOK {
				t.Fatalf("LinkUp(pwtap) = %v, %v", linkOK, err)
			}

			// b now expects another cookie: a's frames are dropped as
			// bad_cookie and nothing gets through.
			if err := p.b.e.Install(Session{Key: kb, PeerSession: 1001,
				Peer: netip.AddrPortFrom(p.a.addr, map[bool]uint16{false: 1701, true: 0}[c.ip]), Local: p.b.addr, Socket: p.b.sock,
				Cookie: []byte("wrongone"), PeerCookie: []byte("cookieAA"), L2SpecificSublayer: true, Sequencing: true,
				Kind: KindEthernet, TAP: "pwtap"}); err != nil {
				t.Fatal(err)
			}
			before := p.b.e.Stats()["bad_cookie"]
			if udpThrough(t, p.a.ns, p.b.ns, inA, inB) {
				t.Fatal("a datagram crossed with the wrong cookie")
			}
			if p.b.e.Stats()["bad_cookie"] == before {
				t.Fatalf("no bad_cookie drop; stats %v", p.b.e.Stats())
			}
			ipCmd(t, "-n", p.a.ns, "link", "set", "pwtap", "down")
			if err := InNetns(p.a.ns, func() (err error) { linkOK, err = LinkUp("pwtap"); return err }); err != nil || linkOK {
				t.Fatalf("LinkUp(pwtap) after link down = %v, %v", linkOK, err)
			}
		})
	}
}

// RFC 4719 §4.2: VLAN 100 of a trunk TAP on one side is VLAN 200 on the
// other. A frame tagged 100 sent on TAP a (through a packet socket)
// comes out of TAP b tagged 200 and back the other way; untagged frames
// and other VIDs on the trunk belong to no session and are counted.
func TestPWVLANInNetns(t *testing.T) {
	for _, ip := range []bool{false, true} {
		t.Run(map[bool]string{false: "udp", true: "ip"}[ip], func(t *testing.T) { testPWVLAN(t, ip) })
	}
}

func testPWVLAN(t *testing.T, ip bool) {
	p := newPWPair(t, map[bool]string{false: "vlanu", true: "vlani"}[ip], false, ip)
	p.install(t, KindVLAN, 100, 200, ip)
	sa, sb := packetSocket(t, p.a.ns, "pwtap"), packetSocket(t, p.b.ns, "pwtap")
	for _, c := range []struct {
		from, to      *packetSock
		vidOut, vidIn uint16
		payload       string
	}{{sa, sb, 100, 200, "a to b"}, {sb, sa, 200, 100, "b to a"}} {
		frame := vlanFrame(c.vidOut, nil)
		frame[16], frame[17] = 0x88, 0xb5 // IEEE 802 local experimental EtherType
		frame = append(frame, c.payload...)
		c.from.send(t, frame)
		vid, got := c.to.recv(t, 0x88b5)
		if vid != c.vidIn || !strings.HasPrefix(string(got[14:]), c.payload) {
			t.Fatalf("%s: VID %d, frame % x; stats a %v b %v", c.payload, vid, got, p.a.e.Stats(), p.b.e.Stats())
		}
	}
	before := p.a.e.Stats()["no_pw_session"]
	for _, vid := range []uint16{0, 101} {
		frame := vlanFrame(101, nil)
		if vid == 0 {
			frame = ethFrame(0x88b5, []byte("untagged"))
		}
		sa.send(t, frame)
	}
	deadline := time.Now().Add(2 * time.Second)
	for p.a.e.Stats()["no_pw_session"] < before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("frames without a session not counted; stats %v", p.a.e.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// packetSock is an AF_PACKET socket on one interface.
type packetSock struct{ fd int }

func packetSocket(t *testing.T, ns, dev string) *packetSock {
	t.Helper()
	ps := &packetSock{}
	err := InNetns(ns, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		ps.fd = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		tv := unix.Timeval{Usec: 200000}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(ps.fd) })
	return ps
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (p *packetSock) send(t *testing.T, frame []byte) {
	t.Helper()
	if _, err := unix.Write(p.fd, frame); err != nil {
		t.Fatal(err)
	}
}

// recv returns the VID and frame of the next received frame of the
// EtherType; the kernel takes the tag off received frames and reports it
// in PACKET_AUXDATA.
func (p *packetSock) recv(t *testing.T, etherType uint16) (uint16, []byte) {
	t.Helper()
	buf, oob := make([]byte, 2048), make([]byte, 256)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		n, oobn, _, from, err := unix.Recvmsg(p.fd, buf, oob, 0)
		if err != nil {
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if n < 14 || binary.BigEndian.Uint16(buf[12:]) != etherType {
			continue
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
				aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
				if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
					return aux.Vlan_tci & 0x0fff, buf[:n]
				}
			}
		}
		return 0, buf[:n]
	}
	t.Fatal("no frame received")
	return 0, nil
}

// RFC 3931 §4.1.1.2: a PPP session over L2TPv3 over IP, on a real raw
// socket. An ICMP echo request in a data message reaches the kernel
// through the TUN and the reply comes back IP-encapsulated with the
// peer's cookie and sublayer; PPP control frames (SendFrame) and control
// messages (Session ID 0, both ways) take the same socket.
func TestPPPOverIPInNetns(t *testing.T) {
	requireRoot(t)
	ns := newNetnsNamed(t, "pppip")
	up := &chanUp{control: make(chan []byte, 16), frames: make(chan []byte, 16), to: make(chan netip.Addr, 16)}
	local, peer := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	tunAddr, subAddr := netip.MustParseAddr("10.97.0.1"), netip.MustParseAddr("100.64.7.10")
	var (
		e     *Engine
		sock  *Socket
		lac   net.PacketConn
		err   error
		key   = SessionKey{Version: 3, Session: 0x3003}
		peerS = uint32(0x4004)
	)
	if err := InNetns(ns, func() (err error) {
		if e, err = New(Config{TUN: "l2tpip0", Batch: 8}, up); err != nil {
			return err
		}
		if sock, err = e.AddIPSocket(local); err != nil {
			return err
		}
		lac, err = net.ListenPacket("ip4:115", peer.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer lac.Close()
	ipCmd(t, "-n", ns, "addr", "add", tunAddr.String()+"/32", "dev", "l2tpip0")
	ipCmd(t, "-n", ns, "route", "add", subAddr.String()+"/32", "dev", "l2tpip0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := e.Install(Session{Key: key, PeerSession: peerS, Peer: netip.AddrPortFrom(peer, 0), Local: local,
		Socket: sock, IPv4: subAddr, Cookie: []byte{1, 2, 3, 4}, PeerCookie: []byte{5, 6, 7, 8},
		L2SpecificSublayer: true}); err != nil {
		t.Fatal(err)
	}
	to := &net.IPAddr{IP: local.AsSlice()}
	lac.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	read := func() []byte { // (*net.IPConn).ReadFrom strips the IPv4 header
		t.Helper()
		n, _, err := lac.ReadFrom(buf)
		if err != nil {
			t.Fatalf("nothing from the engine: %v; stats %v", err, e.Stats())
		}
		return buf[:n]
	}

	// Control messages both ways.
	ctl := []byte{0, 0, 0, 0, 0xc8, 0x03, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0}
	if _, err := lac.WriteTo(ctl, to); err != nil {
		t.Fatal(err)
	}
	if got := <-up.control; !bytes.Equal(got, ctl) {
		t.Fatalf("control upcall % x", got)
	}
	if got := <-up.to; got != local {
		t.Fatalf("control message to %v", got)
	}
	if err := sock.WriteControl(ctl, netip.AddrPortFrom(peer, 1701), local); err != nil {
		t.Fatal(err)
	}
	if got := read(); !bytes.Equal(got, ctl) {
		t.Fatalf("WriteControl sent % x", got)
	}

	// A PPP frame down.
	if err = e.SendFrame(key, []byte{0xc0, 0x21, 9, 1, 0, 8, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	want := AppendV3IP(nil, Header{Session: peerS, Cookie: []byte{5, 6, 7, 8}, L2SS: true}, []byte{0xff, 0x03, 0xc0, 0x21, 9, 1, 0, 8, 0, 0, 0, 0})
	if got := read(); !bytes.Equal(got, want) {
		t.Fatalf("SendFrame sent % x, want % x", got, want)
	}

	// IPv4 through the kernel and back.
	msg := AppendV3IP(nil, Header{Session: key.Session, Cookie: []byte{1, 2, 3, 4}, L2SS: true},
		pppFrame(ProtoIPv4, echoRequest(subAddr, tunAddr, 0x4545, 1)))
	if _, err := lac.WriteTo(msg, to); err != nil {
		t.Fatal(err)
	}
	for {
		h, frame, err := ParseV3IP(read(), 4, true)
		if err != nil || h.Session != peerS || !bytes.Equal(h.Cookie, []byte{5, 6, 7, 8}) {
			t.Fatalf("reply header %+v: %v", h, err)
		}
		proto, ip, ok := ParsePPP(frame)
		if !ok || proto != ProtoIPv4 || ip[9] != 1 {
			continue // the kernel may route other traffic to the subscriber
		}
		icmp := ip[int(ip[0]&0xf)*4:]
		if netip.AddrFrom4([4]byte(ip[16:20])) != subAddr || icmp[0] != 0 || binary.BigEndian.Uint16(icmp[4:]) != 0x4545 {
			t.Fatalf("not our echo reply: % x", ip)
		}
		break
	}
	if c, _ := e.Counters(key); c.RxPackets != 1 || c.TxPackets < 2 {
		t.Fatalf("counters %+v", c)
	}
}

// TAPs come and go while the engine runs: OpenTAP after Run starts the
// one reader, opening the same name again is a no-op, a second TAP is
// read by the same reader, and CloseTAP deletes the device.
func TestTAPLifecycleInNetns(t *testing.T) {
	requireRoot(t)
	ns := newNetnsNamed(t, "taplc")
	local, peer := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	var (
		e      *Engine
		sock   *Socket
		peerC  *net.UDPConn
		peerAP netip.AddrPort
	)
	if err := InNetns(ns, func() (err error) {
		if e, err = New(Config{Batch: 8}, &chanUp{control: make(chan []byte, 16), frames: make(chan []byte, 16), to: make(chan netip.Addr, 16)}); err != nil {
			return err
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local.AsSlice()})
		if err != nil {
			return err
		}
		if sock, err = e.AddSocket(c); err != nil {
			return err
		}
		peerC, err = net.ListenUDP("udp4", &net.UDPAddr{IP: peer.AsSlice()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer peerC.Close()
	peerAP = peerC.LocalAddr().(*net.UDPAddr).AddrPort()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := e.CloseTAP("tapx"); err == nil {
		t.Fatal("CloseTAP of a TAP never opened")
	}
	buf := make([]byte, 2048)
	for i, name := range []string{"tapx0", "tapx1"} {
		if err := InNetns(ns, func() error {
			if err := e.OpenTAP(name, 1400); err != nil {
				return err
			}
			return e.OpenTAP(name, 1400)
		}); err != nil {
			t.Fatal(err)
		}
		if err := e.Install(Session{Key: SessionKey{Version: 3, Session: uint32(100 + i)}, PeerSession: uint32(200 + i),
			Peer: peerAP, Local: local, Socket: sock, Kind: KindEthernet, TAP: name}); err != nil {
			t.Fatal(err)
		}
		ps := packetSocket(t, ns, name)
		frame := ethFrame(0x88b5, []byte(name))
		peerC.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			ps.send(t, frame)
			n, err := peerC.Read(buf)
			if err != nil {
				t.Fatalf("%s: nothing from the engine: %v; stats %v", name, err, e.Stats())
			}
			if bytes.Equal(buf[:n], pwData(uint32(200+i), nil, false, false, 0, frame)) {
				break
			}
		}
	}
	e.Remove(SessionKey{Version: 3, Session: 100})
	if err := e.CloseTAP("tapx0"); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", ns, "link", "show", "tapx0").CombinedOutput(); err == nil {
		t.Fatalf("tapx0 still there after CloseTAP: %s", out)
	}
	if err := e.CloseTAP("tapx0"); err == nil {
		t.Fatal("CloseTAP twice")
	}
	if err := e.Install(Session{Key: SessionKey{Version: 3, Session: 100}, PeerSession: 200,
		Peer: peerAP, Local: local, Socket: sock, Kind: KindEthernet, TAP: "tapx0"}); err == nil {
		t.Fatal("session installed on a closed TAP")
	}
}
