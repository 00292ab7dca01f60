-- Nodes: one row per l2tpd instance sharing the database; boot_epoch
-- counts its registrations (starts).
CREATE TABLE nodes (
	node          text        PRIMARY KEY,
	boot_epoch    bigint      NOT NULL,
	registered_at timestamptz NOT NULL DEFAULT now()
);

-- Sessions, open (stopped_at IS NULL) and stopped.
CREATE TABLE sessions (
	id              text        PRIMARY KEY,
	node            text        NOT NULL,
	tunnel_id       bigint      NOT NULL,
	session_id      bigint      NOT NULL,
	peer_tunnel_id  bigint      NOT NULL,
	peer_session_id bigint      NOT NULL,
	peer_addr       inet,
	peer_port       integer     CHECK (peer_port BETWEEN 0 AND 65535),
	username        text        NOT NULL,
	ipv4            inet        CHECK (family(ipv4) = 4 AND masklen(ipv4) = 32),
	ipv6            cidr        CHECK (family(ipv6) = 6),
	acct_session_id text        NOT NULL,
	class           bytea,
	started_at      timestamptz NOT NULL,
	updated_at      timestamptz,
	stopped_at      timestamptz,
	cause           text,
	in_octets       bigint      NOT NULL DEFAULT 0,
	out_octets      bigint      NOT NULL DEFAULT 0,
	in_packets      bigint      NOT NULL DEFAULT 0,
	out_packets     bigint      NOT NULL DEFAULT 0
);
CREATE INDEX sessions_open_by_node ON sessions (node, id) WHERE stopped_at IS NULL;

-- A session's history. No foreign key: events may be written before the
-- session row (they travel through the same write queue, in order, but a
-- session that never got established has events and no row).
CREATE TABLE session_events (
	id         bigserial   PRIMARY KEY,
	session_id text        NOT NULL,
	at         timestamptz NOT NULL,
	kind       text        NOT NULL,
	detail     text        NOT NULL
);
CREATE INDEX session_events_by_session ON session_events (session_id, id);

-- Address leases. The primary keys make a lease unique across every node
-- sharing the database.
CREATE TABLE leases4 (
	pool      text        NOT NULL,
	addr      inet        NOT NULL CHECK (family(addr) = 4 AND masklen(addr) = 32),
	owner     text        NOT NULL,
	node      text        NOT NULL,
	leased_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pool, addr)
);
CREATE INDEX leases4_by_node ON leases4 (node);

CREATE TABLE leases6 (
	pool      text        NOT NULL,
	prefix    cidr        NOT NULL CHECK (family(prefix) = 6),
	owner     text        NOT NULL,
	node      text        NOT NULL,
	leased_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pool, prefix)
);
CREATE INDEX leases6_by_node ON leases6 (node);

-- One row per session counted against its user's concurrent-session
-- limit.
CREATE TABLE user_slots (
	session_id  text        PRIMARY KEY,
	username    text        NOT NULL,
	node        text        NOT NULL,
	acquired_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_slots_by_user ON user_slots (username);
CREATE INDEX user_slots_by_node ON user_slots (node);

-- Accounting records waiting for delivery to RADIUS, per node, in id
-- order. A delivered record is deleted.
CREATE TABLE acct_queue (
	id              bigserial   PRIMARY KEY,
	node            text        NOT NULL,
	status          smallint    NOT NULL,
	session_id      text        NOT NULL,
	acct_session_id text        NOT NULL,
	username        text        NOT NULL,
	ipv4            inet        CHECK (family(ipv4) = 4 AND masklen(ipv4) = 32),
	ipv6            cidr        CHECK (family(ipv6) = 6),
	class           bytea,
	at              timestamptz NOT NULL,
	started_at      timestamptz NOT NULL,
	in_octets       bigint      NOT NULL,
	out_octets      bigint      NOT NULL,
	in_packets      bigint      NOT NULL,
	out_packets     bigint      NOT NULL,
	cause           text        NOT NULL,
	enqueued_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX acct_queue_by_node ON acct_queue (node, id);

-- The last write sequence number applied per writer (a node's process
-- lifetime), so a batch retried after a lost commit reply is not applied
-- twice.
CREATE TABLE writers (
	writer     text        PRIMARY KEY,
	seq        bigint      NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
