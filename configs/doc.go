// Package configs holds the configuration files shipped with l2tpd and
// embeds them. lns.yaml is the configuration the daemon runs with when
// started without -config; every file here must pass l2tpd -check, which
// the config package's tests enforce.
package configs
