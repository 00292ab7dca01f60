package control

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/aaa/radiustest"
	"github.com/l2tpd/l2tpd/ppp"
)

// online brings user's PPP session up through its own tunnel.
func online(t *testing.T, addr netip.AddrPort, user, pass string) *subscriberLAC {
	t.Helper()
	l := newSubscriberLAC(t, addr, 2, user, pass, []ppp.AuthProto{ppp.AuthPAP}, false)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	if !l.pump(func() bool { return l.client.IPCPState() == ppp.StateOpened }, 5*time.Second) {
		t.Fatalf("%s not online", user)
	}
	return l
}

func sessionOfUser(t *testing.T, s *Server, user string) (SessionInfo, bool) {
	t.Helper()
	ss, err := s.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range ss {
		if si.UserName == user {
			return si, true
		}
	}
	return SessionInfo{}, false
}

// acctRecords counts user's accounting records of a type at fr.
func acctRecords(fr *radiustest.FreeRADIUS, user, status string) int {
	n := 0
	for _, r := range fr.Detail() {
		if r["User-Name"] == user && r["Acct-Status-Type"] == status {
			n++
		}
	}
	return n
}

// RADIUS follows the configuration live, through every transition: added
// to a daemon with local users only, switched from one FreeRADIUS to
// another while the first is down and holds an undelivered Stop, and
// removed again. New sessions authenticate with what the configuration
// says at the time; live sessions are untouched and each record of a
// session that started with accounting is delivered exactly once.
func TestReloadRADIUSLive(t *testing.T) {
	users := "alice Cleartext-Password := \"wonderland\"\nbob Cleartext-Password := \"builder\"\n"
	fr1 := radiustest.New(t, users)
	fr1.Start()
	fr2 := radiustest.New(t, users)
	fr2.Start()
	defer func() {
		if t.Failed() {
			t.Logf("fr1 detail %v\nfr2 detail %v", fr1.Detail(), fr2.Detail())
		}
	}()
	s, addr := pppServer(t, func(c *Config) {
		c.PPP.IPv6 = false
		c.PPP.Auth = []string{"pap"}
		c.Users = map[string]string{"carol": "local"}
	})
	ctx := context.Background()
	reload := func(mod func(*Config)) Diff {
		t.Helper()
		next := *s.config()
		mod(&next)
		d, err := s.Reload(ctx, next, false)
		if err != nil || !d.Applied {
			t.Fatalf("reload: %+v %v", d, err)
		}
		return d
	}
	radiusOf := func(fr *radiustest.FreeRADIUS) RADIUS {
		return RADIUS{
			Auth:    []RADIUSServer{{Addr: fr.Auth(), Secret: radiustest.Secret}},
			Acct:    []RADIUSServer{{Addr: fr.Acct(), Secret: radiustest.Secret}},
			Timeout: 500 * time.Millisecond, Retries: 0,
		}
	}

	// 1. Local users only: carol, no accounting anywhere.
	carol := online(t, addr, "carol", "local")

	// 2. RADIUS added: alice authenticates at fr1, her Start goes there.
	d := reload(func(c *Config) { c.RADIUS = radiusOf(fr1) })
	if len(d.RequiresRestart) != 0 {
		t.Fatalf("adding RADIUS needs a restart: %v", d.RequiresRestart)
	}
	alice := online(t, addr, "alice", "wonderland")
	waitFor(t, "alice's Start at fr1", func() bool { return acctRecords(fr1, "alice", "Start") == 1 })

	// 3. fr1 goes down; alice's Stop cannot be delivered.
	fr1.Stop()
	si, _ := sessionOfUser(t, s, "alice")
	if err := s.ClearSession(ctx, si.SessionID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Stop to time out at fr1", func() bool {
		st, _ := s.Stats(ctx)
		return st.Counters["radius_timeouts"] > 0 && st.AcctQueue == 1
	})

	// 4. Switch to fr2: the spooled Stop goes there, bob authenticates
	// there, and only fr2's servers are reported.
	reload(func(c *Config) { c.RADIUS = radiusOf(fr2) })
	waitFor(t, "alice's Stop at fr2", func() bool { return acctRecords(fr2, "alice", "Stop") == 1 })
	bob := online(t, addr, "bob", "builder")
	waitFor(t, "bob's Start at fr2", func() bool { return acctRecords(fr2, "bob", "Start") == 1 })
	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Servers) != 2 || st.Servers[0].Addr != fr2.Auth().String() || st.Servers[1].Addr != fr2.Acct().String() {
		t.Fatalf("servers after the switch: %+v", st.Servers)
	}
	if st.Counters["radius_timeouts"] == 0 {
		t.Fatal("counters reset by the switch")
	}

	// 5. RADIUS removed: dave authenticates locally; bob stays online
	// and his Stop still reaches fr2.
	d = reload(func(c *Config) {
		c.RADIUS = RADIUS{Timeout: 3 * time.Second, Retries: 2}
		c.Users = map[string]string{"carol": "local", "dave": "local"}
	})
	online(t, addr, "dave", "local")
	bs, ok := sessionOfUser(t, s, "bob")
	if !ok || bs.PPPState != "network" {
		t.Fatalf("bob after RADIUS was removed: %+v", bs)
	}
	if err := s.ClearSession(ctx, bs.SessionID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's Stop at fr2 after RADIUS was removed", func() bool { return acctRecords(fr2, "bob", "Stop") == 1 })
	waitFor(t, "an empty spool", func() bool { st, _ := s.Stats(ctx); return st.AcctQueue == 0 })

	// Exactly once each; carol and dave never accounted.
	time.Sleep(300 * time.Millisecond)
	for _, c := range []struct {
		fr           *radiustest.FreeRADIUS
		user, status string
		want         int
	}{
		{fr1, "alice", "Start", 1}, {fr1, "alice", "Stop", 0}, {fr2, "alice", "Stop", 1}, {fr2, "alice", "Start", 0},
		{fr2, "bob", "Start", 1}, {fr2, "bob", "Stop", 1}, {fr1, "bob", "Start", 0},
		{fr1, "carol", "Start", 0}, {fr2, "carol", "Start", 0}, {fr2, "dave", "Start", 0},
	} {
		if n := acctRecords(c.fr, c.user, c.status); n != c.want {
			t.Errorf("%s %s records at %v: %d, want %d", c.user, c.status, c.fr.Acct(), n, c.want)
		}
	}
	if cs, ok := sessionOfUser(t, s, "carol"); !ok || cs.PPPState != "network" {
		t.Fatalf("carol after three reloads: %+v", cs)
	}
	_, _, _ = carol, alice, bob
}

// The DAE server follows radius.dae: a new address is bound (the old
// one released), a wrong one rejects the reload and keeps the old.
func TestReloadDAE(t *testing.T) {
	ports := radiustest.FreePorts(t, 2)
	at := func(p uint16) string { return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p).String() }
	s, _ := startServer(t, func(c *Config) {
		c.RADIUS.DAEListen = at(ports[0])
		c.RADIUS.DAEClients = []DAEClient{{Addr: netip.MustParseAddr("127.0.0.1"), Secret: "a"}}
	})
	if s.DAEAddr() == nil || s.DAEAddr().String() != at(ports[0]) {
		t.Fatalf("DAE at %v", s.DAEAddr())
	}
	next := *s.config()
	next.RADIUS.DAEListen = at(ports[1])
	next.RADIUS.DAEClients = []DAEClient{{Addr: netip.MustParseAddr("127.0.0.2"), Secret: "b"}}
	if _, err := s.Reload(context.Background(), next, false); err != nil {
		t.Fatal(err)
	}
	if s.DAEAddr().String() != at(ports[1]) {
		t.Fatalf("DAE at %v after the reload", s.DAEAddr())
	}
	// The old port is free again.
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(at(ports[0]))))
	if err != nil {
		t.Fatalf("old DAE port still bound: %v", err)
	}
	// A DAE address in use rejects the reload whole.
	bad := next
	bad.RADIUS.DAEListen = at(ports[0])
	bad.HostName = "changed"
	if _, err := s.Reload(context.Background(), bad, false); err == nil {
		t.Fatal("a reload onto a bound DAE port was applied")
	}
	c.Close()
	if s.DAEAddr().String() != at(ports[1]) || s.config().HostName == "changed" {
		t.Fatal("a rejected reload changed the running state")
	}
}

// A client replaced by a reload is closed only once its requests in
// flight are done: they end with their own answer or timeout, never
// with "client closed".
func TestDrainedClientFinishesInFlight(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	r := RADIUS{Auth: []RADIUSServer{{Addr: silent.LocalAddr().(*net.UDPAddr).AddrPort(), Secret: "s"}}, Timeout: 300 * time.Millisecond}
	s, err := New(DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.radiusClient(r, "lns")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	req := &aaa.Request{Auth: ppp.AuthRequest{Protocol: ppp.AuthPAP, User: "u", Password: []byte("p")}}
	if err := c.Authenticate(req, func(res aaa.Result) { got <- res.Err }); err != nil {
		t.Fatal(err)
	}
	s.drainClient(c, r)
	select {
	case err := <-got:
		if !errors.Is(err, aaa.ErrTimeout) {
			t.Fatalf("in-flight request ended with %v, want its own timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
	s.aaa.drains.Wait()
	if err := c.Authenticate(req, func(aaa.Result) {}); err == nil {
		t.Fatal("the drained client still takes requests")
	}
}
