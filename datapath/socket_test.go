package datapath

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// Without a TUN the engine still carries control messages and PPP frames
// over real sockets (no privileges needed), and IP of sessions with
// addresses is dropped and counted.
func TestEngineWithoutTUN(t *testing.T) {
	up := &chanUp{control: make(chan []byte, 4), frames: make(chan []byte, 4), to: make(chan netip.Addr, 4)}
	e, err := New(Config{}, up)
	if err != nil {
		t.Fatal(err)
	}
	if e.TUNName() != "" {
		t.Fatalf("TUN %q", e.TUNName())
	}
	lns, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	lac, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer lac.Close()
	sock, err := e.AddSocket(lns)
	if err != nil {
		t.Fatal(err)
	}
	if sock.LocalAddr().String() != lns.LocalAddr().String() {
		t.Fatalf("LocalAddr %v", sock.LocalAddr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	lacAddr := lac.LocalAddr().(*net.UDPAddr).AddrPort()
	lnsAddr := lns.LocalAddr().(*net.UDPAddr).AddrPort()
	if err := e.Install(Session{Key: key2, PeerTunnel: 7, PeerSession: 8, Peer: lacAddr, Socket: sock, IPv4: sub4}); err != nil {
		t.Fatal(err)
	}
	hello := []byte{0xc8, 0x02, 0, 20, 0, 100, 0, 0, 0, 3, 0, 4, 0x80, 8, 0, 0, 0, 0, 0, 6}
	lac.WriteToUDPAddrPort(hello, lnsAddr)
	if got := <-up.control; !bytes.Equal(got, hello) {
		t.Fatalf("control % x", got)
	}
	if to := <-up.to; to != lnsAddr.Addr() {
		t.Fatalf("to %v", to)
	}
	lcp := pppFrame(0xc021, []byte{1, 1, 0, 4})
	lac.WriteToUDPAddrPort(v2Data(key2, lcp), lnsAddr)
	if got := <-up.frames; !bytes.Equal(got, lcp) {
		t.Fatalf("frame % x", got)
	}
	lac.WriteToUDPAddrPort(v2Data(key2, pppFrame(ProtoIPv4, icmpEcho(sub4, web4))), lnsAddr)
	// A control message after it proves the data message was handled.
	lac.WriteToUDPAddrPort(hello, lnsAddr)
	<-up.control
	<-up.to
	if e.Stats()["no_tun"] != 1 {
		t.Fatalf("stats %v", e.Stats())
	}
	if err := e.SendFrame(key2, lcp[2:]); err != nil {
		t.Fatal(err)
	}
	lac.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, _, err := lac.ReadFromUDPAddrPort(buf)
	if err != nil || !bytes.Equal(buf[:n], AppendV2(nil, Header{Tunnel: 7, Session: 8}, lcp)) {
		t.Fatalf("SendFrame: % x %v", buf[:n], err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := sock.WriteControl(hello, lacAddr, netip.Addr{}); err == nil {
		t.Fatal("socket still open after Run")
	}
	if err := e.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{MTU: 100}, &fakeUp{}); err == nil {
		t.Fatal("MTU 100 accepted")
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("nil Upcall accepted")
	}
}

func TestPktinfoRoundTrip(t *testing.T) {
	oob := make([]byte, oobSize)
	if n := putPktinfo(oob, netip.Addr{}, false); n != 0 {
		t.Fatalf("zero address: %d bytes", n)
	}
	// parsePktinfo reads ipi_addr; putPktinfo sets ipi_spec_dst, the
	// source to use (IPv6 has one address for both, RFC 3542 §6.1).
	a6 := netip.MustParseAddr("2001:db8::1")
	n := putPktinfo(oob, a6, true)
	if got := parsePktinfo(oob[:n]); got != a6 {
		t.Fatalf("IPv6 pktinfo %v", got)
	}
	if got := parsePktinfo(oob[:3]); got.IsValid() {
		t.Fatalf("short control message parsed as %v", got)
	}
}
