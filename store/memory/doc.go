// Package memory is the embedded store.Store: everything in maps behind
// one mutex, for a single l2tpd node that needs no restart recovery.
//
// It holds what is live (open sessions, leases, user slots, accounting
// records not yet acknowledged) plus a bounded tail of stopped sessions
// and their events (Config.KeepStopped), so a long-running node does not
// grow with the sessions it has ever seen. Nothing survives the process:
// Recover after a restart finds nothing to recover.
package memory
