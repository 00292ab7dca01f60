package config

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"strings"

	"github.com/l2tpd/l2tpd/control"
	"github.com/l2tpd/l2tpd/control/pool"
	"gopkg.in/yaml.v3"
)

// The PPP termination keys (tun, ppp, pools) refer to each other: the
// default pool and each peer's pool must exist, and our own address must
// stay out of every pool. Those checks wait for the whole document, since
// the sections may come in any order; refs holds what they need.
type refs struct {
	tunName    *yaml.Node // tun.name when not empty
	ppp        *yaml.Node // the ppp mapping
	localIPv4  *yaml.Node
	defaultRef *yaml.Node // ppp.pool
	poolRefs   []poolRef  // peers' and default_peer's pool keys
	poolLine   map[string]int
	ranges     []placedRange
	prefixes   []placedPrefix
}

type poolRef struct {
	path string
	node *yaml.Node
}

type placedRange struct {
	first, last uint32
	pool, text  string
	line        int
}

type placedPrefix struct {
	pfx        netip.Prefix
	pool, text string
	line       int
}

// Authentication protocols ppp.auth may list.
var authProtos = []string{"pap", "chap", "mschapv2"}

// Proxy LCP policies peers may ask for.
var renegotiatePolicies = []string{"never", "on-mismatch", "always"}

func (d *decoder) tun(path string, n *yaml.Node, t *control.TUN) {
	d.mapping(path, n, []field{
		{"name", func(p string, v *yaml.Node) {
			if !d.str(p, v, &t.Name) || t.Name == "" {
				return
			}
			// Linux interface names: IFNAMSIZ less the NUL, no slash or
			// blank, and not a path element.
			switch {
			case len(t.Name) > 15:
				d.fail(p, v, "interface name %q is longer than 15 bytes", t.Name)
			case strings.ContainsAny(t.Name, "/: \t\n") || t.Name == "." || t.Name == "..":
				d.fail(p, v, "invalid interface name %q", t.Name)
			default:
				d.refs.tunName = v
			}
		}},
		{"mtu", func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, 576, math.MaxUint16); ok {
				t.MTU = int(x)
			}
		}},
	})
}

func (d *decoder) pppPolicy(path string, n *yaml.Node, c *control.PPP) {
	if resolve(n).Kind == yaml.MappingNode {
		d.refs.ppp = resolve(n)
	}
	d.mapping(path, n, []field{
		{"mru", func(p string, v *yaml.Node) {
			// RFC 1661 §6.1: 1500 must always be receivable; below 576 an
			// IPv4 datagram no longer fits unfragmented.
			if x, ok := d.integer(p, v, 576, math.MaxUint16); ok {
				c.MRU = uint16(x)
			}
		}},
		{"auth", func(p string, v *yaml.Node) {
			var out []string
			first := map[string]int{}
			ok := d.sequence(p, v, func(p string, item *yaml.Node) {
				var s string
				if !d.str(p, item, &s) {
					return
				}
				switch {
				case !oneOf(s, authProtos...):
					d.fail(p, item, "unknown authentication protocol %q (want pap, chap or mschapv2)", s)
				case first[s] != 0:
					d.fail(p, item, "%s listed twice (first on line %d)", s, first[s])
				default:
					first[s] = item.Line
					out = append(out, s)
				}
			})
			if !ok {
				if isNull(resolve(v)) {
					d.fail(p, v, "at least one protocol is required")
				}
				return
			}
			if len(resolve(v).Content) == 0 {
				d.fail(p, v, "at least one protocol is required")
				return
			}
			c.Auth = out
		}},
		{"echo_interval", func(p string, v *yaml.Node) { d.duration(p, v, &c.EchoInterval) }},
		{"echo_failures", func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, 1, 100); ok {
				c.EchoFailures = int(x)
			}
		}},
		{"local_ipv4", func(p string, v *yaml.Node) {
			d.refs.localIPv4 = resolve(v)
			if a, ok := d.ipv4(p, v); ok {
				c.LocalIPv4 = a
			}
		}},
		{"dns", func(p string, v *yaml.Node) {
			var out []netip.Addr
			ok := d.sequence(p, v, func(p string, item *yaml.Node) {
				if a, ok := d.ipv4(p, item); ok {
					out = append(out, a)
				}
			})
			// RFC 1877 has a primary and a secondary server, no more.
			if ok && len(resolve(v).Content) > 2 {
				d.fail(p, v, "at most 2 servers (RFC 1877 primary and secondary), got %d", len(resolve(v).Content))
				return
			}
			c.DNS = out
		}},
		{"ipv6", func(p string, v *yaml.Node) { d.boolean(p, v, &c.IPv6) }},
		{"pool", func(p string, v *yaml.Node) {
			d.refs.defaultRef = resolve(v)
			if d.str(p, v, &c.Pool) {
				d.refs.poolRefs = append(d.refs.poolRefs, poolRef{p, resolve(v)})
			}
		}},
	})
}

// ipv4 takes a unicast IPv4 address.
func (d *decoder) ipv4(path string, n *yaml.Node) (netip.Addr, bool) {
	var s string
	if !d.str(path, n, &s) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || !a.Is4():
		d.fail(path, n, "invalid IPv4 address %q", s)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		d.fail(path, n, "%s is not a unicast address", s)
	default:
		return a, true
	}
	return netip.Addr{}, false
}

func (d *decoder) pools(path string, n *yaml.Node, f *File) {
	d.sequence(path, n, func(p string, item *yaml.Node) {
		var pc control.Pool
		var nameNode, v6Node, lenNode *yaml.Node
		var ranges []placedRange
		var prefix *placedPrefix
		before := len(d.errs)
		d.mapping(p, item, []field{
			{"name", func(p string, v *yaml.Node) {
				nameNode = resolve(v)
				if d.str(p, v, &pc.Name) && pc.Name == "" {
					d.fail(p, v, "must not be empty")
				}
			}},
			{"ipv4", func(p string, v *yaml.Node) {
				d.sequence(p, v, func(p string, item *yaml.Node) {
					var s string
					if !d.str(p, item, &s) {
						return
					}
					r, msg := parseRange(s)
					if msg != "" {
						d.fail(p, item, "%s", msg)
						return
					}
					pc.IPv4 = append(pc.IPv4, r)
					ranges = append(ranges, placedRange{first: u32(r.First), last: u32(r.Last), text: s, line: resolve(item).Line})
				})
			}},
			{"ipv6", func(p string, v *yaml.Node) {
				var s string
				if !d.str(p, v, &s) {
					return
				}
				pfx, err := netip.ParsePrefix(s)
				switch {
				case err != nil || !pfx.Addr().Is6() || pfx.Addr().Is4In6():
					d.fail(p, v, "invalid IPv6 prefix %q", s)
				case pfx.Masked() != pfx:
					d.fail(p, v, "prefix %q has host bits set (did you mean %q?)", s, pfx.Masked().String())
				default:
					pc.IPv6 = pfx
					v6Node = resolve(v)
					prefix = &placedPrefix{pfx: pfx, text: s, line: v6Node.Line}
				}
			}},
			{"ipv6_length", func(p string, v *yaml.Node) {
				if x, ok := d.integer(p, v, 1, 128); ok {
					pc.IPv6Length = int(x)
					lenNode = resolve(v)
				}
			}},
		})
		if resolve(item).Kind != yaml.MappingNode {
			return
		}
		switch {
		case nameNode == nil:
			d.fail(join(p, "name"), item, "required")
		case pc.Name == "":
		case d.refs.poolLine[pc.Name] != 0:
			d.fail(join(p, "name"), nameNode, "duplicate pool name %q (first used on line %d)", pc.Name, d.refs.poolLine[pc.Name])
		default:
			d.refs.poolLine[pc.Name] = nameNode.Line
		}
		if len(pc.IPv4) == 0 && !pc.IPv6.IsValid() && len(d.errs) == before {
			d.fail(p, item, "needs ipv4 ranges or an ipv6 prefix")
		}
		d.placeRanges(join(p, "ipv4"), pc.Name, ranges)
		if pc.IPv6.IsValid() {
			if pc.IPv6Length == 0 {
				pc.IPv6Length = pool.DefaultIPv6Length
			}
			at, where := v6Node, join(p, "ipv6")
			if lenNode != nil {
				at, where = lenNode, join(p, "ipv6_length")
			}
			bits := pc.IPv6.Bits()
			switch {
			case pc.IPv6Length < bits:
				d.fail(where, at, "ipv6_length %d is shorter than the pool's prefix /%d (want %d to 128)", pc.IPv6Length, bits, bits)
			case uint64(1)<<min(pc.IPv6Length-bits, 63) > pool.MaxSize:
				d.fail(where, at, "cutting %s into /%d gives more than %d prefixes (use a longer prefix or a shorter ipv6_length)", pc.IPv6, pc.IPv6Length, pool.MaxSize)
			}
			prefix.pool = pc.Name
			d.placePrefix(join(p, "ipv6"), v6Node, *prefix)
		} else if lenNode != nil {
			d.fail(join(p, "ipv6_length"), lenNode, "set without an ipv6 prefix")
		}
		f.Pools = append(f.Pools, pc)
	})
}

// parseRange accepts "first-last", a prefix, or one address.
func parseRange(s string) (control.AddrRange, string) {
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, errA := netip.ParseAddr(strings.TrimSpace(lo))
		b, errB := netip.ParseAddr(strings.TrimSpace(hi))
		switch {
		case errA != nil || errB != nil || !a.Is4() || !b.Is4():
			return control.AddrRange{}, fmt.Sprintf("invalid IPv4 range %q: want first-last, a prefix or an address", s)
		case a.Compare(b) > 0:
			return control.AddrRange{}, fmt.Sprintf("range %q: first address is after the last", s)
		}
		return control.AddrRange{First: a, Last: b}, ""
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil || !p.Addr().Is4():
			return control.AddrRange{}, fmt.Sprintf("invalid IPv4 range %q: want first-last, a prefix or an address", s)
		case p.Masked() != p:
			return control.AddrRange{}, fmt.Sprintf("prefix %q has host bits set (did you mean %q?)", s, p.Masked().String())
		}
		first := u32(p.Addr())
		last := first | uint32(uint64(1)<<(32-p.Bits())-1)
		return control.AddrRange{First: p.Addr(), Last: addr4(last)}, ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return control.AddrRange{}, fmt.Sprintf("invalid IPv4 range %q: want first-last, a prefix or an address", s)
	}
	return control.AddrRange{First: a, Last: a}, ""
}

// placeRanges checks one pool's ranges against every range seen so far,
// its own included, and their total against pool.MaxSize.
func (d *decoder) placeRanges(path, name string, rs []placedRange) {
	var total uint64
	for i, r := range rs {
		r.pool = name
		p := fmt.Sprintf("%s[%d]", path, i)
		total += uint64(r.last-r.first) + 1
		if total > pool.MaxSize {
			d.fail(p, &yaml.Node{Line: r.line}, "the pool's ranges hold more than %d addresses", pool.MaxSize)
			return
		}
		clash := false
		for _, o := range d.refs.ranges {
			if r.first <= o.last && o.first <= r.last {
				d.fail(p, &yaml.Node{Line: r.line}, "%s overlaps %s of pool %q (line %d)", r.text, o.text, o.pool, o.line)
				clash = true
				break
			}
		}
		if !clash {
			d.refs.ranges = append(d.refs.ranges, r)
		}
	}
}

func (d *decoder) placePrefix(path string, n *yaml.Node, pp placedPrefix) {
	for _, o := range d.refs.prefixes {
		if o.pfx.Overlaps(pp.pfx) {
			d.fail(path, n, "%s overlaps %s of pool %q (line %d)", pp.text, o.text, o.pool, o.line)
			return
		}
	}
	d.refs.prefixes = append(d.refs.prefixes, pp)
}

// crossCheck runs the checks that span sections, once all are read.
func (d *decoder) crossCheck(f *File) {
	for _, r := range d.refs.poolRefs {
		if name := r.node.Value; d.refs.poolLine[name] == 0 {
			d.fail(r.path, r.node, "no pool named %q", name)
		}
	}
	if a := f.PPP.LocalIPv4; a.IsValid() {
		for _, r := range d.refs.ranges {
			if x := u32(a); x >= r.first && x <= r.last {
				d.fail("ppp.local_ipv4", d.refs.localIPv4, "%s is inside %s of pool %q (line %d); our end of the link must not be leased", a, r.text, r.pool, r.line)
				break
			}
		}
	}
	if d.refs.tunName == nil {
		return
	}
	// Terminating PPP needs our address and somewhere to lease from.
	at := d.refs.ppp
	if at == nil {
		at = d.refs.tunName
	}
	if d.refs.localIPv4 == nil {
		d.fail("ppp.local_ipv4", at, "required when tun.name is set (line %d)", d.refs.tunName.Line)
	}
	if d.refs.defaultRef == nil {
		d.fail("ppp.pool", at, "required when tun.name is set (line %d)", d.refs.tunName.Line)
	}
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addr4(x uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], x)
	return netip.AddrFrom4(b)
}
