package control

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/store"
)

func acctRec(id string, status aaa.AcctStatus) aaa.AcctRecord {
	return aaa.AcctRecord{
		Session: aaa.Session{User: "alice", NASPort: 7, AcctSessionID: id, CallingStationID: "0601020304",
			TunnelClientEndpoint: netip.MustParseAddr("192.0.2.1")},
		Status: status, Time: time.Unix(1700000000, 0).UTC(), FramedIPAddress: netip.MustParseAddr("100.64.0.10"),
		InputOctets: 5 << 32, OutputPackets: 3, SessionTime: time.Minute, TerminateCause: aaa.CauseNASReboot,
		Class: [][]byte{[]byte("c1"), []byte("c2")},
	}
}

// The store spool: a record is offered once it is in the store; while
// the store fails it is offered from memory, and one delivered before
// its write is never written; what the store holds comes back whole
// after a restart and is delivered once (RFC 2866 §5.2: the same record
// again, with a larger Acct-Delay-Time, only after a crash).
func TestStoreSpool(t *testing.T) {
	st := newGateStore()
	after := make(chan time.Time)
	notified := make(chan struct{}, 16)
	cfg := spoolConfig{After: func(time.Duration) <-chan time.Time { return after },
		Notify: func() { notified <- struct{}{} }}
	ctx := context.Background()
	sp, err := newStoreSpool(ctx, st, nil, "lns-a", cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Store up: offered once written.
	s1, _ := sp.Put(acctRec("A", aaa.AcctStart))
	<-notified
	got, _ := sp.Next(0, 10)
	if len(got) != 1 || got[0].Seq != s1 {
		t.Fatalf("Next %+v", got)
	}
	if q, _ := st.AcctNext(ctx, "lns-a", 10); len(q) != 1 {
		t.Fatalf("store holds %d records, want 1", len(q))
	}

	// Store down: the write fails, the record is offered from memory.
	st.down.Store(true)
	s2, _ := sp.Put(acctRec("B", aaa.AcctStart))
	<-notified
	got, _ = sp.Next(s1, 10)
	if len(got) != 1 || got[0].Seq != s2 {
		t.Fatalf("Next during the outage %+v", got)
	}
	if err := sp.Ack(s2); err != nil { // delivered before written
		t.Fatal(err)
	}
	s3, _ := sp.Put(acctRec("C", aaa.AcctStop))
	st.down.Store(false)
	after <- time.Now() // the retry
	<-notified
	q, _ := st.AcctNext(ctx, "lns-a", 10)
	if len(q) != 2 || q[0].AcctSessionID != "A" || q[1].AcctSessionID != "C" {
		t.Fatalf("store holds %+v, want A and C (B was delivered before its write)", q)
	}
	if err := sp.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_ = s3

	// A restart takes over A and C, whole.
	async, err := store.NewAsync(st, store.AsyncConfig{Writer: "lns-a/2"})
	if err != nil {
		t.Fatal(err)
	}
	defer async.Close(ctx)
	sp2, err := newStoreSpool(ctx, st, async, "lns-a", spoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp2.Close(ctx)
	got, _ = sp2.Next(0, 10)
	if len(got) != 2 {
		t.Fatalf("after restart Next %+v", got)
	}
	want := acctRec("C", aaa.AcctStop)
	r := got[1].Record
	if r.AcctSessionID != "C" || r.NASPort != want.NASPort || r.CallingStationID != want.CallingStationID ||
		r.TunnelClientEndpoint != want.TunnelClientEndpoint || !r.Time.Equal(want.Time) || r.InputOctets != want.InputOctets ||
		r.TerminateCause != aaa.CauseNASReboot || len(r.Class) != 2 || string(r.Class[1]) != "c2" || r.SessionTime != time.Minute {
		t.Fatalf("record after restart %+v, want %+v", r, want)
	}
	for _, e := range got {
		if err := sp2.Ack(e.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if err := async.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if q, _ := st.AcctNext(ctx, "lns-a", 10); len(q) != 0 {
		t.Fatalf("delivered records still in the store: %+v", q)
	}
	if more, _ := sp2.Next(got[1].Seq, 10); len(more) != 0 || sp2.Len() != 0 {
		t.Fatalf("offered again: %+v", more)
	}
}
