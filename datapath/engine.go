package datapath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// SessionKey is what identifies a session in received data headers:
// v2: Tunnel ID and Session ID (ours); v3: Session ID only (Tunnel 0).
type SessionKey struct {
	Version         uint8
	Tunnel, Session uint32
}

func (k SessionKey) String() string {
	if k.Version == 3 {
		return fmt.Sprintf("v3/%d", k.Session)
	}
	return fmt.Sprintf("v%d/%d/%d", k.Version, k.Tunnel, k.Session)
}

// Session is what the control plane installs for an established session.
// Its small fields sit together so that the copy each installed session
// keeps has no padding to speak of.
type Session struct {
	Key         SessionKey
	PeerTunnel  uint32 // v2: the peer's Tunnel ID we put in headers we send
	PeerSession uint32 // the peer's Session ID we put in headers we send
	// Sequencing puts sequence numbers in what we send: Ns/Nr in v2 data
	// messages (the peer sent Sequencing Required, RFC 2661 §5.8), the S
	// bit and sequence number of the v3 default L2-specific sublayer
	// (RFC 3931 §4.6.1; only with L2SpecificSublayer).
	Sequencing         bool
	L2SpecificSublayer bool   // v3: default L2-specific sublayer (RFC 3931 §4.6)
	MSSClamp           uint16 // clamp TCP MSS in SYNs both ways to this (0: off)
	// Kind is what the session carries; Ethernet and VLAN sessions are v3
	// only and forward whole frames between the wire and TAP.
	Kind Kind
	// VLAN is the local VLAN ID (1..4094) of a KindVLAN session: frames
	// read from the TAP tagged with it go to the session, frames from the
	// wire get their outermost tag's VID rewritten to it.
	VLAN uint16

	Peer       netip.AddrPort
	Local      netip.Addr // source address for what we send (zero: let routing choose)
	Socket     *Socket
	IPv4       netip.Addr   // subscriber address (zero until IPCP is up)
	IPv6       netip.Prefix // subscriber prefix (zero until IPv6CP is up)
	Cookie     []byte       // v3: cookie we expect on receive (0, 4 or 8 bytes)
	PeerCookie []byte       // v3: cookie we send
	// TAP is the device of an Ethernet or VLAN session (opened with
	// OpenTAP before Install).
	TAP string
}

// Upcall is how the datapath hands up what it does not forward.
type Upcall interface {
	// Control gets a control message (T bit set); pkt is only valid during the call.
	Control(s *Socket, pkt []byte, from netip.AddrPort, to netip.Addr)
	// Frame gets a PPP frame (address/control and protocol fields as
	// received) of an installed session that is not forwarded; only valid
	// during the call.
	Frame(key SessionKey, frame []byte)
}

// Config configures an Engine.
type Config struct {
	// TUN is the device name ("l2tp0"); empty: no TUN, and IP packets of
	// sessions with addresses are dropped and counted (no_tun).
	TUN string
	// MTU of the TUN device; 0 means 1500.
	MTU int
	// Batch is the number of packets per recvmmsg/sendmmsg and per TUN
	// read burst; 0 means 32.
	Batch int
	// DisableGSO and DisableGRO keep UDP segmentation offload on send
	// (UDP_SEGMENT) and UDP GRO on receive off even where the kernel has
	// them; by default each socket uses what its kernel supports.
	DisableGSO, DisableGRO bool
	// DisableTUNOffload opens the TUN without IFF_VNET_HDR, so the kernel
	// segments and checksums everything before the TUN reader sees it.
	DisableTUNOffload bool
}

// Counters are per-session packet and byte counts. Bytes count the PPP
// information field (the IP packet for forwarded traffic).
type Counters struct{ RxPackets, RxBytes, TxPackets, TxBytes, Drops uint64 }

// Drop reasons reported by Stats.
type dropReason int

const (
	dropMalformed dropReason = iota
	dropVersion
	dropUnknownSession
	dropWrongPeer
	dropBadCookie
	dropOutOfOrder
	dropSpoofed
	dropNoRoute
	dropNoTUN
	dropTUNWrite
	dropNoSocket
	dropTruncated
	dropSend
	dropRead
	dropHeadroom
	dropNoPW
	dropTAPWrite
	numDrops
)

var dropNames = [numDrops]string{
	dropMalformed:      "malformed",
	dropVersion:        "bad_version",
	dropUnknownSession: "unknown_session",
	dropWrongPeer:      "wrong_peer",
	dropBadCookie:      "bad_cookie",
	dropOutOfOrder:     "out_of_order",
	dropSpoofed:        "spoofed",
	dropNoRoute:        "no_route",
	dropNoTUN:          "no_tun",
	dropTUNWrite:       "tun_write",
	dropNoSocket:       "no_socket",
	dropTruncated:      "truncated",
	dropSend:           "send_error",
	dropRead:           "read_error",
	dropHeadroom:       "headroom",
	dropNoPW:           "no_pw_session",
	dropTAPWrite:       "tap_write",
}

func (r dropReason) String() string { return dropNames[r] }

const (
	// headroom is reserved in front of every packet read from the TUN so
	// the L2TP and PPP headers are prepended in place.
	headroom = 64
	// maxHeader is the longest encapsulation we build: v3 header (8),
	// 8-byte cookie, L2-specific sublayer (4), FF 03 and protocol (4).
	maxHeader = 24
	bufSize   = 65536
)

// counters is what a session's entries share across reinstalls: its
// counts, capture and relay hooks and sequence numbers, in one
// allocation (64 bytes) per session.
type counters struct {
	rxPackets, rxBytes, txPackets, txBytes, drops atomic.Uint64
	// tap, while a capture of the session runs, gets a copy of each of
	// its packets; off, it costs one atomic load per packet.
	tap atomic.Pointer[Tap]
	// relay, when set (SetRelay), takes every PPP frame of the session.
	relay atomic.Pointer[Relay]
	seq   seqState
}

// Tap receives a session's L2TP packets (UDP payloads; for a session on
// an IP socket, the IP payload, which starts at the Session ID, and peer's
// port is 0) while a capture runs: out is true for what l2tpd sends. It is
// called on the packet path and must copy pkt and return at once (drop
// rather than block).
type Tap func(out bool, pkt []byte, peer netip.AddrPort, local netip.Addr)

// SetTap starts (t non-nil) or stops (nil) copying a session's packets to
// t. It reports false when the session is not installed.
func (e *Engine) SetTap(key SessionKey, t Tap) bool {
	ent := e.sessions.get(key)
	if ent == nil {
		return false
	}
	if t == nil {
		ent.ctr.tap.Store(nil)
	} else {
		ent.ctr.tap.Store(&t)
	}
	return true
}

func (c *counters) tapped(out bool, pkt []byte, peer netip.AddrPort, local netip.Addr) {
	if t := c.tap.Load(); t != nil {
		(*t)(out, pkt, peer, local)
	}
}

// seqState is a session's data sequence numbers.
type seqState struct {
	txNs   atomic.Uint32
	rxLast atomic.Uint32 // last accepted sequence number | seqValid
}

const (
	seqValid = 1 << 31
	// reorderWindow: a sequence number up to this far behind the last one
	// accepted is a duplicate or reordered packet and is dropped; further
	// behind, the peer restarted its numbering and we follow.
	reorderWindow = 1024
)

// accept applies RFC 2661 §5.8 / RFC 3931 §4.6.1 ordering to a received
// sequence number in a space of mask+1 values.
func (q *seqState) accept(ns, mask uint32) bool {
	for {
		last := q.rxLast.Load()
		if last&seqValid != 0 && (last-ns)&mask < reorderWindow {
			return false
		}
		if q.rxLast.CompareAndSwap(last, ns&mask|seqValid) {
			return true
		}
	}
}

// entry is an installed session; it is immutable once published except
// for the counters and sequence state, which the entries a session goes
// through on reinstall share: a reinstall publishes a new entry while
// forwarding threads may still count on the old one.
type entry struct {
	s   Session
	ctr *counters
	// hdr is the encapsulation up to and including FF 03: the longest
	// header but for the protocol field, written per packet.
	hdr   [maxHeader - 2]byte
	hlen  uint8
	nsOff int8    // offset of the sequence field in hdr, -1 without sequencing
	tap   *tapDev // KindEthernet, KindVLAN: where received frames go
}

func newEntry(s Session, old *entry) *entry {
	e := &entry{s: s, nsOff: -1}
	e.s.Cookie = append([]byte(nil), s.Cookie...)
	e.s.PeerCookie = append([]byte(nil), s.PeerCookie...)
	if old != nil {
		e.ctr = old.ctr
	} else {
		e.ctr = new(counters)
	}
	var h Header
	if s.Key.Version == 2 {
		h = Header{Tunnel: s.PeerTunnel, Session: s.PeerSession, Sequenced: s.Sequencing}
		b := AppendV2(e.hdr[:0], h, []byte{0xff, 0x03})
		e.hlen = uint8(len(b))
		if s.Sequencing {
			e.nsOff = 6
		}
	} else {
		h = Header{Session: s.PeerSession, Cookie: e.s.PeerCookie, L2SS: s.L2SpecificSublayer, Sequenced: s.Sequencing}
		var ppp []byte
		if s.Kind == KindPPP {
			ppp = []byte{0xff, 0x03}
		}
		b := AppendV3(e.hdr[:0], h, ppp)
		e.hlen = uint8(len(b))
		if s.L2SpecificSublayer && s.Sequencing {
			e.nsOff = int8(8 + len(s.PeerCookie))
		}
		if s.Socket.ipEncap() {
			e.stripUDPWord()
		}
	}
	return e
}

// encap writes the session's headers and the PPP protocol in front of
// the n-byte packet at b[start:] and returns the whole message; b[:start]
// must have room.
func (e *entry) encap(b []byte, start, n int, proto uint16) []byte {
	p := start - 2 - int(e.hlen)
	b[start-2], b[start-1] = byte(proto>>8), byte(proto)
	copy(b[p:], e.hdr[:e.hlen])
	e.putSeq(b[p:])
	return b[p : start+n]
}

func (e *entry) putSeq(msg []byte) {
	if e.nsOff < 0 {
		return
	}
	ns := e.ctr.seq.txNs.Add(1) - 1
	if e.s.Key.Version == 2 {
		msg[e.nsOff], msg[e.nsOff+1] = byte(ns>>8), byte(ns)
		return
	}
	msg[e.nsOff+1], msg[e.nsOff+2], msg[e.nsOff+3] = byte(ns>>16), byte(ns>>8), byte(ns)
}

// Engine is the forwarding plane: it owns the UDP sockets' read loops and
// the TUN device.
type Engine struct {
	cfg  Config
	up   Upcall
	tun  *tunDevice
	tunW packetWriter // the TUN, or a test double

	sessions *sessionTable
	v4, v6   *routeTable

	mu      sync.Mutex // Install/Remove, sockets and run state
	sockets []*Socket
	runCtx  context.Context
	st      *stopper // wakes the forwarding threads for shutdown
	stErr   error
	wg      sync.WaitGroup
	runErr  chan error

	drops [numDrops]atomic.Uint64
	off   offloadStats

	pw *pwState // TAP devices and their reader, nil until OpenTAP
}

// packetWriter writes one IP packet to the TUN.
type packetWriter interface {
	Write(b []byte) (int, error)
}

// New creates an engine and opens its TUN device (IFF_TUN|IFF_NO_PI),
// bringing it up with cfg.MTU.
func New(cfg Config, up Upcall) (*Engine, error) {
	if up == nil {
		return nil, errors.New("datapath: nil Upcall")
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 32
	}
	if cfg.MTU < 576 || cfg.MTU > bufSize-headroom {
		return nil, fmt.Errorf("datapath: MTU %d out of range", cfg.MTU)
	}
	e := newEngine(cfg, up)
	if cfg.TUN != "" {
		t, err := openTUN(cfg.TUN, cfg.MTU, !cfg.DisableTUNOffload)
		if err != nil {
			return nil, err
		}
		if t.vnet {
			e.off.tunVnet.Store(1)
			e.off.tunOffloads.Store(uint64(t.offloads))
		}
		e.tun, e.tunW = t, t
	}
	return e, nil
}

func newEngine(cfg Config, up Upcall) *Engine {
	return &Engine{
		cfg:      cfg,
		up:       up,
		sessions: newSessionTable(),
		v4:       newRouteTable(false),
		v6:       newRouteTable(true),
		runErr:   make(chan error, 1),
	}
}

// TUNName is the kernel's name of the TUN device ("" without one).
func (e *Engine) TUNName() string {
	if e.tun == nil {
		return ""
	}
	return e.tun.name
}

func validate(s Session) error {
	k := s.Key
	switch k.Version {
	case 2:
		if k.Tunnel == 0 || k.Tunnel > 0xffff || k.Session == 0 || k.Session > 0xffff ||
			s.PeerTunnel == 0 || s.PeerTunnel > 0xffff || s.PeerSession == 0 || s.PeerSession > 0xffff {
			return fmt.Errorf("datapath: session %v: v2 IDs must be 1..65535", k)
		}
		if len(s.Cookie) != 0 || len(s.PeerCookie) != 0 || s.L2SpecificSublayer {
			return fmt.Errorf("datapath: session %v: cookies and L2-specific sublayer are v3 only", k)
		}
	case 3:
		if k.Tunnel != 0 || k.Session == 0 || s.PeerSession == 0 {
			return fmt.Errorf("datapath: session %v: v3 keys have Tunnel 0 and nonzero Session IDs", k)
		}
		for _, c := range [][]byte{s.Cookie, s.PeerCookie} {
			if l := len(c); l != 0 && l != 4 && l != 8 {
				return fmt.Errorf("datapath: session %v: cookie length %d (RFC 3931 §4.1: 0, 4 or 8)", k, l)
			}
		}
	default:
		return fmt.Errorf("datapath: session %v: unsupported version", k)
	}
	if err := validateKind(s); err != nil {
		return err
	}
	if !s.Peer.IsValid() {
		return fmt.Errorf("datapath: session %v: no peer address", k)
	}
	if s.Socket == nil {
		return fmt.Errorf("datapath: session %v: no socket", k)
	}
	if s.IPv4.IsValid() && !s.IPv4.Is4() {
		return fmt.Errorf("datapath: session %v: IPv4 %v is not IPv4", k, s.IPv4)
	}
	if s.IPv6.IsValid() && !s.IPv6.Addr().Is6() {
		return fmt.Errorf("datapath: session %v: IPv6 %v is not IPv6", k, s.IPv6)
	}
	return nil
}

// Install inserts a session or replaces the one with the same Key,
// keeping its counters and sequence numbers; its routes follow IPv4 and
// IPv6. If another session holds the same address, the newest install
// takes the route over.
func (e *Engine) Install(s Session) error {
	if err := validate(s); err != nil {
		return err
	}
	s.Peer = netip.AddrPortFrom(s.Peer.Addr().Unmap(), s.Peer.Port())
	s.Local = s.Local.Unmap()
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.sessions.get(s.Key)
	ent := newEntry(s, old)
	if err := e.bindTAP(ent, old); err != nil {
		return err
	}
	e.sessions.set(s.Key, ent)
	if old != nil && old.s.IPv4.IsValid() && old.s.IPv4 != s.IPv4 {
		e.v4.remove(netip.PrefixFrom(old.s.IPv4, 32), s.Key)
	}
	if old != nil && old.s.IPv6.IsValid() && old.s.IPv6.Masked() != s.IPv6.Masked() {
		e.v6.remove(old.s.IPv6, s.Key)
	}
	if s.IPv4.IsValid() {
		e.v4.insert(netip.PrefixFrom(s.IPv4, 32), ent)
	}
	if s.IPv6.IsValid() {
		e.v6.insert(s.IPv6, ent)
	}
	return nil
}

// Remove deletes a session and its routes.
func (e *Engine) Remove(key SessionKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.sessions.get(key)
	if old == nil {
		return
	}
	e.sessions.set(key, nil)
	e.unbindTAP(old)
	if old.s.IPv4.IsValid() {
		e.v4.remove(netip.PrefixFrom(old.s.IPv4, 32), key)
	}
	if old.s.IPv6.IsValid() {
		e.v6.remove(old.s.IPv6, key)
	}
}

// Counters returns a session's counters.
func (e *Engine) Counters(key SessionKey) (Counters, bool) {
	ent := e.sessions.get(key)
	if ent == nil {
		return Counters{}, false
	}
	c := ent.ctr
	return Counters{
		RxPackets: c.rxPackets.Load(), RxBytes: c.rxBytes.Load(),
		TxPackets: c.txPackets.Load(), TxBytes: c.txBytes.Load(),
		Drops: c.drops.Load(),
	}, true
}

// Stats returns the global drop counters by reason and, under offload_
// names, how many sockets use UDP GSO and GRO and what those did.
func (e *Engine) Stats() map[string]uint64 {
	m := make(map[string]uint64, numDrops)
	for i := range e.drops {
		m[dropNames[i]] = e.drops[i].Load()
	}
	e.off.addTo(m)
	return m
}

func (e *Engine) drop(r dropReason, ent *entry) {
	e.drops[r].Add(1)
	if ent != nil {
		ent.ctr.drops.Add(1)
	}
}

// frameEntry finds the session a PPP frame is sent on and strips the
// frame's FF 03, which the session's header carries.
func (e *Engine) frameEntry(key SessionKey, frame []byte) (*entry, []byte, error) {
	ent := e.sessions.get(key)
	if ent == nil {
		return nil, nil, fmt.Errorf("datapath: send frame: session %v not installed", key)
	}
	if len(frame) >= 2 && frame[0] == 0xff && frame[1] == 0x03 {
		frame = frame[2:]
	}
	if len(frame) < 2 {
		return nil, nil, fmt.Errorf("datapath: send frame: %d bytes", len(frame))
	}
	return ent, frame, nil
}

var sendBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// SendFrame sends a PPP frame (protocol field first; FF 03 is added unless
// already there, since most LACs expect ACFC off until negotiated) to the
// session's peer.
func (e *Engine) SendFrame(key SessionKey, frame []byte) error {
	ent, frame, err := e.frameEntry(key, frame)
	if err != nil {
		return err
	}
	bp := sendBufs.Get().(*[]byte)
	defer sendBufs.Put(bp)
	b := append((*bp)[:0], ent.hdr[:ent.hlen]...)
	b = append(b, frame...)
	ent.putSeq(b)
	*bp = b
	ent.ctr.tapped(true, b, ent.s.Peer, ent.s.Local)
	err = ent.s.Socket.io.writeOne(b, ent.s.Peer, ent.s.Local)
	if err != nil {
		e.drop(dropSend, ent)
		return fmt.Errorf("datapath: send frame to %v: %w", ent.s.Peer, err)
	}
	ent.ctr.txPackets.Add(1)
	ent.ctr.txBytes.Add(uint64(len(frame) - 2))
	return nil
}

// AddSocket takes over conn: from now on its datagrams go through the
// engine (control messages up through Upcall.Control). The engine keeps
// a descriptor of its own, outside the Go runtime's poller, and closes
// conn at once; use the returned Socket to send.
func (e *Engine) AddSocket(conn *net.UDPConn) (*Socket, error) {
	sio, err := newUDPIO(conn, e.cfg, &e.off)
	if err != nil {
		return nil, err
	}
	s := &Socket{e: e, io: sio, txq: make([]message, 0, e.cfg.Batch)}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.stopperLocked()
	if st.done.Load() {
		sio.close()
		return nil, errors.New("datapath: add socket: engine stopped")
	}
	sio.start(st)
	e.sockets = append(e.sockets, s)
	if e.runCtx != nil {
		e.startReader(s)
	}
	return s, nil
}

// stopperLocked returns the engine's stopper, creating it on first use.
// An eventfd that cannot be made leaves a stopper that never wakes
// sleepers; Run reports that error.
func (e *Engine) stopperLocked() *stopper {
	if e.st == nil {
		e.st, e.stErr = newStopper()
		if e.stErr != nil {
			e.st = &stopper{efd: -1}
		}
	}
	return e.st
}

// Run runs the forwarding threads (one locked OS thread per socket and
// one for the TUN) until ctx ends, then closes the sockets and the TUN.
// It returns nil when ctx ended, or the first fatal read error.
func (e *Engine) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	if e.runCtx != nil {
		e.mu.Unlock()
		return errors.New("datapath: Run called twice")
	}
	e.runCtx = ctx
	st := e.stopperLocked()
	if e.stErr != nil {
		// Without the eventfd the threads could not be woken to stop:
		// start none.
		st.done.Store(true)
		e.stopTAPReader()
		e.mu.Unlock()
		e.closeAll()
		return fmt.Errorf("datapath: eventfd: %w", e.stErr)
	}
	for _, s := range e.sockets {
		e.startReader(s)
	}
	if e.tun != nil {
		e.tun.wait = newWaiter(st, e.tun.fd)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.fail(e.tunLoop())
		}()
	}
	e.startTAPReader()
	e.mu.Unlock()
	var err error
	select {
	case <-ctx.Done():
	case err = <-e.runErr:
	}
	e.mu.Lock()
	st.stop()
	e.stopTAPReader()
	e.mu.Unlock()
	e.wg.Wait()
	e.closeAll()
	return err
}

// closeAll closes the sockets, the TUN and the stop eventfd once no
// forwarding thread runs.
func (e *Engine) closeAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.sockets {
		s.close()
	}
	if e.tun != nil {
		e.tun.Close()
	}
	if e.st.efd >= 0 {
		e.st.close()
		e.st.efd = -1
	}
}

func (e *Engine) startReader(s *Socket) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.fail(s.readLoop())
	}()
}

func (e *Engine) fail(err error) {
	if err == nil {
		return
	}
	select {
	case e.runErr <- err:
	default:
	}
}
