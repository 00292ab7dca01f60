package config

import (
	"net/netip"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/l2tpd/l2tpd/control"
)

// radius decodes the radius section:
//
//	radius:
//	  nas_identifier: lns1
//	  nas_ip_address: 192.0.2.1
//	  timeout: 3s
//	  retries: 2
//	  dead_time: 30s
//	  interim_interval: 0s
//	  auth_servers: [{address: "192.0.2.10:1812", secret: s, priority: 0}]
//	  acct_servers: [{address: "192.0.2.10:1813", secret: s}]
//	  dae:
//	    listen: "0.0.0.0:3799"
//	    clients: [{address: 192.0.2.10, secret: s}]
func (d *decoder) radius(path string, n *yaml.Node, r *control.RADIUS) {
	d.mapping(path, n, []field{
		{"nas_identifier", func(p string, v *yaml.Node) { d.str(p, v, &r.NASIdentifier) }},
		{"nas_ip_address", func(p string, v *yaml.Node) {
			if a, ok := d.ipAddr(p, v); ok {
				r.NASIPAddress = a
			}
		}},
		{"timeout", func(p string, v *yaml.Node) {
			if d.duration(p, v, &r.Timeout) && r.Timeout <= 0 {
				d.fail(p, v, "must be positive")
			}
		}},
		{"retries", func(p string, v *yaml.Node) {
			if n, ok := d.integer(p, v, 0, 10); ok {
				r.Retries = int(n)
			}
		}},
		{"dead_time", func(p string, v *yaml.Node) { d.duration(p, v, &r.DeadTime) }},
		{"interim_interval", func(p string, v *yaml.Node) {
			// 0s (none) is allowed here, unlike other durations.
			if n := resolve(v); n.Kind == yaml.ScalarNode && (n.Value == "0s" || n.Value == "0") {
				r.InterimInterval = 0
				return
			}
			if d.duration(p, v, &r.InterimInterval) && r.InterimInterval < 60e9 {
				d.fail(p, v, "must be 0s (none) or at least 60s (RFC 2869 §5.16)")
			}
		}},
		{"auth_servers", func(p string, v *yaml.Node) { r.Auth = d.radiusServers(p, v) }},
		{"acct_servers", func(p string, v *yaml.Node) { r.Acct = d.radiusServers(p, v) }},
		{"dae", func(p string, v *yaml.Node) {
			d.mapping(p, v, []field{
				{"listen", func(p string, v *yaml.Node) {
					if d.str(p, v, &r.DAEListen) {
						if _, err := netip.ParseAddrPort(r.DAEListen); err != nil {
							d.fail(p, v, "invalid address %q: want IP:port such as \"0.0.0.0:3799\"", r.DAEListen)
						}
					}
				}},
				{"clients", func(p string, v *yaml.Node) {
					d.sequence(p, v, func(p string, item *yaml.Node) {
						var c control.DAEClient
						var have bool
						d.mapping(p, item, []field{
							{"address", func(p string, v *yaml.Node) { c.Addr, have = d.ipAddr(p, v) }},
							{"secret", func(p string, v *yaml.Node) { d.secret(p, v, &c.Secret) }},
						})
						if resolve(item).Kind == yaml.MappingNode && (!have || c.Secret == "") {
							d.fail(p, item, "needs address and secret")
						}
						r.DAEClients = append(r.DAEClients, c)
					})
				}},
			})
		}},
	})
}

func (d *decoder) radiusServers(path string, n *yaml.Node) []control.RADIUSServer {
	var out []control.RADIUSServer
	d.sequence(path, n, func(p string, item *yaml.Node) {
		var s control.RADIUSServer
		var have bool
		d.mapping(p, item, []field{
			{"address", func(p string, v *yaml.Node) {
				var a string
				if !d.str(p, v, &a) {
					return
				}
				ap, err := netip.ParseAddrPort(a)
				if err != nil {
					d.fail(p, v, "invalid address %q: want IP:port such as \"192.0.2.10:1812\"", a)
					return
				}
				s.Addr, have = ap, true
			}},
			{"secret", func(p string, v *yaml.Node) { d.secret(p, v, &s.Secret) }},
			{"priority", func(p string, v *yaml.Node) {
				if n, ok := d.integer(p, v, 0, 1000); ok {
					s.Priority = int(n)
				}
			}},
		})
		if resolve(item).Kind == yaml.MappingNode && (!have || s.Secret == "") {
			d.fail(p, item, "needs address and secret")
		}
		out = append(out, s)
	})
	return out
}

func cloneRADIUS(r control.RADIUS) control.RADIUS {
	r.Auth = slices.Clone(r.Auth)
	r.Acct = slices.Clone(r.Acct)
	r.DAEClients = slices.Clone(r.DAEClients)
	return r
}

// ipAddr decodes one IP address.
func (d *decoder) ipAddr(path string, n *yaml.Node) (netip.Addr, bool) {
	var s string
	if !d.str(path, n, &s) {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		d.fail(path, n, "invalid address %q", s)
		return netip.Addr{}, false
	}
	return a, true
}

// secret decodes a shared secret, which must not be empty.
func (d *decoder) secret(path string, n *yaml.Node, dst *string) {
	if d.str(path, n, dst) && *dst == "" {
		d.fail(path, n, "must not be empty")
	}
}
