// Package pppoe is the PPPoE access side (RFC 2516): the discovery and
// session codec, the pure discovery state machines of the Access
// Concentrator (AC) and of the Host (client), and a raw AF_PACKET socket
// that carries both EtherTypes (0x8863 discovery, 0x8864 session) on one
// Ethernet interface.
//
// The codec parses in place (ParseFrame, ParseDiscovery return views into
// the buffer) and appends out (AppendHeader, AppendTag, SetLength,
// PutSessionHeader). PPP frames in session packets carry no
// address/control field (RFC 2516 §6: the payload begins with the PPP
// Protocol-ID).
//
// AC and Client never read the clock, open sockets or start goroutines:
// their caller feeds them received discovery packets and the current
// time, sends what they return, and calls Tick at their Deadline. The
// AC answers PADI with a PADO that carries its AC-Name, the offered
// Service-Names and an AC-Cookie (an HMAC over the Host's MAC address and
// a time slot), so a PADR is checked without state kept per PADI (RFC
// 2516 §9); it allocates session IDs on PADR and reports sessions that
// come up and go down (PADT either way).
//
// The caller's loop, one goroutine per interface:
//
//	c, err := pppoe.Listen("eth1", pppoe.ListenOptions{})
//	ac := pppoe.NewAC(pppoe.ACConfig{Name: "bras1", MAC: c.HardwareAddr(), CookieKey: key})
//	err = c.Run(ctx, handler) // handler.Discovery / handler.Session per frame
//
// Handlers run on the reader goroutine and must not block. There is no
// goroutine per session: a session is its ID and the peer's MAC address,
// and a relay rewrites the 20 header octets in front of the PPP frame and
// sends the same buffer.
//
// pppoe depends on the standard library and x/sys only.
package pppoe
