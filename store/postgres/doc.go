// Package postgres is the PostgreSQL store.Store, for l2tpd nodes that
// share state: restart recovery, and leases and per-user limits enforced
// across every node using the database. It is the only package that
// imports pgx.
//
// Open applies the schema in /migrations (embedded) under an advisory
// lock, each migration in a transaction with its schema_version row, so
// nodes starting together do not race. Uniqueness is the database's:
// leases are primary keys on (pool, address) inserted with ON CONFLICT,
// never a check before an insert; user slots are counted and taken under
// a transaction-scoped advisory lock per user. Apply runs a batch of
// queued writes in one transaction pipelined in one round trip, and
// records each writer's last sequence number in the same transaction,
// which makes a retried batch a no-op.
//
// Errors meaning the database could not answer (connection refused or
// lost, shutdown, timeout) wrap store.ErrUnavailable; refusals of the
// query itself do not.
package postgres
