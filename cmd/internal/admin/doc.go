// Package admin owns l2tpd's admin socket: a unix stream socket carrying
// one JSON request per line and one JSON response per line.
//
//	{"cmd":"show tunnels"}            {"ok":true,"data":[...]}
//	{"cmd":"clear tunnel","id":5}     {"ok":true,"data":{"cleared":"tunnel","id":5}}
//	{"cmd":"log level","level":"debug"}
//	{"cmd":"clear session","id":9}    {"ok":false,"error":"no session with id 9"}
//
// The daemon calls Listen, then runs Server.Serve until its context ends;
// Serve answers from a Backend (the control server) and so is tested with
// a fake. Each connection has its own goroutine, bounded by
// Options.MaxConns, with an idle deadline and a request-size cap; the
// Backend's methods are called with a deadline so a stuck shard cannot
// hold a connection forever. l2tpctl uses Dial and Client.Do.
package admin
