package tunnel

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/wire"
)

// seqRand is a deterministic randomness source: transcripts repeat.
type seqRand struct{ n byte }

func (r *seqRand) Read(b []byte) (int, error) {
	for i := range b {
		r.n++
		b[i] = r.n
	}
	return len(b), nil
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// link joins two tunnels back to back with a hand-driven clock and a
// transcript of every message, so tests read like RFC ladder diagrams.
type link struct {
	t        *testing.T
	now      time.Time
	a, b     *Tunnel // a: initiator (LAC), b: responder (LNS)
	log      []string
	dropAtoB func(wire.MsgType) bool
	dropBtoA func(wire.MsgType) bool
	events   map[*Tunnel][]Event
	out      [][]byte
}

func cfg(version uint8, id uint32) Config {
	return Config{Version: version, LocalID: id, HostName: fmt.Sprintf("host%d", id), Rand: &seqRand{n: byte(id)}, Hello: 60 * time.Second}
}

func newLink(t *testing.T, ac, bc Config) *link {
	l := &link{t: t, now: t0, events: map[*Tunnel][]Event{}}
	l.a = NewInitiator(l.now, ac)
	l.b = NewResponder(l.now, bc)
	return l
}

func msgName(t *testing.T, p []byte) (wire.MsgType, string) {
	t.Helper()
	m, err := wire.ParseMessage(p, wire.EncapUDP, nil)
	if err != nil {
		t.Fatalf("tunnel sent an unparsable message: %v", err)
	}
	name := m.Type.String()
	if m.Type == wire.MsgZLB {
		name = "ZLB"
	}
	return m.Type, fmt.Sprintf("%s(ns=%d,nr=%d)", name, m.Header.Ns, m.Header.Nr)
}

// step delivers everything both sides want to send now, repeatedly,
// until quiet. The responder's first packet must be fed even though it
// has not seen the SCCRQ: Receive handles that.
func (l *link) step() {
	for i := 0; i < 50; i++ {
		moved := false
		for _, dir := range []struct {
			from, to *Tunnel
			tag      string
			drop     func(wire.MsgType) bool
		}{{l.a, l.b, "A>B", l.dropAtoB}, {l.b, l.a, "B>A", l.dropBtoA}} {
			l.out = dir.from.Poll(l.now, l.out[:0])
			l.events[dir.from] = append(l.events[dir.from], dir.from.Events()...)
			pkts := make([][]byte, len(l.out))
			for j, p := range l.out {
				pkts[j] = append([]byte(nil), p...)
			}
			for _, p := range pkts {
				typ, name := msgName(l.t, p)
				if dir.drop != nil && dir.drop(typ) {
					l.log = append(l.log, dir.tag+" "+name+" DROPPED")
					continue
				}
				l.log = append(l.log, dir.tag+" "+name)
				dir.to.Receive(l.now, p)
				moved = true
			}
			l.events[dir.to] = append(l.events[dir.to], dir.to.Events()...)
		}
		if !moved {
			return
		}
	}
	l.t.Fatal("link never went quiet")
}

// tick advances the clock to the next deadline of either side (bounded
// by d) and steps.
func (l *link) advance(d time.Duration) {
	end := l.now.Add(d)
	for i := 0; ; i++ {
		if i > 1000 {
			l.t.Fatalf("deadline stuck at %v", l.now)
		}
		next := earliest(l.a.Deadline(), l.b.Deadline())
		if next.IsZero() || next.After(end) {
			l.now = end
			l.step()
			return
		}
		if next.After(l.now) {
			l.now = next
		}
		l.step()
	}
}

func (l *link) transcript() string { return strings.Join(l.log, "\n") }

func (l *link) expectLog(want ...string) {
	l.t.Helper()
	got := l.log
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		l.t.Fatalf("transcript:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	l.log = nil
}

func kinds(ev []Event) []string {
	var s []string
	for _, e := range ev {
		s = append(s, e.Kind.String())
	}
	return s
}

func (l *link) expectEvents(tn *Tunnel, want ...string) {
	l.t.Helper()
	got := kinds(l.events[tn])
	if strings.Join(got, ",") != strings.Join(want, ",") {
		l.t.Fatalf("events %v, want %v", got, want)
	}
	l.events[tn] = nil
}

// RFC 2661 §5.1 and §7.2.1: SCCRQ, SCCRP, SCCCN, with the SCCCN
// acknowledged by a ZLB.
func TestEstablishV2(t *testing.T) {
	l := newLink(t, cfg(2, 100), cfg(2, 200))
	l.step()
	l.advance(time.Second)
	l.expectLog(
		"A>B SCCRQ(ns=0,nr=0)",
		"B>A SCCRP(ns=0,nr=1)",
		"A>B SCCCN(ns=1,nr=1)",
		"B>A ZLB(ns=1,nr=2)",
	)
	if l.a.State() != StateEstablished || l.b.State() != StateEstablished {
		t.Fatalf("states %v %v", l.a.State(), l.b.State())
	}
	if l.a.Peer().TunnelID != 200 || l.b.Peer().TunnelID != 100 {
		t.Fatalf("peer IDs %d %d", l.a.Peer().TunnelID, l.b.Peer().TunnelID)
	}
	if l.b.Peer().HostName != "host100" {
		t.Fatalf("peer host %q", l.b.Peer().HostName)
	}
	l.expectEvents(l.a, "tunnel-up")
	l.expectEvents(l.b, "tunnel-up")
}

func established(t *testing.T, ac, bc Config) *link {
	l := newLink(t, ac, bc)
	l.step()
	l.advance(time.Second)
	if l.a.State() != StateEstablished || l.b.State() != StateEstablished {
		t.Fatalf("not established: %v %v\n%s", l.a.State(), l.b.State(), l.transcript())
	}
	l.log = nil
	l.events = map[*Tunnel][]Event{}
	return l
}

// RFC 2661 §7.4.1: ICRQ, ICRP, ICCN; then CDN from the LAC (§5.6).
func TestIncomingCallAndCDN(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			l := established(t, cfg(v, 100), cfg(v, 200))
			proxy := &Proxy{InitialReceivedConfReq: []byte{1, 4, 5, 0xdc}, AuthenType: 3, AuthenName: []byte("user"), AuthenID: 7, AuthenResponse: []byte("pass")}
			id, err := l.a.StartCall(l.now, CallParams{Serial: 42, CallingNumber: "0123", Proxy: proxy, TxSpeed: 1000000})
			if err != nil {
				t.Fatal(err)
			}
			l.advance(time.Second)
			l.expectLog(
				"A>B ICRQ(ns=2,nr=1)",
				"B>A ICRP(ns=1,nr=3)",
				"A>B ICCN(ns=3,nr=2)",
				"B>A ZLB(ns=2,nr=4)",
			)
			var lns *Session
			l.b.Sessions(func(s *Session) { lns = s })
			if lns == nil || lns.State != SessionEstablished || lns.Serial != 42 || lns.CallingNumber != "0123" || lns.TxSpeed != 1000000 {
				t.Fatalf("LNS session %+v", lns)
			}
			if lns.PeerID != id || l.a.Session(id).PeerID != lns.ID {
				t.Fatalf("session IDs do not pair: %d/%d %d", lns.PeerID, id, l.a.Session(id).PeerID)
			}
			if v == 2 && (lns.Proxy == nil || string(lns.Proxy.AuthenName) != "user" || lns.Proxy.AuthenID != 7 || lns.Proxy.AuthenType != 3 || len(lns.Proxy.InitialReceivedConfReq) != 4) {
				t.Fatalf("proxy AVPs not kept: %+v", lns.Proxy)
			}
			if v == 3 && lns.Proxy != nil { // proxy AVPs are v2 only
				t.Fatalf("v3 call got proxy AVPs: %+v", lns.Proxy)
			}
			l.expectEvents(l.a, "session-up")
			l.expectEvents(l.b, "session-answered", "session-up")

			if err := l.a.CloseSession(l.now, id, Result{Code: wire.CDNLostCarrier}, &Disconnect{Code: 3, Protocol: 0xc021, Direction: 1, Message: "peer terminate"}); err != nil {
				t.Fatal(err)
			}
			l.advance(time.Second)
			l.expectLog("A>B CDN(ns=4,nr=2)", "B>A ZLB(ns=2,nr=5)")
			if l.b.NumSessions() != 0 || l.a.NumSessions() != 0 {
				t.Fatal("session survived CDN")
			}
			ev := l.events[l.b]
			if len(ev) != 1 || ev[0].Kind != SessionDown || !ev[0].ByPeer || ev[0].Result.Code != wire.CDNLostCarrier || ev[0].Cause == nil || ev[0].Cause.Message != "peer terminate" {
				t.Fatalf("LNS events %+v", ev)
			}
		})
	}
}

// RFC 2661 §7.4.2: OCRQ, OCRP, OCCN (LNS places the call).
func TestOutgoingCall(t *testing.T) {
	l := established(t, cfg(2, 100), cfg(2, 200))
	id, err := l.b.StartOutgoing(l.now, CallParams{Serial: 9, CalledNumber: "555"})
	if err != nil {
		t.Fatal(err)
	}
	l.advance(time.Second)
	l.expectLog(
		"B>A OCRQ(ns=1,nr=2)",
		"A>B OCRP(ns=2,nr=2)",
		"A>B OCCN(ns=3,nr=2)",
		"B>A ZLB(ns=2,nr=4)",
	)
	if s := l.b.Session(id); s == nil || s.State != SessionEstablished || s.Kind != Outgoing {
		t.Fatalf("LNS outgoing session %+v", s)
	}
}

// RFC 2661 §5.1.1: challenge/response both ways.
func TestChallengeAuth(t *testing.T) {
	ac, bc := cfg(2, 100), cfg(2, 200)
	ac.Secret, bc.Secret = []byte("s3cret"), []byte("s3cret")
	established(t, ac, bc)

	bc.Secret = []byte("other")
	l := newLink(t, ac, bc)
	l.step()
	l.advance(time.Second)
	// The LNS's SCCRP answers with the wrong secret: the LAC refuses it.
	if l.a.State() == StateEstablished || l.b.State() == StateEstablished {
		t.Fatalf("established with mismatched secrets:\n%s", l.transcript())
	}
	if r := l.a.CloseResult(); r.Code != wire.ResultNotAuthorized {
		t.Fatalf("close result %+v", r)
	}
	if !strings.Contains(l.transcript(), "A>B StopCCN") {
		t.Fatalf("no StopCCN sent:\n%s", l.transcript())
	}
}

// The responder challenges, the initiator has no secret: the LNS refuses
// the SCCCN's missing response with StopCCN result 4.
func TestChallengeWithoutResponse(t *testing.T) {
	ac, bc := cfg(2, 100), cfg(2, 200)
	bc.Secret = []byte("s3cret")
	l := newLink(t, ac, bc)
	l.step()
	l.advance(time.Second)
	if l.a.State() != StateClosing && l.a.State() != StateClosed {
		t.Fatalf("LAC not closed: %v\n%s", l.a.State(), l.transcript())
	}
	if l.b.CloseResult().Code != wire.ResultNotAuthorized && l.a.CloseResult().Code != wire.ResultNotAuthorized {
		t.Fatalf("results %+v %+v\n%s", l.a.CloseResult(), l.b.CloseResult(), l.transcript())
	}
}

// RFC 2661 §4.3: hidden AVPs sent by one side are read by the other.
func TestHiddenAVPs(t *testing.T) {
	ac, bc := cfg(2, 100), cfg(2, 200)
	ac.Secret, bc.Secret = []byte("s3cret"), []byte("s3cret")
	ac.HideAVPs, bc.HideAVPs = true, true
	// SCCRQ and SCCRP travel unhidden: their reader may not know the
	// secret yet (xl2tpd looks it up only after parsing the SCCRP).
	a := NewInitiator(t0, ac)
	b := NewResponder(t0, bc)
	sccrq := append([]byte(nil), a.Poll(t0, nil)[0]...)
	b.Receive(t0, sccrq)
	for _, p := range [][]byte{sccrq, b.Poll(t0, nil)[0]} {
		m, err := wire.ParseMessage(p, wire.EncapUDP, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, av := range m.AVPs {
			if av.Hidden {
				t.Fatalf("%v hides AVP %v", m.Type, av.Type)
			}
		}
	}
	l := established(t, ac, bc)
	id, err := l.a.StartCall(l.now, CallParams{Serial: 77})
	if err != nil {
		t.Fatal(err)
	}
	// Capture the ICRQ to check it really carries hidden AVPs.
	out := l.a.Poll(l.now, nil)
	m, err := wire.ParseMessage(out[0], wire.EncapUDP, nil)
	if err != nil {
		t.Fatal(err)
	}
	hidden := 0
	for _, a := range m.AVPs {
		if a.Hidden {
			hidden++
		}
	}
	if _, ok := m.Find(wire.VendorIETF, wire.AVPRandomVector); !ok || hidden < 2 {
		t.Fatalf("ICRQ not hidden: %d hidden AVPs", hidden)
	}
	l.b.Receive(l.now, append([]byte(nil), out[0]...))
	l.advance(time.Second)
	var lns *Session
	l.b.Sessions(func(s *Session) { lns = s })
	if lns == nil || lns.PeerID != id || lns.Serial != 77 || lns.State != SessionEstablished {
		t.Fatalf("LNS session %+v", lns)
	}
}

// RFC 2661 §5.8: retransmission with exponential backoff, then give up
// and tear the tunnel down.
func TestRetransmitGiveUp(t *testing.T) {
	l := newLink(t, cfg(2, 100), cfg(2, 200))
	l.dropAtoB = func(wire.MsgType) bool { return true }
	l.step()
	var at []time.Duration
	for i := 0; i < 10 && l.a.State() != StateClosed; i++ {
		next := l.a.Deadline()
		if next.IsZero() {
			break
		}
		l.now = next
		l.step()
		at = append(at, l.now.Sub(t0))
	}
	want := []time.Duration{1, 3, 7, 15, 23, 31}
	if len(at) != len(want) {
		t.Fatalf("deadlines %v\n%s", at, l.transcript())
	}
	for i := range want {
		if at[i] != want[i]*time.Second {
			t.Fatalf("deadline %d at %v, want %v (all %v)", i, at[i], want[i]*time.Second, at)
		}
	}
	if l.a.State() != StateClosed {
		t.Fatalf("state %v", l.a.State())
	}
	ev := l.events[l.a]
	if len(ev) == 0 || ev[len(ev)-1].Kind != TunnelDown || !ev[len(ev)-1].Timeout {
		t.Fatalf("events %+v", ev)
	}
	if n := strings.Count(l.transcript(), "SCCRQ(ns=0,nr=0) DROPPED"); n != 6 {
		t.Fatalf("%d SCCRQ copies, want 6 (1 + 5 retransmissions)\n%s", n, l.transcript())
	}
}

// RFC 2661 §6.5: Hello after the idle interval; an unanswered Hello
// brings the tunnel down.
func TestHello(t *testing.T) {
	l := established(t, cfg(2, 100), cfg(2, 200))
	// The last message the LNS heard was the SCCCN at t0; established()
	// left the clock at t0+1s.
	l.advance(58 * time.Second)
	if strings.Contains(l.transcript(), "HELLO") {
		t.Fatalf("hello too early:\n%s", l.transcript())
	}
	l.advance(2 * time.Second)
	tr := l.transcript()
	if !strings.Contains(tr, "B>A HELLO") || !strings.Contains(tr, "A>B ZLB") {
		t.Fatalf("no hello/ack:\n%s", tr)
	}
	l.log = nil
	// Peer goes silent: the Hello is retransmitted and the tunnel dies.
	l.dropBtoA = func(wire.MsgType) bool { return true }
	l.dropAtoB = func(wire.MsgType) bool { return true }
	l.advance(200 * time.Second)
	if l.a.State() != StateClosed || l.b.State() != StateClosed {
		t.Fatalf("states %v %v\n%s", l.a.State(), l.b.State(), l.transcript())
	}
}

// RFC 2661 §5.7: StopCCN in each state clears the tunnel; the receiver
// keeps acknowledging for one retransmission cycle.
func TestStopCCNInEveryState(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		// Initiator in wait-ctl-reply: responder refuses the SCCRQ.
		t.Run(fmt.Sprintf("v%d/wait-ctl-reply", v), func(t *testing.T) {
			a := NewInitiator(t0, cfg(v, 100))
			b := NewResponder(t0, cfg(v, 200))
			sccrq := append([]byte(nil), a.Poll(t0, nil)[0]...)
			b.Refuse(t0, sccrq, Result{Code: wire.ResultNotAuthorized})
			for _, p := range b.Poll(t0, nil) {
				a.Receive(t0, p)
			}
			if a.State() != StateClosing || a.CloseResult().Code != wire.ResultNotAuthorized {
				t.Fatalf("initiator %v %+v", a.State(), a.CloseResult())
			}
		})
		t.Run(fmt.Sprintf("v%d/wait-ctl-conn", v), func(t *testing.T) {
			a := NewInitiator(t0, cfg(v, 100))
			b := NewResponder(t0, cfg(v, 200))
			b.Receive(t0, append([]byte(nil), a.Poll(t0, nil)[0]...))
			sccrp := append([]byte(nil), b.Poll(t0, nil)[0]...)
			// The initiator gives up before it reads the SCCRP.
			a.Close(t0, Result{Code: wire.ResultGeneralError})
			a.Receive(t0, sccrp)
			for _, p := range a.Poll(t0, nil) {
				b.Receive(t0, p)
			}
			if b.State() != StateClosing || b.CloseResult().Code != wire.ResultGeneralError {
				t.Fatalf("responder %v %+v", b.State(), b.CloseResult())
			}
		})
		t.Run(fmt.Sprintf("v%d/established", v), func(t *testing.T) {
			l := established(t, cfg(v, 100), cfg(v, 200))
			if _, err := l.a.StartCall(l.now, CallParams{Serial: 1}); err != nil {
				t.Fatal(err)
			}
			l.step()
			l.events = map[*Tunnel][]Event{}
			l.b.Close(l.now, Result{Code: wire.ResultClearConnection})
			l.step()
			l.expectEvents(l.b, "session-down", "tunnel-down")
			l.expectEvents(l.a, "session-down", "tunnel-down")
			if l.a.State() != StateClosing {
				t.Fatalf("receiver %v", l.a.State())
			}
			// The sender is done once acknowledged; the receiver holds
			// for a retransmission cycle (31s with the defaults).
			l.advance(time.Second)
			if l.b.State() != StateClosed {
				t.Fatalf("sender %v", l.b.State())
			}
			l.advance(29 * time.Second)
			if l.a.State() != StateClosing {
				t.Fatalf("receiver left hold early")
			}
			l.advance(2 * time.Second)
			if l.a.State() != StateClosed {
				t.Fatalf("receiver %v after hold", l.a.State())
			}
		})
	}
}

// RFC 2661 §5.8: a message that arrives ahead of a lost one is held and
// processed in order once the gap fills (xl2tpd drops it instead).
func TestOutOfOrderHeld(t *testing.T) {
	l := newLink(t, cfg(2, 100), cfg(2, 200))
	l.dropAtoB = func(typ wire.MsgType) bool { return typ == wire.MsgSCCCN }
	l.step()
	l.dropAtoB = nil
	// The LAC thinks the tunnel is up and places a call at once.
	if _, err := l.a.StartCall(l.now, CallParams{Serial: 5}); err != nil {
		t.Fatal(err)
	}
	l.step() // ICRQ arrives before the SCCCN: held
	if l.b.State() != StateWaitCtlConn || l.b.NumSessions() != 0 {
		t.Fatalf("responder processed out of order: %v %d", l.b.State(), l.b.NumSessions())
	}
	l.advance(2 * time.Second) // SCCCN retransmitted: both delivered in order
	if l.b.State() != StateEstablished || l.b.NumSessions() != 1 {
		t.Fatalf("after retransmit: %v %d\n%s", l.b.State(), l.b.NumSessions(), l.transcript())
	}
	if st := l.b.Stats(); st.Reliable.OutOfOrder == 0 {
		t.Fatalf("out-of-order not counted: %+v", st.Reliable)
	}
}

// RFC 2661 §5.8: a duplicate (our ack was lost) is acknowledged again.
func TestDuplicateReacked(t *testing.T) {
	l := newLink(t, cfg(2, 100), cfg(2, 200))
	dropped := false
	l.dropBtoA = func(typ wire.MsgType) bool {
		if typ == wire.MsgZLB && !dropped {
			dropped = true
			return true
		}
		return false
	}
	l.step()
	l.advance(5 * time.Second)
	tr := l.transcript()
	if strings.Count(tr, "A>B SCCCN") != 2 || strings.Count(tr, "B>A ZLB") < 2 {
		t.Fatalf("duplicate SCCCN not re-acked:\n%s", tr)
	}
	if l.b.Stats().Reliable.Duplicates != 1 {
		t.Fatalf("duplicates %d", l.b.Stats().Reliable.Duplicates)
	}
	if l.a.State() != StateEstablished || l.b.State() != StateEstablished {
		t.Fatal("not established")
	}
}

// RFC 3931 §4.7.3: a v3 initiator refused with "unsupported protocol
// version" retries in v2.
func TestFallbackToV2(t *testing.T) {
	ac := cfg(3, 100)
	ac.Fallback = true
	a := NewInitiator(t0, ac)
	sccrq := append([]byte(nil), a.Poll(t0, nil)[0]...)
	if h, _, _ := wire.ParseHeader(sccrq, wire.EncapUDP); h.Version != 3 {
		t.Fatalf("first SCCRQ version %d", h.Version)
	}
	m, _ := wire.ParseMessage(sccrq, wire.EncapUDP, nil)
	if a, ok := m.Find(wire.VendorIETF, wire.AVPAssignedTunnelID); !ok || a.Mandatory {
		t.Fatalf("v3 SCCRQ lacks a non-mandatory Assigned Tunnel ID for v2 peers")
	}
	// A v2-only LNS answers with a StopCCN, result 5, to our tunnel ID.
	b := wire.AppendControlHeader(nil, wire.EncapUDP, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: 100, Nr: 1})
	b = wire.AppendMessageType(b, wire.MsgStopCCN)
	b = wire.AppendAVPUint16(b, true, 0, wire.AVPAssignedTunnelID, 7)
	b = wire.AppendResultCode(b, true, wire.ResultUnsupportedVersion, 2, "")
	wire.FinishControl(b, 0, wire.EncapUDP)
	a.Receive(t0, b)
	if ev := kinds(a.Events()); strings.Join(ev, ",") != "tunnel-fallback-v2" {
		t.Fatalf("events %v", ev)
	}
	out := a.Poll(t0, nil)
	if len(out) != 1 {
		t.Fatalf("%d packets after fallback", len(out))
	}
	if h, _, _ := wire.ParseHeader(out[0], wire.EncapUDP); h.Version != 2 || h.Ns != 0 {
		t.Fatalf("retry header %+v", h)
	}
	// And the v2 retry establishes with a v2 responder.
	l := &link{t: t, now: t0, a: a, b: NewResponder(t0, cfg(2, 200)), events: map[*Tunnel][]Event{}}
	l.b.Receive(t0, append([]byte(nil), out[0]...))
	l.step()
	l.advance(time.Second)
	if a.State() != StateEstablished || a.Version() != 2 {
		t.Fatalf("after fallback %v v%d\n%s", a.State(), a.Version(), l.transcript())
	}
}

// Each peer is answered in its own version (RFC 3931 §4.7.2).
func TestResponderAnswersInPeerVersion(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		a := NewInitiator(t0, cfg(v, 100))
		b := NewResponder(t0, cfg(2, 200)) // responder config version is only a default
		b.Receive(t0, append([]byte(nil), a.Poll(t0, nil)[0]...))
		out := b.Poll(t0, nil)
		h, _, err := wire.ParseHeader(out[0], wire.EncapUDP)
		if err != nil || h.Version != v {
			t.Fatalf("v%d SCCRQ answered with v%d (%v)", v, h.Version, err)
		}
	}
}

// RFC 2661 §4.1: an unknown AVP with the M bit set in a session message
// clears the session (CDN); without it, it is skipped.
func TestUnknownMandatoryAVP(t *testing.T) {
	l := established(t, cfg(2, 100), cfg(2, 200))
	mk := func(mandatory bool, ns uint16) []byte {
		b := wire.AppendControlHeader(nil, wire.EncapUDP, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: 200, Ns: ns, Nr: 1})
		b = wire.AppendMessageType(b, wire.MsgICRQ)
		b = wire.AppendAVPUint16(b, true, 0, wire.AVPAssignedSessionID, 0x55)
		b = wire.AppendAVPUint32(b, true, 0, wire.AVPCallSerialNumber, 1)
		b = wire.AppendAVP(b, mandatory, 0, 250, []byte("x"))
		wire.FinishControl(b, 0, wire.EncapUDP)
		return b
	}
	l.b.Receive(l.now, mk(false, 2))
	if l.b.NumSessions() != 1 {
		t.Fatal("ICRQ with an unknown optional AVP refused")
	}
	l.b.Receive(l.now, mk(true, 3))
	out := l.b.Poll(l.now, nil)
	found := false
	for _, p := range out {
		m, err := wire.ParseMessage(p, wire.EncapUDP, nil)
		if err == nil && m.Type == wire.MsgCDN {
			a, _ := m.Find(0, wire.AVPResultCode)
			r, e, _, _ := wire.ParseResultCode(a.Value)
			if r == wire.CDNGeneralError && e == wire.ErrCodeUnknownMandatory {
				found = true
			}
		}
	}
	if !found {
		t.Fatal("no CDN 2/8 for an unknown mandatory AVP")
	}
}

// RFC 2661 §4.4.3: the lower Tie Breaker wins.
func TestTieBreaker(t *testing.T) {
	a := NewInitiator(t0, cfg(2, 100))
	ours := a.TieBreakerValue()
	lower := append([]byte(nil), ours...)
	lower[7]--
	higher := append([]byte(nil), ours...)
	higher[7]++
	if !a.LosesTieBreak(lower) {
		t.Fatal("a lower peer value must win")
	}
	if a.LosesTieBreak(higher) {
		t.Fatal("a higher peer value must lose")
	}
	if a.LosesTieBreak(nil) {
		t.Fatal("no peer tie breaker: no tie")
	}
}

// RFC 3931 §4.3 and §5.4.1: with a secret, every v3 message carries a
// Message Digest keyed by the nonces, acks are explicit ACK messages,
// and a message that fails the check is dropped.
func TestV3MessageDigest(t *testing.T) {
	ac, bc := cfg(3, 100), cfg(3, 200)
	ac.Secret, bc.Secret = []byte("s3cret"), []byte("s3cret")
	l := newLink(t, ac, bc)
	l.step()
	l.advance(time.Second)
	l.expectLog(
		"A>B SCCRQ(ns=0,nr=0)",
		"B>A SCCRP(ns=0,nr=1)",
		"A>B SCCCN(ns=1,nr=1)",
		"B>A ACK(ns=1,nr=2)",
	)
	if l.a.State() != StateEstablished || l.b.State() != StateEstablished {
		t.Fatalf("states %v %v", l.a.State(), l.b.State())
	}
	// Every message the LAC sends verifies with the LNS's view of the nonces.
	if _, err := l.a.StartCall(l.now, CallParams{Serial: 3}); err != nil {
		t.Fatal(err)
	}
	out := l.a.Poll(l.now, nil)
	icrq := append([]byte(nil), out[0]...)
	if err := wire.VerifyDigestNonce(icrq, wire.EncapUDP, wire.DeriveAuthKey(bc.Secret), l.b.localNonce, l.b.remoteNonce); err != nil {
		t.Fatalf("ICRQ digest: %v", err)
	}
	// A tampered copy is dropped without touching the sequence state.
	bad := append([]byte(nil), icrq...)
	bad[len(bad)-1] ^= 1
	l.b.Receive(l.now, bad)
	if l.b.NumSessions() != 0 || l.b.Stats().BadAuth != 1 {
		t.Fatalf("tampered ICRQ accepted: sessions %d bad auth %d", l.b.NumSessions(), l.b.Stats().BadAuth)
	}
	l.b.Receive(l.now, icrq)
	if l.b.NumSessions() != 1 {
		t.Fatal("genuine ICRQ refused after a tampered one")
	}

	// Different secrets: the LNS drops the SCCRQ; nothing is established.
	bc.Secret = []byte("other")
	l = newLink(t, ac, bc)
	l.step()
	l.advance(40 * time.Second)
	if l.b.State() == StateEstablished || l.b.Stats().BadAuth == 0 {
		t.Fatalf("responder %v, bad auth %d\n%s", l.b.State(), l.b.Stats().BadAuth, l.transcript())
	}
	if l.a.State() != StateClosed {
		t.Fatalf("initiator %v after its SCCRQ went unanswered", l.a.State())
	}
}

// Both ends send StopCCN at once: each reports its tunnel down once.
func TestStopCCNCrossing(t *testing.T) {
	l := established(t, cfg(2, 100), cfg(2, 200))
	l.a.Close(l.now, Result{Code: wire.ResultClearConnection})
	l.b.Close(l.now, Result{Code: wire.ResultShuttingDown})
	l.advance(40 * time.Second)
	l.expectEvents(l.a, "tunnel-down")
	l.expectEvents(l.b, "tunnel-down")
	if l.a.State() != StateClosed || l.b.State() != StateClosed {
		t.Fatalf("states %v %v", l.a.State(), l.b.State())
	}
}

// RFC 3931 §4.7.3 with authentication configured: the v2-only peer's
// unsigned refusal still triggers the fallback.
func TestFallbackWithSecret(t *testing.T) {
	ac := cfg(3, 100)
	ac.Fallback, ac.Secret = true, []byte("s3cret")
	a := NewInitiator(t0, ac)
	a.Poll(t0, nil)
	b := wire.AppendControlHeader(nil, wire.EncapUDP, wire.Header{Control: true, HasLength: true, HasSeq: true, Version: 2, TunnelID: 100, Nr: 1})
	b = wire.AppendMessageType(b, wire.MsgStopCCN)
	b = wire.AppendAVPUint16(b, true, 0, wire.AVPAssignedTunnelID, 7)
	b = wire.AppendResultCode(b, true, wire.ResultUnsupportedVersion, 2, "")
	wire.FinishControl(b, 0, wire.EncapUDP)
	a.Receive(t0, b)
	if a.Version() != 2 || a.State() != StateWaitCtlReply {
		t.Fatalf("after refusal: v%d %v", a.Version(), a.State())
	}
}
