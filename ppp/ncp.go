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

// ipcp is the IP Control Protocol layer of one Session. The client's
// name server requests are in Session.client.
type ipcp struct {
	f fsm
	s *Session

	// Our request: server: our address; client: the address we want.
	local    [4]byte
	sendAddr bool

	disabled bool // peer Protocol-Rejected IPCP
}

func (c *ipcp) reset() {
	cfg := &c.s.cfg
	if cfg.role == RoleServer {
		c.local = cfg.localIPv4
		c.sendAddr = cfg.sendLocal
		return
	}
	cl := c.s.client
	c.local = [4]byte{}
	c.sendAddr = true
	cl.dns = [2][4]byte{}
	cl.sendDNS = [2]bool{cl.requestDNS, cl.requestDNS}
	cfg.setAddr(addrPeer, netip.Addr{})
}

func appendAddr4Option(b []byte, typ uint8, v [4]byte) []byte {
	return append(b, typ, 6, v[0], v[1], v[2], v[3])
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
		b = appendAddr4Option(b, ipcpOptAddress, c.local)
	}
	if cl := c.s.client; cl != nil {
		if cl.sendDNS[0] {
			b = appendAddr4Option(b, ipcpOptDNS1, cl.dns[0])
		}
		if cl.sendDNS[1] {
			b = appendAddr4Option(b, ipcpOptDNS2, cl.dns[1])
		}
	}
	return b
}

func (c *ipcp) checkRequest(opts, reply []byte, nakAllowed bool) (uint8, []byte) {
	cfg := &c.s.cfg
	server := cfg.role == RoleServer
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
				peer := cfg.addr(addrPeer)
				if !peer.Is4() || peer.IsUnspecified() {
					return vRej, nak
				}
				if v == peer {
					return vAck, nak
				}
				return vNak, appendAddrOption(nak, ipcpOptAddress, peer)
			}
			// A server asking us for its own address: we have none.
			if v.IsUnspecified() {
				return vRej, nak
			}
			cfg.setAddr(addrPeer, v)
			return vAck, nak
		case ipcpOptDNS1, ipcpOptDNS2:
			v, ok := addrValue(o.Value)
			want := cfg.addr(addrDNS1)
			if o.Type == ipcpOptDNS2 {
				want = cfg.addr(addrDNS2)
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
			if c.s.cfg.role == RoleClient || !c.sendAddr || c.local == ([4]byte{}) {
				c.local = v.As4()
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
			if cl := c.s.client; cl != nil && cl.sendDNS[i] {
				cl.dns[i] = v.As4()
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
			if cl := c.s.client; cl != nil {
				cl.sendDNS[0] = false
			}
		case ipcpOptDNS2:
			if cl := c.s.client; cl != nil {
				cl.sendDNS[1] = false
			}
		default:
			return false
		}
	}
	return true
}

func (c *ipcp) info() NetworkInfo {
	n := NetworkInfo{Protocol: ProtoIPCP, PeerIPv4: c.s.cfg.addr(addrPeer)}
	cl := c.s.client
	if cl == nil {
		if c.sendAddr {
			n.LocalIPv4 = netip.AddrFrom4(c.local)
		}
		n.DNS1, n.DNS2 = c.s.cfg.addr(addrDNS1), c.s.cfg.addr(addrDNS2)
		return n
	}
	n.LocalIPv4 = netip.AddrFrom4(c.local)
	if cl.sendDNS[0] {
		n.DNS1 = netip.AddrFrom4(cl.dns[0])
	}
	if cl.sendDNS[1] {
		n.DNS2 = netip.AddrFrom4(cl.dns[1])
	}
	return n
}

func (c *ipcp) session() *Session { return c.s }

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
	f fsm
	s *Session

	iid      [8]byte // Config.LocalIID
	local    [8]byte
	peer     [8]byte
	sendIID  bool
	disabled bool
}

func (c *ipv6cp) reset() {
	c.local = c.iid
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

func (c *ipv6cp) session() *Session { return c.s }

func (c *ipv6cp) up(now time.Time) {
	c.s.link.event(Event{Kind: EventNetworkUp, Network: c.info()})
}

func (c *ipv6cp) down(now time.Time) {
	c.s.link.event(Event{Kind: EventNetworkDown, Network: c.info()})
}

func (c *ipv6cp) started(now time.Time)                  {}
func (c *ipv6cp) finished(now time.Time)                 { c.s.ncpFinished() }
func (c *ipv6cp) extraCode(now time.Time, p Packet) bool { return false }
