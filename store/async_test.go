package store_test

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/store"
	"github.com/l2tpd/l2tpd/store/memory"
)

// flaky is a memory store whose Apply fails while down and whose
// answered calls hang until their context ends while down.
type flaky struct {
	*memory.Store
	mu      sync.Mutex
	down    bool
	batches [][]store.Write
}

func (f *flaky) setDown(d bool) {
	f.mu.Lock()
	f.down = d
	f.mu.Unlock()
}

func (f *flaky) isDown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

func (f *flaky) Apply(ctx context.Context, writer string, batch []store.Write) error {
	f.mu.Lock()
	f.batches = append(f.batches, append([]store.Write(nil), batch...))
	down := f.down
	f.mu.Unlock()
	if down {
		return errors.New("connection refused")
	}
	return f.Store.Apply(ctx, writer, batch)
}

func (f *flaky) LeaseIPv4(ctx context.Context, pool string, addr netip.Addr, owner, node string) error {
	if f.isDown() {
		<-ctx.Done()
		return ctx.Err()
	}
	return f.Store.LeaseIPv4(ctx, pool, addr, owner, node)
}

// manualClock hands the writer's backoff timers to the test.
type manualClock struct {
	waits chan time.Duration
	fire  chan time.Time
}

func newManualClock() *manualClock {
	return &manualClock{waits: make(chan time.Duration, 16), fire: make(chan time.Time)}
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.fire
}

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func TestAsyncRetriesWithBackoff(t *testing.T) {
	f := &flaky{Store: memory.New(memory.Config{})}
	f.setDown(true)
	clk := newManualClock()
	errs := make(chan error, 16)
	// The writer is named once the five writes are queued, so that the
	// first attempt carries them all.
	a, err := store.NewAsync(f, store.AsyncConfig{
		RetryMin: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond,
		After: clk.After, OnError: func(err error) { errs <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer a.Close(ctx)
	for i := range 5 {
		if err := a.AddEvent("s1", t0.Add(time.Duration(i)*time.Second), "tick", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SetWriter("lns1/1"); err != nil {
		t.Fatal(err)
	}
	// Backoff doubles from RetryMin up to RetryMax.
	for _, want := range []time.Duration{10, 20, 40, 40} {
		if got := <-clk.waits; got != want*time.Millisecond {
			t.Fatalf("backoff %v, want %v", got, want*time.Millisecond)
		}
		<-errs
		if d := a.Depth(); d != 5 {
			t.Fatalf("depth %d while failing, want 5", d)
		}
		clk.fire <- t0
	}
	<-clk.waits
	f.setDown(false)
	clk.fire <- t0
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := f.Events(ctx, "s1")
	if err != nil || len(evs) != 5 {
		t.Fatalf("events after recovery: %d, %v; want 5", len(evs), err)
	}
	for i, e := range evs {
		if !e.At.Equal(t0.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("event %d at %v: order lost", i, e.At)
		}
	}
	st := a.Stats()
	if st.Failures != 5 || st.Applied != 5 || st.Queued != 5 || st.Depth != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Every attempt carried the same writes with the same sequence
	// numbers, which is what lets Apply skip a batch already committed.
	for _, b := range f.batches {
		if len(b) != 5 || b[0].Seq != 1 || b[4].Seq != 5 {
			t.Fatalf("attempt carried %d writes from seq %d", len(b), b[0].Seq)
		}
	}
}

func TestAsyncQueueLimit(t *testing.T) {
	f := &flaky{Store: memory.New(memory.Config{})}
	f.setDown(true)
	clk := newManualClock()
	a, err := store.NewAsync(f, store.AsyncConfig{Writer: "lns1/1", QueueLimit: 3, After: clk.After})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := a.SessionUpdate("s1", store.Counters{InOctets: uint64(i)}, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SessionUpdate("s1", store.Counters{}, t0); !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("write beyond the limit: %v, want ErrQueueFull", err)
	}
	if st := a.Stats(); st.Rejected != 1 || st.Depth != 3 {
		t.Fatalf("stats %+v, want 1 rejected, depth 3", st)
	}
	<-clk.waits
	// Close gives up when its context ends and says what was left.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.Close(ctx); err == nil {
		t.Fatal("Close with 3 unapplied writes and an ended context reported nothing")
	}
	if err := a.ReleaseIPv4("cgnat", netip.MustParseAddr("100.64.0.1")); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("write after Close: %v, want ErrClosed", err)
	}
}

// Calls that need an answer do not wait for a hung database longer than
// CallTimeout, and say ErrUnavailable.
func TestAsyncCallTimeout(t *testing.T) {
	f := &flaky{Store: memory.New(memory.Config{})}
	a, err := store.NewAsync(f, store.AsyncConfig{Writer: "lns1/1", CallTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer a.Close(ctx)
	addr := netip.MustParseAddr("100.64.0.1")
	if err := a.LeaseIPv4(ctx, "cgnat", addr, "s1", "lns1"); err != nil {
		t.Fatal(err)
	}
	if err := a.LeaseIPv4(ctx, "cgnat", addr, "s2", "lns1"); !errors.Is(err, store.ErrLeased) {
		t.Fatalf("second lease: %v, want ErrLeased", err)
	}
	f.setDown(true)
	if err := a.LeaseIPv4(ctx, "cgnat", netip.MustParseAddr("100.64.0.2"), "s2", "lns1"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("lease from a hung store: %v, want ErrUnavailable", err)
	}
}

func TestStringers(t *testing.T) {
	// RFC 2866 §5.1 Acct-Status-Type values.
	for s, want := range map[store.AcctStatus]string{1: "Start", 2: "Stop", 3: "Interim-Update", 7: "Accounting-On", 8: "Accounting-Off", 9: "AcctStatus(9)"} {
		if got := s.String(); got != want {
			t.Errorf("AcctStatus(%d) = %q, want %q", s, got, want)
		}
	}
	if got := store.WriteEvent.String(); got != "event" {
		t.Errorf("WriteEvent = %q", got)
	}
	if got := store.WriteKind(99).String(); got != "WriteKind(99)" {
		t.Errorf("WriteKind(99) = %q", got)
	}
}
