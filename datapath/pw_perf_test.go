//go:build linux

package datapath

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkPWForward measures Ethernet pseudowire forwarding through the
// kernel, in a network namespace of its own, in both directions:
//
//	up:   L2TPv3 data (Ethernet frame) on the UDP socket → strip → TAP write
//	down: TAP read → the TAP's session → L2TPv3 header in headroom → sendmmsg
//
// For each direction and Ethernet frame size (without FCS) it runs two
// consumers against the same generator, as BenchmarkForward does for the
// PPP datapath:
//
//   - impl=raw: a loop making the same system calls (recvmmsg with names
//     and IP_PKTINFO, one TAP write per frame; TAP reads until EAGAIN,
//     sendmmsg with a destination and IP_PKTINFO per message) on
//     non-blocking descriptors, waiting in poll(2) only on EAGAIN, that
//     strips or prepends a fixed header and does nothing else: the limit;
//   - impl=l2tpd-plain: the Engine with one Ethernet session (4-byte
//     cookie, default L2-specific sublayer, no sequencing) on a TAP, read
//     by its epoll TAP reader, with UDP GSO and GRO off: the same system
//     calls as the raw loop;
//   - impl=l2tpd: the same with the defaults, where downstream the
//     messages of one sendmmsg batch to the peer leave as UDP_SEGMENT
//     super-datagrams when the kernel supports it.
//
// The generator blasts prebuilt datagrams with sendmmsg from a locked
// thread: upstream L2TPv3 messages to the LNS socket over loopback (their
// frames are addressed to a MAC that is not the TAP's, so the kernel drops
// them right after the TAP write, for every consumer alike); downstream
// UDP datagrams to an address behind the TAP with a static neighbour
// entry, so the kernel puts one Ethernet frame per datagram on the TAP.
// What the consumer sends goes to a socket nobody reads.
//
// One op is one forwarded frame; the metrics are BenchmarkForward's.
//
//	go test -run '^$' -bench PWForward -benchtime 1000000x ./datapath/
func BenchmarkPWForward(b *testing.B) {
	perfRequireRoot(b)
	for _, dir := range []string{"up", "down"} {
		for _, size := range []int{64, 1400} {
			for _, impl := range []string{"raw", "l2tpd-plain", "l2tpd"} {
				b.Run(fmt.Sprintf("dir=%s/size=%d/impl=%s", dir, size, impl), func(b *testing.B) {
					runPWForward(b, dir == "up", size, impl)
				})
			}
		}
	}
}

const pwPerfTAP = "pwb0"

var (
	pwPerfKey     = SessionKey{Version: 3, Session: 0x1001}
	pwPerfPeerS   = uint32(0x2002)
	pwPerfCookie  = []byte{0xc0, 0x0c, 0x1e, 0x5a}
	pwPerfTAPAddr = netip.MustParseAddr("10.98.0.1")
	pwPerfFar     = netip.MustParseAddr("10.98.0.2") // behind the TAP, static neighbour
	pwPerfFarMAC  = "02:00:00:00:98:02"
)

// pwPerfHeader is the header of the benchmark's session (received and
// sent alike: the cookies are the same both ways).
func pwPerfHeader(session uint32) []byte {
	return AppendV3(nil, Header{Session: session, Cookie: pwPerfCookie, L2SS: true}, nil)
}

// pwPerfUpstream is what the far end sends: an Ethernet frame of size
// bytes to a MAC address that is not the TAP's.
func pwPerfUpstream(size int) []byte {
	frame := make([]byte, size)
	copy(frame, []byte{0x02, 0, 0, 0, 0x98, 0x77, 0x02, 0, 0, 0, 0x98, 0x66, 0x88, 0xb5})
	return append(pwPerfHeader(pwPerfKey.Session), frame...)
}

func pwPerfSession(peer netip.AddrPort, s *Socket) Session {
	return Session{
		Key: pwPerfKey, PeerSession: pwPerfPeerS, Peer: peer, Local: perfLNS.Addr(), Socket: s,
		Cookie: pwPerfCookie, PeerCookie: pwPerfCookie, L2SpecificSublayer: true,
		Kind: KindEthernet, TAP: pwPerfTAP,
	}
}

// The raw loop's fixed header handling produces exactly what the Engine
// forwards. Needs no root.
func TestPWPerfConsumersAgree(t *testing.T) {
	for _, size := range []int{64, 1400} {
		r := newRig(t, true, perfBatch)
		w := r.addFakeTAP(t, pwPerfTAP)
		if err := r.e.Install(pwPerfSession(lac, r.sock)); err != nil {
			t.Fatal(err)
		}
		hl := len(pwPerfHeader(0))
		msg := pwPerfUpstream(size)
		r.e.receive(r.sock, msg, lac, lnsAddr)
		if len(w.pkts) != 1 || !bytes.Equal(w.pkts[0], msg[hl:]) || len(msg)-hl != size {
			t.Fatalf("%d bytes up: Engine wrote % x, raw loop writes % x", size, w.pkts, msg[hl:])
		}
		frame := make([]byte, size)
		buf, n := tapRead(frame)
		f := &pwForwarder{e: r.e}
		f.forward(r.tap(pwPerfTAP), buf, n)
		f.flush()
		want := append(pwPerfHeader(pwPerfPeerS), frame...)
		if len(r.io.sent) != 1 || !bytes.Equal(r.io.sent[0].b, want) || r.io.sent[0].from != perfLNS.Addr() {
			t.Fatalf("%d bytes down: Engine sent %+v, raw loop sends % x", size, r.io.sent, want)
		}
	}
}

// pwRaw is the raw loop between a UDP socket and a TAP, without the Go
// runtime's poller.
type pwRaw struct {
	sock, tap int
	hdr       []byte
	stop      atomic.Bool
	fwd       atomic.Uint64
	m         *perfMmsg
	sizes     []int
}

func (r *pwRaw) up() error {
	m := r.m
	hl := len(r.hdr)
	for !r.stop.Load() {
		for i := range m.hdrs {
			m.iovs[i].Base = &m.bufs[i][0]
			m.iovs[i].SetLen(len(m.bufs[i]))
			h := &m.hdrs[i].Hdr
			h.Namelen = unix.SizeofSockaddrInet4
			h.Control = &m.oob[i][0]
			h.SetControllen(oobSize)
		}
		n, errno := perfMmsgCall(unix.SYS_RECVMMSG, r.sock, m.hdrs, unix.MSG_DONTWAIT)
		switch errno {
		case 0:
		case unix.EAGAIN, unix.EINTR:
			perfPoll(r.sock, unix.POLLIN)
			continue
		default:
			return r.stopped(fmt.Errorf("recvmmsg: %w", errno))
		}
		for i := 0; i < n; i++ {
			if _, err := unix.Write(r.tap, m.bufs[i][hl:m.hdrs[i].Len]); err != nil {
				return r.stopped(fmt.Errorf("TAP write: %w", err))
			}
		}
		r.fwd.Add(uint64(n))
	}
	return nil
}

func (r *pwRaw) down(to netip.AddrPort) error {
	m := r.m
	m.address(to, perfLNS.Addr())
	hl := len(r.hdr)
	for !r.stop.Load() {
		k := 0
		for k < perfBatch {
			n, err := unix.Read(r.tap, m.bufs[k][headroom:])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				if err != unix.EAGAIN {
					return r.stopped(fmt.Errorf("TAP read: %w", err))
				}
				break
			}
			r.sizes[k] = n
			k++
		}
		if k == 0 {
			perfPoll(r.tap, unix.POLLIN)
			continue
		}
		for i := 0; i < k; i++ {
			p := headroom - hl
			copy(m.bufs[i][p:], r.hdr)
			m.iovs[i].Base = &m.bufs[i][p]
			m.iovs[i].SetLen(r.sizes[i] + hl)
		}
		for from := 0; from < k; {
			n, errno := perfMmsgCall(unix.SYS_SENDMMSG, r.sock, m.hdrs[from:k], unix.MSG_DONTWAIT)
			switch errno {
			case 0:
				from += n
			case unix.EAGAIN, unix.EINTR:
				perfPoll(r.sock, unix.POLLOUT)
			default:
				return r.stopped(fmt.Errorf("sendmmsg: %w", errno))
			}
		}
		r.fwd.Add(uint64(k))
	}
	return nil
}

func (r *pwRaw) stopped(err error) error {
	if r.stop.Load() {
		return nil
	}
	return err
}

// pwPerfOpenTAP opens the raw loop's TAP as OpenTAP does, without the
// runtime poller.
func pwPerfOpenTAP(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = linkUp(name, 1500)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func runPWForward(b *testing.B, up bool, size int, impl string) {
	l2tpd, plain := strings.HasPrefix(impl, "l2tpd"), impl == "l2tpd-plain"
	ns := perfNamespace(b)
	var (
		e      *Engine
		pu     = new(perfUp)
		rawTAP = -1
	)
	perfIn(b, ns, func() (err error) {
		if l2tpd {
			if e, err = New(Config{Batch: perfBatch, DisableGSO: plain, DisableGRO: plain}, pu); err != nil {
				return err
			}
			return e.OpenTAP(pwPerfTAP, 1500)
		}
		rawTAP, err = pwPerfOpenTAP(pwPerfTAP)
		return err
	})
	if rawTAP >= 0 {
		b.Cleanup(func() { unix.Close(rawTAP) })
	}
	perfIP(b, "-n", ns, "addr", "add", pwPerfTAPAddr.String()+"/24", "dev", pwPerfTAP)
	perfIP(b, "-n", ns, "neigh", "add", pwPerfFar.String(), "lladdr", pwPerfFarMAC, "dev", pwPerfTAP, "nud", "permanent")

	var (
		lnsConn          *net.UDPConn
		lnsFD, gen, sink = -1, -1, -1
		genAddr, sinkTo  netip.AddrPort
		genPkt           []byte
		genTo            netip.AddrPort
	)
	perfIn(b, ns, func() (err error) {
		if lnsConn, lnsFD, err = perfLNSSocket(l2tpd); err != nil {
			return err
		}
		if up {
			gen, genAddr, err = perfSocket(netip.AddrPortFrom(perfLNS.Addr(), 0), 0)
			genPkt, genTo = pwPerfUpstream(size), perfLNS
		} else {
			// One frame of size bytes: Ethernet 14, IPv4 20, UDP 8.
			gen, genAddr, err = perfSocket(netip.AddrPortFrom(pwPerfTAPAddr, 0), 0)
			genPkt, genTo = make([]byte, size-42), netip.AddrPortFrom(pwPerfFar, 9)
			if err == nil {
				sink, sinkTo, err = perfSink(netip.AddrPortFrom(perfLNS.Addr(), 0))
			}
		}
		return err
	})
	for _, fd := range []int{lnsFD, gen, sink} {
		if fd >= 0 {
			b.Cleanup(func() { unix.Close(fd) })
		}
	}

	var (
		count func() uint64
		check func() error
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("consumer: %v", err)
		}
	})
	if l2tpd {
		s, err := e.AddSocket(lnsConn)
		if err != nil {
			b.Fatal(err)
		}
		peer := genAddr
		if !up {
			peer = sinkTo
		}
		if err := e.Install(pwPerfSession(peer, s)); err != nil {
			b.Fatal(err)
		}
		go func() { done <- e.Run(ctx) }()
		count = func() uint64 {
			c, _ := e.Counters(pwPerfKey)
			if up {
				return c.RxPackets
			}
			return c.TxPackets
		}
		check = func() error {
			for reason, n := range e.Stats() {
				if n != 0 && !strings.HasPrefix(reason, "offload_") {
					return fmt.Errorf("%d frames dropped (%s); stats %v", n, reason, e.Stats())
				}
			}
			if n := pu.n.Load(); n != 0 {
				return fmt.Errorf("%d messages went up instead of being forwarded", n)
			}
			if st := e.Stats(); !up && st["offload_udp_gso_sockets"] == 1 && st["offload_gso_sent"] == 0 {
				return fmt.Errorf("GSO is on but no super-datagram was sent; stats %v", st)
			}
			return nil
		}
	} else {
		session := pwPerfKey.Session
		if !up {
			session = pwPerfPeerS
		}
		r := &pwRaw{sock: lnsFD, tap: rawTAP, hdr: pwPerfHeader(session), m: newPerfMmsg(perfBatch, headroom+2048), sizes: make([]int, perfBatch)}
		go func() {
			if up {
				done <- r.up()
			} else {
				done <- r.down(sinkTo)
			}
		}()
		go func() { <-ctx.Done(); r.stop.Store(true) }()
		count = r.fwd.Load
		check = func() error { return nil }
	}
	perfMeasure(b, count, check, func(stop *atomic.Bool) { perfGenerate(gen, genPkt, genTo, 1, stop) })
}
