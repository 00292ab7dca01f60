package pool

import (
	"errors"
	"net/netip"
	"testing"
)

// FuzzOps runs a sequence of operations against a small pool whose
// ranges span .0/.255 addresses and a single-address range, and checks
// every answer against a plain map: no address or prefix is ever leased
// twice, releases report the truth, and the counters agree.
func FuzzOps(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 2, 3, 4, 5})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 0})
	f.Add([]byte{2, 0, 2, 8, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 1})
	f.Add([]byte{5, 0, 2, 1, 1, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		// Longer scripts add nothing the pool's 17 addresses can show and
		// make minimizing slow.
		if len(ops) > 512 {
			ops = ops[:512]
		}
		ranges := []Range{rng("10.0.0.250", "10.0.1.5"), rng("10.0.2.0", "10.0.2.0"), rng("10.0.3.254", "10.0.4.0")}
		p, err := New("fuzz", ranges, netip.MustParsePrefix("2001:db8::/60"), 64)
		if err != nil {
			t.Fatal(err)
		}
		// Every address the ranges hold, in order, and which of them
		// LeaseIPv4 may return.
		var addrs []netip.Addr
		leasable := map[netip.Addr]bool{}
		for _, r := range ranges {
			for a := r.First; a.Compare(r.Last) <= 0; a = a.Next() {
				addrs = append(addrs, a)
				b := a.As4()
				leasable[a] = r.First == r.Last || (b[3] != 0 && b[3] != 255)
			}
		}
		nLeasable := 0
		for _, ok := range leasable {
			if ok {
				nLeasable++
			}
		}
		held4 := map[netip.Addr]bool{}
		held6 := map[netip.Prefix]bool{}
		draining := false
		for i := 0; i+1 < len(ops); i += 2 {
			arg := int(ops[i+1])
			switch ops[i] % 6 {
			case 0:
				a, err := p.LeaseIPv4("x")
				free := 0
				for x, ok := range leasable {
					if ok && !held4[x] {
						free++
					}
				}
				switch {
				case draining:
					if !errors.Is(err, ErrDraining) {
						t.Fatalf("lease while draining: %v", err)
					}
				case free == 0:
					if !errors.Is(err, ErrExhausted) {
						t.Fatalf("lease with nothing free: %s, %v", a, err)
					}
				case err != nil:
					t.Fatalf("lease with %d free: %v", free, err)
				case held4[a] || !leasable[a]:
					t.Fatalf("leased %s (held %v, leasable %v)", a, held4[a], leasable[a])
				default:
					held4[a] = true
				}
			case 1:
				a := addrs[arg%len(addrs)]
				if got := p.ReleaseIPv4(a); got != held4[a] {
					t.Fatalf("release %s = %v, held %v", a, got, held4[a])
				}
				delete(held4, a)
			case 2:
				a := addrs[arg%len(addrs)]
				err := p.Reserve(a, "r")
				switch {
				case draining:
					if !errors.Is(err, ErrDraining) {
						t.Fatalf("reserve while draining: %v", err)
					}
				case held4[a]:
					if !errors.Is(err, ErrInUse) {
						t.Fatalf("reserve of held %s: %v", a, err)
					}
				case err != nil:
					t.Fatalf("reserve of free %s: %v", a, err)
				default:
					held4[a] = true
				}
			case 3:
				pfx, err := p.LeaseIPv6("x")
				switch {
				case draining:
					if !errors.Is(err, ErrDraining) {
						t.Fatalf("lease6 while draining: %v", err)
					}
				case len(held6) == 16:
					if !errors.Is(err, ErrExhausted) {
						t.Fatalf("lease6 with nothing free: %s, %v", pfx, err)
					}
				case err != nil:
					t.Fatalf("lease6: %v", err)
				case held6[pfx] || pfx.Bits() != 64 || !netip.MustParsePrefix("2001:db8::/60").Contains(pfx.Addr()):
					t.Fatalf("leased %s", pfx)
				default:
					held6[pfx] = true
				}
			case 4:
				b := netip.MustParseAddr("2001:db8::").As16()
				b[7] = byte(arg % 17) // one past the pool too
				pfx := netip.PrefixFrom(netip.AddrFrom16(b), 64)
				if got := p.ReleaseIPv6(pfx); got != held6[pfx] {
					t.Fatalf("release %s = %v, held %v", pfx, got, held6[pfx])
				}
				delete(held6, pfx)
			case 5:
				if arg%8 == 0 {
					p.Drain()
					draining = true
				}
			}
			st := p.Stats()
			if st.Used4 != uint64(len(held4)) || st.Used6 != uint64(len(held6)) || st.Size4 != uint64(nLeasable) ||
				st.Size6 != 16 || st.Draining != draining {
				t.Fatalf("stats %+v, held %d/%d", st, len(held4), len(held6))
			}
		}
		leases := p.Leases()
		if len(leases) != len(held4)+len(held6) {
			t.Fatalf("%d leases listed, %d held", len(leases), len(held4)+len(held6))
		}
		for _, l := range leases {
			if l.Prefix.Addr().Is4() && !held4[l.Prefix.Addr()] || l.Prefix.Addr().Is6() && !held6[l.Prefix] {
				t.Fatalf("listed %v, not held", l)
			}
		}
	})
}
