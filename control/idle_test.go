package control

import (
	mrand "math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/ppp"
)

// chachaReader is a reproducible randomness source.
type chachaReader struct{ r *mrand.ChaCha8 }

func newChacha(seed byte) *chachaReader {
	var s [32]byte
	s[0] = seed
	return &chachaReader{mrand.NewChaCha8(s)}
}

func (c *chachaReader) Read(b []byte) (int, error) { return c.r.Read(b) }

// echoDP is a dataplane that records the frames sent down and queues
// the subscriber's answers to be fed back after the shard's step.
type echoDP struct {
	now     *time.Time
	clients map[datapath.SessionKey]*ppp.Session
	sent    map[datapath.SessionKey][]time.Time // Echo-Requests
	replies []keyedFrame
	out     ppp.Output
	// mute stops the clients from answering.
	mute bool
}

type keyedFrame struct {
	key datapath.SessionKey
	b   []byte
}

func (d *echoDP) Install(datapath.Session) error { return nil }
func (d *echoDP) Remove(datapath.SessionKey)     {}
func (d *echoDP) Counters(datapath.SessionKey) (datapath.Counters, bool) {
	return datapath.Counters{}, true
}

func (d *echoDP) SendFrame(key datapath.SessionKey, f []byte) error {
	if len(f) >= 2 && f[0] == 0xff && f[1] == 0x03 {
		f = f[2:]
	}
	// LCP (c021) Echo-Request (code 9)
	if len(f) >= 3 && f[0] == 0xc0 && f[1] == 0x21 && f[2] == 9 {
		d.sent[key] = append(d.sent[key], *d.now)
	}
	if d.mute {
		return nil
	}
	c := d.clients[key]
	c.Input(*d.now, f, &d.out)
	for i := 0; i < d.out.NumFrames(); i++ {
		d.replies = append(d.replies, keyedFrame{key, append([]byte(nil), d.out.Frame(i)...)})
	}
	d.out.Reset()
	return nil
}

// openPair brings a server engine (as the shard runs it) and a client
// up to IPCP Opened back to back at time now.
func openPair(t *testing.T, now time.Time, seed byte) (srv, cli *ppp.Session) {
	t.Helper()
	srv, err := ppp.NewSession(ppp.Config{Role: ppp.RoleServer, Rand: newChacha(seed), Name: "lns", IPv4: true,
		LocalIPv4: netip.MustParseAddr("10.0.0.1"), PeerIPv4: netip.MustParseAddr("10.0.0.2"),
		EchoInterval: 30 * time.Second, EchoFailures: 3})
	if err != nil {
		t.Fatal(err)
	}
	cli, err = ppp.NewSession(ppp.Config{Role: ppp.RoleClient, Rand: newChacha(seed + 100), IPv4: true})
	if err != nil {
		t.Fatal(err)
	}
	var so, co ppp.Output
	srv.Start(now, &so)
	cli.Start(now, &co)
	for i := 0; i < 50 && (srv.IPCPState() != ppp.StateOpened || cli.IPCPState() != ppp.StateOpened); i++ {
		var fs, fc [][]byte
		for j := 0; j < so.NumFrames(); j++ {
			fs = append(fs, append([]byte(nil), so.Frame(j)...))
		}
		for j := 0; j < co.NumFrames(); j++ {
			fc = append(fc, append([]byte(nil), co.Frame(j)...))
		}
		so.Reset()
		co.Reset()
		for _, f := range fs {
			cli.Input(now, f, &co)
		}
		for _, f := range fc {
			srv.Input(now, f, &so)
		}
	}
	if srv.IPCPState() != ppp.StateOpened {
		t.Fatalf("server IPCP %v", srv.IPCPState())
	}
	return srv, cli
}

// idleShard is a shard with n online subscribers on one tunnel, the
// i-th brought up at start+i*spacing, and its dataplane.
func idleShard(t *testing.T, n int, start time.Time, spacing time.Duration) (*shard, *echoDP, *time.Time) {
	t.Helper()
	now := new(time.Time)
	dp := &echoDP{now: now, clients: map[datapath.SessionKey]*ppp.Session{}, sent: map[datapath.SessionKey][]time.Time{}}
	srv := &Server{dp: dp, log: zap.NewNop()}
	cfg := DefaultConfig()
	srv.snap.Store(&snapshot{cfg: &cfg})
	sh := &shard{srv: srv, tunnels: map[uint32]*entry{}, byPeer: map[peerKey]uint32{}, halfOpen: map[netip.Addr]int{},
		perPeer: map[netip.Addr]int{}, subs: map[datapath.SessionKey]*subscriber{}, captures: map[uint32]*capture{},
		counters: map[string]uint64{}, admPeers: map[netip.Addr]*peerAdmission{}}
	tun := tunnel.NewResponder(start, tunnel.Config{Version: 2, LocalID: 7, Rand: newChacha(9)})
	e := &entry{t: tun}
	sh.tunnels[7] = e
	for i := 0; i < n; i++ {
		at := start.Add(time.Duration(i) * spacing)
		eng, cli := openPair(t, at, byte(i))
		s := &tunnel.Session{ID: uint32(i + 1)}
		sub := &subscriber{e: e, sess: s, key: sessionKey(tun, s.ID), eng: eng, ipcpUp: true}
		sh.subs[sub.key] = sub
		dp.clients[sub.key] = cli
		sh.schedule(sub)
	}
	return sh, dp, now
}

// runUntil plays the shard's loop by hand: wake at the earliest
// deadline (3 ms late, as a real timer is), expire, feed back the
// answers. It returns the wake-ups.
func runUntil(sh *shard, dp *echoDP, now *time.Time, end time.Time) int {
	wakeups := 0
	for {
		at, ok := sh.timers.Next()
		if !ok || at.After(end) {
			break
		}
		*now = at.Add(3 * time.Millisecond)
		wakeups++
		sh.expire(*now)
		replies := dp.replies
		dp.replies = nil
		for _, r := range replies {
			sh.frame(r.key, r.b, *now)
		}
	}
	return wakeups
}

func TestIdleDeadline(t *testing.T) {
	base := time.Now()
	for _, off := range []time.Duration{0, 1, idleTick - 1, idleTick, idleTick + 1, 7 * time.Second, 30*time.Second + 123456789} {
		d := base.Add(off)
		r := idleDeadline(d)
		if r.Before(d) || r.Sub(d) >= idleTick {
			t.Fatalf("%v rounded to %v", d, r)
		}
		if r.UnixNano()%int64(idleTick) != 0 {
			t.Fatalf("%v is off the grid", r)
		}
		if !idleDeadline(r).Equal(r) {
			t.Fatalf("rounding %v again moved it", r)
		}
		// The monotonic reading is kept: Sub agrees with the wall clock.
		if r.Sub(d) != time.Duration(r.UnixNano()-d.UnixNano()) {
			t.Fatalf("monotonic reading lost: %v", r.Sub(d))
		}
	}
	pre := time.Unix(-10, 123)
	if r := idleDeadline(pre); r.Before(pre) || r.UnixNano()%int64(idleTick) != 0 || r.Sub(pre) >= idleTick {
		t.Fatalf("%v rounded to %v", pre, r)
	}
}

// RFC 1661 §5.8 keepalive at scale: online subscribers' Echo-Requests
// share the shard's wake-ups (one per idleTick at most) while each
// subscriber still sends one every echo_interval, answered ones never
// counting as failures.
func TestIdleEchoesShareWakeups(t *testing.T) {
	start := time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC)
	const n, spacing = 600, 50 * time.Millisecond // up over 30 s
	sh, dp, now := idleShard(t, n, start, spacing)
	end := start.Add(100 * time.Second)
	wakeups := runUntil(sh, dp, now, end)

	// Without rounding each subscriber would wake the shard on its own
	// (600 × 3 echoes in the window); on the grid at most one wake-up
	// per slot.
	if slots := int(end.Sub(start)/idleTick) + 1; wakeups > slots {
		t.Fatalf("%d wake-ups for %d slots", wakeups, slots)
	}
	total := 0
	for i := 0; i < n; i++ {
		key := datapath.SessionKey{Version: 2, Tunnel: 7, Session: uint32(i + 1)}
		up := start.Add(time.Duration(i) * spacing)
		got := dp.sent[key]
		total += len(got)
		// The first echo one interval after LCP opened, late by less
		// than idleTick; then exactly every interval.
		first := up.Add(30 * time.Second)
		want := 0
		for at := idleDeadline(first); !at.After(end); at = at.Add(30 * time.Second) {
			want++
		}
		if len(got) != want {
			t.Fatalf("session %d: %d echoes, want %d", i+1, len(got), want)
		}
		if d := got[0].Sub(first); d < 0 || d >= idleTick+3*time.Millisecond {
			t.Fatalf("session %d: first echo %v after the interval", i+1, d)
		}
		for j := 1; j < len(got); j++ {
			if d := got[j].Sub(got[j-1]); d != 30*time.Second {
				t.Fatalf("session %d: echo %d came %v after the previous one", i+1, j, d)
			}
		}
		if sh.subs[key] == nil || sh.subs[key].eng.Down() {
			t.Fatalf("session %d went down with every echo answered", i+1)
		}

	}
	// Between wake-ups an online subscriber holds no output buffers of
	// its own: the shard lends it its spare for the wake-up.
	*now, _ = sh.timers.Next()
	sh.expire(*now)
	if len(dp.replies) == 0 {
		t.Fatal("no Echo-Request sent")
	}
	for key, sub := range sh.subs {
		if sub.out != nil {
			t.Fatalf("session %d keeps an output: %+v", key.Session, *sub.out)
		}
	}
	if wakeups*4 > total {
		t.Fatalf("%d wake-ups for %d echoes: not shared", wakeups, total)
	}
	t.Logf("%d echoes in %d wake-ups", total, wakeups)
}

// RFC 1661 §5.8: a subscriber that stops answering is declared dead
// after echo_failures unanswered requests, each an interval apart, as
// without rounding.
func TestIdleEchoFailuresCounted(t *testing.T) {
	start := time.Date(2026, 11, 26, 12, 0, 0, 987654321, time.UTC)
	sh, dp, now := idleShard(t, 1, start, 0)
	dp.mute = true
	key := datapath.SessionKey{Version: 2, Tunnel: 7, Session: 1}
	sub := sh.subs[key]
	var downAt time.Time
	for sh.timers.Len() > 0 && downAt.IsZero() {
		*now, _ = sh.timers.Next()
		sh.expire(*now)
		if sub.eng.Down() || sub.closing {
			downAt = *now
		}
		if now.Sub(start) > 5*time.Minute {
			break
		}
	}
	got := dp.sent[key]
	if len(got) != 3 {
		t.Fatalf("%d echoes before the link was declared dead, want 3", len(got))
	}
	first := start.Add(30 * time.Second)
	if d := got[0].Sub(first); d < 0 || d >= idleTick {
		t.Fatalf("first echo %v after the interval", d)
	}
	if got[1].Sub(got[0]) != 30*time.Second || got[2].Sub(got[1]) != 30*time.Second {
		t.Fatalf("echoes at %v", got)
	}
	if downAt.IsZero() || downAt.Sub(got[2]) != 30*time.Second {
		t.Fatalf("link declared dead at %v, last echo at %v", downAt, got[2])
	}
	if sh.counters["ppp_down_echo_timeout"] != 1 {
		t.Fatalf("counters %v", sh.counters)
	}
}
