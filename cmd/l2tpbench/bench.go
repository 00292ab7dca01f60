package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/l2tpd/l2tpd/control/lac"
	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/ppp"
)

// options are the command line's settings.
type options struct {
	lns               netip.AddrPort
	secret            string
	hide              bool
	version           uint8
	tunnels, sessions int
	rate              float64
	concurrency       int
	auth              ppp.AuthProto
	userFmt, password string
	ipv6              bool
	traffic           float64
	trafficDst        netip.Addr
	duration, hold    time.Duration
	timeout           time.Duration
	echo              time.Duration
	storm             bool
	loss, reorder     float64
	shards, retries   int
	local             string
	retransmit        time.Duration
	progress          time.Duration
	redial            int
	pppRestart        time.Duration
	pppoe             pppoeOptions // -pppoe mode (pppoe.go)
	opening           int
}

// sub is one emulated subscriber: a PPP client on a LAC call.
type sub struct {
	b      *bench
	idx    int
	c      lac.Client
	dialed time.Time
	mark   time.Time // end of the last timed phase
	online bool
	tries  int // redials after failed setups
	ipcp   bool
	ipv6cp bool
	closed bool // counted as ended
	local  netip.Addr
	peer   netip.Addr
	// flow is what the traffic goroutine needs, published once online.
	flow atomic.Pointer[flow]
	// expired: the sweep hung the call up for taking longer than -timeout.
	expired atomic.Bool
}

type flow struct {
	key      datapath.SessionKey
	src, dst netip.Addr
	id       uint16
}

// bench runs the subscribers and keeps the figures.
type bench struct {
	o     options
	l     *lac.LAC
	cands []lac.LNS
	lat   latencies

	mu       sync.Mutex
	subs     []*sub
	byID     map[lac.CallID]*sub
	failures map[string]int
	retried  map[string]int

	attempted, up, failed, down atomic.Int64
	inSetup                     atomic.Int64
	slot                        chan struct{} // concurrency tokens
	allDone                     chan struct{} // closed when every attempt ended
	pending                     atomic.Int64  // attempts not yet ended in this round

	churning       atomic.Bool // -hold: redial what was hung up
	redialed       atomic.Uint64
	sent, received atomic.Uint64
	firstUp        atomic.Int64 // unix nanos
	lastUp         atomic.Int64
}

func newBench(o options, l *lac.LAC, cands []lac.LNS) *bench {
	b := &bench{o: o, l: l, cands: cands, byID: map[lac.CallID]*sub{}, failures: map[string]int{}, retried: map[string]int{}}
	b.slot = make(chan struct{}, o.concurrency)
	b.subs = make([]*sub, o.sessions)
	return b
}

func (b *bench) fail(reason string) {
	b.mu.Lock()
	b.failures[reason]++
	b.mu.Unlock()
}

// dialAll places every subscriber's call at the configured rate, at most
// concurrency in setup at once, and waits until each is up or failed.
func (b *bench) dialAll(ctx context.Context) {
	b.allDone = make(chan struct{})
	b.pending.Store(int64(b.o.sessions))
	start := time.Now()
	sctx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	go b.sweep(sctx)
	for i := 0; i < b.o.sessions; i++ {
		if b.o.rate > 0 {
			at := start.Add(time.Duration(float64(i) / b.o.rate * float64(time.Second)))
			if d := time.Until(at); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
		}
		select {
		case b.slot <- struct{}{}:
		case <-ctx.Done():
			return
		}
		b.dial(i, 0)
	}
	select {
	case <-b.allDone:
	case <-ctx.Done():
	}
}

// sweep hangs up the subscribers still in setup -timeout after their
// dial: the call's own timeout ends at session up, and a PPP that stalls
// afterwards would otherwise keep the run waiting.
func (b *bench) sweep(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var late []lac.CallID
		b.mu.Lock()
		for id, s := range b.byID {
			if s.flow.Load() == nil && time.Since(s.dialed) > b.o.timeout && !s.expired.Swap(true) {
				late = append(late, id)
			}
		}
		b.mu.Unlock()
		for _, id := range late {
			b.l.Hangup(id, tunnel.Result{Code: wire.CDNTimeout, Message: "l2tpbench setup timeout"}, nil)
		}
	}
}

// dial places subscriber i's call; tries > 0 is a redial after a failed
// setup, still counted as the same attempt.
func (b *bench) dial(i, tries int) {
	s := &sub{b: b, idx: i, tries: tries}
	user := b.o.userFmt
	if containsVerb(user) {
		user = fmt.Sprintf(user, i)
	}
	p, err := ppp.NewSession(ppp.Config{Role: ppp.RoleClient, Rand: rand.Reader, User: user, Password: b.o.password,
		Auth: []ppp.AuthProto{b.o.auth}, IPv4: true, IPv6: b.o.ipv6, EchoInterval: b.o.echo, AuthTimeout: 10 * time.Second,
		Timers: ppp.Timers{Restart: b.o.pppRestart}})
	if err != nil {
		b.ended(s, "ppp-config")
		return
	}
	s.c = lac.Client{LAC: b.l, PPP: p, OnUp: s.onUp, OnEvent: s.onEvent, OnData: s.onData, OnDown: s.onDown}
	s.dialed = time.Now()
	s.mark = s.dialed
	if tries == 0 {
		b.attempted.Add(1)
		b.inSetup.Add(1)
	}
	b.mu.Lock()
	b.subs[i] = s
	b.mu.Unlock()
	req := lac.CallRequest{UserName: user, CallingNumber: "l2tpbench-" + strconv.Itoa(i), TxSpeed: 100000000,
		Group: uint32(i%b.o.tunnels) + 1}
	id, err := b.l.Dial(req, b.cands, &s.c)
	if err != nil {
		b.ended(s, "dial")
		return
	}
	b.mu.Lock()
	b.byID[id] = s
	b.mu.Unlock()
}

// ended counts a subscriber whose setup finished without success.
func (b *bench) ended(s *sub, reason string) {
	if s.closed {
		return
	}
	s.closed = true
	if s.tries < b.o.redial {
		b.mu.Lock()
		b.retried[reason]++
		b.mu.Unlock()
		b.dial(s.idx, s.tries+1)
		return
	}
	b.failed.Add(1)
	b.fail(reason)
	b.setupDone()
}

func (b *bench) setupDone() {
	b.inSetup.Add(-1)
	select {
	case <-b.slot:
	default:
	}
	if b.pending.Add(-1) == 0 {
		close(b.allDone)
	}
}

func (s *sub) onUp(c *lac.Client, now time.Time) {
	b := s.b
	tunUp := c.Sess.TunnelUp
	if tunUp.Before(s.dialed) {
		tunUp = s.dialed
	}
	b.lat.add(phaseTunnel, tunUp.Sub(s.dialed))
	b.lat.add(phaseCall, now.Sub(tunUp))
	s.mark = now
}

func (s *sub) onEvent(c *lac.Client, e ppp.Event, now time.Time) {
	b := s.b
	switch e.Kind {
	case ppp.EventLinkUp:
		b.lat.add(phaseLCP, now.Sub(s.mark))
		s.mark = now
	case ppp.EventAuthenticated:
		b.lat.add(phaseAuth, now.Sub(s.mark))
		s.mark = now
	case ppp.EventNetworkUp:
		if e.Network.Protocol == ppp.ProtoIPCP {
			s.ipcp = true
			s.local, s.peer = e.Network.LocalIPv4, e.Network.PeerIPv4
		} else {
			s.ipv6cp = true
		}
		if !s.online && s.ipcp && (s.ipv6cp || !b.o.ipv6) {
			s.online = true
			b.lat.add(phaseIPCP, now.Sub(s.mark))
			b.lat.add(phaseTotal, now.Sub(s.dialed))
			b.up.Add(1)
			b.firstUp.CompareAndSwap(0, now.UnixNano())
			b.lastUp.Store(now.UnixNano())
			dst := b.o.trafficDst
			if !dst.IsValid() {
				dst = s.peer
			}
			s.flow.Store(&flow{key: c.Key, src: s.local, dst: dst, id: uint16(s.idx)})
			s.closed = true
			b.setupDone()
		}
	case ppp.EventLinkDown:
		if !s.closed {
			b.ended(s, "ppp-"+e.Reason.String())
		}
		b.l.Hangup(c.ID, tunnel.Result{Code: wire.CDNAdmin}, nil)
	}
}

func (s *sub) onData(c *lac.Client, d ppp.Datagram, now time.Time) {
	// ICMP Echo Reply (RFC 792) to one of ours.
	p := d.Packet
	if d.Protocol == ppp.ProtoIPv4 && len(p) >= 28 && p[9] == 1 && p[20] == 0 && binary.BigEndian.Uint16(p[24:]) == uint16(s.idx) {
		s.b.received.Add(1)
	}
}

func (s *sub) onDown(c *lac.Client, r lac.Reason) {
	b := s.b
	b.mu.Lock()
	delete(b.byID, c.ID)
	b.mu.Unlock()
	s.flow.Store(nil)
	if s.online {
		s.online = false
		b.up.Add(-1)
		b.down.Add(1)
		if b.churning.Load() {
			b.redialed.Add(1)
			b.dial(s.idx, 0)
		}
		return
	}
	reason := "cdn-" + strconv.Itoa(int(r.Result.Code))
	switch r.Err {
	case lac.ErrAllFailed:
		reason = "lns-unreachable"
		if r.Result.Code != 0 {
			reason = "refused-" + strconv.Itoa(int(r.Result.Code))
		}
	case lac.ErrSetupTimeout:
		reason = "setup-timeout"
	case lac.ErrStopped:
		reason = "stopped"
	case nil:
	default:
		reason = r.Err.Error()
	}
	if s.expired.Load() {
		reason = "setup-timeout"
	}
	b.ended(s, reason)
}

// hangupAll clears every call; it returns the number cleared.
func (b *bench) hangupAll() int {
	b.mu.Lock()
	ids := make([]lac.CallID, 0, len(b.byID))
	for id := range b.byID {
		ids = append(ids, id)
	}
	b.mu.Unlock()
	for _, id := range ids {
		b.l.Hangup(id, tunnel.Result{Code: wire.CDNAdmin, Message: "l2tpbench"}, nil)
	}
	return len(ids)
}

func (b *bench) calls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.byID)
}

// traffic sends ICMP Echo Requests from every online subscriber at pps
// each, to dst or to its PPP peer's address, until ctx ends.
func (b *bench) traffic(ctx context.Context, pps float64) {
	const tick = 10 * time.Millisecond
	credit := 0.0
	t := time.NewTicker(tick)
	defer t.Stop()
	frame := make([]byte, 0, 64)
	var seq uint16
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		subs := b.subs
		b.mu.Unlock()
		credit += pps * tick.Seconds() * float64(b.up.Load())
		for credit >= 1 && len(subs) > 0 {
			credit--
			for tries := 0; tries < len(subs); tries++ {
				s := subs[next%len(subs)]
				next++
				if s == nil {
					continue
				}
				f := s.flow.Load()
				if f == nil || !f.src.IsValid() || !f.dst.IsValid() {
					continue
				}
				seq++
				frame = appendEcho(frame[:0], f.src, f.dst, f.id, seq)
				if b.l.SendFrame(f.key, frame) == nil {
					b.sent.Add(1)
				}
				break
			}
		}
		if credit > 1000 {
			credit = 1000
		}
	}
}

// appendEcho writes a PPP IPv4 frame holding an ICMP Echo Request.
func appendEcho(b []byte, src, dst netip.Addr, id, seq uint16) []byte {
	b = append(b, 0x00, 0x21) // PPP protocol IPv4 (RFC 1332)
	ip := len(b)
	b = append(b, 0x45, 0, 0, 36, 0, 0, 0x40, 0, 64, 1, 0, 0)
	s4, d4 := src.As4(), dst.As4()
	b = append(b, s4[:]...)
	b = append(b, d4[:]...)
	binary.BigEndian.PutUint16(b[ip+10:], checksum(b[ip:ip+20]))
	icmp := len(b)
	b = append(b, 8, 0, 0, 0, byte(id>>8), byte(id), byte(seq>>8), byte(seq))
	b = append(b, "l2tpbench"[:8]...)
	binary.BigEndian.PutUint16(b[icmp+2:], checksum(b[icmp:]))
	return b
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func containsVerb(f string) bool {
	for i := 0; i+1 < len(f); i++ {
		if f[i] == '%' && f[i+1] != '%' {
			return true
		}
	}
	return false
}

var tunnelAdmin = tunnel.Result{Code: wire.CDNAdmin, Message: "l2tpbench hold time"}
