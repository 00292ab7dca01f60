package control

import (
	"context"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/aaa/radiustest"
	"github.com/l2tpd/l2tpd/ppp"
	"github.com/l2tpd/l2tpd/store/postgres/pgtest"
)

// Restart recovery with PostgreSQL: a node that comes back while its
// previous run's session is still open in the database (the previous
// run died without a shutdown) closes it with an Acct-Stop whose cause
// is NAS-Reboot (RFC 2866 §5.10).
func TestRecoverAfterCrash(t *testing.T) {
	fr := radiustest.New(t, "")
	fr.Start()
	db := pgtest.Own(t).URL("postgres")
	withStore := func(c *Config) {
		c.PPP.IPv6 = false
		c.Store = Store{Backend: "postgres", URL: db, NodeID: "lns-test"}
		c.RADIUS = RADIUS{Acct: []RADIUSServer{{Addr: fr.Acct(), Secret: radiustest.Secret}}, Timeout: time.Second}
	}
	first, addr := pppServer(t, withStore)
	l := newSubscriberLAC(t, addr, 2, "alice", "wonderland", []ppp.AuthProto{ppp.AuthPAP}, false)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	if !l.pump(func() bool { return l.client.IPCPState() == ppp.StateOpened }, 5*time.Second) {
		t.Fatal("not online")
	}
	acctID := ""
	first.eachShard(context.Background(), func(sh *shard) {
		for _, sub := range sh.subs {
			acctID = sub.acctID
		}
	})
	// The session record reaches the database.
	waitFor(t, "the session record", func() bool {
		r, err := first.state.s.Session(context.Background(), acctID)
		return err == nil && r.Open() && r.User == "alice"
	})

	// The same node starts again as if the first run had died.
	second, _ := pppServer(t, withStore)
	waitFor(t, "Acct-Stop NAS-Reboot for the orphaned session", func() bool {
		for _, r := range fr.Detail() {
			if r["Acct-Status-Type"] == "Stop" && r["Acct-Session-Id"] == acctID && r["Acct-Terminate-Cause"] == "NAS-Reboot" {
				return true
			}
		}
		return false
	})
	r, err := second.state.s.Session(context.Background(), acctID)
	if err != nil || r.Open() {
		t.Fatalf("session record after recovery: %+v %v", r, err)
	}
}
