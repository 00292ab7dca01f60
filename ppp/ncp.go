package ppp

import (
	"net/netip"
	"time"
)

// IPCP option types (RFC 1332 §3, RFC 1877 §1).
const (
	ipcpOptAddresses   = 1
	ipcpOptCompression = 2
	ipcpOptAddress     = 3
	ipcpOptDNS1        = 129
	ipcpOptNBNS1       = 130
	ipcpOptDNS2        = 131
	ipcpOptNBNS2       = 132
)

// ipcp is the IP Control Protocol layer of one Session.
type ipcp struct {
	s        *Session
	f        *fsm
	disabled bool // peer Protocol-Rejected IPCP

	// Our request.
	local    netip.Addr // server: our address; client: the address we want
	sendAddr bool
	dns      [2]netip.Addr // client: name servers we want
	sendDNS  [2]bool

	// Server: what the peer is given. Client: the server's address.
	peer netip.Addr
}

var zeroIPv4 = netip.AddrFrom4([4]byte{})

func (c *ipcp) reset() {
	cfg := &c.s.cfg
	if cfg.Role == RoleServer {
		c.local = cfg.LocalIPv4
		c.sendAddr = c.local.Is4() && !c.local.IsUnspecified()
		c.sendDNS = [2]bool{}
		c.peer = c.s.peerIPv4
		return
	}
	c.local = zeroIPv4
	c.sendAddr = true
	c.dns = [2]netip.Addr{zeroIPv4, zeroIPv4}
	c.sendDNS = [2]bool{cfg.RequestDNS, cfg.RequestDNS}
	c.peer = netip.Addr{}
}

func appendAddrOption(b []byte, typ uint8, a netip.Addr) []byte {
	v := a.As4()
	return append(b, typ, 6, v[0], v[1], v[2], v[3])
}

func addrValue(v []byte) (netip.Addr, bool) {
	if len(v) != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(v)), true
}

func (c *ipcp) appendRequest(b []byte) []byte {
	if c.sendAddr {
		b = appendAddrOption(b, ipcpOptAddress, c.local)
	}
	if c.sendDNS[0] {
		b = appendAddrOption(b, ipcpOptDNS1, c.dns[0])
	}
	if c.sendDNS[1] {
		b = appendAddrOption(b, ipcpOptDNS2, c.dns[1])
	}
	return b
}

func (c *ipcp) checkRequest(opts, reply []byte, nakAllowed bool) (uint8, []byte) {
	cfg := &c.s.cfg
	server := cfg.Role == RoleServer
	return negotiate(opts, reply, nakAllowed, func(o Option, nak []byte) (verdict, []byte) {
		switch o.Type {
		case ipcpOptAddress:
			v, ok := addrValue(o.Value)
			if !ok {
				return vRej, nak
			}
			if server {
				// RFC 1332 §3.3: 0.0.0.0 (or any other address) asks
				// us to provide one; Nak with the assigned address.
				if !c.peer.Is4() || c.peer.IsUnspecified() {
					return vRej, nak
				}
				if v == c.peer {
					return vAck, nak
				}
				return vNak, appendAddrOption(nak, ipcpOptAddress, c.peer)
			}
			// A server asking us for its own address: we have none.
			if v.IsUnspecified() {
				return vRej, nak
			}
			c.peer = v
			return vAck, nak
		case ipcpOptDNS1, ipcpOptDNS2:
			v, ok := addrValue(o.Value)
			want := cfg.DNS1
			if o.Type == ipcpOptDNS2 {
				want = cfg.DNS2
			}
			if !ok || !server || !want.Is4() {
				return vRej, nak
			}
			if v == want {
				return vAck, nak
			}
			// RFC 1877 §1.1: Nak with the address to use.
			return vNak, appendAddrOption(nak, o.Type, want)
		}
		// IP-Addresses (deprecated), IP-Compression-Protocol (no VJ on
		// this link), NBNS (RFC 1877 §1.2, §1.4) and the rest.
		return vRej, nak
	})
}

func (c *ipcp) gotAck(opts []byte) {}

func (c *ipcp) gotNak(opts []byte) bool {
	for rest := opts; len(rest) > 0; {
		o, r, _ := NextOption(rest)
		rest = r
		v, ok := addrValue(o.Value)
		switch o.Type {
		case ipcpOptAddress:
			if !ok {
				return false
			}
			// The server keeps its configured address; a client (or
			// a server without one) takes the suggestion.
			if c.s.cfg.Role == RoleClient || !c.sendAddr || c.local.IsUnspecified() {
				c.local = v
				c.sendAddr = true
			}
		case ipcpOptDNS1, ipcpOptDNS2:
			if !ok {
				return false
			}
			i := 0
			if o.Type == ipcpOptDNS2 {
				i = 1
			}
			if c.s.cfg.Role == RoleClient && c.sendDNS[i] {
				c.dns[i] = v
			}
		}
	}
	return true
}

func (c *ipcp) gotReject(opts []byte) bool {
	for rest := opts; len(rest) > 0; {
		o, r, _ := NextOption(rest)
		rest = r
		switch o.Type {
		case ipcpOptAddress:
			c.sendAddr = false
		case ipcpOptDNS1:
			c.sendDNS[0] = false
		case ipcpOptDNS2:
			c.sendDNS[1] = false
		default:
			return false
		}
	}
	return true
}

func (c *ipcp) info() NetworkInfo {
	n := NetworkInfo{Protocol: ProtoIPCP}
	if c.s.cfg.Role == RoleServer {
		n.LocalIPv4, n.PeerIPv4 = c.local, c.peer
		if !c.sendAddr {
			n.LocalIPv4 = netip.Addr{}
		}
		n.DNS1, n.DNS2 = c.s.cfg.DNS1, c.s.cfg.DNS2
		return n
	}
	n.LocalIPv4, n.PeerIPv4 = c.local, c.peer
	if c.sendDNS[0] {
		n.DNS1 = c.dns[0]
	}
	if c.sendDNS[1] {
		n.DNS2 = c.dns[1]
	}
	return n
}

func (c *ipcp) up(now time.Time) {
	c.s.link.event(Event{Kind: EventNetworkUp, Network: c.info()})
}

func (c *ipcp) down(now time.Time) {
	c.s.link.event(Event{Kind: EventNetworkDown, Network: c.info()})
}

func (c *ipcp) started(now time.Time)                  {}
func (c *ipcp) finished(now time.Time)                 { c.s.ncpFinished() }
func (c *ipcp) extraCode(now time.Time, p Packet) bool { return false }

// IPv6CP option types (RFC 5072 §4).
const (
	ipv6cpOptIID         = 1
	ipv6cpOptCompression = 2
)

// ipv6cp is the IPv6 Control Protocol layer of one Session.
type ipv6cp struct {
	s        *Session
	f        *fsm
	disabled bool

	local   [8]byte
	sendIID bool
	peer    [8]byte
}

func (c *ipv6cp) reset() {
	c.local = c.s.cfg.LocalIID
	if c.local == ([8]byte{}) {
		c.local = c.s.randIID([8]byte{})
	}
	c.sendIID = true
	c.peer = [8]byte{}
}

func (c *ipv6cp) appendRequest(b []byte) []byte {
	if c.sendIID {
		b = AppendOption(b, ipv6cpOptIID, c.local[:])
	}
	return b
}

func (c *ipv6cp) checkRequest(opts, reply []byte, nakAllowed bool) (uint8, []byte) {
	return negotiate(opts, reply, nakAllowed, func(o Option, nak []byte) (verdict, []byte) {
		if o.Type != ipv6cpOptIID {
			return vRej, nak // compression and unknown options
		}
		if len(o.Value) != 8 {
			return vRej, nak
		}
		v := [8]byte(o.Value)
		// RFC 5072 §4.1: a zero identifier or one equal to ours is
		// answered with a Nak carrying a fresh, different identifier.
		if v == ([8]byte{}) || (c.sendIID && v == c.local) {
			s := c.s.randIID(c.local)
			return vNak, AppendOption(nak, ipv6cpOptIID, s[:])
		}
		c.peer = v
		return vAck, nak
	})
}

func (c *ipv6cp) gotAck(opts []byte) {}

func (c *ipv6cp) gotNak(opts []byte) bool {
	for rest := opts; len(rest) > 0; {
		o, r, _ := NextOption(rest)
		rest = r
		if o.Type != ipv6cpOptIID {
			continue
		}
		if len(o.Value) != 8 {
			return false
		}
		v := [8]byte(o.Value)
		if v != ([8]byte{}) && v != c.peer {
			c.local = v
		} else {
			c.local = c.s.randIID(c.peer)
		}
	}
	return true
}

func (c *ipv6cp) gotReject(opts []byte) bool {
	for rest := opts; len(rest) > 0; {
		o, r, _ := NextOption(rest)
		rest = r
		if o.Type != ipv6cpOptIID {
			return false
		}
		c.sendIID = false
	}
	return true
}

func (c *ipv6cp) info() NetworkInfo {
	return NetworkInfo{Protocol: ProtoIPv6CP, LocalIID: c.local, PeerIID: c.peer}
}

func (c *ipv6cp) up(now time.Time) {
	c.s.link.event(Event{Kind: EventNetworkUp, Network: c.info()})
}

func (c *ipv6cp) down(now time.Time) {
	c.s.link.event(Event{Kind: EventNetworkDown, Network: c.info()})
}

func (c *ipv6cp) started(now time.Time)                  {}
func (c *ipv6cp) finished(now time.Time)                 { c.s.ncpFinished() }
func (c *ipv6cp) extraCode(now time.Time, p Packet) bool { return false }
