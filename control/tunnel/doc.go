// Package tunnel holds the L2TP control connection and session state
// machines for both roles and both versions (RFC 2661 §7, RFC 3931 §7):
// SCCRQ/SCCRP/SCCCN and StopCCN, Hello, incoming and outgoing calls, CDN,
// WEN and SLI, tunnel authentication, hidden AVPs and the v3 Message
// Digest, v3→v2 fallback, and for v3 pseudowires the negotiation of
// Remote End ID, Assigned Cookie, L2-Specific Sublayer, Data Sequencing
// and Circuit Status (RFC 3931 §5.4.4, §5.4.5; RFC 4719 §2).
//
// A Tunnel never reads the clock, opens a socket, starts a goroutine or
// logs. Its owner runs this loop for each tunnel:
//
//	t.Receive(now, pkt)               // each control message for it
//	out = t.Poll(now, out[:0])        // send these to the peer
//	for _, ev := range t.Events() {}  // act: install sessions, start PPP
//	wake at t.Deadline()              // then Poll again
//
// and calls StartCall, CloseSession, SetCircuitStatus or Close when it
// decides to. Config.Bind lets the owner accept or refuse each Ethernet or
// VLAN pseudowire call by its Remote End ID and say what it requires of
// the data it receives.
package tunnel
