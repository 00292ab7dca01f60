package lac

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
)

// Config is the LAC's own configuration; it is copied by New.
type Config struct {
	// HostName goes into our SCCRQs (RFC 2661 §4.4.3); LNSs pick the
	// tunnel secret by it.
	HostName string
	// Shards is the number of owner goroutines; 0 means 2.
	Shards int
	// Listen are the local UDP addresses tunnels originate from; empty
	// means one ephemeral port on all addresses. Ignored with Engine.
	Listen []string
	// Hello is the idle interval after which a tunnel probes its LNS
	// (RFC 2661 §6.5); 0 means 60 s, negative disables it.
	Hello time.Duration
	// Control channel retransmission (RFC 2661 §5.8); zero values take
	// the tunnel core's defaults (1 s doubling to 8 s, 5 retransmissions).
	RetransmitInitial time.Duration
	RetransmitCap     time.Duration
	MaxRetransmits    int
	ReceiveWindow     uint16
	// HoldDown is how long an LNS that failed to establish a tunnel is
	// skipped while others are available; 0 means 60 s.
	HoldDown time.Duration
	// TunnelIdle closes a tunnel that has carried no session for this
	// long; 0 means 30 s, negative keeps idle tunnels open.
	TunnelIdle time.Duration
	// SetupTimeout bounds a call from Dial to session up across all
	// candidates; 0 means 60 s.
	SetupTimeout time.Duration
	// Rand supplies tunnel and session IDs, challenges and candidate
	// shuffling; nil means crypto/rand.
	Rand io.Reader

	// Engine, when set, is a datapath the caller owns and runs, with
	// Socket its socket for L2TP: the caller then routes the engine's
	// upcalls for LAC sessions to (*LAC).Control and (*LAC).Frame.
	// Without it New opens its own engine (no TUN) on Listen.
	Engine *datapath.Engine
	Socket *datapath.Socket
}

func (c *Config) defaults() {
	if c.HostName == "" {
		c.HostName = "l2tpd-lac"
	}
	if c.Shards <= 0 {
		c.Shards = 2
	}
	if c.Hello == 0 {
		c.Hello = 60 * time.Second
	} else if c.Hello < 0 {
		c.Hello = 0
	}
	if c.HoldDown == 0 {
		c.HoldDown = 60 * time.Second
	}
	if c.TunnelIdle == 0 {
		c.TunnelIdle = 30 * time.Second
	}
	if c.SetupTimeout == 0 {
		c.SetupTimeout = 60 * time.Second
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if len(c.Listen) == 0 {
		c.Listen = []string{"0.0.0.0:0"}
	}
}

// LNS is one candidate to tunnel a call to.
type LNS struct {
	Name   string
	Addr   netip.AddrPort
	Secret []byte
	// Version is 2 or 3 for a fixed protocol version; 0 tries L2TPv3
	// first and falls back to L2TPv2 (RFC 3931 §4.7.3).
	Version  uint8
	HideAVPs bool
	// Preference orders candidates as RFC 2868 §3.8 Tunnel-Preference
	// does: lower is preferred; calls spread over equal preferences.
	Preference uint32
	// MaxSessionsPerTunnel opens another tunnel to the same LNS when
	// reached; 0 means 65535.
	MaxSessionsPerTunnel int
	// MaxOpening bounds the tunnels to this LNS between SCCRQ and SCCRP
	// across the LAC; 0 means 1. Some LNSs take a second SCCRQ from the
	// same address and port for a retransmission of the first while
	// that one is open (l2tpns does), so one at a time is the default.
	MaxOpening int
}

// CallRequest describes the subscriber a call is placed for.
type CallRequest struct {
	UserName      string
	CallingNumber string // RFC 2661 §4.4.5 Calling Number (e.g. the PPPoE client's MAC or circuit ID)
	CalledNumber  string
	TxSpeed       uint32 // bits/s; 0 means 100 Mbit/s
	RxSpeed       uint32
	// FramingType is RFC 2661 §4.4.5's Framing Type; 0 means synchronous.
	FramingType uint32
	BearerType  uint32
	// Proxy carries the LCP and authentication the LAC already did
	// (proxy LCP and proxy authentication AVPs, L2TPv2 only).
	Proxy *tunnel.Proxy
	// Group keeps calls together: calls of the same non-zero Group are
	// owned by the same shard and share tunnels to an LNS; with 0 calls
	// are spread over the shards.
	Group uint32
}

// CallID names a call from Dial until its Down.
type CallID uint64

// Session is an established call, given to Handler.Up.
type Session struct {
	ID  CallID
	Key datapath.SessionKey // what Frame upcalls carry and SendFrame takes
	LNS LNS
	// Version is the L2TP version the tunnel runs.
	Version                     uint8
	TunnelID, PeerTunnelID      uint32
	SessionID, PeerSessionID    uint32
	PeerHostName                string
	Dialed, TunnelUp, SessionUp time.Time
	// Attempts is the number of candidates tried, this one included.
	Attempts int
}

// Reason tells why a call ended.
type Reason struct {
	// Result is the CDN or StopCCN result (RFC 2661 §4.4.2) that ended
	// it, ours or the LNS's.
	Result tunnel.Result
	Cause  *tunnel.Disconnect
	ByPeer bool
	// Err is set when no session could be set up at all.
	Err error
}

// Setup failures reported in Reason.Err.
var (
	ErrNoCandidates = errors.New("lac: no LNS candidates")
	ErrAllFailed    = errors.New("lac: no LNS accepted the call")
	ErrSetupTimeout = errors.New("lac: call setup timed out")
	ErrHangup       = errors.New("lac: call cleared before it was up")
	ErrStopped      = errors.New("lac: stopped")
)

// Handler receives a call's events. Its methods run on the goroutine of
// the shard that owns the call and must not block; they may call the
// LAC's methods (SendFrame, Hangup, Dial, SetTimer).
type Handler interface {
	// Up: the session is established; PPP frames can flow.
	Up(s Session)
	// Down: the call ended (or never came up: r.Err is set). The
	// CallID is not used again.
	Down(id CallID, r Reason)
	// Frame is a PPP frame from the LNS (address/control field as
	// received); it is only valid during the call.
	Frame(id CallID, frame []byte)
}

// Ticker is implemented by handlers that ask for timers with SetTimer.
type Ticker interface {
	Tick(id CallID, now time.Time)
}

// LAC originates tunnels and sessions toward LNSs.
type LAC struct {
	cfg    Config
	log    *zap.Logger
	eng    *datapath.Engine
	sock   *datapath.Socket
	ownEng bool
	shards []*shard
	dead   deadSet
	// opening counts the tunnels between SCCRQ and SCCRP per LNS.
	opening openGate
	next    atomic.Uint64 // call IDs and round-robin shard choice
	ready   chan struct{}
	runMu   sync.Mutex
	ran     bool
}

// New binds the LAC's socket (unless Config.Engine is given); Run starts it.
func New(cfg Config, log *zap.Logger) (*LAC, error) {
	cfg.defaults()
	if log == nil {
		log = zap.NewNop()
	}
	l := &LAC{cfg: cfg, log: log, ready: make(chan struct{})}
	l.dead.m = make(map[netip.AddrPort]time.Time)
	l.opening.n = make(map[netip.AddrPort]int)
	if cfg.Engine != nil {
		if cfg.Socket == nil {
			return nil, errors.New("lac: Engine given without Socket")
		}
		l.eng, l.sock = cfg.Engine, cfg.Socket
	} else {
		eng, err := datapath.New(datapath.Config{}, l)
		if err != nil {
			return nil, fmt.Errorf("lac: datapath: %w", err)
		}
		if len(cfg.Listen) != 1 {
			return nil, errors.New("lac: exactly one listen address is supported")
		}
		ua, err := net.ResolveUDPAddr("udp", cfg.Listen[0])
		if err != nil {
			return nil, fmt.Errorf("lac: listen %q: %w", cfg.Listen[0], err)
		}
		conn, err := net.ListenUDP("udp", ua)
		if err != nil {
			return nil, fmt.Errorf("lac: listen: %w", err)
		}
		sk, err := eng.AddSocket(conn)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("lac: socket: %w", err)
		}
		l.eng, l.sock, l.ownEng = eng, sk, true
	}
	for i := 0; i < cfg.Shards; i++ {
		l.shards = append(l.shards, newShard(l, i, &realSender{l.sock}))
	}
	return l, nil
}

// LocalAddr is the UDP address tunnels originate from.
func (l *LAC) LocalAddr() netip.AddrPort {
	if ua, ok := l.sock.LocalAddr().(*net.UDPAddr); ok {
		return ua.AddrPort()
	}
	return netip.AddrPort{}
}

// Ready is closed once Run has started the shards.
func (l *LAC) Ready() <-chan struct{} { return l.ready }

// Run serves until ctx ends, then closes every tunnel (StopCCN) and, when
// it owns the datapath, stops it.
func (l *LAC) Run(ctx context.Context) error {
	l.runMu.Lock()
	if l.ran {
		l.runMu.Unlock()
		return errors.New("lac: Run called twice")
	}
	l.ran = true
	l.runMu.Unlock()
	dctx, stopDP := context.WithCancel(context.Background())
	defer stopDP()
	dpDone := make(chan error, 1)
	if l.ownEng {
		go func() { dpDone <- l.eng.Run(dctx) }()
	} else {
		dpDone <- nil
	}
	var wg sync.WaitGroup
	for _, sh := range l.shards {
		wg.Add(1)
		go func(sh *shard) { defer wg.Done(); sh.run() }(sh)
	}
	close(l.ready)
	var err error
	select {
	case <-ctx.Done():
	case err = <-dpDone:
		dpDone <- err
	}
	// StopCCN to every tunnel, then a short wait for the acknowledgements.
	for _, sh := range l.shards {
		sh.post(func(now time.Time) { sh.closeAll(now) })
	}
	end := time.Now().Add(2 * time.Second)
	for time.Now().Before(end) && l.Tunnels() > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	for _, sh := range l.shards {
		close(sh.quit)
	}
	wg.Wait()
	stopDP()
	if e := <-dpDone; err == nil {
		err = e
	}
	return err
}

// Tunnels is the number of tunnels in any state.
func (l *LAC) Tunnels() int {
	n := 0
	for _, sh := range l.shards {
		n += int(sh.ntunnels.Load())
	}
	return n
}

// Sessions is the number of established sessions.
func (l *LAC) Sessions() int {
	n := 0
	for _, sh := range l.shards {
		n += int(sh.nsessions.Load())
	}
	return n
}

// Stats are counters summed over the shards.
type Stats struct {
	TunnelsOpened, TunnelsUp, TunnelsFailed uint64
	CallsDialed, CallsUp, CallsFailed       uint64
	Failovers, Overload, UnknownTunnel      uint64
	Retransmits                             uint64
}

// Stats sums the shards' counters.
func (l *LAC) Stats() Stats {
	var s Stats
	for _, sh := range l.shards {
		c := &sh.ctr
		s.TunnelsOpened += c.tunnelsOpened.Load()
		s.TunnelsUp += c.tunnelsUp.Load()
		s.TunnelsFailed += c.tunnelsFailed.Load()
		s.CallsDialed += c.callsDialed.Load()
		s.CallsUp += c.callsUp.Load()
		s.CallsFailed += c.callsFailed.Load()
		s.Failovers += c.failovers.Load()
		s.Overload += c.overload.Load()
		s.UnknownTunnel += c.unknownTunnel.Load()
		s.Retransmits += c.retransmits.Load()
	}
	return s
}

// Dial places a call: the candidates are tried in preference order (an
// established tunnel to an LNS is reused), failing over to the next one
// when a tunnel cannot be established or the call is refused. h hears
// of the outcome. Dial never blocks on the network and may be called
// from a Handler callback.
func (l *LAC) Dial(req CallRequest, candidates []LNS, h Handler) (CallID, error) {
	if h == nil {
		return 0, errors.New("lac: nil Handler")
	}
	if len(candidates) == 0 {
		return 0, ErrNoCandidates
	}
	n := l.next.Add(1)
	si := int(n % uint64(len(l.shards)))
	if req.Group != 0 {
		si = int(req.Group % uint32(len(l.shards)))
	}
	id := CallID(n<<8 | uint64(si))
	cands := append([]LNS(nil), candidates...)
	sh := l.shards[si]
	sh.post(func(now time.Time) { sh.dial(now, id, req, cands, h) })
	return id, nil
}

func (l *LAC) shardOf(id CallID) *shard {
	return l.shards[int(uint64(id)&0xff)%len(l.shards)]
}

// Hangup clears a call: a CDN with res (RFC 2661 §5.6) when it is up or
// being set up; h.Down follows. It may be called from a callback.
func (l *LAC) Hangup(id CallID, res tunnel.Result, cause *tunnel.Disconnect) {
	sh := l.shardOf(id)
	sh.post(func(now time.Time) { sh.hangup(now, id, res, cause) })
}

// SetTimer asks for h.Tick(id, at) (h must implement Ticker) at or after
// at, replacing the call's previous timer. Only from a Handler callback.
func (l *LAC) SetTimer(id CallID, at time.Time) {
	l.shardOf(id).setTimer(id, at)
}

// SendFrame sends a PPP frame (protocol field first, or FF 03 first) on
// an established session. Safe from any goroutine.
func (l *LAC) SendFrame(key datapath.SessionKey, frame []byte) error {
	return l.eng.SendFrame(key, frame)
}

// Engine is the datapath the LAC sends through.
func (l *LAC) Engine() *datapath.Engine { return l.eng }

// Control is the datapath upcall for a control message from an LNS.
func (l *LAC) Control(sk *datapath.Socket, pkt []byte, from netip.AddrPort, to netip.Addr) {
	h, _, err := wire.ParseHeader(pkt, wire.EncapUDP)
	if err != nil || !h.Control || h.TunnelID == 0 {
		l.shards[0].ctr.unknownTunnel.Add(1)
		return
	}
	l.shards[int(h.TunnelID%uint32(len(l.shards)))].enqueue(inPacket{from: from}, pkt)
}

// Frame is the datapath upcall for a PPP frame of a LAC session.
func (l *LAC) Frame(key datapath.SessionKey, frame []byte) {
	id := key.Tunnel
	if key.Version == 3 {
		id = key.Session
	}
	l.shards[int(id%uint32(len(l.shards)))].enqueue(inPacket{frame: true, key: key}, frame)
}

// Owns reports whether a datapath session key belongs to this LAC's
// sessions, for a caller that shares one engine between roles.
func (l *LAC) Owns(key datapath.SessionKey) bool {
	id := key.Tunnel
	if key.Version == 3 {
		id = key.Session
	}
	return l.shards[int(id%uint32(len(l.shards)))].owns.Load(key)
}

// deadSet remembers LNSs that failed, shared by the shards.
type deadSet struct {
	mu sync.Mutex
	m  map[netip.AddrPort]time.Time
}

func (d *deadSet) mark(a netip.AddrPort, until time.Time) {
	d.mu.Lock()
	d.m[a] = until
	d.mu.Unlock()
}

func (d *deadSet) clear(a netip.AddrPort) {
	d.mu.Lock()
	delete(d.m, a)
	d.mu.Unlock()
}

func (d *deadSet) isDead(a netip.AddrPort, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	until, ok := d.m[a]
	if !ok {
		return false
	}
	if !now.Before(until) {
		delete(d.m, a)
		return false
	}
	return true
}

// openGate bounds the tunnels being opened to each LNS, over all shards.
// A shard that finds an LNS's slots taken is registered as waiting in the
// same critical section, so the release that frees a slot cannot miss it.
type openGate struct {
	mu      sync.Mutex
	n       map[netip.AddrPort]int
	waiting map[int]bool // shards with deferred calls
}

// acquire takes a slot for lns, or registers shard as waiting for one.
func (g *openGate) acquire(lns LNS, shard int) bool {
	max := lns.MaxOpening
	if max <= 0 {
		max = 1
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n[lns.Addr] >= max {
		if g.waiting == nil {
			g.waiting = make(map[int]bool)
		}
		g.waiting[shard] = true
		return false
	}
	g.n[lns.Addr]++
	return true
}

// release frees a slot and returns the shards to wake (and forgets them).
func (g *openGate) release(a netip.AddrPort) []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n[a]--; g.n[a] <= 0 {
		delete(g.n, a)
	}
	var wake []int
	for i := range g.waiting {
		wake = append(wake, i)
	}
	clear(g.waiting)
	return wake
}
