// Package config owns l2tpd's YAML configuration file: its schema, the
// defaults for every key it leaves out, and its validation.
//
// Parse and Load decode one document into a yaml.Node tree and walk it
// against the schema, so every problem is reported at once with its YAML
// path and line:
//
//	peers[1].addresses[0] (line 14): invalid prefix "10.0.0/8"
//
// Unknown keys are errors. Checks that span sections (ppp.pool and each
// peer's pool must name a pool, ppp.local_ipv4 must stay out of every
// pool, a tun needs ppp.local_ipv4 and ppp.pool, no two pools share an
// address) run once the whole document is read, so sections may come in
// any order. The result is an immutable *File; the daemon
// hands File.Control() to control.New and keeps the rest (log, admin,
// store, auth) for itself. Durations are written the Go way ("60s"); the
// admin socket mode is octal ("0600"). yaml.v3 is used in this package
// only.
package config
