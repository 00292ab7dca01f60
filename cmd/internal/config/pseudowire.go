package config

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/l2tpd/l2tpd/control"
)

// Defaults of the pseudowire and static tunnel keys.
const (
	DefaultL2TPPort = 1701
	DefaultPWMTU    = 1500
)

// pwRefs remembers what several pseudowire entries must not share.
type pwRefs struct {
	names map[string]int    // pseudowire and static tunnel names
	taps  map[string]tapUse // TAP name → first user
	vlans map[string]int    // "netns/tap/vid" → line
	ends  map[string]int    // "netns/peer/remote end" → line
	ids   map[string]int    // "netns/local/session" → line
}

type tapUse struct {
	line  int
	vlan  bool
	netns string
}

func (d *decoder) pwRefs() *pwRefs {
	if d.pw == nil {
		d.pw = &pwRefs{names: map[string]int{}, taps: map[string]tapUse{}, vlans: map[string]int{}, ends: map[string]int{}, ids: map[string]int{}}
	}
	return d.pw
}

// name decodes a pseudowire or static tunnel name, unique among both.
func (d *decoder) pwName(path string, v *yaml.Node, dst *string) {
	if !d.str(path, v, dst) {
		return
	}
	r := d.pwRefs()
	switch {
	case *dst == "":
		d.fail(path, v, "must not be empty")
	case r.names[*dst] != 0:
		d.fail(path, v, "duplicate name %q (first used on line %d)", *dst, r.names[*dst])
	default:
		r.names[*dst] = v.Line
	}
}

// ifName decodes a Linux interface name.
func (d *decoder) ifName(path string, v *yaml.Node, dst *string) bool {
	if !d.str(path, v, dst) {
		return false
	}
	switch {
	case *dst == "":
		d.fail(path, v, "must not be empty")
	case len(*dst) > 15:
		d.fail(path, v, "interface name %q is longer than 15 bytes", *dst)
	case strings.ContainsAny(*dst, "/: \t\n") || *dst == "." || *dst == "..":
		d.fail(path, v, "invalid interface name %q", *dst)
	default:
		return true
	}
	return false
}

// netns decodes a network namespace name (a file under /run/netns).
func (d *decoder) netns(path string, v *yaml.Node, dst *string) {
	if !d.str(path, v, dst) {
		return
	}
	if *dst == "" || strings.ContainsAny(*dst, "/ \t\n") || *dst == "." || *dst == ".." {
		d.fail(path, v, "invalid namespace name %q", *dst)
	}
}

func (d *decoder) encap(path string, v *yaml.Node, dst *string) {
	if d.str(path, v, dst) && !oneOf(*dst, control.EncapUDP, control.EncapIP) {
		d.fail(path, v, "invalid encapsulation %q (want udp or ip)", *dst)
	}
}

func (d *decoder) pwType(path string, v *yaml.Node, dst *string) {
	if d.str(path, v, dst) && !oneOf(*dst, control.PWEthernet, control.PWVLAN) {
		d.fail(path, v, "invalid pseudowire type %q (want ethernet or vlan)", *dst)
	}
}

func (d *decoder) l2Specific(path string, v *yaml.Node, dst *bool) {
	var s string
	if !d.str(path, v, &s) {
		return
	}
	switch s {
	case "default":
		*dst = true
	case "none":
		*dst = false
	default:
		d.fail(path, v, "invalid L2-Specific Sublayer %q (want default or none)", s)
	}
}

func (d *decoder) port(path string, v *yaml.Node, dst *uint16) {
	if x, ok := d.integer(path, v, 1, math.MaxUint16); ok {
		*dst = uint16(x)
	}
}

// cookie decodes a static cookie: hex digits, optionally split by colons,
// of 0, 4 or 8 octets (RFC 3931 §4.1).
func (d *decoder) cookie(path string, v *yaml.Node, dst *[]byte) {
	var s string
	if !d.str(path, v, &s) {
		return
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	switch {
	case err != nil:
		d.fail(path, v, "invalid cookie %q: want hex digits such as \"0123456789abcdef\"", s)
	case len(b) != 0 && len(b) != 4 && len(b) != 8:
		d.fail(path, v, "cookie must be 0, 4 or 8 octets, got %d", len(b))
	default:
		*dst = b
	}
}

// circuit holds the keys pseudowires and static sessions share: type,
// TAP, VLAN and MTU, checked together.
type circuit struct {
	typ               string
	tap               string
	vlan              uint16
	mtu               int
	typNode, tapNode  *yaml.Node
	vlanNode, mtuNode *yaml.Node
}

func (c *circuit) fields(d *decoder) []field {
	return []field{
		{"type", func(p string, v *yaml.Node) { d.pwType(p, v, &c.typ); c.typNode = v }},
		{"tap", func(p string, v *yaml.Node) {
			if d.ifName(p, v, &c.tap) {
				c.tapNode = v
			}
		}},
		{"vlan", func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, 1, 4094); ok {
				c.vlan, c.vlanNode = uint16(x), v
			}
		}},
		{"mtu", func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, 576, 65535); ok {
				c.mtu, c.mtuNode = int(x), v
			}
		}},
	}
}

// check applies the rules across the circuit keys: a TAP is required and
// belongs to one Ethernet circuit or to VLAN circuits with distinct IDs.
func (d *decoder) checkCircuit(path string, item *yaml.Node, c *circuit, netns string) {
	if c.typ == "" && c.typNode == nil {
		d.fail(join(path, "type"), item, "required (ethernet or vlan)")
	}
	if c.tapNode == nil {
		if c.tap == "" {
			d.fail(join(path, "tap"), item, "required")
		}
		return
	}
	switch {
	case c.typ == control.PWVLAN && c.vlanNode == nil:
		d.fail(join(path, "vlan"), item, "required for type vlan")
		return
	case c.typ == control.PWEthernet && c.vlanNode != nil:
		d.fail(join(path, "vlan"), c.vlanNode, "only type vlan takes a VLAN ID")
		return
	}
	r := d.pwRefs()
	key := netns + "/" + c.tap
	isVLAN := c.typ == control.PWVLAN
	if u, used := r.taps[key]; used {
		if !isVLAN || !u.vlan {
			d.fail(join(path, "tap"), c.tapNode, "TAP %q already carries a pseudowire (line %d); only vlan pseudowires share a TAP", c.tap, u.line)
			return
		}
	} else {
		r.taps[key] = tapUse{line: c.tapNode.Line, vlan: isVLAN, netns: netns}
	}
	if isVLAN {
		vk := key + "/" + strconv.Itoa(int(c.vlan))
		if line := r.vlans[vk]; line != 0 {
			d.fail(join(path, "vlan"), c.vlanNode, "VLAN %d on TAP %q is already used (line %d)", c.vlan, c.tap, line)
			return
		}
		r.vlans[vk] = c.vlanNode.Line
	}
}

// sameFamily reports whether both addresses (when set) are IPv4 or both IPv6.
func sameFamily(a, b netip.Addr) bool {
	return !a.IsValid() || !b.IsValid() || a.Unmap().Is4() == b.Unmap().Is4()
}

func (d *decoder) pseudowires(path string, n *yaml.Node, f *File) {
	d.sequence(path, n, func(p string, item *yaml.Node) {
		pw := control.Pseudowire{Port: DefaultL2TPPort, Encap: control.EncapUDP, Initiate: true, MTU: DefaultPWMTU, L2SpecificSublayer: true}
		var c circuit
		var nameNode, peerNode, localNode, vcNode, endNode, seqNode, l2Node, encapNode *yaml.Node
		fields := []field{
			{"name", func(p string, v *yaml.Node) { d.pwName(p, v, &pw.Name); nameNode = v }},
			{"peer", func(p string, v *yaml.Node) {
				if a, ok := d.ipAddr(p, v); ok {
					pw.Peer, peerNode = a, v
				}
			}},
			{"local", func(p string, v *yaml.Node) {
				if a, ok := d.ipAddr(p, v); ok {
					pw.Local, localNode = a, v
				}
			}},
			{"port", func(p string, v *yaml.Node) { d.port(p, v, &pw.Port) }},
			{"encap", func(p string, v *yaml.Node) { d.encap(p, v, &pw.Encap); encapNode = v }},
			{"netns", func(p string, v *yaml.Node) { d.netns(p, v, &pw.Netns) }},
			{"vc_id", func(p string, v *yaml.Node) {
				if x, ok := d.integer(p, v, 1, math.MaxUint32); ok {
					pw.RemoteEndID, vcNode = string(binary.BigEndian.AppendUint32(nil, uint32(x))), v
				}
			}},
			{"remote_end_id", func(p string, v *yaml.Node) {
				var s string
				if !d.str(p, v, &s) {
					return
				}
				if s == "" {
					d.fail(p, v, "must not be empty")
					return
				}
				pw.RemoteEndID, endNode = s, v
			}},
			{"initiate", func(p string, v *yaml.Node) { d.boolean(p, v, &pw.Initiate) }},
			{"cookie", func(p string, v *yaml.Node) {
				if x, ok := d.integer(p, v, 0, 8); ok {
					if x != 0 && x != 4 && x != 8 {
						d.fail(p, v, "cookie length must be 0, 4 or 8 octets, got %d", x)
						return
					}
					pw.CookieLen = int(x)
				}
			}},
			{"l2_specific", func(p string, v *yaml.Node) { d.l2Specific(p, v, &pw.L2SpecificSublayer); l2Node = v }},
			{"sequencing", func(p string, v *yaml.Node) {
				var s string
				if !d.str(p, v, &s) {
					return
				}
				if !oneOf(s, "none", "all") {
					d.fail(p, v, "invalid sequencing %q (want none or all)", s)
					return
				}
				pw.Sequencing, seqNode = s == "all", v
			}},
		}
		d.mapping(p, item, append(fields, c.fields(d)...))
		if resolve(item).Kind != yaml.MappingNode {
			return
		}
		if nameNode == nil {
			d.fail(join(p, "name"), item, "required")
		}
		if peerNode == nil {
			d.fail(join(p, "peer"), item, "required")
		}
		switch {
		case vcNode != nil && endNode != nil:
			d.fail(join(p, "remote_end_id"), endNode, "give either vc_id or remote_end_id, not both")
		case vcNode == nil && endNode == nil:
			d.fail(join(p, "vc_id"), item, "required (or remote_end_id): it names the pseudowire to both ends")
		}
		if !sameFamily(pw.Peer, pw.Local) {
			d.fail(join(p, "local"), localNode, "%s and peer %s are not of the same address family", pw.Local, pw.Peer)
		}
		if pw.Encap == control.EncapIP && !pw.Local.IsValid() && localNode == nil {
			d.fail(join(p, "local"), encapNode, "required with encap ip")
		}
		if pw.Sequencing && !pw.L2SpecificSublayer && l2Node != nil {
			d.fail(join(p, "sequencing"), seqNode, "sequencing needs l2_specific: default (line %d) to carry the numbers (RFC 3931 §5.4.4)", l2Node.Line)
		}
		if pw.Peer.IsValid() && pw.RemoteEndID != "" {
			k := pw.Netns + "/" + pw.Peer.String() + "/" + pw.RemoteEndID
			at := vcNode
			if at == nil {
				at = endNode
			}
			if line := d.pwRefs().ends[k]; line != 0 {
				d.fail(join(p, "vc_id"), at, "another pseudowire to %s uses the same ID (line %d)", pw.Peer, line)
			} else {
				d.pwRefs().ends[k] = at.Line
			}
		}
		d.checkCircuit(p, item, &c, pw.Netns)
		pw.Type, pw.TAP, pw.VLAN = c.typ, c.tap, c.vlan
		if c.mtu != 0 {
			pw.MTU = c.mtu
		}
		f.Pseudowires = append(f.Pseudowires, pw)
	})
}

func (d *decoder) staticTunnels(path string, n *yaml.Node, f *File) {
	d.sequence(path, n, func(p string, item *yaml.Node) {
		st := control.StaticTunnel{Encap: control.EncapUDP, PeerPort: DefaultL2TPPort, LocalPort: DefaultL2TPPort}
		var nameNode, peerNode, localNode, sessNode *yaml.Node
		d.mapping(p, item, []field{
			{"name", func(p string, v *yaml.Node) { d.pwName(p, v, &st.Name); nameNode = v }},
			{"peer", func(p string, v *yaml.Node) {
				if a, ok := d.ipAddr(p, v); ok {
					st.Peer, peerNode = a, v
				}
			}},
			{"local", func(p string, v *yaml.Node) {
				if a, ok := d.ipAddr(p, v); ok {
					st.Local, localNode = a, v
				}
			}},
			{"peer_port", func(p string, v *yaml.Node) { d.port(p, v, &st.PeerPort) }},
			{"local_port", func(p string, v *yaml.Node) { d.port(p, v, &st.LocalPort) }},
			{"encap", func(p string, v *yaml.Node) { d.encap(p, v, &st.Encap) }},
			{"netns", func(p string, v *yaml.Node) { d.netns(p, v, &st.Netns) }},
			{"hello", func(p string, v *yaml.Node) { d.boolean(p, v, &st.Hello) }},
			{"sessions", func(p string, v *yaml.Node) {
				sessNode = v
				d.sequence(p, v, func(p string, item *yaml.Node) {
					if s, ok := d.staticSession(p, item, &st); ok {
						st.Sessions = append(st.Sessions, s)
					}
				})
			}},
		})
		if resolve(item).Kind != yaml.MappingNode {
			return
		}
		if nameNode == nil {
			d.fail(join(p, "name"), item, "required")
		}
		if peerNode == nil {
			d.fail(join(p, "peer"), item, "required")
		}
		if localNode == nil {
			d.fail(join(p, "local"), item, "required: the address the peer sends to")
		}
		if !sameFamily(st.Peer, st.Local) {
			d.fail(join(p, "local"), localNode, "%s and peer %s are not of the same address family", st.Local, st.Peer)
		}
		if sessNode == nil || len(resolve(sessNode).Content) == 0 {
			at := sessNode
			if at == nil {
				at = item
			}
			d.fail(join(p, "sessions"), at, "at least one session is required")
		}
		f.StaticTunnels = append(f.StaticTunnels, st)
	})
}

func (d *decoder) staticSession(path string, item *yaml.Node, st *control.StaticTunnel) (control.StaticSession, bool) {
	s := control.StaticSession{L2SpecificSublayer: true, Type: control.PWEthernet, MTU: DefaultPWMTU}
	c := circuit{typ: control.PWEthernet}
	var idNode, peerIDNode *yaml.Node
	before := len(d.errs)
	fields := []field{
		{"session_id", func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, 1, math.MaxUint32); ok {
				s.SessionID, idNode = uint32(x), v
			}
		}},
		{"peer_session_id", func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, 1, math.MaxUint32); ok {
				s.PeerSessionID, peerIDNode = uint32(x), v
			}
		}},
		{"cookie", func(p string, v *yaml.Node) { d.cookie(p, v, &s.Cookie) }},
		{"peer_cookie", func(p string, v *yaml.Node) { d.cookie(p, v, &s.PeerCookie) }},
		{"l2_specific", func(p string, v *yaml.Node) { d.l2Specific(p, v, &s.L2SpecificSublayer) }},
	}
	d.mapping(path, item, append(fields, c.fields(d)...))
	if resolve(item).Kind != yaml.MappingNode {
		return s, false
	}
	if idNode == nil {
		d.fail(join(path, "session_id"), item, "required")
	}
	if peerIDNode == nil {
		d.fail(join(path, "peer_session_id"), item, "required")
	}
	if idNode != nil {
		// RFC 3931 §4.1: v3 data is demultiplexed by session ID alone,
		// and one datapath serves every namespace.
		k := idNode.Value
		if line := d.pwRefs().ids[k]; line != 0 {
			d.fail(join(path, "session_id"), idNode, "session ID %d is already used by a static session (line %d)", s.SessionID, line)
		} else {
			d.pwRefs().ids[k] = idNode.Line
		}
	}
	d.checkCircuit(path, item, &c, st.Netns)
	s.Type, s.TAP, s.VLAN = c.typ, c.tap, c.vlan
	if c.mtu != 0 {
		s.MTU = c.mtu
	}
	return s, len(d.errs) == before
}
