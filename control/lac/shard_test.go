package lac

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
)

// seeded is a deterministic Rand for reproducible transcripts.
type seeded struct{ r *rand.ChaCha8 }

func (s seeded) Read(b []byte) (int, error) { return s.r.Read(b) }

func newSeeded(n byte) seeded { return seeded{rand.NewChaCha8([32]byte{n})} }

// fakeLNS is an LNS built from the tunnel core in the responder role.
type fakeLNS struct {
	addr    netip.AddrPort
	tunnels map[uint32]*tunnel.Tunnel // by the LAC's tunnel ID
	// silent drops everything (a dead LNS); refuseTunnel answers SCCRQ
	// with StopCCN; refuseCalls answers ICRQ with CDN.
	silent, refuseTunnel, refuseCalls bool
	sccrqs                            int
	up                                []*tunnel.Session
}

// net connects one shard to fake LNSs in memory, with time by hand.
type fakeNet struct {
	t     *testing.T
	now   time.Time
	sh    *shard
	lns   map[netip.AddrPort]*fakeLNS
	queue []pending
	dp    *fakeDP
}

type pending struct {
	pkt  []byte
	to   netip.AddrPort
	from netip.AddrPort
}

type fakeDP struct {
	installed map[datapath.SessionKey]datapath.Session
}

func (d *fakeDP) Install(s datapath.Session) error { d.installed[s.Key] = s; return nil }
func (d *fakeDP) Remove(k datapath.SessionKey)     { delete(d.installed, k) }

var lacAddr = netip.MustParseAddrPort("192.0.2.1:40000")

func (n *fakeNet) WriteControl(pkt []byte, to netip.AddrPort) error {
	n.queue = append(n.queue, pending{pkt: append([]byte(nil), pkt...), to: to, from: lacAddr})
	return nil
}

func newFakeNet(t *testing.T, cfg Config, lns ...*fakeLNS) *fakeNet {
	cfg.Shards = 1
	if cfg.Rand == nil {
		cfg.Rand = newSeeded(1)
	}
	cfg.defaults()
	n := &fakeNet{t: t, now: time.Unix(1_700_000_000, 0), lns: map[netip.AddrPort]*fakeLNS{}, dp: &fakeDP{installed: map[datapath.SessionKey]datapath.Session{}}}
	l := &LAC{cfg: cfg, log: zap.NewNop()}
	l.dead.m = map[netip.AddrPort]time.Time{}
	l.opening.n = map[netip.AddrPort]int{}
	n.sh = newShard(l, 0, n)
	l.shards = []*shard{n.sh}
	n.sh.dp = n.dp
	for _, x := range lns {
		x.tunnels = map[uint32]*tunnel.Tunnel{}
		n.lns[x.addr] = x
	}
	return n
}

func newLNS(addr string) *fakeLNS { return &fakeLNS{addr: netip.MustParseAddrPort(addr)} }

// deliver runs packets both ways until the network is quiet.
func (n *fakeNet) deliver() {
	for len(n.queue) > 0 {
		p := n.queue[0]
		n.queue = n.queue[1:]
		if p.to == lacAddr {
			n.sh.receive(n.now, inPacket{buf: p.pkt, from: p.from})
			continue
		}
		x := n.lns[p.to]
		if x == nil {
			continue
		}
		h, _, err := wire.ParseHeader(p.pkt, wire.EncapUDP)
		if err != nil {
			n.t.Fatalf("LAC sent malformed packet: %v", err)
		}
		if x.silent {
			if h.TunnelID == 0 {
				x.sccrqs++
			}
			continue
		}
		var lt *tunnel.Tunnel
		if h.TunnelID == 0 {
			m, err := wire.ParseMessage(p.pkt, wire.EncapUDP, nil)
			if err != nil || m.Type != wire.MsgSCCRQ {
				continue
			}
			x.sccrqs++
			a, _ := m.Find(wire.VendorIETF, wire.AVPAssignedTunnelID)
			id, _ := a.Uint16()
			if lt = x.tunnels[uint32(id)]; lt == nil {
				lt = tunnel.NewResponder(n.now, tunnel.Config{LocalID: uint32(len(x.tunnels) + 100), HostName: "fake-lns", Rand: newSeeded(9),
					Admit: func() bool { return !x.refuseCalls }})
				x.tunnels[uint32(id)] = lt
				if x.refuseTunnel {
					lt.Refuse(n.now, p.pkt, tunnel.Result{Code: wire.ResultNotAuthorized, Message: "go away"})
					n.flushLNS(x, lt)
					continue
				}
			}
		} else {
			for _, t := range x.tunnels {
				if t.ID() == h.TunnelID {
					lt = t
				}
			}
			if lt == nil {
				continue
			}
		}
		lt.Receive(n.now, p.pkt)
		n.flushLNS(x, lt)
	}
}

func (n *fakeNet) flushLNS(x *fakeLNS, lt *tunnel.Tunnel) {
	for i := 0; i < 4; i++ {
		for _, out := range lt.Poll(n.now, nil) {
			n.queue = append(n.queue, pending{pkt: append([]byte(nil), out...), to: lacAddr, from: x.addr})
		}
		evs := lt.Events()
		if len(evs) == 0 {
			return
		}
		for _, ev := range evs {
			if ev.Kind == tunnel.SessionUp {
				x.up = append(x.up, ev.Session)
			}
		}
	}
}

// advance moves time forward in steps, running timers on both sides.
func (n *fakeNet) advance(d, step time.Duration) {
	end := n.now.Add(d)
	for n.now.Before(end) {
		n.now = n.now.Add(step)
		n.sh.expire(n.now)
		for _, x := range n.lns {
			for _, lt := range x.tunnels {
				n.flushLNS(x, lt)
			}
		}
		n.deliver()
	}
}

// recorder is a Handler that keeps what it hears.
type recorder struct {
	ups    []Session
	downs  map[CallID]Reason
	frames int
}

func newRecorder() *recorder { return &recorder{downs: map[CallID]Reason{}} }

func (r *recorder) Up(s Session)                  { r.ups = append(r.ups, s) }
func (r *recorder) Down(id CallID, reason Reason) { r.downs[id] = reason }
func (r *recorder) Frame(CallID, []byte)          { r.frames++ }

func (n *fakeNet) dial(id CallID, h Handler, cands ...LNS) {
	n.sh.dial(n.now, id, CallRequest{UserName: "u", CallingNumber: "00:11:22:33:44:55"}, cands, h)
	n.deliver()
}

// Two calls to one LNS share one tunnel (RFC 2661 §2: many sessions in a
// control connection); each session is installed in the datapath with
// the LNS's IDs (RFC 2661 §3.1 data header).
func TestDialReusesTunnel(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	n := newFakeNet(t, Config{}, a)
	r := newRecorder()
	lns := LNS{Name: "a", Addr: a.addr, Version: 2}
	n.dial(1, r, lns)
	n.dial(2, r, lns)
	if len(r.ups) != 2 || len(a.up) != 2 {
		t.Fatalf("ups %d at LAC, %d at LNS; downs %v", len(r.ups), len(a.up), r.downs)
	}
	if a.sccrqs != 1 || len(n.sh.tunnels) != 1 {
		t.Fatalf("%d SCCRQs, %d tunnels: want 1", a.sccrqs, len(n.sh.tunnels))
	}
	for _, s := range r.ups {
		d, ok := n.dp.installed[s.Key]
		if !ok || d.Peer != a.addr || d.PeerSession != s.PeerSessionID || d.PeerTunnel != s.PeerTunnelID || s.Version != 2 {
			t.Fatalf("session %+v installed as %+v (%v)", s, d, ok)
		}
	}
	if r.ups[0].Key == r.ups[1].Key {
		t.Fatal("two sessions with one key")
	}
}

// A candidate that never answers: after the retransmission cycle (RFC
// 2661 §5.8) the call moves to the next candidate, and the dead LNS is
// skipped by the next call while it is held down.
func TestFailoverOnTimeout(t *testing.T) {
	a, b := newLNS("198.51.100.1:1701"), newLNS("198.51.100.2:1701")
	a.silent = true
	n := newFakeNet(t, Config{RetransmitInitial: time.Second, RetransmitCap: 2 * time.Second, MaxRetransmits: 3, HoldDown: time.Minute}, a, b)
	r := newRecorder()
	cands := []LNS{{Name: "a", Addr: a.addr, Version: 2, Preference: 1}, {Name: "b", Addr: b.addr, Version: 2, Preference: 2}}
	n.dial(1, r, cands...)
	if len(r.ups) != 0 {
		t.Fatal("up before any answer")
	}
	n.advance(5*time.Second, 100*time.Millisecond)
	if len(r.ups) != 0 {
		t.Fatal("failed over before the retransmissions ran out")
	}
	n.advance(10*time.Second, 100*time.Millisecond)
	if len(r.ups) != 1 || r.ups[0].LNS.Name != "b" || r.ups[0].Attempts != 2 {
		t.Fatalf("ups %+v downs %v", r.ups, r.downs)
	}
	if n.sh.ctr.tunnelsFailed.Load() != 1 || n.sh.ctr.failovers.Load() != 1 || n.sh.ctr.retransmits.Load() != 3 {
		t.Fatalf("tunnels failed %d, failovers %d, retransmissions %d", n.sh.ctr.tunnelsFailed.Load(), n.sh.ctr.failovers.Load(),
			n.sh.ctr.retransmits.Load())
	}
	// Held down: the next call goes straight to b.
	n.dial(2, r, cands...)
	if len(r.ups) != 2 || r.ups[1].LNS.Name != "b" || r.ups[1].Attempts != 1 {
		t.Fatalf("second call %+v", r.ups)
	}
	// After the hold-down, a is preferred again.
	n.advance(time.Minute, time.Second)
	n.dial(3, r, cands...)
	if a.sccrqs < 5 {
		t.Fatalf("a got %d SCCRQs: hold-down did not expire", a.sccrqs)
	}
}

// An LNS that answers SCCRQ with StopCCN (RFC 2661 §7.2.1) fails over at
// once, without waiting for a timeout.
func TestFailoverOnStopCCN(t *testing.T) {
	a, b := newLNS("198.51.100.1:1701"), newLNS("198.51.100.2:1701")
	a.refuseTunnel = true
	n := newFakeNet(t, Config{}, a, b)
	r := newRecorder()
	n.dial(1, r, LNS{Name: "a", Addr: a.addr, Version: 2}, LNS{Name: "b", Addr: b.addr, Version: 2, Preference: 5})
	if len(r.ups) != 1 || r.ups[0].LNS.Name != "b" {
		t.Fatalf("ups %+v downs %v", r.ups, r.downs)
	}
	if !n.sh.dead.isDead(a.addr, n.now) {
		t.Fatal("refusing LNS not held down")
	}
}

// A call refused with a CDN (RFC 2661 §5.6) moves to the next candidate;
// the refusing LNS is not held down, since its tunnel works.
func TestFailoverOnCDN(t *testing.T) {
	a, b := newLNS("198.51.100.1:1701"), newLNS("198.51.100.2:1701")
	a.refuseCalls = true
	n := newFakeNet(t, Config{}, a, b)
	r := newRecorder()
	n.dial(1, r, LNS{Name: "a", Addr: a.addr, Version: 2, Preference: 1}, LNS{Name: "b", Addr: b.addr, Version: 2, Preference: 2})
	if len(r.ups) != 1 || r.ups[0].LNS.Name != "b" {
		t.Fatalf("ups %+v downs %v", r.ups, r.downs)
	}
	if n.sh.dead.isDead(a.addr, n.now) {
		t.Fatal("LNS held down for refusing a call")
	}
}

// With every candidate dead the call ends with ErrAllFailed and the last
// result the LAC saw.
func TestAllCandidatesFail(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	a.refuseCalls = true
	n := newFakeNet(t, Config{}, a)
	r := newRecorder()
	n.dial(7, r, LNS{Addr: a.addr, Version: 2})
	d, ok := r.downs[7]
	if !ok || !errors.Is(d.Err, ErrAllFailed) || d.Result.Code != wire.CDNNoResourcesTemp {
		t.Fatalf("down %+v %v", d, ok)
	}
	if len(n.sh.calls) != 0 {
		t.Fatal("failed call kept")
	}
}

// MaxSessionsPerTunnel opens a second tunnel to the same LNS.
func TestSessionsPerTunnel(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	n := newFakeNet(t, Config{}, a)
	r := newRecorder()
	lns := LNS{Addr: a.addr, Version: 2, MaxSessionsPerTunnel: 2}
	for i := CallID(1); i <= 5; i++ {
		n.dial(i, r, lns)
	}
	if len(r.ups) != 5 || len(n.sh.tunnels) != 3 {
		t.Fatalf("%d up over %d tunnels, want 5 over 3", len(r.ups), len(n.sh.tunnels))
	}
}

// Hangup sends a CDN (RFC 2661 §5.6), removes the session from the
// datapath and reports Down; the idle tunnel closes after TunnelIdle
// with StopCCN result 1 (RFC 2661 §4.4.2).
func TestHangupAndIdleClose(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	n := newFakeNet(t, Config{TunnelIdle: 10 * time.Second}, a)
	r := newRecorder()
	n.dial(1, r, LNS{Addr: a.addr, Version: 2})
	if len(r.ups) != 1 {
		t.Fatal("not up")
	}
	n.sh.hangup(n.now, 1, tunnel.Result{Code: wire.CDNAdmin}, nil)
	n.deliver()
	d, ok := r.downs[1]
	if !ok || d.ByPeer || d.Result.Code != wire.CDNAdmin || len(n.dp.installed) != 0 {
		t.Fatalf("down %+v %v installed %v", d, ok, n.dp.installed)
	}
	var lt *tunnel.Tunnel
	for _, x := range a.tunnels {
		lt = x
	}
	if lt.NumSessions() != 0 {
		t.Fatal("LNS still has the session")
	}
	n.advance(5*time.Second, time.Second)
	if len(n.sh.tunnels) != 1 {
		t.Fatal("tunnel closed before the idle time")
	}
	n.advance(10*time.Second, time.Second)
	if len(n.sh.tunnels) != 0 || lt.State() != tunnel.StateClosed && lt.State() != tunnel.StateClosing {
		t.Fatalf("tunnel not closed when idle: LAC %d tunnels, LNS %v", len(n.sh.tunnels), lt.State())
	}
	if lt.CloseResult().Code != wire.ResultClearConnection {
		t.Fatalf("StopCCN result %+v", lt.CloseResult())
	}
}

// The LNS clearing a session is reported with its result (ByPeer).
func TestPeerCDN(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	n := newFakeNet(t, Config{}, a)
	r := newRecorder()
	n.dial(1, r, LNS{Addr: a.addr, Version: 2})
	var lt *tunnel.Tunnel
	for _, x := range a.tunnels {
		lt = x
	}
	lt.CloseSession(n.now, a.up[0].ID, tunnel.Result{Code: wire.CDNAdmin, Message: "bye"}, &tunnel.Disconnect{Code: 16, Message: "auth"})
	n.flushLNS(a, lt)
	n.deliver()
	d, ok := r.downs[1]
	if !ok || !d.ByPeer || d.Result.Code != wire.CDNAdmin || d.Cause == nil || d.Cause.Code != 16 {
		t.Fatalf("down %+v %v", d, ok)
	}
}

// A call that cannot come up within SetupTimeout ends with
// ErrSetupTimeout even while a candidate is still being tried.
func TestSetupTimeout(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	a.silent = true
	n := newFakeNet(t, Config{SetupTimeout: 3 * time.Second}, a)
	r := newRecorder()
	n.dial(1, r, LNS{Addr: a.addr, Version: 2})
	n.advance(4*time.Second, 100*time.Millisecond)
	if d, ok := r.downs[1]; !ok || !errors.Is(d.Err, ErrSetupTimeout) {
		t.Fatalf("down %+v %v", d, ok)
	}
}

// Handler timers fire at their deadline, and only the latest one.
func TestHandlerTimer(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	n := newFakeNet(t, Config{}, a)
	r := &tickRecorder{recorder: newRecorder()}
	n.dial(1, r, LNS{Addr: a.addr, Version: 2})
	n.sh.setTimer(1, n.now.Add(time.Second))
	n.sh.setTimer(1, n.now.Add(2*time.Second))
	n.advance(1500*time.Millisecond, 100*time.Millisecond)
	if r.ticks != 0 {
		t.Fatal("replaced timer fired")
	}
	n.advance(time.Second, 100*time.Millisecond)
	if r.ticks != 1 {
		t.Fatalf("%d ticks, want 1", r.ticks)
	}
}

type tickRecorder struct {
	*recorder
	ticks int
}

func (r *tickRecorder) Tick(CallID, time.Time) { r.ticks++ }

// L2TPv3 sessions are keyed by session ID alone, kept in the shard's
// residue class.
func TestV3SessionKeys(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	n := newFakeNet(t, Config{}, a)
	n.sh.n, n.sh.index = 4, 3
	r := newRecorder()
	for i := CallID(1); i <= 3; i++ {
		n.dial(i, r, LNS{Addr: a.addr, Version: 3})
	}
	if len(r.ups) != 3 {
		t.Fatalf("ups %+v downs %v", r.ups, r.downs)
	}
	for _, s := range r.ups {
		if s.Key.Version != 3 || s.Key.Tunnel != 0 || s.Key.Session%4 != 3 || s.TunnelID%4 != 3 {
			t.Fatalf("session %+v", s)
		}
	}
}

// orderingNet records, when the ICCN leaves, whether the session is
// already installed and whether the handler was already told.
type orderingNet struct {
	*fakeNet
	r                         *recorder
	iccnSeen, installedAtICCN bool
	upBeforeICCN              bool
}

func (o *orderingNet) WriteControl(pkt []byte, to netip.AddrPort) error {
	if m, err := wire.ParseMessage(pkt, wire.EncapUDP, nil); err == nil && m.Type == wire.MsgICCN {
		o.iccnSeen = true
		o.installedAtICCN = len(o.dp.installed) == 1
		o.upBeforeICCN = len(o.r.ups) > 0
	}
	return o.fakeNet.WriteControl(pkt, to)
}

// The LNS sends its first LCP Configure-Request as soon as it has our
// ICCN (RFC 2661 §5.2 leaves no gap): the session must be in the datapath
// before the ICCN leaves, and our own PPP must not start before it.
func TestInstalledBeforeICCN(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	n := newFakeNet(t, Config{}, a)
	o := &orderingNet{fakeNet: n, r: newRecorder()}
	n.sh.out = o
	n.dial(1, o.r, LNS{Addr: a.addr, Version: 2})
	if !o.iccnSeen || !o.installedAtICCN || o.upBeforeICCN || len(o.r.ups) != 1 {
		t.Fatalf("ICCN %v installed %v handler told before %v ups %d", o.iccnSeen, o.installedAtICCN, o.upBeforeICCN, len(o.r.ups))
	}
}

// iccnNet remembers the LNS session IDs of the ICCNs sent so far.
type iccnNet struct {
	*fakeNet
	sent map[uint32]bool
}

func (o *iccnNet) WriteControl(pkt []byte, to netip.AddrPort) error {
	if m, err := wire.ParseMessage(pkt, wire.EncapUDP, nil); err == nil && m.Type == wire.MsgICCN {
		o.sent[m.Header.SessionID] = true
	}
	return o.fakeNet.WriteControl(pkt, to)
}

type iccnChecker struct {
	*recorder
	net  *iccnNet
	t    *testing.T
	late int
}

func (c *iccnChecker) Up(s Session) {
	if !c.net.sent[s.PeerSessionID] {
		c.late++
	}
	c.recorder.Up(s)
}

// With the LNS's receive window full (RFC 2661 §5.8), ICCNs wait in the
// control channel; each handler hears of its session only once its own
// ICCN left, so PPP never overtakes it.
func TestUpWaitsForQueuedICCN(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	n := newFakeNet(t, Config{}, a)
	o := &iccnNet{fakeNet: n, sent: map[uint32]bool{}}
	n.sh.out = o
	h := &iccnChecker{recorder: newRecorder(), net: o, t: t}
	lns := LNS{Addr: a.addr, Version: 2}
	n.dial(1, h, lns) // the tunnel is up now
	// The LNS advertised a window of 16; 30 calls at once queue ICRQs and
	// then ICCNs behind it.
	for i := CallID(2); i <= 30; i++ {
		n.sh.dial(n.now, i, CallRequest{}, []LNS{lns}, h)
	}
	n.deliver()
	n.advance(5*time.Second, 100*time.Millisecond)
	if len(h.ups) != 30 || h.late != 0 {
		t.Fatalf("%d up, %d told before their ICCN left", len(h.ups), h.late)
	}
}

// Tunnels to one LNS open one at a time by default (l2tpns takes a second
// SCCRQ from the same address and port, while the first tunnel is still
// opening, for a duplicate of it); the calls that wait are placed as soon
// as the first tunnel is up.
func TestOneTunnelOpeningPerLNS(t *testing.T) {
	a := newLNS("198.51.100.1:1701")
	n := newFakeNet(t, Config{}, a)
	r := newRecorder()
	lns := LNS{Addr: a.addr, Version: 2}
	for g := uint32(1); g <= 3; g++ {
		n.sh.dial(n.now, CallID(g), CallRequest{Group: g}, []LNS{lns}, r)
	}
	if len(n.queue) != 1 || len(n.sh.deferred) != 2 {
		t.Fatalf("%d SCCRQs sent at once, %d calls waiting; want 1 and 2", len(n.queue), len(n.sh.deferred))
	}
	// The next SCCRQ leaves only after the first tunnel's SCCCN.
	o := &orderNet{fakeNet: n}
	n.sh.out = o
	n.deliver()
	var order []wire.MsgType
	for _, m := range o.types {
		if m == wire.MsgSCCCN || m == wire.MsgSCCRQ {
			order = append(order, m)
		}
	}
	want := []wire.MsgType{wire.MsgSCCCN, wire.MsgSCCRQ, wire.MsgSCCCN, wire.MsgSCCRQ, wire.MsgSCCCN}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("sent after the first SCCRP: %v", o.types)
	}
	if len(r.ups) != 3 || a.sccrqs != 3 || len(n.sh.tunnels) != 3 {
		t.Fatalf("%d up, %d SCCRQs, %d tunnels", len(r.ups), a.sccrqs, len(n.sh.tunnels))
	}
	// MaxOpening raises the bound.
	b := newLNS("198.51.100.2:1701")
	n2 := newFakeNet(t, Config{}, b)
	for g := uint32(1); g <= 3; g++ {
		n2.sh.dial(n2.now, CallID(g), CallRequest{Group: g}, []LNS{{Addr: b.addr, Version: 2, MaxOpening: 8}}, r)
	}
	if len(n2.queue) != 3 {
		t.Fatalf("%d SCCRQs sent at once with MaxOpening 8", len(n2.queue))
	}
}

// orderNet records the message types sent.
type orderNet struct {
	*fakeNet
	types []wire.MsgType
}

func (o *orderNet) WriteControl(pkt []byte, to netip.AddrPort) error {
	if m, err := wire.ParseMessage(pkt, wire.EncapUDP, nil); err == nil {
		o.types = append(o.types, m.Type)
	}
	return o.fakeNet.WriteControl(pkt, to)
}
