package control

import (
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/ppp"
)

// RADIUS reply attributes that shape a subscriber's network side: name
// servers offered in IPCP, a fixed IPv6 prefix for the router
// advertisements, and prefixes routed behind the subscriber
// (Framed-Route, Framed-IPv6-Route, Delegated-IPv6-Prefix).

// router is the part of the datapath that routes extra prefixes to a
// session; a datapath without it refuses every such route.
type router interface {
	AddRoute(datapath.SessionKey, netip.Prefix) error
	RemoveRoute(datapath.SessionKey, netip.Prefix)
	RouteConflict(datapath.SessionKey, netip.Prefix) error
}

// netAttrs is what an Access-Accept asked for, kept until the network
// layer it concerns comes up.
type netAttrs struct {
	dns1, dns2 netip.Addr
	framed6    netip.Prefix // Framed-IPv6-Prefix
	delegated  netip.Prefix // Delegated-IPv6-Prefix
	routes     []aaa.Route  // Framed-Route and Framed-IPv6-Route
}

// noAttrs stands for a subscriber whose Access-Accept had no network
// attributes; it is never written.
var noAttrs netAttrs

// netAttrs returns the subscriber's network attributes, read only.
func (s *subscriber) netAttrs() *netAttrs {
	if s.attrs == nil {
		return &noAttrs
	}
	return s.attrs
}

// acceptAttributes records an Access-Accept's network attributes and
// puts its name servers into the answer PPP gets, before IPCP starts.
// Framed-IP-Netmask is not applied: the link is point to point and the
// subscriber's address a /32 whatever the netmask says.
func (sh *shard) acceptAttributes(sub *subscriber, a *aaa.Attributes, res *ppp.AuthResult) {
	n := netAttrs{dns1: a.DNS1, dns2: a.DNS2, routes: slices.Clone(a.FramedRoutes)}
	if len(a.FramedIPv6Prefix) > 0 {
		n.framed6 = a.FramedIPv6Prefix[0].Masked()
	}
	if len(a.DelegatedIPv6Prefix) > 0 {
		n.delegated = a.DelegatedIPv6Prefix[0].Masked()
	}
	sub.attrs = nil
	if n.dns1.IsValid() || n.dns2.IsValid() || n.framed6.IsValid() || n.delegated.IsValid() || len(n.routes) > 0 {
		sub.attrs = &n
	}
	res.DNS1, res.DNS2 = n.dns1, n.dns2
	if a.BadRoutes > 0 {
		sh.counters["radius_routes_refused"] += uint64(a.BadRoutes)
		sh.srv.log.Warn("malformed Framed-Route refused", sh.subFields(sub, zap.Int("routes", a.BadRoutes))...)
	}
}

func (sh *shard) subFields(sub *subscriber, f ...zap.Field) []zap.Field {
	return append([]zap.Field{zap.Uint32("tunnel_id", sub.e.t.ID()), zap.Uint32("session_id", sub.sess.ID), zap.String("user", sub.user)}, f...)
}

// framedIPv6 gives the subscriber RADIUS's Framed-IPv6-Prefix (RFC 3162
// §2.3): reserved in its pool when it is one of the pool's prefixes,
// used as it is when outside the pool unless it meets another
// session's routes, refused when it lies inside the pool without being
// one of its prefixes (it would cover others').
func (sh *shard) framedIPv6(sub *subscriber) {
	p := sub.netAttrs().framed6
	if sub.ipv6.IsValid() || !p.IsValid() {
		return
	}
	refuse := func(err error) {
		sh.counters["radius_ipv6_prefix_refused"]++
		sh.srv.log.Warn("Framed-IPv6-Prefix refused", sh.subFields(sub, zap.Stringer("prefix", p), zap.Error(err))...)
	}
	if sub.pool != nil && sub.pool.ContainsIPv6(p) {
		if err := sub.pool.ReserveIPv6(p, sub.owner()); err != nil {
			refuse(err)
			return
		}
		sub.ipv6 = p
		return
	}
	if rt, ok := sh.srv.dp.(router); ok {
		if err := rt.RouteConflict(sub.key, p); err != nil {
			refuse(err)
			return
		}
	}
	sub.ipv6 = p
	sub.ipv6Kernel = sh.srv.sessionRoute(true, p)
}

// addRoutes routes the subscriber's RADIUS prefixes of one family to
// its session once that family's network layer is up. A route that is
// malformed for the session (a gateway other than the subscriber) or
// overlaps another session's is refused, logged and counted; the
// session stays up.
func (sh *shard) addRoutes(sub *subscriber, v6 bool) {
	var want []netip.Prefix
	for _, r := range sub.netAttrs().routes {
		if r.Prefix.Addr().Is6() != v6 {
			continue
		}
		if !sh.gatewayOK(sub, r) {
			sh.refuseRoute(sub, r.Prefix, "gateway is not the subscriber")
			continue
		}
		want = append(want, r.Prefix.Masked())
	}
	if v6 && sub.netAttrs().delegated.IsValid() {
		want = append(want, sub.netAttrs().delegated)
	}
	rt, _ := sh.srv.dp.(router)
	for _, p := range want {
		if slices.ContainsFunc(sub.routes, func(r sessionRoute) bool { return r.p == p }) {
			continue
		}
		if rt == nil {
			sh.refuseRoute(sub, p, "datapath has no extra routes")
			continue
		}
		if err := rt.AddRoute(sub.key, p); err != nil {
			sh.refuseRoute(sub, p, err.Error())
			continue
		}
		sub.routes = append(sub.routes, sessionRoute{p: p, kernel: sh.srv.sessionRoute(true, p)})
		sh.counters["radius_routes_installed"]++
	}
}

func (sh *shard) refuseRoute(sub *subscriber, p netip.Prefix, why string) {
	sh.counters["radius_routes_refused"]++
	sh.srv.log.Warn("route refused", sh.subFields(sub, zap.Stringer("prefix", p), zap.String("reason", why))...)
}

// gatewayOK: the gateway of a route toward a PPP subscriber can only
// be the subscriber; unspecified (0.0.0.0 or ::) means it (RFC 2865
// §5.22, RFC 3162 §2.5).
func (sh *shard) gatewayOK(sub *subscriber, r aaa.Route) bool {
	g := r.Gateway
	switch {
	case !g.IsValid() || g.IsUnspecified():
		return true
	case g.Is4():
		return g == sub.ipv4
	default:
		return g.IsLinkLocalUnicast() || sub.ipv6.IsValid() && sub.ipv6.Contains(g)
	}
}

// removeRoutes takes the subscriber's extra routes of one family out of
// the datapath and the kernel.
func (sh *shard) removeRoutes(sub *subscriber, v6 bool) {
	rt, _ := sh.srv.dp.(router)
	kept := sub.routes[:0]
	for _, r := range sub.routes {
		if r.p.Addr().Is6() != v6 {
			kept = append(kept, r)
			continue
		}
		if rt != nil {
			rt.RemoveRoute(sub.key, r.p)
		}
		if r.kernel {
			sh.srv.sessionRoute(false, r.p)
		}
	}
	clear(sub.routes[len(kept):])
	sub.routes = kept
}

// releaseNetAttrs undoes what the attributes installed, at teardown.
func (sh *shard) releaseNetAttrs(sub *subscriber) {
	sh.removeRoutes(sub, false)
	sh.removeRoutes(sub, true)
	if sub.ipv6Kernel {
		sh.srv.sessionRoute(false, sub.ipv6)
		sub.ipv6Kernel = false
	}
}

// reinstallRoutes points the extra routes at the session's new datapath
// entry after an Install.
func (sh *shard) reinstallRoutes(sub *subscriber) {
	rt, _ := sh.srv.dp.(router)
	if rt == nil {
		return
	}
	for _, r := range sub.routes {
		if err := rt.AddRoute(sub.key, r.p); err != nil {
			sh.counters["datapath_install_errors"]++
		}
	}
}

// delegatedPrefix is the Delegated-IPv6-Prefix routed to the subscriber
// (zero when none is).
func (sub *subscriber) delegatedPrefix() netip.Prefix {
	d := sub.netAttrs().delegated
	if d.IsValid() && slices.ContainsFunc(sub.routes, func(r sessionRoute) bool { return r.p == d }) {
		return d
	}
	return netip.Prefix{}
}

// attrInfo adds what the attributes installed to l2tpctl's view.
func (sub *subscriber) attrInfo(si *SessionInfo) {
	d := sub.delegatedPrefix()
	if d.IsValid() {
		si.DelegatedIPv6Prefix = d.String()
	}
	for _, r := range sub.routes {
		if r.p != d {
			si.Routes = append(si.Routes, r.p.String())
		}
	}
	for _, a := range []netip.Addr{sub.netAttrs().dns1, sub.netAttrs().dns2} {
		if a.IsValid() {
			si.DNS = append(si.DNS, a.String())
		}
	}
}

// sessionRoute is an extra route installed for a subscriber; kernel
// says a kernel route toward the TUN was asked for too.
type sessionRoute struct {
	p      netip.Prefix
	kernel bool
}
