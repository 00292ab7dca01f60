package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/store"
)

// NewStores returns n stores sharing one fresh, empty backend: for a
// database, n separate connection pools standing for n l2tpd nodes. The
// function arranges their closing with t.Cleanup.
type NewStores func(t *testing.T, n int) []store.Store

// Run runs the whole suite against the backend.
func Run(t *testing.T, newStores NewStores) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewStores)
	}{
		{"RegisterNode", testRegisterNode},
		{"SessionLifecycle", testSessionLifecycle},
		{"SessionIdempotent", testSessionIdempotent},
		{"ActiveSessions", testActiveSessions},
		{"LeasesIPv4", testLeasesIPv4},
		{"LeasesIPv6", testLeasesIPv6},
		{"LeaseRace", testLeaseRace},
		{"UserSlots", testUserSlots},
		{"UserSlotRace", testUserSlotRace},
		{"AcctQueue", testAcctQueue},
		{"AcctOnceAcrossNodes", testAcctOnceAcrossNodes},
		{"Events", testEvents},
		{"Recover", testRecover},
		{"ApplyExactlyOnce", testApplyExactlyOnce},
		{"Async", testAsync},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStores) })
	}
}

// T0 is the suite's reference time, at microsecond precision as a
// database keeps it.
var T0 = time.Date(2024, 3, 1, 12, 0, 0, 123456000, time.UTC)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Session returns a fully populated session record for tests.
func Session(id, node, user string, n int) store.SessionRecord {
	return store.SessionRecord{
		ID:            id,
		Node:          node,
		TunnelID:      uint32(100 + n),
		SessionID:     uint32(0x8000_0000 + n), // L2TPv3 session IDs use all 32 bits
		PeerTunnelID:  uint32(200 + n),
		PeerSessionID: uint32(300 + n),
		Peer:          netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}), 1701),
		User:          user,
		IPv4:          netip.AddrFrom4([4]byte{100, 64, 0, byte(n)}),
		IPv6:          netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(n)}), 56),
		AcctSessionID: fmt.Sprintf("%08X", n),
		Class:         []byte{0xc1, 0, byte(n)},
		Start:         T0.Add(time.Duration(n) * time.Second),
	}
}

func sameTime(a, b time.Time) bool { return a.Equal(b) }

// DiffSession describes how got differs from want, or returns "".
func DiffSession(got, want store.SessionRecord) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.Node != want.Node {
		add("Node", got.Node, want.Node)
	}
	if got.TunnelID != want.TunnelID || got.SessionID != want.SessionID ||
		got.PeerTunnelID != want.PeerTunnelID || got.PeerSessionID != want.PeerSessionID {
		add("IDs", [4]uint32{got.TunnelID, got.SessionID, got.PeerTunnelID, got.PeerSessionID},
			[4]uint32{want.TunnelID, want.SessionID, want.PeerTunnelID, want.PeerSessionID})
	}
	if got.Peer != want.Peer {
		add("Peer", got.Peer, want.Peer)
	}
	if got.User != want.User {
		add("User", got.User, want.User)
	}
	if got.IPv4 != want.IPv4 {
		add("IPv4", got.IPv4, want.IPv4)
	}
	if got.IPv6 != want.IPv6 {
		add("IPv6", got.IPv6, want.IPv6)
	}
	if got.AcctSessionID != want.AcctSessionID {
		add("AcctSessionID", got.AcctSessionID, want.AcctSessionID)
	}
	if !bytes.Equal(got.Class, want.Class) {
		add("Class", got.Class, want.Class)
	}
	if !sameTime(got.Start, want.Start) {
		add("Start", got.Start, want.Start)
	}
	if !sameTime(got.Updated, want.Updated) {
		add("Updated", got.Updated, want.Updated)
	}
	if !sameTime(got.Stop, want.Stop) {
		add("Stop", got.Stop, want.Stop)
	}
	if got.Cause != want.Cause {
		add("Cause", got.Cause, want.Cause)
	}
	if got.Counters != want.Counters {
		add("Counters", got.Counters, want.Counters)
	}
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprint(d)
}

func ids(rs []store.SessionRecord) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testRegisterNode(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	c := ctx(t)
	for i, want := range []int64{1, 2} {
		got, err := ss[0].RegisterNode(c, "lns1")
		if err != nil || got != want {
			t.Fatalf("registration %d of lns1 = %d, %v; want %d", i+1, got, err, want)
		}
	}
	if got, err := ss[1].RegisterNode(c, "lns2"); err != nil || got != 1 {
		t.Fatalf("first registration of lns2 = %d, %v; want 1", got, err)
	}
	// The epoch is shared: the other node's store sees lns1's count.
	if got, err := ss[1].RegisterNode(c, "lns1"); err != nil || got != 3 {
		t.Fatalf("third registration of lns1 through another store = %d, %v; want 3", got, err)
	}
}

func testSessionLifecycle(t *testing.T, newStores NewStores) {
	s := newStores(t, 1)[0]
	c := ctx(t)
	rec := Session("s1", "lns1", "alice", 1)
	if err := s.SessionStart(c, rec); err != nil {
		t.Fatal(err)
	}
	got, err := s.Session(c, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if d := DiffSession(got, rec); d != "" {
		t.Fatalf("after start: %s", d)
	}

	// Counters are 64-bit (RFC 2869 §5.1 Gigawords); the top bit must
	// survive a signed bigint column.
	c1 := store.Counters{InOctets: 1<<63 + 5, OutOctets: 1 << 40, InPackets: 7, OutPackets: 9}
	if err := s.SessionUpdate(c, "s1", c1, T0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Session(c, "s1")
	if got.Counters != c1 || !got.Open() || !got.Updated.Equal(T0.Add(time.Minute)) {
		t.Fatalf("after update: counters %+v open %v updated %v; want %+v open updated %v",
			got.Counters, got.Open(), got.Updated, c1, T0.Add(time.Minute))
	}

	c2 := c1
	c2.InPackets++
	stop := T0.Add(2 * time.Minute)
	if err := s.SessionStop(c, "s1", "User-Request", c2, stop); err != nil {
		t.Fatal(err)
	}
	want := rec
	want.Counters, want.Stop, want.Cause, want.Updated = c2, stop, "User-Request", stop
	got, err = s.Session(c, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if d := DiffSession(got, want); d != "" {
		t.Fatalf("after stop: %s", d)
	}

	// A session without addresses, peer or class stores them as absent.
	bare := store.SessionRecord{ID: "s2", Node: "lns1", User: "bob", Start: T0}
	if err := s.SessionStart(c, bare); err != nil {
		t.Fatal(err)
	}
	got, err = s.Session(c, "s2")
	if err != nil {
		t.Fatal(err)
	}
	if d := DiffSession(got, bare); d != "" || got.Class != nil {
		t.Fatalf("bare session: %s class %v", d, got.Class)
	}

	if _, err := s.Session(c, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Session(unknown) error = %v, want ErrNotFound", err)
	}
}

// Writes may be applied twice after a lost commit reply, so each must be
// harmless the second time.
func testSessionIdempotent(t *testing.T, newStores NewStores) {
	s := newStores(t, 1)[0]
	c := ctx(t)
	rec := Session("s1", "lns1", "alice", 1)
	must(t, s.SessionStart(c, rec))
	other := rec
	other.User = "mallory"
	must(t, s.SessionStart(c, other))
	stop := T0.Add(time.Hour)
	cnt := store.Counters{InOctets: 10}
	must(t, s.SessionStop(c, "s1", "Lost-Carrier", cnt, stop))
	must(t, s.SessionStop(c, "s1", "Admin-Reset", store.Counters{InOctets: 99}, stop.Add(time.Hour)))
	must(t, s.SessionUpdate(c, "s1", store.Counters{InOctets: 1234}, stop.Add(time.Hour)))
	must(t, s.SessionUpdate(c, "missing", store.Counters{InOctets: 1}, stop))
	must(t, s.SessionStop(c, "missing", "Lost-Carrier", cnt, stop))
	got, err := s.Session(c, "s1")
	if err != nil {
		t.Fatal(err)
	}
	want := rec
	want.Stop, want.Cause, want.Counters, want.Updated = stop, "Lost-Carrier", cnt, stop
	if d := DiffSession(got, want); d != "" {
		t.Fatalf("after repeated writes: %s", d)
	}
	if _, err := s.Session(c, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update of a missing session created it: %v", err)
	}
}

func testActiveSessions(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	c := ctx(t)
	must(t, ss[0].SessionStart(c, Session("b", "lns1", "u", 2)))
	must(t, ss[0].SessionStart(c, Session("a", "lns1", "u", 1)))
	must(t, ss[0].SessionStart(c, Session("c", "lns1", "u", 3)))
	must(t, ss[1].SessionStart(c, Session("x", "lns2", "u", 4)))
	must(t, ss[0].SessionStop(c, "c", "User-Request", store.Counters{}, T0))
	got, err := ss[1].ActiveSessions(c, "lns1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), []string{"a", "b"}) {
		t.Fatalf("ActiveSessions(lns1) = %v, want [a b]", ids(got))
	}
	if d := DiffSession(got[0], Session("a", "lns1", "u", 1)); d != "" {
		t.Fatalf("active a: %s", d)
	}
	got, err = ss[0].ActiveSessions(c, "lns2")
	if err != nil || !slices.Equal(ids(got), []string{"x"}) {
		t.Fatalf("ActiveSessions(lns2) = %v, %v; want [x]", ids(got), err)
	}
	got, err = ss[0].ActiveSessions(c, "lns3")
	if err != nil || len(got) != 0 {
		t.Fatalf("ActiveSessions(lns3) = %v, %v; want none", ids(got), err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func a4(s string) netip.Addr   { return netip.MustParseAddr(s) }
func p6(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func lease4(pool, addr, owner, node string) store.Lease4 {
	return store.Lease4{Pool: pool, Addr: a4(addr), Owner: owner, Node: node}
}

func testLeasesIPv4(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	c := ctx(t)
	must(t, ss[0].LeaseIPv4(c, "cgnat", a4("100.64.0.2"), "s1", "lns1"))
	must(t, ss[0].LeaseIPv4(c, "cgnat", a4("100.64.0.1"), "s2", "lns1"))
	// The same owner leasing again is not a conflict.
	must(t, ss[0].LeaseIPv4(c, "cgnat", a4("100.64.0.2"), "s1", "lns1"))
	for _, tc := range []struct{ owner, node string }{{"s3", "lns2"}, {"s3", "lns1"}, {"s1", "lns2"}} {
		err := ss[1].LeaseIPv4(c, "cgnat", a4("100.64.0.2"), tc.owner, tc.node)
		if !errors.Is(err, store.ErrLeased) {
			t.Fatalf("lease of a held address by %s on %s: %v, want ErrLeased", tc.owner, tc.node, err)
		}
	}
	// The same address in another pool is another lease.
	must(t, ss[1].LeaseIPv4(c, "business", a4("100.64.0.2"), "s3", "lns2"))

	got, err := ss[1].LeasesIPv4Of(c, "lns1")
	must(t, err)
	want := []store.Lease4{lease4("cgnat", "100.64.0.1", "s2", "lns1"), lease4("cgnat", "100.64.0.2", "s1", "lns1")}
	if !slices.Equal(got, want) {
		t.Fatalf("LeasesIPv4Of(lns1) = %v, want %v", got, want)
	}
	must(t, ss[0].ReleaseIPv4(c, "cgnat", a4("100.64.0.2")))
	must(t, ss[0].ReleaseIPv4(c, "cgnat", a4("100.64.0.2"))) // releasing twice is harmless
	must(t, ss[1].LeaseIPv4(c, "cgnat", a4("100.64.0.2"), "s3", "lns2"))
	got, err = ss[0].LeasesIPv4Of(c, "lns2")
	must(t, err)
	want = []store.Lease4{lease4("business", "100.64.0.2", "s3", "lns2"), lease4("cgnat", "100.64.0.2", "s3", "lns2")}
	if !slices.Equal(got, want) {
		t.Fatalf("LeasesIPv4Of(lns2) = %v, want %v", got, want)
	}
}

func testLeasesIPv6(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	c := ctx(t)
	must(t, ss[0].LeaseIPv6(c, "pd", p6("2001:db8:0:200::/56"), "s1", "lns1"))
	must(t, ss[0].LeaseIPv6(c, "pd", p6("2001:db8:0:100::/56"), "s2", "lns1"))
	must(t, ss[0].LeaseIPv6(c, "pd", p6("2001:db8:0:200::/56"), "s1", "lns1"))
	if err := ss[1].LeaseIPv6(c, "pd", p6("2001:db8:0:200::/56"), "s3", "lns2"); !errors.Is(err, store.ErrLeased) {
		t.Fatalf("lease of a held prefix: %v, want ErrLeased", err)
	}
	// Host bits are not part of a prefix.
	if err := ss[1].LeaseIPv6(c, "pd", p6("2001:db8:0:2ff::1/56"), "s3", "lns2"); !errors.Is(err, store.ErrLeased) {
		t.Fatalf("lease of a held prefix written with host bits: %v, want ErrLeased", err)
	}
	got, err := ss[1].LeasesIPv6Of(c, "lns1")
	must(t, err)
	want := []store.Lease6{
		{Pool: "pd", Prefix: p6("2001:db8:0:100::/56"), Owner: "s2", Node: "lns1"},
		{Pool: "pd", Prefix: p6("2001:db8:0:200::/56"), Owner: "s1", Node: "lns1"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("LeasesIPv6Of(lns1) = %v, want %v", got, want)
	}
	must(t, ss[0].ReleaseIPv6(c, "pd", p6("2001:db8:0:200::/56")))
	must(t, ss[1].LeaseIPv6(c, "pd", p6("2001:db8:0:200::/56"), "s3", "lns2"))
	got, err = ss[0].LeasesIPv6Of(c, "lns2")
	must(t, err)
	if len(got) != 1 || got[0].Owner != "s3" {
		t.Fatalf("LeasesIPv6Of(lns2) = %v, want the /56 owned by s3", got)
	}
}

// Two nodes (two stores, two connection pools) lease the same addresses
// at the same time, in opposite orders; each address must end up with
// exactly one of them.
func testLeaseRace(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	c := ctx(t)
	const n = 64
	addrs := make([]netip.Addr, n)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{100, 64, 1, byte(i)})
	}
	won := make([][]netip.Addr, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for node := range 2 {
		wg.Go(func() {
			name := fmt.Sprintf("lns%d", node+1)
			for i := range n {
				// Node 0 walks up, node 1 down: they meet in the
				// middle and collide on every address.
				a := addrs[i]
				if node == 1 {
					a = addrs[n-1-i]
				}
				err := ss[node].LeaseIPv4(c, "race", a, "owner-"+name, name)
				switch {
				case err == nil:
					won[node] = append(won[node], a)
				case errors.Is(err, store.ErrLeased):
				default:
					errs[node] = err
					return
				}
			}
		})
	}
	wg.Wait()
	must(t, errors.Join(errs...))
	if len(won[0])+len(won[1]) != n {
		t.Fatalf("nodes won %d + %d leases of %d addresses", len(won[0]), len(won[1]), n)
	}
	seen := map[netip.Addr]int{}
	for node := range 2 {
		held, err := ss[1-node].LeasesIPv4Of(c, fmt.Sprintf("lns%d", node+1))
		must(t, err)
		if len(held) != len(won[node]) {
			t.Fatalf("lns%d holds %d leases, won %d", node+1, len(held), len(won[node]))
		}
		for _, a := range won[node] {
			seen[a]++
		}
	}
	for _, a := range addrs {
		if seen[a] != 1 {
			t.Fatalf("%s leased %d times", a, seen[a])
		}
	}
}

func testUserSlots(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	c := ctx(t)
	acquire := func(s store.Store, session string, want bool) {
		t.Helper()
		ok, err := s.AcquireUserSlot(c, "alice", 2, session, "lns1")
		if err != nil || ok != want {
			t.Fatalf("AcquireUserSlot(alice, 2, %s) = %v, %v; want %v", session, ok, err, want)
		}
	}
	acquire(ss[0], "s1", true)
	acquire(ss[1], "s2", true)
	acquire(ss[0], "s3", false)
	acquire(ss[1], "s1", true) // holding one already
	if n, err := ss[0].UserSlots(c, "alice"); err != nil || n != 2 {
		t.Fatalf("UserSlots(alice) = %d, %v; want 2", n, err)
	}
	must(t, ss[1].ReleaseUserSlot(c, "alice", "s1"))
	must(t, ss[1].ReleaseUserSlot(c, "alice", "s1"))
	must(t, ss[1].ReleaseUserSlot(c, "bob", "s2")) // not bob's: no effect
	acquire(ss[0], "s3", true)
	acquire(ss[0], "s4", false)
	// Other users have their own limit.
	if ok, err := ss[0].AcquireUserSlot(c, "bob", 1, "s5", "lns1"); err != nil || !ok {
		t.Fatalf("bob's first slot: %v, %v", ok, err)
	}
	if ok, err := ss[0].AcquireUserSlot(c, "carol", 0, "s6", "lns1"); err != nil || ok {
		t.Fatalf("a limit of 0 admitted carol: %v, %v", ok, err)
	}
	if n, err := ss[0].UserSlots(c, "carol"); err != nil || n != 0 {
		t.Fatalf("UserSlots(carol) = %d, %v; want 0", n, err)
	}
}

// Many sessions of several users arrive on two nodes at once; for each
// user exactly max of them get in.
func testUserSlotRace(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	c := ctx(t)
	const users, max, tries = 6, 3, 16
	admitted := make([]atomic.Int32, users)
	errs := make([]error, users*tries)
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for i := range users * tries {
		wg.Go(func() {
			<-begin
			u, node := i%users, i%2
			ok, err := ss[node].AcquireUserSlot(c, fmt.Sprintf("user%d", u), max,
				fmt.Sprintf("s%d", i), fmt.Sprintf("lns%d", node+1))
			errs[i] = err
			if ok {
				admitted[u].Add(1)
			}
		})
	}
	close(begin)
	wg.Wait()
	must(t, errors.Join(errs...))
	for u := range users {
		if n := admitted[u].Load(); n != max {
			t.Errorf("user%d: %d sessions admitted with a limit of %d", u, n, max)
		}
		if got, err := ss[0].UserSlots(c, fmt.Sprintf("user%d", u)); err != nil || got != max {
			t.Errorf("UserSlots(user%d) = %d, %v; want %d", u, got, err, max)
		}
	}
}

// Acct builds an accounting record for tests (RFC 2866 §5).
func Acct(node string, status store.AcctStatus, session string, n int) store.AcctRecord {
	return store.AcctRecord{
		Node:          node,
		Status:        status,
		SessionID:     session,
		AcctSessionID: fmt.Sprintf("%08X", n),
		User:          "alice",
		IPv4:          netip.AddrFrom4([4]byte{100, 64, 0, byte(n)}),
		IPv6:          p6("2001:db8:1::/56"),
		Class:         []byte("class"),
		At:            T0.Add(time.Duration(n) * time.Minute),
		Start:         T0,
		Counters:      store.Counters{InOctets: uint64(n) << 33, OutPackets: uint64(n)},
		Cause:         "User-Request",
		Extra:         []byte(fmt.Sprintf(`{"n":%d}`, n)),
	}
}

func diffAcct(got, want store.AcctRecord) string {
	g, w := got, want
	g.ID, w.ID = 0, 0
	if !bytes.Equal(g.Class, w.Class) || !bytes.Equal(g.Extra, w.Extra) || !g.At.Equal(w.At) || !g.Start.Equal(w.Start) {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	if g.Node != w.Node || g.Status != w.Status || g.SessionID != w.SessionID ||
		g.AcctSessionID != w.AcctSessionID || g.User != w.User || g.IPv4 != w.IPv4 ||
		g.IPv6 != w.IPv6 || g.Counters != w.Counters || g.Cause != w.Cause {
		return fmt.Sprintf("got %+v, want %+v", got, want)
	}
	return ""
}

func acctIDs(rs []store.AcctRecord) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testAcctQueue(t *testing.T, newStores NewStores) {
	s := newStores(t, 1)[0]
	c := ctx(t)
	recs := []store.AcctRecord{
		Acct("lns1", store.AcctStart, "s1", 1),
		Acct("lns2", store.AcctStart, "s9", 2),
		Acct("lns1", store.AcctInterimUpdate, "s1", 3),
		Acct("lns1", store.AcctStop, "s1", 4),
		Acct("lns1", store.AcctStart, "s2", 5),
	}
	var idsIn []int64
	for i, r := range recs {
		id, err := s.AcctEnqueue(c, r)
		must(t, err)
		if i > 0 && id <= idsIn[i-1] {
			t.Fatalf("IDs not increasing: %d after %d", id, idsIn[i-1])
		}
		idsIn = append(idsIn, id)
	}
	next := func(limit int, want ...int) {
		t.Helper()
		got, err := s.AcctNext(c, "lns1", limit)
		must(t, err)
		var wantIDs []int64
		for _, i := range want {
			wantIDs = append(wantIDs, idsIn[i])
		}
		if !slices.Equal(acctIDs(got), wantIDs) {
			t.Fatalf("AcctNext(lns1, %d) = %v, want %v", limit, acctIDs(got), wantIDs)
		}
		for j, r := range got {
			if d := diffAcct(r, recs[want[j]]); d != "" {
				t.Fatal(d)
			}
		}
	}
	next(2, 0, 2)
	next(2, 0, 2) // not acknowledged: offered again
	must(t, s.AcctAck(c, idsIn[0]))
	next(2, 2, 3)
	must(t, s.AcctAck(c, idsIn[3])) // out of order
	next(10, 2, 4)
	must(t, s.AcctAck(c, idsIn[2]))
	must(t, s.AcctAck(c, idsIn[4]))
	must(t, s.AcctAck(c, idsIn[4])) // twice: no-op
	must(t, s.AcctAck(c, 1<<40))    // unknown: no-op
	next(10)
	got, err := s.AcctNext(c, "lns2", 10)
	must(t, err)
	if len(got) != 1 || got[0].ID != idsIn[1] {
		t.Fatalf("AcctNext(lns2) = %v, want [%d]", acctIDs(got), idsIn[1])
	}
	if got, err := s.AcctNext(c, "lns2", 0); err != nil || len(got) != 0 {
		t.Fatalf("AcctNext with limit 0 = %v, %v", acctIDs(got), err)
	}
}

// The delivery loop of a node reads through one store while another
// store (another connection) acknowledged: an acknowledged record is
// never offered again, whoever acknowledged it.
func testAcctOnceAcrossNodes(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	c := ctx(t)
	const n = 50
	for i := range n {
		_, err := ss[i%2].AcctEnqueue(c, Acct("lns1", store.AcctInterimUpdate, "s1", i))
		must(t, err)
	}
	delivered := map[int64]int{}
	var last int64
	for round := 0; ; round++ {
		if round > n {
			t.Fatal("queue does not drain")
		}
		recs, err := ss[round%2].AcctNext(c, "lns1", 7)
		must(t, err)
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.ID <= last {
				t.Fatalf("record %d offered after %d was acknowledged", r.ID, last)
			}
			last = r.ID
			delivered[r.ID]++
			must(t, ss[1-round%2].AcctAck(c, r.ID))
		}
	}
	if len(delivered) != n {
		t.Fatalf("%d records delivered, want %d", len(delivered), n)
	}
}

func testEvents(t *testing.T, newStores NewStores) {
	s := newStores(t, 1)[0]
	c := ctx(t)
	must(t, s.SessionStart(c, Session("s1", "lns1", "alice", 1)))
	want := []store.Event{
		{SessionID: "s1", At: T0, Kind: "icrq", Detail: "peer session 7"},
		{SessionID: "s1", At: T0.Add(time.Second), Kind: "auth", Detail: "PAP accept"},
		// Same time: order is insertion order, not time.
		{SessionID: "s1", At: T0.Add(time.Second), Kind: "ipcp", Detail: "100.64.0.1"},
	}
	for _, e := range want {
		must(t, s.AddEvent(c, e.SessionID, e.At, e.Kind, e.Detail))
	}
	must(t, s.AddEvent(c, "s2", T0, "icrq", ""))
	must(t, s.SessionStop(c, "s1", "User-Request", store.Counters{}, T0.Add(time.Minute)))
	got, err := s.Events(c, "s1")
	must(t, err)
	if len(got) != len(want) {
		t.Fatalf("Events(s1) = %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i].SessionID != want[i].SessionID || !got[i].At.Equal(want[i].At) ||
			got[i].Kind != want[i].Kind || got[i].Detail != want[i].Detail {
			t.Fatalf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	got, err = s.Events(c, "s2")
	if err != nil || len(got) != 1 || got[0].Kind != "icrq" {
		t.Fatalf("Events(s2) = %+v, %v", got, err)
	}
	if got, err := s.Events(c, "s3"); err != nil || len(got) != 0 {
		t.Fatalf("Events(unknown) = %+v, %v", got, err)
	}
}

func testRecover(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	c := ctx(t)
	crashed, other := ss[0], ss[1]
	for i, id := range []string{"a2", "a1", "a3"} {
		rec := Session(id, "lns1", "alice", i+1)
		must(t, crashed.SessionStart(c, rec))
		ok, err := crashed.AcquireUserSlot(c, "alice", 10, id, "lns1")
		if err != nil || !ok {
			t.Fatalf("slot for %s: %v, %v", id, ok, err)
		}
		must(t, crashed.LeaseIPv4(c, "cgnat", rec.IPv4, id, "lns1"))
		must(t, crashed.LeaseIPv6(c, "pd", rec.IPv6, id, "lns1"))
	}
	cnt := store.Counters{InOctets: 77}
	must(t, crashed.SessionUpdate(c, "a1", cnt, T0))
	must(t, crashed.SessionStop(c, "a3", "User-Request", store.Counters{}, T0.Add(time.Minute)))
	must(t, crashed.ReleaseUserSlot(c, "alice", "a3"))
	// A slot taken before the session record was written is the node's
	// too.
	if ok, err := crashed.AcquireUserSlot(c, "alice", 10, "a4", "lns1"); err != nil || !ok {
		t.Fatalf("slot for a4: %v, %v", ok, err)
	}

	b := Session("b1", "lns2", "alice", 9)
	must(t, other.SessionStart(c, b))
	if ok, err := other.AcquireUserSlot(c, "alice", 10, "b1", "lns2"); err != nil || !ok {
		t.Fatalf("slot for b1: %v, %v", ok, err)
	}
	must(t, other.LeaseIPv4(c, "cgnat", b.IPv4, "b1", "lns2"))

	at := T0.Add(time.Hour)
	orphans, err := crashed.Recover(c, "lns1", at)
	must(t, err)
	if !slices.Equal(ids(orphans), []string{"a1", "a2"}) {
		t.Fatalf("Recover orphans = %v, want [a1 a2]", ids(orphans))
	}
	// RFC 2866 §5.10: Acct-Terminate-Cause NAS-Reboot for each.
	want := Session("a1", "lns1", "alice", 2)
	want.Counters, want.Stop, want.Cause, want.Updated = cnt, at, store.CauseNASReboot, at
	if d := DiffSession(orphans[0], want); d != "" {
		t.Fatalf("orphan a1: %s", d)
	}
	stored, err := other.Session(c, "a1")
	must(t, err)
	if d := DiffSession(stored, want); d != "" {
		t.Fatalf("stored a1 after Recover: %s", d)
	}
	stored, err = other.Session(c, "a3")
	must(t, err)
	if stored.Cause != "User-Request" {
		t.Fatalf("a3, stopped before the crash, now has cause %q", stored.Cause)
	}
	if act, err := other.ActiveSessions(c, "lns1"); err != nil || len(act) != 0 {
		t.Fatalf("lns1 still has open sessions %v, %v", ids(act), err)
	}
	if l, err := other.LeasesIPv4Of(c, "lns1"); err != nil || len(l) != 0 {
		t.Fatalf("lns1 still holds IPv4 leases %v, %v", l, err)
	}
	if l, err := other.LeasesIPv6Of(c, "lns1"); err != nil || len(l) != 0 {
		t.Fatalf("lns1 still holds IPv6 leases %v, %v", l, err)
	}
	if n, err := other.UserSlots(c, "alice"); err != nil || n != 1 {
		t.Fatalf("alice holds %d slots after lns1 recovered, %v; want 1 (b1 on lns2)", n, err)
	}
	// The other node is untouched.
	if act, err := other.ActiveSessions(c, "lns2"); err != nil || !slices.Equal(ids(act), []string{"b1"}) {
		t.Fatalf("lns2 sessions = %v, %v", ids(act), err)
	}
	if l, err := other.LeasesIPv4Of(c, "lns2"); err != nil || len(l) != 1 {
		t.Fatalf("lns2 leases = %v, %v", l, err)
	}
	// The freed addresses can be leased again.
	must(t, other.LeaseIPv4(c, "cgnat", Session("a1", "", "", 2).IPv4, "b2", "lns2"))
	// Nothing left to recover.
	orphans, err = crashed.Recover(c, "lns1", at.Add(time.Hour))
	if err != nil || len(orphans) != 0 {
		t.Fatalf("second Recover = %v, %v", ids(orphans), err)
	}
}

func testApplyExactlyOnce(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	c := ctx(t)
	rec := Session("s1", "lns1", "alice", 1)
	batch := []store.Write{
		{Seq: 1, Kind: store.WriteSessionStart, Session: rec},
		{Seq: 2, Kind: store.WriteEvent, ID: "s1", At: T0, EventKind: "up"},
		{Seq: 3, Kind: store.WriteAcctEnqueue, Acct: Acct("lns1", store.AcctStart, "s1", 1)},
		{Seq: 4, Kind: store.WriteSessionUpdate, ID: "s1", Counters: store.Counters{InOctets: 5}},
	}
	must(t, ss[0].Apply(c, "lns1/1", batch))
	// The same batch again, as after a commit whose reply was lost,
	// through another connection; then an overlapping one.
	must(t, ss[1].Apply(c, "lns1/1", batch))
	must(t, ss[0].Apply(c, "lns1/1", []store.Write{
		batch[2],
		{Seq: 5, Kind: store.WriteEvent, ID: "s1", At: T0, EventKind: "down"},
		{Seq: 6, Kind: store.WriteSessionStop, ID: "s1", Cause: "Idle-Timeout", Counters: store.Counters{InOctets: 6}, At: T0.Add(time.Minute)},
	}))
	// Another writer (the next boot) starts its own sequence at 1.
	must(t, ss[0].Apply(c, "lns1/2", []store.Write{
		{Seq: 1, Kind: store.WriteAcctEnqueue, Acct: Acct("lns1", store.AcctOn, "", 2)},
	}))

	evs, err := ss[0].Events(c, "s1")
	must(t, err)
	if len(evs) != 2 || evs[0].Kind != "up" || evs[1].Kind != "down" {
		t.Fatalf("events = %+v, want up, down once each", evs)
	}
	acct, err := ss[0].AcctNext(c, "lns1", 10)
	must(t, err)
	if len(acct) != 2 || acct[0].Status != store.AcctStart || acct[1].Status != store.AcctOn {
		t.Fatalf("acct queue = %+v, want Start, Accounting-On", acct)
	}
	got, err := ss[0].Session(c, "s1")
	must(t, err)
	if got.Cause != "Idle-Timeout" || got.Counters.InOctets != 6 {
		t.Fatalf("session after batches: cause %q counters %+v", got.Cause, got.Counters)
	}
	// Releases and acks travel the same way.
	must(t, ss[0].LeaseIPv4(c, "cgnat", rec.IPv4, "s1", "lns1"))
	must(t, ss[0].LeaseIPv6(c, "pd", rec.IPv6, "s1", "lns1"))
	if ok, err := ss[0].AcquireUserSlot(c, "alice", 1, "s1", "lns1"); err != nil || !ok {
		t.Fatalf("slot: %v, %v", ok, err)
	}
	must(t, ss[1].Apply(c, "lns1/1", []store.Write{
		{Seq: 7, Kind: store.WriteReleaseIPv4, Pool: "cgnat", Addr: rec.IPv4},
		{Seq: 8, Kind: store.WriteReleaseIPv6, Pool: "pd", Prefix: rec.IPv6},
		{Seq: 9, Kind: store.WriteReleaseUserSlot, User: "alice", ID: "s1"},
		{Seq: 10, Kind: store.WriteAcctAck, AcctID: acct[0].ID},
	}))
	if l, err := ss[0].LeasesIPv4Of(c, "lns1"); err != nil || len(l) != 0 {
		t.Fatalf("IPv4 leases after release: %v, %v", l, err)
	}
	if l, err := ss[0].LeasesIPv6Of(c, "lns1"); err != nil || len(l) != 0 {
		t.Fatalf("IPv6 leases after release: %v, %v", l, err)
	}
	if n, err := ss[0].UserSlots(c, "alice"); err != nil || n != 0 {
		t.Fatalf("slots after release: %d, %v", n, err)
	}
	acct, err = ss[0].AcctNext(c, "lns1", 10)
	must(t, err)
	if len(acct) != 1 || acct[0].Status != store.AcctOn {
		t.Fatalf("acct queue after ack = %+v, want Accounting-On only", acct)
	}
}

func testAsync(t *testing.T, newStores NewStores) {
	s := newStores(t, 1)[0]
	c := ctx(t)
	a, err := store.NewAsync(s, store.AsyncConfig{Writer: "lns1/1", BatchSize: 3})
	must(t, err)
	defer a.Close(c)
	const n = 20
	for i := range n {
		id := fmt.Sprintf("s%02d", i)
		must(t, a.SessionStart(Session(id, "lns1", "alice", i)))
		must(t, a.AddEvent(id, T0, "up", ""))
		must(t, a.AcctEnqueue(Acct("lns1", store.AcctStart, id, i)))
		if i%2 == 1 {
			must(t, a.SessionStop(id, "User-Request", store.Counters{}, T0.Add(time.Minute)))
		}
	}
	must(t, a.Flush(c))
	if d := a.Depth(); d != 0 {
		t.Fatalf("depth after flush = %d", d)
	}
	act, err := s.ActiveSessions(c, "lns1")
	must(t, err)
	if len(act) != n/2 {
		t.Fatalf("%d active sessions, want %d", len(act), n/2)
	}
	recs, err := s.AcctNext(c, "lns1", 2*n)
	must(t, err)
	if len(recs) != n {
		t.Fatalf("%d accounting records, want %d", len(recs), n)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("s%02d", i); r.SessionID != want {
			t.Fatalf("record %d is for %s, want %s: queue order lost", i, r.SessionID, want)
		}
	}
	st := a.Stats()
	if st.Queued != st.Applied || st.Queued != n*3+n/2 {
		t.Fatalf("stats %+v, want %d queued and applied", st, n*3+n/2)
	}
	must(t, a.Close(c))
	if err := a.AddEvent("s00", T0, "late", ""); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("write after Close: %v, want ErrClosed", err)
	}
}
