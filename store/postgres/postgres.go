package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/l2tpd/l2tpd/store"
)

// Config tunes a Store beyond what the connection string says (pool
// size and timeouts go in the URL: pool_max_conns, connect_timeout).
type Config struct {
	// OnDropped is told about a queued write Apply had to drop because
	// the database refused it for good (a constraint or a malformed
	// value), so that one bad write does not block the writes after
	// it forever. Nil ignores them.
	OnDropped func(w store.Write, err error)
}

// Store is the PostgreSQL store.Store.
type Store struct {
	pool *pgxpool.Pool
	cfg  Config
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a
// key=value connection string), applies pending migrations and returns
// the Store.
func Open(ctx context.Context, url string, cfg Config) (*Store, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, wrap("open", err)
	}
	if err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool, cfg: cfg}, nil
}

// Close closes the connection pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers; it fails with
// store.ErrUnavailable when it does not.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w: %w", store.ErrUnavailable, err)
	}
	return nil
}

var _ store.Pinger = (*Store)(nil)

// Pool returns the connection pool, for health checks and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// wrap prefixes err and marks it store.ErrUnavailable when the database
// could not be reached or went away, as opposed to refusing the query.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "57P"), // shutdown, crash, cannot connect now
			pe.Code == "53300",                // too many connections
			pe.Code == "40001",                // serialization failure
			pe.Code == "40P01":                // deadlock
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// permanent reports whether the database refused a statement for what it
// holds (bad data, a constraint), so retrying it cannot succeed.
func permanent(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23")
}

// Argument helpers: invalid addresses and zero times are NULL.

func addrArg(a netip.Addr) any {
	if !a.IsValid() {
		return nil
	}
	return a.Unmap()
}

func prefixArg(p netip.Prefix) any {
	if !p.IsValid() {
		return nil
	}
	return p.Masked()
}

func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func strArg(s string) any {
	if s == "" {
		return nil
	}
	return s
}

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) RegisterNode(ctx context.Context, node string) (int64, error) {
	var epoch int64
	err := s.pool.QueryRow(ctx, `INSERT INTO nodes (node, boot_epoch) VALUES ($1, 1)
ON CONFLICT (node) DO UPDATE SET boot_epoch = nodes.boot_epoch + 1, registered_at = now()
RETURNING boot_epoch`, node).Scan(&epoch)
	return epoch, wrap("register node", err)
}

const sessionCols = `id, node, tunnel_id, session_id, peer_tunnel_id, peer_session_id,
peer_addr, peer_port, username, ipv4, ipv6, acct_session_id, class, started_at, updated_at,
stopped_at, cause, in_octets, out_octets, in_packets, out_packets`

const sqlSessionStart = `INSERT INTO sessions (` + sessionCols + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
ON CONFLICT (id) DO NOTHING`

func sessionStartArgs(r *store.SessionRecord) []any {
	var peer, port any
	if r.Peer.IsValid() {
		peer, port = r.Peer.Addr().Unmap(), int32(r.Peer.Port())
	}
	return []any{r.ID, r.Node, int64(r.TunnelID), int64(r.SessionID), int64(r.PeerTunnelID),
		int64(r.PeerSessionID), peer, port, r.User, addrArg(r.IPv4), prefixArg(r.IPv6),
		r.AcctSessionID, r.Class, r.Start, timeArg(r.Updated), timeArg(r.Stop), strArg(r.Cause),
		int64(r.Counters.InOctets), int64(r.Counters.OutOctets),
		int64(r.Counters.InPackets), int64(r.Counters.OutPackets)}
}

func scanSession(row pgx.Row) (store.SessionRecord, error) {
	var (
		r                    store.SessionRecord
		tid, sid, ptid, psid int64
		peer                 *netip.Prefix
		port                 *int32
		ipv4, ipv6           *netip.Prefix
		updated, stop        *time.Time
		cause                *string
		inO, outO, inP, outP int64
	)
	err := row.Scan(&r.ID, &r.Node, &tid, &sid, &ptid, &psid, &peer, &port, &r.User,
		&ipv4, &ipv6, &r.AcctSessionID, &r.Class, &r.Start, &updated, &stop, &cause,
		&inO, &outO, &inP, &outP)
	if err != nil {
		return r, err
	}
	r.TunnelID, r.SessionID, r.PeerTunnelID, r.PeerSessionID = uint32(tid), uint32(sid), uint32(ptid), uint32(psid)
	if peer != nil && port != nil {
		r.Peer = netip.AddrPortFrom(peer.Addr(), uint16(*port))
	}
	if ipv4 != nil {
		r.IPv4 = ipv4.Addr()
	}
	if ipv6 != nil {
		r.IPv6 = *ipv6
	}
	if updated != nil {
		r.Updated = *updated
	}
	if stop != nil {
		r.Stop = *stop
	}
	if cause != nil {
		r.Cause = *cause
	}
	r.Counters = store.Counters{InOctets: uint64(inO), OutOctets: uint64(outO), InPackets: uint64(inP), OutPackets: uint64(outP)}
	return r, nil
}

func (s *Store) SessionStart(ctx context.Context, rec store.SessionRecord) error {
	_, err := s.pool.Exec(ctx, sqlSessionStart, sessionStartArgs(&rec)...)
	return wrap("session start", err)
}

const sqlSessionUpdate = `UPDATE sessions SET in_octets = $2, out_octets = $3, in_packets = $4, out_packets = $5,
updated_at = $6 WHERE id = $1 AND stopped_at IS NULL`

func countersArgs(id string, c store.Counters) []any {
	return []any{id, int64(c.InOctets), int64(c.OutOctets), int64(c.InPackets), int64(c.OutPackets)}
}

func (s *Store) SessionUpdate(ctx context.Context, id string, c store.Counters, at time.Time) error {
	_, err := s.pool.Exec(ctx, sqlSessionUpdate, append(countersArgs(id, c), at)...)
	return wrap("session update", err)
}

const sqlSessionStop = `UPDATE sessions SET in_octets = $2, out_octets = $3, in_packets = $4, out_packets = $5,
stopped_at = $6, updated_at = $6, cause = $7 WHERE id = $1 AND stopped_at IS NULL`

func (s *Store) SessionStop(ctx context.Context, id, cause string, c store.Counters, at time.Time) error {
	_, err := s.pool.Exec(ctx, sqlSessionStop, append(countersArgs(id, c), at, cause)...)
	return wrap("session stop", err)
}

func (s *Store) Session(ctx context.Context, id string) (store.SessionRecord, error) {
	r, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("postgres: session %q: %w", id, store.ErrNotFound)
	}
	return r, wrap("session", err)
}

func (s *Store) ActiveSessions(ctx context.Context, node string) ([]store.SessionRecord, error) {
	out, err := querySessions(ctx, s.pool, `SELECT `+sessionCols+` FROM sessions
WHERE node = $1 AND stopped_at IS NULL ORDER BY id`, node)
	return out, wrap("active sessions", err)
}

func querySessions(ctx context.Context, q querier, sql string, args ...any) ([]store.SessionRecord, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.SessionRecord
	for rows.Next() {
		r, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// A lease conflicting with one of the same owner and node updates nothing
// but still returns its row; one held by anyone else returns no row.
const sqlLease4 = `INSERT INTO leases4 (pool, addr, owner, node) VALUES ($1, $2, $3, $4)
ON CONFLICT (pool, addr) DO UPDATE SET owner = EXCLUDED.owner
WHERE leases4.owner = EXCLUDED.owner AND leases4.node = EXCLUDED.node
RETURNING true`

func (s *Store) LeaseIPv4(ctx context.Context, pool string, addr netip.Addr, owner, node string) error {
	var ok bool
	err := s.pool.QueryRow(ctx, sqlLease4, pool, addrArg(addr), owner, node).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s %s: %w", pool, addr, store.ErrLeased)
	}
	return wrap("lease ipv4", err)
}

const sqlRelease4 = `DELETE FROM leases4 WHERE pool = $1 AND addr = $2`

func (s *Store) ReleaseIPv4(ctx context.Context, pool string, addr netip.Addr) error {
	_, err := s.pool.Exec(ctx, sqlRelease4, pool, addrArg(addr))
	return wrap("release ipv4", err)
}

func (s *Store) LeasesIPv4Of(ctx context.Context, node string) ([]store.Lease4, error) {
	rows, err := s.pool.Query(ctx, `SELECT pool, addr, owner, node FROM leases4 WHERE node = $1 ORDER BY pool, addr`, node)
	if err != nil {
		return nil, wrap("leases ipv4", err)
	}
	defer rows.Close()
	var out []store.Lease4
	for rows.Next() {
		var l store.Lease4
		if err := rows.Scan(&l.Pool, &l.Addr, &l.Owner, &l.Node); err != nil {
			return nil, wrap("leases ipv4", err)
		}
		out = append(out, l)
	}
	return out, wrap("leases ipv4", rows.Err())
}

const sqlLease6 = `INSERT INTO leases6 (pool, prefix, owner, node) VALUES ($1, $2, $3, $4)
ON CONFLICT (pool, prefix) DO UPDATE SET owner = EXCLUDED.owner
WHERE leases6.owner = EXCLUDED.owner AND leases6.node = EXCLUDED.node
RETURNING true`

func (s *Store) LeaseIPv6(ctx context.Context, pool string, prefix netip.Prefix, owner, node string) error {
	var ok bool
	err := s.pool.QueryRow(ctx, sqlLease6, pool, prefixArg(prefix), owner, node).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s %s: %w", pool, prefix, store.ErrLeased)
	}
	return wrap("lease ipv6", err)
}

const sqlRelease6 = `DELETE FROM leases6 WHERE pool = $1 AND prefix = $2`

func (s *Store) ReleaseIPv6(ctx context.Context, pool string, prefix netip.Prefix) error {
	_, err := s.pool.Exec(ctx, sqlRelease6, pool, prefixArg(prefix))
	return wrap("release ipv6", err)
}

func (s *Store) LeasesIPv6Of(ctx context.Context, node string) ([]store.Lease6, error) {
	rows, err := s.pool.Query(ctx, `SELECT pool, prefix, owner, node FROM leases6 WHERE node = $1 ORDER BY pool, prefix`, node)
	if err != nil {
		return nil, wrap("leases ipv6", err)
	}
	defer rows.Close()
	var out []store.Lease6
	for rows.Next() {
		var l store.Lease6
		if err := rows.Scan(&l.Pool, &l.Prefix, &l.Owner, &l.Node); err != nil {
			return nil, wrap("leases ipv6", err)
		}
		out = append(out, l)
	}
	return out, wrap("leases ipv6", rows.Err())
}

// AcquireUserSlot counts and inserts under a transaction-scoped advisory
// lock per user. Under READ COMMITTED each statement takes a new
// snapshot, so the count made after the lock is granted sees every slot
// committed by the previous holder.
func (s *Store) AcquireUserSlot(ctx context.Context, user string, max int, session, node string) (ok bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockSpaceUser, user); err != nil {
			return err
		}
		var holder string
		err := tx.QueryRow(ctx, `SELECT username FROM user_slots WHERE session_id = $1`, session).Scan(&holder)
		switch {
		case err == nil && holder == user:
			ok = true
			return nil
		case err != nil && !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM user_slots WHERE username = $1`, user).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return nil
		}
		// A session that held another user's slot gives it back.
		_, err = tx.Exec(ctx, `INSERT INTO user_slots (session_id, username, node) VALUES ($1, $2, $3)
ON CONFLICT (session_id) DO UPDATE SET username = EXCLUDED.username, node = EXCLUDED.node, acquired_at = now()`,
			session, user, node)
		ok = err == nil
		return err
	})
	if err != nil {
		return false, wrap("acquire user slot", err)
	}
	return ok, nil
}

const sqlReleaseSlot = `DELETE FROM user_slots WHERE session_id = $2 AND username = $1`

func (s *Store) ReleaseUserSlot(ctx context.Context, user, session string) error {
	_, err := s.pool.Exec(ctx, sqlReleaseSlot, user, session)
	return wrap("release user slot", err)
}

func (s *Store) UserSlots(ctx context.Context, user string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM user_slots WHERE username = $1`, user).Scan(&n)
	return n, wrap("user slots", err)
}

const acctCols = `node, status, session_id, acct_session_id, username, ipv4, ipv6, class, at,
started_at, in_octets, out_octets, in_packets, out_packets, cause, extra`

const sqlAcctEnqueue = `INSERT INTO acct_queue (` + acctCols + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`

func acctArgs(r *store.AcctRecord) []any {
	return []any{r.Node, int16(r.Status), r.SessionID, r.AcctSessionID, r.User,
		addrArg(r.IPv4), prefixArg(r.IPv6), r.Class, r.At, r.Start,
		int64(r.Counters.InOctets), int64(r.Counters.OutOctets),
		int64(r.Counters.InPackets), int64(r.Counters.OutPackets), r.Cause, r.Extra}
}

func (s *Store) AcctEnqueue(ctx context.Context, rec store.AcctRecord) (int64, error) {
	var id int64
	err := s.pool.QueryRow(ctx, sqlAcctEnqueue+` RETURNING id`, acctArgs(&rec)...).Scan(&id)
	return id, wrap("acct enqueue", err)
}

func (s *Store) AcctNext(ctx context.Context, node string, limit int) ([]store.AcctRecord, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id, `+acctCols+` FROM acct_queue WHERE node = $1 ORDER BY id LIMIT $2`, node, limit)
	if err != nil {
		return nil, wrap("acct next", err)
	}
	defer rows.Close()
	var out []store.AcctRecord
	for rows.Next() {
		var (
			r                    store.AcctRecord
			status               int16
			ipv4, ipv6           *netip.Prefix
			inO, outO, inP, outP int64
		)
		if err := rows.Scan(&r.ID, &r.Node, &status, &r.SessionID, &r.AcctSessionID, &r.User,
			&ipv4, &ipv6, &r.Class, &r.At, &r.Start, &inO, &outO, &inP, &outP, &r.Cause, &r.Extra); err != nil {
			return nil, wrap("acct next", err)
		}
		r.Status = store.AcctStatus(status)
		if ipv4 != nil {
			r.IPv4 = ipv4.Addr()
		}
		if ipv6 != nil {
			r.IPv6 = *ipv6
		}
		r.Counters = store.Counters{InOctets: uint64(inO), OutOctets: uint64(outO), InPackets: uint64(inP), OutPackets: uint64(outP)}
		out = append(out, r)
	}
	return out, wrap("acct next", rows.Err())
}

const sqlAcctAck = `DELETE FROM acct_queue WHERE id = $1`

func (s *Store) AcctAck(ctx context.Context, id int64) error {
	_, err := s.pool.Exec(ctx, sqlAcctAck, id)
	return wrap("acct ack", err)
}

const sqlAddEvent = `INSERT INTO session_events (session_id, at, kind, detail) VALUES ($1, $2, $3, $4)`

func (s *Store) AddEvent(ctx context.Context, session string, at time.Time, kind, detail string) error {
	_, err := s.pool.Exec(ctx, sqlAddEvent, session, at, kind, detail)
	return wrap("add event", err)
}

func (s *Store) Events(ctx context.Context, session string) ([]store.Event, error) {
	rows, err := s.pool.Query(ctx, `SELECT session_id, at, kind, detail FROM session_events WHERE session_id = $1 ORDER BY id`, session)
	if err != nil {
		return nil, wrap("events", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		if err := rows.Scan(&e.SessionID, &e.At, &e.Kind, &e.Detail); err != nil {
			return nil, wrap("events", err)
		}
		out = append(out, e)
	}
	return out, wrap("events", rows.Err())
}

func (s *Store) Recover(ctx context.Context, node string, at time.Time) (orphans []store.SessionRecord, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		orphans, err = querySessions(ctx, tx, `UPDATE sessions SET stopped_at = $2, updated_at = $2, cause = $3
WHERE node = $1 AND stopped_at IS NULL RETURNING `+sessionCols, node, at, store.CauseNASReboot)
		if err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM leases4 WHERE node = $1`,
			`DELETE FROM leases6 WHERE node = $1`,
			`DELETE FROM user_slots WHERE node = $1`,
		} {
			if _, err := tx.Exec(ctx, q, node); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap("recover", err)
	}
	slicesSortByID(orphans)
	return orphans, nil
}
