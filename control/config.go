package control

import (
	"net/netip"
	"time"
)

// Config is the control plane's part of the running configuration. It is
// an immutable snapshot: the daemon builds a new one on reload.
type Config struct {
	// Listen holds the UDP addresses to serve L2TPv2 and L2TPv3 on
	// ("0.0.0.0:1701", "[::]:1701").
	Listen []string
	// HostName is sent in the Host Name AVP.
	HostName string
	// Shards is the number of owner goroutines tunnels are spread over.
	Shards int
	// Peers are matched in order against an SCCRQ's Host Name and source
	// address; the first match gives the secret and policy. Default
	// applies when no peer matches.
	Peers   []Peer
	Default Peer
	// ReceiveWindow is the Receive Window Size we advertise.
	ReceiveWindow uint16
	// Hello is the idle interval after which a Hello is sent.
	Hello time.Duration
	// RetransmitInitial, RetransmitCap and MaxRetransmits shape the
	// control channel's exponential backoff (RFC 2661 §5.8).
	RetransmitInitial time.Duration
	RetransmitCap     time.Duration
	MaxRetransmits    int
	// SessionSetupTimeout bounds a call in setup: one we answered (ICRP
	// sent) without an ICCN, or one we placed (ICRQ sent) without an
	// ICRP, this long after it began is cleared (CDN result 10) and what
	// it held is released. The LAC role's calls keep their own timer.
	// Zero: no bound.
	SessionSetupTimeout time.Duration
	Limits              Limits

	// PPP is how subscribers' PPP sessions are terminated.
	PPP PPP
	// Pools are the named address pools leases come from.
	Pools []Pool
	// Users are the local PPP users (name → password), the embedded
	// authentication backend when no RADIUS server is configured.
	Users map[string]string
	// RADIUS, when it names servers, authenticates and accounts instead
	// of Users.
	RADIUS RADIUS
	// Store is where sessions are recorded for restart recovery.
	Store Store
	// TUN is the device subscribers' IP traffic is forwarded through.
	// An empty Name disables the datapath (control plane only).
	TUN TUN
	// Pseudowires are dynamic L2TPv3 Ethernet and VLAN sessions;
	// StaticTunnels carry manually keyed ones.
	Pseudowires   []Pseudowire
	StaticTunnels []StaticTunnel
	// LAC is the LAC role (PPPoE access tunneled to LNSs); off unless it
	// names an access interface.
	LAC LAC
	// Datapath turns the datapath's kernel offloads off; the zero value
	// uses every offload the kernel has. Read once, at start.
	Datapath Datapath
}

// Datapath holds the datapath's offload switches (datapath.Config).
type Datapath struct {
	// DisableGSO and DisableGRO keep UDP segmentation offload on send
	// and UDP GRO on receive off.
	DisableGSO, DisableGRO bool
	// DisableTUNOffload opens the TUN without its offloads (no TSO
	// super-packets, no checksum offload).
	DisableTUNOffload bool
}

// PPP holds the PPP policy for sessions.
type PPP struct {
	// MRU is the largest MRU we accept and the one we ask for.
	MRU uint16
	// Auth lists the authentication protocols offered, most preferred
	// first: "pap", "chap" (CHAP-MD5), "mschapv2".
	Auth []string
	// EchoInterval and EchoFailures drive LCP keepalive (RFC 1661 §5.8).
	EchoInterval time.Duration
	EchoFailures int
	// LocalIPv4 is our end of every IPCP link (never in a pool).
	LocalIPv4 netip.Addr
	// DNS are the primary and secondary servers offered (RFC 1877).
	DNS []netip.Addr
	// IPv6 enables IPv6CP and router advertisements.
	IPv6 bool
	// Pool is the default pool for subscribers' addresses.
	Pool string
}

// Pool is a named set of addresses: IPv4 ranges (first and last address
// inclusive) and an IPv6 prefix cut into per-session prefixes.
type Pool struct {
	Name       string
	IPv4       []AddrRange
	IPv6       netip.Prefix
	IPv6Length int // length of each session's prefix, 64 by default
}

// AddrRange is an inclusive range of IPv4 addresses.
type AddrRange struct {
	First, Last netip.Addr
}

// TUN names the subscriber-facing TUN device.
type TUN struct {
	Name string
	MTU  int
}

// Peer is the policy for the LACs or LNSs a rule matches.
type Peer struct {
	Name string
	// HostName matches the peer's Host Name AVP exactly when not empty.
	HostName string
	// Addresses match the peer's source address when not empty.
	Addresses []netip.Prefix
	// Secret enables challenge/response tunnel authentication (v2) and
	// the Message Digest (v3) when not empty.
	Secret string
	// HideAVPs hides the AVPs RFC 2661 allows to hide in what we send.
	HideAVPs bool
	// Reject refuses tunnels from this peer (StopCCN, result 4).
	Reject bool
	// Renegotiate is the proxy LCP policy for this peer's sessions:
	// "never", "on-mismatch" (default) or "always".
	Renegotiate string
	// Pool overrides PPP.Pool for this peer's sessions.
	Pool string
}

// Limits bound memory under floods and admit reconnect storms at the
// pace the LNS can set sessions up. Zero means no limit. Per-peer limits
// count by the peer's IP address.
type Limits struct {
	MaxTunnels           int
	MaxSessions          int
	MaxSessionsPerTunnel int
	MaxHalfOpenPerPeer   int
	MaxTunnelsPerPeer    int
	// MaxSessionsPerPeer bounds a peer's sessions, in setup or up.
	MaxSessionsPerPeer int
	// MaxSessionsInSetup bounds the sessions between ICRQ and ICCN
	// (the time their PPP and RADIUS work is most intense).
	MaxSessionsInSetup        int
	MaxSessionsInSetupPerPeer int
	// SCCRQ and ICRQ rates (per second) with their bursts, over all
	// peers and per peer: token buckets.
	SCCRQRate         float64
	SCCRQBurst        int
	SCCRQRatePerPeer  float64
	SCCRQBurstPerPeer int
	ICRQRate          float64
	ICRQBurst         int
	ICRQRatePerPeer   float64
	ICRQBurstPerPeer  int
	// SessionsPerUser bounds each user's concurrent sessions, across
	// every node sharing the store (0: no bound).
	SessionsPerUser int
}

// DefaultConfig returns the values used for anything a config leaves out.
func DefaultConfig() Config {
	return Config{
		Listen:            []string{"0.0.0.0:1701"},
		HostName:          "l2tpd",
		Shards:            2,
		ReceiveWindow:     16,
		Hello:             60 * time.Second,
		RetransmitInitial: time.Second,
		RetransmitCap:     8 * time.Second,
		MaxRetransmits:    5,
		// An ICCN follows the ICRP within a round trip; 30 s leaves room
		// for a LAC that retransmits several times.
		SessionSetupTimeout: 30 * time.Second,
		PPP: PPP{
			MRU:          1500,
			Auth:         []string{"chap", "pap"},
			EchoInterval: 30 * time.Second,
			EchoFailures: 3,
		},
		TUN:    TUN{MTU: 1500},
		Store:  Store{Backend: "memory"},
		RADIUS: RADIUS{Timeout: 3 * time.Second, Retries: 2},
		Limits: DefaultLimits(),
	}
}

// DefaultLimits are sized for an LNS of 100,000 sessions: room above
// that, and a storm readmitted at 1,000 sessions a second (100 s for all
// of them, within what a RADIUS pair answers). The per-peer rates and
// setup limit equal the global ones, so an LNS behind a single LAC (a BNG
// carrying every subscriber) is not slowed; lower them to share the
// budget between LACs.
func DefaultLimits() Limits {
	return Limits{
		MaxTunnels:                4096,
		MaxSessions:               131072,
		MaxSessionsPerTunnel:      65535,
		MaxHalfOpenPerPeer:        16,
		MaxTunnelsPerPeer:         64,
		MaxSessionsPerPeer:        0,
		MaxSessionsInSetup:        2000,
		MaxSessionsInSetupPerPeer: 2000,
		SCCRQRate:                 100,
		SCCRQBurst:                200,
		SCCRQRatePerPeer:          10,
		SCCRQBurstPerPeer:         20,
		ICRQRate:                  1000,
		ICRQBurst:                 2000,
		ICRQRatePerPeer:           1000,
		ICRQBurstPerPeer:          2000,
	}
}

// TunnelInfo describes one tunnel for l2tpctl show tunnels.
type TunnelInfo struct {
	TunnelID      uint32    `json:"tunnel_id"`
	PeerTunnelID  uint32    `json:"peer_tunnel_id"`
	Peer          string    `json:"peer"`
	PeerHostName  string    `json:"peer_host_name"`
	Local         string    `json:"local"`
	Role          string    `json:"role"`
	Version       int       `json:"version"`
	State         string    `json:"state"`
	Sessions      int       `json:"sessions"`
	Since         time.Time `json:"since"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Retransmits   uint64    `json:"retransmits"`
	// RTTSeconds is the smoothed round trip of the control channel
	// (Hello and every other message acknowledged first time).
	RTTSeconds float64 `json:"rtt_seconds"`
	// StaticTunnel names the static tunnel a quiescent control
	// connection keeps alive.
	StaticTunnel string `json:"static_tunnel,omitempty"`
}

// SessionInfo describes one session for l2tpctl show sessions.
type SessionInfo struct {
	SessionID     uint32 `json:"session_id"`
	PeerSessionID uint32 `json:"peer_session_id"`
	TunnelID      uint32 `json:"tunnel_id"`
	PeerTunnelID  uint32 `json:"peer_tunnel_id"`
	Peer          string `json:"peer"`
	Version       int    `json:"version"`
	State         string `json:"state"`
	CallSerial    uint32 `json:"call_serial"`
	CallingNumber string `json:"calling_number,omitempty"`
	CalledNumber  string `json:"called_number,omitempty"`
	UserName      string `json:"user_name,omitempty"`
	IPv4          string `json:"ipv4,omitempty"`
	IPv6          string `json:"ipv6,omitempty"`
	// From RADIUS: the Delegated-IPv6-Prefix and the Framed-Route and
	// Framed-IPv6-Route prefixes routed to the session, and the name
	// servers offered in IPCP instead of ppp.dns.
	DelegatedIPv6Prefix string   `json:"delegated_ipv6_prefix,omitempty"`
	Routes              []string `json:"routes,omitempty"`
	DNS                 []string `json:"dns,omitempty"`
	PPPState            string   `json:"ppp_state,omitempty"`
	AuthProtocol        string   `json:"auth_protocol,omitempty"`
	AcctSessionID       string   `json:"acct_session_id,omitempty"`
	// Limits from RADIUS (seconds; 0: none).
	SessionTimeout float64   `json:"session_timeout,omitempty"`
	IdleTimeout    float64   `json:"idle_timeout,omitempty"`
	Interim        float64   `json:"acct_interim_interval,omitempty"`
	ProxyLCP       bool      `json:"proxy_lcp"`
	RxPackets      uint64    `json:"rx_packets"`
	RxBytes        uint64    `json:"rx_bytes"`
	TxPackets      uint64    `json:"tx_packets"`
	TxBytes        uint64    `json:"tx_bytes"`
	Since          time.Time `json:"since"`
	UptimeSeconds  float64   `json:"uptime_seconds"`
	// Kind is ethernet or vlan for an L2TPv3 pseudowire (empty: PPP);
	// Pseudowire and StaticTunnel name its configuration.
	Kind         string `json:"kind,omitempty"`
	Pseudowire   string `json:"pseudowire,omitempty"`
	StaticTunnel string `json:"static_tunnel,omitempty"`
	TAP          string `json:"tap,omitempty"`
	VLAN         uint16 `json:"vlan,omitempty"`
	// CircuitActive and PeerCircuitActive are the Circuit Status each
	// end last sent (RFC 3931 §5.4.5).
	CircuitActive     bool `json:"circuit_active,omitempty"`
	PeerCircuitActive bool `json:"peer_circuit_active,omitempty"`
	CookieLen         int  `json:"cookie_len,omitempty"`
	PeerCookieLen     int  `json:"peer_cookie_len,omitempty"`
	// LAC-side sessions (Role "lac"): the PPPoE client and the LNS the
	// call went to.
	Role           string `json:"role,omitempty"`
	Interface      string `json:"interface,omitempty"`
	MAC            string `json:"mac,omitempty"`
	PPPoESessionID uint16 `json:"pppoe_session_id,omitempty"`
	LNS            string `json:"lns,omitempty"`
}

// Stats are the control plane's counters.
type Stats struct {
	Tunnels  int `json:"tunnels"`
	Sessions int `json:"sessions"`
	// AcctQueue is how many accounting records wait for a server;
	// StoreQueue how many writes wait for the store.
	AcctQueue  int `json:"acct_queue"`
	StoreQueue int `json:"store_queue"`
	// StoreUp: the store answers (always, for the memory store).
	StoreUp bool         `json:"store_up"`
	Servers []ServerInfo `json:"radius_servers,omitempty"`
	// SessionSetup and OnlineSetup are latency histograms: ICRQ to ICCN
	// (L2TP), and ICRQ to the first NCP open (the subscriber online).
	SessionSetup Histogram         `json:"session_setup_seconds"`
	OnlineSetup  Histogram         `json:"online_setup_seconds"`
	Drops        map[string]uint64 `json:"drops"`
	// Refused counts new tunnels and sessions turned away by admission
	// control, by reason (StopCCN 2/4, CDN 4, or dropped under overload).
	Refused map[string]uint64 `json:"admission_refused"`
	// SessionsInSetup are admitted sessions not yet established.
	SessionsInSetup int               `json:"sessions_in_setup"`
	Counters        map[string]uint64 `json:"counters"`
	// Offload is the datapath's offload mode and work, under the
	// datapath's offload_ names (socket and TUN modes, super-datagrams
	// and super-packets handled); empty without a datapath.
	Offload map[string]uint64 `json:"offload,omitempty"`
}

// ServerInfo is a RADIUS server's health.
type ServerInfo struct {
	Addr      string `json:"addr"`
	Dead      bool   `json:"dead"`
	Pending   int    `json:"pending"`
	Responses uint64 `json:"responses"`
	// Requests were sent to it; Unanswered of them timed out there.
	Requests   uint64 `json:"requests"`
	Unanswered uint64 `json:"unanswered"`
	// LatencySeconds is the smoothed delay of its answers.
	LatencySeconds float64 `json:"latency_seconds"`
}

// Histogram is a cumulative latency histogram: Counts[i] is how many
// observations were at most Bounds[i] seconds.
type Histogram struct {
	Bounds []float64 `json:"bounds"`
	Counts []uint64  `json:"counts"`
	Count  uint64    `json:"count"`
	Sum    float64   `json:"sum"`
}
