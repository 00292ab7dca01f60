package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder walks a yaml.Node tree against the schema. Walking the node tree
// by hand, rather than decoding into tagged structs, is what lets every
// problem carry its path and line and lets one pass report them all.
// Unknown keys are rejected, as yaml.v3's KnownFields(true) would.
type decoder struct {
	errs Errors
	refs refs
	pw   *pwRefs
}

// field is one known key of a mapping.
type field struct {
	key    string
	decode func(path string, v *yaml.Node)
}

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	e := FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

var syntaxLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax records a parser error, keeping the line yaml.v3 reports.
func (d *decoder) syntax(err error) {
	msg := err.Error()
	if m := syntaxLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.errs = append(d.errs, FieldError{Line: line, Msg: m[2]})
		return
	}
	d.errs = append(d.errs, FieldError{Msg: strings.TrimPrefix(msg, "yaml: ")})
}

func (d *decoder) document(data []byte, f *File) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntax(err)
		}
		return
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		d.fail("", &extra, "only one YAML document is allowed")
		return
	case !errors.Is(err, io.EOF):
		d.syntax(err)
		return
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		d.fail("", &doc, "expected one YAML document")
		return
	}
	d.root(doc.Content[0], f)
}

func (d *decoder) root(n *yaml.Node, f *File) {
	d.refs.poolLine = map[string]int{}
	d.mapping("", n, []field{
		{"hostname", func(p string, v *yaml.Node) {
			if d.str(p, v, &f.HostName) && f.HostName == "" {
				d.fail(p, v, "must not be empty")
			}
		}},
		{"listen", func(p string, v *yaml.Node) { d.listen(p, v, f) }},
		{"log", func(p string, v *yaml.Node) { d.log(p, v, &f.Log) }},
		{"admin", func(p string, v *yaml.Node) { d.admin(p, v, &f.Admin) }},
		{"control", func(p string, v *yaml.Node) { d.channel(p, v, &f.Channel) }},
		{"limits", func(p string, v *yaml.Node) { d.limits(p, v, f) }},
		{"peers", func(p string, v *yaml.Node) { d.peers(p, v, f) }},
		{"default_peer", func(p string, v *yaml.Node) {
			d.peerPolicy(p, v, &f.DefaultPeer, false)
		}},
		{"store", func(p string, v *yaml.Node) { d.store(p, v, &f.Store) }},
		{"auth", func(p string, v *yaml.Node) { d.auth(p, v, &f.Auth) }},
		{"tun", func(p string, v *yaml.Node) { d.tun(p, v, &f.TUN) }},
		{"ppp", func(p string, v *yaml.Node) { d.pppPolicy(p, v, &f.PPP) }},
		{"pools", func(p string, v *yaml.Node) { d.pools(p, v, f) }},
		{"metrics", func(p string, v *yaml.Node) { d.metrics(p, v, &f.Metrics) }},
		{"radius", func(p string, v *yaml.Node) { d.radius(p, v, &f.RADIUS) }},
		{"pseudowires", func(p string, v *yaml.Node) { d.pseudowires(p, v, f) }},
		{"static_tunnels", func(p string, v *yaml.Node) { d.staticTunnels(p, v, f) }},
		{"lac", func(p string, v *yaml.Node) { d.lac(p, v, &f.LAC) }},
		{"datapath", func(p string, v *yaml.Node) { d.datapath(p, v, &f.Datapath) }},
		{"runtime", func(p string, v *yaml.Node) { d.runtime(p, v, &f.Runtime) }},
	})
	d.crossCheck(f)
	d.lacCrossCheck(f)
}

func (d *decoder) listen(path string, n *yaml.Node, f *File) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	var out []string
	seen := map[string]bool{}
	ok := d.sequence(path, n, func(p string, item *yaml.Node) {
		var s string
		if !d.str(p, item, &s) {
			return
		}
		if msg := checkHostPort(s); msg != "" {
			d.fail(p, item, "%s", msg)
			return
		}
		if seen[s] {
			d.fail(p, item, "duplicate address %q", s)
			return
		}
		seen[s] = true
		out = append(out, s)
	})
	if ok && len(n.Content) == 0 {
		d.fail(path, n, "at least one address is required")
	}
	if ok {
		f.Listen = out
	}
}

// checkHostPort accepts an IP literal (or nothing, meaning every address)
// and a numeric port; names are refused because the daemon binds before
// any resolver is trustworthy.
func checkHostPort(s string) string {
	if rest, ok := strings.CutPrefix(s, "ip:"); ok {
		// L2TPv3 over IP (protocol 115, RFC 3931 §4.1.1): no port.
		if _, err := netip.ParseAddr(strings.Trim(rest, "[]")); err != nil {
			return fmt.Sprintf("invalid address %q: want ip: and an IP address, such as \"ip:192.0.2.1\"", s)
		}
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("invalid address %q: want host:port", s)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Sprintf("invalid address %q: host must be an IP address", s)
		}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("invalid address %q: port must be a number from 0 to 65535", s)
	}
	return ""
}

func (d *decoder) log(path string, n *yaml.Node, l *Log) {
	d.mapping(path, n, []field{
		{"level", func(p string, v *yaml.Node) {
			if d.str(p, v, &l.Level) && !oneOf(l.Level, "debug", "info", "warn", "error") {
				d.fail(p, v, "invalid level %q (want debug, info, warn or error)", l.Level)
			}
		}},
		{"format", func(p string, v *yaml.Node) {
			if d.str(p, v, &l.Format) && !oneOf(l.Format, "console", "json") {
				d.fail(p, v, "invalid format %q (want console or json)", l.Format)
			}
		}},
	})
}

func (d *decoder) metrics(path string, n *yaml.Node, m *Metrics) {
	d.mapping(path, n, []field{
		{"listen", func(p string, v *yaml.Node) {
			if !d.str(p, v, &m.Listen) || m.Listen == "" {
				return
			}
			if _, err := netip.ParseAddrPort(m.Listen); err != nil {
				d.fail(p, v, "invalid address %q: want IP:port such as \"127.0.0.1:9701\"", m.Listen)
			}
		}},
		{"pprof", func(p string, v *yaml.Node) { d.boolean(p, v, &m.Pprof) }},
	})
	if m.Pprof && m.Listen == "" {
		d.fail(path, n, "pprof needs listen")
	}
}

func (d *decoder) runtime(path string, n *yaml.Node, r *Runtime) {
	d.mapping(path, n, []field{
		{"gc_percent", func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, -1, 10000); ok {
				g := int(x)
				r.GCPercent = &g
			}
		}},
		{"memory_limit", func(p string, v *yaml.Node) {
			if x, ok := d.size(p, v); ok {
				r.MemoryLimit = x
			}
		}},
	})
}

// size reads a byte count: an integer, or a number with a unit of KiB,
// MiB, GiB or TiB ("1536MiB", "2GiB").
func (d *decoder) size(path string, n *yaml.Node) (int64, bool) {
	s, ok := d.scalar(path, n, "a size")
	if !ok {
		return 0, false
	}
	v, mult := s.Value, int64(1)
	for i, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if strings.HasSuffix(v, u) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u)), int64(1)<<(10*(i+1))
			break
		}
	}
	x, err := strconv.ParseInt(v, 10, 64)
	if err != nil || x <= 0 || x > math.MaxInt64/mult {
		d.fail(path, s, "invalid size %q (write it like \"2GiB\", \"512MiB\" or a number of bytes)", s.Value)
		return 0, false
	}
	return x * mult, true
}

func (d *decoder) admin(path string, n *yaml.Node, a *Admin) {
	d.mapping(path, n, []field{
		{"socket", func(p string, v *yaml.Node) {
			if d.str(p, v, &a.Socket) && a.Socket == "" {
				d.fail(p, v, "must not be empty")
			}
		}},
		{"mode", func(p string, v *yaml.Node) {
			var s string
			if !d.str(p, v, &s) {
				return
			}
			m, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O"), 8, 32)
			switch {
			case err != nil || m > 0o777:
				d.fail(p, v, "invalid mode %q: want octal permission bits such as \"0600\"", s)
			case m&0o600 != 0o600:
				d.fail(p, v, "mode %q must let the owner read and write", s)
			default:
				a.Mode = fs.FileMode(m)
			}
		}},
	})
}

func (d *decoder) channel(path string, n *yaml.Node, c *Channel) {
	var initialNode, capNode *yaml.Node
	d.mapping(path, n, []field{
		{"shards", func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, 1, 64); ok {
				c.Shards = int(x)
			}
		}},
		{"receive_window", func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, 1, math.MaxUint16); ok {
				c.ReceiveWindow = uint16(x)
			}
		}},
		{"hello_interval", func(p string, v *yaml.Node) { d.duration(p, v, &c.HelloInterval) }},
		{"session_setup_timeout", func(p string, v *yaml.Node) { d.duration(p, v, &c.SessionSetupTimeout) }},
		{"retransmit", func(p string, v *yaml.Node) {
			d.mapping(p, v, []field{
				{"initial", func(p string, v *yaml.Node) {
					if d.duration(p, v, &c.RetransmitInitial) {
						initialNode = v
					}
				}},
				{"cap", func(p string, v *yaml.Node) {
					if d.duration(p, v, &c.RetransmitCap) {
						capNode = v
					}
				}},
				{"max_retries", func(p string, v *yaml.Node) {
					if x, ok := d.integer(p, v, 1, 100); ok {
						c.MaxRetries = int(x)
					}
				}},
			})
		}},
	})
	if c.RetransmitCap < c.RetransmitInitial {
		at, where := capNode, join(path, "retransmit.cap")
		if at == nil {
			at, where = initialNode, join(path, "retransmit.initial")
		}
		d.fail(where, at, "retransmit cap %s is below the initial timeout %s", c.RetransmitCap, c.RetransmitInitial)
	}
}

func (d *decoder) limits(path string, n *yaml.Node, f *File) {
	lim := &f.Limits
	intField := func(key string, dst *int) field {
		return field{key, func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, 1, math.MaxInt32); ok {
				*dst = int(x)
			}
		}}
	}
	// The admission keys below take 0 for "no limit".
	countField := func(key string, dst *int) field {
		return field{key, func(p string, v *yaml.Node) {
			if x, ok := d.integer(p, v, 0, math.MaxInt32); ok {
				*dst = int(x)
			}
		}}
	}
	rateField := func(key string, dst *float64) field {
		return field{key, func(p string, v *yaml.Node) {
			s, ok := d.scalar(p, v, "a rate per second")
			if !ok {
				return
			}
			var x float64
			if s.Tag != "!!int" && s.Tag != "!!float" || s.Decode(&x) != nil {
				d.fail(p, s, "expected a rate per second, got %s", describe(s))
				return
			}
			if x < 0 || x > 1e6 || math.IsNaN(x) {
				d.fail(p, s, "must be from 0 (no limit) to 1000000 per second, got %s", s.Value)
				return
			}
			*dst = x
		}}
	}
	nodes := map[string]*yaml.Node{}
	seen := func(f field) field {
		return field{f.key, func(p string, v *yaml.Node) { nodes[f.key] = v; f.decode(p, v) }}
	}
	d.mapping(path, n, []field{
		intField("max_tunnels", &lim.MaxTunnels),
		intField("max_sessions", &lim.MaxSessions),
		intField("max_sessions_per_tunnel", &lim.MaxSessionsPerTunnel),
		intField("max_half_open_per_peer", &lim.MaxHalfOpenPerPeer),
		intField("max_tunnels_per_peer", &lim.MaxTunnelsPerPeer),
		countField("max_sessions_per_peer", &lim.MaxSessionsPerPeer),
		countField("max_sessions_in_setup", &lim.MaxSessionsInSetup),
		countField("max_sessions_in_setup_per_peer", &lim.MaxSessionsInSetupPerPeer),
		seen(rateField("sccrq_rate", &lim.SCCRQRate)),
		seen(countField("sccrq_burst", &lim.SCCRQBurst)),
		seen(rateField("sccrq_rate_per_peer", &lim.SCCRQRatePerPeer)),
		seen(countField("sccrq_burst_per_peer", &lim.SCCRQBurstPerPeer)),
		seen(rateField("icrq_rate", &lim.ICRQRate)),
		seen(countField("icrq_burst", &lim.ICRQBurst)),
		seen(rateField("icrq_rate_per_peer", &lim.ICRQRatePerPeer)),
		seen(countField("icrq_burst_per_peer", &lim.ICRQBurstPerPeer)),
		intField("sessions_per_user", &lim.SessionsPerUser),
	})
	// A burst below one token would refuse everything a rate allows.
	for _, b := range []struct {
		rate, burst string
		r           float64
		n           int
	}{
		{"sccrq_rate", "sccrq_burst", lim.SCCRQRate, lim.SCCRQBurst},
		{"sccrq_rate_per_peer", "sccrq_burst_per_peer", lim.SCCRQRatePerPeer, lim.SCCRQBurstPerPeer},
		{"icrq_rate", "icrq_burst", lim.ICRQRate, lim.ICRQBurst},
		{"icrq_rate_per_peer", "icrq_burst_per_peer", lim.ICRQRatePerPeer, lim.ICRQBurstPerPeer},
	} {
		if b.r > 0 && b.n < 1 {
			at := nodes[b.burst]
			if at == nil {
				at = nodes[b.rate]
			}
			d.fail(join(path, b.burst), at, "must be at least 1 when %s is set", b.rate)
		}
	}
}

func (d *decoder) peers(path string, n *yaml.Node, f *File) {
	firstLine := map[string]int{}
	d.sequence(path, n, func(p string, item *yaml.Node) {
		var peer Peer
		before := len(d.errs)
		nameNode := d.peerPolicy(p, item, &peer, true)
		if resolve(item).Kind != yaml.MappingNode {
			return
		}
		switch {
		case nameNode == nil:
			d.fail(join(p, "name"), item, "required")
		case peer.Name == "":
			// Reported by peerPolicy.
		case firstLine[peer.Name] != 0:
			d.fail(join(p, "name"), nameNode, "duplicate peer name %q (first used on line %d)", peer.Name, firstLine[peer.Name])
		default:
			firstLine[peer.Name] = nameNode.Line
		}
		// A rule with nothing to match on would match every peer. When a
		// bad host_name or prefix explains the gap, that was reported.
		if peer.HostName == "" && len(peer.Addresses) == 0 && len(d.errs) == before {
			d.fail(p, item, "needs host_name or addresses to match tunnels on")
		}
		f.Peers = append(f.Peers, peer)
	})
}

// peerPolicy decodes a peer; matching keys are allowed only in the peers
// list, never in default_peer. It returns the name's node when present.
func (d *decoder) peerPolicy(path string, n *yaml.Node, peer *Peer, matching bool) (nameNode *yaml.Node) {
	fields := []field{
		{"secret", func(p string, v *yaml.Node) {
			// An empty secret in a peer rule would silently turn tunnel
			// authentication off; default_peer uses "" for "none".
			if d.str(p, v, &peer.Secret) && matching && peer.Secret == "" {
				d.fail(p, v, "must not be empty (leave the key out for no tunnel authentication)")
			}
		}},
		{"hide_avps", func(p string, v *yaml.Node) { d.boolean(p, v, &peer.HideAVPs) }},
		{"reject", func(p string, v *yaml.Node) { d.boolean(p, v, &peer.Reject) }},
		{"renegotiate", func(p string, v *yaml.Node) {
			if d.str(p, v, &peer.Renegotiate) && !oneOf(peer.Renegotiate, renegotiatePolicies...) {
				d.fail(p, v, "invalid policy %q (want never, on-mismatch or always)", peer.Renegotiate)
			}
		}},
		{"pool", func(p string, v *yaml.Node) {
			if d.str(p, v, &peer.Pool) {
				d.refs.poolRefs = append(d.refs.poolRefs, poolRef{p, resolve(v)})
			}
		}},
	}
	if matching {
		fields = append(fields,
			field{"name", func(p string, v *yaml.Node) {
				nameNode = v
				if d.str(p, v, &peer.Name) && peer.Name == "" {
					d.fail(p, v, "must not be empty")
				}
			}},
			field{"host_name", func(p string, v *yaml.Node) {
				if d.str(p, v, &peer.HostName) && peer.HostName == "" {
					d.fail(p, v, "must not be empty")
				}
			}},
			field{"addresses", func(p string, v *yaml.Node) {
				d.sequence(p, v, func(p string, item *yaml.Node) {
					var s string
					if !d.str(p, item, &s) {
						return
					}
					pfx, msg := parsePrefix(s)
					if msg != "" {
						d.fail(p, item, "%s", msg)
						return
					}
					peer.Addresses = append(peer.Addresses, pfx)
				})
			}},
		)
	}
	d.mapping(path, n, fields)
	return nameNode
}

// parsePrefix accepts a CIDR prefix or a bare address, which matches that
// host alone.
func parsePrefix(s string) (netip.Prefix, string) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Sprintf("invalid prefix %q", s)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), ""
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Sprintf("invalid prefix %q", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Sprintf("prefix %q has host bits set (did you mean %q?)", s, m.String())
	}
	return p, ""
}

func (d *decoder) store(path string, n *yaml.Node, s *Store) {
	var urlNode *yaml.Node
	d.mapping(path, n, []field{
		{"backend", func(p string, v *yaml.Node) {
			var b string
			if !d.str(p, v, &b) {
				return
			}
			switch b {
			case "memory", "postgres":
				s.Backend = b
			default:
				d.fail(p, v, "unknown backend %q (supported: memory, postgres)", b)
			}
		}},
		{"url", func(p string, v *yaml.Node) {
			urlNode = v
			if d.str(p, v, &s.URL) && s.URL == "" {
				d.fail(p, v, "must not be empty")
			}
		}},
		{"node_id", func(p string, v *yaml.Node) {
			if d.str(p, v, &s.NodeID) && s.NodeID == "" {
				d.fail(p, v, "must not be empty")
			}
		}},
		{"outage_policy", func(p string, v *yaml.Node) {
			var o string
			if !d.str(p, v, &o) {
				return
			}
			switch o {
			case "admit", "refuse":
				s.OutagePolicy = o
			default:
				d.fail(p, v, "unknown outage policy %q (supported: admit, refuse)", o)
			}
		}},
	})
	switch {
	case s.Backend == "postgres" && s.URL == "" && urlNode == nil:
		d.fail(join(path, "url"), n, "required with backend postgres")
	case s.Backend != "postgres" && urlNode != nil:
		d.fail(join(path, "url"), urlNode, "only used with backend postgres")
	}
}

func (d *decoder) auth(path string, n *yaml.Node, a *Auth) {
	d.mapping(path, n, []field{
		{"local_users", func(p string, v *yaml.Node) {
			firstLine := map[string]int{}
			d.sequence(p, v, func(p string, item *yaml.Node) {
				var u User
				var nameNode, passNode *yaml.Node
				d.mapping(p, item, []field{
					{"name", func(p string, v *yaml.Node) {
						nameNode = v
						if d.str(p, v, &u.Name) && u.Name == "" {
							d.fail(p, v, "must not be empty")
						}
					}},
					{"password", func(p string, v *yaml.Node) {
						passNode = v
						if d.str(p, v, &u.Password) && u.Password == "" {
							d.fail(p, v, "must not be empty")
						}
					}},
				})
				if resolve(item).Kind != yaml.MappingNode {
					return
				}
				if nameNode == nil {
					d.fail(join(p, "name"), item, "required")
				} else if u.Name != "" {
					if l := firstLine[u.Name]; l != 0 {
						d.fail(join(p, "name"), nameNode, "duplicate user %q (first used on line %d)", u.Name, l)
					} else {
						firstLine[u.Name] = nameNode.Line
					}
				}
				if passNode == nil {
					d.fail(join(p, "password"), item, "required")
				}
				a.LocalUsers = append(a.LocalUsers, u)
			})
		}},
	})
}

// mapping checks n is a mapping and hands each known key's value to its
// field; unknown and repeated keys are errors. A null value (a key with
// nothing after it) leaves every default in place.
func (d *decoder) mapping(path string, n *yaml.Node, fields []field) {
	n = resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "expected a mapping, got %s", describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		p := join(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k, "keys must be plain strings")
			continue
		}
		if line, dup := seen[k.Value]; dup {
			d.fail(p, k, "key %q repeated (first on line %d)", k.Value, line)
			continue
		}
		seen[k.Value] = k.Line
		known := false
		for _, f := range fields {
			if f.key == k.Value {
				f.decode(p, v)
				known = true
				break
			}
		}
		if !known {
			d.fail(p, k, "unknown key %q", k.Value)
		}
	}
}

// sequence calls each for every item of a list; it reports false when n
// is not a list. A null value is an empty list.
func (d *decoder) sequence(path string, n *yaml.Node, each func(path string, item *yaml.Node)) bool {
	n = resolve(n)
	if isNull(n) {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n, "expected a list, got %s", describe(n))
		return false
	}
	for i, item := range n.Content {
		each(fmt.Sprintf("%s[%d]", path, i), item)
	}
	return true
}

// scalar returns n as a scalar, reporting missing values and collections.
func (d *decoder) scalar(path string, n *yaml.Node, want string) (*yaml.Node, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "expected %s, got %s", want, describe(n))
		return nil, false
	}
	if isNull(n) {
		d.fail(path, n, "missing value (expected %s)", want)
		return nil, false
	}
	return n, true
}

// str takes any scalar's text, so hostname: 1701 means "1701".
func (d *decoder) str(path string, n *yaml.Node, dst *string) bool {
	s, ok := d.scalar(path, n, "a string")
	if ok {
		*dst = s.Value
	}
	return ok
}

func (d *decoder) integer(path string, n *yaml.Node, lo, hi int64) (int64, bool) {
	s, ok := d.scalar(path, n, "an integer")
	if !ok {
		return 0, false
	}
	var x int64
	if s.Tag != "!!int" || s.Decode(&x) != nil {
		d.fail(path, s, "expected an integer, got %s", describe(s))
		return 0, false
	}
	if x < lo || x > hi {
		d.fail(path, s, "must be from %d to %d, got %d", lo, hi, x)
		return 0, false
	}
	return x, true
}

func (d *decoder) boolean(path string, n *yaml.Node, dst *bool) bool {
	s, ok := d.scalar(path, n, "true or false")
	if !ok {
		return false
	}
	if s.Tag != "!!bool" || s.Decode(dst) != nil {
		d.fail(path, s, "expected true or false, got %s", describe(s))
		return false
	}
	return true
}

func (d *decoder) duration(path string, n *yaml.Node, dst *time.Duration) bool {
	s, ok := d.scalar(path, n, "a duration")
	if !ok {
		return false
	}
	if s.Tag == "!!int" || s.Tag == "!!float" {
		d.fail(path, s, "duration %s needs a unit, such as \"%ss\"", s.Value, s.Value)
		return false
	}
	x, err := time.ParseDuration(s.Value)
	if err != nil {
		d.fail(path, s, "invalid duration %q (write it like \"60s\" or \"1m30s\")", s.Value)
		return false
	}
	if x <= 0 {
		d.fail(path, s, "duration must be positive, got %s", s.Value)
		return false
	}
	*dst = x
	return true
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func oneOf(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}
