package pool

import (
	"fmt"
	"net/netip"
)

// ReserveIPv6 leases the given prefix to owner, as for a fixed
// Framed-IPv6-Prefix from RADIUS. It must be one of the pool's prefixes
// (its length, inside its IPv6 prefix). It fails with ErrNotInPool,
// ErrInUse or ErrDraining.
func (p *Pool) ReserveIPv6(pfx netip.Prefix, owner string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.index6(pfx)
	if !ok {
		return fmt.Errorf("%w: %s is not one of %s's prefixes", ErrNotInPool, pfx, p.name)
	}
	if p.drain {
		return ErrDraining
	}
	if o, used := p.owner6[i]; used {
		return fmt.Errorf("%w: %s is leased to %s", ErrInUse, pfx, o)
	}
	p.bits6.add(i)
	p.owner6[i] = owner
	return nil
}

// ContainsIPv6 reports whether pfx lies inside the pool's IPv6 prefix.
func (p *Pool) ContainsIPv6(pfx netip.Prefix) bool {
	return p.v6.IsValid() && p.v6.Bits() <= pfx.Bits() && p.v6.Contains(pfx.Addr())
}
