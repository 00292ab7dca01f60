package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/l2tpd/l2tpd/migrations"
)

// Advisory lock keys (the two-int4 form): lockSpace is "L2TP" in ASCII;
// the second key says what is locked.
const (
	lockSpace   = 0x4c325450
	lockMigrate = 1
	// User slots lock in their own space, keyed by hashtext(user).
	lockSpaceUser = 0x4c325455
)

// Migration is one numbered schema file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	return readMigrations(migrations.FS)
}

func readMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("postgres: migration %q: name must be NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("postgres: migration %q: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: name, SQL: string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("postgres: migrations %q and %q share version %d", out[i-1].Name, out[i].Name, out[i].Version)
		}
	}
	return out, nil
}

// Migrate brings the schema up to date: it applies, in version order,
// the migrations not yet recorded in schema_version, each in its own
// transaction together with its schema_version row. A session advisory
// lock serializes nodes that start together; the second waits and then
// finds nothing left to do.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	return migrate(ctx, pool, ms)
}

func migrate(ctx context.Context, pool *pgxpool.Pool, ms []Migration) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return wrap("migrate", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockSpace, lockMigrate); err != nil {
		return wrap("migrate: lock", err)
	}
	defer func() {
		// A session lock outlives the pool's use of the connection:
		// when it cannot be released, the connection must go.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", lockSpace, lockMigrate); uerr != nil {
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
	version    integer     PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return wrap("migrate: schema_version", err)
	}
	rows, err := conn.Query(ctx, "SELECT version FROM schema_version")
	if err != nil {
		return wrap("migrate: schema_version", err)
	}
	applied := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return wrap("migrate: schema_version", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return wrap("migrate: schema_version", err)
	}
	for _, m := range ms {
		if applied[m.Version] {
			continue
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return wrap("migrate: "+m.Name, err)
		}
		// No arguments: the simple protocol runs a file of several
		// statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
			return wrap("migrate: "+m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_version (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
			return wrap("migrate: "+m.Name, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return wrap("migrate: "+m.Name, err)
		}
	}
	return nil
}
