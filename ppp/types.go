package ppp

import (
	"io"
	"net/netip"
	"strconv"
	"time"
)

// Role says which end of the link a Session plays.
type Role uint8

const (
	// RoleServer is the LNS end: it requires authentication and hands
	// out addresses.
	RoleServer Role = iota
	// RoleClient is the subscriber end: it authenticates and takes the
	// addresses it is given.
	RoleClient
)

func (r Role) String() string {
	if r == RoleClient {
		return "client"
	}
	return "server"
}

// AuthProto is an authentication protocol negotiated in LCP.
type AuthProto uint8

const (
	AuthNone     AuthProto = iota
	AuthPAP                // RFC 1334, protocol c023
	AuthCHAPMD5            // RFC 1994, protocol c223 algorithm 5
	AuthMSCHAPv2           // RFC 2759, protocol c223 algorithm 0x81
)

func (a AuthProto) String() string {
	switch a {
	case AuthNone:
		return "none"
	case AuthPAP:
		return "PAP"
	case AuthCHAPMD5:
		return "CHAP-MD5"
	case AuthMSCHAPv2:
		return "MS-CHAPv2"
	}
	return "AuthProto(" + strconv.Itoa(int(a)) + ")"
}

// Phase is the link phase of RFC 1661 §3.2.
type Phase uint8

const (
	PhaseDead Phase = iota
	PhaseEstablish
	PhaseAuthenticate
	PhaseNetwork
	PhaseTerminate
)

func (p Phase) String() string {
	switch p {
	case PhaseDead:
		return "Dead"
	case PhaseEstablish:
		return "Establish"
	case PhaseAuthenticate:
		return "Authenticate"
	case PhaseNetwork:
		return "Network"
	case PhaseTerminate:
		return "Terminate"
	}
	return "Phase(?)"
}

// EventKind tells what an Event reports.
type EventKind uint8

const (
	// EventLinkUp: LCP reached Opened.
	EventLinkUp EventKind = iota + 1
	// EventAuthRequest: the peer sent credentials; answer with
	// Session.AuthResult (server role).
	EventAuthRequest
	// EventAuthenticated: authentication succeeded (both roles).
	EventAuthenticated
	// EventNetworkUp: an NCP reached Opened; Network says which.
	EventNetworkUp
	// EventNetworkDown: an NCP left Opened.
	EventNetworkDown
	// EventLinkDown: the link is dead; Reason says why. Nothing follows.
	EventLinkDown
)

func (k EventKind) String() string {
	switch k {
	case EventLinkUp:
		return "LinkUp"
	case EventAuthRequest:
		return "AuthRequest"
	case EventAuthenticated:
		return "Authenticated"
	case EventNetworkUp:
		return "NetworkUp"
	case EventNetworkDown:
		return "NetworkDown"
	case EventLinkDown:
		return "LinkDown"
	}
	return "EventKind(?)"
}

// DownReason says why the link went down.
type DownReason uint8

const (
	ReasonNone             DownReason = iota
	ReasonAdminClose                  // Session.Close
	ReasonPeerTerminate               // peer sent LCP Terminate-Request
	ReasonEchoTimeout                 // LCP echo failure: link dead
	ReasonNegotiation                 // LCP did not converge (Max-Configure, RFC 1661 §4.6)
	ReasonLoopback                    // Magic-Number loop detected (RFC 1661 §6.4)
	ReasonNoAuthProtocol              // peer refused every authentication protocol we offer
	ReasonAuthFailed                  // credentials rejected
	ReasonAuthTimeout                 // no credentials or no answer in time
	ReasonNetworkFailed               // no network protocol could be opened
	ReasonProtocolRejected            // peer rejected LCP itself
)

var reasonNames = [...]string{"none", "admin close", "terminated by peer", "echo timeout", "LCP negotiation failed", "loopback detected", "no common authentication protocol", "authentication failed", "authentication timeout", "no network protocol", "LCP rejected"}

func (r DownReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "DownReason(?)"
}

// Event is something the owner must know or act on.
type Event struct {
	Kind    EventKind
	Auth    *AuthRequest // EventAuthRequest
	Network NetworkInfo  // EventNetworkUp, EventNetworkDown
	Reason  DownReason   // EventLinkDown
	Message string       // peer's text: auth failure message, Terminate data
}

// NetworkInfo describes an opened (or closed) NCP.
type NetworkInfo struct {
	Protocol   Protocol // ProtoIPCP or ProtoIPv6CP
	LocalIPv4  netip.Addr
	PeerIPv4   netip.Addr
	DNS1, DNS2 netip.Addr
	LocalIID   [8]byte
	PeerIID    [8]byte
}

// AuthRequest carries the peer's credentials for a decision. The engine
// owns nothing in it after emitting it.
type AuthRequest struct {
	Protocol AuthProto
	User     string
	Password []byte // PAP
	// CHAP-MD5 and MS-CHAPv2.
	ID        uint8
	Challenge []byte // the challenge we (or the LAC) sent
	Response  []byte // CHAP-MD5: the 16-octet response value
	// MS-CHAPv2 (RFC 2759 §4).
	PeerChallenge [16]byte
	NTResponse    [24]byte
}

// AuthResult is the decision on an AuthRequest.
type AuthResult struct {
	Accept  bool
	Message string // text for the peer (PAP Ack/Nak, CHAP Success/Failure M=)
	// AuthenticatorResponse is the 42-octet "S=..." string of an
	// MS-CHAPv2 acceptance (RFC 2759 §5); required for MS-CHAPv2.
	AuthenticatorResponse string
	// PeerIPv4, when valid, is the address IPCP assigns to the peer
	// (for example RADIUS Framed-IP-Address); it overrides the config.
	PeerIPv4 netip.Addr
	// DNS1 and DNS2, when valid, are the name servers IPCP offers this
	// peer (RFC 1877; for example RADIUS MS-Primary-DNS-Server); they
	// override the config's.
	DNS1, DNS2 netip.Addr
}

// Authenticator decides synchronously, for backends that need no I/O.
type Authenticator interface {
	Authenticate(req *AuthRequest) AuthResult
}

// Config is the policy of one Session. It is copied by NewSession.
type Config struct {
	Role Role
	// Rand supplies magic numbers, challenges and identifiers.
	Rand   io.Reader
	Timers Timers

	// MRU is the MRU we ask for; 0 or 1500 means the default, not sent.
	MRU uint16
	// MinMRU and MaxMRU bound the MRU the peer may ask for; outside it
	// we Nak (defaults 576 and 1500).
	MinMRU, MaxMRU uint16

	// Auth is the server's preference list, or the protocols a client
	// agrees to use. An empty server list means no authentication; an
	// empty client list means all.
	Auth []AuthProto
	// AuthTimeout bounds how long the server waits for credentials and
	// the client waits for a challenge (default 30s).
	AuthTimeout time.Duration
	// Name is our name in CHAP challenges (server).
	Name string
	// User and Password are the client's credentials.
	User, Password string

	// EchoInterval enables LCP Echo-Request keepalives; after
	// EchoFailures unanswered requests (default 3) the link is dead.
	EchoInterval time.Duration
	EchoFailures int

	// IPv4 enables IPCP. The server asks for LocalIPv4 (when valid)
	// and assigns PeerIPv4; DNS1/DNS2 are offered (RFC 1877). A client
	// asks for 0.0.0.0 and, with RequestDNS, for name servers.
	IPv4                bool
	LocalIPv4, PeerIPv4 netip.Addr
	DNS1, DNS2          netip.Addr
	RequestDNS          bool

	// IPv6 enables IPv6CP (RFC 5072); a zero LocalIID is drawn from Rand.
	IPv6     bool
	LocalIID [8]byte
}

func (c *Config) setDefaults() {
	c.Timers = c.Timers.withDefaults()
	if c.MinMRU == 0 {
		c.MinMRU = 576
	}
	if c.MaxMRU == 0 {
		c.MaxMRU = 1500
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 30 * time.Second
	}
	if c.EchoFailures <= 0 {
		c.EchoFailures = 3
	}
	if c.Role == RoleClient && len(c.Auth) == 0 {
		c.Auth = clientAuthDefault
	}
}

// clientAuthDefault is shared by the sessions that take it: a Session
// never changes its list.
var clientAuthDefault = []AuthProto{AuthMSCHAPv2, AuthCHAPMD5, AuthPAP}
