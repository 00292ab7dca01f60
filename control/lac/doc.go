// Package lac is the L2TP Access Concentrator engine: it originates
// tunnels and incoming calls toward LNSs (RFC 2661 §5, RFC 3931 §3) for
// subscribers whose PPP arrives elsewhere (PPPoE, or an emulated client
// in l2tpbench), and carries their PPP frames over the datapath.
//
// It is a shell around the pure cores control/tunnel (tunnel and session
// state machines in the initiator role) and control/reliable, like the
// LNS shell in control/, with the same shape: a fixed number of shards,
// each one goroutine that owns its tunnels and calls, its timer heap and
// its inbox. There is no goroutine per tunnel or call. A reply's header
// Tunnel ID names its shard (tunnel IDs are allocated in the shard's
// residue class), and so does a v3 data message's Session ID.
//
// Placing a call:
//
//	l, err := lac.New(lac.Config{HostName: "lac1", Shards: 2}, log)
//	go l.Run(ctx)
//	cands := lac.SelectByRealm(user, realms) // or RADIUS Tunnel-* attributes
//	id, err := l.Dial(lac.CallRequest{UserName: user, CallingNumber: mac, Proxy: proxy}, cands, h)
//
// Dial orders the candidates by Preference (lower first, RFC 2868 §3.8;
// random among equal preferences so calls spread), skipping LNSs in
// hold-down while a live one remains. On its candidate a call reuses an
// established (or establishing) tunnel of the same Group that has room
// (LNS.MaxSessionsPerTunnel), or opens one. When the tunnel cannot be
// established (retransmissions exhausted, or StopCCN) the LNS is held
// down for Config.HoldDown and the call moves on to the next candidate;
// a call the LNS refuses (CDN) moves on too. Config.SetupTimeout bounds
// the whole search. At most LNS.MaxOpening tunnels (default 1) to one
// LNS are between SCCRQ and SCCRP at a time, over all shards: l2tpns
// takes a second SCCRQ from the same address and port, while the first
// tunnel is opening, for a retransmission of the first. Calls that need
// a new tunnel meanwhile wait and are placed when it is up or failed.
//
// A session is installed in the datapath before its ICCN leaves (the
// LNS may answer the ICCN with LCP at once), and its Handler hears Up
// only once the ICCN is on the wire (it may wait behind a full window):
// PPP sent earlier would reach the LNS before the call is connected.
//
// The Handler given to Dial hears of the call on the owning shard's
// goroutine and must not block:
//
//	Up(s)          the session is established and installed in the
//	               datapath under s.Key; send PPP with l.SendFrame(s.Key, f)
//	Frame(id, f)   a PPP frame from the LNS (valid during the call only)
//	Down(id, r)    the call ended: CDN or StopCCN result and PPP cause
//	               (RFC 3145) in r, or r.Err when it never came up
//
// Handlers that run their own protocol timers (a PPP client) implement
// Ticker and arm one timer per call with SetTimer from a callback.
// Client is such a Handler: a PPP client engine (ppp.RoleClient) on the
// call, the subscriber side l2tpbench emulates; a PPPoE relay is another
// (it forwards Frame to the subscriber and sends its frames with
// SendFrame).
// Hangup sends a CDN (RFC 2661 §5.6). Dial and Hangup never block and
// may be called from callbacks.
//
// By default the LAC opens its own datapath engine without a TUN on
// Config.Listen: every PPP frame of its sessions comes up as a Frame.
// A caller that runs one engine for several roles passes Config.Engine
// and Config.Socket (a socket of the LAC's own), and routes that
// socket's Control upcalls to (*LAC).Control and the Frame upcalls of
// the keys it Owns to (*LAC).Frame.
package lac
