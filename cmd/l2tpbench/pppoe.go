package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/l2tpd/l2tpd/datapath/pppoe"
	"github.com/l2tpd/l2tpd/ppp"
)

// pppoeOptions are the settings of the PPPoE client mode: emulated
// subscribers on an Ethernet interface, against a LAC or a BRAS, instead
// of L2TP calls.
type pppoeOptions struct {
	iface   string
	clients int
	macBase string
	service string
	acName  string
}

func pppoeFlags(fs *flag.FlagSet, p *pppoeOptions) {
	fs.StringVar(&p.iface, "pppoe", "", "PPPoE client mode: run the subscribers on this Ethernet interface (RFC 2516) instead of over L2TP; -lns is not used")
	fs.IntVar(&p.clients, "clients", 0, "PPPoE clients (default: -sessions), each with its own MAC address")
	fs.StringVar(&p.macBase, "mac-base", "02:50:00:00:00:00", "MAC address of the first PPPoE client; the others count up from it")
	fs.StringVar(&p.service, "service", "", "PPPoE Service-Name to ask for (empty: any)")
	fs.StringVar(&p.acName, "ac-name", "", "take only PADOs with this AC-Name (empty: the first)")
}

// PPPoE setup phases, each timed from the end of the one before (RFC
// 2516 §5, then RFC 1661 §3.2).
const (
	poeDiscovery = iota // PADI to PADS
	poeLCP              // PADS to LCP Opened
	poeAuth             // LCP Opened to authentication done
	poeIPCP             // authentication done to IPCP Opened
	poeTotal            // PADI to online
	poePhases
)

var poePhaseNames = [poePhases]string{"discovery", "lcp", "auth", "ipcp", "total"}

// poeSub is one emulated PPPoE subscriber.
type poeSub struct {
	idx     int
	mac     pppoe.MAC
	disc    *pppoe.Client
	eng     *ppp.Session
	started time.Time
	mark    time.Time
	online  bool
	done    bool // online or failed: counted
	local   netip.Addr
	peer    netip.Addr
}

// poeBench runs the PPPoE subscribers on one socket: one reader
// goroutine and one timer goroutine, whatever their number.
type poeBench struct {
	o    options
	conn *pppoe.Conn
	mu   sync.Mutex
	subs []*poeSub
	by   map[pppoe.MAC]*poeSub
	out  ppp.Output
	next int // subscribers started

	inSetup, up, failed, attempted int64
	failures                       map[string]int
	lat                            [poePhases][]float32
	firstUp, lastUp                time.Time
	sent, received                 uint64
	echoID                         uint16
}

// runPPPoE is run for the PPPoE client mode.
func runPPPoE(ctx context.Context, o options, stderr io.Writer) (*Report, error) {
	p := o.pppoe
	n := p.clients
	if n <= 0 {
		n = o.sessions
	}
	base, err := pppoe.ParseMAC(p.macBase)
	if err != nil || !base.IsUnicast() {
		return nil, fmt.Errorf("-mac-base %q: a unicast MAC address", p.macBase)
	}
	if n > 1<<24 || int(base[3])<<16|int(base[4])<<8|int(base[5])+n > 1<<24 {
		return nil, fmt.Errorf("-clients %d do not fit after -mac-base %v", n, base)
	}
	conn, err := pppoe.Listen(p.iface, pppoe.ListenOptions{Promisc: true, Batch: 128})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rep := &Report{Started: time.Now().UTC(), LNS: "pppoe:" + p.iface, Auth: o.auth.String(), Sessions: n}
	b := &poeBench{o: o, conn: conn, by: map[pppoe.MAC]*poeSub{}, failures: map[string]int{}, echoID: uint16(time.Now().UnixNano())}
	first := uint32(base[3])<<16 | uint32(base[4])<<8 | uint32(base[5])
	for i := 0; i < n; i++ {
		m := base
		v := first + uint32(i)
		m[3], m[4], m[5] = byte(v>>16), byte(v>>8), byte(v)
		uniq := make([]byte, 4)
		binary.BigEndian.PutUint32(uniq, uint32(i))
		s := &poeSub{idx: i, mac: m, disc: pppoe.NewClient(pppoe.ClientConfig{MAC: m, ServiceName: p.service, ACName: p.acName,
			HostUniq: uniq, Timeout: time.Second, Retries: 5})}
		b.subs = append(b.subs, s)
		b.by[m] = s
	}
	rctx, stopReader := context.WithCancel(context.Background())
	readerDone := make(chan error, 1)
	go func() { readerDone <- conn.Run(rctx, b.input) }()
	defer func() {
		stopReader()
		<-readerDone
	}()

	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	lastProgress := start
	credit := 0.0
	for {
		var now time.Time
		select {
		case <-ctx.Done():
			now = time.Now()
		case now = <-tick.C:
		}
		b.mu.Lock()
		if o.rate > 0 {
			credit += o.rate * 0.01
		} else {
			credit = float64(n)
		}
		for b.next < n && b.inSetup < int64(o.concurrency) && credit >= 1 && ctx.Err() == nil {
			credit--
			s := b.subs[b.next]
			b.next++
			b.attempted++
			b.inSetup++
			s.started, s.mark = now, now
			_ = conn.Write(s.disc.Start(now, nil))
		}
		b.tick(now)
		finished := b.next == n && b.inSetup == 0
		b.mu.Unlock()
		if o.progress > 0 && now.Sub(lastProgress) >= o.progress {
			lastProgress = now
			b.progressLine(stderr, start)
		}
		if finished || ctx.Err() != nil {
			break
		}
	}
	b.mu.Lock()
	rep.Attempted, rep.Up, rep.Failed = b.attempted, b.up, b.failed
	rep.FailedBy = copyMap(b.failures)
	if !b.lastUp.IsZero() {
		rep.SetupSeconds = b.lastUp.Sub(start).Seconds()
		if rep.SetupSeconds > 0 {
			rep.SetupRate = float64(b.up) / rep.SetupSeconds
		}
	}
	rep.Latency = map[string]Percentiles{}
	for i := range b.lat {
		rep.Latency[poePhaseNames[i]] = percentiles(b.lat[i])
	}
	b.mu.Unlock()
	rep.RSSBytes = rss()
	if rep.Up > 0 {
		rep.RSSPerSession = float64(rep.RSSBytes) / float64(rep.Up)
	}
	rep.Goroutines = runtime.NumGoroutine()

	if o.duration > 0 && ctx.Err() == nil {
		tctx, stop := context.WithTimeout(ctx, o.duration)
		t0 := time.Now()
		b.steady(tctx, o.traffic)
		stop()
		time.Sleep(200 * time.Millisecond) // the last echo replies
		b.mu.Lock()
		rep.DataSent, rep.DataReceived = b.sent, b.received
		b.mu.Unlock()
		rep.DataPPS = float64(rep.DataReceived) / time.Since(t0).Seconds()
	}
	// Orderly end: LCP Terminate-Request, then PADT (RFC 2516 §5.5).
	b.mu.Lock()
	now := time.Now()
	for _, s := range b.subs {
		if s.eng != nil && !s.eng.Down() {
			s.eng.Close(now, &b.out)
			b.flush(s, now)
		}
	}
	b.mu.Unlock()
	time.Sleep(100 * time.Millisecond)
	b.mu.Lock()
	var padts [][]byte
	for _, s := range b.subs {
		if f := s.disc.Close(nil); len(f) > 0 {
			padts = append(padts, f)
		}
	}
	b.mu.Unlock()
	if len(padts) > 0 {
		_, _ = conn.WriteBatch(padts)
	}
	rep.DurationSecond = time.Since(start).Seconds()
	if o.progress > 0 {
		b.progressLine(stderr, start)
		fmt.Fprintln(stderr)
	}
	return rep, nil
}

func (b *poeBench) progressLine(w io.Writer, start time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(w, "\r%6.1fs pppoe up %d failed %d in setup %d of %d", time.Since(start).Seconds(), b.up, b.failed, b.inSetup, len(b.subs))
}

// input handles one frame on the reader goroutine.
func (b *poeBench) input(f *pppoe.Frame, pkt []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.by[f.Dst]
	if s == nil || s.done && !s.online {
		return
	}
	now := time.Now()
	if f.Discovery() {
		out, ev := s.disc.Discovery(now, f, nil)
		if len(out) > 0 {
			_ = b.conn.Write(out)
		}
		switch ev.Kind {
		case pppoe.ClientUp:
			b.phase(s, poeDiscovery, now)
			eng, err := ppp.NewSession(ppp.Config{Role: ppp.RoleClient, Rand: rand.Reader, User: b.user(s), Password: b.o.password,
				Auth: []ppp.AuthProto{b.o.auth}, IPv4: true, MRU: 1492, MaxMRU: 1492, EchoInterval: b.o.echo,
				Timers: ppp.Timers{Restart: b.o.pppRestart}})
			if err != nil {
				b.fail(s, "ppp: "+err.Error())
				return
			}
			s.eng = eng
			eng.Start(now, &b.out)
			b.flush(s, now)
		case pppoe.ClientDown:
			b.fail(s, "PADT from the AC")
		case pppoe.ClientGaveUp:
			b.fail(s, "discovery: "+ev.Reason)
		}
		return
	}
	if s.eng == nil || f.SessionID != s.disc.SessionID() || f.Src != s.disc.AC() {
		return
	}
	s.eng.Input(now, f.Payload, &b.out)
	b.flush(s, now)
}

func (b *poeBench) user(s *poeSub) string {
	if containsVerb(b.o.userFmt) {
		return fmt.Sprintf(b.o.userFmt, s.idx)
	}
	return b.o.userFmt
}

// flush sends the PPP engine's frames over the PPPoE session and follows
// its events through the setup phases.
func (b *poeBench) flush(s *poeSub, now time.Time) {
	for i := 0; i < b.out.NumFrames(); i++ {
		b.sendPPP(s, b.out.Frame(i))
	}
	for _, e := range b.out.Events {
		switch e.Kind {
		case ppp.EventLinkUp:
			b.phase(s, poeLCP, now)
		case ppp.EventAuthenticated:
			b.phase(s, poeAuth, now)
		case ppp.EventNetworkUp:
			if e.Network.Protocol == ppp.ProtoIPCP && !s.online && !s.done {
				s.local, s.peer = e.Network.LocalIPv4, e.Network.PeerIPv4
				b.phase(s, poeIPCP, now)
				b.addLatency(poeTotal, now.Sub(s.started))
				s.online, s.done = true, true
				b.up++
				b.inSetup--
				if b.firstUp.IsZero() {
					b.firstUp = now
				}
				b.lastUp = now
			}
		case ppp.EventLinkDown:
			if !s.online {
				b.fail(s, "ppp: "+e.Reason.String())
			}
		}
	}
	for _, d := range b.out.Data {
		// ICMP Echo Replies to our identifier (RFC 792).
		p := d.Packet
		if d.Protocol == ppp.ProtoIPv4 && len(p) >= 28 && p[9] == 1 && p[20] == 0 && binary.BigEndian.Uint16(p[24:]) == b.echoID {
			b.received++
		}
	}
	b.out.Reset()
}

func (b *poeBench) sendPPP(s *poeSub, fr []byte) {
	if len(fr) >= 2 && fr[0] == 0xff && fr[1] == 0x03 {
		fr = fr[2:] // RFC 2516 §6: the payload starts with the protocol
	}
	var buf [pppoe.HeaderLen + 1500]byte
	_ = b.conn.Write(pppoe.AppendSession(buf[:0], s.disc.AC(), s.mac, s.disc.SessionID(), fr))
}

func (b *poeBench) phase(s *poeSub, p int, now time.Time) {
	b.addLatency(p, now.Sub(s.mark))
	s.mark = now
}

func (b *poeBench) addLatency(p int, d time.Duration) {
	if d < 0 {
		d = 0
	}
	b.lat[p] = append(b.lat[p], float32(d.Seconds()*1000))
}

func (b *poeBench) fail(s *poeSub, reason string) {
	if s.done {
		return
	}
	s.done = true
	b.failed++
	b.inSetup--
	b.failures[reason]++
	if s.disc.State() == pppoe.ClientSession {
		_ = b.conn.Write(s.disc.Close(nil))
	}
}

// tick runs the discovery and PPP timers and the setup timeout.
func (b *poeBench) tick(now time.Time) {
	for _, s := range b.subs[:b.next] {
		if s.done && !s.online {
			continue
		}
		if !s.done && b.o.timeout > 0 && now.Sub(s.started) > b.o.timeout {
			b.fail(s, "setup timeout")
			continue
		}
		if out, ev := s.disc.Tick(now, nil); len(out) > 0 {
			_ = b.conn.Write(out)
		} else if ev.Kind == pppoe.ClientGaveUp {
			b.fail(s, "discovery: "+ev.Reason)
			continue
		}
		if s.eng != nil {
			if d, ok := s.eng.Deadline(); ok && !now.Before(d) {
				s.eng.Tick(now, &b.out)
				b.flush(s, now)
			}
		}
	}
}

// steady keeps the subscribers online until ctx ends, sending ICMP Echo
// Requests at pps per subscriber to -traffic-dst or each one's PPP peer.
func (b *poeBench) steady(ctx context.Context, pps float64) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	credit := 0.0
	var seq uint16
	next := 0
	frame := make([]byte, 0, 64)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			b.mu.Lock()
			b.tick(now)
			credit += pps * 0.01 * float64(b.up)
			for tries := 0; credit >= 1 && tries < 2*len(b.subs); tries++ {
				s := b.subs[next%len(b.subs)]
				next++
				if !s.online || s.eng == nil || s.eng.Down() {
					continue
				}
				dst := s.peer
				if b.o.trafficDst.IsValid() {
					dst = b.o.trafficDst
				}
				if !s.local.IsValid() || !dst.IsValid() {
					continue
				}
				credit--
				seq++
				frame = appendEcho(frame[:0], s.local, dst, b.echoID, seq)
				b.sendPPP(s, frame)
				b.sent++
			}
			if credit > 1000 {
				credit = 1000
			}
			b.mu.Unlock()
		}
	}
}
