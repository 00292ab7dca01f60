package pppoe

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// ACConfig configures the Access Concentrator side of one interface.
type ACConfig struct {
	// Name is sent in the AC-Name tag of every PADO and PADS.
	Name string
	// MAC is the interface's address: PADOs and PADSs come from it and
	// PADRs must be sent to it.
	MAC MAC
	// ServiceNames are the services offered. Empty: any Service-Name a
	// Host asks for is accepted, and the empty one is offered.
	ServiceNames []string
	// CookieKey keys the AC-Cookie HMAC; random per process is enough.
	CookieKey []byte
	// CookieLifetime is how long after its PADO an AC-Cookie is honoured
	// (default 60s).
	CookieLifetime time.Duration
	// MaxSessions bounds the sessions of the interface (default and
	// maximum 65534, the session IDs 1..0xfffe).
	MaxSessions int
	// MaxPerMAC bounds the sessions of one Host address (0: no bound).
	MaxPerMAC int
}

// ACSession is a session the AC confirmed with a PADS.
type ACSession struct {
	ID             uint16
	Peer           MAC
	ServiceName    string
	HostUniq       []byte
	RelaySessionID []byte
	Started        time.Time
}

// ACEventKind says what a discovery packet did.
type ACEventKind uint8

// AC events.
const (
	ACNone        ACEventKind = iota
	ACSessionUp               // a PADS confirmed a new session
	ACSessionDown             // the Host sent PADT
	ACRefused                 // dropped or refused; Reason says why
)

func (k ACEventKind) String() string {
	switch k {
	case ACNone:
		return "none"
	case ACSessionUp:
		return "session-up"
	case ACSessionDown:
		return "session-down"
	case ACRefused:
		return "refused"
	}
	return "unknown"
}

// ACEvent is the outcome of one discovery packet.
type ACEvent struct {
	Kind    ACEventKind
	Session ACSession
	Reason  string
}

// cookieLen is the AC-Cookie size: a 4-octet timestamp and 16 octets of
// HMAC-SHA256.
const cookieLen = 20

// padrRepeat is how long after its PADS a repeated PADR (same Host, same
// Host-Uniq) is answered with the same session instead of a new one: the
// Host did not receive the PADS (RFC 2516 §8).
const padrRepeat = 10 * time.Second

// AC is the discovery state machine of an Access Concentrator (RFC 2516
// §5). It is not safe for concurrent use: its owner feeds it.
type AC struct {
	cfg      ACConfig
	sessions map[uint16]*ACSession
	perMAC   map[MAC]int
	next     uint16
}

// NewAC returns an AC with no sessions.
func NewAC(cfg ACConfig) *AC {
	if cfg.CookieLifetime <= 0 {
		cfg.CookieLifetime = 60 * time.Second
	}
	if cfg.MaxSessions <= 0 || cfg.MaxSessions > 0xfffe {
		cfg.MaxSessions = 0xfffe
	}
	return &AC{cfg: cfg, sessions: make(map[uint16]*ACSession), perMAC: make(map[MAC]int), next: 1}
}

// Sessions is the number of sessions.
func (a *AC) Sessions() int { return len(a.sessions) }

// Session returns the session with that ID.
func (a *AC) Session(id uint16) (ACSession, bool) {
	s, ok := a.sessions[id]
	if !ok {
		return ACSession{}, false
	}
	return *s, true
}

// Valid reports whether a session packet with that ID from peer belongs
// to a session (RFC 2516 §4: the ID and both addresses define it).
func (a *AC) Valid(id uint16, peer MAC) bool {
	s, ok := a.sessions[id]
	return ok && s.Peer == peer
}

// Terminate removes the session and appends the PADT that tells its Host
// (RFC 2516 §5.5); false if there is no such session.
func (a *AC) Terminate(id uint16, out []byte) ([]byte, bool) {
	s, ok := a.sessions[id]
	if !ok {
		return out, false
	}
	a.remove(s)
	start := len(out)
	out = AppendHeader(out, s.Peer, a.cfg.MAC, EtherTypeDiscovery, CodePADT, id)
	out = AppendTagString(out, TagACName, a.cfg.Name)
	SetLength(out[start:])
	return out, true
}

// Discovery handles one discovery packet received at now and appends the
// answer (if any) to out.
func (a *AC) Discovery(now time.Time, f *Frame, out []byte) ([]byte, ACEvent) {
	if !f.Src.IsUnicast() {
		return out, ACEvent{Kind: ACRefused, Reason: "source not unicast"}
	}
	d, err := ParseDiscovery(f.Payload)
	if err != nil {
		return out, ACEvent{Kind: ACRefused, Reason: err.Error()}
	}
	switch f.Code {
	case CodePADI:
		return a.padi(now, f, &d, out)
	case CodePADR:
		return a.padr(now, f, &d, out)
	case CodePADT:
		s, ok := a.sessions[f.SessionID]
		if !ok || s.Peer != f.Src || f.Dst != a.cfg.MAC {
			return out, ACEvent{Kind: ACRefused, Reason: "PADT for no session"}
		}
		a.remove(s)
		return out, ACEvent{Kind: ACSessionDown, Session: *s}
	}
	return out, ACEvent{Kind: ACRefused, Reason: f.Code.String() + " not for an AC"}
}

func (a *AC) remove(s *ACSession) {
	delete(a.sessions, s.ID)
	if a.perMAC[s.Peer]--; a.perMAC[s.Peer] <= 0 {
		delete(a.perMAC, s.Peer)
	}
}

// macFull reports whether the Host has all the sessions it may have.
func (a *AC) macFull(m MAC) bool { return a.cfg.MaxPerMAC > 0 && a.perMAC[m] >= a.cfg.MaxPerMAC }

// offers reports whether the AC serves the Service-Name (RFC 2516
// Appendix A: a zero-length Service-Name means any service).
func (a *AC) offers(name []byte) bool {
	if len(name) == 0 || len(a.cfg.ServiceNames) == 0 {
		return true
	}
	for _, s := range a.cfg.ServiceNames {
		if s == string(name) {
			return true
		}
	}
	return false
}

// RFC 2516 §5.1, §5.2.
func (a *AC) padi(now time.Time, f *Frame, d *Discovery, out []byte) ([]byte, ACEvent) {
	if f.SessionID != 0 {
		return out, ACEvent{Kind: ACRefused, Reason: "PADI with a session ID"}
	}
	if d.ServiceNames != 1 {
		return out, ACEvent{Kind: ACRefused, Reason: "PADI without exactly one Service-Name"}
	}
	if !a.offers(d.ServiceName) {
		// An AC that cannot serve the PADI MUST NOT answer it.
		return out, ACEvent{Kind: ACRefused, Reason: "Service-Name not offered"}
	}
	if len(a.sessions) >= a.cfg.MaxSessions {
		return out, ACEvent{Kind: ACRefused, Reason: "no free session"}
	}
	if a.macFull(f.Src) {
		return out, ACEvent{Kind: ACRefused, Reason: "sessions per MAC address"}
	}
	start := len(out)
	out = AppendHeader(out, f.Src, a.cfg.MAC, EtherTypeDiscovery, CodePADO, 0)
	out = AppendTagString(out, TagACName, a.cfg.Name)
	out = AppendTag(out, TagServiceName, d.ServiceName)
	for _, s := range a.cfg.ServiceNames {
		if s != string(d.ServiceName) {
			out = AppendTagString(out, TagServiceName, s)
		}
	}
	var cookie [cookieLen]byte
	out = AppendTag(out, TagACCookie, a.cookie(cookie[:0], f.Src, uint32(now.Unix())))
	out = a.echo(out, d)
	SetLength(out[start:])
	return out, ACEvent{}
}

// echo appends the tags the AC returns unmodified (RFC 2516 Appendix A:
// Host-Uniq, Relay-Session-Id).
func (a *AC) echo(out []byte, d *Discovery) []byte {
	if d.Has&HasHostUniq != 0 {
		out = AppendTag(out, TagHostUniq, d.HostUniq)
	}
	if d.Has&HasRelaySessionID != 0 {
		out = AppendTag(out, TagRelaySessionID, d.RelaySessionID)
	}
	return out
}

// cookie appends the AC-Cookie for a Host at time ts: ts, then the HMAC
// of the Host's address, the AC's address and ts.
func (a *AC) cookie(b []byte, host MAC, ts uint32) []byte {
	m := hmac.New(sha256.New, a.cfg.CookieKey)
	var msg [16]byte
	copy(msg[0:6], host[:])
	copy(msg[6:12], a.cfg.MAC[:])
	binary.BigEndian.PutUint32(msg[12:], ts)
	m.Write(msg[:])
	var sum [sha256.Size]byte
	b = binary.BigEndian.AppendUint32(b, ts)
	return append(b, m.Sum(sum[:0])[:cookieLen-4]...)
}

func (a *AC) cookieValid(now time.Time, host MAC, c []byte) bool {
	if len(c) != cookieLen {
		return false
	}
	ts := binary.BigEndian.Uint32(c)
	age := now.Unix() - int64(ts)
	if age < -1 || age > int64(a.cfg.CookieLifetime/time.Second) {
		return false
	}
	var want [cookieLen]byte
	return hmac.Equal(a.cookie(want[:0], host, ts), c)
}

// RFC 2516 §5.3, §5.4.
func (a *AC) padr(now time.Time, f *Frame, d *Discovery, out []byte) ([]byte, ACEvent) {
	if f.Dst != a.cfg.MAC || f.SessionID != 0 {
		return out, ACEvent{Kind: ACRefused, Reason: "PADR not to this AC"}
	}
	if d.Has&HasACCookie == 0 || !a.cookieValid(now, f.Src, d.ACCookie) {
		// Stateless check: a PADR without the cookie of a recent PADO
		// to this Host is dropped without using a session (RFC 2516 §9).
		return out, ACEvent{Kind: ACRefused, Reason: "bad AC-Cookie"}
	}
	if d.ServiceNames != 1 || !a.offers(d.ServiceName) {
		start := len(out)
		out = AppendHeader(out, f.Src, a.cfg.MAC, EtherTypeDiscovery, CodePADS, 0)
		out = AppendTag(out, TagServiceName, d.ServiceName)
		out = AppendTagString(out, TagServiceNameError, "service not offered")
		out = a.echo(out, d)
		SetLength(out[start:])
		return out, ACEvent{Kind: ACRefused, Reason: "Service-Name not offered"}
	}
	for _, s := range a.sessions {
		if s.Peer == f.Src && bytes.Equal(s.HostUniq, d.HostUniq) && now.Sub(s.Started) < padrRepeat {
			// The PADS was lost: confirm the same session again.
			return a.pads(out, s, d), ACEvent{}
		}
	}
	reason := ""
	switch {
	case len(a.sessions) >= a.cfg.MaxSessions:
		reason = "no free session"
	case a.macFull(f.Src):
		reason = "sessions per MAC address"
	}
	var id uint16
	if reason == "" {
		var ok bool
		if id, ok = a.allocate(); !ok {
			reason = "no free session"
		}
	}
	if reason != "" {
		start := len(out)
		out = AppendHeader(out, f.Src, a.cfg.MAC, EtherTypeDiscovery, CodePADS, 0)
		out = AppendTag(out, TagServiceName, d.ServiceName)
		out = AppendTagString(out, TagACSystemError, reason)
		out = a.echo(out, d)
		SetLength(out[start:])
		return out, ACEvent{Kind: ACRefused, Reason: reason}
	}
	s := &ACSession{
		ID:          id,
		Peer:        f.Src,
		ServiceName: string(d.ServiceName),
		Started:     now,
	}
	if d.Has&HasHostUniq != 0 {
		s.HostUniq = append([]byte{}, d.HostUniq...)
	}
	if d.Has&HasRelaySessionID != 0 {
		s.RelaySessionID = append([]byte{}, d.RelaySessionID...)
	}
	a.sessions[id] = s
	a.perMAC[s.Peer]++
	return a.pads(out, s, d), ACEvent{Kind: ACSessionUp, Session: *s}
}

func (a *AC) pads(out []byte, s *ACSession, d *Discovery) []byte {
	start := len(out)
	out = AppendHeader(out, s.Peer, a.cfg.MAC, EtherTypeDiscovery, CodePADS, s.ID)
	out = AppendTagString(out, TagServiceName, s.ServiceName)
	out = AppendTagString(out, TagACName, a.cfg.Name)
	out = a.echo(out, d)
	SetLength(out[start:])
	return out
}

// allocate returns a free session ID, walking on from the last one so an
// ID is not reused right after its session ended.
func (a *AC) allocate() (uint16, bool) {
	for range 0xfffe {
		id := a.next
		a.next++
		if a.next == 0 || a.next == 0xffff {
			a.next = 1
		}
		if _, used := a.sessions[id]; !used {
			return id, true
		}
	}
	return 0, false
}
