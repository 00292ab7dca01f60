package store

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
)

// Deferred is a Store that is not there yet: a node that starts while
// its database is unreachable runs on a Deferred, which answers every
// call with ErrUnavailable, exactly like a database that went away,
// until Set gives it the store the node has since reached (and
// recovered, so that nothing this run writes lands before Recover).
// From then on it delegates every call. It is safe for concurrent use:
// callers that read it before and after Set need no other
// synchronisation.
type Deferred struct {
	cur atomic.Pointer[held]
}

type held struct{ s Store }

var (
	_ Store  = (*Deferred)(nil)
	_ Pinger = (*Deferred)(nil)
)

// NewDeferred returns a Deferred with no store yet.
func NewDeferred() *Deferred { return &Deferred{} }

// Set hands over the store; it may be called once.
func (d *Deferred) Set(s Store) error {
	if s == nil {
		return fmt.Errorf("store: deferred: nil store")
	}
	if !d.cur.CompareAndSwap(nil, &held{s}) {
		return fmt.Errorf("store: deferred: store already set")
	}
	return nil
}

// Store returns the store given to Set, nil before.
func (d *Deferred) Store() Store {
	if h := d.cur.Load(); h != nil {
		return h.s
	}
	return nil
}

func (d *Deferred) get(op string) (Store, error) {
	if h := d.cur.Load(); h != nil {
		return h.s, nil
	}
	return nil, fmt.Errorf("store: %s: not connected yet: %w", op, ErrUnavailable)
}

// Ping answers ErrUnavailable until Set, then asks the store when it
// can be unreachable (a Pinger) and succeeds when it cannot.
func (d *Deferred) Ping(ctx context.Context) error {
	s, err := d.get("ping")
	if err != nil {
		return err
	}
	if p, ok := s.(Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (d *Deferred) RegisterNode(ctx context.Context, node string) (int64, error) {
	s, err := d.get("register node")
	if err != nil {
		return 0, err
	}
	return s.RegisterNode(ctx, node)
}

func (d *Deferred) SessionStart(ctx context.Context, rec SessionRecord) error {
	s, err := d.get("session start")
	if err != nil {
		return err
	}
	return s.SessionStart(ctx, rec)
}

func (d *Deferred) SessionUpdate(ctx context.Context, id string, c Counters, at time.Time) error {
	s, err := d.get("session update")
	if err != nil {
		return err
	}
	return s.SessionUpdate(ctx, id, c, at)
}

func (d *Deferred) SessionStop(ctx context.Context, id string, cause string, c Counters, at time.Time) error {
	s, err := d.get("session stop")
	if err != nil {
		return err
	}
	return s.SessionStop(ctx, id, cause, c, at)
}

func (d *Deferred) Session(ctx context.Context, id string) (SessionRecord, error) {
	s, err := d.get("session")
	if err != nil {
		return SessionRecord{}, err
	}
	return s.Session(ctx, id)
}

func (d *Deferred) ActiveSessions(ctx context.Context, node string) ([]SessionRecord, error) {
	s, err := d.get("active sessions")
	if err != nil {
		return nil, err
	}
	return s.ActiveSessions(ctx, node)
}

func (d *Deferred) LeaseIPv4(ctx context.Context, pool string, addr netip.Addr, owner, node string) error {
	s, err := d.get("lease ipv4")
	if err != nil {
		return err
	}
	return s.LeaseIPv4(ctx, pool, addr, owner, node)
}

func (d *Deferred) ReleaseIPv4(ctx context.Context, pool string, addr netip.Addr) error {
	s, err := d.get("release ipv4")
	if err != nil {
		return err
	}
	return s.ReleaseIPv4(ctx, pool, addr)
}

func (d *Deferred) LeasesIPv4Of(ctx context.Context, node string) ([]Lease4, error) {
	s, err := d.get("leases ipv4")
	if err != nil {
		return nil, err
	}
	return s.LeasesIPv4Of(ctx, node)
}

func (d *Deferred) LeaseIPv6(ctx context.Context, pool string, prefix netip.Prefix, owner, node string) error {
	s, err := d.get("lease ipv6")
	if err != nil {
		return err
	}
	return s.LeaseIPv6(ctx, pool, prefix, owner, node)
}

func (d *Deferred) ReleaseIPv6(ctx context.Context, pool string, prefix netip.Prefix) error {
	s, err := d.get("release ipv6")
	if err != nil {
		return err
	}
	return s.ReleaseIPv6(ctx, pool, prefix)
}

func (d *Deferred) LeasesIPv6Of(ctx context.Context, node string) ([]Lease6, error) {
	s, err := d.get("leases ipv6")
	if err != nil {
		return nil, err
	}
	return s.LeasesIPv6Of(ctx, node)
}

func (d *Deferred) AcquireUserSlot(ctx context.Context, user string, max int, session, node string) (bool, error) {
	s, err := d.get("acquire user slot")
	if err != nil {
		return false, err
	}
	return s.AcquireUserSlot(ctx, user, max, session, node)
}

func (d *Deferred) ReleaseUserSlot(ctx context.Context, user, session string) error {
	s, err := d.get("release user slot")
	if err != nil {
		return err
	}
	return s.ReleaseUserSlot(ctx, user, session)
}

func (d *Deferred) UserSlots(ctx context.Context, user string) (int, error) {
	s, err := d.get("user slots")
	if err != nil {
		return 0, err
	}
	return s.UserSlots(ctx, user)
}

func (d *Deferred) AcctEnqueue(ctx context.Context, rec AcctRecord) (int64, error) {
	s, err := d.get("acct enqueue")
	if err != nil {
		return 0, err
	}
	return s.AcctEnqueue(ctx, rec)
}

func (d *Deferred) AcctNext(ctx context.Context, node string, limit int) ([]AcctRecord, error) {
	s, err := d.get("acct next")
	if err != nil {
		return nil, err
	}
	return s.AcctNext(ctx, node, limit)
}

func (d *Deferred) AcctAck(ctx context.Context, id int64) error {
	s, err := d.get("acct ack")
	if err != nil {
		return err
	}
	return s.AcctAck(ctx, id)
}

func (d *Deferred) AddEvent(ctx context.Context, session string, at time.Time, kind, detail string) error {
	s, err := d.get("add event")
	if err != nil {
		return err
	}
	return s.AddEvent(ctx, session, at, kind, detail)
}

func (d *Deferred) Events(ctx context.Context, session string) ([]Event, error) {
	s, err := d.get("events")
	if err != nil {
		return nil, err
	}
	return s.Events(ctx, session)
}

func (d *Deferred) Recover(ctx context.Context, node string, at time.Time) ([]SessionRecord, error) {
	s, err := d.get("recover")
	if err != nil {
		return nil, err
	}
	return s.Recover(ctx, node, at)
}

func (d *Deferred) Apply(ctx context.Context, writer string, batch []Write) error {
	s, err := d.get("apply")
	if err != nil {
		return err
	}
	return s.Apply(ctx, writer, batch)
}

// Close closes the store given to Set, if any.
func (d *Deferred) Close() {
	if s := d.Store(); s != nil {
		s.Close()
	}
}
