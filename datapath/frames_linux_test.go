package datapath

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RFC 2661 §5.8, §3.1: batched PPP control frames go out as SendFrame
// sends them, in the order added, each with its session's next Ns.
func TestFrameBatch(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, func(s *Session) { s.Sequencing = true })
	b := r.e.NewFrameBatch()
	lcp := []byte{0xc0, 0x21, 9, 1, 0, 8, 1, 2, 3, 4}
	for i := 0; i < 3; i++ {
		f := lcp
		if i == 1 {
			f = append([]byte{0xff, 0x03}, lcp...)
		}
		if err := b.Add(key2, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Add(SessionKey{Version: 2, Tunnel: 1, Session: 1}, lcp); err == nil {
		t.Fatal("queued for an unknown session")
	}
	if err := b.Add(key2, lcp[:1]); err == nil {
		t.Fatal("queued a frame without a protocol field")
	}
	if len(r.io.sent) != 0 || b.Len() != 3 {
		t.Fatalf("%d sent, %d queued before Flush", len(r.io.sent), b.Len())
	}
	if failed := b.Flush(); failed != 0 {
		t.Fatalf("%d failed", failed)
	}
	if len(r.io.sent) != 3 || b.Len() != 0 {
		t.Fatalf("%d sent, %d queued", len(r.io.sent), b.Len())
	}
	for i, m := range r.io.sent {
		exp := AppendV2(nil, Header{Tunnel: 7, Session: 8, Sequenced: true, Ns: uint32(i)}, append([]byte{0xff, 0x03}, lcp...))
		if !bytes.Equal(m.b, exp) || m.to != lac || m.from != lnsAddr {
			t.Errorf("frame %d: % x to %v from %v, want % x", i, m.b, m.to, m.from, exp)
		}
	}
	if c, _ := r.e.Counters(key2); c.TxPackets != 3 || c.TxBytes != 3*8 {
		t.Fatalf("counters %+v", c)
	}
	r.io.failOne = net.ErrClosed
	b.Add(key2, lcp)
	if failed := b.Flush(); failed != 1 || r.stat("send_error") != 1 {
		t.Fatalf("%d failed, stats %v", failed, r.e.Stats())
	}
}

// Through a real socket (sendmmsg on loopback): frames for sessions of
// two peers, added alternately and more than one batch's worth, all
// arrive intact, each from the session's local address. With UDP GSO,
// the frames to one peer within a batch leave as one datagram that the
// kernel cuts back into the frames; a frame shorter than the ones before
// it ends such a datagram, a longer one starts the next.
func TestFrameBatchSendmmsg(t *testing.T) {
	e := newEngine(Config{MTU: 1500, Batch: 8}, &fakeUp{})
	loopback := netip.MustParseAddr("127.0.0.1")
	lns, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lnsAddr := lns.LocalAddr().(*net.UDPAddr).AddrPort()
	sock, err := e.AddSocket(lns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.io.(*udpIO).close() })
	var peers [2]*net.UDPConn
	for i := range peers {
		if peers[i], err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		defer peers[i].Close()
		peers[i].SetReadBuffer(1 << 20)
	}
	const n = 21
	for i := 0; i < n; i++ {
		if err := e.Install(Session{Key: SessionKey{Version: 2, Tunnel: 1, Session: uint32(i + 1)}, PeerTunnel: 7, PeerSession: uint32(100 + i),
			Peer: peers[i%2].LocalAddr().(*net.UDPAddr).AddrPort(), Local: loopback, Socket: sock}); err != nil {
			t.Fatal(err)
		}
	}
	b := e.NewFrameBatch()
	for i := 0; i < n; i++ {
		if err := b.Add(SessionKey{Version: 2, Tunnel: 1, Session: uint32(i + 1)}, []byte{0xc0, 0x21, 9, byte(i), 0, 8, 0, 0, 0, byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if failed := b.Flush(); failed != 0 {
		t.Fatalf("%d failed", failed)
	}
	buf := make([]byte, 2048)
	for p := range peers {
		peers[p].SetReadDeadline(time.Now().Add(5 * time.Second))
		for i := p; i < n; i += 2 {
			m, from, err := peers[p].ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("peer %d, frame %d: %v", p, i, err)
			}
			exp := AppendV2(nil, Header{Tunnel: 7, Session: uint32(100 + i)}, []byte{0xff, 0x03, 0xc0, 0x21, 9, byte(i), 0, 8, 0, 0, 0, byte(i)})
			if !bytes.Equal(buf[:m], exp) || from != lnsAddr {
				t.Fatalf("peer %d, frame %d: % x from %v, want % x", p, i, buf[:m], from, exp)
			}
		}
	}
	for i := 0; i < n; i++ {
		if c, _ := e.Counters(SessionKey{Version: 2, Tunnel: 1, Session: uint32(i + 1)}); c.TxPackets != 1 || c.TxBytes != 8 {
			t.Fatalf("session %d counters %+v", i+1, c)
		}
	}
	gso := sock.io.(*udpIO).gso
	// Batches of 8 frames sorted by peer: 8 to the first; 3 to the first
	// and 5 to the second; 5 to the second.
	if st := e.Stats(); gso && (st["offload_gso_sent"] != 4 || st["offload_gso_segments"] != n) {
		t.Fatalf("GSO: %d datagrams, %d segments; want 4 and %d", st["offload_gso_sent"], st["offload_gso_segments"], n)
	}

	// Echo-Request, Echo-Request, a shorter frame, Echo-Request: the
	// first three share a datagram, the last goes alone.
	frames := [][]byte{
		{0xc0, 0x21, 9, 1, 0, 8, 0, 0, 0, 1},
		{0xc0, 0x21, 9, 2, 0, 8, 0, 0, 0, 2},
		{0xc0, 0x21, 5, 3, 0, 4},
		{0xc0, 0x21, 9, 4, 0, 8, 0, 0, 0, 4},
	}
	key := SessionKey{Version: 2, Tunnel: 1, Session: 1}
	for _, f := range frames {
		if err := b.Add(key, f); err != nil {
			t.Fatal(err)
		}
	}
	if failed := b.Flush(); failed != 0 {
		t.Fatalf("%d failed", failed)
	}
	for i, f := range frames {
		m, _, err := peers[0].ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		exp := AppendV2(nil, Header{Tunnel: 7, Session: 100}, append([]byte{0xff, 0x03}, f...))
		if !bytes.Equal(buf[:m], exp) {
			t.Fatalf("frame %d: % x, want % x", i, buf[:m], exp)
		}
	}
	if st := e.Stats(); gso && (st["offload_gso_sent"] != 5 || st["offload_gso_segments"] != n+3) {
		t.Fatalf("GSO: %d datagrams, %d segments; want 5 and %d", st["offload_gso_sent"], st["offload_gso_segments"], n+3)
	}
	if !gso {
		t.Log("this kernel has no UDP GSO: frames sent one datagram each")
	}

	// Queuing, sorting and sending allocate nothing once the batch's
	// buffers have grown.
	allocs := testing.AllocsPerRun(20, func() {
		for i := 0; i < n; i++ {
			b.Add(SessionKey{Version: 2, Tunnel: 1, Session: uint32(i + 1)}, frames[i%len(frames)])
		}
		if failed := b.Flush(); failed != 0 {
			t.Fatalf("%d failed", failed)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
}

// After the kernel refuses a GSO entry, merging adapts: segments above
// the path MTU (EINVAL, EMSGSIZE) are not merged again at that size, and
// a route that cannot checksum (EIO) pauses merging for gsoPauseBatches
// batches, then it is tried again. Each refusal is counted.
func TestGSORefused(t *testing.T) {
	u := &udpIO{gso: true, off: &offloadStats{}}
	u.gsoBelow.Store(1 << 16)
	if !u.gsoOn() {
		t.Fatal("GSO off on a fresh socket")
	}
	u.gsoRefused(unix.EMSGSIZE, 1400)
	u.gsoRefused(unix.EINVAL, 1452) // larger: the limit stays
	if b := u.gsoBelow.Load(); b != 1400 || !u.gsoOn() {
		t.Fatalf("after EMSGSIZE: merging below %d, on %v", b, u.gsoOn())
	}
	u.gsoRefused(unix.EIO, 64)
	for i := 0; i < gsoPauseBatches; i++ {
		if u.gsoOn() {
			t.Fatalf("merging again after %d batches of %d", i, gsoPauseBatches)
		}
	}
	if !u.gsoOn() || u.gsoBelow.Load() != 1400 {
		t.Fatal("merging not resumed after the pause")
	}
	if n := u.off.gsoFallback.Load(); n != 3 {
		t.Fatalf("%d fallbacks counted, want 3", n)
	}
	if (&udpIO{}).gsoOn() {
		t.Fatal("merging on a socket without GSO")
	}
}
