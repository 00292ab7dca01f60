// Package pool owns subscribers' address pools: named sets of IPv4
// ranges and an IPv6 prefix cut into per-session prefixes, from which the
// control plane leases one IPv4 address and one IPv6 prefix per PPP
// session.
//
// A Pool keeps one bit per address (or per IPv6 prefix) and a second
// level of one bit per full 64-bit word, so a /10 costs 512 KiB up front
// and finding a free address touches a handful of words. Leases are
// handed out next-fit from a cursor rather than lowest-first, so an
// address just released is not given straight to the next subscriber
// while routes, ARP entries and accounting records for it may still be
// around.
//
// Addresses ending in .0 or .255 are never leased from a range holding
// more than one address: although a /32 over PPP has no network or
// broadcast address, some CPE and Windows clients refuse them. A range of
// exactly one such address, or a Reserve of one (a fixed address from
// RADIUS), is the operator's explicit choice and is honoured.
//
// Pools are safe for concurrent use behind a mutex; they are called when
// a session's NCP comes up or goes down, never per packet. The caller
// must release what it leased when the session ends; Drain stops new
// leases so a pool can be retired while its sessions finish.
package pool
