// Command l2tpctl talks to a running l2tpd through its admin socket.
//
//	l2tpctl [-s SOCKET] [-o table|json] show tunnels|show stats|show config
//	l2tpctl [-s SOCKET] [-o table|json] show sessions [--user U] [--ip A] [--tunnel T]
//	l2tpctl [-s SOCKET] [-o table|json] show session ID
//	l2tpctl [-s SOCKET] clear tunnel ID | clear session ID [--result N]
//	l2tpctl [-s SOCKET] reload [--dry-run]
//	l2tpctl [-s SOCKET] capture --session ID [--count N] [--duration D] -w FILE
//	l2tpctl [-s SOCKET] log level debug|info|warn|error
//
// Tables have aligned columns with "-" for empty cells; -o json prints
// the daemon's data as one indented JSON document, for scripts. The exit
// status is 0 on success, 1 when the daemon cannot be reached or answers
// an error (the message goes to stderr), and 2 on a usage error.
package main
