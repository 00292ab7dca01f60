package config

import (
	"net/netip"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/l2tpd/l2tpd/control"
)

// lac decodes the lac section (the LAC role):
//
//	lac:
//	  listen: ["0.0.0.0:0"]
//	  auth: [chap, pap]
//	  pppoe: [{interface: eth1, ac_name: bras1, service_names: [internet], max_sessions: 0, max_sessions_per_mac: 0}]
//	  lns:
//	    - {name: a, address: "192.0.2.1:1701", secret: s, version: auto, hide_avps: false, preference: 1}
//	  realms: [{realm: isp.example, lns: [a]}, {realm: "*", lns: [a]}]
//	  radius_tunnels: false
func (d *decoder) lac(path string, n *yaml.Node, l *control.LAC) {
	names := map[string]bool{}
	var realmNodes []*yaml.Node
	var realmPaths []string
	d.mapping(path, n, []field{
		{"listen", func(p string, v *yaml.Node) {
			d.sequence(p, v, func(p string, item *yaml.Node) {
				var s string
				if !d.str(p, item, &s) {
					return
				}
				if msg := checkHostPort(s); msg != "" {
					d.fail(p, item, "%s", msg)
					return
				}
				l.Listen = append(l.Listen, s)
			})
		}},
		{"auth", func(p string, v *yaml.Node) {
			d.sequence(p, v, func(p string, item *yaml.Node) {
				var s string
				if !d.str(p, item, &s) {
					return
				}
				if s != "chap" && s != "pap" {
					d.fail(p, item, "unknown protocol %q: want chap or pap (the LNS receives them as proxy authentication)", s)
					return
				}
				l.Auth = append(l.Auth, s)
			})
		}},
		{"pppoe", func(p string, v *yaml.Node) {
			seen := map[string]bool{}
			d.sequence(p, v, func(p string, item *yaml.Node) {
				var a control.PPPoEAccess
				d.mapping(p, item, []field{
					{"interface", func(p string, v *yaml.Node) {
						if d.str(p, v, &a.Interface) {
							if a.Interface == "" {
								d.fail(p, v, "must not be empty")
							} else if seen[a.Interface] {
								d.fail(p, v, "interface %q listed twice", a.Interface)
							}
							seen[a.Interface] = true
						}
					}},
					{"ac_name", func(p string, v *yaml.Node) { d.str(p, v, &a.ACName) }},
					{"max_sessions", func(p string, v *yaml.Node) {
						if n, ok := d.integer(p, v, 0, 0xfffe); ok {
							a.MaxSessions = int(n)
						}
					}},
					{"max_sessions_per_mac", func(p string, v *yaml.Node) {
						if n, ok := d.integer(p, v, 0, 0xfffe); ok {
							a.MaxSessionsPerMAC = int(n)
						}
					}},
					{"service_names", func(p string, v *yaml.Node) {
						d.sequence(p, v, func(p string, item *yaml.Node) {
							var s string
							if d.str(p, item, &s) {
								a.ServiceNames = append(a.ServiceNames, s)
							}
						})
					}},
				})
				if resolve(item).Kind == yaml.MappingNode && a.Interface == "" {
					d.fail(p, item, "needs interface")
				}
				l.PPPoE = append(l.PPPoE, a)
			})
		}},
		{"lns", func(p string, v *yaml.Node) {
			d.sequence(p, v, func(p string, item *yaml.Node) {
				x := control.LACPeer{Version: 2}
				var have bool
				d.mapping(p, item, []field{
					{"name", func(p string, v *yaml.Node) {
						if d.str(p, v, &x.Name) {
							if x.Name == "" {
								d.fail(p, v, "must not be empty")
							} else if names[x.Name] {
								d.fail(p, v, "LNS %q defined twice", x.Name)
							}
							names[x.Name] = true
						}
					}},
					{"address", func(p string, v *yaml.Node) {
						var s string
						if !d.str(p, v, &s) {
							return
						}
						ap, err := netip.ParseAddrPort(s)
						if err != nil {
							a, aerr := netip.ParseAddr(s)
							if aerr != nil {
								d.fail(p, v, "invalid address %q: want IP or IP:port such as \"192.0.2.1:1701\"", s)
								return
							}
							ap = netip.AddrPortFrom(a, 1701)
						}
						x.Address, have = ap, true
					}},
					{"secret", func(p string, v *yaml.Node) { d.secret(p, v, &x.Secret) }},
					{"version", func(p string, v *yaml.Node) {
						var s string
						if !d.str(p, v, &s) {
							return
						}
						switch s {
						case "2":
							x.Version = 2
						case "3":
							x.Version = 3
						case "auto":
							x.Version = 0
						default:
							d.fail(p, v, "version %q: want 2, 3 or auto", s)
						}
					}},
					{"hide_avps", func(p string, v *yaml.Node) { d.boolean(p, v, &x.HideAVPs) }},
					{"preference", func(p string, v *yaml.Node) {
						if n, ok := d.integer(p, v, 0, 1<<32-1); ok {
							x.Preference = uint32(n)
						}
					}},
				})
				if resolve(item).Kind == yaml.MappingNode && (!have || x.Name == "") {
					d.fail(p, item, "needs name and address")
				}
				l.LNS = append(l.LNS, x)
			})
		}},
		{"realms", func(p string, v *yaml.Node) {
			d.sequence(p, v, func(p string, item *yaml.Node) {
				var r control.LACRealm
				var have bool
				d.mapping(p, item, []field{
					{"realm", func(p string, v *yaml.Node) { have = d.str(p, v, &r.Realm) }},
					{"lns", func(p string, v *yaml.Node) {
						d.sequence(p, v, func(p string, item *yaml.Node) {
							var s string
							if d.str(p, item, &s) {
								r.LNS = append(r.LNS, s)
								realmNodes = append(realmNodes, item)
								realmPaths = append(realmPaths, p)
							}
						})
					}},
				})
				if resolve(item).Kind == yaml.MappingNode && (!have || len(r.LNS) == 0) {
					d.fail(p, item, "needs realm and lns")
				}
				l.Realms = append(l.Realms, r)
			})
		}},
		{"radius_tunnels", func(p string, v *yaml.Node) { d.boolean(p, v, &l.RADIUSTunnels) }},
	})
	for i, item := range realmNodes {
		if !names[resolve(item).Value] {
			d.fail(realmPaths[i], item, "no LNS named %q in lac.lns", resolve(item).Value)
		}
	}
	if len(l.PPPoE) > 0 && len(l.Realms) == 0 && !l.RADIUSTunnels {
		d.fail(path, n, "an access interface needs realms or radius_tunnels to choose LNSs")
	}
}

func cloneLAC(l control.LAC) control.LAC {
	l.Listen = slices.Clone(l.Listen)
	l.Auth = slices.Clone(l.Auth)
	l.PPPoE = slices.Clone(l.PPPoE)
	l.LNS = slices.Clone(l.LNS)
	l.Realms = slices.Clone(l.Realms)
	return l
}

// lacCrossCheck checks what the lac section needs from the others.
func (d *decoder) lacCrossCheck(f *File) {
	if f.LAC.RADIUSTunnels && len(f.RADIUS.Auth) == 0 {
		d.fail("lac.radius_tunnels", nil, "needs radius.auth_servers")
	}
}
