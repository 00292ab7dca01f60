package ppp

import (
	"strings"
	"testing"
	"time"
)

// recLayer is a layer that records the this-layer actions; it sends
// through the link of s.
type recLayer struct {
	actions *[]string
	s       *Session
}

func (r recLayer) session() *Session { return r.s }

func (r recLayer) appendRequest(b []byte) []byte { return append(b, 1, 4, 5, 220) }
func (r recLayer) checkRequest(opts, reply []byte, nakAllowed bool) (uint8, []byte) {
	return CodeConfigureAck, append(reply, opts...)
}
func (r recLayer) gotAck(opts []byte)                     {}
func (r recLayer) gotNak(opts []byte) bool                { return true }
func (r recLayer) gotReject(opts []byte) bool             { return true }
func (r recLayer) up(now time.Time)                       { *r.actions = append(*r.actions, "tlu") }
func (r recLayer) down(now time.Time)                     { *r.actions = append(*r.actions, "tld") }
func (r recLayer) started(now time.Time)                  { *r.actions = append(*r.actions, "tls") }
func (r recLayer) finished(now time.Time)                 { *r.actions = append(*r.actions, "tlf") }
func (r recLayer) extraCode(now time.Time, p Packet) bool { return false }

// The state transition table of RFC 1661 §4.1, one row per event and one
// column per state (0 Initial ... 9 Opened), as printed in the RFC
// except that irc and zrc (counter resets, not visible on the wire) are
// left out and "-" (cannot happen) expects no action and no change.
// The RXR column for Opened is "9": Echo and Discard are answered by
// LCP itself (TestLCPEchoReply).
var rfc1661Table = map[FSMEvent][10]string{
	EvUp:       {"2", "scr/6", "-", "-", "-", "-", "-", "-", "-", "-"},
	EvDown:     {"-", "-", "0", "tls/1", "0", "1", "1", "1", "1", "tld/1"},
	EvOpen:     {"tls/1", "1", "scr/6", "3", "5", "5", "6", "7", "8", "9"},
	EvClose:    {"0", "tlf/0", "2", "2", "4", "4", "str/4", "str/4", "str/4", "tld,str/4"},
	EvTOPlus:   {"-", "-", "-", "-", "str/4", "str/5", "scr/6", "scr/6", "scr/8", "-"},
	EvTOMinus:  {"-", "-", "-", "-", "tlf/2", "tlf/3", "tlf/3", "tlf/3", "tlf/3", "-"},
	EvRCRPlus:  {"-", "-", "sta/2", "scr,sca/8", "4", "5", "sca/8", "sca,tlu/9", "sca/8", "tld,scr,sca/8"},
	EvRCRMinus: {"-", "-", "sta/2", "scr,scn/6", "4", "5", "scn/6", "scn/7", "scn/6", "tld,scr,scn/6"},
	EvRCA:      {"-", "-", "sta/2", "sta/3", "4", "5", "7", "scr/6", "tlu/9", "tld,scr/6"},
	EvRCN:      {"-", "-", "sta/2", "sta/3", "4", "5", "scr/6", "scr/6", "scr/8", "tld,scr/6"},
	EvRTR:      {"-", "-", "sta/2", "sta/3", "sta/4", "sta/5", "sta/6", "sta/6", "sta/6", "tld,sta/5"},
	EvRTA:      {"-", "-", "2", "3", "tlf/2", "tlf/3", "6", "6", "8", "tld,scr/6"},
	EvRUC:      {"-", "-", "scj/2", "scj/3", "scj/4", "scj/5", "scj/6", "scj/7", "scj/8", "scj/9"},
	EvRXJPlus:  {"-", "-", "2", "3", "4", "5", "6", "6", "8", "9"},
	EvRXJMinus: {"-", "-", "tlf/2", "tlf/3", "tlf/2", "tlf/3", "tlf/3", "tlf/3", "tlf/3", "tld,str/5"},
	EvRXR:      {"-", "-", "2", "3", "4", "5", "6", "7", "8", "9"},
}

var sendNames = map[uint8]string{
	CodeConfigureRequest: "scr", CodeConfigureAck: "sca", CodeConfigureNak: "scn",
	CodeTerminateRequest: "str", CodeTerminateAck: "sta", CodeCodeReject: "scj",
}

// RFC 1661 §4.1: every cell of the state transition table.
func TestFSMStateTable(t *testing.T) {
	for ev := EvUp; ev <= EvRXR; ev++ {
		row := rfc1661Table[ev]
		for st := StateInitial; st <= StateOpened; st++ {
			var actions []string
			out := &Output{}
			f := newFSM(ProtoIPCP, recLayer{&actions, linkTo(t, out, Timers{})})
			f.state = st
			f.restart = 1
			f.code = CodeConfigureAck
			if ev == EvRCRMinus {
				f.code = CodeConfigureNak
			}
			// The layer actions and the packets are recorded in order:
			// hook sends through the output after each event.
			f.l = seqLayer{f.l.(recLayer), out, &actions}
			f.event(t0, ev, 7, []byte{99, 1, 0, 4})
			flushSends(out, &actions)
			want := row[st]
			var got string
			next := f.state
			if len(actions) == 0 {
				got = itoaState(next)
			} else {
				got = strings.Join(actions, ",") + "/" + itoaState(next)
			}
			if want == "-" {
				want = itoaState(st)
			}
			if got != want {
				t.Errorf("%v in %v: got %s, want %s", ev, st, got, want)
			}
		}
	}
}

// seqLayer flushes the packets sent so far before recording a layer
// action, so that the recorded order is the order of the RFC's actions.
type seqLayer struct {
	recLayer
	out     *Output
	actions *[]string
}

func (s seqLayer) up(now time.Time)       { flushSends(s.out, s.actions); s.recLayer.up(now) }
func (s seqLayer) down(now time.Time)     { flushSends(s.out, s.actions); s.recLayer.down(now) }
func (s seqLayer) started(now time.Time)  { flushSends(s.out, s.actions); s.recLayer.started(now) }
func (s seqLayer) finished(now time.Time) { flushSends(s.out, s.actions); s.recLayer.finished(now) }

func flushSends(out *Output, actions *[]string) {
	for i := 0; i < out.NumFrames(); i++ {
		_, info, _ := ParseFrame(out.Frame(i))
		p, _ := ParsePacket(info)
		*actions = append(*actions, sendNames[p.Code])
	}
	out.Reset()
}

func itoaState(s State) string { return string(rune('0' + s)) }

// newFSM returns an automaton on its own, outside the layers of a
// Session.
func newFSM(proto Protocol, l layer) *fsm {
	f := &fsm{}
	f.init(proto, l)
	return f
}

// linkTo returns a Session whose link sends into out, with timers t,
// for an automaton of its own.
func linkTo(t *testing.T, out *Output, timers Timers) *Session {
	s, err := NewSession(Config{Rand: newRand(9), IPv4: true, Timers: timers})
	if err != nil {
		t.Fatal(err)
	}
	s.link.out = out
	return s
}

// RFC 1661 §4.6: the restart timer runs with every Configure-Request;
// after Max-Configure requests without answer TO- ends in Stopped with
// This-Layer-Finished.
func TestFSMRestartMaxConfigure(t *testing.T) {
	var actions []string
	out := &Output{}
	f := newFSM(ProtoIPCP, recLayer{&actions, linkTo(t, out, Timers{Restart: 2 * time.Second, MaxConfigure: 4})})
	f.Open(t0)
	f.Up(t0)
	now := t0
	sent := out.NumFrames()
	for {
		d, ok := f.Deadline()
		if !ok {
			break
		}
		if d.Sub(now) != 2*time.Second {
			t.Fatalf("restart interval %v", d.Sub(now))
		}
		now = d
		f.tick(now.Add(-time.Nanosecond)) // not yet
		if out.NumFrames() != sent {
			t.Fatal("timer fired early")
		}
		f.tick(now)
		sent = out.NumFrames()
	}
	if sent != 4 {
		t.Errorf("sent %d Configure-Requests, want Max-Configure = 4", sent)
	}
	if f.state != StateStopped || len(actions) != 2 || actions[1] != "tlf" {
		t.Errorf("state %v actions %v", f.state, actions)
	}
	if now.Sub(t0) != 8*time.Second {
		t.Errorf("gave up after %v", now.Sub(t0))
	}
}

func TestStateAndEventNames(t *testing.T) {
	if StateAckRcvd.String() != "Ack-Rcvd" || EvRXJMinus.String() != "RXJ-" || State(42).String() != "State(?)" {
		t.Error("names")
	}
}
