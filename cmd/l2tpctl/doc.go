// Command l2tpctl talks to a running l2tpd through its admin socket.
//
//	l2tpctl [-s SOCKET] [-o table|json] show tunnels|show sessions|show stats
//	l2tpctl [-s SOCKET] clear tunnel ID | clear session ID
//	l2tpctl [-s SOCKET] log level debug|info|warn|error
//
// Tables have aligned columns with "-" for empty cells; -o json prints
// the daemon's data as one indented JSON document, for scripts. The exit
// status is 0 on success, 1 when the daemon cannot be reached or answers
// an error (the message goes to stderr), and 2 on a usage error.
package main
