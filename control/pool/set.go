package pool

import (
	"fmt"
	"net/netip"
)

// Config describes one pool, as the daemon's configuration lists it.
type Config struct {
	Name       string
	IPv4       []Range
	IPv6       netip.Prefix
	IPv6Length int
}

// Set is the daemon's pools by name. It is immutable once built; the
// pools in it are safe for concurrent use.
type Set struct {
	pools  map[string]*Pool
	sorted []*Pool // in configuration order
}

// NewSet builds every pool and checks that names are unique and that no
// two pools share an address.
func NewSet(cfgs []Config) (*Set, error) {
	s := &Set{pools: make(map[string]*Pool, len(cfgs))}
	for _, c := range cfgs {
		if _, dup := s.pools[c.Name]; dup {
			return nil, fmt.Errorf("pool: duplicate pool name %q", c.Name)
		}
		p, err := New(c.Name, c.IPv4, c.IPv6, c.IPv6Length)
		if err != nil {
			return nil, err
		}
		for _, q := range s.sorted {
			v4, v6 := p.Overlaps(q)
			if v4 {
				return nil, fmt.Errorf("pool %s: IPv4 ranges overlap pool %s", p.name, q.name)
			}
			if v6 {
				return nil, fmt.Errorf("pool %s: IPv6 prefix overlaps pool %s", p.name, q.name)
			}
		}
		s.pools[c.Name] = p
		s.sorted = append(s.sorted, p)
	}
	return s, nil
}

// Get returns the named pool, or nil.
func (s *Set) Get(name string) *Pool {
	if s == nil {
		return nil
	}
	return s.pools[name]
}

// All returns the pools in configuration order.
func (s *Set) All() []*Pool {
	if s == nil {
		return nil
	}
	return append([]*Pool(nil), s.sorted...)
}
