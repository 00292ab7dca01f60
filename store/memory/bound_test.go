package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/store"
)

// The store holds what is live plus the last KeepStopped stopped
// sessions: a node running for months does not grow with every session
// it has carried.
func TestBoundedByLive(t *testing.T) {
	s := New(Config{KeepStopped: 4})
	ctx := context.Background()
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.SessionStart(ctx, store.SessionRecord{ID: "live", Node: "lns1", Start: t0}))
	must(s.AddEvent(ctx, "live", t0, "up", ""))
	for i := range 100 {
		id := fmt.Sprintf("s%d", i)
		must(s.SessionStart(ctx, store.SessionRecord{ID: id, Node: "lns1", Start: t0}))
		must(s.AddEvent(ctx, id, t0, "up", ""))
		must(s.SessionStop(ctx, id, "User-Request", store.Counters{}, t0))
		must(s.AddEvent(ctx, fmt.Sprintf("never-started-%d", i), t0, "icrq", ""))
		id2, err := s.AcctEnqueue(ctx, store.AcctRecord{Node: "lns1", SessionID: id})
		must(err)
		must(s.AcctAck(ctx, id2))
	}
	s.mu.Lock()
	sessions, events, retire, acct := len(s.sessions), len(s.events), len(s.retire), len(s.acctNode)
	s.mu.Unlock()
	if sessions > 5 || events > 5 || retire > 4 || acct != 0 {
		t.Fatalf("after 100 sessions: %d sessions, %d event lists, %d retiring, %d acct; want at most 5, 5, 4, 0",
			sessions, events, retire, acct)
	}
	if _, err := s.Session(ctx, "live"); err != nil {
		t.Fatalf("the open session was forgotten: %v", err)
	}
	if evs, _ := s.Events(ctx, "live"); len(evs) != 1 {
		t.Fatalf("the open session's events were forgotten: %v", evs)
	}
	// The newest stopped session is still there.
	if r, err := s.Session(ctx, "s99"); err != nil || r.Cause != "User-Request" {
		t.Fatalf("s99: %+v, %v", r, err)
	}
	if _, err := s.Session(ctx, "s0"); err == nil {
		t.Fatal("s0, stopped 99 sessions ago, is still remembered")
	}
}
