package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// offloadRig is an engine socket on 127.0.0.1 in a namespace of its own
// (or the test's namespace when ns is empty), not yet running.
type offloadRig struct {
	e    *Engine
	s    *Socket
	u    *udpIO
	addr netip.AddrPort
	up   *countUp
}

// countUp keeps copies of control messages and counts frames; with
// keep unset it only counts (allocation tests).
type countUp struct {
	mu       sync.Mutex
	keep     bool
	control  [][]byte
	n        int
	received chan struct{}
}

func (c *countUp) Control(s *Socket, pkt []byte, from netip.AddrPort, to netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.keep {
		c.control = append(c.control, append([]byte(nil), pkt...))
		select {
		case c.received <- struct{}{}:
		default:
		}
	}
}

func (c *countUp) Frame(SessionKey, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
}

func (c *countUp) snapshot() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.control...)
}

func newOffloadRig(t *testing.T, ns string, cfg Config) *offloadRig {
	t.Helper()
	r := &offloadRig{up: &countUp{keep: true, received: make(chan struct{}, 1)}}
	open := func() (err error) {
		if r.e, err = New(cfg, r.up); err != nil {
			return err
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		r.addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
		r.s, err = r.e.AddSocket(c)
		return err
	}
	if ns != "" {
		inNetns(t, ns, open)
	} else if err := open(); err != nil {
		t.Fatal(err)
	}
	r.u = r.s.io.(*udpIO)
	t.Cleanup(r.e.closeAll) // after Run, if it ran: closing twice is harmless
	return r
}

// receiver is a plain UDP socket (no GRO: the kernel hands it every
// datagram on its own).
func receiver(t *testing.T, ns string, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	inNetns(t, ns, func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

type gotDatagram struct {
	b    []byte
	from netip.AddrPort
}

func readDatagrams(t *testing.T, c *net.UDPConn, n int) []gotDatagram {
	t.Helper()
	var got []gotDatagram
	buf := make([]byte, 65536)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(got) < n {
		l, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(got), n, err)
		}
		got = append(got, gotDatagram{append([]byte(nil), buf[:l]...), from})
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if l, _, err := c.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatalf("datagram %d more than the %d sent: % x", len(got)+1, n, buf[:l])
	}
	return got
}

func payload(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	b[0], b[size-1] = 0xa0, byte(i)^0x5a
	return b
}

// A batch with runs to the same peer from the same address leaves as GSO
// super-datagrams: one per run, cut by size (a shorter message ends a
// run), destination and source. The receivers get every datagram on its
// own, in order, with its contents and from the right source. With GSO
// disabled the same batch goes out one datagram per entry.
func TestGSOSegmentation(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableGSO=%v", disable), func(t *testing.T) {
			ns := threadNetns(t)
			r := newOffloadRig(t, ns, Config{DisableGSO: disable})
			a := receiver(t, ns, "127.0.0.1:0")
			b := receiver(t, ns, "127.0.0.1:0")
			toA := a.LocalAddr().(*net.UDPAddr).AddrPort()
			toB := b.LocalAddr().(*net.UDPAddr).AddrPort()
			src1, src2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
			var msgs []message
			add := func(to netip.AddrPort, from netip.Addr, size int) {
				msgs = append(msgs, message{b: payload(len(msgs), size), to: to, from: from})
			}
			for range 5 {
				add(toA, src1, 100)
			}
			add(toA, src1, 60)  // shorter: last of the first run
			add(toA, src1, 100) // a run of one
			for range 3 {
				add(toB, src1, 100)
			}
			for range 2 {
				add(toA, src2, 100)
			}
			if failed := r.u.writeBatch(msgs); failed != 0 {
				t.Fatalf("%d failed", failed)
			}
			gotA, gotB := readDatagrams(t, a, 9), readDatagrams(t, b, 3)
			want := func(got []gotDatagram, idx []int) {
				t.Helper()
				for k, i := range idx {
					if !bytes.Equal(got[k].b, msgs[i].b) {
						t.Fatalf("datagram %d: % x, want message %d % x", k, got[k].b, i, msgs[i].b)
					}
					if got[k].from != netip.AddrPortFrom(msgs[i].from, r.addr.Port()) {
						t.Fatalf("datagram %d from %v, want %v", k, got[k].from, msgs[i].from)
					}
				}
			}
			want(gotA, []int{0, 1, 2, 3, 4, 5, 6, 10, 11})
			want(gotB, []int{7, 8, 9})
			st := r.e.Stats()
			wantSockets, wantSent, wantSegs := uint64(1), uint64(3), uint64(11)
			if disable {
				wantSockets, wantSent, wantSegs = 0, 0, 0
			}
			if st["offload_udp_gso_sockets"] != wantSockets || st["offload_gso_sent"] != wantSent ||
				st["offload_gso_segments"] != wantSegs || st["offload_gso_fallback"] != 0 {
				t.Fatalf("stats %v", st)
			}
		})
	}
}

// Segments larger than the path MTU make the kernel refuse the GSO entry
// (EINVAL); the engine sends its messages one by one instead (IP
// fragments them), counts the fallback and stops merging messages that
// large. Nothing is lost.
func TestGSOFallback(t *testing.T) {
	ns := threadNetns(t)
	ipCmd(t, "-n", ns, "link", "set", "lo", "mtu", "1280")
	r := newOffloadRig(t, ns, Config{})
	if !r.u.gso {
		t.Fatal("UDP_SEGMENT not available: the fallback cannot be tested")
	}
	a := receiver(t, ns, "127.0.0.1:0")
	toA := a.LocalAddr().(*net.UDPAddr).AddrPort()
	var msgs []message
	for i := range 4 {
		msgs = append(msgs, message{b: payload(i, 1400), to: toA})
	}
	// The first 200-byte message ends the refused run; the next two make
	// a run that fits.
	for i := 4; i < 7; i++ {
		msgs = append(msgs, message{b: payload(i, 200), to: toA})
	}
	if failed := r.u.writeBatch(msgs); failed != 0 {
		t.Fatalf("%d failed", failed)
	}
	got := readDatagrams(t, a, len(msgs))
	for i := range msgs {
		if !bytes.Equal(got[i].b, msgs[i].b) {
			t.Fatalf("datagram %d: %d bytes % x…, want %d bytes", i, len(got[i].b), got[i].b[:4], len(msgs[i].b))
		}
	}
	st := r.e.Stats()
	if st["offload_gso_fallback"] != 1 || st["offload_gso_sent"] != 1 || st["offload_gso_segments"] != 2 || st["send_error"] != 0 {
		t.Fatalf("stats %v", st)
	}
	// The refused size is remembered: the next batch sends the large
	// messages one by one at once and still merges the small ones.
	if failed := r.u.writeBatch(msgs); failed != 0 {
		t.Fatalf("%d failed", failed)
	}
	got = readDatagrams(t, a, len(msgs))
	for i := range msgs {
		if !bytes.Equal(got[i].b, msgs[i].b) {
			t.Fatalf("second batch, datagram %d: %d bytes, want %d", i, len(got[i].b), len(msgs[i].b))
		}
	}
	st = r.e.Stats()
	if st["offload_gso_fallback"] != 1 || st["offload_gso_sent"] != 2 || st["offload_gso_segments"] != 5 {
		t.Fatalf("second batch: stats %v", st)
	}
}

// sendGSO sends payloads (all one size but the last) from fd to `to` as
// one UDP_SEGMENT super-datagram.
func sendGSO(t *testing.T, fd int, to netip.AddrPort, payloads [][]byte) {
	t.Helper()
	oob := make([]byte, unix.CmsgSpace(2))
	putSegment(oob, 0, uint16(len(payloads[0])))
	if _, err := unix.SendmsgN(fd, bytes.Join(payloads, nil), oob, &unix.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())}, 0); err != nil {
		t.Fatal(err)
	}
}

// controlMessage is an L2TPv2 control message (T bit) of size bytes whose
// Ns is i.
func controlMessage(i, size int) []byte {
	b := payload(i, size)
	copy(b, []byte{0xc8, 0x02, byte(size >> 8), byte(size), 0, 100, 0, 0, byte(i >> 8), byte(i)})
	return b
}

// With UDP_GRO the reader gets a super-datagram in one buffer and cuts it
// at the segment size: every datagram reaches the engine on its own and
// in order. Without GRO the kernel cuts it before the socket and the
// engine sees the same datagrams.
func TestGROSplitsCoalesced(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableGRO=%v", disable), func(t *testing.T) {
			ns := threadNetns(t)
			r := newOffloadRig(t, ns, Config{DisableGRO: disable})
			if !disable && !r.u.gro {
				t.Fatal("UDP_GRO not available")
			}
			var sender int
			inNetns(t, ns, func() (err error) {
				sender, _, err = perfSocket(netip.MustParseAddrPort("127.0.0.1:0"), 0)
				return err
			})
			defer unix.Close(sender)
			runEngine(t, r.e)
			var msgs [][]byte
			for i := range 8 {
				msgs = append(msgs, controlMessage(i, 40))
			}
			msgs = append(msgs, controlMessage(8, 24))
			sendGSO(t, sender, r.addr, msgs)
			deadline := time.After(5 * time.Second)
			for {
				n := len(r.up.snapshot())
				if n >= len(msgs) {
					break
				}
				select {
				case <-r.up.received:
				case <-time.After(10 * time.Millisecond):
				case <-deadline:
					t.Fatalf("%d of %d messages went up", n, len(msgs))
				}
			}
			time.Sleep(20 * time.Millisecond)
			ctl := r.up.snapshot()
			if len(ctl) != len(msgs) {
				t.Fatalf("%d messages went up, want %d", len(ctl), len(msgs))
			}
			for i := range msgs {
				if !bytes.Equal(ctl[i], msgs[i]) {
					t.Fatalf("message %d: % x, want % x", i, ctl[i], msgs[i])
				}
			}
			st := r.e.Stats()
			wantSockets, wantRecv, wantSegs := uint64(1), uint64(1), uint64(len(msgs))
			if disable {
				wantSockets, wantRecv, wantSegs = 0, 0, 0
			}
			if st["offload_udp_gro_sockets"] != wantSockets || st["offload_gro_received"] != wantRecv ||
				st["offload_gro_segments"] != wantSegs || st["truncated"] != 0 || st["malformed"] != 0 {
				t.Fatalf("stats %v", st)
			}
		})
	}
}

// Sending a GSO batch and cutting apart a GRO buffer allocate nothing.
// Loopback in the test's own namespace; no privileges needed.
func TestOffloadNoAllocs(t *testing.T) {
	r := newOffloadRig(t, "", Config{Batch: 32})
	if !r.u.gso || !r.u.gro {
		t.Fatalf("UDP GSO %v, GRO %v: the kernel lacks them", r.u.gso, r.u.gro)
	}
	r.up.keep = false
	sink, sinkAddr, err := perfSink(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sink)
	msgs := make([]message, 32)
	for i := range msgs {
		msgs[i] = message{b: payload(i, 100), to: sinkAddr, from: netip.MustParseAddr("127.0.0.1")}
	}
	before := r.e.Stats()["offload_gso_sent"]
	if n := testing.AllocsPerRun(100, func() { r.u.writeBatch(msgs) }); n != 0 {
		t.Errorf("writeBatch: %v allocations", n)
	}
	if r.e.Stats()["offload_gso_sent"] == before {
		t.Error("no GSO super-datagram sent")
	}

	sender, _, err := perfSocket(netip.MustParseAddrPort("127.0.0.1:0"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sender)
	var ctl [][]byte
	for i := range 16 {
		ctl = append(ctl, controlMessage(i, 40))
	}
	sendGSO(t, sender, r.addr, ctl)
	// The engine is not running: read here, as its reader thread would.
	n, err := r.u.readBatch()
	if err != nil || n != 1 {
		t.Fatalf("readBatch: %d, %v", n, err)
	}
	if a := testing.AllocsPerRun(100, func() { r.s.deliverBatch(r.u, n) }); a != 0 {
		t.Errorf("deliverBatch: %v allocations", a)
	}
	if got := r.e.Stats()["offload_gro_segments"]; got != 16*101 || r.up.n != 16*101 {
		t.Errorf("%d GRO segments, %d upcalls, want %d", got, r.up.n, 16*101)
	}
}

// With IFF_VNET_HDR and TUNSETOFFLOAD the kernel hands the TUN reader a
// UDP super-packet (a local socket's UDP_SEGMENT send) and packets with a
// partial checksum; the engine cuts the one and completes the other, and
// the LAC gets ordinary datagrams with valid checksums (RFC 768), in
// order. With DisableTUNOffload the kernel does that work and the LAC gets
// the same.
func TestTUNOffloadInNetns(t *testing.T) {
	for _, disable := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableTUNOffload=%v", disable), func(t *testing.T) {
			ns := threadNetns(t)
			up := &countUp{keep: true, received: make(chan struct{}, 1)}
			var (
				e            *Engine
				lns, lacConn *net.UDPConn
				sender       int
			)
			tunAddr, sub := netip.MustParseAddr("10.97.0.1"), netip.MustParseAddr("100.64.0.10")
			inNetns(t, ns, func() (err error) {
				if e, err = New(Config{TUN: "l2tpo0", DisableTUNOffload: disable}, up); err != nil {
					return err
				}
				if lns, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
					return err
				}
				lacConn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				return err
			})
			defer lacConn.Close()
			ipCmd(t, "-n", ns, "addr", "add", tunAddr.String()+"/32", "dev", "l2tpo0")
			ipCmd(t, "-n", ns, "route", "add", sub.String()+"/32", "dev", "l2tpo0")
			inNetns(t, ns, func() (err error) {
				sender, _, err = perfSocket(netip.AddrPortFrom(tunAddr, 0), 0)
				return err
			})
			defer unix.Close(sender)
			s, err := e.AddSocket(lns)
			if err != nil {
				t.Fatal(err)
			}
			st := e.Stats()
			if disable && st["offload_tun_vnet_hdr"] != 0 ||
				!disable && (st["offload_tun_vnet_hdr"] != 1 || st["offload_tun_flags"]&unix.TUN_F_USO4 == 0) {
				t.Fatalf("TUN offloads: %v", st)
			}
			runEngine(t, e)
			lacAddr := lacConn.LocalAddr().(*net.UDPAddr).AddrPort()
			if err := e.Install(Session{Key: key2, PeerTunnel: 7, PeerSession: 8, Peer: lacAddr,
				Local: netip.MustParseAddr("127.0.0.1"), Socket: s, IPv4: sub}); err != nil {
				t.Fatal(err)
			}
			var sent [][]byte
			for i := range 5 {
				sent = append(sent, payload(i, 1000))
			}
			sent = append(sent, payload(5, 300))
			to := netip.AddrPortFrom(sub, 9)
			sendGSO(t, sender, to, sent)
			plain := payload(6, 200)
			if err := unix.Sendto(sender, plain, 0, &unix.SockaddrInet4{Addr: sub.As4(), Port: 9}); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, plain)
			got := readDatagrams(t, lacConn, len(sent))
			for i, d := range got {
				_, frame, err := ParseV2(d.b)
				if err != nil {
					t.Fatal(err)
				}
				proto, ip, ok := ParsePPP(frame)
				if !ok || proto != ProtoIPv4 || len(ip) < 28 || ip[9] != 17 {
					t.Fatalf("message %d: % x", i, frame)
				}
				udp := ip[20:]
				if int(binary.BigEndian.Uint16(ip[2:])) != len(ip) || !ipv4HeaderOK(ip) ||
					int(binary.BigEndian.Uint16(udp[4:])) != len(udp) || binary.BigEndian.Uint16(udp[2:]) != 9 {
					t.Fatalf("message %d: headers % x", i, ip[:28])
				}
				if binary.BigEndian.Uint16(udp[6:]) == 0 || !l4ChecksumOK(t, ip) {
					t.Fatalf("message %d: UDP checksum %#x wrong", i, binary.BigEndian.Uint16(udp[6:]))
				}
				if !bytes.Equal(udp[8:], sent[i]) {
					t.Fatalf("message %d: payload % x…, want % x…", i, udp[8:12], sent[i][:4])
				}
			}
			st = e.Stats()
			if disable {
				if st["offload_tun_gso_read"]+st["offload_tun_gso_segments"]+st["offload_tun_csum"] != 0 {
					t.Fatalf("stats %v", st)
				}
				return
			}
			if st["offload_tun_gso_read"] != 1 || st["offload_tun_gso_segments"] != 6 || st["offload_tun_csum"] != 1 {
				t.Fatalf("stats %v", st)
			}
		})
	}
}

// A real TCP connection crosses the offloaded TUN. The LNS namespace
// holds the engine, its TUN and a TCP server; the subscriber namespace
// holds a TUN of its own and the client. A relay in the test stands in
// for the LAC and PPP: it strips L2TP and PPP from what the engine sends
// and writes the IP packets to the subscriber's TUN, and wraps what that
// TUN gives it in the other direction. The server's TCP sends through a
// TUN with TSO, so the engine reads super-packets and cuts them; the
// subscriber's kernel checks every segment's checksums (RFC 793 §3.1),
// and the bytes must arrive intact both ways.
func TestTUNOffloadTCP(t *testing.T) {
	lnsNS, subNS := threadNetns(t), threadNetns(t)
	tunAddr, sub := netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("100.64.0.10")
	up := &countUp{keep: true, received: make(chan struct{}, 1)}
	var (
		e        *Engine
		lns, lac *net.UDPConn
		ln       net.Listener
		subTUN   int
	)
	inNetns(t, lnsNS, func() (err error) {
		if e, err = New(Config{TUN: "l2tpa0"}, up); err != nil {
			return err
		}
		if lns, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			return err
		}
		lac, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	})
	defer lac.Close()
	ipCmd(t, "-n", lnsNS, "addr", "add", tunAddr.String()+"/32", "dev", "l2tpa0")
	ipCmd(t, "-n", lnsNS, "route", "add", sub.String()+"/32", "dev", "l2tpa0")
	inNetns(t, lnsNS, func() (err error) {
		ln, err = net.Listen("tcp4", tunAddr.String()+":5001")
		return err
	})
	defer ln.Close()
	inNetns(t, subNS, func() (err error) {
		subTUN, err = perfOpenTUN("l2tpc0")
		return err
	})
	subTUNFile := os.NewFile(uintptr(subTUN), "tun")
	defer subTUNFile.Close()
	ipCmd(t, "-n", subNS, "addr", "add", sub.String()+"/32", "dev", "l2tpc0")
	ipCmd(t, "-n", subNS, "route", "add", tunAddr.String()+"/32", "dev", "l2tpc0")
	s, err := e.AddSocket(lns)
	if err != nil {
		t.Fatal(err)
	}
	if e.Stats()["offload_tun_flags"]&unix.TUN_F_TSO4 == 0 {
		t.Fatalf("no TSO on the TUN: %v", e.Stats())
	}
	runEngine(t, e)
	lacAddr := lac.LocalAddr().(*net.UDPAddr).AddrPort()
	lnsAddr := s.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := e.Install(Session{Key: key2, PeerTunnel: 7, PeerSession: 8, Peer: lacAddr,
		Local: netip.MustParseAddr("127.0.0.1"), Socket: s, IPv4: sub}); err != nil {
		t.Fatal(err)
	}

	// The relay, until the test ends.
	relayErr := make(chan error, 2)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := lac.ReadFromUDPAddrPort(buf)
			if err != nil {
				relayErr <- nil
				return
			}
			_, frame, err := ParseV2(buf[:n])
			if err != nil {
				relayErr <- err
				return
			}
			proto, ip, ok := ParsePPP(frame)
			if !ok || proto != ProtoIPv4 {
				continue
			}
			if len(ip) > 1500 {
				relayErr <- fmt.Errorf("a %d-byte packet left the engine", len(ip))
				return
			}
			subTUNFile.Write(ip)
		}
	}()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := subTUNFile.Read(buf)
			if err != nil {
				return
			}
			if buf[0]>>4 != 4 {
				continue
			}
			lac.WriteToUDPAddrPort(v2Data(key2, pppFrame(ProtoIPv4, buf[:n])), lnsAddr)
		}
	}()

	down, upData := testPayload(1<<20), testPayload(256<<10)
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(down); err != nil {
			serverErr <- err
			return
		}
		got := make([]byte, len(upData))
		if _, err := io.ReadFull(c, got); err != nil {
			serverErr <- fmt.Errorf("server read: %w", err)
			return
		}
		if !bytes.Equal(got, upData) {
			serverErr <- errors.New("upstream bytes differ")
			return
		}
		serverErr <- nil
	}()
	var c net.Conn
	inNetns(t, subNS, func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: sub.AsSlice()}}
		c, err = d.Dial("tcp4", tunAddr.String()+":5001")
		return err
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, len(down))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("client read: %v; stats %v", err, e.Stats())
	}
	if !bytes.Equal(got, down) {
		t.Fatal("downstream bytes differ")
	}
	if _, err := c.Write(upData); err != nil {
		t.Fatal(err)
	}
	if err := <-serverErr; err != nil {
		t.Fatalf("%v; stats %v", err, e.Stats())
	}
	select {
	case err := <-relayErr:
		if err != nil {
			t.Fatal(err)
		}
	default:
	}
	st := e.Stats()
	if st["offload_tun_gso_read"] == 0 || st["offload_tun_gso_segments"] <= st["offload_tun_gso_read"] {
		t.Fatalf("no TSO super-packet went through the engine: %v", st)
	}
	for _, k := range []string{"malformed", "send_error", "tun_write"} { // not no_route: the kernel sends traffic of its own into the TUN
		if st[k] != 0 {
			t.Fatalf("%s: %v", k, st)
		}
	}
	t.Logf("%d super-packets cut into %d packets; %d checksums completed",
		st["offload_tun_gso_read"], st["offload_tun_gso_segments"], st["offload_tun_csum"])
}
