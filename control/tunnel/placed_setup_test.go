package tunnel

import (
	"fmt"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/wire"
)

// icrp answers the call the tunnel placed as sid, the peer taking
// peerSID for it.
func (c *scriptLAC) icrp(peerSID, sid uint32) {
	c.send(wire.MsgICRP, sid, func(b []byte) []byte {
		if c.v == 2 {
			return wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPAssignedSessionID, uint16(peerSID))
		}
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPLocalSessionID, peerSID)
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPRemoteSessionID, sid)
		return wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPCircuitStatus, circuitActive|circuitNew)
	})
}

// place makes the tunnel under test place an incoming call (ICRQ), as
// an initiating pseudowire does.
func (c *scriptLAC) place(pw uint16) uint32 {
	c.t.Helper()
	p := CallParams{Serial: 1, PseudowireType: pw}
	if pw == PseudowireEthernet {
		p.RemoteEndID = vc100
		p.PW = &PWParams{L2SS: L2SSDefault, Active: true}
	}
	id, err := c.lns.StartCall(c.now, p)
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

// RFC 2661 §7.4.1, RFC 3931 §3.4.1 and §7.3.1: the sender of an ICRQ
// waits in wait-reply for the ICRP. A peer that acknowledges the ICRQ
// but never answers it leaves the call there; the placer clears it with
// a CDN, result 10 (RFC 2661 §4.4.2), SetupTimeout after the ICRQ, not
// before and exactly once. The CDN carries our session ID only: the
// peer never assigned one.
func TestSetupTimeoutNoICRP(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    uint8
		pw   uint16
	}{{"v2", 2, 0}, {"v3-ppp", 3, PseudowirePPP}, {"v3-ethernet", 3, PseudowireEthernet}} {
		t.Run(tc.name, func(t *testing.T) {
			lc := setupCfg(tc.v, 30*time.Second)
			lc.Pseudowires = []uint16{PseudowirePPP, PseudowireEthernet}
			c := newScriptLAC(t, tc.v, lc)
			c.lns.Events()
			t1 := c.now
			id := c.place(tc.pw)
			c.at(t1)
			c.expectLog("LNS ICRQ")
			s := c.lns.Session(id)
			if s == nil || s.State != SessionWaitReply || !s.Initiator {
				t.Fatalf("placed call after ICRQ: %+v", s)
			}
			if tc.pw == PseudowireEthernet && !s.Pseudowire {
				t.Fatal("the Ethernet call is not a pseudowire")
			}
			if d := c.lns.Deadline(); !d.Equal(t1.Add(30 * time.Second)) {
				t.Fatalf("deadline %v, want the setup expiry %v", d, t1.Add(30*time.Second))
			}
			c.at(t1.Add(30*time.Second - time.Nanosecond))
			c.expectLog()
			if s.State != SessionWaitReply || c.lns.NumSessions() != 1 {
				t.Fatalf("call cleared early: %v, %d sessions", s.State, c.lns.NumSessions())
			}
			c.at(t1.Add(30 * time.Second))
			c.expectLog("LNS CDN")
			want := Result{Code: wire.CDNTimeout, Message: "no ICRP within 30s"}
			if len(c.cdns) != 1 || c.cdns[0].res != want || c.cdns[0].sid != id || c.cdns[0].peerSID != 0 {
				t.Fatalf("CDNs %+v, want one from session %#x to none with %+v", c.cdns, id, want)
			}
			if c.lns.NumSessions() != 0 {
				t.Fatal("the timed-out call is still held")
			}
			ev := c.lns.Events()
			if len(ev) != 1 || ev[0].Kind != SessionDown || ev[0].SessionID != id || ev[0].Result != want || ev[0].ByPeer {
				t.Fatalf("events %+v", ev)
			}
			if d := c.lns.Deadline(); !d.IsZero() && d.Before(t1.Add(60*time.Second)) {
				t.Fatalf("deadline %v after the call was cleared", d)
			}
			c.at(t1.Add(59 * time.Second))
			c.expectLog()
			// A late ICRP finds no call (RFC 2661 §7.4.1: idle, Receive
			// ICRP, clean up): no ICCN, no event.
			c.icrp(0x41, id)
			c.at(c.now)
			c.expectLog("LAC ICRP")
			if c.lns.NumSessions() != 0 || c.lns.Stats().UnknownSess != 1 || len(c.lns.Events()) != 0 || len(c.cdns) != 1 {
				t.Fatalf("late ICRP: %d sessions, stats %+v", c.lns.NumSessions(), c.lns.Stats())
			}
		})
	}
}

// RFC 2661 §7.4.1: an ICRP within the time allotted is answered with the
// ICCN and the call is up; no CDN follows and the deadline lets go of
// the expiry.
func TestSetupTimeoutICRPInTime(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			c := newScriptLAC(t, v, setupCfg(v, 30*time.Second))
			t1 := c.now
			id := c.place(0)
			c.at(t1)
			c.at(t1.Add(30*time.Second - time.Millisecond))
			c.icrp(0x42, id)
			c.at(c.now)
			c.expectLog("LNS ICRQ", "LAC ICRP", "LNS ICCN")
			s := c.lns.Session(id)
			if s == nil || s.State != SessionEstablished || s.PeerID != 0x42 {
				t.Fatalf("call after ICRP: %+v", s)
			}
			if d := c.lns.Deadline(); !d.IsZero() && !d.After(t1.Add(30*time.Second)) {
				t.Fatalf("deadline %v still holds the setup expiry", d)
			}
			c.at(t1.Add(50 * time.Second))
			c.expectLog()
			if len(c.cdns) != 0 || c.lns.NumSessions() != 1 {
				t.Fatalf("established call cleared: CDNs %+v", c.cdns)
			}
		})
	}
}

// An OCRP is no answer to an ICRQ (RFC 2661 §7.4.1 knows only ICRP in
// wait-reply): it is counted, the call stays in wait-reply and still
// expires at its deadline.
func TestSetupTimeoutOCRPToICRQ(t *testing.T) {
	c := newScriptLAC(t, 2, setupCfg(2, 10*time.Second))
	t1 := c.now
	id := c.place(0)
	c.at(t1)
	c.send(wire.MsgOCRP, id, func(b []byte) []byte {
		return wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPAssignedSessionID, 0x43)
	})
	c.at(t1.Add(time.Second))
	if s := c.lns.Session(id); s == nil || s.State != SessionWaitReply || c.lns.Stats().UnexpectedMsg != 1 {
		t.Fatalf("call after OCRP: %+v, stats %+v", s, c.lns.Stats())
	}
	if c.lns.awaiting != 1 || !c.lns.setupAt.Equal(t1.Add(10*time.Second)) {
		t.Fatalf("setup bookkeeping: %d calls, expiry %v", c.lns.awaiting, c.lns.setupAt)
	}
	c.at(t1.Add(10 * time.Second))
	if len(c.cdns) != 1 || c.cdns[0].sid != id || c.cdns[0].res.Code != wire.CDNTimeout {
		t.Fatalf("CDNs %+v", c.cdns)
	}
}

// Calls answered and calls placed share the bound: each expires at its
// own deadline with the message of its direction, and calls that came up
// in time in either direction are left alone.
func TestSetupTimeoutBothDirections(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			const timeout = 30 * time.Second
			c := newScriptLAC(t, v, setupCfg(v, timeout))
			t1 := c.now
			placed := map[string]uint32{}
			step := func(at time.Duration, f func()) {
				c.at(t1.Add(at))
				f()
				c.at(c.now)
			}
			step(0, func() { c.icrq(0x71) })
			step(3*time.Second, func() { placed["A"] = c.place(0) })
			step(5*time.Second, func() { c.icrq(0x72) })
			step(8*time.Second, func() { placed["B"] = c.place(0) })
			step(10*time.Second, func() { placed["C"] = c.place(0) })
			step(12*time.Second, func() { c.icrq(0x73) })
			step(15*time.Second, func() { c.icrp(0x4c, placed["C"]) })
			step(20*time.Second, func() { c.iccn(0x73, c.lnsSession(0x73).ID) })
			c.expectLog("LAC ICRQ", "LNS ICRP", "LNS ICRQ", "LAC ICRQ", "LNS ICRP", "LNS ICRQ", "LNS ICRQ",
				"LAC ICRQ", "LNS ICRP", "LAC ICRP", "LNS ICCN", "LAC ICCN")
			c.at(t1.Add(21 * time.Second)) // past the delayed ack of the ICCN
			if c.lns.awaiting != 4 {
				t.Fatalf("%d calls in setup, want 4", c.lns.awaiting)
			}
			for _, w := range []struct {
				at      time.Duration
				sid     uint32 // ours, for a placed call
				peerSID uint32 // the peer's, for an answered call
				msg     string
			}{
				{30 * time.Second, 0, 0x71, "no ICCN within 30s"},
				{33 * time.Second, placed["A"], 0, "no ICRP within 30s"},
				{35 * time.Second, 0, 0x72, "no ICCN within 30s"},
				{38 * time.Second, placed["B"], 0, "no ICRP within 30s"},
			} {
				exp := t1.Add(w.at)
				if d := c.lns.Deadline(); !d.Equal(exp) {
					t.Fatalf("deadline %v, want %v", d.Sub(t1), w.at)
				}
				n := len(c.cdns)
				c.at(exp.Add(-time.Nanosecond))
				if len(c.cdns) != n {
					t.Fatalf("CDN %+v before %v", c.cdns[n], w.at)
				}
				c.at(exp)
				if len(c.cdns) != n+1 {
					t.Fatalf("at %v: CDNs %+v", w.at, c.cdns[n:])
				}
				got := c.cdns[n]
				if got.res != (Result{Code: wire.CDNTimeout, Message: w.msg}) ||
					(w.peerSID != 0 && got.peerSID != w.peerSID) || (w.sid != 0 && (got.sid != w.sid || got.peerSID != 0)) {
					t.Fatalf("at %v: CDN %+v, want %+v", w.at, got, w)
				}
			}
			if c.lns.awaiting != 0 || !c.lns.setupAt.IsZero() {
				t.Fatalf("%d calls in setup, expiry %v", c.lns.awaiting, c.lns.setupAt)
			}
			c.at(t1.Add(58 * time.Second))
			if len(c.cdns) != 4 || c.lns.NumSessions() != 2 ||
				c.lns.Session(placed["C"]).State != SessionEstablished || c.lnsSession(0x73).State != SessionEstablished {
				t.Fatalf("CDNs %+v, %d sessions", c.cdns, c.lns.NumSessions())
			}
		})
	}
}
