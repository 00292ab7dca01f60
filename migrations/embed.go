// Package migrations holds the PostgreSQL schema of the database store as
// numbered SQL files (NNNN_name.sql). store/postgres applies those not yet
// recorded in schema_version, in order, each in its own transaction.
// A file, once released, is never edited: a change is a new file.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
