package pool

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
)

// Errors a lease or reservation can fail with; test with errors.Is.
var (
	ErrExhausted = errors.New("pool: exhausted")
	ErrDraining  = errors.New("pool: draining")
	ErrInUse     = errors.New("pool: address in use")
	ErrNotInPool = errors.New("pool: address not in pool")
	ErrNoIPv6    = errors.New("pool: no IPv6 prefix configured")
)

// MaxSize bounds the addresses of a pool's IPv4 ranges and the prefixes
// its IPv6 prefix is cut into: 2^24, a 2 MiB bitmap. A larger pool is
// almost certainly a typo in a range.
const MaxSize = 1 << 24

// DefaultIPv6Length is the length of each session's IPv6 prefix when New
// is given zero.
const DefaultIPv6Length = 64

// Range is an inclusive range of IPv4 addresses.
type Range struct {
	First, Last netip.Addr
}

func (r Range) String() string { return r.First.String() + "-" + r.Last.String() }

// Lease is one address or prefix handed out, for l2tpctl.
type Lease struct {
	Owner string
	// Prefix is the IPv4 address as a /32, or the IPv6 prefix.
	Prefix netip.Prefix
}

// Stats are a pool's occupancy. Size4 leaves out the .0 and .255
// addresses the pool never leases on its own.
type Stats struct {
	Size4, Used4 uint64
	Size6, Used6 uint64
	Draining     bool
}

// span is one IPv4 range placed in the pool's index space.
type span struct {
	first, last uint32
	base        uint64 // index of first
}

// Pool is one named pool. It is safe for concurrent use.
type Pool struct {
	name   string
	spans  []span // sorted by first
	v6     netip.Prefix
	v6Len  int
	skip4  uint64 // .0/.255 addresses marked taken at creation
	mu     sync.Mutex
	drain  bool
	bits4  bitmap
	bits6  bitmap
	owner4 map[uint32]string
	owner6 map[uint64]string
}

// New builds a pool from inclusive IPv4 ranges and an IPv6 prefix cut
// into prefixes of v6Len bits (DefaultIPv6Length when zero). Either part
// may be empty: no ranges, or the zero netip.Prefix.
func New(name string, v4 []Range, v6 netip.Prefix, v6Len int) (*Pool, error) {
	if name == "" {
		return nil, errors.New("pool: empty name")
	}
	p := &Pool{name: name, owner4: map[uint32]string{}, owner6: map[uint64]string{}}
	var size4 uint64
	for _, r := range v4 {
		if !r.First.Is4() || !r.Last.Is4() {
			return nil, fmt.Errorf("pool %s: range %s: not IPv4", name, r)
		}
		f, l := u32(r.First), u32(r.Last)
		if f > l {
			return nil, fmt.Errorf("pool %s: range %s: first address is after the last", name, r)
		}
		p.spans = append(p.spans, span{first: f, last: l})
	}
	slices.SortFunc(p.spans, func(a, b span) int { return cmp.Compare(a.first, b.first) })
	for i := range p.spans {
		s := &p.spans[i]
		if i > 0 && s.first <= p.spans[i-1].last {
			return nil, fmt.Errorf("pool %s: ranges %s and %s overlap", name, spanString(p.spans[i-1]), spanString(*s))
		}
		s.base = size4
		size4 += uint64(s.last-s.first) + 1
		if size4 > MaxSize {
			return nil, fmt.Errorf("pool %s: IPv4 ranges hold more than %d addresses", name, MaxSize)
		}
	}
	p.bits4 = newBitmap(size4)
	for _, s := range p.spans {
		if s.first == s.last {
			continue
		}
		// The first .0/.255 at or after s.first, then every 256.
		for a := uint64(s.first) &^ 0xff; a <= uint64(s.last); a += 256 {
			for _, x := range [2]uint64{a, a | 0xff} {
				if x >= uint64(s.first) && x <= uint64(s.last) {
					p.bits4.add(s.base + x - uint64(s.first))
					p.skip4++
				}
			}
		}
	}

	if v6.IsValid() {
		if v6Len == 0 {
			v6Len = DefaultIPv6Length
		}
		switch {
		case !v6.Addr().Is6() || v6.Addr().Is4In6():
			return nil, fmt.Errorf("pool %s: %s is not an IPv6 prefix", name, v6)
		case v6.Masked() != v6:
			return nil, fmt.Errorf("pool %s: prefix %s has host bits set", name, v6)
		case v6Len < v6.Bits() || v6Len > 128:
			return nil, fmt.Errorf("pool %s: IPv6 length %d must be from %d to 128", name, v6Len, v6.Bits())
		case v6Len-v6.Bits() > 24:
			return nil, fmt.Errorf("pool %s: %s cut into /%d holds more than %d prefixes (use a longer prefix or a shorter length)", name, v6, v6Len, MaxSize)
		}
		p.v6, p.v6Len = v6, v6Len
		p.bits6 = newBitmap(1 << (v6Len - v6.Bits()))
	}
	return p, nil
}

// Name is the pool's name.
func (p *Pool) Name() string { return p.name }

// IPv4Ranges returns the pool's ranges, sorted.
func (p *Pool) IPv4Ranges() []Range {
	out := make([]Range, len(p.spans))
	for i, s := range p.spans {
		out[i] = Range{addr4(s.first), addr4(s.last)}
	}
	return out
}

// IPv6 returns the pool's IPv6 prefix and the length of each lease.
func (p *Pool) IPv6() (netip.Prefix, int) { return p.v6, p.v6Len }

// LeaseIPv4 hands out a free address to owner (a session key, kept for
// l2tpctl). It fails with ErrDraining or ErrExhausted.
func (p *Pool) LeaseIPv4(owner string) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drain {
		return netip.Addr{}, ErrDraining
	}
	i, ok := p.bits4.take()
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: %s has no free IPv4 address", ErrExhausted, p.name)
	}
	a := p.addrAt(i)
	p.owner4[a] = owner
	return addr4(a), nil
}

// Reserve leases the given address to owner, as for a fixed address
// from RADIUS. Unlike LeaseIPv4 it accepts a .0 or .255 address. It fails
// with ErrNotInPool, ErrInUse or ErrDraining.
func (p *Pool) Reserve(a netip.Addr, owner string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.index4(a)
	if !ok {
		return fmt.Errorf("%w: %s is not in %s", ErrNotInPool, a, p.name)
	}
	if p.drain {
		return ErrDraining
	}
	if o, used := p.owner4[u32(a)]; used {
		return fmt.Errorf("%w: %s is leased to %s", ErrInUse, a, o)
	}
	p.bits4.add(i) // already set for a skipped .0/.255
	p.owner4[u32(a)] = owner
	return nil
}

// ReleaseIPv4 returns a leased or reserved address to the pool and
// reports whether it was leased. A draining pool still takes addresses
// back.
func (p *Pool) ReleaseIPv4(a netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.index4(a)
	if !ok {
		return false
	}
	if _, used := p.owner4[u32(a)]; !used {
		return false
	}
	delete(p.owner4, u32(a))
	if !p.skipped(a) {
		p.bits4.remove(i)
	}
	return true
}

// LeaseIPv6 hands out a free prefix of the pool's IPv6 length to owner.
// It fails with ErrNoIPv6, ErrDraining or ErrExhausted.
func (p *Pool) LeaseIPv6(owner string) (netip.Prefix, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.v6.IsValid() {
		return netip.Prefix{}, ErrNoIPv6
	}
	if p.drain {
		return netip.Prefix{}, ErrDraining
	}
	i, ok := p.bits6.take()
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%w: %s has no free IPv6 prefix", ErrExhausted, p.name)
	}
	p.owner6[i] = owner
	return p.prefixAt(i), nil
}

// ReleaseIPv6 returns a leased prefix and reports whether it was leased.
func (p *Pool) ReleaseIPv6(pfx netip.Prefix) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.index6(pfx)
	if !ok {
		return false
	}
	if _, used := p.owner6[i]; !used {
		return false
	}
	delete(p.owner6, i)
	p.bits6.remove(i)
	return true
}

// Drain stops new leases and reservations; existing leases stay until
// they are released.
func (p *Pool) Drain() {
	p.mu.Lock()
	p.drain = true
	p.mu.Unlock()
}

// Stats returns the pool's occupancy.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{
		Size4:    p.bits4.size - p.skip4,
		Used4:    uint64(len(p.owner4)),
		Size6:    p.bits6.size,
		Used6:    uint64(len(p.owner6)),
		Draining: p.drain,
	}
}

// Leases lists every lease, IPv4 first, each family in address order.
func (p *Pool) Leases() []Lease {
	p.mu.Lock()
	out := make([]Lease, 0, len(p.owner4)+len(p.owner6))
	for a, o := range p.owner4 {
		out = append(out, Lease{Owner: o, Prefix: netip.PrefixFrom(addr4(a), 32)})
	}
	for i, o := range p.owner6 {
		out = append(out, Lease{Owner: o, Prefix: p.prefixAt(i)})
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b Lease) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}

// Contains reports whether a is in one of the pool's IPv4 ranges.
func (p *Pool) Contains(a netip.Addr) bool {
	_, ok := p.index4(a)
	return ok
}

// index4 finds a's index; spans never change after New, so no lock.
func (p *Pool) index4(a netip.Addr) (uint64, bool) {
	if !a.Is4() {
		return 0, false
	}
	x := u32(a)
	k, _ := slices.BinarySearchFunc(p.spans, x, func(s span, x uint32) int { return cmp.Compare(s.last, x) })
	if k == len(p.spans) || p.spans[k].first > x {
		return 0, false
	}
	return p.spans[k].base + uint64(x-p.spans[k].first), true
}

// skipped reports whether a is a .0/.255 address of a multi-address
// range, one LeaseIPv4 never hands out. a must be in the pool.
func (p *Pool) skipped(a netip.Addr) bool {
	x := u32(a)
	if last := x & 0xff; last != 0 && last != 0xff {
		return false
	}
	k, _ := slices.BinarySearchFunc(p.spans, x, func(s span, x uint32) int { return cmp.Compare(s.last, x) })
	return p.spans[k].first != p.spans[k].last
}

func (p *Pool) addrAt(i uint64) uint32 {
	k, found := slices.BinarySearchFunc(p.spans, i, func(s span, i uint64) int { return cmp.Compare(s.base, i) })
	if !found {
		k--
	}
	return p.spans[k].first + uint32(i-p.spans[k].base)
}

// prefixAt is the i-th prefix of v6Len bits in the pool's prefix.
func (p *Pool) prefixAt(i uint64) netip.Prefix {
	b := p.v6.Addr().As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	shift := uint(128 - p.v6Len)
	switch {
	case shift >= 64:
		hi += i << (shift - 64)
	case shift == 0:
		lo += i
	default:
		lo += i << shift
		hi += i >> (64 - shift)
	}
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), p.v6Len)
}

func (p *Pool) index6(pfx netip.Prefix) (uint64, bool) {
	if !p.v6.IsValid() || pfx.Bits() != p.v6Len || pfx.Masked() != pfx || !p.v6.Contains(pfx.Addr()) {
		return 0, false
	}
	b, base := pfx.Addr().As16(), p.v6.Addr().As16()
	hi := binary.BigEndian.Uint64(b[:8]) - binary.BigEndian.Uint64(base[:8])
	lo := binary.BigEndian.Uint64(b[8:]) - binary.BigEndian.Uint64(base[8:])
	// The pool's base has zero host bits, so the subtraction never borrows.
	shift := uint(128 - p.v6Len)
	switch {
	case shift >= 64:
		return hi >> (shift - 64), true
	case shift == 0:
		return lo, true
	default:
		return lo>>shift | hi<<(64-shift), true
	}
}

// Overlaps reports whether any IPv4 range of p meets one of q, and
// whether their IPv6 prefixes overlap.
func (p *Pool) Overlaps(q *Pool) (v4, v6 bool) {
	for _, a := range p.spans {
		for _, b := range q.spans {
			if a.first <= b.last && b.first <= a.last {
				v4 = true
			}
		}
	}
	v6 = p.v6.IsValid() && q.v6.IsValid() && p.v6.Overlaps(q.v6)
	return v4, v6
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

func spanString(s span) string { return addr4(s.first).String() + "-" + addr4(s.last).String() }
