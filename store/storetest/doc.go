// Package storetest is the conformance suite every store.Store passes:
// sessions, leases (including two nodes racing for the same addresses),
// per-user limits across nodes, the accounting queue's order and
// once-only delivery, events, restart recovery, exactly-once batches and
// the Async queue. A backend's tests call Run with a function that opens
// stores over a fresh, empty backend.
package storetest
