// Package aaa is l2tpd's RADIUS client and Dynamic Authorization
// server. layeh.com/radius supplies attribute dictionaries and value
// encodings only; aaa owns its sockets, identifiers, timers and
// failover.
//
// Client sends Access-Request (PAP, CHAP-MD5, MS-CHAPv2, also for
// credentials proxied by a LAC) and Accounting-Request. Every request
// carries a Message-Authenticator and every Access-Accept, -Reject and
// -Challenge must carry a valid one or it is dropped and counted
// (RFC 3579 §3.2, CVE-2024-3596). Servers are tried by priority; a
// request is retransmitted unchanged Timing.Retries times, then failed
// over; Timing.DeadAfter unanswered requests in a row mark a server
// dead for Timing.DeadTime, after which it is used again or, with
// Timing.Probe, once it answers a Status-Server (RFC 5997). At most
// Timing.MaxOutstanding requests are in flight; more are refused with
// ErrBusy at once.
//
// The loop a caller runs: a shard calls Client.Authenticate with a
// done func that posts the Result back to the shard's own queue; done
// runs on the client's goroutine and must not block. Accounting records
// go through Accounting.Send into a Spool (MemSpool here, the store in
// production); the Accounting goroutine delivers them, one Acct-Session-Id
// at a time in order, retrying until a server acknowledges each, and
// only then Acks it in the spool.
//
// DAE answers Disconnect-Request and CoA-Request (RFC 5176) from
// allow-listed clients on port 3799 and asks a Sessions implementation
// (the control plane) to act; DAE.Handle is pure apart from that call.
//
// The protocol core (engine) takes the time as an argument and never
// touches a socket; Client is the shell around it.
package aaa
