// Package config owns l2tpd's YAML configuration file: its schema, the
// defaults for every key it leaves out, and its validation.
//
// Parse and Load decode one document into a yaml.Node tree and walk it
// against the schema, so every problem is reported at once with its YAML
// path and line:
//
//	peers[1].addresses[0] (line 14): invalid prefix "10.0.0/8"
//
// Unknown keys are errors. The result is an immutable *File; the daemon
// hands File.Control() to control.New and keeps the rest (log, admin,
// store, auth) for itself. Durations are written the Go way ("60s"); the
// admin socket mode is octal ("0600"). yaml.v3 is used in this package
// only.
package config
