package control

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/l2tpd/l2tpd/control/pool"
	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/ppp"
	"github.com/l2tpd/l2tpd/store"
	"github.com/l2tpd/l2tpd/store/memory"
)

// gateStore is a memory store that stands for a shared database: the
// test takes it down and brings it back.
type gateStore struct {
	*memory.Store
	down atomic.Bool
	// leases counts LeaseIPv4 calls.
	leases atomic.Int64
}

func newGateStore() *gateStore { return &gateStore{Store: memory.New(memory.Config{})} }

func (g *gateStore) gate(op string) error {
	if g.down.Load() {
		return fmt.Errorf("gate: %s: %w", op, store.ErrUnavailable)
	}
	return nil
}

func (g *gateStore) Ping(ctx context.Context) error { return g.gate("ping") }

func (g *gateStore) LeaseIPv4(ctx context.Context, p string, a netip.Addr, owner, node string) error {
	g.leases.Add(1)
	if err := g.gate("lease"); err != nil {
		return err
	}
	return g.Store.LeaseIPv4(ctx, p, a, owner, node)
}

func (g *gateStore) LeaseIPv6(ctx context.Context, p string, pfx netip.Prefix, owner, node string) error {
	if err := g.gate("lease6"); err != nil {
		return err
	}
	return g.Store.LeaseIPv6(ctx, p, pfx, owner, node)
}

func (g *gateStore) AcquireUserSlot(ctx context.Context, user string, max int, session, node string) (bool, error) {
	if err := g.gate("slot"); err != nil {
		return false, err
	}
	return g.Store.AcquireUserSlot(ctx, user, max, session, node)
}

func (g *gateStore) Apply(ctx context.Context, writer string, batch []store.Write) error {
	if err := g.gate("apply"); err != nil {
		return err
	}
	return g.Store.Apply(ctx, writer, batch)
}

func (g *gateStore) AcctEnqueue(ctx context.Context, rec store.AcctRecord) (int64, error) {
	if err := g.gate("acct"); err != nil {
		return 0, err
	}
	return g.Store.AcctEnqueue(ctx, rec)
}

// sharedServer runs a PPP control plane on st as if other nodes shared
// it.
func sharedServer(t *testing.T, st store.Store, mod func(*Config)) (*Server, netip.AddrPort) {
	t.Helper()
	return sharedServerWith(t, st, mod, nil)
}

func sharedServerWith(t *testing.T, st store.Store, mod func(*Config), pre func(*Server)) (*Server, netip.AddrPort) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.RetransmitInitial = 100 * time.Millisecond
	cfg.RetransmitCap = 200 * time.Millisecond
	cfg.Users = map[string]string{"alice": "wonderland", "bob": "builder"}
	cfg.PPP.Auth = []string{"pap"}
	cfg.PPP.LocalIPv4 = netip.MustParseAddr("100.64.0.1")
	cfg.PPP.Pool = "default"
	cfg.Pools = []Pool{{Name: "default",
		IPv4: []AddrRange{{First: netip.MustParseAddr("100.64.0.10"), Last: netip.MustParseAddr("100.64.0.20")}}}}
	cfg.Store = Store{NodeID: "lns-a"}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	s.sharedStore = st
	if pre != nil {
		pre(s)
	}
	return s, runServer(t, s)
}

// connect brings one PAP subscriber up to IPCP and returns the LAC and
// the address it got, or the CDN that refused it.
func connect(t *testing.T, srv netip.AddrPort, user, pass string) (*subscriberLAC, netip.Addr, *tunnel.Event) {
	t.Helper()
	l := newSubscriberLAC(t, srv, 2, user, pass, []ppp.AuthProto{ppp.AuthPAP}, false)
	if !l.pump(func() bool { return l.tun.State() == tunnel.StateEstablished }, 3*time.Second) {
		t.Fatal("tunnel not established")
	}
	sid, err := l.tun.StartCall(time.Now(), tunnel.CallParams{Serial: 1})
	if err != nil {
		t.Fatal(err)
	}
	l.sid = sid
	var down *tunnel.Event
	up := false
	l.pump(func() bool {
		for _, e := range l.tun.Events() {
			switch e.Kind {
			case tunnel.SessionDown:
				down = &e
			case tunnel.SessionUp:
				up = true
				l.client.Start(time.Now(), &l.out)
				l.flush()
			}
		}
		return down != nil || l.client.IPCPState() == ppp.StateOpened
	}, 5*time.Second)
	if down != nil {
		return l, netip.Addr{}, down
	}
	if !up || l.client.IPCPState() != ppp.StateOpened {
		t.Fatalf("%s: neither online nor refused: LCP %v IPCP %v events %v", user, l.client.LCPState(), l.client.IPCPState(), l.events)
	}
	for _, e := range l.events {
		if e.Kind == ppp.EventNetworkUp && e.Network.Protocol == ppp.ProtoIPCP {
			return l, e.Network.LocalIPv4, nil
		}
	}
	t.Fatal("no IPCP address")
	return nil, netip.Addr{}, nil
}

func counter(t *testing.T, s *Server, name string) uint64 {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Counters[name]
}

func leaseOwner(t *testing.T, st store.Store, node string, a netip.Addr) string {
	t.Helper()
	ls, err := st.LeasesIPv4Of(context.Background(), node)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Addr == a {
			return l.Owner
		}
	}
	return ""
}

// An address another node holds in the store is skipped: the subscriber
// gets the next one, which the store then records as this node's.
func TestClaimSkipsAddressesOtherNodesHold(t *testing.T) {
	st := newGateStore()
	ctx := context.Background()
	for _, a := range []string{"100.64.0.10", "100.64.0.11", "100.64.0.12"} {
		if err := st.Store.LeaseIPv4(ctx, "default", netip.MustParseAddr(a), "elsewhere", "lns-b"); err != nil {
			t.Fatal(err)
		}
	}
	s, addr := sharedServer(t, st, nil)
	l, got, down := connect(t, addr, "alice", "wonderland")
	if down != nil {
		t.Fatalf("refused: %+v", down.Result)
	}
	if got != netip.MustParseAddr("100.64.0.13") {
		t.Fatalf("address %v, want 100.64.0.13 (the first one no other node holds)", got)
	}
	sub := sessionOf(t, s)
	if o := leaseOwner(t, st, "lns-a", got); o != sub.AcctSessionID {
		t.Fatalf("store lease of %v owned by %q, want %q", got, o, sub.AcctSessionID)
	}
	if n := counter(t, s, "store_lease_conflicts"); n != 3 {
		t.Fatalf("store_lease_conflicts %d, want 3", n)
	}
	if s.foreign.len() != 3 {
		t.Fatalf("%d addresses marked as another node's, want 3", s.foreign.len())
	}
	// Teardown gives the address back in the store.
	l.tun.CloseSession(time.Now(), l.sid, tunnel.Result{Code: wire.CDNAdmin}, nil)
	waitFor(t, "the store lease released", func() bool {
		l.peer.run(func() bool { return false }, 20*time.Millisecond)
		return leaseOwner(t, st, "lns-a", got) == ""
	})
}

// limits.sessions_per_user counts the user's sessions on every node: one
// held elsewhere refuses the second, with a PPP authentication failure
// whose message says why, and the CDN that follows.
func TestSessionsPerUserAcrossNodes(t *testing.T) {
	st := newGateStore()
	ok, err := st.Store.AcquireUserSlot(context.Background(), "alice", 1, "alice-elsewhere", "lns-b")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	s, addr := sharedServer(t, st, func(c *Config) { c.Limits.SessionsPerUser = 1 })
	_, _, down := connect(t, addr, "alice", "wonderland")
	if down == nil {
		t.Fatal("second session of a user limited to one was admitted")
	}
	// RFC 3145 §3.3: cause 16, authentication failed (PAP).
	if down.Cause == nil || down.Cause.Code != 16 {
		t.Fatalf("CDN %+v cause %+v", down.Result, down.Cause)
	}
	if n := counter(t, s, "user_limit_refused"); n != 1 {
		t.Fatalf("user_limit_refused %d", n)
	}
	// Another user is not affected, and once the other node lets go,
	// alice gets in.
	if _, _, down := connect(t, addr, "bob", "builder"); down != nil {
		t.Fatalf("bob refused: %+v", down.Result)
	}
	if err := st.Store.ReleaseUserSlot(context.Background(), "alice", "alice-elsewhere"); err != nil {
		t.Fatal(err)
	}
	if _, _, down := connect(t, addr, "alice", "wonderland"); down != nil {
		t.Fatalf("alice refused after the other slot was released: %+v", down.Result)
	}
	if n, _ := st.UserSlots(context.Background(), "alice"); n != 1 {
		t.Fatalf("alice holds %d slots in the store, want 1", n)
	}
}

// The local limit works the same with the memory store.
func TestSessionsPerUserMemory(t *testing.T) {
	s, addr := pppServer(t, func(c *Config) { c.Limits.SessionsPerUser = 1; c.PPP.IPv6 = false })
	if _, _, down := connect(t, addr, "alice", "wonderland"); down != nil {
		t.Fatalf("first session refused: %+v", down.Result)
	}
	if _, _, down := connect(t, addr, "alice", "wonderland"); down == nil {
		t.Fatal("second session admitted")
	}
	if n := counter(t, s, "user_limit_refused"); n != 1 {
		t.Fatalf("user_limit_refused %d", n)
	}
}

func waitStoreUp(t *testing.T, s *Server, up bool) {
	t.Helper()
	waitFor(t, fmt.Sprintf("store_up %v", up), func() bool {
		st, err := s.Stats(context.Background())
		return err == nil && st.StoreUp == up
	})
}

// Outage policy refuse: while the store is unreachable, a new call is
// refused with a CDN saying temporary lack of resources (RFC 2661
// §4.4.2 result 4), and the live session stays up.
func TestOutageRefuse(t *testing.T) {
	st := newGateStore()
	s, addr := sharedServer(t, st, func(c *Config) { c.Store.OutagePolicy = OutageRefuse })
	live, _, down := connect(t, addr, "alice", "wonderland")
	if down != nil {
		t.Fatalf("refused: %+v", down.Result)
	}
	st.down.Store(true)
	waitStoreUp(t, s, false)
	_, _, down = connect(t, addr, "bob", "builder")
	if down == nil || down.Result.Code != wire.CDNNoResourcesTemp {
		t.Fatalf("during the outage: %+v", down)
	}
	if live.pump(func() bool { return live.client.LCPState() != ppp.StateOpened }, 300*time.Millisecond) {
		t.Fatal("the live session went down during the outage")
	}
	st.down.Store(false)
	waitStoreUp(t, s, true)
	if _, _, down := connect(t, addr, "bob", "builder"); down != nil {
		t.Fatalf("after the outage: %+v", down.Result)
	}
}

// Outage policy admit: a session set up while the store is unreachable
// gets a local address; when the store answers again its lease is
// written, and one whose address another node took meanwhile is ended.
func TestOutageAdmitReconciles(t *testing.T) {
	st := newGateStore()
	s, addr := sharedServer(t, st, nil)
	st.down.Store(true)
	waitStoreUp(t, s, false)
	_, a1, down := connect(t, addr, "alice", "wonderland")
	if down != nil {
		t.Fatalf("refused during the outage: %+v", down.Result)
	}
	l2, a2, down := connect(t, addr, "bob", "builder")
	if down != nil {
		t.Fatalf("refused during the outage: %+v", down.Result)
	}
	if n := counter(t, s, "store_outage_admitted"); n != 2 {
		t.Fatalf("store_outage_admitted %d", n)
	}
	// Another node handed out bob's address meanwhile.
	if err := st.Store.LeaseIPv4(context.Background(), "default", a2, "other", "lns-b"); err != nil {
		t.Fatal(err)
	}
	st.down.Store(false)
	waitStoreUp(t, s, true)
	waitFor(t, "alice's lease written", func() bool { return leaseOwner(t, st, "lns-a", a1) != "" })
	if down := l2.sessionDown(3 * time.Second); down == nil {
		t.Fatal("the session whose address another node holds was not ended")
	}
	if n := counter(t, s, "store_reconcile_conflicts"); n != 1 {
		t.Fatalf("store_reconcile_conflicts %d", n)
	}
	ls, _ := st.LeasesIPv4Of(context.Background(), "lns-b")
	if len(ls) != 1 || ls[0].Addr != a2 || ls[0].Owner != "other" {
		t.Fatalf("the other node's lease changed: %+v", ls)
	}
}

// Marks on addresses other nodes hold expire with the time given, not
// the clock.
func TestForeignMarksExpire(t *testing.T) {
	p, err := pool.New("p", []pool.Range{{First: netip.MustParseAddr("10.0.0.1"), Last: netip.MustParseAddr("10.0.0.2")}}, netip.Prefix{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var f foreignMarks
	t0 := time.Unix(1000, 0)
	a, _ := p.LeaseIPv4("candidate")
	f.mark(p, a, t0)
	b, _ := p.LeaseIPv4("x")
	if b == a {
		t.Fatal("a marked address was leased")
	}
	p.ReleaseIPv4(b)
	if n := f.expire(t0.Add(foreignTTL - time.Nanosecond)); n != 0 {
		t.Fatalf("expired %d before its time", n)
	}
	for _, l := range p.Leases() {
		if l.Owner != foreignOwner {
			t.Fatalf("lease %+v", l)
		}
	}
	if n := f.expire(t0.Add(foreignTTL)); n != 1 || f.len() != 0 {
		t.Fatalf("expired %d, left %d", n, f.len())
	}
	if len(p.Leases()) != 0 {
		t.Fatalf("still leased: %+v", p.Leases())
	}
}

// IPv6 prefixes are claimed like addresses: one another node holds in
// the store is skipped, and the router advertisement (RFC 4861 §6.2.4)
// carries the prefix the store granted.
func TestClaimIPv6Prefix(t *testing.T) {
	st := newGateStore()
	held := netip.MustParsePrefix("2001:db8:100::/64")
	if err := st.Store.LeaseIPv6(context.Background(), "default", held, "elsewhere", "lns-b"); err != nil {
		t.Fatal(err)
	}
	s, addr := sharedServer(t, st, func(c *Config) {
		c.PPP.IPv6 = true
		c.Pools[0].IPv6, c.Pools[0].IPv6Length = netip.MustParsePrefix("2001:db8:100::/48"), 64
	})
	l := newSubscriberLAC(t, addr, 2, "alice", "wonderland", []ppp.AuthProto{ppp.AuthPAP}, true)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	if !l.pump(func() bool { return l.client.IPv6CPState() == ppp.StateOpened && len(l.ras) > 0 }, 5*time.Second) {
		t.Fatalf("no IPv6 prefix: IPv6CP %v, %d RAs", l.client.IPv6CPState(), len(l.ras))
	}
	si := sessionOf(t, s)
	got := netip.MustParsePrefix(si.IPv6)
	if got == held {
		t.Fatalf("got %v, which another node holds", got)
	}
	checkRA(t, l.ras[0], got)
	ls, err := st.LeasesIPv6Of(context.Background(), "lns-a")
	if err != nil || len(ls) != 1 || ls[0].Prefix != got || ls[0].Owner != si.AcctSessionID {
		t.Fatalf("store IPv6 leases %+v %v, want %v owned by %s", ls, err, got, si.AcctSessionID)
	}
	if n := counter(t, s, "store_lease_conflicts"); n != 1 {
		t.Fatalf("store_lease_conflicts %d", n)
	}
	l.tun.CloseSession(time.Now(), l.sid, tunnel.Result{Code: wire.CDNAdmin}, nil)
	waitFor(t, "the store's IPv6 lease released", func() bool {
		l.peer.run(func() bool { return false }, 20*time.Millisecond)
		ls, _ := st.LeasesIPv6Of(context.Background(), "lns-a")
		return len(ls) == 0
	})
}

// The claim step by step, the test standing in for the claim workers:
// the subscriber's authentication is held (its PAP retransmissions
// ignored, RFC 1334 §2.2.1) until the store answers; a conflict brings a
// claim for another address; the grant completes PPP with it; an answer
// for a subscriber gone meanwhile gives back what the store granted.
func TestClaimHeldUntilTheStoreAnswers(t *testing.T) {
	st := newGateStore()
	s, addr := sharedServerWith(t, st, nil, func(s *Server) { s.claimsByHand = true })
	l := newSubscriberLAC(t, addr, 2, "alice", "wonderland", []ppp.AuthProto{ppp.AuthPAP}, false)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	var job claimJob
	next := func() bool {
		select {
		case job = <-s.claims.jobs:
			return true
		default:
			return false
		}
	}
	// Within less than one LCP restart interval (3 s): the client's
	// first Configure-Request, sent right behind the ICCN, must not be
	// lost (RFC 2661 §7.4.1); a lost one would only be repeated at 3 s.
	if !l.pump(next, 2500*time.Millisecond) {
		t.Fatalf("no claim after the authentication: LCP %v, client events %v", l.client.LCPState(), l.events)
	}
	first := job
	if !first.addr.IsValid() || first.owner == "" || first.pool != "default" {
		t.Fatalf("claim %+v", first)
	}
	// Held: PAP retransmits, nothing is answered, nothing else claimed.
	if l.pump(func() bool { return l.has(ppp.EventAuthenticated) || next() }, 3500*time.Millisecond) {
		t.Fatalf("answered or claimed again before the store answered: client events %v, job %+v, LCP %v", l.events, job, l.client.LCPState())
	}
	if l.client.LCPState() != ppp.StateOpened {
		t.Fatalf("LCP %v while the claim is held; client events %v", l.client.LCPState(), l.events)
	}
	answer := func(j claimJob, err error) { j.sh.claimed <- claimResult{claimJob: j, slotOK: true, err: err} }
	answer(first, fmt.Errorf("test: %w", store.ErrLeased))
	if !l.pump(next, 2*time.Second) {
		t.Fatal("no claim for another address after a conflict")
	}
	second := job
	if second.addr == first.addr || second.owner != first.owner {
		t.Fatalf("second claim %+v after %+v", second, first)
	}
	answer(second, nil)
	if !l.pump(func() bool { return l.client.IPCPState() == ppp.StateOpened }, 3*time.Second) {
		t.Fatalf("not online after the grant: %v", l.events)
	}
	if si := sessionOf(t, s); si.IPv4 != second.addr.String() {
		t.Fatalf("online with %s, granted %v", si.IPv4, second.addr)
	}

	// An answer for a subscriber that is gone: what it was granted is
	// released in the store.
	late := second
	late.addr = netip.MustParseAddr("100.64.0.19")
	if err := st.Store.LeaseIPv4(context.Background(), "default", late.addr, late.owner, "lns-a"); err != nil {
		t.Fatal(err)
	}
	late.sub = &subscriber{}
	answer(late, nil)
	waitFor(t, "the late grant released", func() bool { return leaseOwner(t, st, "lns-a", late.addr) == "" })
	if n := counter(t, s, "store_late_claims"); n != 1 {
		t.Fatalf("store_late_claims %d", n)
	}
}
