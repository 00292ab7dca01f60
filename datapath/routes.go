package datapath

import (
	"errors"
	"fmt"
	"net/netip"
)

// Extra routes toward a session: prefixes behind the subscriber (a
// RADIUS Framed-Route, a delegated IPv6 prefix) share the LPM tables
// with the sessions' own addresses, so a packet goes to the longest
// match. The control plane owns them: it adds them once the session is
// installed, adds them again after each Install of that session (which
// makes a new entry) and removes them before Remove.

// ErrRouteOverlap is returned when a route meets one held by another
// session: the same prefix, one inside the other.
var ErrRouteOverlap = errors.New("datapath: route overlaps another session's")

// AddRoute routes p to the installed session key. It refuses a route
// that overlaps a route of another session; the session's own routes
// (its address, its other prefixes) may overlap.
func (e *Engine) AddRoute(key SessionKey, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("datapath: session %v: invalid route", key)
	}
	p = p.Masked()
	e.mu.Lock()
	defer e.mu.Unlock()
	ent := e.sessions.get(key)
	if ent == nil {
		return fmt.Errorf("datapath: session %v: not installed", key)
	}
	t := e.v6
	if p.Addr().Is4() {
		t = e.v4
	}
	if other, ok := t.overlap(p, key); ok {
		return fmt.Errorf("%w: %v meets %v of session %v", ErrRouteOverlap, p, other.p, other.key)
	}
	t.insert(p, ent)
	return nil
}

// RemoveRoute deletes p if it still routes to key.
func (e *Engine) RemoveRoute(key SessionKey, p netip.Prefix) {
	if !p.IsValid() {
		return
	}
	p = p.Masked()
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.v6
	if p.Addr().Is4() {
		t = e.v4
	}
	t.remove(p, key)
}

// Lookup is the session the longest route containing a leads to, as the
// forwarding path sees it.
func (e *Engine) Lookup(a netip.Addr) (SessionKey, bool) {
	var ent *entry
	if a = a.Unmap(); a.Is4() {
		b := a.As4()
		ent = e.v4.lookup(b[:])
	} else {
		b := a.As16()
		ent = e.v6.lookup(b[:])
	}
	if ent == nil {
		return SessionKey{}, false
	}
	return ent.s.Key, true
}

type routeHolder struct {
	p   netip.Prefix
	key SessionKey
}

// overlap finds a route of a session other than key that contains p or
// lies inside it. It runs on the control path, once per extra route:
// the routes containing p are one probe per prefix length in use; those
// inside it are probed one by one when a length has at most
// maxOverlapProbes of them under p, else the whole table is walked.
func (t *routeTable) overlap(p netip.Prefix, key SessionKey) (routeHolder, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	pk := prefixKey(p)
	width := 32
	if t.v6 {
		width = 128
	}
	for l := 0; l <= width; l++ {
		if t.refs[l] == 0 {
			continue
		}
		if l <= int(pk.bits) {
			if h, ok := t.holder(maskKey(pk.addr[:], l), key); ok {
				return h, true
			}
			continue
		}
		span := l - int(pk.bits)
		if span > maxOverlapSpan {
			return t.scan(p, key)
		}
		for i := uint64(0); i < 1<<span; i++ {
			k := pk
			k.bits = uint8(l)
			for j := 0; j < span; j++ {
				if i>>j&1 != 0 {
					pos := l - 1 - j
					k.addr[pos/8] |= 0x80 >> (pos % 8)
				}
			}
			if h, ok := t.holder(k, key); ok {
				return h, true
			}
		}
	}
	return routeHolder{}, false
}

// maxOverlapSpan bounds the probes per prefix length (2^span) before
// overlap walks the whole table instead.
const maxOverlapSpan = 12

// holder is the session of the route k when it is not key's (t.mu held).
func (t *routeTable) holder(k routeKey, key SessionKey) (routeHolder, bool) {
	sh := &t.shards[k.shard()]
	sh.mu.RLock()
	e := sh.m[k]
	sh.mu.RUnlock()
	if e == nil || e.s.Key == key {
		return routeHolder{}, false
	}
	return routeHolder{p: k.prefix(t.v6), key: e.s.Key}, true
}

// scan walks every route (t.mu held).
func (t *routeTable) scan(p netip.Prefix, key SessionKey) (routeHolder, bool) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for k, e := range sh.m {
			if e.s.Key == key {
				continue
			}
			if q := k.prefix(t.v6); q.Overlaps(p) {
				sh.mu.RUnlock()
				return routeHolder{p: q, key: e.s.Key}, true
			}
		}
		sh.mu.RUnlock()
	}
	return routeHolder{}, false
}

func (k routeKey) prefix(v6 bool) netip.Prefix {
	if v6 {
		return netip.PrefixFrom(netip.AddrFrom16(k.addr), int(k.bits))
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte(k.addr[:4])), int(k.bits))
}

// routesTo reports whether the longest route for src leads to ent's
// session: a packet from a prefix routed behind the subscriber is not
// spoofed.
func (t *routeTable) routesTo(src []byte, ent *entry) bool {
	r := t.lookup(src)
	return r != nil && r.s.Key == ent.s.Key
}

// RouteConflict reports, as AddRoute would, whether p meets a route of
// a session other than key; nil when p is free for key.
func (e *Engine) RouteConflict(key SessionKey, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("datapath: session %v: invalid route", key)
	}
	p = p.Masked()
	t := e.v6
	if p.Addr().Is4() {
		t = e.v4
	}
	if other, ok := t.overlap(p, key); ok {
		return fmt.Errorf("%w: %v meets %v of session %v", ErrRouteOverlap, p, other.p, other.key)
	}
	return nil
}
