package reliable

import (
	"testing"
	"time"
)

// RFC 2661 §5.8: retransmit after 1s, then back off exponentially, capped
// at 8s; after 5 retransmissions without an ack the tunnel is cleared.
func TestRetransmitBackoffAndGiveUp(t *testing.T) {
	run(t, testConfig(), `
		send A
		poll A(ns0,nr0)
		deadline 1s
		at 999ms
		poll -
		at 1s
		poll A(ns0,nr0)        # retransmission 1, next wait 2s
		deadline 3s
		poll -                 # nothing more at the same instant
		at 3s
		poll A(ns0,nr0)        # 2, next wait 4s
		deadline 7s
		at 7s
		poll A(ns0,nr0)        # 3, next wait 8s
		deadline 15s
		at 15s
		poll A(ns0,nr0)        # 4, wait capped at 8s
		deadline 23s
		at 23s
		poll A(ns0,nr0)        # 5
		deadline 31s
		failed false
		at 30.999s
		poll -
		failed false
		at 31s
		poll -
		failed true
		deadline -
		stats sent=1 retx=5
		send B                 # a failed channel accepts nothing more
		at 60s
		poll -
		failed true
		state queue=1
	`)
}

// RFC 2661 §5.8: the cap is configurable; the backoff stops doubling there.
func TestBackoffCapAndMaxRetransmits(t *testing.T) {
	cfg := testConfig()
	cfg.RetransmitInitial = 500 * time.Millisecond
	cfg.RetransmitCap = 1500 * time.Millisecond
	cfg.MaxRetransmits = 2
	run(t, cfg, `
		send A
		poll A(ns0,nr0)
		deadline 500ms
		at 500ms
		poll A(ns0,nr0)
		deadline 1.5s          # 1s wait
		at 1.5s
		poll A(ns0,nr0)
		deadline 3s            # 2s wait capped to 1.5s
		at 3s
		poll -
		failed true
	`)
	if got := New(cfg).GiveUpAfter(); got != 3*time.Second {
		t.Errorf("GiveUpAfter = %v, want 3s", got)
	}
	if got := New(testConfig()).GiveUpAfter(); got != 31*time.Second {
		t.Errorf("default GiveUpAfter = %v, want 31s (1+2+4+8+8+8)", got)
	}
}

// An ack resets nothing but the acknowledged message: the channel does not
// fail while the peer keeps acknowledging, even if the total time spent
// exceeds one message's give-up time.
func TestAckStopsRetransmission(t *testing.T) {
	run(t, testConfig(), `
		send A
		poll A(ns0,nr0)
		at 1s
		poll A(ns0,nr0)
		at 2s
		recv zlb 1 -> AckOnly
		state idle=true inflight=0
		deadline -
		at 60s
		poll -
		failed false
		stats sent=1 retx=1 acked=1 zlbrecv=1
		heard 2s
	`)
}

// RFC 2661 §5.8: B may have at most N outstanding messages when A
// advertised a window of N; the next waits for an ack that advances the
// window.
func TestPeerWindowFull(t *testing.T) {
	cfg := testConfig()
	cfg.PeerWindow = 2
	run(t, cfg, `
		send A
		poll A(ns0,nr0)
		recv zlb 1 -> AckOnly   # CWND 1 → 2 = peer RWS
		stats cwnd=2 ssthresh=2
		send B
		send C
		send D
		poll B(ns1,nr0) C(ns2,nr0)
		state queue=3 inflight=2 nextns=4
		deadline 1s             # B and C time out; D cannot go
		tick 100ms
		poll -
		recv zlb 2 -> AckOnly   # B acknowledged: room for D
		deadline 100ms          # Poll is due at once
		poll D(ns3,nr0)
		recv zlb 4 -> AckOnly
		state idle=true
		stats cwnd=2            # never above the peer's RWS
	`)
}

// RFC 2661 Appendix A: CWND starts at 1 and SSTHRESH at the peer's RWS;
// each ack adds one below SSTHRESH (slow start), then one per CWND acks
// (congestion avoidance). A retransmission saves CWND/2 in SSTHRESH and
// sets CWND to 1.
func TestSlowStartAndCongestionAvoidance(t *testing.T) {
	cfg := testConfig()
	cfg.PeerWindow = 8
	c := New(cfg)
	now := t0
	var out [][]byte
	var acked uint16
	check := func(step string, cwnd, ssthresh uint16) {
		t.Helper()
		st := c.Stats()
		if st.CWND != cwnd || st.SSThresh != ssthresh {
			t.Fatalf("%s: CWND %d SSTHRESH %d, want %d %d", step, st.CWND, st.SSThresh, cwnd, ssthresh)
		}
	}
	// ackOne acknowledges the oldest message, then lets the channel
	// transmit whatever the window allows.
	ackOne := func() {
		t.Helper()
		acked++
		if r := c.Recv(now, 0, acked, true, nil); r != AckOnly {
			t.Fatalf("Recv = %v", r)
		}
		if st := c.Stats(); st.Acked != uint64(acked) || st.BadNr != 0 {
			t.Fatalf("ack %d: %d acked, %d bad", acked, st.Acked, st.BadNr)
		}
		out = c.Poll(now, out[:0])
	}
	check("start", 1, 8)
	for range 40 {
		c.Send(now, fakeMsg('M', 0, 0))
	}
	out = c.Poll(now, out[:0])
	if len(out) != 1 {
		t.Fatalf("CWND 1 sent %d messages", len(out))
	}
	// Slow start: 1 → 8 in seven acks, the window opening as it grows.
	for want := uint16(2); want <= 8; want++ {
		ackOne()
		check("slow start", want, 8)
		if c.InFlight() != int(want) {
			t.Fatalf("CWND %d but %d in flight", want, c.InFlight())
		}
	}
	// At the peer's RWS it stays.
	ackOne()
	check("capped", 8, 8)

	// Timeout of the oldest message: SSTHRESH = 8/2, CWND = 1, and only the
	// oldest is retransmitted.
	now = now.Add(time.Second)
	out = c.Poll(now, out[:0])
	check("after timeout", 1, 4)
	if len(out) != 1 || describe(out[0]) != "M(ns8,nr0)" {
		t.Fatalf("after timeout sent %d packets, first %s", len(out), describe(out[0]))
	}
	// The other messages in flight timed out too, but they belong to the
	// same loss: as acks reopen the window they are resent without
	// cutting it again.
	ackOne()
	check("slow start again", 2, 4)
	if len(out) != 2 || c.Stats().Retransmits != 3 {
		t.Fatalf("sent %d, %d retransmits; want 2 resent, 3 in all", len(out), c.Stats().Retransmits)
	}
	check("resent in recovery", 2, 4)
	ackOne()
	check("slow start", 3, 4)
	ackOne()
	check("reaches SSTHRESH", 4, 4)
	// Congestion avoidance: +1 after CWND (4) acks, then after 5.
	for i := range 3 {
		ackOne()
		check("avoidance "+string(rune('a'+i)), 4, 4)
	}
	ackOne()
	check("avoidance +1", 5, 4)
	for range 4 {
		ackOne()
		check("avoidance", 5, 4)
	}
	ackOne()
	check("avoidance +1", 6, 4)
}

// A retransmitted message that times out again is a new loss: SSTHRESH
// goes down to its floor of 1 (RFC 2661 Appendix A).
func TestRepeatedTimeoutCutsAgain(t *testing.T) {
	cfg := testConfig()
	cfg.PeerWindow = 4
	run(t, cfg, `
		send A
		poll A(ns0,nr0)
		recv zlb 1 -> AckOnly
		send B
		poll B(ns1,nr0)
		recv zlb 2 -> AckOnly
		stats cwnd=3 ssthresh=4
		send C
		poll C(ns2,nr0)
		tick 1s
		poll C(ns2,nr0)
		stats cwnd=1 ssthresh=1
		tick 2s
		poll C(ns2,nr0)
		stats cwnd=1 ssthresh=1
		recv zlb 3 -> AckOnly
		stats cwnd=2 ssthresh=1   # congestion avoidance with CWND 1: +1 after 1 ack
	`)
}

// SetPeerWindow after the SCCRP raises SSTHRESH (nothing lost yet) and
// caps CWND.
func TestSetPeerWindow(t *testing.T) {
	run(t, testConfig(), `
		stats cwnd=1 ssthresh=4
		peerwindow 16
		stats cwnd=1 ssthresh=16
		peerwindow 0               # invalid value: the RFC default
		stats ssthresh=4
		peerwindow 1
		stats cwnd=1 ssthresh=1
	`)
}

// RFC 2661 §5.8: out-of-order messages may be queued for in-order delivery.
// Held messages come back through Next, in order, once the gap fills.
func TestOutOfOrderHeldAndReleased(t *testing.T) {
	run(t, testConfig(), `
		recv 2 0 C -> Held
		recv 1 0 B -> Held
		state held=2 nextnr=0
		recv 2 0 C -> Duplicate    # already held
		next -                     # nothing in order yet
		poll ZLB(ns0,nr0)          # the duplicate is acked at once
		recv 0 0 A -> Deliver
		next B
		next C
		next -
		state held=0 nextnr=3
		deadline 250ms
		at 250ms
		poll ZLB(ns0,nr3)
		stats recv=3 ooo=2 dup=1 zlbsent=2
	`)
}

// A hole that fills while later messages are held releases only up to the
// next hole.
func TestHeldReleasedUpToNextGap(t *testing.T) {
	run(t, testConfig(), `
		recv 1 0 B -> Held
		recv 3 0 D -> Held
		recv 0 0 A -> Deliver
		next B
		next -
		state nextnr=2 held=1
		recv 2 0 C -> Deliver
		next D
		next -
		state nextnr=4 held=0
	`)
}

// RFC 2661 §5.8 and Appendix B.2: a duplicate means our ack was lost; it is
// acknowledged at once with a ZLB, and ignored.
func TestDuplicateReackedWithZLB(t *testing.T) {
	run(t, testConfig(), `
		recv 0 0 A -> Deliver
		at 250ms
		poll ZLB(ns0,nr1)          # this ZLB is lost
		at 1s
		recv 0 0 A -> Duplicate
		deadline 1s
		poll ZLB(ns0,nr1)
		stats dup=1 zlbsent=2 recv=1
		heard 1s
	`)
}

// RFC 2661 §5.8: with last received 15, Ns 0..15 and 32784..65535 are
// "less than or equal" (duplicates); anything beyond our receive window is
// dropped.
func TestSequenceHalfWindow(t *testing.T) {
	s := run(t, testConfig(), "")
	for ns := uint16(0); ns < 16; ns++ {
		if r := s.c.Recv(t0, ns, 0, false, fakeMsg('M', ns, 0)); r != Deliver {
			t.Fatalf("Recv ns %d = %v", ns, r)
		}
	}
	s.run(`
		state nextnr=16
		recv 0 0 X -> Duplicate
		recv 15 0 X -> Duplicate
		recv 32784 0 X -> Duplicate
		recv 65535 0 X -> Duplicate
		recv 32783 0 X -> OutOfWindow
		recv 20 0 X -> OutOfWindow  # 16 + RWS 4
		recv 19 0 X -> Held
		stats dup=4 oow=2 ooo=1
	`)
}

// Held slots are reused as the window slides: a released message never
// comes back.
func TestHeldSlotsReused(t *testing.T) {
	cfg := testConfig()
	cfg.ReceiveWindow = 2
	run(t, cfg, `
		recv 1 0 B -> Held
		recv 0 0 A -> Deliver
		next B
		next -
		recv 2 0 C -> Deliver
		next -
		recv 4 0 E -> Held
		recv 3 0 D -> Deliver
		next E
		next -
		recv 5 0 F -> Deliver
		next -
		recv 6 0 G -> Deliver
		next -
		state held=0 nextnr=7
	`)
}

// A caller that has not drained Next yet still gets the whole window:
// the message released by the gap stays held, in order, and the window
// slides past it.
func TestHeldWithoutNext(t *testing.T) {
	cfg := testConfig()
	cfg.ReceiveWindow = 2
	run(t, cfg, `
		recv 1 0 B -> Held
		recv 0 0 A -> Deliver      # B is now in order, not yet taken
		recv 1 0 B -> Duplicate
		recv 2 0 C -> Held
		state held=2 nextnr=1
		recv 3 0 D -> OutOfWindow
		next B
		next C
		next -
		state held=0 nextnr=3
	`)
}

// Messages too far ahead are dropped and do not count as heard.
func TestOutOfWindowDropped(t *testing.T) {
	cfg := testConfig()
	cfg.ReceiveWindow = 2
	run(t, cfg, `
		tick 5s
		recv 2 0 C -> OutOfWindow
		heard -
		state held=0
		deadline -
		recv 1 0 B -> Held
		recv 0 0 A -> Deliver
		next B
		recv 2 0 C -> Deliver
	`)
}

// A receive window of 1 holds nothing: everything but the next message is
// out of window (RFC 2661 §5.8 allows discarding).
func TestReceiveWindowOne(t *testing.T) {
	cfg := testConfig()
	cfg.ReceiveWindow = 1
	run(t, cfg, `
		recv 1 0 B -> OutOfWindow
		recv 0 0 A -> Deliver
		next -
		recv 1 0 B -> Deliver
	`)
}

// RFC 2661 §5.8: an ack may be piggybacked on a message in queue; only
// when none leaves within AckDelay does a ZLB carry it.
func TestDelayedZLBVersusPiggyback(t *testing.T) {
	run(t, testConfig(), `
		recv 0 0 A -> Deliver
		poll -                     # wait for a reply to carry the ack
		deadline 250ms
		at 100ms
		send B
		poll B(ns0,nr1)
		deadline 1.1s              # only B's retransmission: no ZLB owed
		at 250ms
		poll -
		recv 1 1 C -> Deliver
		at 500ms
		poll ZLB(ns1,nr2)          # nothing to piggyback on
		stats zlbsent=1 sent=1
	`)
}

// Flush sends the owed ack without waiting for AckDelay.
func TestFlush(t *testing.T) {
	s := run(t, testConfig(), `
		recv 0 0 A -> Deliver
		at 10ms
		poll -
	`)
	if !s.c.AckOwed() {
		t.Fatal("no ack owed after a delivered message")
	}
	out := s.c.Flush(s.now, nil)
	if len(out) != 1 || describe(out[0]) != "ZLB(ns0,nr1)" || s.c.AckOwed() {
		t.Fatalf("Flush sent %d packets, ack still owed: %v", len(out), s.c.AckOwed())
	}
	if out = s.c.Flush(s.now, out[:0]); len(out) != 0 {
		t.Fatalf("second Flush sent %s", describe(out[0]))
	}
}

// RFC 2661 §5.8: a retransmission keeps its Ns but carries the current Nr.
func TestRetransmissionCarriesCurrentNr(t *testing.T) {
	run(t, testConfig(), `
		send A
		poll A(ns0,nr0)
		at 500ms
		recv 0 0 X -> Deliver      # X does not acknowledge A
		at 1s
		poll A(ns0,nr1)            # the retransmission piggybacks the ack
		at 2s
		poll -
	`)
}

// RFC 2661 §5.8: Ns and Nr run modulo 65536.
func TestSequenceWrap(t *testing.T) {
	cfg := testConfig()
	cfg.PeerWindow = 4
	s := run(t, cfg, "")
	c := s.c
	var out [][]byte
	for i := 0; i < 65534; i++ {
		c.Send(t0, fakeMsg('M', 0, 0))
		out = c.Poll(t0, out[:0])
		if len(out) != 1 {
			t.Fatalf("message %d: %d packets", i, len(out))
		}
		ns := uint16(i)
		if r := c.Recv(t0, ns, ns+1, false, fakeMsg('M', ns, ns+1)); r != Deliver {
			t.Fatalf("Recv ns %d = %v", ns, r)
		}
	}
	s.run(`
		state nextns=65534 nextnr=65534 idle=true
		stats cwnd=4
		send A
		send B
		send C
		poll A(ns65534,nr65534) B(ns65535,nr65534) C(ns0,nr65534)
		recv zlb 65535 -> AckOnly
		state inflight=2
		recv zlb 1 -> AckOnly
		state idle=true nextns=1
		recv 65535 1 Y -> Held
		recv 0 1 Z -> Held
		recv 65534 1 X -> Deliver
		next Y
		next Z
		state nextnr=1
		recv 65535 1 Y -> Duplicate
		recv 0 1 Z -> Duplicate
		recv 32769 1 W -> Duplicate    # last received 0: 32769..65535 and 0 are "less or equal"
		recv 32768 1 W -> OutOfWindow
		stats badnr=0
	`)
}

// RFC 3931 §4.2: an Nr beyond the last Ns sent plus one is invalid; it
// acknowledges nothing, is counted, and the message is not heard.
func TestNrForUnsentIgnored(t *testing.T) {
	run(t, testConfig(), `
		send A
		send B
		poll A(ns0,nr0)            # CWND 1: B waits
		tick 100ms
		recv zlb 2 -> AckOnly      # B was never sent
		state inflight=1 queue=2
		stats badnr=1 acked=0 cwnd=1
		heard -
		recv zlb 9 -> AckOnly
		stats badnr=2
		recv zlb 0 -> AckOnly      # stale but sane
		heard 100ms
		recv zlb 1 -> AckOnly
		state inflight=0 queue=1
		stats badnr=2 acked=1
	`)
}

// An invalid Nr on a message still lets the message through: only the ack
// is ignored.
func TestBadNrOnMessage(t *testing.T) {
	run(t, testConfig(), `
		recv 0 5 A -> Deliver
		stats badnr=1 recv=1
		heard -
	`)
}

// Nr on a duplicate or held message still acknowledges ours.
func TestAckOnDuplicateAndHeld(t *testing.T) {
	run(t, testConfig(), `
		send A
		poll A(ns0,nr0)
		recv 0 0 X -> Deliver
		recv 2 0 Z -> Held
		recv 0 1 X -> Duplicate
		state idle=true
		send B
		poll B(ns1,nr1)
		recv 2 2 Z -> Duplicate    # still held, and acks B
		state idle=true
	`)
}

// RFC 2661 Appendix B.1, from the LNS side: SCCRQ in, SCCRP out with Nr 1,
// SCCCN in, ZLB out with Nr 2, Ns 1.
func TestAppendixB1(t *testing.T) {
	run(t, testConfig(), `
		recv 0 0 Q -> Deliver      # SCCRQ Nr 0, Ns 0
		send P
		poll P(ns0,nr1)            # SCCRP Nr 1, Ns 0
		tick 100ms
		recv 1 1 N -> Deliver      # SCCCN Nr 1, Ns 1
		state idle=true
		tick 250ms
		poll ZLB(ns1,nr2)          # ZLB Nr 2, Ns 1
	`)
}

// RFC 2661 Appendix B.2, from the LNS side: the ICRP is lost, the LAC's
// ICRQ retransmission is a duplicate acked by ZLB, then the ICRP goes again.
func TestAppendixB2(t *testing.T) {
	s := run(t, testConfig(), "")
	c := s.c
	// Reach Ns 1 / Nr 2 as in the example: one message each way acked,
	// and the LAC's Ns 1 received.
	c.Recv(t0, 0, 0, false, fakeMsg('Q', 0, 0))
	c.Send(t0, fakeMsg('P', 0, 0))
	c.Poll(t0, nil)
	c.Recv(t0, 1, 1, false, fakeMsg('N', 1, 1))
	c.Poll(t0.Add(time.Second), nil)
	s.run(`
		at 10s
		state nextns=1 nextnr=2
		recv 2 1 I -> Deliver      # ICRQ Nr 1, Ns 2
		send R
		poll R(ns1,nr3)            # ICRP Nr 3, Ns 1: lost
		at 10.5s
		recv 2 1 I -> Duplicate    # the LAC's timer fired first
		poll ZLB(ns2,nr3)
		at 11s
		poll R(ns1,nr3)            # our timer fires
		recv 3 2 C -> Deliver      # ICCN Nr 2, Ns 3
		state idle=true
		at 11.25s
		poll ZLB(ns2,nr4)
	`)
}

// The ZLB carries the Ns of the next new message even when messages wait
// behind the window.
func TestZLBNsWithQueuedMessages(t *testing.T) {
	run(t, testConfig(), `
		send A
		send B
		poll A(ns0,nr0)            # CWND 1: B waits
		recv 0 0 X -> Deliver
		at 250ms
		poll ZLB(ns1,nr1)          # B will be Ns 1
		recv zlb 1 -> AckOnly
		poll B(ns1,nr1)
	`)
}

// Without a usable ZLB template the owed ack is dropped rather than kept
// due forever; a later message still carries the Nr.
func TestNoZLBTemplate(t *testing.T) {
	cfg := testConfig()
	cfg.ZLB = nil
	s := run(t, cfg, `
		recv 0 0 A -> Deliver
		at 250ms
		poll -
		deadline -
		send B
		poll B(ns0,nr1)
	`)
	s.c.SetZLB(fakeZLB())
	s.run(`
		recv 1 1 C -> Deliver
		at 500ms
		poll ZLB(ns1,nr2)
	`)
}

// The Seal hook sees every packet after Ns and Nr are final.
func TestSealAfterPatch(t *testing.T) {
	cfg := testConfig()
	var sealed []string
	cfg.Seal = func(p []byte) { sealed = append(sealed, describe(p)) }
	run(t, cfg, `
		send A
		poll A(ns0,nr0)
		recv 0 0 X -> Deliver
		at 1s
		poll A(ns0,nr1)
		recv 0 0 X -> Duplicate
		poll ZLB(ns1,nr1)
	`)
	want := []string{"A(ns0,nr0)", "A(ns0,nr1)", "ZLB(ns1,nr1)"}
	if len(sealed) != len(want) {
		t.Fatalf("sealed %v, want %v", sealed, want)
	}
	for i := range want {
		if sealed[i] != want[i] {
			t.Fatalf("sealed %v, want %v", sealed, want)
		}
	}
}

// Send copies: the caller may reuse its buffer at once.
func TestSendCopies(t *testing.T) {
	c := New(testConfig())
	buf := fakeMsg('A', 0, 0)
	c.Send(t0, buf)
	buf[0] = 'Q'
	out := c.Poll(t0, nil)
	if len(out) != 1 || out[0][0] != 'A' {
		t.Fatalf("sent %q, want the copy of A", out)
	}
}

// The send ring grows past its initial size and keeps order across wrap.
func TestSendQueueGrowth(t *testing.T) {
	cfg := testConfig()
	cfg.PeerWindow = 3
	c := New(cfg)
	var out [][]byte
	next := uint16(0)
	names := "abcdefghijklmnopqrstuvwxyz"
	sent := 0
	for i := 0; i < len(names); i++ {
		c.Send(t0, fakeMsg(names[i], 0, 0))
		if i%3 == 2 {
			// ack everything sent so far, then let more go
			c.Recv(t0, 0, next, true, nil)
		}
		out = c.Poll(t0, out[:0])
		for _, p := range out {
			if want := names[sent]; p[0] != want {
				t.Fatalf("sent %s, want %c", describe(p), want)
			}
			sent++
			next++
		}
	}
	if c.QueueLen() != len(names)-int(c.Stats().Acked) {
		t.Fatalf("QueueLen %d, acked %d", c.QueueLen(), c.Stats().Acked)
	}
}

func TestRecvResultString(t *testing.T) {
	for r, want := range map[RecvResult]string{
		Deliver: "Deliver", Held: "Held", Duplicate: "Duplicate",
		OutOfWindow: "OutOfWindow", AckOnly: "AckOnly", 9: "RecvResult(9)",
	} {
		if got := r.String(); got != want {
			t.Errorf("%d: %q, want %q", r, got, want)
		}
	}
}

func TestSendShortPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Send of a message without room for Ns/Nr did not panic")
		}
	}()
	New(testConfig()).Send(t0, make([]byte, testOff+3))
}

// Steady state allocates nothing: an in-order message in, a reply out, an
// ack back (STYLE: no allocation on the packet path).
func TestSteadyStateAllocs(t *testing.T) {
	c := New(testConfig())
	out := make([][]byte, 0, 8)
	msg := fakeMsg('M', 0, 0)
	now := t0
	var ns uint16
	step := func() {
		now = now.Add(time.Millisecond)
		c.Recv(now, ns, ns, false, msg)
		c.Send(now, msg)
		out = c.Poll(now, out[:0])
		c.Recv(now, 0, ns+1, true, nil)
		_ = c.Deadline()
		ns++
	}
	for range 16 {
		step() // warm the send ring's buffers
	}
	if n := testing.AllocsPerRun(1000, step); n != 0 {
		t.Fatalf("%v allocations per message exchange, want 0", n)
	}
	if c.Stats().Received < 1000 {
		t.Fatalf("only %d messages received", c.Stats().Received)
	}
}

// BenchmarkExchange is one in-order message each way plus its ack.
func BenchmarkExchange(b *testing.B) {
	c := New(testConfig())
	out := make([][]byte, 0, 8)
	msg := fakeMsg('M', 0, 0)
	now := t0
	var ns uint16
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		c.Recv(now, ns, ns, false, msg)
		c.Send(now, msg)
		out = c.Poll(now, out[:0])
		c.Recv(now, 0, ns+1, true, nil)
		ns++
	}
}
