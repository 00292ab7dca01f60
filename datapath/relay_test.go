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
