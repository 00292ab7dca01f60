package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/store"
)

// storeSpool is the RADIUS accounting spool on the store's accounting
// queue, so that records survive a crash and a restart.
//
// Put only appends to memory and wakes the spool's writer goroutine,
// which writes each record to the store in order (AcctEnqueue) and
// retries while the database is unreachable: a shard handing a record
// over never waits on the network. The sender (aaa.Accounting) is
// offered a record once it is in the store, so what RADIUS acknowledges
// was durable first and a record is delivered once, its row deleted
// through the Async queue. While the store is unreachable the sender is
// offered the records held in memory too, so accounting does not stop
// with the database; a record acknowledged by RADIUS before its write
// is never written.
//
// The spool takes over the records the node's previous run left in the
// store (undelivered, or delivered but not yet deleted when it died)
// before it writes any of its own, so that it never mistakes one of its
// own for one of them. When the store answers at start, they are taken
// over at once and offered first. When it does not (a node started
// during a database outage), the spool starts empty: what this run puts
// is held in memory and offered from there, as during any outage, and
// the previous run's records are taken over when the store is reached,
// before anything is written, and offered after those already held.
type storeSpool struct {
	st    store.Store
	async *store.Async
	node  string
	cfg   spoolConfig

	mu      sync.Mutex
	seq     uint64
	entries []spoolEntry // ascending seq
	failing bool         // the last write (or take-over) failed
	closing bool
	loaded  bool // the previous run's records are taken over

	loadMu sync.Mutex // one take-over at a time

	wake chan struct{}
	done chan struct{}
	quit chan struct{}
}

type spoolConfig struct {
	// Limit bounds the records held in memory (unwritten or
	// undelivered); Put fails with aaa.ErrSpoolFull beyond it.
	Limit int
	// Timeout bounds one write; RetryMin and RetryMax the backoff
	// between failed writes.
	Timeout            time.Duration
	RetryMin, RetryMax time.Duration
	// Notify tells the sender the spool has more to offer.
	Notify func()
	// OnError is told of failed writes.
	OnError func(error)
	// OnRecovered is told how many records of the previous run were
	// taken over.
	OnRecovered func(n int)
	// After is time.After unless a test drives the retries.
	After func(time.Duration) <-chan time.Time
}

type spoolEntry struct {
	seq   uint64
	rec   aaa.AcctRecord
	id    int64 // in the store; 0 until written
	acked bool
}

// maxRecovered bounds the records taken over from a previous run.
const maxRecovered = 1 << 20

func newStoreSpool(ctx context.Context, st store.Store, async *store.Async, node string, cfg spoolConfig) (*storeSpool, error) {
	if cfg.Limit <= 0 {
		cfg.Limit = 1 << 20
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(5*time.Second, cfg.RetryMin)
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Notify == nil {
		cfg.Notify = func() {}
	}
	sp := &storeSpool{st: st, async: async, node: node, cfg: cfg,
		wake: make(chan struct{}, 1), done: make(chan struct{}), quit: make(chan struct{})}
	if err := sp.takeOver(ctx, st); err != nil && !errors.Is(err, store.ErrUnavailable) {
		return nil, err
	}
	go sp.run()
	return sp, nil
}

// takeOver loads, once, the records the node's previous run left in st
// (the spool's store, or the one it is about to become) and places them
// after those already held. Nothing is written before it succeeds.
func (sp *storeSpool) takeOver(ctx context.Context, st store.Store) error {
	sp.loadMu.Lock()
	defer sp.loadMu.Unlock()
	if sp.isLoaded() {
		return nil
	}
	old, err := st.AcctNext(ctx, sp.node, maxRecovered)
	if err != nil {
		return fmt.Errorf("control: accounting spool: %w", err)
	}
	sp.mu.Lock()
	for _, r := range old {
		sp.seq++
		sp.entries = append(sp.entries, spoolEntry{seq: sp.seq, rec: fromStoreAcct(r), id: r.ID})
	}
	sp.loaded = true
	sp.mu.Unlock()
	if sp.cfg.OnRecovered != nil {
		sp.cfg.OnRecovered(len(old))
	}
	select {
	case sp.wake <- struct{}{}:
	default:
	}
	if len(old) > 0 {
		sp.cfg.Notify()
	}
	return nil
}

func (sp *storeSpool) isLoaded() bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.loaded
}

// Len is how many records are held: not yet written or not yet
// delivered.
func (sp *storeSpool) Len() int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return len(sp.entries)
}

func (sp *storeSpool) Put(rec aaa.AcctRecord) (uint64, error) {
	sp.mu.Lock()
	if sp.closing {
		sp.mu.Unlock()
		return 0, fmt.Errorf("control: accounting spool: %w", store.ErrClosed)
	}
	if len(sp.entries) >= sp.cfg.Limit {
		sp.mu.Unlock()
		return 0, aaa.ErrSpoolFull
	}
	sp.seq++
	seq := sp.seq
	sp.entries = append(sp.entries, spoolEntry{seq: seq, rec: rec})
	sp.mu.Unlock()
	select {
	case sp.wake <- struct{}{}:
	default:
	}
	return seq, nil
}

// Next offers the records in the store (a prefix, as they are written
// in order) or, while writes fail, every record held.
func (sp *storeSpool) Next(after uint64, n int) ([]aaa.SpoolEntry, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var out []aaa.SpoolEntry
	for i := sp.search(after + 1); i < len(sp.entries) && len(out) < n; i++ {
		e := &sp.entries[i]
		if e.id == 0 && !sp.failing {
			break
		}
		out = append(out, aaa.SpoolEntry{Seq: e.seq, Record: e.rec})
	}
	return out, nil
}

// Ack forgets a delivered record and deletes its row through the Async
// queue; one not yet written is never written.
func (sp *storeSpool) Ack(seq uint64) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	i := sp.search(seq)
	if i >= len(sp.entries) || sp.entries[i].seq != seq {
		return nil
	}
	e := &sp.entries[i]
	if e.id == 0 {
		// The writer may be writing it right now: it deletes the row
		// when it sees the mark.
		e.acked = true
		return nil
	}
	id := e.id
	sp.entries = append(sp.entries[:i], sp.entries[i+1:]...)
	if sp.async != nil {
		return sp.async.AcctAck(id)
	}
	return nil
}

func (sp *storeSpool) search(seq uint64) int {
	lo, hi := 0, len(sp.entries)
	for lo < hi {
		m := (lo + hi) / 2
		if sp.entries[m].seq < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// Close writes what is still only in memory (bounded by ctx) and stops
// the writer.
func (sp *storeSpool) Close(ctx context.Context) error {
	sp.mu.Lock()
	sp.closing = true
	sp.mu.Unlock()
	select {
	case sp.wake <- struct{}{}:
	default:
	}
	select {
	case <-sp.done:
	case <-ctx.Done():
		close(sp.quit)
		<-sp.done
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	n := 0
	for _, e := range sp.entries {
		if e.id == 0 && !e.acked {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("control: accounting spool: %d records not written", n)
	}
	return nil
}

// pending returns the first record to write, dropping those delivered
// before being written.
func (sp *storeSpool) pending() (seq uint64, rec aaa.AcctRecord, ok bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	kept := sp.entries[:0]
	for _, e := range sp.entries {
		if e.acked && e.id == 0 {
			continue
		}
		kept = append(kept, e)
	}
	clear(sp.entries[len(kept):])
	sp.entries = kept
	for _, e := range sp.entries {
		if e.id == 0 {
			return e.seq, e.rec, true
		}
	}
	return 0, rec, false
}

func (sp *storeSpool) run() {
	defer close(sp.done)
	backoff := time.Duration(0)
	for {
		if !sp.isLoaded() {
			ctx, cancel := context.WithTimeout(context.Background(), sp.cfg.Timeout)
			err := sp.takeOver(ctx, sp.st)
			cancel()
			if err == nil {
				backoff = 0
				continue
			}
			backoff = min(max(2*backoff, sp.cfg.RetryMin), sp.cfg.RetryMax)
			if _, _, ok := sp.pending(); ok {
				sp.failed(err)
			} else if sp.isClosing() {
				return
			} else {
				// Nothing waits to be written: retry quietly, and
				// at once when a record comes.
				select {
				case <-sp.cfg.After(backoff):
				case <-sp.wake:
				case <-sp.quit:
					return
				}
				continue
			}
			select {
			case <-sp.cfg.After(backoff):
			case <-sp.quit:
				return
			}
			continue
		}
		seq, rec, ok := sp.pending()
		if !ok {
			sp.mu.Lock()
			closing := sp.closing
			sp.mu.Unlock()
			if closing {
				return
			}
			select {
			case <-sp.wake:
				continue
			case <-sp.quit:
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), sp.cfg.Timeout)
		id, err := sp.st.AcctEnqueue(ctx, toStoreAcct(sp.node, rec))
		cancel()
		sp.mu.Lock()
		var orphan int64
		if err == nil {
			sp.failing = false
			i := sp.search(seq)
			if i < len(sp.entries) && sp.entries[i].seq == seq {
				if sp.entries[i].acked {
					// Delivered while being written.
					sp.entries = append(sp.entries[:i], sp.entries[i+1:]...)
					orphan = id
				} else {
					sp.entries[i].id = id
				}
			}
		}
		sp.mu.Unlock()
		if orphan != 0 && sp.async != nil {
			_ = sp.async.AcctAck(orphan)
		}
		if err == nil {
			backoff = 0
			sp.cfg.Notify()
			continue
		}
		sp.failed(err)
		backoff = min(max(2*backoff, sp.cfg.RetryMin), sp.cfg.RetryMax)
		select {
		case <-sp.cfg.After(backoff):
		case <-sp.quit:
			return
		}
	}
}

// failed notes a failed write or take-over: the records held are
// offered from memory until a write succeeds.
func (sp *storeSpool) failed(err error) {
	sp.mu.Lock()
	wasFailing := sp.failing
	sp.failing = true
	sp.mu.Unlock()
	if sp.cfg.OnError != nil {
		sp.cfg.OnError(err)
	}
	if !wasFailing {
		sp.cfg.Notify() // offer from memory while the store is down
	}
}

func (sp *storeSpool) isClosing() bool {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.closing
}

// toStoreAcct keeps what RADIUS needs: the store's columns, and the
// whole record as JSON so that NAS-Port, the stations, the tunnel
// attributes and every Class come back as they were.
func toStoreAcct(node string, r aaa.AcctRecord) store.AcctRecord {
	extra, _ := json.Marshal(&r)
	out := store.AcctRecord{
		Node: node, Status: store.AcctStatus(r.Status), SessionID: r.AcctSessionID, AcctSessionID: r.AcctSessionID,
		User: r.User, IPv4: r.FramedIPAddress, IPv6: r.FramedIPv6Prefix, At: r.Time, Start: r.Time.Add(-r.SessionTime),
		Counters: store.Counters{InOctets: r.InputOctets, OutOctets: r.OutputOctets, InPackets: r.InputPackets, OutPackets: r.OutputPackets},
		Extra:    extra,
	}
	if r.TerminateCause != aaa.CauseNone {
		out.Cause = r.TerminateCause.String()
	}
	if len(r.Class) > 0 {
		out.Class = r.Class[0]
	}
	return out
}

// fromStoreAcct rebuilds a record from its JSON, or from the columns
// when it has none.
func fromStoreAcct(r store.AcctRecord) aaa.AcctRecord {
	var out aaa.AcctRecord
	if len(r.Extra) > 0 && json.Unmarshal(r.Extra, &out) == nil {
		return out
	}
	out = aaa.AcctRecord{
		Session: aaa.Session{User: r.User, AcctSessionID: r.AcctSessionID},
		Status:  aaa.AcctStatus(r.Status), Time: r.At, FramedIPAddress: r.IPv4, FramedIPv6Prefix: r.IPv6,
		InputOctets: r.Counters.InOctets, OutputOctets: r.Counters.OutOctets,
		InputPackets: r.Counters.InPackets, OutputPackets: r.Counters.OutPackets,
	}
	if !r.Start.IsZero() && r.At.After(r.Start) {
		out.SessionTime = r.At.Sub(r.Start)
	}
	if len(r.Class) > 0 {
		out.Class = [][]byte{r.Class}
	}
	for c := aaa.CauseUserRequest; c <= aaa.CauseHostRequest; c++ {
		if c.String() == r.Cause {
			out.TerminateCause = c
		}
	}
	return out
}
