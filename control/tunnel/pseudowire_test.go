package tunnel

import (
	"bytes"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/wire"
)

// pwCfg is a v3 tunnel offering the Ethernet pseudowire types.
func pwCfg(id uint32) Config {
	c := cfg(3, id)
	c.Pseudowires = []uint16{PseudowireEthernet, PseudowireEthernetVLAN}
	return c
}

var vc100 = string([]byte{0, 0, 0, 100}) // a 4-octet Pseudowire ID (RFC 4719 §2.2)

func onlySession(tn *Tunnel) *Session {
	var out *Session
	tn.Sessions(func(s *Session) { out = s })
	return out
}

// RFC 3931 §5.4.4 and RFC 4719 §2.2: the ICRQ carries the Remote End ID,
// Pseudowire Type, Circuit Status (N set), Assigned Cookie, L2-Specific
// Sublayer and Data Sequencing; the ICRP answers with the responder's own
// cookie and sublayer; each side learns what the other requires.
func TestPseudowireEthernetNegotiation(t *testing.T) {
	ac, bc := pwCfg(100), pwCfg(200)
	var bound *Session
	bc.Bind = func(s *Session) (PWParams, *Result) {
		bound = s
		if s.PW.RemoteEndID != vc100 || s.PseudowireType != PseudowireEthernet {
			return PWParams{}, &Result{Code: wire.CDNGeneralError, Message: "no such pseudowire"}
		}
		return PWParams{Cookie: []byte{1, 2, 3, 4, 5, 6, 7, 8}, L2SS: L2SSDefault, Active: true}, nil
	}
	l := established(t, ac, bc)
	aCookie := []byte{0xa1, 0xa2, 0xa3, 0xa4}
	id, err := l.a.StartCall(l.now, CallParams{Serial: 1, PseudowireType: PseudowireEthernet, RemoteEndID: vc100,
		PW: &PWParams{Cookie: aCookie, L2SS: L2SSDefault, Sequencing: SequenceAll, Active: true}})
	if err != nil {
		t.Fatal(err)
	}
	aCookie[0] = 0 // the tunnel keeps its own copy
	l.advance(time.Second)
	l.expectLog(
		"A>B ICRQ(ns=2,nr=1)",
		"B>A ICRP(ns=1,nr=3)",
		"A>B ICCN(ns=3,nr=2)",
		"B>A ZLB(ns=2,nr=4)",
	)
	l.expectEvents(l.a, "session-up")
	l.expectEvents(l.b, "session-answered", "session-up")
	lac, lns := l.a.Session(id), onlySession(l.b)
	if bound == nil || lns == nil || !lns.Pseudowire || lns.State != SessionEstablished {
		t.Fatalf("responder session %+v", lns)
	}
	if !bytes.Equal(lns.PW.Remote.Cookie, []byte{0xa1, 0xa2, 0xa3, 0xa4}) || lns.PW.Remote.L2SS != L2SSDefault || lns.PW.Remote.Sequencing != SequenceAll || !lns.PW.Remote.Active || !lns.RemoteCircuitKnown() {
		t.Fatalf("responder learnt %+v", lns.PW.Remote)
	}
	if !bytes.Equal(lac.PW.Remote.Cookie, []byte{1, 2, 3, 4, 5, 6, 7, 8}) || lac.PW.Remote.L2SS != L2SSDefault || lac.PW.Remote.Sequencing != SequenceNone || !lac.PW.Remote.Active {
		t.Fatalf("initiator learnt %+v", lac.PW.Remote)
	}
	if !bytes.Equal(lac.PW.Local.Cookie, []byte{0xa1, 0xa2, 0xa3, 0xa4}) || !bytes.Equal(lns.PW.Local.Cookie, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("local cookies %x %x", lac.PW.Local.Cookie, lns.PW.Local.Cookie)
	}
}

// RFC 4719 §2.2: the Remote End ID picks the pseudowire; one the
// responder does not know is refused with the CDN its owner chose.
func TestPseudowireUnknownRemoteEnd(t *testing.T) {
	ac, bc := pwCfg(100), pwCfg(200)
	bc.Bind = func(s *Session) (PWParams, *Result) {
		return PWParams{}, &Result{Code: wire.CDNInvalidDest, Message: "no pseudowire for this Remote End ID"}
	}
	l := established(t, ac, bc)
	if _, err := l.a.StartCall(l.now, CallParams{Serial: 1, PseudowireType: PseudowireEthernet, RemoteEndID: "nope", PW: &PWParams{}}); err != nil {
		t.Fatal(err)
	}
	l.advance(time.Second)
	l.expectLog("A>B ICRQ(ns=2,nr=1)", "B>A CDN(ns=1,nr=3)", "A>B ZLB(ns=3,nr=2)")
	ev := l.events[l.a]
	if len(ev) != 1 || ev[0].Kind != SessionDown || ev[0].Result.Code != wire.CDNInvalidDest || !ev[0].ByPeer {
		t.Fatalf("initiator events %+v", ev)
	}
	if l.a.NumSessions() != 0 || l.b.NumSessions() != 0 {
		t.Fatal("refused call left a session")
	}
}

// RFC 3931 §5.4.4: sequencing requested without an L2-Specific Sublayer
// is refused with result 15, by the responder on ICRQ and by the
// initiator on ICRP.
func TestPseudowireSequencingWithoutSublayer(t *testing.T) {
	t.Run("ICRQ", func(t *testing.T) {
		ac, bc := pwCfg(100), pwCfg(200)
		called := false
		bc.Bind = func(s *Session) (PWParams, *Result) { called = true; return PWParams{}, nil }
		l := established(t, ac, bc)
		if _, err := l.a.StartCall(l.now, CallParams{PseudowireType: PseudowireEthernet, RemoteEndID: vc100, PW: &PWParams{Sequencing: SequenceAll}}); err != nil {
			t.Fatal(err)
		}
		l.advance(time.Second)
		l.expectLog("A>B ICRQ(ns=2,nr=1)", "B>A CDN(ns=1,nr=3)", "A>B ZLB(ns=3,nr=2)")
		if ev := l.events[l.a]; len(ev) != 1 || ev[0].Result.Code != wire.CDNSequencingNoSublayer {
			t.Fatalf("initiator events %+v", ev)
		}
		if called {
			t.Fatal("Bind asked about a call that must be refused")
		}
	})
	t.Run("ICRP", func(t *testing.T) {
		ac, bc := pwCfg(100), pwCfg(200)
		bc.Bind = func(s *Session) (PWParams, *Result) { return PWParams{Sequencing: SequenceNonIP}, nil }
		l := established(t, ac, bc)
		if _, err := l.a.StartCall(l.now, CallParams{PseudowireType: PseudowireEthernet, RemoteEndID: vc100, PW: &PWParams{}}); err != nil {
			t.Fatal(err)
		}
		l.advance(time.Second)
		l.expectLog("A>B ICRQ(ns=2,nr=1)", "B>A ICRP(ns=1,nr=3)", "A>B CDN(ns=3,nr=2)", "B>A ZLB(ns=2,nr=4)")
		if ev := l.events[l.a]; len(ev) != 1 || ev[0].Kind != SessionDown || ev[0].Result.Code != wire.CDNSequencingNoSublayer {
			t.Fatalf("initiator events %+v", ev)
		}
		if l.b.NumSessions() != 0 {
			t.Fatal("responder kept the refused session")
		}
	})
}

// RFC 3931 §5.4.4 and §6.6: a pseudowire type the responder did not
// advertise is refused with result 14.
func TestPseudowireTypeNotOffered(t *testing.T) {
	ac, bc := pwCfg(100), cfg(3, 200) // responder: PPP only
	bc.Bind = func(s *Session) (PWParams, *Result) { t.Fatal("Bind called"); return PWParams{}, nil }
	l := established(t, ac, bc)
	if _, err := l.a.StartCall(l.now, CallParams{PseudowireType: PseudowireEthernetVLAN, RemoteEndID: vc100, PW: &PWParams{}}); err != nil {
		t.Fatal(err)
	}
	l.advance(time.Second)
	l.expectLog("A>B ICRQ(ns=2,nr=1)", "B>A CDN(ns=1,nr=3)", "A>B ZLB(ns=3,nr=2)")
	if ev := l.events[l.a]; len(ev) != 1 || ev[0].Result.Code != wire.CDNUnsupportedPWType {
		t.Fatalf("initiator events %+v", ev)
	}
}

// RFC 3931 §5.4.5 and RFC 4719 §2.3.2: the ICRQ states an inactive
// circuit, and later changes go in an SLI with the N bit clear; an
// unchanged status sends nothing.
func TestPseudowireCircuitStatusSLI(t *testing.T) {
	ac, bc := pwCfg(100), pwCfg(200)
	bc.Bind = func(s *Session) (PWParams, *Result) { return PWParams{Active: true}, nil }
	l := established(t, ac, bc)
	id, err := l.a.StartCall(l.now, CallParams{PseudowireType: PseudowireEthernet, RemoteEndID: vc100, PW: &PWParams{Active: false}})
	if err != nil {
		t.Fatal(err)
	}
	l.advance(time.Second)
	lns := onlySession(l.b)
	if lns == nil || lns.PW == nil || lns.PW.Remote.Active || !lns.RemoteCircuitKnown() {
		t.Fatalf("responder session %+v", lns)
	}
	l.log, l.events = nil, map[*Tunnel][]Event{}

	if err := l.a.SetCircuitStatus(l.now, id, true); err != nil {
		t.Fatal(err)
	}
	l.advance(time.Second)
	l.expectLog("A>B SLI(ns=4,nr=2)", "B>A ZLB(ns=2,nr=5)")
	l.expectEvents(l.b, "session-link-info")
	if !lns.PW.Remote.Active {
		t.Fatal("SLI did not mark the circuit active")
	}
	if err := l.a.SetCircuitStatus(l.now, id, true); err != nil {
		t.Fatal(err)
	}
	l.advance(time.Second)
	l.expectLog()

	if err := l.b.SetCircuitStatus(l.now, lns.ID, false); err != nil {
		t.Fatal(err)
	}
	l.advance(time.Second)
	l.expectLog("B>A SLI(ns=2,nr=5)", "A>B ZLB(ns=5,nr=3)")
	if l.a.Session(id).PW.Remote.Active {
		t.Fatal("SLI did not mark the circuit inactive")
	}
	if err := l.a.SetCircuitStatus(l.now, 12345, false); err != ErrNoSession {
		t.Fatalf("unknown session: %v", err)
	}
}

// A v3 PPP call is untouched by the pseudowire negotiation: Bind is not
// asked and no sublayer is stated.
func TestPPPOverV3NotBound(t *testing.T) {
	ac, bc := cfg(3, 100), cfg(3, 200)
	bc.Bind = func(s *Session) (PWParams, *Result) { t.Fatal("Bind called for PPP"); return PWParams{}, nil }
	l := established(t, ac, bc)
	if _, err := l.a.StartCall(l.now, CallParams{Serial: 9}); err != nil {
		t.Fatal(err)
	}
	l.advance(time.Second)
	l.expectLog("A>B ICRQ(ns=2,nr=1)", "B>A ICRP(ns=1,nr=3)", "A>B ICCN(ns=3,nr=2)", "B>A ZLB(ns=2,nr=4)")
	if s := onlySession(l.b); s == nil || s.Pseudowire || s.PseudowireType != PseudowirePPP {
		t.Fatalf("PPP session %+v", s)
	}
}
