package timerheap

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Entries come out in deadline order, and only once due.
func TestHeapOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1_800_000_000, 0)
	var h Heap[int]
	var want []time.Time
	for i := 0; i < 1000; i++ {
		at := base.Add(time.Duration(r.IntN(500)) * time.Millisecond)
		h.Push(at, i)
		want = append(want, at)
		if i%7 == 0 { // pops interleaved with pushes
			now := base.Add(time.Duration(r.IntN(100)) * time.Millisecond)
			for {
				it, ok := h.PopDue(now)
				if !ok {
					break
				}
				if it.At.After(now) {
					t.Fatalf("popped %v before it was due at %v", it.At, now)
				}
				j := slices.IndexFunc(want, func(x time.Time) bool { return x.Equal(it.At) })
				if j < 0 {
					t.Fatalf("popped %v twice", it.At)
				}
				if m := slices.MinFunc(want, func(a, b time.Time) int { return a.Compare(b) }); !m.Equal(it.At) {
					t.Fatalf("popped %v, earliest is %v", it.At, m)
				}
				want = slices.Delete(want, j, j+1)
			}
		}
	}
	slices.SortFunc(want, func(a, b time.Time) int { return a.Compare(b) })
	for i, w := range want {
		if at, ok := h.Next(); !ok || !at.Equal(w) {
			t.Fatalf("entry %d: next %v %v, want %v", i, at, ok, w)
		}
		it, ok := h.PopDue(w)
		if !ok || !it.At.Equal(w) {
			t.Fatalf("entry %d: popped %v %v, want %v", i, it.At, ok, w)
		}
	}
	if _, ok := h.PopDue(base.Add(time.Hour)); ok || h.Len() != 0 {
		t.Fatalf("%d entries left", h.Len())
	}
}

// Pushing and popping allocate nothing once the heap has grown.
func TestHeapAllocs(t *testing.T) {
	var h Heap[uint64]
	now := time.Unix(1_800_000_000, 0)
	for i := 0; i < 64; i++ {
		h.Push(now, uint64(i))
	}
	for _, ok := h.PopDue(now); ok; _, ok = h.PopDue(now) {
	}
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 64; i++ {
			h.Push(now.Add(time.Duration(64-i)), uint64(i))
		}
		for _, ok := h.PopDue(now.Add(time.Second)); ok; _, ok = h.PopDue(now.Add(time.Second)) {
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}

// Arm fires the timer at the earliest deadline, at once for one past,
// and not for an hour when there is none.
func TestArm(t *testing.T) {
	var h Heap[int]
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	h.Arm(tm)
	select {
	case <-tm.C:
		t.Fatal("fired with no deadline")
	case <-time.After(20 * time.Millisecond):
	}
	h.Push(time.Now().Add(-time.Second), 1)
	h.Arm(tm)
	select {
	case <-tm.C:
	case <-time.After(5 * time.Second):
		t.Fatal("a past deadline did not fire")
	}
	h.PopDue(time.Now())
	h.Push(time.Now().Add(30*time.Millisecond), 2)
	start := time.Now()
	h.Arm(tm)
	h.Arm(tm) // re-arming keeps one pending tick at most
	<-tm.C
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Fatalf("fired after %v, before the deadline", d)
	}
}
