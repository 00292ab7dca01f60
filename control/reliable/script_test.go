package reliable

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Fake control messages: a name byte, three pad bytes, then Ns and Nr at
// offset 4, then four more bytes. ZLBs are the first eight bytes only, so
// the two are told apart by length.
const (
	testOff    = 4
	testMsgLen = 12
	testZLBLen = 8
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func fakeMsg(name byte, ns, nr uint16) []byte {
	b := make([]byte, testMsgLen)
	b[0] = name
	binary.BigEndian.PutUint16(b[testOff:], ns)
	binary.BigEndian.PutUint16(b[testOff+2:], nr)
	b[testMsgLen-1] = name ^ 0xff
	return b
}

func fakeZLB() []byte {
	b := make([]byte, testZLBLen)
	b[0] = 'Z'
	return b
}

func testConfig() Config {
	return Config{NsNrOffset: testOff, ZLB: fakeZLB()}
}

// describe renders a transmitted packet the way scripts spell it:
// "A(ns0,nr1)" or "ZLB(ns2,nr3)".
func describe(p []byte) string {
	ns := binary.BigEndian.Uint16(p[testOff:])
	nr := binary.BigEndian.Uint16(p[testOff+2:])
	name := string(p[:1])
	if len(p) == testZLBLen {
		name = "ZLB"
	}
	return fmt.Sprintf("%s(ns%d,nr%d)", name, ns, nr)
}

// script drives a Channel through a transcript, one command a line:
//
//	send A              queue message A
//	tick 1s             advance the clock
//	at 3s               set the clock to t0+3s
//	poll A(ns0,nr0) …   Poll now; exactly these packets (none: "poll -")
//	recv NS NR A -> R   message A arrives with Ns/Nr; Recv returns R
//	recv zlb NR -> R    a ZLB arrives
//	next A | next -     Next returns message A, or nothing
//	deadline 1s | -     Deadline is t0+1s, or zero
//	failed true|false
//	stats k=v …         Stats fields (sent, retx, recv, dup, ooo, oow,
//	                    zlbsent, zlbrecv, cwnd, ssthresh, badnr, acked)
//	state k=v …         nextns, nextnr, queue, inflight, held, idle
//	peerwindow N        SetPeerWindow
//	heard 1s | -        LastHeard is t0+1s, or zero
type script struct {
	t   *testing.T
	c   *Channel
	now time.Time
	out [][]byte
}

func run(t *testing.T, cfg Config, text string) *script {
	t.Helper()
	s := &script{t: t, c: New(cfg), now: t0}
	s.run(text)
	return s
}

func (s *script) run(text string) {
	s.t.Helper()
	for i, line := range strings.Split(text, "\n") {
		if j := strings.Index(line, "#"); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if err := s.step(f); err != nil {
			s.t.Fatalf("line %d %q: %v", i+1, strings.TrimSpace(line), err)
		}
	}
}

func (s *script) step(f []string) error {
	c := s.c
	switch f[0] {
	case "send":
		c.Send(s.now, fakeMsg(f[1][0], 0xdead, 0xbeef))
	case "tick":
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return err
		}
		s.now = s.now.Add(d)
	case "at":
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return err
		}
		s.now = t0.Add(d)
	case "poll":
		s.out = c.Poll(s.now, s.out[:0])
		var got []string
		for _, p := range s.out {
			got = append(got, describe(p))
		}
		want := f[1:]
		if len(want) == 1 && want[0] == "-" {
			want = nil
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			return fmt.Errorf("poll sent [%s], want [%s]", strings.Join(got, " "), strings.Join(want, " "))
		}
	case "recv":
		var got RecvResult
		if f[1] == "zlb" {
			nr, err := parseSeq(f[2])
			if err != nil {
				return err
			}
			if f[3] != "->" {
				return fmt.Errorf("want ->")
			}
			got = c.Recv(s.now, 0xffff, nr, true, fakeZLB())
			return expect(got.String(), f[4])
		}
		ns, err := parseSeq(f[1])
		if err != nil {
			return err
		}
		nr, err := parseSeq(f[2])
		if err != nil {
			return err
		}
		if f[4] != "->" {
			return fmt.Errorf("want ->")
		}
		got = c.Recv(s.now, ns, nr, false, fakeMsg(f[3][0], ns, nr))
		return expect(got.String(), f[5])
	case "next":
		m, ok := c.Next(s.now)
		got := "-"
		if ok {
			if len(m) != testMsgLen || m[testMsgLen-1] != m[0]^0xff {
				return fmt.Errorf("next returned a damaged message % x", m)
			}
			got = string(m[:1])
		}
		return expect(got, f[1])
	case "deadline":
		return expect(rel(c.Deadline()), f[1])
	case "heard":
		return expect(rel(c.LastHeard()), f[1])
	case "failed":
		return expect(strconv.FormatBool(c.Failed()), f[1])
	case "peerwindow":
		n, err := parseSeq(f[1])
		if err != nil {
			return err
		}
		c.SetPeerWindow(n)
	case "stats":
		st := c.Stats()
		vals := map[string]uint64{
			"sent": st.Sent, "retx": st.Retransmits, "recv": st.Received,
			"dup": st.Duplicates, "ooo": st.OutOfOrder, "oow": st.OutOfWindow,
			"zlbsent": st.ZLBSent, "zlbrecv": st.ZLBReceived,
			"cwnd": uint64(st.CWND), "ssthresh": uint64(st.SSThresh),
			"badnr": st.BadNr, "acked": st.Acked,
		}
		return expectKV(f[1:], func(k string) (string, bool) {
			v, ok := vals[k]
			return strconv.FormatUint(v, 10), ok
		})
	case "state":
		vals := map[string]string{
			"nextns":   strconv.Itoa(int(c.NextNs())),
			"nextnr":   strconv.Itoa(int(c.NextNr())),
			"queue":    strconv.Itoa(c.QueueLen()),
			"inflight": strconv.Itoa(c.InFlight()),
			"held":     strconv.Itoa(c.HeldLen()),
			"idle":     strconv.FormatBool(c.Idle()),
		}
		return expectKV(f[1:], func(k string) (string, bool) {
			v, ok := vals[k]
			return v, ok
		})
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	return nil
}

func parseSeq(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	return uint16(n), err
}

func rel(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Sub(t0).String()
}

func expect(got, want string) error {
	if got != want {
		return fmt.Errorf("got %s, want %s", got, want)
	}
	return nil
}

func expectKV(pairs []string, get func(string) (string, bool)) error {
	for _, kv := range pairs {
		k, want, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("bad pair %q", kv)
		}
		got, ok := get(k)
		if !ok {
			return fmt.Errorf("unknown key %q", k)
		}
		if got != want {
			return fmt.Errorf("%s = %s, want %s", k, got, want)
		}
	}
	return nil
}

// The interpreter must reject what it does not see, or every transcript
// below would pass vacuously.
func TestScriptCatchesMismatch(t *testing.T) {
	s := &script{t: t, c: New(testConfig()), now: t0}
	s.c.Send(s.now, fakeMsg('A', 0, 0))
	for _, f := range [][]string{
		{"poll", "-"},
		{"poll", "B(ns0,nr0)"},
		{"deadline", "2s"},
		{"failed", "true"},
		{"stats", "sent=7"},
		{"state", "nextns=9"},
		{"next", "A"},
		{"recv", "0", "0", "X", "->", "Held"},
	} {
		if err := s.step(f); err == nil {
			t.Errorf("step %v passed, want a mismatch", f)
		}
	}
}
