package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/l2tpd/l2tpd/store"
)

func slicesSortByID(rs []store.SessionRecord) {
	slices.SortFunc(rs, func(a, b store.SessionRecord) int { return cmp.Compare(a.ID, b.ID) })
}

// writeSQL returns the statement a queued write runs; ok is false for a
// kind this version does not know.
func writeSQL(w *store.Write) (sql string, args []any, ok bool) {
	switch w.Kind {
	case store.WriteSessionStart:
		return sqlSessionStart, sessionStartArgs(&w.Session), true
	case store.WriteSessionUpdate:
		return sqlSessionUpdate, append(countersArgs(w.ID, w.Counters), w.At), true
	case store.WriteSessionStop:
		return sqlSessionStop, append(countersArgs(w.ID, w.Counters), w.At, w.Cause), true
	case store.WriteReleaseIPv4:
		return sqlRelease4, []any{w.Pool, addrArg(w.Addr)}, true
	case store.WriteReleaseIPv6:
		return sqlRelease6, []any{w.Pool, prefixArg(w.Prefix)}, true
	case store.WriteReleaseUserSlot:
		return sqlReleaseSlot, []any{w.User, w.ID}, true
	case store.WriteAcctEnqueue:
		return sqlAcctEnqueue, acctArgs(&w.Acct), true
	case store.WriteAcctAck:
		return sqlAcctAck, []any{w.AcctID}, true
	case store.WriteEvent:
		return sqlAddEvent, []any{w.ID, w.At, w.EventKind, w.Detail}, true
	}
	return "", nil, false
}

// Locks the writer's row (creating it at 0) and returns the last Seq
// applied for it.
const sqlWriterSeq = `INSERT INTO writers (writer, seq) VALUES ($1, 0)
ON CONFLICT (writer) DO UPDATE SET writer = EXCLUDED.writer RETURNING seq`

// Apply runs the batch in one transaction, its statements pipelined in
// one round trip, together with the writer's new high-water Seq. When the
// database refuses one of the writes for good (a constraint, a malformed
// value), the batch is run again with a savepoint around each write and
// the refused ones are dropped and reported to Config.OnDropped, so that
// one bad write cannot hold up the queue behind it.
func (s *Store) Apply(ctx context.Context, writer string, batch []store.Write) error {
	dropped, err := s.apply(ctx, writer, batch, false)
	if err != nil && permanent(err) {
		dropped, err = s.apply(ctx, writer, batch, true)
	}
	if err != nil {
		return wrap("apply", err)
	}
	if s.cfg.OnDropped != nil {
		for _, d := range dropped {
			s.cfg.OnDropped(batch[d.i], d.err)
		}
	}
	return nil
}

type drop struct {
	i   int
	err error
}

func (s *Store) apply(ctx context.Context, writer string, batch []store.Write, careful bool) (dropped []drop, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		dropped = dropped[:0]
		var last int64
		if err := tx.QueryRow(ctx, sqlWriterSeq, writer).Scan(&last); err != nil {
			return err
		}
		top := last
		var b pgx.Batch
		for i := range batch {
			w := &batch[i]
			if int64(w.Seq) <= last {
				continue
			}
			top = max(top, int64(w.Seq))
			sql, args, ok := writeSQL(w)
			if !ok {
				dropped = append(dropped, drop{i, fmt.Errorf("postgres: %s: %w", w.Kind, errUnknownWrite)})
				continue
			}
			if !careful {
				b.Queue(sql, args...)
				continue
			}
			if _, err := tx.Exec(ctx, "SAVEPOINT w"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, sql, args...)
			if err != nil && permanent(err) {
				if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT w"); rerr != nil {
					return rerr
				}
				dropped = append(dropped, drop{i, fmt.Errorf("postgres: %s: %w", w.Kind, err)})
				continue
			}
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "RELEASE SAVEPOINT w"); err != nil {
				return err
			}
		}
		if b.Len() > 0 {
			if err := tx.SendBatch(ctx, &b).Close(); err != nil {
				return err
			}
		}
		if top == last {
			return nil
		}
		_, err := tx.Exec(ctx, `UPDATE writers SET seq = $2, updated_at = now() WHERE writer = $1`, writer, top)
		return err
	})
	return dropped, err
}

var errUnknownWrite = errors.New("unknown write kind")
