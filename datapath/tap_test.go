package datapath

import (
	"bytes"
	"net/netip"
	"testing"
)

// A capture tap sees a session's packets both ways while set, and
// nothing once cleared; other sessions are not tapped.
func TestTap(t *testing.T) {
	r := newRig(t, true, 8)
	r.installV2(t, nil)
	type seen struct {
		out bool
		pkt []byte
	}
	var got []seen
	if r.e.SetTap(SessionKey{Version: 2, Tunnel: 1, Session: 1}, func(bool, []byte, netip.AddrPort, netip.Addr) {}) {
		t.Fatal("tap set on a session that is not installed")
	}
	if !r.e.SetTap(key2, func(out bool, pkt []byte, peer netip.AddrPort, local netip.Addr) {
		if peer.Addr() != lac.Addr() || local != lnsAddr {
			t.Errorf("tap addresses %v %v", peer, local)
		}
		got = append(got, seen{out, append([]byte(nil), pkt...)})
	}) {
		t.Fatal("SetTap failed")
	}
	in := v2Data(key2, pppFrame(ProtoIPv4, icmpEcho(sub4, web4)))
	r.e.receive(r.sock, in, lac, lnsAddr)
	f := &tunForwarder{e: r.e}
	b, n := tunPacket(icmpEcho(web4, sub4))
	f.forward(b, n)
	f.flush()
	if err := r.e.SendFrame(key2, []byte{0xc0, 0x21, 9, 1, 0, 8, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].out || !bytes.Equal(got[0].pkt, in) || !got[1].out || !got[2].out {
		t.Fatalf("tap saw %d packets: %+v", len(got), got)
	}
	if !bytes.Equal(got[1].pkt, r.io.sent[0].b) {
		t.Fatal("the tapped downstream packet differs from the one sent")
	}
	r.e.SetTap(key2, nil)
	r.e.receive(r.sock, in, lac, lnsAddr)
	if len(got) != 3 {
		t.Fatal("tap still running after it was cleared")
	}
}
