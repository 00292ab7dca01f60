package control

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/ppp"
)

// A capture of one session holds its PPP data both ways (LCP echoes here)
// and its tunnel's control messages (the CDN of a clear and its ack).
func TestCaptureSession(t *testing.T) {
	s, addr := pppServer(t, func(c *Config) {
		c.PPP.IPv6 = false
		c.PPP.EchoInterval = 100 * time.Millisecond
	})
	l := newSubscriberLAC(t, addr, 2, "alice", "wonderland", []ppp.AuthProto{ppp.AuthPAP}, false)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	if !l.pump(func() bool { return l.client.IPCPState() == ppp.StateOpened }, 5*time.Second) {
		t.Fatal("not online")
	}
	id := sessionOf(t, s).SessionID
	type result struct {
		pkts []CapturedPacket
		err  error
	}
	done := make(chan result, 1)
	go func() {
		p, err := s.Capture(context.Background(), id, 0, 1500*time.Millisecond)
		done <- result{p, err}
	}()
	l.pump(func() bool { return false }, 600*time.Millisecond)
	if _, err := s.Capture(context.Background(), id, 1, time.Second); err != ErrCaptureBusy {
		t.Fatalf("second capture: %v", err)
	}
	if err := s.ClearSession(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	var r result
	l.pump(func() bool {
		select {
		case r = <-done:
			return true
		default:
			return false
		}
	}, 3*time.Second)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var echoOut, echoIn, cdn, ack bool
	for _, p := range r.pkts {
		if p.Data[0]&0x80 != 0 {
			m, err := wire.ParseMessage(p.Data, wire.EncapUDP, nil)
			if err != nil {
				t.Fatalf("captured control message: %v", err)
			}
			cdn = cdn || (p.Out && m.Type == wire.MsgCDN)
			ack = ack || (!p.Out && m.Type == wire.MsgZLB)
			continue
		}
		// v2 data: 6-byte header (no L bit from either side), FF 03, LCP.
		if len(p.Data) > 10 && p.Data[8] == 0xc0 && p.Data[9] == 0x21 {
			echoOut = echoOut || (p.Out && p.Data[10] == 9)
			echoIn = echoIn || (!p.Out && p.Data[10] == 10)
		}
	}
	if !echoOut || !echoIn || !cdn || !ack {
		t.Fatalf("capture of %d packets: echo out %v in %v, CDN %v, ack %v", len(r.pkts), echoOut, echoIn, cdn, ack)
	}
	if _, err := s.Capture(context.Background(), 424242, 1, time.Second); err == nil {
		t.Fatal("capture of an unknown session started")
	}
}

// A packet the datapath or the shard hands over with peer port 0 is one of
// a session carried directly over IP (RFC 3931 §4.1.1.2); any other is a
// UDP payload.
func TestCaptureMarksIP(t *testing.T) {
	c := &capture{max: 10, full: make(chan struct{})}
	local := netip.MustParseAddr("192.0.2.1")
	c.add(false, []byte{0, 0, 0, 9, 1}, netip.MustParseAddrPort("198.51.100.7:0"), local)
	c.add(true, []byte{0xc8, 2}, netip.MustParseAddrPort("198.51.100.7:1701"), local)
	c.add(true, []byte{0, 0, 0, 0}, netip.MustParseAddrPort("[2001:db8::7]:0"), netip.MustParseAddr("2001:db8::1"))
	if len(c.pkts) != 3 {
		t.Fatalf("%d packets", len(c.pkts))
	}
	for i, want := range []bool{true, false, true} {
		if c.pkts[i].IP != want {
			t.Errorf("packet %d: IP %v, want %v", i, c.pkts[i].IP, want)
		}
	}
}

// A static session (RFC 3931 §3.1: no control connection) is captured by
// its configured ID; one capture of it at a time; an ID no session has is
// not found.
func TestCaptureStaticSession(t *testing.T) {
	s, _ := startServer(t, nil)
	s.pw.mu.Lock()
	s.pw.statics = map[staticKey]staticSession{{tunnel: "st", id: 1000}: {at: time.Now()}}
	s.pw.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := s.Capture(context.Background(), 1000, 0, 800*time.Millisecond)
		done <- err
	}()
	deadline := time.Now().Add(2 * time.Second)
	for {
		s.pw.mu.Lock()
		running := s.pw.captures[1000] != nil
		s.pw.mu.Unlock()
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the capture of static session 1000 did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s.Capture(context.Background(), 1000, 1, time.Second); err != ErrCaptureBusy {
		t.Fatalf("second capture of a static session: %v", err)
	}
	if _, err := s.Capture(context.Background(), 1001, 1, time.Second); !errors.Is(err, ErrNotFound) {
		t.Fatalf("capture of an unknown session: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("capture: %v", err)
	}
	s.pw.mu.Lock()
	left := len(s.pw.captures)
	s.pw.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d static captures left registered after the capture ended", left)
	}
}
