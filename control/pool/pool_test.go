package pool

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func rng(first, last string) Range {
	return Range{netip.MustParseAddr(first), netip.MustParseAddr(last)}
}

func mustNew(t testing.TB, v4 []Range, v6 string, v6Len int) *Pool {
	t.Helper()
	var pfx netip.Prefix
	if v6 != "" {
		pfx = netip.MustParsePrefix(v6)
	}
	p, err := New("test", v4, pfx, v6Len)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name  string
		pname string
		v4    []Range
		v6    string
		v6Len int
		msg   string
	}{
		{"empty name", "", nil, "", 0, "empty name"},
		{"first after last", "p", []Range{rng("10.0.0.9", "10.0.0.1")}, "", 0, "after the last"},
		{"IPv6 range", "p", []Range{rng("2001:db8::1", "2001:db8::9")}, "", 0, "not IPv4"},
		{"mapped range", "p", []Range{rng("::ffff:10.0.0.1", "::ffff:10.0.0.9")}, "", 0, "not IPv4"},
		{"zero address", "p", []Range{{}}, "", 0, "not IPv4"},
		{"overlap", "p", []Range{rng("10.0.0.0", "10.0.0.100"), rng("10.0.0.100", "10.0.1.0")}, "", 0, "overlap"},
		{"too big", "p", []Range{rng("10.0.0.0", "11.0.0.0")}, "", 0, "more than"},
		{"IPv4 prefix as IPv6", "p", nil, "10.0.0.0/8", 0, "not an IPv6 prefix"},
		{"host bits", "p", nil, "2001:db8::1/48", 0, "host bits"},
		{"length below prefix", "p", nil, "2001:db8::/48", 40, "from 48 to 128"},
		{"length above 128", "p", nil, "2001:db8::/48", 129, "from 48 to 128"},
		{"too many prefixes", "p", nil, "2001:db8::/32", 64, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pfx netip.Prefix
			if tt.v6 != "" {
				pfx = netip.MustParsePrefix(tt.v6)
			}
			_, err := New(tt.pname, tt.v4, pfx, tt.v6Len)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("New = %v, want an error containing %q", err, tt.msg)
			}
		})
	}
	// Adjacent ranges, given out of order, are fine.
	p := mustNew(t, []Range{rng("10.0.1.0", "10.0.1.9"), rng("10.0.0.200", "10.0.0.255")}, "2001:db8::/56", 0)
	if got := p.IPv4Ranges(); got[0] != rng("10.0.0.200", "10.0.0.255") {
		t.Errorf("ranges not sorted: %v", got)
	}
	if _, l := p.IPv6(); l != DefaultIPv6Length {
		t.Errorf("IPv6 length %d, want the default %d", l, DefaultIPv6Length)
	}
}

func TestExhaustionAndReuse(t *testing.T) {
	p := mustNew(t, []Range{rng("192.0.2.10", "192.0.2.13")}, "", 0)
	seen := map[netip.Addr]bool{}
	for i := range 4 {
		a, err := p.LeaseIPv4(fmt.Sprint("s", i))
		if err != nil {
			t.Fatalf("lease %d: %v", i, err)
		}
		if seen[a] || !p.Contains(a) {
			t.Fatalf("lease %d: %s leased twice or outside the pool", i, a)
		}
		seen[a] = true
	}
	if _, err := p.LeaseIPv4("s4"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("fifth lease: %v, want ErrExhausted", err)
	}
	if st := p.Stats(); st.Size4 != 4 || st.Used4 != 4 {
		t.Errorf("stats %+v", st)
	}
	freed := netip.MustParseAddr("192.0.2.12")
	if !p.ReleaseIPv4(freed) {
		t.Fatal("release of a leased address reported false")
	}
	if p.ReleaseIPv4(freed) {
		t.Error("second release reported true")
	}
	if p.ReleaseIPv4(netip.MustParseAddr("192.0.2.99")) || p.ReleaseIPv4(netip.Addr{}) {
		t.Error("release of an address outside the pool reported true")
	}
	a, err := p.LeaseIPv4("again")
	if err != nil || a != freed {
		t.Fatalf("lease after release = %s, %v; want %s", a, err, freed)
	}
}

// A released address goes to the back of the line: next-fit from the
// cursor, not lowest-first.
func TestNextFit(t *testing.T) {
	p := mustNew(t, []Range{rng("192.0.2.1", "192.0.2.100")}, "", 0)
	first, _ := p.LeaseIPv4("a")
	second, _ := p.LeaseIPv4("b")
	p.ReleaseIPv4(first)
	third, _ := p.LeaseIPv4("c")
	if third == first || third != second.Next() {
		t.Errorf("after releasing %s got %s, want %s", first, third, second.Next())
	}
}

// Leases hop from range to range, and back to the start when the cursor
// reaches the end of the index space.
func TestAcrossRangesAndWrap(t *testing.T) {
	p := mustNew(t, []Range{rng("198.51.100.7", "198.51.100.7"), rng("192.0.2.1", "192.0.2.2"), rng("203.0.113.5", "203.0.113.6")}, "", 0)
	var got []string
	for i := range 5 {
		a, err := p.LeaseIPv4(fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	want := "192.0.2.1 192.0.2.2 198.51.100.7 203.0.113.5 203.0.113.6"
	if strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
	p.ReleaseIPv4(netip.MustParseAddr("192.0.2.2"))
	if a, err := p.LeaseIPv4("x"); err != nil || a.String() != "192.0.2.2" {
		t.Errorf("after wrap got %s, %v", a, err)
	}
}

func TestSkipsNetworkAndBroadcastLookalikes(t *testing.T) {
	// A /23 as a range: .0 and .255 of both /24s are not handed out.
	p := mustNew(t, []Range{rng("100.65.0.0", "100.65.1.255"), rng("192.0.2.255", "192.0.2.255")}, "", 0)
	if st := p.Stats(); st.Size4 != 512-4+1 {
		t.Fatalf("Size4 = %d, want %d", st.Size4, 512-4+1)
	}
	lone := false
	for {
		a, err := p.LeaseIPv4("x")
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b := a.As4()
		if a == netip.MustParseAddr("192.0.2.255") {
			lone = true // a single-address range is an explicit choice
		} else if b[3] == 0 || b[3] == 255 {
			t.Fatalf("leased %s", a)
		}
	}
	if !lone {
		t.Error("the single-address range 192.0.2.255 was never leased")
	}
	if st := p.Stats(); st.Used4 != st.Size4 {
		t.Errorf("exhausted with %+v", st)
	}
	// Reserve still takes one, and its release does not make it leasable.
	zero := netip.MustParseAddr("100.65.1.0")
	if err := p.Reserve(zero, "radius"); err != nil {
		t.Fatal(err)
	}
	if !p.ReleaseIPv4(zero) {
		t.Fatal("release of a reserved .0 reported false")
	}
	if a, err := p.LeaseIPv4("y"); !errors.Is(err, ErrExhausted) {
		t.Errorf("released .0 became leasable: %s, %v", a, err)
	}
	// A range from .1 to .254 skips nothing.
	q := mustNew(t, []Range{rng("10.1.2.1", "10.1.2.254")}, "", 0)
	if st := q.Stats(); st.Size4 != 254 {
		t.Errorf("Size4 = %d, want 254", st.Size4)
	}
}

func TestReserve(t *testing.T) {
	p := mustNew(t, []Range{rng("192.0.2.1", "192.0.2.3")}, "", 0)
	fixed := netip.MustParseAddr("192.0.2.2")
	if err := p.Reserve(fixed, "radius-user"); err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve(fixed, "other"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "radius-user") {
		t.Errorf("second reserve: %v, want ErrInUse naming the owner", err)
	}
	if err := p.Reserve(netip.MustParseAddr("192.0.2.4"), "x"); !errors.Is(err, ErrNotInPool) {
		t.Errorf("reserve outside: %v", err)
	}
	for range 2 {
		a, err := p.LeaseIPv4("dyn")
		if err != nil || a == fixed {
			t.Fatalf("lease = %s, %v", a, err)
		}
	}
	if _, err := p.LeaseIPv4("dyn"); !errors.Is(err, ErrExhausted) {
		t.Errorf("lease with the reserved address taken: %v", err)
	}
	// A leased address cannot be reserved either.
	if err := p.Reserve(netip.MustParseAddr("192.0.2.1"), "x"); !errors.Is(err, ErrInUse) {
		t.Errorf("reserve of a leased address: %v", err)
	}
}

func TestDrain(t *testing.T) {
	p := mustNew(t, []Range{rng("192.0.2.1", "192.0.2.9")}, "2001:db8::/64", 64)
	a, _ := p.LeaseIPv4("kept")
	pfx, _ := p.LeaseIPv6("kept")
	p.Drain()
	if _, err := p.LeaseIPv4("new"); !errors.Is(err, ErrDraining) {
		t.Errorf("LeaseIPv4 while draining: %v", err)
	}
	if _, err := p.LeaseIPv6("new"); !errors.Is(err, ErrDraining) {
		t.Errorf("LeaseIPv6 while draining: %v", err)
	}
	if err := p.Reserve(netip.MustParseAddr("192.0.2.5"), "new"); !errors.Is(err, ErrDraining) {
		t.Errorf("Reserve while draining: %v", err)
	}
	st := p.Stats()
	if !st.Draining || st.Used4 != 1 || st.Used6 != 1 {
		t.Errorf("stats %+v", st)
	}
	if !p.ReleaseIPv4(a) || !p.ReleaseIPv6(pfx) {
		t.Error("a draining pool refused its leases back")
	}
	if st := p.Stats(); st.Used4 != 0 || st.Used6 != 0 {
		t.Errorf("stats after release %+v", st)
	}
}

func TestIPv6Slash48Into64s(t *testing.T) {
	p := mustNew(t, nil, "2001:db8:100::/48", 64)
	if st := p.Stats(); st.Size6 != 1<<16 || st.Size4 != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := p.LeaseIPv4("x"); !errors.Is(err, ErrExhausted) {
		t.Errorf("IPv4 lease from a pool without ranges: %v", err)
	}
	want := []string{"2001:db8:100::/64", "2001:db8:100:1::/64", "2001:db8:100:2::/64"}
	for i, w := range want {
		got, err := p.LeaseIPv6(fmt.Sprint(i))
		if err != nil || got.String() != w {
			t.Fatalf("lease %d = %s, %v; want %s", i, got, err, w)
		}
	}
	for _, bad := range []string{"2001:db8:100:1::/56", "2001:db8:101::/64", "2001:db8:100:1::1/128", "2001:db8:100:7::/64"} {
		if p.ReleaseIPv6(netip.MustParsePrefix(bad)) {
			t.Errorf("release of %s reported true", bad)
		}
	}
	if !p.ReleaseIPv6(netip.MustParsePrefix("2001:db8:100:1::/64")) {
		t.Error("release of a leased prefix reported false")
	}
	// Lease the rest; the last one is the top of the /48.
	var last netip.Prefix
	for {
		pfx, err := p.LeaseIPv6("fill")
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if pfx.String() == "2001:db8:100:ffff::/64" {
			last = pfx
		}
	}
	if !last.IsValid() {
		t.Error("2001:db8:100:ffff::/64 was never leased")
	}
	if st := p.Stats(); st.Used6 != 1<<16 {
		t.Errorf("Used6 = %d", st.Used6)
	}
}

// Prefix arithmetic on both sides of the 64-bit halves.
func TestIPv6Lengths(t *testing.T) {
	tests := []struct {
		pool   string
		length int
		nth    int
		want   string
	}{
		{"2001:db8::/32", 56, 0x1234, "2001:db8:12:3400::/56"},
		{"2001:db8:0:1::/64", 72, 0xab, "2001:db8:0:1:ab00::/72"},
		{"2001:db8::/56", 64, 0xff, "2001:db8:0:ff::/64"},
		{"2001:db8::1:0/120", 128, 0xfe, "2001:db8::1:fe/128"},
		{"2001:db8:0:ff00::/56", 60, 3, "2001:db8:0:ff30::/60"},
		{"2001:db8::/63", 65, 3, "2001:db8:0:1:8000::/65"},
	}
	for _, tt := range tests {
		p := mustNew(t, nil, tt.pool, tt.length)
		p.bits6.cursor = uint64(tt.nth)
		got, err := p.LeaseIPv6("x")
		if err != nil || got.String() != tt.want {
			t.Errorf("%s /%d #%d = %s, %v; want %s", tt.pool, tt.length, tt.nth, got, err, tt.want)
			continue
		}
		if i, ok := p.index6(got); !ok || i != uint64(tt.nth) {
			t.Errorf("index6(%s) = %d, %v; want %d", got, i, ok, tt.nth)
		}
	}
	if _, err := mustNew(t, nil, "", 0).LeaseIPv6("x"); !errors.Is(err, ErrNoIPv6) {
		t.Errorf("LeaseIPv6 without a prefix: %v", err)
	}
}

// A /10 costs its bitmap and nothing per address until leased.
func TestBigRangeMemory(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p, err := New("cgnat", []Range{rng("100.64.0.0", "100.127.255.255")}, netip.Prefix{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	const bitmapBytes = (1 << 22) / 8
	if got := after.TotalAlloc - before.TotalAlloc; got > bitmapBytes+bitmapBytes/16 {
		t.Errorf("New allocated %d bytes for a /10, want about %d", got, bitmapBytes)
	}
	if st := p.Stats(); st.Size4 != 1<<22-2*(1<<14) {
		t.Errorf("Size4 = %d", st.Size4)
	}
	// Deep in the range, leasing still finds free addresses quickly.
	p.bits4.cursor = 3 << 20
	for range 1000 {
		if _, err := p.LeaseIPv4("x"); err != nil {
			t.Fatal(err)
		}
	}
	runtime.KeepAlive(p)
}

// Filling and emptying a pool bigger than one summary word exercises
// the wrap-around search of both bitmap levels.
func TestBitmapWrap(t *testing.T) {
	p := mustNew(t, []Range{rng("10.0.0.1", "10.0.39.10")}, "", 0) // ~10000
	size := p.Stats().Size4
	var all []netip.Addr
	for {
		a, err := p.LeaseIPv4("x")
		if err != nil {
			break
		}
		all = append(all, a)
	}
	if uint64(len(all)) != size {
		t.Fatalf("leased %d of %d", len(all), size)
	}
	freed := map[netip.Addr]bool{}
	for i := 7; i < len(all); i += 997 {
		p.ReleaseIPv4(all[i])
		freed[all[i]] = true
	}
	for n := len(freed); n > 0; n-- {
		a, err := p.LeaseIPv4("y")
		if err != nil || !freed[a] {
			t.Fatalf("re-lease = %s, %v; want one of the freed", a, err)
		}
		delete(freed, a)
	}
	if _, err := p.LeaseIPv4("z"); !errors.Is(err, ErrExhausted) {
		t.Errorf("full pool: %v", err)
	}
}

func TestLeases(t *testing.T) {
	p := mustNew(t, []Range{rng("192.0.2.1", "192.0.2.9")}, "2001:db8::/60", 64)
	p.Reserve(netip.MustParseAddr("192.0.2.5"), "fixed")
	p.LeaseIPv4("s1")
	p.LeaseIPv6("s1")
	got := p.Leases()
	want := []Lease{
		{"s1", netip.MustParsePrefix("192.0.2.1/32")},
		{"fixed", netip.MustParsePrefix("192.0.2.5/32")},
		{"s1", netip.MustParsePrefix("2001:db8::/64")},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Leases = %v, want %v", got, want)
	}
}

func TestConcurrent(t *testing.T) {
	p := mustNew(t, []Range{rng("10.0.0.1", "10.0.15.254")}, "2001:db8::/52", 64)
	var held sync.Map
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("g", g)
			var mine []netip.Addr
			var mine6 []netip.Prefix
			for i := range 500 {
				a, err := p.LeaseIPv4(owner)
				if err != nil {
					errc <- err
					return
				}
				if _, dup := held.LoadOrStore(a, owner); dup {
					errc <- fmt.Errorf("%s leased twice", a)
					return
				}
				mine = append(mine, a)
				pfx, err := p.LeaseIPv6(owner)
				if err != nil {
					errc <- err
					return
				}
				if _, dup := held.LoadOrStore(pfx, owner); dup {
					errc <- fmt.Errorf("%s leased twice", pfx)
					return
				}
				mine6 = append(mine6, pfx)
				if i%3 == 0 {
					held.Delete(mine[0])
					held.Delete(mine6[0])
					if !p.ReleaseIPv4(mine[0]) || !p.ReleaseIPv6(mine6[0]) {
						errc <- fmt.Errorf("release of own lease failed")
						return
					}
					mine, mine6 = mine[1:], mine6[1:]
				}
				_ = p.Stats()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	n := 0
	held.Range(func(k, v any) bool { n++; return true })
	if st := p.Stats(); st.Used4+st.Used6 != uint64(n) || len(p.Leases()) != n {
		t.Errorf("stats %+v, %d leases listed, %d held", st, len(p.Leases()), n)
	}
}

func TestSet(t *testing.T) {
	v6 := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	good := []Config{
		{Name: "a", IPv4: []Range{rng("100.64.0.10", "100.64.0.250")}, IPv6: v6("2001:db8:100::/48")},
		{Name: "b", IPv4: []Range{rng("100.64.1.0", "100.64.1.255")}, IPv6: v6("2001:db8:200::/48"), IPv6Length: 56},
	}
	s, err := NewSet(good)
	if err != nil {
		t.Fatal(err)
	}
	if s.Get("a") == nil || s.Get("b").Name() != "b" || s.Get("c") != nil {
		t.Error("Get does not find pools by name")
	}
	if all := s.All(); len(all) != 2 || all[0].Name() != "a" {
		t.Errorf("All = %v", all)
	}
	if _, l := s.Get("b").IPv6(); l != 56 {
		t.Errorf("b's IPv6 length = %d", l)
	}
	var nilSet *Set
	if nilSet.Get("a") != nil || nilSet.All() != nil {
		t.Error("a nil Set is not empty")
	}
	bad := []struct {
		name string
		cfgs []Config
		msg  string
	}{
		{"duplicate", []Config{{Name: "a"}, {Name: "a"}}, "duplicate"},
		{"IPv4 overlap", []Config{good[0], {Name: "c", IPv4: []Range{rng("100.64.0.250", "100.64.0.251")}}}, "IPv4 ranges overlap pool a"},
		{"IPv6 overlap", []Config{good[0], {Name: "c", IPv6: v6("2001:db8:100:8000::/49")}}, "IPv6 prefix overlaps pool a"},
		{"bad pool", []Config{{Name: "c", IPv4: []Range{rng("10.0.0.2", "10.0.0.1")}}}, "after the last"},
	}
	for _, tt := range bad {
		if _, err := NewSet(tt.cfgs); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: NewSet = %v, want %q", tt.name, err, tt.msg)
		}
	}
}

// Leasing from a nearly full /10 stays cheap: the summary level skips
// full words 4096 addresses at a time.
func BenchmarkLeaseReleaseNearlyFull(b *testing.B) {
	p := mustNew(b, []Range{rng("100.64.0.0", "100.127.255.255")}, "", 0)
	for i := uint64(0); i < p.bits4.size-16; i++ {
		p.bits4.add(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		a, err := p.LeaseIPv4("bench")
		if err != nil {
			b.Fatal(err)
		}
		p.ReleaseIPv4(a)
	}
}
