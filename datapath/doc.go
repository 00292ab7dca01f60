// Package datapath is the userspace L2TP/PPP forwarding plane.
//
// It owns the UDP sockets that carry L2TP (port 1701) and the one TUN
// device subscribers' IP traffic goes through. The control plane
// programs it like a router's FIB: it installs a Session once the
// session is established (and again when IPCP or IPv6CP bring up
// addresses), removes it on teardown, and sends its PPP control frames
// down with SendFrame.
//
// Received datagrams are classified by their first header word only
// (Classify). Control messages (T bit) go up through Upcall.Control with
// the local address the peer targeted. Data messages (RFC 2661 §3.1,
// RFC 3931 §4.1.2.1) are looked up by SessionKey, checked (peer address,
// v3 cookie, sequence order when the S bit is set), and their PPP frame
// is either written to the TUN, for IPv4 (0x0021) and IPv6 (0x0057)
// packets of a session with addresses sent from those addresses, or
// handed up through Upcall.Frame (LCP, authentication, NCPs, packets
// from IPv6 link-local addresses, IP before the NCP is up).
//
// IP packets read from the TUN are routed by destination (longest
// prefix match over IPv4 host routes and IPv6 prefixes) to a session,
// get the L2TP and PPP headers written into the headroom in front of
// them (no copy), and leave in sendmmsg batches from the session's
// Local address (IP_PKTINFO / IPV6_PKTINFO). TCP SYNs are MSS-clamped
// both ways when the session asks for it.
//
// L2TPv3 sessions may instead carry Ethernet (Session.Kind: RFC 4719
// Ethernet pseudowire, pw type 5, or Ethernet VLAN, pw type 4). Their
// frames go whole (no FCS) between the wire and a TAP device opened with
// OpenTAP: one Ethernet session per TAP, or VLAN sessions sharing a trunk
// TAP, chosen by the VID of a frame's outermost 802.1Q/802.1ad tag, which
// is rewritten to the local VID on the way out of the pseudowire. All TAPs
// are read by one goroutine waiting in epoll, in bursts; their frames get
// the L2TPv3 header (Session ID, cookie, default L2-specific sublayer)
// written into the headroom and leave in sendmmsg batches per socket.
// Frames that belong to no session are counted (no_pw_session).
//
// L2TPv3 also runs directly over IP, protocol 115 (RFC 3931 §4.1.1.2):
// AddIPSocket opens a raw socket (IPv4 or IPv6) whose packets take the
// same receive path. A packet starting with a zero Session ID is a
// control message and goes up through Upcall.Control whole, zero word
// included, from the peer's address with port 0; anything else is data
// with the Session ID first. A session sends with the encapsulation of
// its Socket, for every kind, PPP included.
//
// The caller's loop:
//
//	e, err := datapath.New(datapath.Config{TUN: "l2tp0", MTU: 1500}, up)
//	s, err := e.AddSocket(conn) // every socket that carries L2TP
//	go e.Run(ctx)               // one thread per socket, one for the TUN
//	...                         // up.Control feeds the control shards, which
//	e.Install(sess)             // call Install, Remove, SendFrame and
//	s.WriteControl(pkt, to, from) // WriteControl from their own goroutines
//
// and for pseudowires, before Install (and inside InNetns for an engine
// in another network namespace):
//
//	e.OpenTAP("pw0", 1500)
//	ip, err := e.AddIPSocket(local) // L2TPv3 over IP
//	ok, err := datapath.LinkUp("pw0") // Circuit Status for the control plane
//
// The forwarding loops run on locked OS threads with descriptors of their
// own outside the Go runtime's netpoller: they make the batched system
// calls themselves and sleep in ppoll(2) only when the kernel has nothing
// (the netpoller's per-packet epoll wake-ups cost a quarter of the
// downstream rate; see docs/performance.md).
//
// Upcalls run on the socket reader threads and must not block: they
// copy what they keep and hand it to the owner of the session.
//
// There is no goroutine per tunnel, session or TAP. Lookups take a read lock
// on one of 64 table shards, counters are atomics, and the forwarding
// functions allocate nothing (tests prove it with testing.AllocsPerRun).
// datapath never imports control/, ppp/, aaa/ or store/: it has its own
// data header codec.
package datapath
