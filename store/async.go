package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// AsyncConfig tunes an Async queue. Zero fields take the defaults shown.
type AsyncConfig struct {
	// Writer names this process lifetime to Store.Apply, which uses it
	// to apply each write once; it must differ between restarts and
	// between nodes: node ID and boot epoch, for example "lns1/42".
	// Empty when the writer cannot be named yet (the store has not been
	// reached, so the boot epoch is unknown): writes are then queued
	// but not applied, and the store counts as unreachable (Up false),
	// until SetWriter.
	Writer string
	// QueueLimit bounds the writes waiting (65536); beyond it writes
	// fail with ErrQueueFull.
	QueueLimit int
	// BatchSize bounds the writes applied in one transaction (256).
	BatchSize int
	// RetryMin and RetryMax bound the exponential backoff between
	// attempts while the store fails (50ms, 5s).
	RetryMin, RetryMax time.Duration
	// ApplyTimeout bounds one batch attempt (10s).
	ApplyTimeout time.Duration
	// CallTimeout bounds the calls that wait for an answer (LeaseIPv4,
	// LeaseIPv6, AcquireUserSlot) beyond their context (1s).
	CallTimeout time.Duration
	// OnError is told of each failed batch attempt, from the writer
	// goroutine; nil ignores them.
	OnError func(err error)
	// After returns a channel that fires after d; tests replace it to
	// drive retries by hand. Nil means time.After.
	After func(d time.Duration) <-chan time.Time
	// OnHealth is told when the store goes from answering to
	// unreachable (false) and back (true), from whichever goroutine
	// saw the change; nil ignores it.
	OnHealth func(up bool)
}

// Pinger is implemented by stores that can become unreachable (a
// database); Async.Probe uses it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// AsyncStats are an Async queue's counters.
type AsyncStats struct {
	Depth    int    // writes waiting, including the batch being applied
	Queued   uint64 // writes accepted
	Applied  uint64 // writes applied (or skipped as already applied)
	Rejected uint64 // writes refused with ErrQueueFull
	Failures uint64 // failed batch attempts
}

// Async puts a Store behind a bounded write queue for the control plane,
// whose shards must never wait on the database. Writes return at once:
// they are queued and applied in order, in batches, by one goroutine,
// which retries with backoff while the store fails, each batch exactly
// once (Store.Apply). Calls that need an answer (leases, user slots) go
// straight to the store with a short timeout, so that while the database
// is unreachable they fail promptly with ErrUnavailable and the caller
// applies its policy.
//
// Because writes are queued and answered calls are not, a lease or user
// slot released through the queue may still be held for a moment when
// a later LeaseIPv4 or AcquireUserSlot asks: the caller's own pools are
// the first line, the store the cross-node check.
type Async struct {
	s   Store
	cfg AsyncConfig

	mu       sync.Mutex
	writer   string // empty until named: nothing is applied
	q        []Write
	seq      uint64
	applied  uint64 // highest Seq applied
	closing  bool
	stats    AsyncStats
	progress chan struct{} // closed and replaced when applied grows

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	down atomic.Bool // the last attempt found the store unreachable
}

// NewAsync starts the writer goroutine over s. Stop it with Close.
func NewAsync(s Store, cfg AsyncConfig) (*Async, error) {
	if cfg.QueueLimit <= 0 {
		cfg.QueueLimit = 65536
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 256
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 50 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(5*time.Second, cfg.RetryMin)
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = time.Second
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Async{
		s:        s,
		cfg:      cfg,
		writer:   cfg.Writer,
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	a.down.Store(cfg.Writer == "")
	go a.run(ctx)
	return a, nil
}

// SetWriter names the writer of an Async made without one and starts
// applying what was queued meanwhile, in order. The caller has just
// reached the store (its boot epoch names the writer): Up turns true
// without OnHealth being told, the caller reporting that change itself.
// It fails when the writer is already named.
func (a *Async) SetWriter(writer string) error {
	if writer == "" {
		return errors.New("store: async: empty writer")
	}
	a.mu.Lock()
	if a.writer != "" {
		a.mu.Unlock()
		return fmt.Errorf("store: async: writer already named %q", a.writer)
	}
	a.writer = writer
	a.mu.Unlock()
	a.down.Store(false)
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// Store returns the store behind the queue, for reads.
func (a *Async) Store() Store { return a.s }

// Depth returns how many writes wait, including the batch being applied.
func (a *Async) Depth() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.q)
}

// Stats returns the queue's counters.
func (a *Async) Stats() AsyncStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.stats
	st.Depth = len(a.q)
	return st
}

func (a *Async) enqueue(w Write) error {
	a.mu.Lock()
	if a.closing {
		a.mu.Unlock()
		return fmt.Errorf("store: async %s: %w", w.Kind, ErrClosed)
	}
	if len(a.q) >= a.cfg.QueueLimit {
		a.stats.Rejected++
		a.mu.Unlock()
		return fmt.Errorf("store: async %s: %w", w.Kind, ErrQueueFull)
	}
	a.seq++
	w.Seq = a.seq
	a.q = append(a.q, w)
	a.stats.Queued++
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// SessionStart queues Store.SessionStart.
func (a *Async) SessionStart(rec SessionRecord) error {
	rec.Class = slices.Clone(rec.Class)
	return a.enqueue(Write{Kind: WriteSessionStart, Session: rec})
}

// SessionUpdate queues Store.SessionUpdate.
func (a *Async) SessionUpdate(id string, c Counters, at time.Time) error {
	return a.enqueue(Write{Kind: WriteSessionUpdate, ID: id, Counters: c, At: at})
}

// SessionStop queues Store.SessionStop.
func (a *Async) SessionStop(id, cause string, c Counters, at time.Time) error {
	return a.enqueue(Write{Kind: WriteSessionStop, ID: id, Cause: cause, Counters: c, At: at})
}

// ReleaseIPv4 queues Store.ReleaseIPv4.
func (a *Async) ReleaseIPv4(pool string, addr netip.Addr) error {
	return a.enqueue(Write{Kind: WriteReleaseIPv4, Pool: pool, Addr: addr})
}

// ReleaseIPv6 queues Store.ReleaseIPv6.
func (a *Async) ReleaseIPv6(pool string, prefix netip.Prefix) error {
	return a.enqueue(Write{Kind: WriteReleaseIPv6, Pool: pool, Prefix: prefix})
}

// ReleaseUserSlot queues Store.ReleaseUserSlot.
func (a *Async) ReleaseUserSlot(user, session string) error {
	return a.enqueue(Write{Kind: WriteReleaseUserSlot, User: user, ID: session})
}

// AcctEnqueue queues Store.AcctEnqueue. The record's ID is known only
// once applied; delivery reads it back with AcctNext.
func (a *Async) AcctEnqueue(rec AcctRecord) error {
	rec.Class = slices.Clone(rec.Class)
	rec.Extra = slices.Clone(rec.Extra)
	return a.enqueue(Write{Kind: WriteAcctEnqueue, Acct: rec})
}

// AcctAck queues Store.AcctAck.
func (a *Async) AcctAck(id int64) error {
	return a.enqueue(Write{Kind: WriteAcctAck, AcctID: id})
}

// AddEvent queues Store.AddEvent.
func (a *Async) AddEvent(session string, at time.Time, kind, detail string) error {
	return a.enqueue(Write{Kind: WriteEvent, ID: session, At: at, EventKind: kind, Detail: detail})
}

// Up reports whether the store answered the last write batch, call or
// probe.
func (a *Async) Up() bool { return !a.down.Load() }

// note records the outcome of one attempt: an ErrUnavailable marks the
// store down, anything else (an answer, even a refusal) up.
func (a *Async) note(err error) {
	down := errors.Is(err, ErrUnavailable)
	if a.down.CompareAndSwap(!down, down) && a.cfg.OnHealth != nil {
		a.cfg.OnHealth(!down)
	}
}

// Probe asks a store that can be unreachable whether it answers, within
// CallTimeout, and records the outcome; stores that cannot fail are
// always up.
func (a *Async) Probe(ctx context.Context) error {
	p, ok := a.s.(Pinger)
	if !ok {
		return nil
	}
	ctx, cancel := a.call(ctx)
	defer cancel()
	err := p.Ping(ctx)
	if err != nil && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("store: ping: %w: %w", ErrUnavailable, err)
	}
	a.note(err)
	return err
}

func (a *Async) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.CallTimeout)
}

// unavailable marks a timeout as ErrUnavailable: the caller asked
// promptly and the store did not answer in time.
func unavailable(op string, err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("store: %s: %w: %w", op, ErrUnavailable, err)
}

// LeaseIPv4 calls Store.LeaseIPv4 within CallTimeout.
func (a *Async) LeaseIPv4(ctx context.Context, pool string, addr netip.Addr, owner, node string) error {
	ctx, cancel := a.call(ctx)
	defer cancel()
	err := unavailable("lease ipv4", a.s.LeaseIPv4(ctx, pool, addr, owner, node))
	a.note(err)
	return err
}

// LeaseIPv6 calls Store.LeaseIPv6 within CallTimeout.
func (a *Async) LeaseIPv6(ctx context.Context, pool string, prefix netip.Prefix, owner, node string) error {
	ctx, cancel := a.call(ctx)
	defer cancel()
	err := unavailable("lease ipv6", a.s.LeaseIPv6(ctx, pool, prefix, owner, node))
	a.note(err)
	return err
}

// AcquireUserSlot calls Store.AcquireUserSlot within CallTimeout.
func (a *Async) AcquireUserSlot(ctx context.Context, user string, max int, session, node string) (bool, error) {
	ctx, cancel := a.call(ctx)
	defer cancel()
	ok, err := a.s.AcquireUserSlot(ctx, user, max, session, node)
	err = unavailable("acquire user slot", err)
	a.note(err)
	return ok, err
}

// Flush waits until every write queued before the call is applied, or
// ctx ends.
func (a *Async) Flush(ctx context.Context) error {
	a.mu.Lock()
	target := a.seq
	for a.applied < target {
		ch := a.progress
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("store: async flush: %w", ctx.Err())
		case <-a.done:
			a.mu.Lock()
			left := a.applied < target
			a.mu.Unlock()
			if left {
				return fmt.Errorf("store: async flush: %w", ErrClosed)
			}
			return nil
		}
		a.mu.Lock()
	}
	a.mu.Unlock()
	return nil
}

// Close refuses further writes and waits for the queued ones to be
// applied; when ctx ends first, it stops the writer and reports how many
// were left unapplied.
func (a *Async) Close(ctx context.Context) error {
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	select {
	case <-a.done:
	case <-ctx.Done():
		a.cancel()
		<-a.done
	}
	a.cancel()
	if n := a.Depth(); n > 0 {
		cause := ctx.Err()
		if cause == nil {
			cause = ErrUnavailable // no writer named: the store was never reached
		}
		return fmt.Errorf("store: async close: %d writes not applied: %w", n, cause)
	}
	return nil
}

func (a *Async) run(ctx context.Context) {
	defer close(a.done)
	backoff := time.Duration(0)
	var batch []Write
	for {
		a.mu.Lock()
		n := min(len(a.q), a.cfg.BatchSize)
		writer := a.writer
		if writer == "" {
			n = 0 // held until SetWriter; Close gives up on them
		}
		batch = append(batch[:0], a.q[:n]...)
		closing := a.closing
		a.mu.Unlock()
		if n == 0 {
			if closing {
				return
			}
			select {
			case <-a.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		actx, cancel := context.WithTimeout(ctx, a.cfg.ApplyTimeout)
		err := unavailable("apply", a.s.Apply(actx, writer, batch))
		cancel()
		a.note(err)
		if err != nil {
			a.mu.Lock()
			a.stats.Failures++
			a.mu.Unlock()
			if a.cfg.OnError != nil {
				a.cfg.OnError(fmt.Errorf("store: async: %d writes: %w", n, err))
			}
			backoff = min(max(2*backoff, a.cfg.RetryMin), a.cfg.RetryMax)
			select {
			case <-a.cfg.After(backoff):
			case <-ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		a.mu.Lock()
		clear(a.q[:n])
		a.q = a.q[n:]
		if len(a.q) == 0 {
			a.q = nil // let a burst's backing array go
		}
		a.applied = batch[n-1].Seq
		a.stats.Applied += uint64(n)
		close(a.progress)
		a.progress = make(chan struct{})
		a.mu.Unlock()
	}
}
