package datapath

import (
	"bytes"
	"net/netip"
	"testing"
)

// A relayed session's frames (IP and control alike) go to the relay, not
// to the TUN or the control plane, are counted, and allocate nothing;
// without the relay they take the usual path again.
func TestRelay(t *testing.T) {
	r := newRig(t, false, 8)
	r.installV2(t, nil)
	var got [][]byte
	n := 0
	relay := func(frame []byte) {
		n++
		if len(got) < 2 {
			got = append(got, append([]byte(nil), frame...))
		}
	}
	if r.e.SetRelay(SessionKey{Version: 2, Tunnel: 1, Session: 1}, relay) {
		t.Fatal("relay set on a session that is not installed")
	}
	if !r.e.SetRelay(key2, relay) {
		t.Fatal("SetRelay")
	}
	ip := pppFrame(ProtoIPv4, icmpEcho(sub4, web4))
	lcp := pppFrame(0xc021, []byte{9, 1, 0, 8, 0, 0, 0, 0})
	tun := r.tun.count
	r.e.receive(r.sock, v2Data(key2, ip), lac, lnsAddr)
	r.e.receive(r.sock, v2Data(key2, lcp), lac, lnsAddr)
	if n != 2 || !bytes.Equal(got[0], ip) || !bytes.Equal(got[1], lcp) {
		t.Fatalf("relay saw %d frames: %x", n, got)
	}
	if r.tun.count != tun || len(r.up.calls) != 0 {
		t.Fatalf("relayed frames also went to the TUN (%d) or up (%d)", r.tun.count-tun, len(r.up.calls))
	}
	if c, _ := r.e.Counters(key2); c.RxPackets != 2 || c.RxBytes != uint64(len(ip)+len(lcp)) {
		t.Fatalf("counters %+v", c)
	}
	pkt := v2Data(key2, ip)
	if a := testing.AllocsPerRun(1000, func() { r.e.receive(r.sock, pkt, lac, lnsAddr) }); a != 0 {
		t.Errorf("relayed receive: %v allocations", a)
	}
	// The session's checks still come first: a frame from another
	// address is dropped.
	before := n
	r.e.receive(r.sock, pkt, netip.MustParseAddrPort("198.51.100.99:1701"), lnsAddr)
	if n != before {
		t.Fatal("relayed a frame from the wrong peer")
	}
	r.e.SetRelay(key2, nil)
	r.e.receive(r.sock, pkt, lac, lnsAddr)
	if r.tun.count != tun+1 || n != before {
		t.Fatal("without the relay the IPv4 frame must reach the TUN")
	}
}

// SendFrameHeadroom writes the session's header in front of the frame in
// the caller's buffer and sends the same message SendFrame would build
// (RFC 2661 §3.1: the L2TP header, then FF 03 and the PPP frame); with
// too little headroom it falls back to copying.
func TestSendFrameHeadroom(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, func(s *Session) { s.Sequencing = true })
	lcp := []byte{0xc0, 0x21, 9, 1, 0, 8, 1, 2, 3, 4}
	if err := r.e.SendFrame(key2, lcp); err != nil {
		t.Fatal(err)
	}
	buf := append(make([]byte, 20), lcp...)
	if err := r.e.SendFrameHeadroom(key2, buf, 20); err != nil {
		t.Fatal(err)
	}
	short := append(make([]byte, 4), lcp...)
	if err := r.e.SendFrameHeadroom(key2, short, 4); err != nil {
		t.Fatal(err)
	}
	if len(r.io.sent) != 3 {
		t.Fatalf("%d sent", len(r.io.sent))
	}
	for i, m := range r.io.sent {
		h, frame, err := ParseV2(m.b)
		if err != nil || h.Tunnel != 7 || h.Session != 8 || !h.Sequenced || h.Ns != uint32(i) ||
			!bytes.Equal(frame, append([]byte{0xff, 0x03}, lcp...)) || m.to != lac {
			t.Errorf("message %d: %+v %x %v to %v", i, h, frame, err, m.to)
		}
	}
	// In place: the header was written into the caller's buffer.
	hl := len(r.io.sent[1].b) - len(lcp)
	if !bytes.Equal(buf[20-hl:], r.io.sent[1].b) {
		t.Errorf("headroom message %x, buffer %x", r.io.sent[1].b, buf)
	}
	if c, _ := r.e.Counters(key2); c.TxPackets != 3 || c.TxBytes != uint64(3*(len(lcp)-2)) {
		t.Errorf("counters %+v", c)
	}
	if err := r.e.SendFrameHeadroom(SessionKey{Version: 2, Tunnel: 9, Session: 9}, buf, 20); err == nil {
		t.Error("sent for a session not installed")
	}
}
