// Package ppp is PPP in userspace for one L2TP session per engine: the
// frame codec (RFC 1661 §2, RFC 2661 §5.1), the option negotiation
// automaton of RFC 1661 §4 shared by LCP, IPCP (RFC 1332, RFC 1877) and
// IPv6CP (RFC 5072), PAP (RFC 1334), CHAP-MD5 (RFC 1994) and MS-CHAPv2
// (RFC 2759) in both roles, and proxy LCP/authentication from an L2TP
// ICCN (RFC 2661 §4.4.5).
//
// A Session never reads the clock, sleeps, logs or starts goroutines,
// and takes its randomness from Config.Rand. Its owner runs this loop:
//
//	s, _ := ppp.NewSession(cfg)
//	var out ppp.Output
//	s.Start(now, &out)              // or StartProxy with EvaluateProxy's decision
//	for {
//		// on a PPP frame from the L2TP session: s.Input(now, frame, &out)
//		// when s.Deadline() passes:            s.Tick(now, &out)
//		// when an AuthRequest is decided:       s.AuthResult(now, res, &out)
//		// then send out.Frame(i) for i < out.NumFrames(), forward
//		// out.Data to the data path, act on out.Events, and out.Reset().
//	}
//
// EventAuthRequest is answered asynchronously (RADIUS) or at once with a
// synchronous Authenticator such as LocalUsers. EventLinkDown is final:
// the owner tears the L2TP session down.
package ppp
