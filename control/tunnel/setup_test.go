package tunnel

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/wire"
)

// scriptLAC drives an established responder tunnel with messages built
// by hand, keeping its own Ns and Nr, so that a test can leave out one
// message (the ICCN) without holding every later one behind the gap.
type scriptLAC struct {
	t   *testing.T
	lns *Tunnel
	v   uint8
	pw  uint16 // v3 pseudowire type of the calls placed
	now time.Time
	ns  uint16
	nr  uint16
	log []string
	// cdns are the CDNs the LNS sent, in order.
	cdns []sentCDN
}

type sentCDN struct {
	at      time.Time
	peerSID uint32 // the LAC's session ID the CDN is addressed to
	sid     uint32 // the LNS's session ID the CDN clears
	res     Result
}

// newScriptLAC establishes a tunnel with l.b as the LNS and takes over
// the LAC's side of it: l.a sends nothing after the SCCCN.
func newScriptLAC(t *testing.T, v uint8, lnsCfg Config) *scriptLAC {
	l := established(t, cfg(v, 100), lnsCfg)
	// The LAC sent SCCRQ (Ns 0) and SCCCN (Ns 1); the LNS its SCCRP (Ns 0).
	return &scriptLAC{t: t, lns: l.b, v: v, pw: PseudowirePPP, now: l.now, ns: 2, nr: 1}
}

// send delivers one message from the LAC; sid is the LNS's session ID
// (the v2 header's Session ID, v3's Remote Session ID).
func (c *scriptLAC) send(typ wire.MsgType, sid uint32, avps func([]byte) []byte) {
	h := wire.Header{Control: true, HasLength: true, HasSeq: true, Version: c.v, TunnelID: 200, Ns: c.ns, Nr: c.nr}
	if c.v == 2 {
		h.SessionID = sid
	}
	b := wire.AppendControlHeader(nil, wire.EncapUDP, h)
	if typ != wire.MsgZLB {
		b = wire.AppendMessageType(b, typ)
		b = avps(b)
		c.ns++
		c.log = append(c.log, fmt.Sprintf("LAC %v", typ))
	}
	wire.FinishControl(b, 0, wire.EncapUDP)
	c.lns.Receive(c.now, b)
}

// icrq places a call with the LAC's session ID lacSID.
func (c *scriptLAC) icrq(lacSID uint32) {
	c.send(wire.MsgICRQ, 0, func(b []byte) []byte {
		if c.v == 2 {
			b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPAssignedSessionID, uint16(lacSID))
			return wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPCallSerialNumber, lacSID)
		}
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPLocalSessionID, lacSID)
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPRemoteSessionID, 0)
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPCallSerialNumber, lacSID)
		b = wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPPseudowireType, c.pw)
		b = wire.AppendAVP(b, true, wire.VendorIETF, wire.AVPRemoteEndID, []byte(vc100))
		return wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPCircuitStatus, circuitActive|circuitNew)
	})
}

// iccn connects the call the LNS knows as lnsSID.
func (c *scriptLAC) iccn(lacSID, lnsSID uint32) {
	c.send(wire.MsgICCN, lnsSID, func(b []byte) []byte {
		if c.v == 2 {
			b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPTxConnectSpeed, 1000000)
			return wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPFramingType, 1)
		}
		b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPLocalSessionID, lacSID)
		return wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPRemoteSessionID, lnsSID)
	})
}

// at moves the clock to t, polls the LNS, records what it sent and
// acknowledges it (a ZLB), as a live LAC would, until the LNS has
// nothing more to send (its window opens as acknowledgements come).
func (c *scriptLAC) at(t time.Time) {
	c.t.Helper()
	if t.Before(c.now) {
		c.t.Fatalf("clock going back from %v to %v", c.now, t)
	}
	c.now = t
	for i := 0; ; i++ {
		if i > 100 {
			c.t.Fatal("the LNS never went quiet")
		}
		got := false
		for _, p := range c.lns.Poll(c.now, nil) {
			m, err := wire.ParseMessage(p, wire.EncapUDP, nil)
			if err != nil {
				c.t.Fatalf("LNS sent an unparsable message: %v", err)
			}
			if m.Type == wire.MsgZLB {
				continue
			}
			if m.Header.Ns != c.nr {
				c.t.Fatalf("LNS %v with Ns %d, want %d (a retransmission?)", m.Type, m.Header.Ns, c.nr)
			}
			c.nr++
			got = true
			c.log = append(c.log, fmt.Sprintf("LNS %v", m.Type))
			if m.Type == wire.MsgCDN {
				c.cdns = append(c.cdns, sentCDN{at: c.now, peerSID: cdnPeerSID(m, c.v), sid: peerSessionID(&m, c.v), res: readResult(&m)})
			}
		}
		if !got {
			return
		}
		c.send(wire.MsgZLB, 0, nil)
	}
}

// cdnPeerSID is the session a CDN clears at its receiver: the v2
// header's Session ID, v3's Remote Session ID AVP.
func cdnPeerSID(m wire.Message, v uint8) uint32 {
	if v == 2 {
		return m.Header.SessionID
	}
	a, _ := m.Find(wire.VendorIETF, wire.AVPRemoteSessionID)
	id, _ := a.Uint32()
	return id
}

func (c *scriptLAC) expectLog(want ...string) {
	c.t.Helper()
	if strings.Join(c.log, "\n") != strings.Join(want, "\n") {
		c.t.Fatalf("transcript:\n%s\nwant:\n%s", strings.Join(c.log, "\n"), strings.Join(want, "\n"))
	}
	c.log = nil
}

// lnsSession is the LNS's session for the LAC's session ID.
func (c *scriptLAC) lnsSession(lacSID uint32) *Session {
	var found *Session
	c.lns.Sessions(func(s *Session) {
		if s.PeerID == lacSID {
			found = s
		}
	})
	return found
}

func setupCfg(v uint8, timeout time.Duration) Config {
	c := cfg(v, 200)
	c.SetupTimeout = timeout
	return c
}

// RFC 2661 §7.4.1 and §7.4.2 (RFC 3931 §3.4.1): the LAC answers the ICRP
// with an ICCN. One that never does leaves the LNS in wait-connect; the
// LNS clears the call with a CDN, result 10 (§4.4.2: not established
// within the time allotted), when SetupTimeout has passed since the
// ICRQ, not before, and exactly once.
func TestSetupTimeoutNoICCN(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    uint8
		pw   uint16
	}{{"v2", 2, 0}, {"v3-ppp", 3, PseudowirePPP}, {"v3-ethernet", 3, PseudowireEthernet}} {
		t.Run(tc.name, func(t *testing.T) {
			lc := setupCfg(tc.v, 30*time.Second)
			if tc.pw == PseudowireEthernet {
				lc.Pseudowires = []uint16{PseudowirePPP, PseudowireEthernet}
				lc.Bind = func(s *Session) (PWParams, *Result) { return PWParams{L2SS: L2SSDefault, Active: true}, nil }
			}
			c := newScriptLAC(t, tc.v, lc)
			if tc.pw != 0 {
				c.pw = tc.pw
			}
			c.lns.Events()
			t1 := c.now
			if !c.lns.Deadline().IsZero() && c.lns.Deadline().Before(t1.Add(30*time.Second)) {
				t.Fatalf("an idle tunnel wakes at %v", c.lns.Deadline())
			}
			c.icrq(0x51)
			c.at(t1)
			c.expectLog("LAC ICRQ", "LNS ICRP")
			s := c.lnsSession(0x51)
			if s == nil || s.State != SessionWaitConnect {
				t.Fatalf("LNS session after ICRP: %+v", s)
			}
			if tc.pw == PseudowireEthernet && !s.Pseudowire {
				t.Fatal("the Ethernet call was not bound")
			}
			if d := c.lns.Deadline(); !d.Equal(t1.Add(30 * time.Second)) {
				t.Fatalf("deadline %v, want the setup expiry %v", d, t1.Add(30*time.Second))
			}
			// No ICCN. Just before the expiry nothing is sent.
			c.at(t1.Add(30*time.Second - time.Nanosecond))
			c.expectLog()
			if s.State != SessionWaitConnect || c.lns.NumSessions() != 1 {
				t.Fatalf("call cleared early: %v, %d sessions", s.State, c.lns.NumSessions())
			}
			c.at(t1.Add(30 * time.Second))
			c.expectLog("LNS CDN")
			want := Result{Code: wire.CDNTimeout, Message: "no ICCN within 30s"}
			if len(c.cdns) != 1 || c.cdns[0].res != want || c.cdns[0].peerSID != 0x51 {
				t.Fatalf("CDNs %+v, want one to session 0x51 with %+v", c.cdns, want)
			}
			if c.lns.NumSessions() != 0 {
				t.Fatal("the timed-out call is still held")
			}
			ev := c.lns.Events()
			if len(ev) != 2 || ev[0].Kind != SessionAnswered || ev[1].Kind != SessionDown || ev[1].SessionID != s.ID || ev[1].Result != want || ev[1].ByPeer {
				t.Fatalf("events %+v", ev)
			}
			// The CDN was acknowledged; nothing more is due for the call.
			if d := c.lns.Deadline(); !d.IsZero() && d.Before(t1.Add(60*time.Second)) {
				t.Fatalf("deadline %v after the call was cleared", d)
			}
			c.at(t1.Add(59 * time.Second))
			c.expectLog()
			if len(c.cdns) != 1 {
				t.Fatalf("%d CDNs", len(c.cdns))
			}
			// A late ICCN finds no call (RFC 2661 §7.4.2: idle, Receive
			// ICCN, clean up) and changes nothing.
			c.iccn(0x51, s.ID)
			c.at(c.now)
			if c.lns.NumSessions() != 0 || c.lns.Stats().UnknownSess != 1 || len(c.lns.Events()) != 0 {
				t.Fatalf("late ICCN: %d sessions, stats %+v", c.lns.NumSessions(), c.lns.Stats())
			}
		})
	}
}

// RFC 2661 §7.4.2: an ICCN within the time allotted establishes the
// call, and no CDN follows; with no call left in setup the tunnel's
// deadline no longer holds the expiry.
func TestSetupTimeoutICCNInTime(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			c := newScriptLAC(t, v, setupCfg(v, 30*time.Second))
			t1 := c.now
			c.icrq(0x61)
			c.at(t1)
			s := c.lnsSession(0x61)
			if s == nil {
				t.Fatal("ICRQ refused")
			}
			// The ICCN comes late, a second before the expiry.
			c.at(t1.Add(29 * time.Second))
			c.iccn(0x61, s.ID)
			c.at(c.now.Add(500 * time.Millisecond)) // past the delayed ack
			c.expectLog("LAC ICRQ", "LNS ICRP", "LAC ICCN")
			if s.State != SessionEstablished {
				t.Fatalf("state %v after ICCN", s.State)
			}
			if d := c.lns.Deadline(); !d.IsZero() && !d.After(t1.Add(30*time.Second)) {
				t.Fatalf("deadline %v still holds the setup expiry", d)
			}
			c.at(t1.Add(45 * time.Second))
			c.expectLog()
			if len(c.cdns) != 0 || s.State != SessionEstablished || c.lns.NumSessions() != 1 {
				t.Fatalf("established call cleared: CDNs %+v, %d sessions", c.cdns, c.lns.NumSessions())
			}
		})
	}
}

// Calls answered at different times expire each at its own deadline:
// the tunnel keeps only the earliest, and the scan at it finds the next.
// A call that came up in between is left alone, and so is a call the
// LAC cleared itself.
func TestSetupTimeoutEachAtItsDeadline(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			const timeout = 30 * time.Second
			c := newScriptLAC(t, v, setupCfg(v, timeout))
			t1 := c.now
			created := map[uint32]time.Duration{0x71: 0, 0x72: 5 * time.Second, 0x73: 7 * time.Second, 0x74: 12 * time.Second, 0x75: 20 * time.Second}
			for _, sid := range []uint32{0x71, 0x72, 0x73, 0x74, 0x75} {
				c.at(t1.Add(created[sid]))
				c.icrq(sid)
				c.at(c.now)
			}
			// 0x73 comes up; the LAC gives up on 0x75 itself (CDN).
			c.iccn(0x73, c.lnsSession(0x73).ID)
			c.send(wire.MsgCDN, c.lnsSession(0x75).ID, func(b []byte) []byte {
				b = wire.AppendResultCode(b, true, wire.CDNLostCarrier, 0, "")
				if v == 2 {
					return wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPAssignedSessionID, 0x75)
				}
				b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPLocalSessionID, 0x75)
				return wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPRemoteSessionID, c.lnsSession(0x75).ID)
			})
			c.at(c.now.Add(500 * time.Millisecond)) // past the delayed ack
			if c.lnsSession(0x73).State != SessionEstablished || c.lnsSession(0x75) != nil {
				t.Fatal("ICCN or CDN not taken")
			}
			c.lns.Events()
			c.log = nil
			for _, sid := range []uint32{0x71, 0x72, 0x74} {
				exp := t1.Add(created[sid] + timeout)
				if d := c.lns.Deadline(); !d.Equal(exp) {
					t.Fatalf("deadline %v, want %v (session %#x)", d.Sub(t1), exp.Sub(t1), sid)
				}
				n := len(c.cdns)
				c.at(exp.Add(-time.Nanosecond))
				if len(c.cdns) != n {
					t.Fatalf("CDN for %#x before %v", c.cdns[n].peerSID, exp.Sub(t1))
				}
				c.at(exp)
				if len(c.cdns) != n+1 || c.cdns[n].peerSID != sid || c.cdns[n].res.Code != wire.CDNTimeout {
					t.Fatalf("at %v: CDNs %+v, want one for %#x", exp.Sub(t1), c.cdns[n:], sid)
				}
			}
			if d := c.lns.Deadline(); !d.IsZero() && !d.After(t1.Add(50*time.Second)) {
				t.Fatalf("deadline %v with no call in setup", d.Sub(t1))
			}
			c.at(t1.Add(58 * time.Second))
			if len(c.cdns) != 3 || c.lns.NumSessions() != 1 || c.lnsSession(0x73).State != SessionEstablished {
				t.Fatalf("CDNs %+v, %d sessions", c.cdns, c.lns.NumSessions())
			}
			var downs []uint32
			for _, ev := range c.lns.Events() {
				if ev.Kind == SessionDown {
					downs = append(downs, ev.Session.PeerID)
				}
			}
			if fmt.Sprint(downs) != fmt.Sprint([]uint32{0x71, 0x72, 0x74}) {
				t.Fatalf("session-down for %x", downs)
			}
		})
	}
}

// Calls answered in the same instant expire together, one CDN each.
func TestSetupTimeoutSameInstant(t *testing.T) {
	c := newScriptLAC(t, 2, setupCfg(2, 10*time.Second))
	t1 := c.now
	for sid := uint32(0x81); sid <= 0x84; sid++ {
		c.icrq(sid)
	}
	c.at(t1)
	c.at(t1.Add(10 * time.Second))
	got := map[uint32]int{}
	for _, cdn := range c.cdns {
		got[cdn.peerSID]++
	}
	if len(c.cdns) != 4 || len(got) != 4 || c.lns.NumSessions() != 0 {
		t.Fatalf("CDNs %+v, %d sessions left", c.cdns, c.lns.NumSessions())
	}
}

// Without a SetupTimeout an answered call waits for its ICCN as long
// as the tunnel lives (the package's own default).
func TestNoSetupTimeout(t *testing.T) {
	c := newScriptLAC(t, 2, setupCfg(2, 0))
	t1 := c.now
	c.icrq(0x91)
	c.at(t1)
	if d := c.lns.Deadline(); !d.IsZero() && d.Before(t1.Add(59*time.Second)) {
		t.Fatalf("deadline %v without a setup timeout", d.Sub(t1))
	}
	for i := 1; i <= 10; i++ {
		c.at(t1.Add(time.Duration(i) * 50 * time.Second))
		c.send(wire.MsgHello, 0, func(b []byte) []byte { return b })
	}
	if s := c.lnsSession(0x91); s == nil || s.State != SessionWaitConnect || len(c.cdns) != 0 {
		t.Fatalf("call without a setup timeout: %+v, CDNs %+v", s, c.cdns)
	}
}

// Outgoing calls are not bounded here: an OCRQ the LAC answered with
// OCRP waits in wait-connect for the OCCN (its placer bounds it).
func TestSetupTimeoutLeavesOutgoingCalls(t *testing.T) {
	ac := cfg(2, 100)
	ac.RetransmitInitial, ac.RetransmitCap = time.Hour, time.Hour
	l := established(t, ac, setupCfg(2, 10*time.Second))
	l.dropAtoB = func(typ wire.MsgType) bool { return typ == wire.MsgOCCN }
	id, err := l.b.StartOutgoing(l.now, CallParams{Serial: 3, CalledNumber: "555"})
	if err != nil {
		t.Fatal(err)
	}
	l.advance(30 * time.Second)
	if s := l.b.Session(id); s == nil || s.State != SessionWaitConnect {
		t.Fatalf("outgoing call %+v", s)
	}
	if strings.Contains(l.transcript(), "CDN") {
		t.Fatalf("outgoing call cleared:\n%s", l.transcript())
	}
}

// A long random mix of calls both ways (ICRQs received and placed),
// ICCNs, ICRPs, CDNs either way and clock steps keeps the tunnel's
// bookkeeping true: the count of calls in setup is exact, the kept
// expiry is never later than the earliest real one (so no call outlives
// its bound), and every CDN 10 clears a call at least SetupTimeout old.
func TestSetupTimeoutBookkeeping(t *testing.T) {
	const timeout = 20 * time.Second
	for _, v := range []uint8{2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			lc := setupCfg(v, timeout)
			// Session IDs from a source with a long period: the calls
			// that stay up would use up those of the short test source.
			lc.Rand = rand.NewChaCha8([32]byte{v})
			c := newScriptLAC(t, v, lc)
			rng := rand.New(rand.NewPCG(uint64(v), 7))
			answered := map[uint32]time.Time{} // by the LAC's session ID
			placed := map[uint32]time.Time{}   // by our session ID
			// pick chooses one of the tunnel's calls that match, in a
			// repeatable order.
			pick := func(match func(*Session) bool) *Session {
				var live []*Session
				c.lns.Sessions(func(s *Session) {
					if match(s) {
						live = append(live, s)
					}
				})
				if len(live) == 0 {
					return nil
				}
				slices.SortFunc(live, func(a, b *Session) int { return int(a.ID) - int(b.ID) })
				return live[rng.IntN(len(live))]
			}
			any := func(*Session) bool { return true }
			waitICCN := func(s *Session) bool { return !s.Initiator && s.State == SessionWaitConnect }
			waitICRP := func(s *Session) bool { return s.Initiator && s.State == SessionWaitReply }
			seen, outgoing, incoming := 0, 0, 0
			for step := 0; step < 3000; step++ {
				switch op := rng.IntN(14); {
				case op < 3:
					sid := uint32(0x1000 + step)
					c.icrq(sid)
					answered[sid] = c.now
				case op < 5:
					id, err := c.lns.StartCall(c.now, CallParams{Serial: uint32(step)})
					if err != nil {
						t.Fatal(err)
					}
					placed[id] = c.now
				case op < 7:
					if s := pick(waitICCN); s != nil {
						c.iccn(s.PeerID, s.ID)
					}
				case op == 7:
					if s := pick(waitICRP); s != nil {
						c.icrp(uint32(0x8000+step), s.ID)
					}
				case op == 8:
					if s := pick(any); s != nil {
						peerSID := s.PeerID
						c.send(wire.MsgCDN, s.ID, func(b []byte) []byte {
							b = wire.AppendResultCode(b, true, wire.CDNLostCarrier, 0, "")
							if v == 2 {
								return wire.AppendAVPUint16(b, true, wire.VendorIETF, wire.AVPAssignedSessionID, uint16(peerSID))
							}
							b = wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPLocalSessionID, peerSID)
							return wire.AppendAVPUint32(b, true, wire.VendorIETF, wire.AVPRemoteSessionID, s.ID)
						})
					}
				case op == 9:
					if s := pick(any); s != nil {
						if err := c.lns.CloseSession(c.now, s.ID, Result{Code: wire.CDNAdmin}, nil); err != nil {
							t.Fatal(err)
						}
					}
				default:
					// Sometimes straight to the tunnel's deadline.
					next := c.now.Add(time.Duration(rng.IntN(8000)) * time.Millisecond)
					if d := c.lns.Deadline(); rng.IntN(2) == 0 && d.After(c.now) {
						next = d
					}
					c.now = next
				}
				c.at(c.now)
				// Each CDN 10 clears a call at least SetupTimeout old,
				// checked as it is sent: our session IDs are reused.
				for ; seen < len(c.cdns); seen++ {
					cdn := c.cdns[seen]
					if cdn.res.Code != wire.CDNTimeout {
						continue
					}
					created, ok := answered[cdn.peerSID]
					if strings.HasPrefix(cdn.res.Message, "no ICRP") {
						created, ok = placed[cdn.sid]
						outgoing++
					} else {
						incoming++
					}
					if age := cdn.at.Sub(created); !ok || age < timeout {
						t.Fatalf("step %d: %+v cleared a call %v old (known %v)", step, cdn, age, ok)
					}
				}
				waiting := 0
				var first time.Time
				c.lns.Sessions(func(s *Session) {
					if !waitICCN(s) && !waitICRP(s) {
						return
					}
					waiting++
					exp := s.Created.Add(timeout)
					if !c.now.Before(exp) {
						t.Fatalf("step %d: call %#x waits past its expiry %v", step, s.ID, exp)
					}
					first = earliest(first, exp)
				})
				if waiting != c.lns.awaiting {
					t.Fatalf("step %d: %d calls in setup, the tunnel counts %d", step, waiting, c.lns.awaiting)
				}
				if waiting > 0 && (c.lns.setupAt.IsZero() || c.lns.setupAt.After(first) || c.lns.Deadline().After(first)) {
					t.Fatalf("step %d: kept expiry %v, deadline %v, earliest call's %v", step, c.lns.setupAt, c.lns.Deadline(), first)
				}
				if waiting == 0 && !c.lns.setupAt.IsZero() {
					t.Fatalf("step %d: expiry %v kept with no call waiting", step, c.lns.setupAt)
				}
			}
			if incoming == 0 || outgoing == 0 {
				t.Fatalf("timed out in the run: %d answered calls, %d placed (%d CDNs)", incoming, outgoing, len(c.cdns))
			}
			t.Logf("%d CDNs, %d answered and %d placed calls timed out", len(c.cdns), incoming, outgoing)
		})
	}
}
