package memory

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/l2tpd/l2tpd/store"
)

// DefaultKeepStopped is how many stopped sessions (with their events)
// a Store remembers when Config.KeepStopped is zero.
const DefaultKeepStopped = 4096

// Config tunes a Store.
type Config struct {
	// KeepStopped bounds how many stopped sessions, and the events of
	// sessions no longer open, are remembered; the oldest are forgotten
	// first. Zero means DefaultKeepStopped.
	KeepStopped int
}

type key4 struct {
	pool string
	addr netip.Addr
}

type key6 struct {
	pool   string
	prefix netip.Prefix
}

type slot struct {
	user, node string
}

// Store is the in-memory store.Store.
type Store struct {
	keep int

	mu       sync.Mutex
	closed   bool
	nodes    map[string]int64
	sessions map[string]*store.SessionRecord // open and remembered stopped
	events   map[string][]store.Event
	// retire lists session IDs in the order they stopped (or got events
	// without being open); refs counts each ID's entries in it.
	retire   []string
	refs     map[string]int
	leases4  map[key4]store.Lease4
	leases6  map[key6]store.Lease6
	slots    map[string]slot // by session ID
	perUser  map[string]int
	acctNext int64
	acct     map[string][]store.AcctRecord // per node, by ID
	acctNode map[int64]string
	writers  map[string]uint64
}

var _ store.Store = (*Store)(nil)

// New returns an empty Store.
func New(cfg Config) *Store {
	if cfg.KeepStopped <= 0 {
		cfg.KeepStopped = DefaultKeepStopped
	}
	return &Store{
		keep:     cfg.KeepStopped,
		nodes:    map[string]int64{},
		sessions: map[string]*store.SessionRecord{},
		events:   map[string][]store.Event{},
		refs:     map[string]int{},
		leases4:  map[key4]store.Lease4{},
		leases6:  map[key6]store.Lease6{},
		slots:    map[string]slot{},
		perUser:  map[string]int{},
		acct:     map[string][]store.AcctRecord{},
		acctNode: map[int64]string{},
		writers:  map[string]uint64{},
	}
}

// Close makes later calls fail with store.ErrClosed.
func (s *Store) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("memory: %w", store.ErrClosed)
	}
	return nil
}

func (s *Store) RegisterNode(ctx context.Context, node string) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	s.nodes[node]++
	return s.nodes[node], nil
}

func cloneSession(r *store.SessionRecord) store.SessionRecord {
	c := *r
	c.Class = slices.Clone(r.Class)
	return c
}

func (s *Store) SessionStart(ctx context.Context, rec store.SessionRecord) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.sessionStart(rec)
	return nil
}

func (s *Store) sessionStart(rec store.SessionRecord) {
	if _, ok := s.sessions[rec.ID]; ok {
		return
	}
	c := cloneSession(&rec)
	s.sessions[rec.ID] = &c
	if !c.Open() {
		s.retireID(c.ID)
	}
}

func (s *Store) SessionUpdate(ctx context.Context, id string, c store.Counters, at time.Time) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.sessionUpdate(id, c, at)
	return nil
}

func (s *Store) sessionUpdate(id string, c store.Counters, at time.Time) {
	if r, ok := s.sessions[id]; ok && r.Open() {
		r.Counters, r.Updated = c, at
	}
}

func (s *Store) SessionStop(ctx context.Context, id, cause string, c store.Counters, at time.Time) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.sessionStop(id, cause, c, at)
	return nil
}

func (s *Store) sessionStop(id, cause string, c store.Counters, at time.Time) {
	r, ok := s.sessions[id]
	if !ok || !r.Open() {
		return
	}
	r.Stop, r.Cause, r.Counters, r.Updated = at, cause, c, at
	s.retireID(id)
}

// retireID queues id to be forgotten once keep newer IDs have been
// retired, unless it is open by then.
func (s *Store) retireID(id string) {
	s.retire = append(s.retire, id)
	s.refs[id]++
	for len(s.retire) > s.keep {
		old := s.retire[0]
		s.retire[0] = ""
		s.retire = s.retire[1:]
		s.refs[old]--
		if s.refs[old] > 0 {
			continue
		}
		delete(s.refs, old)
		if r, ok := s.sessions[old]; ok && r.Open() {
			continue
		}
		delete(s.sessions, old)
		delete(s.events, old)
	}
	if cap(s.retire) > 4*s.keep && len(s.retire) < cap(s.retire)/4 {
		s.retire = slices.Clone(s.retire)
	}
}

func (s *Store) Session(ctx context.Context, id string) (store.SessionRecord, error) {
	if err := s.lock(ctx); err != nil {
		return store.SessionRecord{}, err
	}
	defer s.mu.Unlock()
	r, ok := s.sessions[id]
	if !ok {
		return store.SessionRecord{}, fmt.Errorf("memory: session %q: %w", id, store.ErrNotFound)
	}
	return cloneSession(r), nil
}

func (s *Store) ActiveSessions(ctx context.Context, node string) ([]store.SessionRecord, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return s.active(node), nil
}

func (s *Store) active(node string) []store.SessionRecord {
	var out []store.SessionRecord
	for _, r := range s.sessions {
		if r.Node == node && r.Open() {
			out = append(out, cloneSession(r))
		}
	}
	slices.SortFunc(out, func(a, b store.SessionRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (s *Store) LeaseIPv4(ctx context.Context, pool string, addr netip.Addr, owner, node string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	k := key4{pool, addr}
	if l, ok := s.leases4[k]; ok && (l.Owner != owner || l.Node != node) {
		return fmt.Errorf("memory: %s %s: %w", pool, addr, store.ErrLeased)
	}
	s.leases4[k] = store.Lease4{Pool: pool, Addr: addr, Owner: owner, Node: node}
	return nil
}

func (s *Store) ReleaseIPv4(ctx context.Context, pool string, addr netip.Addr) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.leases4, key4{pool, addr})
	return nil
}

func (s *Store) LeasesIPv4Of(ctx context.Context, node string) ([]store.Lease4, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []store.Lease4
	for _, l := range s.leases4 {
		if l.Node == node {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b store.Lease4) int {
		return cmp.Or(cmp.Compare(a.Pool, b.Pool), a.Addr.Compare(b.Addr))
	})
	return out, nil
}

func (s *Store) LeaseIPv6(ctx context.Context, pool string, prefix netip.Prefix, owner, node string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	k := key6{pool, prefix.Masked()}
	if l, ok := s.leases6[k]; ok && (l.Owner != owner || l.Node != node) {
		return fmt.Errorf("memory: %s %s: %w", pool, prefix, store.ErrLeased)
	}
	s.leases6[k] = store.Lease6{Pool: pool, Prefix: k.prefix, Owner: owner, Node: node}
	return nil
}

func (s *Store) ReleaseIPv6(ctx context.Context, pool string, prefix netip.Prefix) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.leases6, key6{pool, prefix.Masked()})
	return nil
}

func (s *Store) LeasesIPv6Of(ctx context.Context, node string) ([]store.Lease6, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	var out []store.Lease6
	for _, l := range s.leases6 {
		if l.Node == node {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b store.Lease6) int {
		return cmp.Or(cmp.Compare(a.Pool, b.Pool), a.Prefix.Addr().Compare(b.Prefix.Addr()),
			cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
	return out, nil
}

func (s *Store) AcquireUserSlot(ctx context.Context, user string, max int, session, node string) (bool, error) {
	if err := s.lock(ctx); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	if sl, ok := s.slots[session]; ok && sl.user == user {
		return true, nil
	}
	if s.perUser[user] >= max {
		return false, nil
	}
	if sl, ok := s.slots[session]; ok {
		// The session moves to another user: give the old slot back.
		s.releaseSlot(sl.user, session)
	}
	s.slots[session] = slot{user: user, node: node}
	s.perUser[user]++
	return true, nil
}

func (s *Store) ReleaseUserSlot(ctx context.Context, user, session string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.releaseSlot(user, session)
	return nil
}

func (s *Store) releaseSlot(user, session string) {
	sl, ok := s.slots[session]
	if !ok || sl.user != user {
		return
	}
	delete(s.slots, session)
	if s.perUser[user]--; s.perUser[user] <= 0 {
		delete(s.perUser, user)
	}
}

func (s *Store) UserSlots(ctx context.Context, user string) (int, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	return s.perUser[user], nil
}

func (s *Store) AcctEnqueue(ctx context.Context, rec store.AcctRecord) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	return s.acctEnqueue(rec), nil
}

func (s *Store) acctEnqueue(rec store.AcctRecord) int64 {
	s.acctNext++
	rec.ID = s.acctNext
	rec.Class = slices.Clone(rec.Class)
	rec.Extra = slices.Clone(rec.Extra)
	s.acct[rec.Node] = append(s.acct[rec.Node], rec)
	s.acctNode[rec.ID] = rec.Node
	return rec.ID
}

func (s *Store) AcctNext(ctx context.Context, node string, limit int) ([]store.AcctRecord, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	q := s.acct[node]
	q = q[:min(max(limit, 0), len(q))]
	out := make([]store.AcctRecord, len(q))
	for i, r := range q {
		out[i] = r
		out[i].Class = slices.Clone(r.Class)
		out[i].Extra = slices.Clone(r.Extra)
	}
	return out, nil
}

func (s *Store) AcctAck(ctx context.Context, id int64) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.acctAck(id)
	return nil
}

func (s *Store) acctAck(id int64) {
	node, ok := s.acctNode[id]
	if !ok {
		return
	}
	delete(s.acctNode, id)
	q := s.acct[node]
	i, found := slices.BinarySearchFunc(q, id, func(r store.AcctRecord, id int64) int { return cmp.Compare(r.ID, id) })
	if !found {
		return
	}
	q = slices.Delete(q, i, i+1)
	if len(q) == 0 {
		delete(s.acct, node)
		return
	}
	s.acct[node] = q
}

func (s *Store) AddEvent(ctx context.Context, session string, at time.Time, kind, detail string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.addEvent(session, at, kind, detail)
	return nil
}

func (s *Store) addEvent(session string, at time.Time, kind, detail string) {
	if _, ok := s.events[session]; !ok {
		if r, ok := s.sessions[session]; !ok || !r.Open() {
			// Nothing else will retire these events.
			defer s.retireID(session)
		}
	}
	s.events[session] = append(s.events[session], store.Event{SessionID: session, At: at, Kind: kind, Detail: detail})
}

func (s *Store) Events(ctx context.Context, session string) ([]store.Event, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return slices.Clone(s.events[session]), nil
}

func (s *Store) Recover(ctx context.Context, node string, at time.Time) ([]store.SessionRecord, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	orphans := s.active(node)
	for i := range orphans {
		s.sessionStop(orphans[i].ID, store.CauseNASReboot, orphans[i].Counters, at)
		orphans[i].Stop, orphans[i].Cause, orphans[i].Updated = at, store.CauseNASReboot, at
	}
	for k, l := range s.leases4 {
		if l.Node == node {
			delete(s.leases4, k)
		}
	}
	for k, l := range s.leases6 {
		if l.Node == node {
			delete(s.leases6, k)
		}
	}
	for session, sl := range s.slots {
		if sl.node == node {
			s.releaseSlot(sl.user, session)
		}
	}
	return orphans, nil
}

func (s *Store) Apply(ctx context.Context, writer string, batch []store.Write) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	last := s.writers[writer]
	for i := range batch {
		w := &batch[i]
		if w.Seq <= last {
			continue
		}
		switch w.Kind {
		case store.WriteSessionStart:
			s.sessionStart(w.Session)
		case store.WriteSessionUpdate:
			s.sessionUpdate(w.ID, w.Counters, w.At)
		case store.WriteSessionStop:
			s.sessionStop(w.ID, w.Cause, w.Counters, w.At)
		case store.WriteReleaseIPv4:
			delete(s.leases4, key4{w.Pool, w.Addr})
		case store.WriteReleaseIPv6:
			delete(s.leases6, key6{w.Pool, w.Prefix.Masked()})
		case store.WriteReleaseUserSlot:
			s.releaseSlot(w.User, w.ID)
		case store.WriteAcctEnqueue:
			s.acctEnqueue(w.Acct)
		case store.WriteAcctAck:
			s.acctAck(w.AcctID)
		case store.WriteEvent:
			s.addEvent(w.ID, w.At, w.EventKind, w.Detail)
		default:
			// Unknown kinds are skipped rather than blocking the
			// writer's queue forever.
		}
		last = w.Seq
	}
	s.writers[writer] = last
	return nil
}
