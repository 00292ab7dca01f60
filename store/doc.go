// Package store owns what the control plane persists: nodes and their
// boot epochs, sessions, IPv4 and IPv6 pool leases, per-user session
// slots, the accounting queue RADIUS accounting delivers from, and each
// session's event history. Several l2tpd nodes may share one database;
// leases and user limits are then enforced across all of them.
//
// Store is the interface; store/memory is the embedded default and
// store/postgres the PostgreSQL backend (the only package that imports
// pgx). store/storetest is the suite both pass.
//
// The control plane's shards never wait on the database. They hold an
// Async, which queues writes (sessions, events, accounting, releases)
// and applies them in batches from one goroutine, retrying while the
// database is down; each batch carries sequence numbers so a retry after
// a lost commit reply applies nothing twice. Depth reports the backlog.
// The few calls that need an answer (LeaseIPv4, LeaseIPv6,
// AcquireUserSlot) run in the shell's worker pool with a short timeout
// and fail with ErrUnavailable when the database cannot answer; the
// caller then refuses the session or admits it on local state alone.
//
// At start a node calls RegisterNode for its boot epoch and Recover for
// the sessions its previous life left open, sends an Acct-Stop with
// Acct-Terminate-Cause NAS-Reboot (RFC 2866 §5.10) for each, and only
// then leases addresses and admits sessions. A node whose database does
// not answer at start runs on a Deferred, which answers ErrUnavailable
// as an outage would, under an Async whose writer is not named yet, so
// its writes wait in the queue; once the database answers, the node
// registers and recovers, then hands the store to the Deferred and names
// the writer (SetWriter), so nothing it wrote lands before Recover.
//
// The store reads no clock: the times it records are arguments.
package store
