package store

import (
	"net/netip"
	"time"
)

// WriteKind says which Store method a Write stands for.
type WriteKind uint8

const (
	WriteSessionStart    WriteKind = iota + 1 // SessionStart(Session)
	WriteSessionUpdate                        // SessionUpdate(ID, Counters, At)
	WriteSessionStop                          // SessionStop(ID, Cause, Counters, At)
	WriteReleaseIPv4                          // ReleaseIPv4(Pool, Addr)
	WriteReleaseIPv6                          // ReleaseIPv6(Pool, Prefix)
	WriteReleaseUserSlot                      // ReleaseUserSlot(User, ID)
	WriteAcctEnqueue                          // AcctEnqueue(Acct)
	WriteAcctAck                              // AcctAck(AcctID)
	WriteEvent                                // AddEvent(ID, At, EventKind, Detail)
)

func (k WriteKind) String() string {
	switch k {
	case WriteSessionStart:
		return "session-start"
	case WriteSessionUpdate:
		return "session-update"
	case WriteSessionStop:
		return "session-stop"
	case WriteReleaseIPv4:
		return "release-ipv4"
	case WriteReleaseIPv6:
		return "release-ipv6"
	case WriteReleaseUserSlot:
		return "release-user-slot"
	case WriteAcctEnqueue:
		return "acct-enqueue"
	case WriteAcctAck:
		return "acct-ack"
	case WriteEvent:
		return "event"
	}
	return "WriteKind(" + itoa(uint64(k)) + ")"
}

// Write is one queued write: a Store method call as data, so it can be
// batched and retried. Kind says which fields are used.
type Write struct {
	// Seq orders a writer's writes; Store.Apply skips those it has
	// already applied. Async assigns it.
	Seq  uint64
	Kind WriteKind

	Session   SessionRecord // WriteSessionStart
	ID        string        // session ID
	Counters  Counters
	Cause     string
	At        time.Time
	Pool      string
	Addr      netip.Addr
	Prefix    netip.Prefix
	User      string
	Acct      AcctRecord
	AcctID    int64
	EventKind string
	Detail    string
}
