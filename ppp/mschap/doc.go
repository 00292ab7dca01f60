// Package mschap holds the cryptography of PPP authentication that the
// standard library lacks: MD4 (RFC 1320) and the MS-CHAPv2 computations
// of RFC 2759 §8 (NT password hash, NT-Response, authenticator response).
// It is pure: no state, no I/O. The PPP engine in package ppp and the
// local user backend call it; RADIUS servers do the same work remotely.
package mschap
