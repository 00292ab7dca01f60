package lac_test

import (
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/l2tpd/l2tpd/control"
	"github.com/l2tpd/l2tpd/control/lac"
	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/ppp"
)

// startLNS runs the product's LNS on loopback with local users.
func startLNS(t *testing.T, secret string, mods ...func(*control.Config)) (*control.Server, netip.AddrPort) {
	t.Helper()
	cfg := control.DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.RetransmitInitial = 100 * time.Millisecond
	cfg.RetransmitCap = 200 * time.Millisecond
	cfg.Default.Secret = secret
	cfg.Default.HideAVPs = secret != ""
	cfg.Users = map[string]string{"alice": "wonderland"}
	cfg.PPP.Auth = []string{"chap", "pap", "mschapv2"}
	cfg.PPP.LocalIPv4 = netip.MustParseAddr("100.64.0.1")
	cfg.PPP.Pool = "default"
	cfg.Pools = []control.Pool{{Name: "default",
		IPv4: []control.AddrRange{{First: netip.MustParseAddr("100.64.0.10"), Last: netip.MustParseAddr("100.64.0.250")}}}}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := control.New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("LNS did not stop")
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("LNS: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("LNS not ready")
	}
	return s, s.LocalAddrs()[0].(*net.UDPAddr).AddrPort()
}

func startLAC(t *testing.T) *lac.LAC {
	t.Helper()
	l, err := lac.New(lac.Config{HostName: "test-lac", Shards: 2, Listen: []string{"127.0.0.1:0"},
		RetransmitInitial: 100 * time.Millisecond, RetransmitCap: 200 * time.Millisecond}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("LAC Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("LAC did not stop")
		}
	})
	<-l.Ready()
	return l
}

// subscribers tracks PPP clients across shard goroutines.
type subscribers struct {
	mu     sync.Mutex
	online map[lac.CallID]netip.Addr
	down   map[lac.CallID]lac.Reason
}

func (s *subscribers) client(t *testing.T, l *lac.LAC, user, pass string, auth ppp.AuthProto) *lac.Client {
	p, err := ppp.NewSession(ppp.Config{Role: ppp.RoleClient, Rand: rand.Reader, User: user, Password: pass,
		Auth: []ppp.AuthProto{auth}, IPv4: true})
	if err != nil {
		t.Fatal(err)
	}
	return &lac.Client{LAC: l, PPP: p,
		OnEvent: func(c *lac.Client, e ppp.Event, now time.Time) {
			if e.Kind == ppp.EventNetworkUp && e.Network.Protocol == ppp.ProtoIPCP {
				s.mu.Lock()
				s.online[c.ID] = e.Network.LocalIPv4
				s.mu.Unlock()
			}
		},
		OnDown: func(c *lac.Client, r lac.Reason) {
			s.mu.Lock()
			s.down[c.ID] = r
			s.mu.Unlock()
		},
	}
}

func (s *subscribers) count() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.online), len(s.down)
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Subscribers dialled through the LAC engine bring PPP up against the
// product's LNS (RFC 2661 §5: tunnel with challenge/response and hidden
// AVPs, incoming calls; RFC 1661/1994/1332 over the data channel), each
// gets a distinct pool address, and hanging up clears them at the LNS
// (CDN, RFC 2661 §5.6).
func TestSubscribersAgainstLNS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version uint8
		secret  string
		auth    ppp.AuthProto
	}{
		{"v2-secret-hidden-chap", 2, "s3cret", ppp.AuthCHAPMD5},
		{"v2-pap", 2, "", ppp.AuthPAP},
		{"v3-secret-mschapv2", 3, "s3cret", ppp.AuthMSCHAPv2},
		{"v3-fallback-capable", 0, "", ppp.AuthCHAPMD5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := startLNS(t, tc.secret)
			l := startLAC(t)
			subs := &subscribers{online: map[lac.CallID]netip.Addr{}, down: map[lac.CallID]lac.Reason{}}
			cand := []lac.LNS{{Name: "lns", Addr: addr, Secret: []byte(tc.secret), HideAVPs: tc.secret != "", Version: tc.version,
				MaxSessionsPerTunnel: 8}}
			const n = 20
			var ids []lac.CallID
			for i := 0; i < n; i++ {
				c := subs.client(t, l, "alice", "wonderland", tc.auth)
				id, err := l.Dial(lac.CallRequest{UserName: "alice", CallingNumber: "sub"}, cand, c)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			waitFor(t, "all subscribers online", 10*time.Second, func() bool { up, _ := subs.count(); return up == n })
			if l.Sessions() != n || l.Tunnels() < 3 {
				t.Fatalf("LAC: %d sessions over %d tunnels", l.Sessions(), l.Tunnels())
			}
			ss, err := srv.Sessions(context.Background())
			if err != nil || len(ss) != n {
				t.Fatalf("LNS sessions %d %v", len(ss), err)
			}
			seen := map[netip.Addr]bool{}
			subs.mu.Lock()
			for _, a := range subs.online {
				if seen[a] || !a.IsValid() {
					t.Errorf("address %v twice or invalid", a)
				}
				seen[a] = true
			}
			subs.mu.Unlock()
			for _, si := range ss {
				if si.PPPState != "network" || !seen[netip.MustParseAddr(si.IPv4)] {
					t.Errorf("LNS session %+v", si)
				}
			}
			for _, id := range ids {
				l.Hangup(id, tunnel.Result{}, nil)
			}
			waitFor(t, "calls down", 5*time.Second, func() bool { _, d := subs.count(); return d == n })
			waitFor(t, "LNS sessions cleared", 5*time.Second, func() bool {
				ss, _ := srv.Sessions(context.Background())
				return len(ss) == 0
			})
		})
	}
}

// A wrong password: the LNS clears the call (RFC 3145 cause 16 over a
// CDN) and the handler hears it from the peer.
func TestAuthFailureReported(t *testing.T) {
	_, addr := startLNS(t, "")
	l := startLAC(t)
	subs := &subscribers{online: map[lac.CallID]netip.Addr{}, down: map[lac.CallID]lac.Reason{}}
	c := subs.client(t, l, "alice", "wrong", ppp.AuthPAP)
	id, err := l.Dial(lac.CallRequest{UserName: "alice"}, []lac.LNS{{Addr: addr, Version: 2}}, c)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "call down", 10*time.Second, func() bool { _, d := subs.count(); return d == 1 })
	subs.mu.Lock()
	r := subs.down[id]
	subs.mu.Unlock()
	if !r.ByPeer || r.Err != nil {
		t.Fatalf("reason %+v", r)
	}
}

// Forty tunnels to one LNS from two shards, opened one at a time: a
// shard that waits for another's tunnel to open is woken when it is.
func TestManyTunnelsOneAtATime(t *testing.T) {
	_, addr := startLNS(t, "", func(c *control.Config) { c.Limits.SCCRQRate, c.Limits.SCCRQRatePerPeer = 0, 0 })
	l := startLAC(t)
	subs := &subscribers{online: map[lac.CallID]netip.Addr{}, down: map[lac.CallID]lac.Reason{}}
	const n = 40
	for i := 0; i < n; i++ {
		c := subs.client(t, l, "alice", "wonderland", ppp.AuthCHAPMD5)
		if _, err := l.Dial(lac.CallRequest{Group: uint32(i + 1)}, []lac.LNS{{Addr: addr, Version: 2}}, c); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all subscribers online", 20*time.Second, func() bool {
		up, down := subs.count()
		if down > 0 {
			subs.mu.Lock()
			defer subs.mu.Unlock()
			t.Fatalf("%d up, down: %v", up, subs.down)
		}
		return up == n
	})
	if l.Tunnels() != n {
		t.Fatalf("%d tunnels, want %d", l.Tunnels(), n)
	}
}
