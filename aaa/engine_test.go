package aaa

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"

	"github.com/l2tpd/l2tpd/ppp"
)

// countingReader is a reproducible source of Request Authenticators.
type countingReader struct{ n byte }

func (r *countingReader) Read(b []byte) (int, error) {
	for i := range b {
		r.n++
		b[i] = r.n
	}
	return len(b), nil
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func addrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// fakeResponse answers req as a server with secret would: attrs, with a
// Message-Authenticator first when withMA (RFC 3579 §3.2).
func fakeResponse(req []byte, code byte, attrs []byte, secret string, withMA bool) []byte {
	var auth [16]byte
	copy(auth[:], req[4:20])
	if withMA {
		return encodeResponse(nil, code, req[1], &auth, attrs, []byte(secret))
	}
	pkt := append([]byte{code, req[1], 0, 0}, auth[:]...)
	pkt = append(pkt, attrs...)
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	h := md5.New()
	h.Write(pkt)
	h.Write([]byte(secret))
	copy(pkt[4:20], h.Sum(nil))
	return pkt
}

func newTestEngine(auth []Server, tm Timing) *engine {
	return newEngine(auth, nil, NAS{Identifier: "nas1"}, tm, &countingReader{})
}

func papTxn(t *testing.T, got *[]error) *txn {
	t.Helper()
	req := &Request{Auth: ppp.AuthRequest{Protocol: ppp.AuthPAP, User: "u", Password: []byte("p")}}
	attrs, err := accessAttributes(NAS{Identifier: "nas1"}, req)
	if err != nil {
		t.Fatal(err)
	}
	return &txn{kind: kindAccess, group: groupAuth, attrs: attrs, password: []byte("p"),
		done: func(_ []byte, _ netip.AddrPort, err error) { *got = append(*got, err) }}
}

func takeOut(e *engine) []send {
	o := e.out
	e.out = nil
	return o
}

func runDone(e *engine) {
	for _, d := range e.done {
		d.t.done(d.resp, d.from, d.err)
	}
	e.done = nil
}

// RFC 5080 §2.2.1: a retransmission keeps Identifier and Request
// Authenticator; RFC 3579 §3.2: every request carries a valid
// Message-Authenticator.
func TestRetransmitIdentical(t *testing.T) {
	e := newTestEngine([]Server{{Addr: addrPort("127.0.0.1:1812"), Secret: "s"}}, Timing{Timeout: time.Second, Retries: 2})
	var got []error
	if err := e.submit(t0, papTxn(t, &got)); err != nil {
		t.Fatal(err)
	}
	first := takeOut(e)
	if len(first) != 1 {
		t.Fatalf("sends %d", len(first))
	}
	pkt := first[0].pkt
	off, err := findMA(pkt)
	if err != nil || off != headerLen+2 {
		t.Fatalf("Message-Authenticator at %d, %v", off, err)
	}
	var auth [16]byte
	copy(auth[:], pkt[4:20])
	if !checkMA(pkt, off, &auth, []byte("s")) {
		t.Fatal("Message-Authenticator does not verify")
	}
	p, err := radius.Parse(pkt, []byte("s"))
	if err != nil || rfc2865.UserPassword_GetString(p) != "p" || rfc2865.UserName_GetString(p) != "u" {
		t.Fatalf("parse %v: password %q", err, rfc2865.UserPassword_GetString(p))
	}
	e.tick(t0.Add(999 * time.Millisecond))
	if len(takeOut(e)) != 0 {
		t.Fatal("sent before the timeout")
	}
	e.tick(t0.Add(time.Second))
	again := takeOut(e)
	if len(again) != 1 || !bytes.Equal(again[0].pkt, pkt) {
		t.Fatalf("retransmission differs")
	}
	e.tick(t0.Add(2 * time.Second))
	takeOut(e)
	e.tick(t0.Add(3 * time.Second))
	runDone(e)
	if len(got) != 1 || !errors.Is(got[0], ErrTimeout) || e.stats.Retransmissions != 2 || e.pending != 0 {
		t.Fatalf("got %v stats %+v", got, e.stats)
	}
}

// RFC 3579 §3.2 and CVE-2024-3596: an Access-Accept without a valid
// Message-Authenticator is dropped and counted; the request stays
// outstanding for the real answer.
func TestResponseWithoutMessageAuthenticatorDropped(t *testing.T) {
	e := newTestEngine([]Server{{Addr: addrPort("127.0.0.1:1812"), Secret: "s"}}, Timing{})
	var got []error
	e.submit(t0, papTxn(t, &got))
	req := takeOut(e)[0].pkt

	e.receive(t0, 0, 0, fakeResponse(req, codeAccessAccept, nil, "s", false))
	bad := fakeResponse(req, codeAccessAccept, nil, "s", true)
	bad[headerLen+5] ^= 1 // corrupt the HMAC, then fix the Response Authenticator
	var rauth [16]byte
	copy(rauth[:], req[4:20])
	copy(bad[4:20], rauth[:])
	h := md5.New()
	h.Write(bad)
	h.Write([]byte("s"))
	copy(bad[4:20], h.Sum(nil))
	e.receive(t0, 0, 0, bad)
	e.receive(t0, 0, 0, fakeResponse(req, codeAccessAccept, nil, "wrong", true))
	if len(e.done) != 0 {
		t.Fatal("a forged response completed the request")
	}
	if e.stats.DropNoMessageAuth != 1 || e.stats.DropBadMessageAuth != 1 || e.stats.DropAuthenticator != 1 {
		t.Fatalf("stats %+v", e.stats)
	}
	e.receive(t0, 0, 0, fakeResponse(req, codeAccessAccept, nil, "s", true))
	runDone(e)
	if len(got) != 1 || got[0] != nil || e.stats.Responses != 1 {
		t.Fatalf("got %v stats %+v", got, e.stats)
	}
}

// Failover in priority order, dead after DeadAfter unanswered requests,
// revival only through an answered Status-Server (RFC 5997 §4).
func TestFailoverDeadAndProbe(t *testing.T) {
	a, b := addrPort("127.0.0.1:1"), addrPort("127.0.0.1:2")
	e := newTestEngine([]Server{{Addr: b, Secret: "s", Priority: 5}, {Addr: a, Secret: "s", Priority: 1}},
		Timing{Timeout: time.Second, Retries: 1, DeadAfter: 1, DeadTime: 10 * time.Second, Probe: true})
	var got []error
	e.submit(t0, papTxn(t, &got))
	if o := takeOut(e); o[0].srv != 0 || e.servers[0].Addr != a {
		t.Fatalf("first try went to %v", e.servers[o[0].srv].Addr)
	}
	e.tick(t0.Add(time.Second)) // retransmission to a
	takeOut(e)
	e.tick(t0.Add(2 * time.Second)) // a gives up: dead; failover to b
	o := takeOut(e)
	if len(o) != 1 || o[0].srv != 1 || !e.servers[0].dead || e.stats.Failovers != 1 {
		t.Fatalf("sends %+v, stats %+v", o, e.stats)
	}
	e.receive(t0.Add(2*time.Second), 1, 0, fakeResponse(o[0].pkt, codeAccessReject, nil, "s", true))
	runDone(e)
	if len(got) != 1 || got[0] != nil {
		t.Fatalf("got %v", got)
	}
	// While a is dead, requests go to b directly.
	e.submit(t0.Add(3*time.Second), papTxn(t, &got))
	if o := takeOut(e); o[0].srv != 1 {
		t.Fatal("dead server used")
	}
	if d := e.deadline(); !d.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("deadline %v", d)
	}
	// At DeadTime, a Status-Server probe with a Message-Authenticator.
	e.tick(t0.Add(12 * time.Second))
	var probe send
	for _, s := range takeOut(e) {
		if s.pkt[0] == codeStatusServer {
			probe = s
		}
	}
	if probe.pkt == nil || probe.srv != 0 || e.stats.Probes != 1 {
		t.Fatalf("no probe: %+v", e.stats)
	}
	if off, _ := findMA(probe.pkt); off < 0 {
		t.Fatal("Status-Server without Message-Authenticator")
	}
	// Unanswered: still dead, probed again a DeadTime later.
	e.tick(t0.Add(13 * time.Second))
	if !e.servers[0].dead || !e.deadline().Equal(t0.Add(23*time.Second)) {
		t.Fatalf("after a lost probe: dead %v deadline %v", e.servers[0].dead, e.deadline())
	}
	e.tick(t0.Add(23 * time.Second))
	probe = takeOut(e)[0]
	e.receive(t0.Add(23*time.Second), 0, probe.sock, fakeResponse(probe.pkt, codeAccessAccept, nil, "s", false))
	if e.servers[0].dead || e.stats.ServersRevived != 1 {
		t.Fatalf("not revived: %+v", e.stats)
	}
}

func TestBusyAndSockets(t *testing.T) {
	e := newTestEngine([]Server{{Addr: addrPort("127.0.0.1:1"), Secret: "s"}}, Timing{MaxOutstanding: 600, MaxSockets: 2})
	var got []error
	seen := map[[2]int]bool{}
	for i := range 512 {
		if err := e.submit(t0, papTxn(t, &got)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		o := takeOut(e)[0]
		k := [2]int{o.sock, int(o.pkt[1])}
		if seen[k] {
			t.Fatalf("identifier %v reused while outstanding", k)
		}
		seen[k] = true
	}
	if len(e.servers[0].socks) != 2 {
		t.Fatalf("%d sockets", len(e.servers[0].socks))
	}
	if err := e.submit(t0, papTxn(t, &got)); !errors.Is(err, ErrBusy) {
		t.Fatalf("513th: %v", err)
	}
	e2 := newTestEngine([]Server{{Addr: addrPort("127.0.0.1:1"), Secret: "s"}}, Timing{MaxOutstanding: 1})
	e2.submit(t0, papTxn(t, &got))
	if err := e2.submit(t0, papTxn(t, &got)); !errors.Is(err, ErrBusy) || e2.stats.Busy != 1 {
		t.Fatalf("over MaxOutstanding: %v", err)
	}
}

// RFC 2866 §5.2: Acct-Delay-Time grows on retransmission, which makes
// it a new request with a new Identifier.
func TestAccountingRetransmitDelay(t *testing.T) {
	e := newEngine(nil, []Server{{Addr: addrPort("127.0.0.1:1813"), Secret: "s"}}, NAS{}, Timing{Timeout: 3 * time.Second}, &countingReader{})
	rec := AcctRecord{Status: AcctStart, Session: Session{User: "u", AcctSessionID: "x"}}
	attrs, _ := acctAttributes(NAS{}, &rec)
	var got []error
	e.submit(t0.Add(2*time.Second), &txn{kind: kindAcct, group: groupAcct, attrs: attrs, created: t0,
		done: func(_ []byte, _ netip.AddrPort, err error) { got = append(got, err) }})
	first := takeOut(e)[0].pkt
	e.tick(t0.Add(5 * time.Second))
	second := takeOut(e)[0].pkt
	delay := func(b []byte) uint32 {
		p, err := radius.Parse(b, []byte("s"))
		if err != nil || !radius.IsAuthenticRequest(b, []byte("s")) {
			t.Fatalf("bad request: %v", err)
		}
		return uint32(rfc2866.AcctDelayTime_Get(p))
	}
	if delay(first) != 2 || delay(second) != 5 || first[1] == second[1] {
		t.Fatalf("delays %d %d ids %d %d", delay(first), delay(second), first[1], second[1])
	}
	e.receive(t0.Add(5*time.Second), 0, 0, fakeResponse(first, codeAccountingResponse, nil, "s", false))
	if len(e.done) != 0 {
		t.Fatal("answer to the superseded request accepted")
	}
	e.receive(t0.Add(5*time.Second), 0, 0, fakeResponse(second, codeAccountingResponse, nil, "s", false))
	runDone(e)
	if len(got) != 1 || got[0] != nil {
		t.Fatalf("got %v", got)
	}
}

// The shell against a tiny fake server that answers without a
// Message-Authenticator: the answer is dropped and the request times out.
func TestClientDropsUnsignedAccept(t *testing.T) {
	conn, addr := listenDAE(t)
	defer conn.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			conn.WriteToUDPAddrPort(fakeResponse(buf[:n], codeAccessAccept, nil, "testing123", false), from)
		}
	}()
	c, err := NewClient(Config{Auth: []Server{{Addr: addr, Secret: "testing123"}}, Timing: Timing{Timeout: 100 * time.Millisecond, Retries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := &Request{Auth: ppp.AuthRequest{Protocol: ppp.AuthPAP, User: "u", Password: []byte("p")}}
	r := authSync(t, c, req)
	if !errors.Is(r.Err, ErrTimeout) || r.Accept || r.PPP.Accept {
		t.Fatalf("result %+v", r)
	}
	if s := c.Stats(); s.DropNoMessageAuth != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Each server's answers and their delay are kept; only an answer to a
// single transmission is timed.
func TestServerLatency(t *testing.T) {
	e := newTestEngine([]Server{{Addr: addrPort("127.0.0.1:1812"), Secret: "s"}}, Timing{Timeout: time.Second, Retries: 2})
	var got []error
	if err := e.submit(t0, papTxn(t, &got)); err != nil {
		t.Fatal(err)
	}
	req := takeOut(e)[0].pkt
	e.receive(t0.Add(40*time.Millisecond), 0, 0, fakeResponse(req, codeAccessAccept, nil, "s", true))
	runDone(e)
	if st := e.serverStates()[0]; st.Responses != 1 || st.Latency != 40*time.Millisecond {
		t.Fatalf("after one answer: %+v", st)
	}
	// Answered after a retransmission: counted, not timed.
	if err := e.submit(t0.Add(time.Minute), papTxn(t, &got)); err != nil {
		t.Fatal(err)
	}
	req = takeOut(e)[0].pkt
	e.tick(t0.Add(time.Minute + time.Second))
	takeOut(e)
	e.receive(t0.Add(time.Minute+time.Second+500*time.Millisecond), 0, 0, fakeResponse(req, codeAccessAccept, nil, "s", true))
	runDone(e)
	if st := e.serverStates()[0]; st.Responses != 2 || st.Latency != 40*time.Millisecond || st.Requests != 2 || st.Unanswered != 0 {
		t.Fatalf("after an ambiguous answer: %+v", st)
	}
}
