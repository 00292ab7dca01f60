package control

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/control/lac"
	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/datapath/pppoe"
	"github.com/l2tpd/l2tpd/ppp"
)

// LAC is the daemon's LAC role: subscribers' PPP arrives over PPPoE on
// access interfaces, is authenticated just far enough to learn who they
// are, and is tunneled to an LNS with proxy LCP and authentication (RFC
// 2661 §4.4.5). It is off while PPPoE names no interface.
type LAC struct {
	// Listen are the local UDP addresses tunnels originate from; empty
	// means one ephemeral port on all addresses.
	Listen []string
	// PPPoE are the access interfaces.
	PPPoE []PPPoEAccess
	// LNS are the tunnel endpoints realms refer to by name.
	LNS []LACPeer
	// Realms map the domain of user names to LNSs; the realm "*" (or
	// "") is the default for the others.
	Realms []LACRealm
	// RADIUSTunnels sends an Access-Request for each subscriber and
	// takes the LNSs from the Tunnel-* attributes of the Access-Accept
	// (RFC 2868); realms then apply only when the answer has none.
	RADIUSTunnels bool
	// Auth lists the protocols offered to PPPoE clients, most preferred
	// first: "chap" (CHAP-MD5), "pap". Default chap, pap.
	Auth []string
}

// Enabled reports whether the LAC role runs.
func (l *LAC) Enabled() bool { return len(l.PPPoE) > 0 }

// PPPoEAccess is one access interface (RFC 2516 Access Concentrator).
type PPPoEAccess struct {
	Interface string
	// ACName goes into PADO and PADS (default: the host name).
	ACName string
	// ServiceNames are offered; empty accepts any.
	ServiceNames []string
	// MaxSessions bounds the interface's sessions and MaxSessionsPerMAC
	// one client's (0: 65534 and no bound).
	MaxSessions       int
	MaxSessionsPerMAC int
}

// LACPeer is an LNS a LAC tunnels to.
type LACPeer struct {
	Name    string
	Address netip.AddrPort
	Secret  string
	// Version is 2, 3 or 0 (L2TPv3 first, L2TPv2 when refused). Proxy
	// LCP and authentication are L2TPv2 AVPs: over L2TPv3 the LNS
	// negotiates LCP and authentication again with the client.
	Version    int
	HideAVPs   bool
	Preference uint32
}

// LACRealm maps a realm to LNS names.
type LACRealm struct {
	Realm string
	LNS   []string
}

// LAC-side session states, as show sessions reports them.
const (
	lacNegotiating = "negotiating" // LCP and authentication with the client
	lacAuthorizing = "authorizing" // waiting for RADIUS to name the LNSs
	lacDialing     = "dialing"     // placing the call to an LNS
	lacRelaying    = "relaying"    // frames relayed between PPPoE and L2TP
)

// pppoeMRU is the largest MRU over PPPoE (RFC 2516 §7).
const pppoeMRU = 1492

// access runs the LAC role: the LAC engine and one PPPoE reader per
// interface. Nothing runs per session.
type access struct {
	cfg    LAC
	host   string
	log    *zap.Logger
	engine *lac.LAC
	ifaces []*accessIface
	cands  func(user string) []lac.LNS
	// radius is the RADIUS client when radius_tunnels is on.
	radius func() *aaa.Client
	counts struct {
		up, down, refused, failed atomic.Uint64
		// frames to clients through the datapath's relay, and through
		// the LAC engine's shards (before the relay is set); from
		// clients to the LNSs.
		relayed, shardFrames, toLNS atomic.Uint64
	}
}

// accessIface owns one interface's AC state machine and sessions; mu
// serialises the reader, the timer loop and the LAC engine's callbacks.
type accessIface struct {
	a        *access
	name     string
	conn     *pppoe.Conn
	mu       sync.Mutex
	ac       *pppoe.AC
	sessions map[uint16]*lacSession
	out      []byte
	pout     ppp.Output
}

// lacSession is one subscriber: a PPPoE session, then an L2TP call.
type lacSession struct {
	ifc     *accessIface
	id      uint16
	peer    pppoe.MAC
	started time.Time
	state   string
	eng     *ppp.Session // until the call is placed
	proxy   tunnel.Proxy
	papID   uint16
	user    string
	authP   string
	call    lac.CallID
	called  bool
	gone    bool // PADT sent or received: the call must not come up
	relay   atomic.Bool
	key     datapath.SessionKey
	up      lac.Session
}

func newAccess(c *Config, log *zap.Logger) (*access, error) {
	cfg, host := c.LAC, c.HostName
	a := &access{cfg: cfg, host: host, log: log}
	byName := map[string]lac.LNS{}
	for _, p := range cfg.LNS {
		byName[p.Name] = lac.LNS{Name: p.Name, Addr: p.Address, Secret: []byte(p.Secret),
			Version: uint8(p.Version), HideAVPs: p.HideAVPs, Preference: p.Preference}
	}
	var realms []lac.Realm
	for _, r := range cfg.Realms {
		lr := lac.Realm{Name: r.Realm}
		for _, n := range r.LNS {
			l, ok := byName[n]
			if !ok {
				return nil, fmt.Errorf("control: lac realm %q: no LNS %q", r.Realm, n)
			}
			lr.LNS = append(lr.LNS, l)
		}
		realms = append(realms, lr)
	}
	a.cands = func(user string) []lac.LNS { return lac.SelectByRealm(user, realms) }
	eng, err := lac.New(lac.Config{HostName: host, Listen: cfg.Listen, Hello: c.Hello, ReceiveWindow: c.ReceiveWindow,
		RetransmitInitial: c.RetransmitInitial, RetransmitCap: c.RetransmitCap, MaxRetransmits: c.MaxRetransmits,
		HoldDown: 30 * time.Second, SetupTimeout: 30 * time.Second}, log.Named("lac"))
	if err != nil {
		return nil, fmt.Errorf("control: lac: %w", err)
	}
	a.engine = eng
	return a, nil
}

// run opens the access interfaces and serves until ctx is done, then
// hangs every call up.
func (a *access) run(ctx context.Context, started chan<- error) {
	key := make([]byte, 32)
	rand.Read(key)
	for _, p := range a.cfg.PPPoE {
		conn, err := pppoe.Listen(p.Interface, pppoe.ListenOptions{})
		if err != nil {
			for _, ifc := range a.ifaces {
				ifc.conn.Close()
			}
			started <- err
			return
		}
		name := p.ACName
		if name == "" {
			name = a.host
		}
		ifc := &accessIface{a: a, name: p.Interface, conn: conn, sessions: map[uint16]*lacSession{},
			ac: pppoe.NewAC(pppoe.ACConfig{Name: name, MAC: conn.HardwareAddr(), ServiceNames: p.ServiceNames, CookieKey: key,
				MaxSessions: p.MaxSessions, MaxPerMAC: p.MaxSessionsPerMAC})}
		a.ifaces = append(a.ifaces, ifc)
	}
	ectx, stopEngine := context.WithCancel(context.Background())
	engDone := make(chan error, 1)
	go func() { engDone <- a.engine.Run(ectx) }()
	select {
	case <-a.engine.Ready():
	case err := <-engDone:
		for _, ifc := range a.ifaces {
			ifc.conn.Close()
		}
		stopEngine()
		started <- fmt.Errorf("control: lac: %w", err)
		return
	}
	// The readers outlive ctx a little: the PADTs at the end go out on
	// their sockets.
	rctx, stopReaders := context.WithCancel(context.Background())
	defer stopReaders()
	var wg sync.WaitGroup
	for _, ifc := range a.ifaces {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := ifc.conn.Run(rctx, ifc.input); err != nil {
				a.log.Error("pppoe reader stopped", zap.String("interface", ifc.name), zap.Error(err))
			}
		}()
		go func() { defer wg.Done(); ifc.timers(ctx) }()
		a.log.Info("pppoe access", zap.String("interface", ifc.name), zap.String("mac", ifc.conn.HardwareAddr().String()))
	}
	a.log.Info("lac tunnels from", zap.String("addr", a.engine.LocalAddr().String()))
	started <- nil
	<-ctx.Done()
	for _, ifc := range a.ifaces {
		ifc.closeAll()
	}
	time.Sleep(200 * time.Millisecond) // let the CDNs leave before the tunnels close
	stopReaders()
	wg.Wait()
	stopEngine()
	<-engDone
}

// input handles one frame on the interface's reader goroutine.
func (ifc *accessIface) input(f *pppoe.Frame, pkt []byte) {
	now := time.Now()
	if !f.Discovery() {
		ifc.mu.Lock()
		s := ifc.sessions[f.SessionID]
		if s == nil || s.peer != f.Src {
			ifc.mu.Unlock()
			return
		}
		if s.relay.Load() {
			key := s.key
			ifc.mu.Unlock()
			// RFC 2516 §6: the payload starts with the protocol field.
			// The L2TP header and FF 03 go where the Ethernet and PPPoE
			// headers were: the frame itself is not copied.
			if ifc.a.engine.Engine().SendFrameHeadroom(key, pkt[:pppoe.HeaderLen+len(f.Payload)], pppoe.HeaderLen) == nil {
				ifc.a.counts.toLNS.Add(1)
			}
			return
		}
		if s.eng != nil {
			s.record(f.Payload, true)
			s.eng.Input(now, f.Payload, &ifc.pout)
			ifc.flush(s, now)
		}
		ifc.mu.Unlock()
		return
	}
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	var ev pppoe.ACEvent
	ifc.out, ev = ifc.ac.Discovery(now, f, ifc.out[:0])
	if len(ifc.out) > 0 {
		_ = ifc.conn.Write(ifc.out)
	}
	switch ev.Kind {
	case pppoe.ACSessionUp:
		ifc.start(now, ev.Session)
	case pppoe.ACSessionDown:
		if s := ifc.sessions[ev.Session.ID]; s != nil {
			ifc.a.log.Info("pppoe PADT from client", ifc.fields(s)...)
			ifc.drop(s, false, pppoeEnded, nil)
		}
	case pppoe.ACRefused:
		ifc.a.counts.refused.Add(1)
	}
}

func (ifc *accessIface) fields(s *lacSession) []zap.Field {
	return []zap.Field{zap.String("interface", ifc.name), zap.Uint16("pppoe_session_id", s.id),
		zap.String("mac", s.peer.String()), zap.String("user", s.user)}
}

// start runs LCP and authentication with a new client (server role).
func (ifc *accessIface) start(now time.Time, as pppoe.ACSession) {
	var auth []ppp.AuthProto
	for _, p := range ifc.a.cfg.Auth {
		switch p {
		case "chap":
			auth = append(auth, ppp.AuthCHAPMD5)
		case "pap":
			auth = append(auth, ppp.AuthPAP)
		}
	}
	if len(auth) == 0 {
		auth = []ppp.AuthProto{ppp.AuthCHAPMD5, ppp.AuthPAP}
	}
	eng, err := ppp.NewSession(ppp.Config{Role: ppp.RoleServer, Rand: rand.Reader, MRU: pppoeMRU, MaxMRU: pppoeMRU,
		Auth: auth, Name: ifc.a.host, IPv4: true, AuthTimeout: 20 * time.Second})
	if err != nil {
		ifc.a.log.Error("ppp", zap.Error(err))
		if out, ok := ifc.ac.Terminate(as.ID, nil); ok {
			_ = ifc.conn.Write(out)
		}
		return
	}
	s := &lacSession{ifc: ifc, id: as.ID, peer: as.Peer, started: now, state: lacNegotiating, eng: eng}
	ifc.sessions[as.ID] = s
	ifc.a.counts.up.Add(1)
	ifc.a.log.Info("pppoe session", ifc.fields(s)...)
	eng.Start(now, &ifc.pout)
	ifc.flush(s, now)
}

// record keeps what proxy LCP and proxy authentication need (RFC 2661
// §4.4.5): the client's first and last LCP Configure-Requests, ours, and
// the PAP Identifier.
func (s *lacSession) record(frame []byte, fromClient bool) {
	proto, info, err := ppp.ParseFrame(frame)
	if err != nil {
		return
	}
	pk, err := ppp.ParsePacket(info)
	if err != nil {
		return
	}
	switch {
	case proto == ppp.ProtoLCP && pk.Code == 1:
		opts := append([]byte{}, pk.Data...)
		if !fromClient {
			s.proxy.LastSentConfReq = opts
			return
		}
		if s.proxy.InitialReceivedConfReq == nil {
			s.proxy.InitialReceivedConfReq = opts
		}
		s.proxy.LastReceivedConfReq = opts
	case proto == ppp.ProtoPAP && pk.Code == 1 && fromClient:
		s.papID = uint16(pk.ID)
	}
}

// flush sends what the PPP engine produced and acts on its events.
func (ifc *accessIface) flush(s *lacSession, now time.Time) {
	out := &ifc.pout
	for i := 0; i < out.NumFrames(); i++ {
		fr := out.Frame(i)
		s.record(fr, false)
		ifc.sendPPP(s, fr)
	}
	// Reset clears the events: keep a copy to act on.
	events := append([]ppp.Event(nil), out.Events...)
	out.Reset()
	for _, e := range events {
		switch e.Kind {
		case ppp.EventAuthRequest:
			ifc.dial(s, e.Auth, now)
		case ppp.EventLinkDown:
			if s.eng != nil {
				ifc.a.log.Info("pppoe client PPP down before the call", append(ifc.fields(s), zap.String("reason", e.Reason.String()))...)
				ifc.drop(s, true, pppoeEnded, nil)
			}
		}
	}
}

// frameBufs hold the session packets sent to clients.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, pppoe.HeaderLen+pppoe.MaxPPP); return &b }}

// sendPPP sends a PPP frame (with or without FF 03) in a session packet
// (RFC 2516 §6: the payload starts with the protocol field). It does not
// allocate: the datapath's relay calls it for every frame from the LNS.
func (ifc *accessIface) sendPPP(s *lacSession, fr []byte) {
	if len(fr) >= 2 && fr[0] == 0xff && fr[1] == 0x03 {
		fr = fr[2:]
	}
	if len(fr) > pppoe.MaxPPP {
		return
	}
	bp := frameBufs.Get().(*[]byte)
	b := pppoe.AppendSession((*bp)[:0], s.peer, ifc.conn.HardwareAddr(), s.id, fr)
	_ = ifc.conn.Write(b)
	*bp = b[:0]
	frameBufs.Put(bp)
}

// dial records the credentials as proxy authentication and asks RADIUS
// for the LNSs (radius_tunnels) or takes the realm's.
func (ifc *accessIface) dial(s *lacSession, req *ppp.AuthRequest, now time.Time) {
	s.user = req.User
	s.proxy.AuthenName = []byte(req.User)
	switch req.Protocol {
	case ppp.AuthPAP:
		s.authP = "pap"
		s.proxy.AuthenType = ppp.ProxyAuthPAP
		s.proxy.AuthenID = s.papID
		s.proxy.AuthenResponse = append([]byte{}, req.Password...)
	case ppp.AuthCHAPMD5:
		s.authP = "chap"
		s.proxy.AuthenType = ppp.ProxyAuthCHAP
		s.proxy.AuthenID = uint16(req.ID)
		s.proxy.AuthenChallenge = append([]byte{}, req.Challenge...)
		s.proxy.AuthenResponse = append([]byte{}, req.Response...)
	default:
		ifc.drop(s, true, pppoeEnded, nil)
		return
	}
	if ifc.a.cfg.RADIUSTunnels && ifc.a.radius != nil {
		if c := ifc.a.radius(); c != nil {
			s.state = lacAuthorizing
			r := &aaa.Request{Session: aaa.Session{User: req.User, NASPort: uint32(s.id), CallingStationID: s.peer.String()}, Auth: *req}
			err := c.Authenticate(r, func(res aaa.Result) { ifc.authorized(s, res) })
			if err == nil {
				return
			}
			ifc.a.log.Warn("radius", append(ifc.fields(s), zap.Error(err))...)
		}
	}
	ifc.place(s, ifc.a.cands(s.user), 0)
}

// authorized takes the RADIUS answer: a reject is told to the client
// (CHAP Failure or PAP Nak) and ends the session; an accept's Tunnel-*
// groups are the candidates, the realm's when it has none.
func (ifc *accessIface) authorized(s *lacSession, res aaa.Result) {
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	if s.gone || s.eng == nil {
		return
	}
	now := time.Now()
	if res.Err != nil || !res.Accept {
		ifc.a.log.Info("radius refused the subscriber", append(ifc.fields(s), zap.Error(res.Err))...)
		msg := res.PPP.Message
		if msg == "" {
			msg = "access denied"
		}
		s.eng.AuthResult(now, ppp.AuthResult{Accept: false, Message: msg}, &ifc.pout)
		ifc.flush(s, now)
		if !s.gone {
			ifc.drop(s, true, pppoeEnded, nil)
		}
		return
	}
	cands := tunnelCandidates(res.Attrs.Tunnels)
	if len(cands) == 0 {
		cands = ifc.a.cands(s.user)
	}
	ifc.place(s, cands, assignmentGroup(res.Attrs.Tunnels))
}

// assignmentGroup keeps calls with the same Tunnel-Assignment-Id (RFC
// 2868 §3.7) in the same tunnels, and those with different ones apart:
// the preferred group's identifier names the LAC engine's call group.
func assignmentGroup(ts []aaa.Tunnel) uint32 {
	id, pref, found := "", uint32(0), false
	for _, t := range ts {
		if t.AssignmentID != "" && (!found || t.Preference < pref) {
			id, pref, found = t.AssignmentID, t.Preference, true
		}
	}
	if !found {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32() | 1
}

// tunnelCandidates turns the tagged Tunnel-* groups of an Access-Accept
// into LNS candidates (RFC 2868 §3: L2TP over IP, the server endpoint,
// its Tunnel-Password as the tunnel secret and Tunnel-Preference).
func tunnelCandidates(ts []aaa.Tunnel) []lac.LNS {
	var out []lac.LNS
	for i := range ts {
		t := &ts[i]
		if t.Type != 0 && t.Type != aaa.TunnelTypeL2TP {
			continue
		}
		a, ok := t.ServerAddr()
		if !ok || t.PasswordEncrypted {
			continue
		}
		name := t.AssignmentID
		if name == "" {
			name = a.String()
		}
		out = append(out, lac.LNS{Name: name, Addr: netip.AddrPortFrom(a, 1701), Secret: append([]byte{}, t.Password...),
			Version: 2, Preference: t.Preference})
	}
	return out
}

// place dials the candidates with the recorded proxy AVPs; calls of one
// non-zero group share tunnels.
func (ifc *accessIface) place(s *lacSession, cands []lac.LNS, group uint32) {
	// The LNS answers the credentials: the local engine stops here.
	s.eng = nil
	s.state = lacDialing
	if len(cands) == 0 {
		ifc.a.log.Warn("no LNS for the subscriber", ifc.fields(s)...)
		ifc.drop(s, true, pppoeEnded, nil)
		return
	}
	proxy := s.proxy
	id, err := ifc.a.engine.Dial(lac.CallRequest{UserName: s.user, CallingNumber: s.peer.String(),
		FramingType: 1, Proxy: &proxy, Group: group}, cands, s)
	if err != nil {
		ifc.a.log.Warn("dial", append(ifc.fields(s), zap.Error(err))...)
		ifc.drop(s, true, pppoeEnded, nil)
		return
	}
	s.call, s.called = id, true
}

// pppoeEnded is the CDN for a call whose PPPoE session ended.
var pppoeEnded = tunnel.Result{Code: wire.CDNGeneralError, Message: "PPPoE session ended"}

// drop ends a session on the PPPoE side (PADT when we end it) and hangs
// its call up with res.
func (ifc *accessIface) drop(s *lacSession, sendPADT bool, res tunnel.Result, cause *tunnel.Disconnect) {
	if s.gone {
		return
	}
	s.gone = true
	s.relay.Store(false)
	delete(ifc.sessions, s.id)
	ifc.a.counts.down.Add(1)
	if sendPADT {
		var out []byte
		if out, ok := ifc.ac.Terminate(s.id, out); ok {
			_ = ifc.conn.Write(out)
		}
	} else {
		ifc.ac.Terminate(s.id, nil)
	}
	if s.called {
		ifc.a.engine.Hangup(s.call, res, cause)
	}
}

// clearSession ends the relayed session whose L2TP session ID is id on
// the operator's request: a PADT to the client and a CDN (res, with the
// administrative disconnect cause) to the LNS. It reports whether it
// found one.
func (a *access) clearSession(id uint32, res tunnel.Result, cause *tunnel.Disconnect) bool {
	for _, ifc := range a.ifaces {
		ifc.mu.Lock()
		for _, s := range ifc.sessions {
			if s.state == lacRelaying && s.up.SessionID == id {
				a.log.Info("session cleared by administrator", ifc.fields(s)...)
				ifc.drop(s, true, res, cause)
				ifc.mu.Unlock()
				return true
			}
		}
		ifc.mu.Unlock()
	}
	return false
}

// timers runs the PPP engines' timers of sessions still negotiating.
func (ifc *accessIface) timers(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ifc.mu.Lock()
			for _, s := range ifc.sessions {
				if s.eng == nil {
					continue
				}
				if d, ok := s.eng.Deadline(); ok && !now.Before(d) {
					s.eng.Tick(now, &ifc.pout)
					ifc.flush(s, now)
				}
			}
			ifc.mu.Unlock()
		}
	}
}

func (ifc *accessIface) closeAll() {
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	for _, s := range ifc.sessions {
		ifc.drop(s, true, pppoeEnded, nil)
	}
}

// Up: the call is established; relay from now on (lac.Handler).
func (s *lacSession) Up(ls lac.Session) {
	ifc := s.ifc
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	if s.gone {
		ifc.a.engine.Hangup(ls.ID, tunnel.Result{Code: 2, Message: "PPPoE session ended"}, nil)
		return
	}
	s.up, s.key, s.state = ls, ls.Key, lacRelaying
	s.relay.Store(true)
	// From now on the datapath's reader hands the LNS's frames straight
	// to the client; Frame below only sees those that came before.
	ifc.a.engine.Engine().SetRelay(ls.Key, s.relayFrame)
	ifc.a.log.Info("lac session up", append(ifc.fields(s), zap.String("lns", ls.LNS.Name),
		zap.Uint32("tunnel_id", ls.TunnelID), zap.Uint32("session_id", ls.SessionID))...)
}

// Down: the call ended or failed; the PPPoE session ends with it.
func (s *lacSession) Down(id lac.CallID, r lac.Reason) {
	ifc := s.ifc
	ifc.mu.Lock()
	defer ifc.mu.Unlock()
	if r.Err != nil {
		ifc.a.counts.failed.Add(1)
	}
	ifc.a.log.Info("lac call down", append(ifc.fields(s), zap.Uint16("result", r.Result.Code), zap.Bool("by_lns", r.ByPeer), zap.Error(r.Err))...)
	s.called = false
	ifc.drop(s, true, pppoeEnded, nil)
}

// relayFrame is the session's datapath relay: a PPP frame from the LNS
// to the client, on the datapath's reader goroutine.
func (s *lacSession) relayFrame(frame []byte) {
	if s.relay.Load() {
		s.ifc.a.counts.relayed.Add(1)
		s.ifc.sendPPP(s, frame)
	}
}

// Frame relays a PPP frame from the LNS to the client (RFC 2516 §6).
func (s *lacSession) Frame(id lac.CallID, frame []byte) {
	if !s.relay.Load() {
		return
	}
	s.ifc.a.counts.shardFrames.Add(1)
	s.ifc.sendPPP(s, frame)
}

// stats adds the LAC role's counters to show stats.
func (a *access) stats(m map[string]uint64) {
	m["lac_pppoe_sessions"] = a.counts.up.Load()
	m["lac_pppoe_sessions_ended"] = a.counts.down.Load()
	m["lac_pppoe_discovery_refused"] = a.counts.refused.Load()
	m["lac_calls_failed"] = a.counts.failed.Load()
	m["lac_frames_to_clients_relayed"] = a.counts.relayed.Load()
	m["lac_frames_to_clients_via_shards"] = a.counts.shardFrames.Load()
	m["lac_frames_to_lns"] = a.counts.toLNS.Load()
	es := a.engine.Stats()
	m["lac_tunnels_opened"], m["lac_tunnels_failed"] = es.TunnelsOpened, es.TunnelsFailed
	m["lac_calls_dialed"], m["lac_calls_up"], m["lac_failovers"] = es.CallsDialed, es.CallsUp, es.Failovers
}

// sessions lists the LAC-side sessions for show sessions.
func (a *access) sessions() []SessionInfo {
	now := time.Now()
	var out []SessionInfo
	for _, ifc := range a.ifaces {
		ifc.mu.Lock()
		for _, s := range ifc.sessions {
			si := SessionInfo{Role: "lac", State: s.state, UserName: s.user, AuthProtocol: s.authP,
				MAC: s.peer.String(), PPPoESessionID: s.id, Interface: ifc.name, CallingNumber: s.peer.String(),
				ProxyLCP: s.proxy.LastSentConfReq != nil, Since: s.started, UptimeSeconds: now.Sub(s.started).Seconds()}
			if s.state == lacRelaying {
				si.LNS = s.up.LNS.Name
				si.Peer = s.up.LNS.Addr.String()
				si.Version = int(s.up.Version)
				si.TunnelID, si.PeerTunnelID = s.up.TunnelID, s.up.PeerTunnelID
				si.SessionID, si.PeerSessionID = s.up.SessionID, s.up.PeerSessionID
				if c, ok := a.engine.Engine().Counters(s.key); ok {
					si.RxPackets, si.RxBytes, si.TxPackets, si.TxBytes = c.RxPackets, c.RxBytes, c.TxPackets, c.TxBytes
				}
			}
			out = append(out, si)
		}
		ifc.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Interface != out[j].Interface {
			return out[i].Interface < out[j].Interface
		}
		return out[i].PPPoESessionID < out[j].PPPoESessionID
	})
	return out
}

// validateLAC checks the LAC section; every problem is reported.
func validateLAC(l *LAC) error {
	if !l.Enabled() {
		return nil
	}
	var errs []string
	names := map[string]bool{}
	for _, p := range l.LNS {
		if p.Name == "" || names[p.Name] {
			errs = append(errs, fmt.Sprintf("lac: LNS name %q empty or repeated", p.Name))
		}
		names[p.Name] = true
		if p.Version != 0 && p.Version != 2 && p.Version != 3 {
			errs = append(errs, fmt.Sprintf("lac: LNS %q: version %d", p.Name, p.Version))
		}
	}
	for _, r := range l.Realms {
		for _, n := range r.LNS {
			if !names[n] {
				errs = append(errs, fmt.Sprintf("lac: realm %q names no LNS %q", r.Realm, n))
			}
		}
	}
	for _, a := range l.Auth {
		if a != "chap" && a != "pap" {
			errs = append(errs, fmt.Sprintf("lac: auth %q (chap or pap)", a))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// startAccess starts the LAC role and waits until its interfaces are
// open; done is closed when it has stopped.
func (s *Server) startAccess(ctx context.Context, cfg *Config, done chan struct{}) error {
	a, err := newAccess(cfg, s.log)
	if err != nil {
		close(done)
		return err
	}
	a.radius = s.aaa.client.Load
	started := make(chan error, 1)
	go func() {
		defer close(done)
		a.run(ctx, started)
	}()
	if err := <-started; err != nil {
		<-done
		return fmt.Errorf("control: lac: %w", err)
	}
	s.access.Store(a)
	return nil
}
