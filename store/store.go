package store

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Errors a Store returns, wrapped with context; test them with errors.Is.
var (
	// ErrLeased: the address or prefix is leased to another owner, on
	// this node or another one sharing the database.
	ErrLeased = errors.New("store: already leased")
	// ErrNotFound: the session, lease or record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrUnavailable: the backend cannot answer now (database down or
	// too slow); the caller applies its policy (refuse, or admit on
	// local state only).
	ErrUnavailable = errors.New("store: unavailable")
	// ErrQueueFull: the Async write queue is at its limit; the write was
	// not queued.
	ErrQueueFull = errors.New("store: write queue full")
	// ErrClosed: the store or Async queue has been closed.
	ErrClosed = errors.New("store: closed")
)

// CauseNASReboot is the cause Recover closes orphaned sessions with, the
// name of RADIUS Acct-Terminate-Cause 11 (RFC 2866 §5.10): the caller
// sends an Acct-Stop with it for each session returned.
const CauseNASReboot = "NAS-Reboot"

// Counters are a session's cumulative traffic counters, as RADIUS
// accounting reports them (RFC 2866 §5.3, §5.4, §5.8, §5.9; the 64-bit
// values cover the Gigawords of RFC 2869 §5.1). They are absolute
// totals, never deltas, so writing the same counters twice is harmless.
type Counters struct {
	InOctets   uint64
	OutOctets  uint64
	InPackets  uint64
	OutPackets uint64
}

// SessionRecord is what the store keeps about one PPP session.
type SessionRecord struct {
	// ID identifies the session across every node sharing the store;
	// the control plane builds it (for example from the node ID, its
	// boot epoch and a counter) since L2TP tunnel and session IDs are
	// only unique per node and are reused.
	ID   string
	Node string
	// Local and peer L2TP IDs (RFC 2661 §3.1, RFC 3931 §3.2.1).
	TunnelID      uint32
	SessionID     uint32
	PeerTunnelID  uint32
	PeerSessionID uint32
	// Peer is the LAC's address and port.
	Peer netip.AddrPort
	User string
	// IPv4 is the subscriber's address (invalid when none); IPv6 its
	// prefix (invalid when none).
	IPv4 netip.Addr
	IPv6 netip.Prefix
	// AcctSessionID is RADIUS Acct-Session-Id (RFC 2866 §5.5); Class
	// the RADIUS Class the Access-Accept gave (RFC 2865 §5.25), echoed
	// in accounting.
	AcctSessionID string
	Class         []byte
	Start         time.Time
	// Updated is when Counters were last written (SessionUpdate,
	// SessionStop); zero before.
	Updated time.Time
	// Stop and Cause are zero while the session is open.
	Stop     time.Time
	Cause    string
	Counters Counters
}

// Open reports whether the session has not been stopped.
func (r *SessionRecord) Open() bool { return r.Stop.IsZero() }

// Lease4 is one leased IPv4 address.
type Lease4 struct {
	Pool  string
	Addr  netip.Addr
	Owner string // the session ID holding it
	Node  string
}

// Lease6 is one leased IPv6 prefix.
type Lease6 struct {
	Pool   string
	Prefix netip.Prefix
	Owner  string
	Node   string
}

// AcctStatus is RADIUS Acct-Status-Type (RFC 2866 §5.1).
type AcctStatus uint8

const (
	AcctStart         AcctStatus = 1
	AcctStop          AcctStatus = 2
	AcctInterimUpdate AcctStatus = 3
	AcctOn            AcctStatus = 7
	AcctOff           AcctStatus = 8
)

func (s AcctStatus) String() string {
	switch s {
	case AcctStart:
		return "Start"
	case AcctStop:
		return "Stop"
	case AcctInterimUpdate:
		return "Interim-Update"
	case AcctOn:
		return "Accounting-On"
	case AcctOff:
		return "Accounting-Off"
	}
	return "AcctStatus(" + itoa(uint64(s)) + ")"
}

// AcctRecord is one accounting record waiting for delivery to RADIUS.
// It carries what the Accounting-Request needs, so delivery does not
// depend on the session still being in memory.
type AcctRecord struct {
	// ID is assigned by AcctEnqueue; it orders the queue.
	ID            int64
	Node          string
	Status        AcctStatus
	SessionID     string
	AcctSessionID string
	User          string
	IPv4          netip.Addr
	IPv6          netip.Prefix
	Class         []byte
	// At is when the event happened; Start when the session began, so
	// Acct-Session-Time is At-Start.
	At       time.Time
	Start    time.Time
	Counters Counters
	Cause    string
	// Extra is what else the sender needs to rebuild its request (the
	// RADIUS attributes the fields above do not cover), opaque to the
	// store and kept as given.
	Extra []byte
}

// Event is one entry in a session's history.
type Event struct {
	SessionID string
	At        time.Time
	Kind      string
	Detail    string
}

// Store persists the control plane's state. Implementations are safe for
// concurrent use. Methods wrap their errors with %w; ErrLeased,
// ErrNotFound and ErrUnavailable are tested with errors.Is.
//
// Writes that the control plane makes without waiting for an answer are
// idempotent, so that a batch retried after a lost commit reply changes
// nothing the second time: SessionStart of an existing ID, SessionUpdate
// and SessionStop of a missing or stopped session, and releases of what
// is not held are no-ops.
type Store interface {
	// RegisterNode records that the node (re)started and returns its boot
	// epoch: 1 the first time, one more at each later registration.
	RegisterNode(ctx context.Context, node string) (bootEpoch int64, err error)

	SessionStart(ctx context.Context, rec SessionRecord) error
	SessionUpdate(ctx context.Context, id string, c Counters, at time.Time) error
	SessionStop(ctx context.Context, id string, cause string, c Counters, at time.Time) error
	// Session returns one session, open or stopped; ErrNotFound when
	// unknown.
	Session(ctx context.Context, id string) (SessionRecord, error)
	// ActiveSessions returns the node's open sessions ordered by ID.
	ActiveSessions(ctx context.Context, node string) ([]SessionRecord, error)

	// LeaseIPv4 leases addr from pool to owner on node, or fails with
	// ErrLeased when anyone else holds it. Leasing again what the same
	// owner on the same node holds succeeds.
	LeaseIPv4(ctx context.Context, pool string, addr netip.Addr, owner, node string) error
	ReleaseIPv4(ctx context.Context, pool string, addr netip.Addr) error
	// LeasesIPv4Of returns the node's IPv4 leases ordered by pool and
	// address.
	LeasesIPv4Of(ctx context.Context, node string) ([]Lease4, error)
	LeaseIPv6(ctx context.Context, pool string, prefix netip.Prefix, owner, node string) error
	ReleaseIPv6(ctx context.Context, pool string, prefix netip.Prefix) error
	LeasesIPv6Of(ctx context.Context, node string) ([]Lease6, error)

	// AcquireUserSlot takes one of user's max concurrent-session slots
	// for session on node, atomically across every node sharing the
	// store: ok is false when user already holds max slots. A session
	// that holds a slot gets ok again. max < 1 admits nothing.
	AcquireUserSlot(ctx context.Context, user string, max int, session, node string) (ok bool, err error)
	ReleaseUserSlot(ctx context.Context, user, session string) error
	// UserSlots returns how many slots user holds.
	UserSlots(ctx context.Context, user string) (int, error)

	// AcctEnqueue appends rec to its node's accounting queue and returns
	// the ID it was given. A record stays queued until AcctAck.
	AcctEnqueue(ctx context.Context, rec AcctRecord) (id int64, err error)
	// AcctNext returns up to limit of node's unacknowledged records,
	// oldest first. Until acknowledged, a record is returned again by
	// later calls; once acknowledged, never.
	AcctNext(ctx context.Context, node string, limit int) ([]AcctRecord, error)
	// AcctAck removes a delivered record; acknowledging an unknown or
	// already acknowledged ID is a no-op.
	AcctAck(ctx context.Context, id int64) error

	AddEvent(ctx context.Context, session string, at time.Time, kind, detail string) error
	// Events returns the session's history in the order it was added.
	Events(ctx context.Context, session string) ([]Event, error)

	// Recover is called once when node starts, before it leases or
	// admits anything. In one transaction it closes the sessions the
	// node left open (a crash) with CauseNASReboot at time at, frees
	// every lease and user slot the node held, and returns the closed
	// sessions so the caller sends an Acct-Stop for each.
	Recover(ctx context.Context, node string, at time.Time) (orphans []SessionRecord, err error)

	// Apply applies a batch of writes in order, atomically, for writer
	// (a name unique to one process lifetime, such as node ID and boot
	// epoch). Writes whose Seq is not above the highest Seq already
	// applied for writer are skipped, so a batch retried after an
	// unknown outcome is applied exactly once.
	Apply(ctx context.Context, writer string, batch []Write) error

	Close()
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}
