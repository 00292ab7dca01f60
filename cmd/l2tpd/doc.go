// Command l2tpd is the L2TP LAC/LNS daemon.
//
//	l2tpd [-config FILE]   run; without -config, the embedded configs/lns.yaml
//	l2tpd -check FILE      validate FILE, print every error with its path, exit 1 if any
//	l2tpd -version
//
// The daemon is a shell: it loads the YAML configuration, builds the zap
// logger (console or JSON, level changeable at run time), starts the
// control server and the admin socket l2tpctl talks to, and on SIGINT or
// SIGTERM cancels the control server, which sends StopCCN to every tunnel
// before Run returns. A second signal kills the process at once.
package main
