package control

import (
	"net/netip"
	"slices"
	"time"

	"github.com/l2tpd/l2tpd/control/tunnel"
)

// Encapsulations of L2TPv3 pseudowires and static tunnels.
const (
	EncapUDP = "udp"
	EncapIP  = "ip" // IP protocol 115 (RFC 3931 §4.1.1)
)

// Pseudowire types a pseudowire can be configured with.
const (
	PWEthernet = "ethernet" // RFC 4719 Ethernet port, type 5
	PWVLAN     = "vlan"     // RFC 4719 Ethernet VLAN, type 4
)

// Pseudowire is a dynamic L2TPv3 session to one peer, set up by a control
// connection (RFC 3931 §3): l2tpd places the call (ICRQ) when Initiate is
// set, and answers the peer's ICRQ whose Remote End ID matches.
type Pseudowire struct {
	Name string
	// Peer is the far LCCE; Local the address we use (zero: routing
	// picks, UDP only); Port the peer's UDP port.
	Peer  netip.Addr
	Local netip.Addr
	Port  uint16
	// Encap is EncapUDP or EncapIP.
	Encap string
	// Netns, when set, is the network namespace the pseudowire's socket
	// and TAP device live in.
	Netns string
	// Type is PWEthernet or PWVLAN.
	Type string
	// RemoteEndID identifies the pseudowire to both ends (RFC 3931
	// §5.4.4): the octets sent in the Remote End ID AVP. A numeric
	// Pseudowire ID is encoded in four octets (RFC 4719 §2.2).
	RemoteEndID string
	// Initiate places the call; without it l2tpd only answers.
	Initiate bool
	// TAP is the Ethernet device the pseudowire bridges; VLAN the
	// local VLAN ID (type vlan): frames tagged with it on the TAP go to
	// the peer, frames from the peer leave the TAP tagged with it.
	TAP  string
	VLAN uint16
	MTU  int
	// CookieLen is the length of the random cookie we assign: 0, 4 or 8.
	CookieLen int
	// L2SpecificSublayer requests the default L2-Specific Sublayer
	// (RFC 3931 §4.6); Sequencing requests sequence numbers in it.
	L2SpecificSublayer bool
	Sequencing         bool
}

// PWType is the RFC 3931 pseudowire type of a configured type name.
func PWType(name string) uint16 {
	switch name {
	case PWVLAN:
		return tunnel.PseudowireEthernetVLAN
	case PWEthernet:
		return tunnel.PseudowireEthernet
	}
	return 0
}

// StaticTunnel is an unmanaged L2TPv3 tunnel (RFC 3931 §3.1): sessions
// configured at both ends, no control connection unless Hello asks for
// a quiescent one that only keeps Hellos going.
type StaticTunnel struct {
	Name string
	// Peer and Local are the two ends; PeerPort and LocalPort the UDP
	// ports (Encap udp).
	Peer, Local         netip.Addr
	PeerPort, LocalPort uint16
	Encap               string
	Netns               string
	// Hello opens a control connection to Peer that sets up no session
	// (RFC 3931 §3.1) and reports the peer's liveness.
	Hello    bool
	Sessions []StaticSession
}

// StaticSession is one manually keyed L2TPv3 session.
type StaticSession struct {
	SessionID, PeerSessionID uint32
	// Cookie is what we expect in received data, PeerCookie what we
	// send: 0, 4 or 8 octets each.
	Cookie, PeerCookie []byte
	L2SpecificSublayer bool
	Type               string
	TAP                string
	VLAN               uint16
	MTU                int
}

// pwHandler is one pseudowire type's part of the control plane: what a
// call of that type does once the tunnel has set it up. Supporting
// another type (ATM, HDLC, Frame Relay) is one more implementation in its
// own file and one more entry in pwHandlers; the tunnel core and the
// shard stay as they are.
type pwHandler interface {
	// answered: we answered the peer's ICRQ (ICRP sent); the peer may
	// send data right after its ICCN.
	answered(sh *shard, e *entry, s *tunnel.Session, now time.Time)
	// up: the call is established.
	up(sh *shard, e *entry, s *tunnel.Session, now time.Time)
	// down: the call is gone (CDN either way, or the tunnel closed).
	down(sh *shard, e *entry, ev tunnel.Event, now time.Time)
	// linkInfo: the peer sent an SLI (or WEN) for the call.
	linkInfo(sh *shard, e *entry, s *tunnel.Session, now time.Time)
}

var pwHandlers = map[uint16]pwHandler{
	tunnel.PseudowirePPP:          pppPW{},
	tunnel.PseudowireEthernet:     ethernetPW{},
	tunnel.PseudowireEthernetVLAN: vlanPW{},
}

// handlerFor picks a session's handler: every L2TPv2 session and every
// v3 session not negotiated as a pseudowire of another type is PPP.
func handlerFor(s *tunnel.Session) pwHandler {
	if s == nil || !s.Pseudowire {
		return pppPW{}
	}
	if h, ok := pwHandlers[s.PseudowireType]; ok {
		return h
	}
	return pppPW{}
}

// pwCapabilities is the Pseudowire Capabilities List a v3 tunnel
// advertises (RFC 3931 §5.4.3): PPP, and the types configured.
func (c *Config) pwCapabilities() []uint16 {
	caps := []uint16{tunnel.PseudowirePPP}
	for _, pw := range c.Pseudowires {
		if t := PWType(pw.Type); t != 0 && !slices.Contains(caps, t) {
			caps = append(caps, t)
		}
	}
	return caps
}
