// Package timerheap is the deadline heap of the control plane's shards:
// every tunnel, call and subscriber timer of a shard waits in one heap,
// served by one time.Timer armed for the earliest deadline. Entries are
// invalidated lazily: an owner that moves its deadline pushes a new entry
// and ignores the old one when it pops (its recorded deadline no longer
// matches). Pushing allocates only when the heap grows.
package timerheap

import "time"

// Item is a deadline and what it is for.
type Item[K any] struct {
	At  time.Time
	Key K
}

// Heap is a min-heap of Items by deadline. The zero Heap is empty and
// ready to use; a Heap belongs to one goroutine.
type Heap[K any] struct {
	items []Item[K]
}

// Len is the number of entries, stale ones included.
func (h *Heap[K]) Len() int { return len(h.items) }

// Next returns the earliest deadline; ok is false when the heap is empty.
func (h *Heap[K]) Next() (at time.Time, ok bool) {
	if len(h.items) == 0 {
		return time.Time{}, false
	}
	return h.items[0].At, true
}

// Push adds a deadline.
func (h *Heap[K]) Push(at time.Time, key K) {
	h.items = append(h.items, Item[K]{At: at, Key: key})
	h.up(len(h.items) - 1)
}

// PopDue removes and returns the earliest entry if it is due at now (its
// deadline not after now).
func (h *Heap[K]) PopDue(now time.Time) (Item[K], bool) {
	if len(h.items) == 0 || h.items[0].At.After(now) {
		return Item[K]{}, false
	}
	it := h.items[0]
	n := len(h.items) - 1
	h.items[0] = h.items[n]
	h.items[n] = Item[K]{} // release what the key refers to
	h.items = h.items[:n]
	if n > 0 {
		h.down(0)
	}
	return it, true
}

// Arm sets t to fire at the earliest deadline (at once if it has passed),
// or in an hour when the heap is empty. t must be owned by the heap's
// goroutine; a tick pending in t.C is discarded.
func (h *Heap[K]) Arm(t *time.Timer) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	at, ok := h.Next()
	if !ok {
		t.Reset(time.Hour)
		return
	}
	t.Reset(max(time.Until(at), 0))
}

func (h *Heap[K]) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.items[i].At.Before(h.items[p].At) {
			return
		}
		h.items[i], h.items[p] = h.items[p], h.items[i]
		i = p
	}
}

func (h *Heap[K]) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.items[r].At.Before(h.items[l].At) {
			m = r
		}
		if !h.items[m].At.Before(h.items[i].At) {
			return
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}
