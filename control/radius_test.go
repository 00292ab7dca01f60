package control

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/aaa/radiustest"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/ppp"
)

const radiusUsers = `alice Cleartext-Password := "wonderland"
	Framed-IP-Address = 100.64.0.15,
	Class = "gold",
	Acct-Interim-Interval = 60
carol Cleartext-Password := "short"
	Session-Timeout = 2
`

// A subscriber authenticated by a real FreeRADIUS: the Framed-IP-Address
// is used, accounting Start reaches the server with the Class echoed, a
// Disconnect-Request sent with radclient ends the session with an
// Acct-Stop (Admin-Reset), and a Session-Timeout ends another one.
func TestRADIUSSubscriber(t *testing.T) {
	fr := radiustest.New(t, radiusUsers)
	fr.Start()
	daePort := radiustest.FreePorts(t, 1)[0]
	s, addr := pppServer(t, func(c *Config) {
		c.PPP.IPv6 = false
		c.PPP.Auth = []string{"chap", "pap"}
		c.RADIUS = RADIUS{
			Auth:          []RADIUSServer{{Addr: fr.Auth(), Secret: radiustest.Secret}},
			Acct:          []RADIUSServer{{Addr: fr.Acct(), Secret: radiustest.Secret}},
			NASIdentifier: "l2tpd-test",
			Timeout:       time.Second,
			DAEListen:     netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), daePort).String(),
			DAEClients:    []DAEClient{{Addr: netip.MustParseAddr("127.0.0.1"), Secret: "dae-secret"}},
		}
	})
	l := newSubscriberLAC(t, addr, 2, "alice", "wonderland", []ppp.AuthProto{ppp.AuthCHAPMD5}, false)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	var si SessionInfo
	if !l.pump(func() bool {
		ss, _ := s.Sessions(context.Background())
		if len(ss) == 1 && ss[0].IPv4 != "" {
			si = ss[0]
			return true
		}
		return false
	}, 5*time.Second) {
		t.Fatalf("not online\n%s", fr.Log())
	}
	if si.IPv4 != "100.64.0.15" || si.UserName != "alice" {
		t.Fatalf("session %+v; want RADIUS's Framed-IP-Address", si)
	}
	if st, _ := s.Stats(context.Background()); len(st.Servers) == 0 || st.Servers[0].Responses == 0 || st.Servers[0].LatencySeconds <= 0 ||
		st.Counters["radius_requests"] == 0 {
		t.Fatalf("RADIUS server stats %+v, counters %v", st.Servers, st.Counters)
	}
	defer func() {
		if t.Failed() {
			st, _ := s.Stats(context.Background())
			t.Logf("detail: %v\ncounters %v", fr.Detail(), st.Counters)
			t.Logf("radius log tail: %s", tail(fr.Log(), 3000))
		}
	}()
	waitFor(t, "Accounting Start at FreeRADIUS", func() bool {
		for _, r := range fr.Detail() {
			if r["Acct-Status-Type"] == "Start" && r["User-Name"] == "alice" && r["Framed-IP-Address"] == "100.64.0.15" &&
				strings.Contains(r["Class"], "0x676f6c64") {
				return true
			}
		}
		return false
	})

	// RFC 5176: Disconnect-Request by User-Name from radclient.
	if _, err := exec.LookPath("radclient"); err != nil {
		t.Fatal("radclient not installed (apt-get install freeradius-utils)")
	}
	cmd := exec.Command("radclient", "-x", "-r", "1", "-t", "3", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), daePort).String(), "disconnect", "dae-secret")
	cmd.Stdin = strings.NewReader("User-Name = \"alice\"\nNAS-Identifier = \"l2tpd-test\"\n")
	done := make(chan []byte, 1)
	go func() { out, _ := cmd.CombinedOutput(); done <- out }()
	down := l.sessionDown(5 * time.Second)
	out := <-done
	if !strings.Contains(string(out), "Disconnect-ACK") {
		t.Fatalf("radclient: %s", out)
	}
	if down == nil || down.Result.Code != wire.CDNAdmin {
		t.Fatalf("LAC saw %+v after the Disconnect-Request", down)
	}
	waitFor(t, "Accounting Stop with Admin-Reset", func() bool {
		for _, r := range fr.Detail() {
			if r["Acct-Status-Type"] == "Stop" && r["User-Name"] == "alice" && r["Acct-Terminate-Cause"] == "Admin-Reset" {
				return true
			}
		}
		return false
	})

	// Session-Timeout from the Access-Accept ends carol's session.
	l2 := newSubscriberLAC(t, addr, 2, "carol", "short", []ppp.AuthProto{ppp.AuthPAP}, false)
	l2.dial(t, nil)
	l2.client.Start(time.Now(), &l2.out)
	l2.flush()
	if !l2.pump(func() bool { return l2.client.IPCPState() == ppp.StateOpened }, 5*time.Second) {
		t.Fatal("carol not online")
	}
	if l2.sessionDown(6*time.Second) == nil {
		t.Fatal("Session-Timeout did not end the session")
	}
	waitFor(t, "Accounting Stop with Session-Timeout", func() bool {
		for _, r := range fr.Detail() {
			if r["Acct-Status-Type"] == "Stop" && r["User-Name"] == "carol" && r["Acct-Terminate-Cause"] == "Session-Timeout" {
				return true
			}
		}
		return false
	})
	// A wrong password is rejected by RADIUS.
	l3 := newSubscriberLAC(t, addr, 2, "alice", "wrong", []ppp.AuthProto{ppp.AuthPAP}, false)
	l3.dial(t, nil)
	l3.client.Start(time.Now(), &l3.out)
	l3.flush()
	if !l3.pump(func() bool { return l3.has(ppp.EventLinkDown) }, 5*time.Second) {
		t.Fatal("a wrong password was not refused")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Idle-Timeout (RFC 2865 §5.28) counts IP traffic only: LCP keepalives
// flowing every 300ms do not keep an idle session up.
func TestRADIUSIdleTimeoutIgnoresKeepalives(t *testing.T) {
	fr := radiustest.New(t, "dave Cleartext-Password := \"idle\"\n\tIdle-Timeout = 2\n")
	fr.Start()
	s, addr := pppServer(t, func(c *Config) {
		c.PPP.IPv6 = false
		c.PPP.EchoInterval = 300 * time.Millisecond
		c.RADIUS = RADIUS{Auth: []RADIUSServer{{Addr: fr.Auth(), Secret: radiustest.Secret}}, Timeout: time.Second}
	})
	l := newSubscriberLAC(t, addr, 2, "dave", "idle", []ppp.AuthProto{ppp.AuthPAP}, false)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	if !l.pump(func() bool { return l.client.IPCPState() == ppp.StateOpened }, 5*time.Second) {
		t.Fatal("not online")
	}
	start := time.Now()
	if l.sessionDown(8*time.Second) == nil {
		st, _ := s.Stats(context.Background())
		t.Fatalf("an idle session with keepalives was not ended (counters %v)", st.Counters)
	}
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Fatalf("ended after %v, before its Idle-Timeout", el)
	}
}
