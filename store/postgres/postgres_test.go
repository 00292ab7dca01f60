package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/store"
	"github.com/l2tpd/l2tpd/store/postgres"
	"github.com/l2tpd/l2tpd/store/postgres/pgtest"
	"github.com/l2tpd/l2tpd/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T, url string, cfg postgres.Config) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, url, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T, n int) []store.Store {
		url := pgtest.Database(t)
		out := make([]store.Store, n)
		for i := range out {
			// One pool per store: n nodes sharing a database.
			out[i] = open(t, url, postgres.Config{})
		}
		return out
	})
}

func TestMigrationsNumbered(t *testing.T) {
	ms, err := postgres.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no migrations embedded")
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Fatalf("migration %q has version %d, want %d: versions must run 1, 2, 3...", m.Name, m.Version, i+1)
		}
	}
}

// Nodes starting together migrate one at a time under the advisory
// lock; each migration is recorded once.
func TestMigrateConcurrent(t *testing.T) {
	url := pgtest.Database(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const nodes = 4
	stores := make([]*postgres.Store, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { stores[i], errs[i] = postgres.Open(ctx, url, postgres.Config{}) })
	}
	wg.Wait()
	for i := range nodes {
		if errs[i] != nil {
			t.Fatalf("node %d: %v", i, errs[i])
		}
		defer stores[i].Close()
	}
	ms, _ := postgres.Migrations()
	var n, top int
	if err := stores[0].Pool().QueryRow(ctx, "SELECT count(*), max(version) FROM schema_version").Scan(&n, &top); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || top != ms[len(ms)-1].Version {
		t.Fatalf("schema_version holds %d rows up to %d, want %d up to %d", n, top, len(ms), ms[len(ms)-1].Version)
	}
	// Opening again finds nothing to do.
	if err := postgres.Migrate(ctx, stores[1].Pool()); err != nil {
		t.Fatal(err)
	}
	if err := stores[0].Pool().QueryRow(ctx, "SELECT count(*) FROM schema_version").Scan(&n); err != nil || n != len(ms) {
		t.Fatalf("after a second Migrate: %d rows, %v", n, err)
	}
}

// Columns use the database's own types, so other tools can query them.
func TestSchemaTypes(t *testing.T) {
	s := open(t, pgtest.Database(t), postgres.Config{})
	ctx := context.Background()
	for _, tc := range []struct{ table, column, typ string }{
		{"sessions", "ipv4", "inet"},
		{"sessions", "ipv6", "cidr"},
		{"sessions", "started_at", "timestamp with time zone"},
		{"sessions", "in_octets", "bigint"},
		{"leases4", "addr", "inet"},
		{"leases6", "prefix", "cidr"},
		{"acct_queue", "id", "bigint"},
	} {
		var typ string
		err := s.Pool().QueryRow(ctx, `SELECT data_type FROM information_schema.columns
WHERE table_name = $1 AND column_name = $2`, tc.table, tc.column).Scan(&typ)
		if err != nil || typ != tc.typ {
			t.Errorf("%s.%s is %q (%v), want %q", tc.table, tc.column, typ, err, tc.typ)
		}
	}
	// The primary key, not a check before the insert, makes leases
	// unique.
	var def string
	err := s.Pool().QueryRow(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = 'leases4'::regclass AND contype = 'p'`).Scan(&def)
	if err != nil || def != "PRIMARY KEY (pool, addr)" {
		t.Fatalf("leases4 primary key = %q, %v", def, err)
	}
}

// A write the database refuses for good is dropped and reported, and
// the writes around it in the batch are applied.
func TestApplyDropsRefusedWrite(t *testing.T) {
	var mu sync.Mutex
	var dropped []store.Write
	s := open(t, pgtest.Database(t), postgres.Config{OnDropped: func(w store.Write, err error) {
		mu.Lock()
		defer mu.Unlock()
		dropped = append(dropped, w)
	}})
	ctx := context.Background()
	bad := storetest.Session("bad", "lns1", "alice", 2)
	bad.IPv4 = netip.MustParseAddr("2001:db8::1") // not IPv4: the column's check refuses it
	err := s.Apply(ctx, "lns1/1", []store.Write{
		{Seq: 1, Kind: store.WriteSessionStart, Session: storetest.Session("good1", "lns1", "alice", 1)},
		{Seq: 2, Kind: store.WriteSessionStart, Session: bad},
		{Seq: 3, Kind: store.WriteSessionStart, Session: storetest.Session("good2", "lns1", "alice", 3)},
	})
	if err != nil {
		t.Fatal(err)
	}
	act, err := s.ActiveSessions(ctx, "lns1")
	if err != nil {
		t.Fatal(err)
	}
	if len(act) != 2 || act[0].ID != "good1" || act[1].ID != "good2" {
		t.Fatalf("active = %v, want good1, good2", act)
	}
	if len(dropped) != 1 || dropped[0].Session.ID != "bad" {
		t.Fatalf("dropped = %+v, want the bad session only", dropped)
	}
	// The batch is done: applying it again drops nothing more.
	if err := s.Apply(ctx, "lns1/1", []store.Write{{Seq: 2, Kind: store.WriteSessionStart, Session: bad}}); err != nil || len(dropped) != 1 {
		t.Fatalf("reapplied: %v, dropped %d", err, len(dropped))
	}
}

// The database goes down while the control plane keeps writing: writes
// queue without blocking, answered calls fail promptly with
// ErrUnavailable, and after the restart every write is applied exactly
// once, in order.
func TestOutage(t *testing.T) {
	c := pgtest.Own(t)
	s := open(t, c.URL("postgres"), postgres.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	failed := make(chan error, 1)
	a, err := store.NewAsync(s, store.AsyncConfig{
		Writer:      "lns1/1",
		BatchSize:   16,
		RetryMin:    10 * time.Millisecond,
		RetryMax:    200 * time.Millisecond,
		CallTimeout: 2 * time.Second,
		OnError: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)

	write := func(i int) {
		t.Helper()
		id := fmt.Sprintf("s%03d", i)
		for _, err := range []error{
			a.SessionStart(storetest.Session(id, "lns1", "alice", i)),
			a.AddEvent(id, storetest.T0, "up", ""),
			a.AcctEnqueue(storetest.Acct("lns1", store.AcctStart, id, i)),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	const before, during = 10, 60
	for i := range before {
		write(i)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := before; i < before+during; i++ {
		write(i)
	}
	if err := <-failed; !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("writer error while down = %v, want ErrUnavailable", err)
	}
	if d := a.Depth(); d == 0 {
		t.Fatal("queue empty while the database is down")
	}
	start := time.Now()
	err = a.LeaseIPv4(ctx, "cgnat", netip.MustParseAddr("100.64.0.1"), "s000", "lns1")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("LeaseIPv4 while down = %v, want ErrUnavailable", err)
	}
	if _, err := a.AcquireUserSlot(ctx, "alice", 1, "s000", "lns1"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("AcquireUserSlot while down = %v, want ErrUnavailable", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("answered calls took %v while the database was down", el)
	}

	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	const total = before + during
	act, err := s.ActiveSessions(ctx, "lns1")
	if err != nil {
		t.Fatal(err)
	}
	if len(act) != total {
		t.Fatalf("%d sessions, want %d", len(act), total)
	}
	var events int
	if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM session_events").Scan(&events); err != nil || events != total {
		t.Fatalf("%d events, want %d (%v)", events, total, err)
	}
	recs, err := s.AcctNext(ctx, "lns1", 2*total)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != total {
		t.Fatalf("%d accounting records, want %d", len(recs), total)
	}
	for i, r := range recs {
		if want := fmt.Sprintf("s%03d", i); r.SessionID != want {
			t.Fatalf("accounting record %d is for %s, want %s", i, r.SessionID, want)
		}
	}
	st := a.Stats()
	if st.Applied != st.Queued || st.Depth != 0 || st.Failures == 0 {
		t.Fatalf("stats after recovery: %+v", st)
	}
	// The database answers again.
	if err := a.LeaseIPv4(ctx, "cgnat", netip.MustParseAddr("100.64.0.1"), "s000", "lns1"); err != nil {
		t.Fatal(err)
	}
}
