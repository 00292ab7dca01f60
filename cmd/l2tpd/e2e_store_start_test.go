package main_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/store/postgres/pgtest"
)

// A daemon started while its PostgreSQL is down serves: a subscriber
// comes online (outage policy admit) and store_up reports 0; when the
// database starts, the daemon reaches it, store_up turns 1, the write
// queue drains, and the subscriber's lease and session row are there.
func TestE2EStoreStartDuringOutage(t *testing.T) {
	requireE2E(t)
	pg := pgtest.Own(t)
	db := pg.URL("postgres")
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	n := storeNode{Node: fmt.Sprintf("cold-%d", os.Getpid()), DB: db, Listen: udpPort(t), First: "100.64.31.10", Last: "100.64.31.19"}
	d := startStoreNode(t, t.TempDir(), n)
	if st := d.stats(t); st.StoreUp {
		t.Fatal("store_up 1 with the database down")
	}
	l := newStoreLAC(t, n.Listen)
	if !pumpBoth(l, l, func() bool { return strings.Contains(d.log(), "store unreachable at start") }, 5*time.Second) {
		t.Fatalf("no start-up outage in the log:\n%s", d.log())
	}
	calls := l.call(1, "e2e", "e2e-password")
	if !pumpBoth(l, l, allSettled(calls), 10*time.Second) || !calls[0].addr.IsValid() {
		t.Fatalf("not online with the database down: %+v", calls[0].down)
	}

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	if !pumpBoth(l, l, func() bool { s := d.stats(t); return s.StoreUp && s.StoreQueue == 0 }, 20*time.Second) {
		t.Fatalf("after the database started: %+v", d.stats(t))
	}
	st := openStore(t, db)
	ss := d.storeSessions(t)
	if len(ss) != 1 {
		t.Fatalf("sessions %+v", ss)
	}
	if !pumpBoth(l, l, func() bool { return leasesOf(t, st, n.Node)[calls[0].addr] == ss[0].AcctSessionID }, 5*time.Second) {
		t.Fatalf("lease of %v after the database started: %v", calls[0].addr, leasesOf(t, st, n.Node))
	}
	r, err := st.Session(context.Background(), ss[0].AcctSessionID)
	if err != nil || !r.Open() || r.IPv4 != calls[0].addr {
		t.Fatalf("session row %+v %v", r, err)
	}
	if calls[0].down != nil {
		t.Fatalf("the session went down: %+v", calls[0].down)
	}
}
