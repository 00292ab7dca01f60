package aaa

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// acctServer answers Accounting-Requests after delay (never when
// silent) and counts what it received.
type acctServer struct {
	addr     netip.AddrPort
	received atomic.Int64
}

func startAcctServer(t *testing.T, delay time.Duration, silent bool) *acctServer {
	t.Helper()
	conn, addr := listenDAE(t)
	t.Cleanup(func() { conn.Close() })
	s := &acctServer{addr: addr}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			s.received.Add(1)
			if silent {
				continue
			}
			resp := fakeResponse(buf[:n], codeAccountingResponse, nil, "testing123", true)
			go func() {
				time.Sleep(delay)
				conn.WriteToUDPAddrPort(resp, from)
			}()
		}
	}()
	return s
}

func acctClient(t *testing.T, s *acctServer) *Client {
	t.Helper()
	c, err := NewClient(Config{Acct: []Server{{Addr: s.addr, Secret: "testing123"}},
		Timing: Timing{Timeout: time.Second, Retries: -1, DeadAfter: 100}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A record in flight when the client changes finishes where it was sent
// and is not sent again; a record that failed on the old servers goes to
// the new ones at once, not after the retry pause; nothing is lost.
func TestAccountingSetClient(t *testing.T) {
	slow := startAcctServer(t, 400*time.Millisecond, false)
	dead := startAcctServer(t, 0, true)
	fresh := startAcctServer(t, 0, false)
	spool := &MemSpool{}
	a := NewAccounting(acctClient(t, slow), spool, AcctConfig{RetryInterval: time.Hour})
	defer a.Close()
	if err := a.Send(AcctRecord{Session: Session{AcctSessionID: "in-flight", User: "u"}, Status: AcctStart}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the record at the slow server", 2*time.Second, func() bool { return slow.received.Load() == 1 })
	a.SetClient(acctClient(t, fresh))
	waitFor(t, "the in-flight record acknowledged", 2*time.Second, func() bool { return spool.Len() == 0 })
	time.Sleep(100 * time.Millisecond)
	if slow.received.Load() != 1 || fresh.received.Load() != 0 {
		t.Fatalf("slow got %d, fresh %d: the in-flight record was sent again", slow.received.Load(), fresh.received.Load())
	}

	// A record failing on a dead server waits an hour, unless the
	// servers change.
	a.SetClient(acctClient(t, dead))
	if err := a.Send(AcctRecord{Session: Session{AcctSessionID: "failed", User: "u"}, Status: AcctStart}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the record to fail", 3*time.Second, func() bool { return a.Stats().Failures > 0 })
	if spool.Len() != 1 {
		t.Fatalf("spool %d after the failure", spool.Len())
	}
	a.SetClient(acctClient(t, fresh))
	waitFor(t, "the failed record at the new server", 2*time.Second, func() bool { return spool.Len() == 0 })
	if fresh.received.Load() != 1 || a.Stats().Delivered != 2 {
		t.Fatalf("fresh got %d, delivered %d", fresh.received.Load(), a.Stats().Delivered)
	}
}

// A new client takes over the counters of the old one, and each kept
// server (same address, secret and role) its own; a new server starts
// at zero, a server whose secret changed too.
func TestClientInherit(t *testing.T) {
	a, b := addrPort("192.0.2.1:1812"), addrPort("192.0.2.2:1812")
	old, err := NewClient(Config{Auth: []Server{{Addr: a, Secret: "s"}, {Addr: b, Secret: "s"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	old.mu.Lock()
	old.eng.stats.Requests, old.eng.stats.Timeouts = 10, 3
	old.eng.servers[0].requests, old.eng.servers[0].responses, old.eng.servers[0].dead = 7, 5, true
	old.eng.servers[1].requests = 3
	old.mu.Unlock()
	c, err := NewClient(Config{Auth: []Server{{Addr: a, Secret: "s"}, {Addr: b, Secret: "changed"}, {Addr: addrPort("192.0.2.3:1812"), Secret: "s"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Inherit(old)
	st, sv := c.Stats(), c.Servers()
	if st.Requests != 10 || st.Timeouts != 3 {
		t.Fatalf("stats %+v", st)
	}
	if sv[0].Requests != 7 || sv[0].Responses != 5 || !sv[0].Dead || sv[1].Requests != 0 || sv[2].Requests != 0 {
		t.Fatalf("servers %+v", sv)
	}
}
