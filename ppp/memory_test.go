package ppp

import (
	"runtime"
	"slices"
	"testing"
	"time"
)

// The most heap one server-role Session may keep once it is in the
// Network phase: LCP opened with echo running, authenticated with CHAP,
// IPCP (and IPv6CP) opened. 100,000 subscribers in one process leave
// about 4 KiB each for every layer together, and the engine must stay
// within 1 KiB of it; each budget is what it takes (511 and 639 bytes,
// with -race too) and some 10 % more.
const (
	sessionHeapBudget          = 562
	dualStackSessionHeapBudget = 703
)

// TestServerSessionHeap measures the heap kept by server sessions
// brought to the Network phase against a client (RFC 1661 §3.2), after
// one LCP echo exchange (RFC 1661 §5.8). The clients and everything
// the exchange produced are released before measuring, so the figure is
// the servers' alone. The servers share one randomness source, as the
// daemon's sessions share crypto/rand.
func TestServerSessionHeap(t *testing.T) {
	for _, c := range []struct {
		name   string
		ipv6   bool
		budget int64
	}{
		{"IPv4", false, sessionHeapBudget},
		{"dual stack", true, dualStackSessionHeapBudget},
	} {
		t.Run(c.name, func(t *testing.T) {
			per := serverSessionHeap(t, c.ipv6)
			t.Logf("%d bytes of heap per server session in the Network phase", per)
			if per > c.budget {
				t.Errorf("a server session in the Network phase keeps %d bytes of heap, budget %d", per, c.budget)
			}
		})
	}
}

func serverSessionHeap(t *testing.T, ipv6 bool) int64 {
	const n = 2000
	serverRand, clientRand := newRand(1), newRand(2)
	users := LocalUsers{"alice": "s3cret"}
	servers := make([]*Session, n)
	up := func(i int) {
		sc := serverConfig(AuthCHAPMD5)
		sc.Rand = serverRand
		sc.EchoInterval = 30 * time.Second
		sc.IPv6 = ipv6
		cc := clientConfig("alice", "s3cret")
		cc.Rand = clientRand
		cc.IPv6 = ipv6
		p := newPair(t, cc, sc, users)
		p.start()
		p.run(45 * time.Second)
		s := p.s
		if s.Phase() != PhaseNetwork || s.LCPState() != StateOpened || s.IPCPState() != StateOpened || ipv6 && s.IPv6CPState() != StateOpened {
			t.Fatalf("session %d: phase %v LCP %v IPCP %v IPv6CP %v; events %v", i, s.Phase(), s.LCPState(), s.IPCPState(), s.IPv6CPState(), kinds(p.sEvents))
		}
		if _, ok := findEvent(p.sEvents, EventAuthenticated, 0); !ok {
			t.Fatalf("session %d not authenticated: events %v", i, kinds(p.sEvents))
		}
		if d, ok := s.Deadline(); !ok || d.Sub(p.now) > 30*time.Second || p.now.Sub(t0) < 30*time.Second {
			t.Fatalf("session %d: echo not running (deadline %v %v at %v)", i, d, ok, p.now.Sub(t0))
		}
		servers[i] = s
	}
	// One session first, so that what the package allocates once (and
	// the harness's first use) is not counted.
	up(0)
	before := heapInUse()
	for i := 1; i < n; i++ {
		up(i)
	}
	after := heapInUse()
	runtime.KeepAlive(servers)
	return (int64(after) - int64(before)) / (n - 1)
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// RFC 1661 §5.8: the keepalive of an online session allocates nothing:
// the server's Echo-Request, the client's Echo-Reply and the server
// taking it, and the server answering an Echo-Request of its peer.
func TestEchoCycleAllocatesNothing(t *testing.T) {
	sc := serverConfig(AuthCHAPMD5)
	sc.EchoInterval = 30 * time.Second
	p := upPair(t, sc, clientConfig("alice", "s3cret"))
	var sOut, cOut Output
	frame := make([]byte, 0, 64)
	peerEcho := lcpFrame(CodeEchoRequest, 200, []byte{0, 0, 0, 0, 'k', 'a'})
	echoes := 0
	expect := func(o *Output, code uint8) {
		if o.NumFrames() != 1 {
			t.Fatalf("%d frames, want one of code %d", o.NumFrames(), code)
		}
		if proto, info, _ := ParseFrame(o.Frame(0)); proto != ProtoLCP || info[0] != code {
			t.Fatalf("sent %x, want LCP code %d", o.Frame(0), code)
		}
	}
	cycle := func() {
		now, ok := p.s.Deadline()
		if !ok {
			t.Fatal("no echo deadline")
		}
		sOut.Reset()
		p.s.Tick(now, &sOut)
		expect(&sOut, CodeEchoRequest)
		frame = append(frame[:0], sOut.Frame(0)...)
		cOut.Reset()
		p.c.Input(now, frame, &cOut)
		expect(&cOut, CodeEchoReply)
		frame = append(frame[:0], cOut.Frame(0)...)
		sOut.Reset()
		p.s.Input(now, frame, &sOut)
		if sOut.NumFrames() != 0 || len(sOut.Events) != 0 {
			t.Fatalf("Echo-Reply answered: %d frames, events %v", sOut.NumFrames(), kinds(sOut.Events))
		}
		sOut.Reset()
		p.s.Input(now, peerEcho, &sOut)
		expect(&sOut, CodeEchoReply)
		echoes++
	}
	cycle() // the Outputs grow once
	if allocs := testing.AllocsPerRun(100, cycle); allocs != 0 {
		t.Errorf("%v allocations per echo cycle", allocs)
	}
	// More cycles than EchoFailures: the replies were taken.
	if p.s.Down() || p.s.Phase() != PhaseNetwork || echoes < 100 {
		t.Errorf("after %d echoes: down %v phase %v", echoes, p.s.Down(), p.s.Phase())
	}
}

// The automata keep their last Configure-Request in place (RFC 1661
// §5.2: an Ack must repeat it): each layer's longest request fits.
func TestLongestRequestsFit(t *testing.T) {
	sc := serverConfig(AuthMSCHAPv2)
	sc.MRU = 1400
	sc.IPv6 = true
	s, err := NewSession(sc)
	if err != nil {
		t.Fatal(err)
	}
	cc := clientConfig("alice", "s3cret")
	c, err := NewSession(cc)
	if err != nil {
		t.Fatal(err)
	}
	s.lcp.reset()
	s.ipcp.reset()
	s.ipv6cp.reset()
	c.ipcp.reset()
	for _, l := range []struct {
		name string
		l    layer
		want int
	}{
		{"LCP: MRU, MS-CHAPv2, Magic-Number", &s.lcp, 4 + 5 + 6},
		{"server IPCP: IP-Address", &s.ipcp, 6},
		{"client IPCP: IP-Address, two name servers", &c.ipcp, 3 * 6},
		{"IPv6CP: Interface-Identifier", s.ipv6cp, 10},
	} {
		if n := len(l.l.appendRequest(nil)); n != l.want || n > maxRequest {
			t.Errorf("%s: %d octets, want %d (room for %d)", l.name, n, l.want, maxRequest)
		}
	}
}

// Sessions share the package's copy of a short authentication list; it
// holds what the caller gave, in order, whatever the caller does to its
// own slice afterwards.
func TestSharedAuthList(t *testing.T) {
	all := []AuthProto{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2}
	var lists [][]AuthProto
	for _, a := range all {
		lists = append(lists, []AuthProto{a})
		for _, b := range all {
			lists = append(lists, []AuthProto{a, b})
			for _, c := range all {
				lists = append(lists, []AuthProto{a, b, c})
			}
		}
	}
	lists = append(lists, []AuthProto{AuthPAP, AuthPAP, AuthCHAPMD5, AuthMSCHAPv2})
	for _, l := range lists {
		in := slices.Clone(l)
		got := sharedAuthList(in)
		clear(in)
		if !slices.Equal(got, l) || (len(l) <= 3 && cap(got) != len(l)) {
			t.Errorf("%v: got %v (cap %d)", l, got, cap(got))
		}
	}
	if sharedAuthList(nil) != nil || sharedAuthList([]AuthProto{}) != nil {
		t.Error("empty list")
	}
}

// A Session keeps no reference to the Output of a call once the call
// returns, whatever the call: an owner lends one Output to many.
func TestOutputNotKeptAfterCalls(t *testing.T) {
	users := LocalUsers{"alice": "s3cret"}
	p := newPair(t, clientConfig("alice", "s3cret"), serverConfig(AuthCHAPMD5), nil)
	var out Output
	check := func(call string) {
		t.Helper()
		if p.s.link.out != nil || p.c.link.out != nil {
			t.Fatalf("Output kept after %s", call)
		}
	}
	p.s.Start(p.now, &out)
	check("Start")
	p.collect(true, &out)
	p.c.Start(p.now, &out)
	check("Start")
	p.collect(false, &out)
	for len(p.pendingS)+len(p.pendingC) > 0 {
		for len(p.pendingS) > 0 {
			f := p.pendingS[0]
			p.pendingS = p.pendingS[1:]
			p.s.Input(p.now, f, &out)
			check("Input")
			var reqs []*AuthRequest
			for _, e := range out.Events {
				if e.Kind == EventAuthRequest {
					reqs = append(reqs, e.Auth)
				}
			}
			p.collect(true, &out)
			for _, r := range reqs {
				p.s.AuthResult(p.now, users.Authenticate(r), &out)
				check("AuthResult")
				p.collect(true, &out)
			}
		}
		for len(p.pendingC) > 0 {
			f := p.pendingC[0]
			p.pendingC = p.pendingC[1:]
			p.c.Input(p.now, f, &out)
			check("Input")
			p.collect(false, &out)
		}
	}
	if p.s.Phase() != PhaseNetwork {
		t.Fatalf("server %v; events %v", p.s.Phase(), kinds(p.sEvents))
	}
	p.s.Tick(p.now.Add(time.Hour), &out)
	check("Tick")
	p.s.Close(p.now, &out)
	check("Close")
	s, _ := NewSession(serverConfig(AuthCHAPMD5))
	s.StartProxy(t0, EvaluateProxy(&Config{Role: RoleServer, Auth: []AuthProto{AuthCHAPMD5}}, chapProxy(), RenegotiateNever), &out)
	if s.link.out != nil {
		t.Fatal("Output kept after StartProxy")
	}
}
