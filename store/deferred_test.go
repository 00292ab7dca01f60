package store_test

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/store"
	"github.com/l2tpd/l2tpd/store/memory"
)

// closeCounter is a memory store that counts Close calls.
type closeCounter struct {
	*memory.Store
	closed atomic.Int32
}

func (c *closeCounter) Close() { c.closed.Add(1) }

// A Deferred answers like an unreachable database until it has a store,
// then is that store.
func TestDeferred(t *testing.T) {
	ctx := context.Background()
	d := store.NewDeferred()
	if d.Store() != nil {
		t.Fatal("Store before Set")
	}
	addr := netip.MustParseAddr("100.64.0.10")
	for name, err := range map[string]error{
		"ping":     d.Ping(ctx),
		"lease":    d.LeaseIPv4(ctx, "p", addr, "s1", "lns1"),
		"apply":    d.Apply(ctx, "lns1/1", []store.Write{{Seq: 1, Kind: store.WriteEvent, ID: "s1", At: t0}}),
		"recover":  func() error { _, err := d.Recover(ctx, "lns1", t0); return err }(),
		"register": func() error { _, err := d.RegisterNode(ctx, "lns1"); return err }(),
		"acct":     func() error { _, err := d.AcctNext(ctx, "lns1", 10); return err }(),
		"slot":     func() error { _, err := d.AcquireUserSlot(ctx, "alice", 1, "s1", "lns1"); return err }(),
	} {
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s before Set: %v, want ErrUnavailable", name, err)
		}
	}
	d.Close() // nothing to close yet

	m := &closeCounter{Store: memory.New(memory.Config{})}
	if err := d.Set(m); err != nil {
		t.Fatal(err)
	}
	if err := d.Set(memory.New(memory.Config{})); err == nil {
		t.Fatal("a second Set succeeded")
	}
	if err := d.Ping(ctx); err != nil {
		t.Fatalf("ping after Set: %v", err)
	}
	if epoch, err := d.RegisterNode(ctx, "lns1"); err != nil || epoch != 1 {
		t.Fatalf("RegisterNode %d %v", epoch, err)
	}
	if err := d.LeaseIPv4(ctx, "p", addr, "s1", "lns1"); err != nil {
		t.Fatal(err)
	}
	ls, err := m.LeasesIPv4Of(ctx, "lns1")
	if err != nil || len(ls) != 1 || ls[0].Addr != addr {
		t.Fatalf("lease through the Deferred not in the store: %+v %v", ls, err)
	}
	d.Close()
	if n := m.closed.Load(); n != 1 {
		t.Fatalf("store closed %d times, want 1", n)
	}
}

// An Async made before its writer can be named holds its writes, reports
// the store down, and applies them in order once named.
func TestAsyncWriterNamedLater(t *testing.T) {
	ctx := context.Background()
	f := &flaky{Store: memory.New(memory.Config{})}
	d := store.NewDeferred()
	var health atomic.Int32
	a, err := store.NewAsync(d, store.AsyncConfig{OnHealth: func(bool) { health.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	if a.Up() {
		t.Fatal("Up before the writer is named")
	}
	for i := range 3 {
		if err := a.AddEvent("s1", t0.Add(time.Duration(i)*time.Second), "tick", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.LeaseIPv4(ctx, "p", netip.MustParseAddr("100.64.0.10"), "s1", "lns1"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("lease before the store is reached: %v", err)
	}
	fctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if err := a.Flush(fctx); err == nil {
		t.Fatal("writes applied with no writer named")
	}
	cancel()
	if err := d.Set(f); err != nil {
		t.Fatal(err)
	}
	fctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	if err := a.Flush(fctx); err == nil {
		t.Fatal("writes applied with no writer named")
	}
	cancel()
	if len(f.batches) != 0 {
		t.Fatalf("Apply called %d times before the writer was named", len(f.batches))
	}
	if err := a.SetWriter("lns1/2"); err != nil {
		t.Fatal(err)
	}
	if err := a.SetWriter("lns1/3"); err == nil {
		t.Fatal("the writer was named twice")
	}
	if !a.Up() {
		t.Fatal("not Up once the writer is named")
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := f.Events(ctx, "s1")
	if err != nil || len(evs) != 3 {
		t.Fatalf("events %d %v, want 3", len(evs), err)
	}
	for i, e := range evs {
		if !e.At.Equal(t0.Add(time.Duration(i) * time.Second)) {
			t.Fatalf("event %d at %v: order lost", i, e.At)
		}
	}
	// The failed lease found the store down already: no change to
	// report; naming the writer is reported by the caller.
	if n := health.Load(); n != 0 {
		t.Fatalf("OnHealth told %d times", n)
	}
}

// Closing an Async whose writer was never named returns at once and
// says what was not applied.
func TestAsyncCloseUnnamed(t *testing.T) {
	a, err := store.NewAsync(store.NewDeferred(), store.AsyncConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AddEvent("s1", t0, "tick", ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	err = a.Close(ctx)
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Close: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
}
