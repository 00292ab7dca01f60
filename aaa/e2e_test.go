package aaa

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/ppp"
	"github.com/l2tpd/l2tpd/ppp/mschap"
)

func authSync(t *testing.T, c *Client, req *Request) Result {
	t.Helper()
	ch := make(chan Result, 1)
	if err := c.Authenticate(req, func(r Result) { ch <- r }); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	select {
	case r := <-ch:
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("no result")
	}
	return Result{}
}

// waitFor polls cond while a real server works; it never stands in for
// a protocol timer.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func e2eRequest(user string) *Request {
	return &Request{Session: Session{
		NASPort: 7, CallingStationID: "0211234567", CalledStationID: "l2tp-lns",
		TxConnectSpeed: 100000000, AcctSessionID: "sess-" + user,
		TunnelClientEndpoint: netip.MustParseAddr("192.0.2.1"), TunnelServerEndpoint: netip.MustParseAddr("192.0.2.2"),
		TunnelAssignmentID: "t1", TunnelClientAuthID: "lac1", TunnelServerAuthID: "lns1",
	}, Auth: ppp.AuthRequest{User: user}}
}

// RFC 2865 §5.2, §5.3; RFC 2548 §2.3; RFC 3579 §3.2 against FreeRADIUS.
func TestFreeRADIUSAuthentication(t *testing.T) {
	fr := newFreeRADIUS(t)
	fr.start()
	c, err := NewClient(Config{
		Auth:   []Server{{Addr: fr.auth(), Secret: "testing123"}},
		NAS:    NAS{Identifier: "l2tpd-test", IPAddress: netip.MustParseAddr("127.0.0.1")},
		Timing: Timing{Timeout: 2 * time.Second, Retries: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("PAP", func(t *testing.T) {
		req := e2eRequest("papuser")
		req.Auth.Protocol, req.Auth.Password = ppp.AuthPAP, []byte("pappass")
		r := authSync(t, c, req)
		if r.Err != nil || !r.Accept || !r.PPP.Accept {
			t.Fatalf("PAP papuser: %+v", r)
		}
		a := r.Attrs
		want := Attributes{
			FramedIPAddress: netip.MustParseAddr("10.1.2.3"), FramedIPNetmask: netip.MustParseAddr("255.255.255.255"),
			FramedPool: "subscribers", SessionTimeout: time.Hour, IdleTimeout: 10 * time.Minute,
			AcctInterimInterval: 5 * time.Minute, DNS1: netip.MustParseAddr("192.0.2.53"), DNS2: netip.MustParseAddr("192.0.2.54"),
			ReplyMessage: "welcome",
		}
		if a.FramedIPAddress != want.FramedIPAddress || a.FramedIPNetmask != want.FramedIPNetmask || a.FramedPool != want.FramedPool ||
			a.SessionTimeout != want.SessionTimeout || a.IdleTimeout != want.IdleTimeout || a.AcctInterimInterval != want.AcctInterimInterval ||
			a.DNS1 != want.DNS1 || a.DNS2 != want.DNS2 || a.ReplyMessage != want.ReplyMessage {
			t.Errorf("attributes %+v, want %+v", a, want)
		}
		if len(a.Class) != 1 || string(a.Class[0]) != "class-pap" {
			t.Errorf("Class %q", a.Class)
		}
		if len(a.FramedRoutes) != 1 || a.FramedRoutes[0] != (Route{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParseAddr("0.0.0.0"), 1}) {
			t.Errorf("routes %+v", a.FramedRoutes)
		}
		if r.PPP.PeerIPv4 != want.FramedIPAddress {
			t.Errorf("PPP peer address %v", r.PPP.PeerIPv4)
		}
		req.Auth.Password = []byte("wrong")
		if r := authSync(t, c, req); r.Err != nil || r.Accept || r.PPP.Accept {
			t.Fatalf("PAP wrong password: %+v", r)
		}
	})
	t.Run("CHAP", func(t *testing.T) {
		req := e2eRequest("chapuser")
		ch := []byte("0123456789abcdef0123")
		req.Auth.Protocol, req.Auth.ID, req.Auth.Challenge = ppp.AuthCHAPMD5, 9, ch
		req.Auth.Response = chapResponse(9, "chappass", ch)
		r := authSync(t, c, req)
		if r.Err != nil || !r.Accept || r.Attrs.FramedIPAddress != netip.MustParseAddr("10.1.2.4") {
			t.Fatalf("CHAP chapuser: %+v", r)
		}
		req.Auth.Response = chapResponse(9, "nope", ch)
		if r := authSync(t, c, req); r.Err != nil || r.Accept {
			t.Fatalf("CHAP wrong secret: %+v", r)
		}
	})
	t.Run("MSCHAPv2", func(t *testing.T) {
		req := e2eRequest("msuser")
		var authCh, peerCh [16]byte
		copy(authCh[:], "authenticator-ch")
		copy(peerCh[:], "peer-challenge-x")
		req.Auth.Protocol, req.Auth.ID, req.Auth.Challenge, req.Auth.PeerChallenge = ppp.AuthMSCHAPv2, 3, authCh[:], peerCh
		req.Auth.NTResponse = mschap.GenerateNTResponse(&authCh, &peerCh, "msuser", "mspass")
		r := authSync(t, c, req)
		if r.Err != nil || !r.Accept || !r.PPP.Accept {
			t.Fatalf("MS-CHAPv2 msuser: %+v", r)
		}
		// RFC 2759 §5: the server's proof that it knows the password.
		if !mschap.CheckAuthenticatorResponse("mspass", &req.Auth.NTResponse, &peerCh, &authCh, "msuser", r.PPP.AuthenticatorResponse) {
			t.Fatalf("authenticator response %q does not verify", r.PPP.AuthenticatorResponse)
		}
		req.Auth.NTResponse = mschap.GenerateNTResponse(&authCh, &peerCh, "msuser", "bad")
		r = authSync(t, c, req)
		if r.Err != nil || r.Accept || r.PPP.Accept || !strings.Contains(r.Attrs.MSCHAPError, "E=691") {
			t.Fatalf("MS-CHAPv2 wrong password: %+v", r)
		}
	})
	if s := c.Stats(); s.DropNoMessageAuth+s.DropBadMessageAuth+s.DropAuthenticator != 0 || s.Responses == 0 {
		t.Errorf("stats %+v", s)
	}
	if !strings.Contains(fr.logText(), "Message-Authenticator") {
		t.Error("FreeRADIUS log shows no Message-Authenticator")
	}
}

// RFC 2866 §5.1, §5.3-5.10; RFC 2869 §5.1-5.2; RFC 2865 §5.25.
func TestFreeRADIUSAccounting(t *testing.T) {
	fr := newFreeRADIUS(t)
	fr.start()
	c, err := NewClient(Config{
		Acct:   []Server{{Addr: fr.acct(), Secret: "testing123"}},
		NAS:    NAS{Identifier: "l2tpd-test"},
		Timing: Timing{Timeout: 2 * time.Second, Retries: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	spool := &MemSpool{}
	a := NewAccounting(c, spool, AcctConfig{RetryInterval: 100 * time.Millisecond})
	defer a.Close()

	s := e2eRequest("papuser").Session
	s.User = "papuser"
	base := AcctRecord{Session: s, FramedIPAddress: netip.MustParseAddr("10.1.2.3"), Class: [][]byte{[]byte("class-pap")}}
	start, interim, stop := base, base, base
	start.Status = AcctStart
	interim.Status, interim.InputOctets, interim.OutputOctets, interim.InputPackets, interim.OutputPackets, interim.SessionTime = AcctInterim, 1000, 2000, 10, 20, 300*time.Second
	stop.Status, stop.InputOctets, stop.OutputOctets, stop.InputPackets, stop.OutputPackets, stop.SessionTime = AcctStop, 5<<32+7, 3<<32+9, 100, 200, 600*time.Second
	stop.TerminateCause = CauseFromPPP(ppp.ReasonPeerTerminate)
	for _, r := range []AcctRecord{start, interim, stop} {
		if err := a.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "spool to drain", 15*time.Second, func() bool { return spool.Len() == 0 })
	recs := fr.detail()
	if len(recs) != 3 {
		t.Fatalf("FreeRADIUS recorded %d records, want 3: %v", len(recs), recs)
	}
	want := []map[string]string{
		{"Acct-Status-Type": "Start", "Class": "0x636c6173732d706170", "Framed-IP-Address": "10.1.2.3", "Tunnel-Type:1": "L2TP"},
		{"Acct-Status-Type": "Interim-Update", "Acct-Input-Octets": "1000", "Acct-Output-Octets": "2000", "Acct-Input-Gigawords": "0", "Acct-Input-Packets": "10", "Acct-Output-Packets": "20", "Acct-Session-Time": "300"},
		{"Acct-Status-Type": "Stop", "Acct-Input-Octets": "7", "Acct-Input-Gigawords": "5", "Acct-Output-Octets": "9", "Acct-Output-Gigawords": "3", "Acct-Session-Time": "600", "Acct-Terminate-Cause": "User-Request", "Class": "0x636c6173732d706170"},
	}
	for i, w := range want {
		w["User-Name"], w["Acct-Session-Id"], w["NAS-Identifier"], w["NAS-Port-Type"] = "papuser", "sess-papuser", "l2tpd-test", "Virtual"
		for k, v := range w {
			if recs[i][k] != v {
				t.Errorf("record %d %s = %q, want %q", i, k, recs[i][k], v)
			}
		}
		if _, ok := recs[i]["Acct-Delay-Time"]; !ok {
			t.Errorf("record %d has no Acct-Delay-Time", i)
		}
	}
	if st := a.Stats(); st.Delivered != 3 {
		t.Errorf("delivered %d", st.Delivered)
	}
}

// Failover from a primary that never answers (RFC 5080 §2.2.1 keeps
// retransmissions identical; the secondary gets a fresh request).
func TestFreeRADIUSFailover(t *testing.T) {
	fr := newFreeRADIUS(t)
	fr.start()
	dead := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePorts(t, 1)[0])
	c, err := NewClient(Config{
		Auth: []Server{
			{Addr: fr.auth(), Secret: "testing123", Priority: 2},
			{Addr: dead, Secret: "testing123", Priority: 1},
		},
		Timing: Timing{Timeout: 150 * time.Millisecond, Retries: 1, DeadAfter: 1, DeadTime: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := e2eRequest("papuser")
	req.Auth.Protocol, req.Auth.Password = ppp.AuthPAP, []byte("pappass")
	r := authSync(t, c, req)
	if r.Err != nil || !r.Accept || r.Server != fr.auth() {
		t.Fatalf("result %+v", r)
	}
	st := c.Stats()
	if st.Failovers != 1 || st.Retransmissions != 1 || st.ServersDead != 1 {
		t.Fatalf("stats %+v", st)
	}
	if sv := c.Servers(); !sv[0].Dead || sv[0].Addr != dead || sv[1].Dead {
		t.Fatalf("servers %+v", sv)
	}
	// The dead primary is skipped now.
	begin := time.Now()
	if r := authSync(t, c, req); !r.Accept || time.Since(begin) > 100*time.Millisecond {
		t.Fatalf("second request %+v after %v", r, time.Since(begin))
	}
	if st := c.Stats(); st.Failovers != 1 {
		t.Fatalf("second request failed over again: %+v", st)
	}
}

// Accounting during an outage of every server is kept and delivered
// once when a server returns; Status-Server (RFC 5997) finds it.
func TestFreeRADIUSAccountingOutage(t *testing.T) {
	fr := newFreeRADIUS(t)
	dead := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), freePorts(t, 1)[0])
	c, err := NewClient(Config{
		Acct: []Server{{Addr: dead, Secret: "testing123"}, {Addr: fr.acct(), Secret: "testing123", Priority: 1}},
		Timing: Timing{Timeout: 200 * time.Millisecond, Retries: 1, DeadAfter: 1,
			DeadTime: 300 * time.Millisecond, Probe: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	spool := &MemSpool{}
	a := NewAccounting(c, spool, AcctConfig{RetryInterval: 100 * time.Millisecond})
	defer a.Close()
	s := e2eRequest("papuser").Session
	s.User = "papuser"
	a.Send(AcctRecord{Session: s, Status: AcctStart})
	a.Send(AcctRecord{Session: s, Status: AcctStop, InputOctets: 42, TerminateCause: CauseAdminReset})
	waitFor(t, "both servers dead", 10*time.Second, func() bool { return c.Stats().ServersDead >= 2 })
	if spool.Len() != 2 || len(fr.detail()) != 0 {
		t.Fatalf("spool %d detail %v", spool.Len(), fr.detail())
	}
	fr.start()
	waitFor(t, "spool to drain", 15*time.Second, func() bool { return spool.Len() == 0 })
	recs := fr.detail()
	if len(recs) != 2 || recs[0]["Acct-Status-Type"] != "Start" || recs[1]["Acct-Status-Type"] != "Stop" ||
		recs[1]["Acct-Input-Octets"] != "42" || recs[1]["Acct-Terminate-Cause"] != "Admin-Reset" {
		t.Fatalf("FreeRADIUS recorded %v", recs)
	}
	if c.Stats().ServersRevived == 0 {
		t.Errorf("no revival counted: %+v", c.Stats())
	}
}

type recordingSessions struct {
	mu      sync.Mutex
	matches []Match
	changes []Change
	n       int
}

func (r *recordingSessions) Disconnect(m Match) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.matches = append(r.matches, m)
	if m.AcctSessionID == "live" || m.UserName == "live-user" {
		return r.n, nil
	}
	return 0, nil
}

func (r *recordingSessions) Change(m Match, c Change) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.matches = append(r.matches, m)
	r.changes = append(r.changes, c)
	if m.AcctSessionID == "live" {
		return r.n, nil
	}
	return 0, nil
}

// RFC 5176 §3 with radclient as the Dynamic Authorization Client.
func TestDAEWithRadclient(t *testing.T) {
	rc, err := exec.LookPath("radclient")
	if err != nil {
		if os.Getenv("L2TPD_E2E") == "1" {
			t.Fatal("L2TPD_E2E=1 but radclient is not installed (apt-get install freeradius-utils)")
		}
		t.Skip("radclient not installed")
	}
	conn, addr := listenDAE(t)
	sess := &recordingSessions{n: 1}
	d := NewDAE(DAEConfig{Clients: []DAEClient{{Addr: netip.MustParseAddr("127.0.0.1"), Secret: "testing123"}}, NAS: NAS{Identifier: "l2tpd-test"}}, sess)
	go d.Serve(conn)
	defer conn.Close()
	run := func(kind, attrs string) string {
		cmd := exec.Command(rc, "-x", "-r", "1", "-t", "3", addr.String(), kind, "testing123")
		cmd.Stdin = strings.NewReader(attrs)
		out, _ := cmd.CombinedOutput() // a NAK exits non-zero
		return string(out)
	}
	if out := run("disconnect", "Acct-Session-Id = live, Message-Authenticator = 0x00\n"); !strings.Contains(out, "Received Disconnect-ACK") {
		t.Fatalf("disconnect of a live session:\n%s", out)
	}
	if out := run("disconnect", "Acct-Session-Id = gone\n"); !strings.Contains(out, "Received Disconnect-NAK") || !strings.Contains(out, "Session-Context-Not-Found") {
		t.Fatalf("disconnect of an unknown session:\n%s", out)
	}
	if out := run("coa", "Acct-Session-Id = live, Session-Timeout = 120, Idle-Timeout = 30\n"); !strings.Contains(out, "Received CoA-ACK") {
		t.Fatalf("CoA:\n%s", out)
	}
	if out := run("disconnect", "Acct-Session-Id = live, NAS-Identifier = other-nas\n"); !strings.Contains(out, "Received Disconnect-NAK") || !strings.Contains(out, "NAS-Identification-Mismatch") {
		t.Fatalf("NAS mismatch:\n%s", out)
	}
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if len(sess.matches) != 3 || sess.matches[0].AcctSessionID != "live" || sess.matches[1].AcctSessionID != "gone" {
		t.Fatalf("matches %+v", sess.matches)
	}
	if len(sess.changes) != 1 || sess.changes[0] != (Change{SessionTimeout: 2 * time.Minute, IdleTimeout: 30 * time.Second}) {
		t.Fatalf("changes %+v", sess.changes)
	}
	if st := d.Stats(); st.ACKs != 2 || st.NAKs != 2 {
		t.Fatalf("stats %+v", st)
	}
}
