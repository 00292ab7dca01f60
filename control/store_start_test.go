package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/aaa/radiustest"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/store"
	"github.com/l2tpd/l2tpd/store/memory"
	"github.com/l2tpd/l2tpd/store/postgres"
	"github.com/l2tpd/l2tpd/store/postgres/pgtest"
)

// waitLong is waitFor with a bound that covers the store's reconnection
// backoff.
func waitLong(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// acctCount counts the accounting requests FreeRADIUS logged with the
// given status and Acct-Session-Id.
func acctCount(fr *radiustest.FreeRADIUS, status, id string) int {
	n := 0
	for _, r := range fr.Detail() {
		if r["Acct-Status-Type"] == status && r["Acct-Session-Id"] == id {
			n++
		}
	}
	return n
}

// A node whose PostgreSQL store is down when it starts serves anyway:
// a subscriber is admitted on local state (outage policy admit) and its
// accounting goes out; when the database is back the node registers,
// closes the session its previous run left open with exactly one
// Acct-Stop whose cause is NAS-Reboot (RFC 2866 §5.10), writes the
// session record and the address lease of the subscriber admitted
// meanwhile, and delivers nothing twice.
func TestStartWithStoreDown(t *testing.T) {
	fr := radiustest.New(t, "")
	fr.Start()
	c := pgtest.Own(t)
	db := c.URL("postgres")
	const node = "lns-down"
	ctx := context.Background()

	// A previous run of this node left a session open.
	prev, err := postgres.Open(ctx, db, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prev.RegisterNode(ctx, node); err != nil {
		t.Fatal(err)
	}
	const prevID = "0000000100000001"
	if err := prev.SessionStart(ctx, store.SessionRecord{ID: prevID, Node: node, TunnelID: 9, SessionID: 9,
		Peer: netip.MustParseAddrPort("192.0.2.7:1701"), User: "carol", IPv4: netip.MustParseAddr("100.64.0.19"),
		AcctSessionID: prevID, Start: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	prev.Close()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}

	s, addr := pppServer(t, func(cfg *Config) {
		cfg.PPP.IPv6 = false
		cfg.Store = Store{Backend: "postgres", URL: db, NodeID: node}
		cfg.RADIUS = RADIUS{Acct: []RADIUSServer{{Addr: fr.Acct(), Secret: radiustest.Secret}}, Timeout: time.Second}
	})
	if st, err := s.Stats(ctx); err != nil || st.StoreUp {
		t.Fatalf("store_up at a start without the database: %+v %v", st.StoreUp, err)
	}
	_, a1, down := connect(t, addr, "alice", "wonderland")
	if down != nil {
		t.Fatalf("refused while the store is down (policy admit): %+v", down.Result)
	}
	if n := counter(t, s, "store_outage_admitted"); n != 1 {
		t.Fatalf("store_outage_admitted %d", n)
	}
	acctID := ""
	s.eachShard(ctx, func(sh *shard) {
		for _, sub := range sh.subs {
			acctID = sub.acctID
		}
	})
	// Accounting does not wait for the database.
	waitLong(t, "alice's Acct-Start during the outage", 5*time.Second, func() bool { return acctCount(fr, "Start", acctID) == 1 })

	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	waitLong(t, "store_up", 20*time.Second, func() bool {
		st, err := s.Stats(ctx)
		return err == nil && st.StoreUp
	})
	check, err := postgres.Open(ctx, db, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	waitLong(t, "alice's lease in the store", 5*time.Second, func() bool { return leaseOwner(t, check, node, a1) == acctID })
	waitLong(t, "alice's session record", 5*time.Second, func() bool {
		r, err := check.Session(ctx, acctID)
		return err == nil && r.Open() && r.User == "alice" && r.IPv4 == a1
	})
	waitLong(t, "the NAS-Reboot Acct-Stop", 5*time.Second, func() bool {
		for _, r := range fr.Detail() {
			if r["Acct-Status-Type"] == "Stop" && r["Acct-Session-Id"] == prevID && r["Acct-Terminate-Cause"] == "NAS-Reboot" {
				return true
			}
		}
		return false
	})
	r, err := check.Session(ctx, prevID)
	if err != nil || r.Open() || r.Cause != store.CauseNASReboot {
		t.Fatalf("the previous run's session after recovery: %+v %v", r, err)
	}
	// Everything spooled has been delivered and its row deleted.
	waitLong(t, "an empty accounting queue", 5*time.Second, func() bool {
		q, err := check.AcctNext(ctx, node, 10)
		return err == nil && len(q) == 0
	})
	waitLong(t, "store_reconciled", 5*time.Second, func() bool { return counter(t, s, "store_reconciled") == 1 })
	time.Sleep(300 * time.Millisecond) // a duplicate would be on its way
	if n := acctCount(fr, "Stop", prevID); n != 1 {
		t.Fatalf("%d Acct-Stops for the previous run's session, want 1", n)
	}
	if n := acctCount(fr, "Start", acctID); n != 1 {
		t.Fatalf("%d Acct-Starts for alice, want 1", n)
	}
}

// Outage policy refuse at a start without the database: a new call is
// refused with a CDN saying temporary lack of resources (RFC 2661
// §4.4.2, result 4).
func TestStartWithStoreDownRefuse(t *testing.T) {
	// A valid URL on which nothing listens.
	db := fmt.Sprintf("postgres://postgres@/postgres?host=/nonexistent/l2tpd-%d", os.Getpid())
	s, addr := pppServer(t, func(cfg *Config) {
		cfg.PPP.IPv6 = false
		cfg.Store = Store{Backend: "postgres", URL: db, NodeID: "lns-refuse", OutagePolicy: OutageRefuse}
	})
	_, _, down := connect(t, addr, "alice", "wonderland")
	if down == nil || down.Result.Code != wire.CDNNoResourcesTemp {
		t.Fatalf("a call while the store was never reached: %+v", down)
	}
	if st, err := s.Stats(context.Background()); err != nil || st.StoreUp {
		t.Fatalf("store_up %v %v", st.StoreUp, err)
	}
}

// runErr runs a server with cfg changed by mod and returns Run's error,
// which must come before it is ready.
func runErr(t *testing.T, mod func(*Config)) error {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	mod(&cfg)
	s, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-s.Ready():
		cancel()
		<-done
		t.Fatal("the server started")
	case <-time.After(15 * time.Second):
		t.Fatal("Run neither failed nor started")
	}
	return nil
}

// What is not an outage still fails the start, saying why: a malformed
// URL, a password the server refuses, a database that does not exist.
func TestStartFailsOnBadStore(t *testing.T) {
	c := pgtest.Own(t)
	if err := c.RequirePassword("l2tpd", "right"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, url, want string
	}{
		{"malformed url", "postgres://l2tpd@%zz/x", "control: store"},
		{"wrong password", c.UserURL("postgres", "l2tpd", "wrong"), "password authentication failed"},
		{"no such database", c.URL("nosuchdb"), "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := runErr(t, func(cfg *Config) {
				cfg.Store = Store{Backend: "postgres", URL: tc.url, NodeID: "lns-bad"}
			})
			if err == nil || errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error saying %q", err, tc.want)
			}
		})
	}
	// The right password is taken: the failures above are the
	// credentials', not the cluster's.
	pg, err := postgres.Open(context.Background(), c.UserURL("postgres", "l2tpd", "right"), postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pg.Close()
}

// The spool of a node that started without its database holds records
// in memory and offers them from there; once the store is reached it
// takes over the previous run's records before writing any of its own,
// so none is mistaken for the other, and writes only what was not
// delivered meanwhile.
func TestStoreSpoolTakesOverLate(t *testing.T) {
	ctx := context.Background()
	m := memory.New(memory.Config{})
	// The previous run left one record undelivered.
	old := acctRec("OLD", aaa.AcctStop)
	if _, err := m.AcctEnqueue(ctx, toStoreAcct("lns-a", old)); err != nil {
		t.Fatal(err)
	}
	d := store.NewDeferred()
	after := make(chan time.Time)
	notified := make(chan struct{}, 16)
	recovered := make(chan int, 1)
	sp, err := newStoreSpool(ctx, d, nil, "lns-a", spoolConfig{After: func(time.Duration) <-chan time.Time { return after },
		Notify: func() { notified <- struct{}{} }, OnRecovered: func(n int) { recovered <- n }})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close(ctx)
	sA, _ := sp.Put(acctRec("A", aaa.AcctStart))
	<-notified // cannot be written: offered from memory
	got, _ := sp.Next(0, 10)
	if len(got) != 1 || got[0].Seq != sA {
		t.Fatalf("Next before the store is reached: %+v", got)
	}
	if err := sp.Ack(sA); err != nil { // delivered before written
		t.Fatal(err)
	}
	sB, _ := sp.Put(acctRec("B", aaa.AcctStart))

	// The store is reached: take over, then hand the store over.
	if err := sp.takeOver(ctx, m); err != nil {
		t.Fatal(err)
	}
	if n := <-recovered; n != 1 {
		t.Fatalf("took over %d records, want 1", n)
	}
	if err := d.Set(m); err != nil {
		t.Fatal(err)
	}
	after <- time.Now() // the retry
	waitFor(t, "B written", func() bool {
		q, _ := m.AcctNext(ctx, "lns-a", 10)
		return len(q) == 2
	})
	q, _ := m.AcctNext(ctx, "lns-a", 10)
	if q[0].AcctSessionID != "OLD" || q[1].AcctSessionID != "B" {
		t.Fatalf("store holds %+v, want OLD and B (A was delivered before its write)", q)
	}
	waitFor(t, "B and OLD offered", func() bool {
		got, _ = sp.Next(sA, 10)
		return len(got) == 2
	})
	if got[0].Seq != sB || got[0].Record.AcctSessionID != "B" || got[1].Record.AcctSessionID != "OLD" {
		t.Fatalf("offered %+v", got)
	}
	// A second take-over (the spool's own retry) loads nothing again.
	if err := sp.takeOver(ctx, m); err != nil || sp.Len() != 2 {
		t.Fatalf("second take-over: %v, %d held", err, sp.Len())
	}
}
