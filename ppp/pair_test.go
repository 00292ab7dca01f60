package ppp

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// seqRand is a deterministic randomness source for reproducible
// transcripts.
type seqRand struct{ r *rand.ChaCha8 }

func newRand(seed byte) *seqRand {
	var s [32]byte
	s[0] = seed
	return &seqRand{rand.NewChaCha8(s)}
}

func (r *seqRand) Read(b []byte) (int, error) { return r.r.Read(b) }

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func serverConfig(auth ...AuthProto) Config {
	return Config{
		Role:      RoleServer,
		Rand:      newRand(1),
		Auth:      auth,
		Name:      "lns",
		IPv4:      true,
		LocalIPv4: netip.MustParseAddr("10.0.0.1"),
		PeerIPv4:  netip.MustParseAddr("10.0.0.2"),
		DNS1:      netip.MustParseAddr("192.0.2.53"),
		DNS2:      netip.MustParseAddr("192.0.2.54"),
	}
}

func clientConfig(user, pass string) Config {
	return Config{
		Role:       RoleClient,
		Rand:       newRand(2),
		User:       user,
		Password:   pass,
		IPv4:       true,
		RequestDNS: true,
	}
}

// pair connects a client and a server engine back to back; the server's
// AuthRequests are answered by users.
type pair struct {
	t        *testing.T
	c, s     *Session
	users    Authenticator
	now      time.Time
	cEvents  []Event
	sEvents  []Event
	frames   int
	lossy    func(fromServer bool, f []byte) bool
	cOut     Output
	sOut     Output
	pendingC [][]byte // frames for the client
	pendingS [][]byte // frames for the server
}

func newPair(t *testing.T, c, s Config, users Authenticator) *pair {
	t.Helper()
	cs, err := NewSession(c)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := NewSession(s)
	if err != nil {
		t.Fatal(err)
	}
	return &pair{t: t, c: cs, s: ss, users: users, now: t0}
}

func (p *pair) collect(fromServer bool, o *Output) {
	for i := 0; i < o.NumFrames(); i++ {
		f := append([]byte(nil), o.Frame(i)...)
		if p.lossy != nil && p.lossy(fromServer, f) {
			continue
		}
		if fromServer {
			p.pendingC = append(p.pendingC, f)
		} else {
			p.pendingS = append(p.pendingS, f)
		}
	}
	for _, e := range o.Events {
		if fromServer {
			p.sEvents = append(p.sEvents, e)
			if e.Kind == EventAuthRequest && p.users != nil {
				r := p.users.Authenticate(e.Auth)
				var o2 Output
				p.s.AuthResult(p.now, r, &o2)
				p.collect(true, &o2)
			}
		} else {
			p.cEvents = append(p.cEvents, e)
		}
	}
	o.Reset()
}

func (p *pair) start() {
	p.c.Start(p.now, &p.cOut)
	p.collect(false, &p.cOut)
	p.s.Start(p.now, &p.sOut)
	p.collect(true, &p.sOut)
}

// run delivers frames until both sides are quiet, then advances time to
// the next deadline, for at most d of simulated time.
func (p *pair) run(d time.Duration) {
	end := p.now.Add(d)
	for steps := 0; steps < 10000; steps++ {
		if len(p.pendingS) > 0 {
			f := p.pendingS[0]
			p.pendingS = p.pendingS[1:]
			p.frames++
			p.s.Input(p.now, f, &p.sOut)
			p.collect(true, &p.sOut)
			continue
		}
		if len(p.pendingC) > 0 {
			f := p.pendingC[0]
			p.pendingC = p.pendingC[1:]
			p.frames++
			p.c.Input(p.now, f, &p.cOut)
			p.collect(false, &p.cOut)
			continue
		}
		next, ok := earliest(p.c, p.s)
		if !ok || next.After(end) {
			return
		}
		p.now = next
		p.c.Tick(p.now, &p.cOut)
		p.collect(false, &p.cOut)
		p.s.Tick(p.now, &p.sOut)
		p.collect(true, &p.sOut)
	}
	p.t.Fatal("no quiescence after 10000 steps")
}

func earliest(a, b *Session) (time.Time, bool) {
	da, oka := a.Deadline()
	db, okb := b.Deadline()
	switch {
	case oka && okb:
		if db.Before(da) {
			return db, true
		}
		return da, true
	case oka:
		return da, true
	}
	return db, okb
}

func findEvent(evs []Event, k EventKind, proto Protocol) (Event, bool) {
	for _, e := range evs {
		if e.Kind == k && (proto == 0 || e.Network.Protocol == proto) {
			return e, true
		}
	}
	return Event{}, false
}

func kinds(evs []Event) []string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Kind.String())
	}
	return s
}

// RFC 1661 §3.2 phases end to end: Establish, Authenticate, Network,
// for each authentication protocol, with IPv4 (RFC 1332, RFC 1877) and
// IPv6 (RFC 5072).
func TestBackToBackReachesNetwork(t *testing.T) {
	users := LocalUsers{"alice": "s3cret"}
	for _, a := range []AuthProto{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2} {
		t.Run(a.String(), func(t *testing.T) {
			sc := serverConfig(a)
			sc.IPv6 = true
			cc := clientConfig("alice", "s3cret")
			cc.IPv6 = true
			p := newPair(t, cc, sc, users)
			p.start()
			p.run(time.Second)
			for _, side := range []struct {
				name string
				evs  []Event
			}{{"client", p.cEvents}, {"server", p.sEvents}} {
				if _, ok := findEvent(side.evs, EventAuthenticated, 0); !ok {
					t.Fatalf("%s: no Authenticated; events %v", side.name, kinds(side.evs))
				}
				if _, ok := findEvent(side.evs, EventNetworkUp, ProtoIPv6CP); !ok {
					t.Fatalf("%s: no IPv6CP NetworkUp; events %v", side.name, kinds(side.evs))
				}
			}
			ce, ok := findEvent(p.cEvents, EventNetworkUp, ProtoIPCP)
			if !ok {
				t.Fatalf("client: no IPCP NetworkUp; events %v", kinds(p.cEvents))
			}
			if ce.Network.LocalIPv4 != sc.PeerIPv4 || ce.Network.PeerIPv4 != sc.LocalIPv4 {
				t.Errorf("client addresses %v/%v", ce.Network.LocalIPv4, ce.Network.PeerIPv4)
			}
			if ce.Network.DNS1 != sc.DNS1 || ce.Network.DNS2 != sc.DNS2 {
				t.Errorf("client DNS %v %v", ce.Network.DNS1, ce.Network.DNS2)
			}
			se, _ := findEvent(p.sEvents, EventNetworkUp, ProtoIPv6CP)
			ce6, _ := findEvent(p.cEvents, EventNetworkUp, ProtoIPv6CP)
			if se.Network.LocalIID != ce6.Network.PeerIID || se.Network.PeerIID != ce6.Network.LocalIID || se.Network.LocalIID == se.Network.PeerIID {
				t.Errorf("IIDs server %x/%x client %x/%x", se.Network.LocalIID, se.Network.PeerIID, ce6.Network.LocalIID, ce6.Network.PeerIID)
			}
			if p.s.Phase() != PhaseNetwork || p.c.Phase() != PhaseNetwork {
				t.Errorf("phases %v %v", p.s.Phase(), p.c.Phase())
			}
		})
	}
}

// RFC 1334 §2.2.1, RFC 1994 §4.1, RFC 2759 §6: a wrong password gets a
// Nak/Failure and the link is terminated.
func TestBackToBackWrongPassword(t *testing.T) {
	users := LocalUsers{"alice": "s3cret"}
	for _, a := range []AuthProto{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2} {
		t.Run(a.String(), func(t *testing.T) {
			p := newPair(t, clientConfig("alice", "wrong"), serverConfig(a), users)
			p.start()
			p.run(30 * time.Second)
			se, ok := findEvent(p.sEvents, EventLinkDown, 0)
			if !ok || se.Reason != ReasonAuthFailed {
				t.Fatalf("server events %v reason %v", kinds(p.sEvents), se.Reason)
			}
			ce, ok := findEvent(p.cEvents, EventLinkDown, 0)
			if !ok || ce.Reason != ReasonAuthFailed {
				t.Fatalf("client events %v reason %v", kinds(p.cEvents), ce.Reason)
			}
			if _, ok := findEvent(p.sEvents, EventNetworkUp, 0); ok {
				t.Fatal("network came up after failed authentication")
			}
		})
	}
}
