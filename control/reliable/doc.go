// Package reliable is the L2TP reliable control channel: sequence numbers,
// acknowledgements, retransmission with exponential backoff, the sliding
// send window with slow start and congestion avoidance, and in-order
// delivery of received control messages (RFC 2661 §5.8 and Appendix A,
// RFC 3931 §4.2).
//
// It owns only the Ns/Nr fields of encoded control messages, found at
// Config.NsNrOffset; it never parses AVPs, never reads the clock, opens a
// socket or starts a goroutine. Every call takes the current time, and the
// channel reports its next deadline. Hello (RFC 2661 §5.5) is the caller's:
// it sends a HELLO through Send when LastHeard is old enough. The v3 explicit
// ACK message (RFC 3931 §6.15) is handled exactly like a ZLB: the caller
// builds it as the ZLB template and reports a received one with zlb=true.
//
// # The loop the caller runs
//
// The tunnel's owner (one shard goroutine for many tunnels) drives one
// Channel per control connection:
//
//	// A control message arrived: header already parsed.
//	switch ch.Recv(now, hdr.Ns, hdr.Nr, isZLB, pkt) {
//	case reliable.Deliver:
//		process(pkt)
//		for {
//			m, ok := ch.Next(now)
//			if !ok {
//				break
//			}
//			process(m) // m is valid until the next call into ch
//		}
//	case reliable.Held, reliable.Duplicate, reliable.OutOfWindow, reliable.AckOnly:
//		// nothing for the state machine; Nr has been applied
//	}
//
//	// The state machine wants to send: encode with any Ns/Nr, then
//	ch.Send(now, msg)
//
//	// After any of the above, and whenever the timer fires:
//	out = ch.Poll(now, out[:0])
//	for _, p := range out {
//		write(p) // p is valid until the next call into ch
//	}
//	if ch.Failed() {
//		tearDown() // RFC 2661 §5.8: clear the tunnel and its sessions
//	}
//	timers.Reset(tunnel, ch.Deadline()) // zero: nothing scheduled
//
// Calling Poll once after handling a batch of events, rather than after
// each, lets a reply sent in response to a delivered message carry the
// acknowledgement instead of a separate ZLB.
//
// After a StopCCN, the caller keeps the channel running for GiveUpAfter
// (or until Idle reports the StopCCN acknowledged) before it forgets the
// tunnel, as RFC 2661 §5.8 asks.
//
// Memory is bounded by the caller on the send side (QueueLen) and by
// ReceiveWindow on the receive side: at most ReceiveWindow messages are
// held (ReceiveWindow-1 when Next is drained after each Deliver), each
// copied into a buffer the channel reuses.
package reliable
