package ppp

import (
	"bytes"
	"math"
	"time"
)

// State is a state of the option negotiation automaton (RFC 1661 §4.2).
type State uint8

// States in the order of RFC 1661 §4.1.
const (
	StateInitial State = iota
	StateStarting
	StateClosed
	StateStopped
	StateClosing
	StateStopping
	StateReqSent
	StateAckRcvd
	StateAckSent
	StateOpened
)

var stateNames = [...]string{"Initial", "Starting", "Closed", "Stopped", "Closing", "Stopping", "Req-Sent", "Ack-Rcvd", "Ack-Sent", "Opened"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(?)"
}

// FSMEvent is an event of the automaton (RFC 1661 §4.3).
type FSMEvent uint8

// Events in the order of RFC 1661 §4.1.
const (
	EvUp FSMEvent = iota
	EvDown
	EvOpen
	EvClose
	EvTOPlus
	EvTOMinus
	EvRCRPlus
	EvRCRMinus
	EvRCA
	EvRCN
	EvRTR
	EvRTA
	EvRUC
	EvRXJPlus
	EvRXJMinus
	EvRXR
)

var eventNames = [...]string{"Up", "Down", "Open", "Close", "TO+", "TO-", "RCR+", "RCR-", "RCA", "RCN", "RTR", "RTA", "RUC", "RXJ+", "RXJ-", "RXR"}

func (e FSMEvent) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return "Event(?)"
}

// Timers are the restart timer and counters of RFC 1661 §4.6.
type Timers struct {
	Restart      time.Duration // default 3s
	MaxTerminate int           // default 2
	MaxConfigure int           // default 10
	MaxFailure   int           // default 5
}

func (t Timers) withDefaults() Timers {
	if t.Restart <= 0 {
		t.Restart = 3 * time.Second
	}
	if t.MaxTerminate <= 0 {
		t.MaxTerminate = 2
	}
	if t.MaxConfigure <= 0 {
		t.MaxConfigure = 10
	}
	if t.MaxFailure <= 0 {
		t.MaxFailure = 5
	}
	return t
}

// timers are the Timers a Session keeps: defaults applied, counters in
// 32 bits. A counter above 2^31-1 would outlast any link, so clamping
// it changes nothing a peer could see.
type timers struct {
	restart                                time.Duration
	maxTerminate, maxConfigure, maxFailure int32
	// echoFailures is Config.EchoFailures, kept here where it packs.
	echoFailures int32
}

func (t Timers) compact(echoFailures int) timers {
	t = t.withDefaults()
	return timers{restart: t.Restart, maxTerminate: clamp32(t.MaxTerminate), maxConfigure: clamp32(t.MaxConfigure),
		maxFailure: clamp32(t.MaxFailure), echoFailures: clamp32(echoFailures)}
}

func clamp32(v int) int32 {
	if v > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(v)
}

// layer is what a protocol (LCP, IPCP, IPv6CP) plugs into the automaton:
// its options and the this-layer actions of RFC 1661 §4.4.
type layer interface {
	// appendRequest appends the options of our next Configure-Request.
	appendRequest(b []byte) []byte
	// checkRequest judges the peer's options and appends the reply
	// options: all of them for an Ack, the Nak'd or Rejected ones
	// otherwise. nakAllowed is false once Max-Failure Naks were sent
	// (RFC 1661 §4.6): what would be Nak'd is then Rejected.
	checkRequest(opts, reply []byte, nakAllowed bool) (code uint8, out []byte)
	// gotAck commits the options of our acknowledged request.
	gotAck(opts []byte)
	// gotNak and gotReject adjust our next request; false means the
	// packet is invalid and is discarded.
	gotNak(opts []byte) bool
	gotReject(opts []byte) bool
	up(now time.Time)
	down(now time.Time)
	started(now time.Time)
	finished(now time.Time)
	// extraCode handles codes beyond 7 (LCP's); false means unknown.
	extraCode(now time.Time, p Packet) bool
	// session is the Session whose link and timers the automaton uses.
	session() *Session
}

// maxRequest is the longest Configure-Request option list the engine
// sends: IPCP's IP-Address and two name servers (3 x 6 octets); LCP's
// MRU, Authentication-Protocol and Magic-Number take 15.
const maxRequest = 18

// fsm is the option negotiation automaton of RFC 1661 §4, shared by LCP
// and the NCPs. It never reads the clock: the restart timer is a deadline
// the owner checks with tick. It lives inside its Session, which one
// hundred thousand subscribers multiply: fields are packed.
type fsm struct {
	l layer

	deadline time.Time // restart timer expiry
	restart  int32     // restart counter
	failures int32     // Configure-Naks sent since the last Ack sent
	proto    Protocol
	state    State
	timerOn  bool // restart timer running
	nextID   uint8
	reqID    uint8 // identifier of our last Configure-Request
	replyID  uint8
	code     uint8 // code of the prepared reply
	reqLen   uint8
	// req holds the options of our last Configure-Request, which an
	// Ack must repeat (RFC 1661 §5.2).
	req [maxRequest]byte
}

func (f *fsm) init(proto Protocol, l layer) {
	*f = fsm{proto: proto, l: l}
}

func (f *fsm) out() *link { return &f.l.session().link }

func (f *fsm) timers() *timers { return &f.l.session().cfg.timers }

// Deadline returns the restart timer's expiry.
func (f *fsm) Deadline() (time.Time, bool) { return f.deadline, f.timerOn }

func (f *fsm) setState(s State) { f.state = s }

// irc initializes the restart counter for Configure or Terminate.
func (f *fsm) irc(terminate bool) {
	if terminate {
		f.restart = f.timers().maxTerminate
	} else {
		f.restart = f.timers().maxConfigure
		f.failures = 0
	}
}

func (f *fsm) startTimer(now time.Time) {
	f.timerOn = true
	f.deadline = now.Add(f.timers().restart)
}

// request returns the options of our last Configure-Request.
func (f *fsm) request() []byte { return f.req[:f.reqLen] }

func (f *fsm) stopTimer() { f.timerOn = false }

func (f *fsm) scr(now time.Time) {
	f.nextID++
	f.reqID = f.nextID
	// The layers never ask for more than maxRequest octets (a test
	// checks each one's longest request), so this appends in place.
	f.reqLen = uint8(copy(f.req[:], f.l.appendRequest(f.req[:0])))
	f.out().send(f.proto, CodeConfigureRequest, f.reqID, f.request())
	f.restart--
	f.startTimer(now)
}

func (f *fsm) str(now time.Time) {
	f.nextID++
	f.out().send(f.proto, CodeTerminateRequest, f.nextID, nil)
	f.restart--
	f.startTimer(now)
}

func (f *fsm) sca(reply []byte) {
	f.failures = 0
	f.out().send(f.proto, CodeConfigureAck, f.replyID, reply)
}

func (f *fsm) scn(reply []byte) {
	if f.code == CodeConfigureNak {
		f.failures++
	}
	f.out().send(f.proto, f.code, f.replyID, reply)
}

func (f *fsm) sta(id uint8) { f.out().send(f.proto, CodeTerminateAck, id, nil) }

// scj sends a Code-Reject holding as much of the rejected packet as fits
// (RFC 1661 §5.6).
func (f *fsm) scj(raw []byte) {
	f.nextID++
	if max := f.out().maxInfo() - 4; len(raw) > max {
		raw = raw[:max]
	}
	f.out().send(f.proto, CodeCodeReject, f.nextID, raw)
}

func (f *fsm) tlu(now time.Time) { f.l.up(now) }
func (f *fsm) tld(now time.Time) { f.l.down(now) }
func (f *fsm) tls(now time.Time) { f.l.started(now) }
func (f *fsm) tlf(now time.Time) { f.stopTimer(); f.l.finished(now) }

// Up, Down, Open and Close are the administrative events.
func (f *fsm) Up(now time.Time)    { f.event(now, EvUp, 0, nil) }
func (f *fsm) Down(now time.Time)  { f.event(now, EvDown, 0, nil) }
func (f *fsm) Open(now time.Time)  { f.event(now, EvOpen, 0, nil) }
func (f *fsm) Close(now time.Time) { f.event(now, EvClose, 0, nil) }

// tick delivers TO+ or TO- when the restart timer has expired.
func (f *fsm) tick(now time.Time) {
	if !f.timerOn || now.Before(f.deadline) {
		return
	}
	f.timerOn = false
	if f.restart > 0 {
		f.event(now, EvTOPlus, 0, nil)
	} else {
		f.event(now, EvTOMinus, 0, nil)
	}
}

// input handles one control packet of this protocol; raw is the whole
// packet for Code-Reject.
func (f *fsm) input(now time.Time, p Packet, raw []byte) {
	switch p.Code {
	case CodeConfigureRequest:
		if ValidOptions(p.Data) != nil {
			return
		}
		f.replyID = p.ID
		// The reply is built in a buffer borrowed for this call: it is
		// sent (copied into the Output) by the transition or not at all.
		buf := getScratch()
		var reply []byte
		f.code, reply = f.l.checkRequest(p.Data, *buf, f.failures < f.timers().maxFailure)
		if f.code == CodeConfigureAck {
			f.event(now, EvRCRPlus, p.ID, reply)
		} else {
			f.event(now, EvRCRMinus, p.ID, reply)
		}
		putScratch(buf, reply)
	case CodeConfigureAck:
		if p.ID != f.reqID || !bytes.Equal(p.Data, f.request()) {
			return // RFC 1661 §5.2: invalid Acks are silently discarded
		}
		f.event(now, EvRCA, p.ID, nil)
	case CodeConfigureNak, CodeConfigureReject:
		if p.ID != f.reqID || ValidOptions(p.Data) != nil {
			return
		}
		// Only states that wait for an answer act on the options; the
		// others just take the event (RFC 1661 §4.1 RCN column).
		switch f.state {
		case StateReqSent, StateAckRcvd, StateAckSent, StateOpened:
			ok := false
			if p.Code == CodeConfigureNak {
				ok = f.l.gotNak(p.Data)
			} else {
				ok = f.l.gotReject(p.Data)
			}
			if !ok {
				return
			}
		}
		f.event(now, EvRCN, p.ID, nil)
	case CodeTerminateRequest:
		f.event(now, EvRTR, p.ID, nil)
	case CodeTerminateAck:
		f.event(now, EvRTA, p.ID, nil)
	case CodeCodeReject:
		// RFC 1661 §5.6: rejecting a code we need is catastrophic.
		if len(p.Data) >= 1 && p.Data[0] >= CodeConfigureRequest && p.Data[0] <= CodeCodeReject {
			f.event(now, EvRXJMinus, p.ID, nil)
		} else {
			f.event(now, EvRXJPlus, p.ID, nil)
		}
	default:
		if f.l.extraCode(now, p) {
			return
		}
		f.event(now, EvRUC, p.ID, raw)
	}
}

// event runs one transition of the RFC 1661 §4.1 state table. data is
// the reply options for RCR+ and RCR-, the received packet for RUC.
func (f *fsm) event(now time.Time, ev FSMEvent, id uint8, data []byte) {
	s := f.state
	switch ev {
	case EvUp:
		switch s {
		case StateInitial:
			f.setState(StateClosed)
		case StateStarting:
			f.irc(false)
			f.scr(now)
			f.setState(StateReqSent)
		}
	case EvDown:
		switch s {
		case StateClosed:
			f.setState(StateInitial)
		case StateStopped:
			f.tls(now)
			f.setState(StateStarting)
		case StateClosing:
			f.stopTimer()
			f.setState(StateInitial)
		case StateStopping, StateReqSent, StateAckRcvd, StateAckSent:
			f.stopTimer()
			f.setState(StateStarting)
		case StateOpened:
			f.tld(now)
			f.setState(StateStarting)
		}
	case EvOpen:
		switch s {
		case StateInitial:
			f.tls(now)
			f.setState(StateStarting)
		case StateClosed:
			f.irc(false)
			f.scr(now)
			f.setState(StateReqSent)
		case StateClosing:
			f.setState(StateStopping)
		}
	case EvClose:
		switch s {
		case StateStarting:
			f.tlf(now)
			f.setState(StateInitial)
		case StateStopped:
			f.setState(StateClosed)
		case StateStopping:
			f.setState(StateClosing)
		case StateReqSent, StateAckRcvd, StateAckSent:
			f.irc(true)
			f.str(now)
			f.setState(StateClosing)
		case StateOpened:
			f.tld(now)
			f.irc(true)
			f.str(now)
			f.setState(StateClosing)
		}
	case EvTOPlus:
		switch s {
		case StateClosing, StateStopping:
			f.str(now)
		case StateReqSent, StateAckRcvd:
			f.scr(now)
			f.setState(StateReqSent)
		case StateAckSent:
			f.scr(now)
		}
	case EvTOMinus:
		switch s {
		case StateClosing:
			f.setState(StateClosed)
			f.tlf(now)
		case StateStopping, StateReqSent, StateAckRcvd, StateAckSent:
			f.setState(StateStopped)
			f.tlf(now)
		}
	case EvRCRPlus:
		switch s {
		case StateClosed:
			f.sta(id)
		case StateStopped:
			f.irc(false)
			f.scr(now)
			f.sca(data)
			f.setState(StateAckSent)
		case StateReqSent, StateAckSent:
			f.sca(data)
			f.setState(StateAckSent)
		case StateAckRcvd:
			f.sca(data)
			f.stopTimer()
			f.setState(StateOpened)
			f.tlu(now)
		case StateOpened:
			f.tld(now)
			f.scr(now)
			f.sca(data)
			f.setState(StateAckSent)
		}
	case EvRCRMinus:
		switch s {
		case StateClosed:
			f.sta(id)
		case StateStopped:
			f.irc(false)
			f.scr(now)
			f.scn(data)
			f.setState(StateReqSent)
		case StateReqSent, StateAckSent:
			f.scn(data)
			f.setState(StateReqSent)
		case StateAckRcvd:
			f.scn(data)
		case StateOpened:
			f.tld(now)
			f.scr(now)
			f.scn(data)
			f.setState(StateReqSent)
		}
	case EvRCA:
		switch s {
		case StateClosed, StateStopped:
			f.sta(id)
		case StateReqSent:
			f.irc(false)
			f.l.gotAck(f.request())
			f.setState(StateAckRcvd)
		case StateAckRcvd:
			f.scr(now) // crossed connection (6x)
			f.setState(StateReqSent)
		case StateAckSent:
			f.irc(false)
			f.l.gotAck(f.request())
			f.stopTimer()
			f.setState(StateOpened)
			f.tlu(now)
		case StateOpened:
			f.tld(now)
			f.scr(now)
			f.setState(StateReqSent)
		}
	case EvRCN:
		switch s {
		case StateClosed, StateStopped:
			f.sta(id)
		case StateReqSent:
			f.irc(false)
			f.scr(now)
		case StateAckRcvd:
			f.scr(now)
			f.setState(StateReqSent)
		case StateAckSent:
			f.irc(false)
			f.scr(now)
		case StateOpened:
			f.tld(now)
			f.scr(now)
			f.setState(StateReqSent)
		}
	case EvRTR:
		switch s {
		case StateClosed, StateStopped, StateClosing, StateStopping, StateAckSent:
			f.sta(id)
		case StateReqSent:
			f.sta(id)
		case StateAckRcvd:
			f.sta(id)
			f.setState(StateReqSent)
		case StateOpened:
			f.tld(now)
			f.restart = 0 // zrc: wait one restart period before tlf
			f.startTimer(now)
			f.sta(id)
			f.setState(StateStopping)
		}
		if s == StateAckSent {
			f.setState(StateReqSent)
		}
	case EvRTA:
		switch s {
		case StateClosing:
			f.setState(StateClosed)
			f.tlf(now)
		case StateStopping:
			f.setState(StateStopped)
			f.tlf(now)
		case StateAckRcvd:
			f.setState(StateReqSent)
		case StateOpened:
			f.tld(now)
			f.scr(now)
			f.setState(StateReqSent)
		}
	case EvRUC:
		switch s {
		case StateClosed, StateStopped, StateClosing, StateStopping, StateReqSent, StateAckRcvd, StateAckSent, StateOpened:
			f.scj(data)
		}
	case EvRXJPlus:
		if s == StateAckRcvd {
			f.setState(StateReqSent)
		}
	case EvRXJMinus:
		switch s {
		case StateClosed, StateClosing:
			f.setState(StateClosed)
			f.tlf(now)
		case StateStopped, StateStopping, StateReqSent, StateAckRcvd, StateAckSent:
			f.setState(StateStopped)
			f.tlf(now)
		case StateOpened:
			f.tld(now)
			f.irc(true)
			f.str(now)
			f.setState(StateStopping)
		}
	case EvRXR:
		// Echo and Discard are handled by the layer in Opened; other
		// states ignore them (RFC 1661 §4.1 RXR row).
	}
}
