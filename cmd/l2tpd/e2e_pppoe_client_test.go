package main_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/datapath/pppoe"
	"github.com/l2tpd/l2tpd/ppp"
)

// pppoeSub is one emulated PPPoE subscriber: discovery (RFC 2516 §5),
// then PPP in the client role (LCP, PAP or CHAP, IPCP) over the session.
type pppoeSub struct {
	mac  pppoe.MAC
	disc *pppoe.Client
	eng  *ppp.Session
	// what the subscriber saw
	addr        netip.Addr
	lcpConfReqs int // LCP Configure-Requests received (RFC 1661 §5.1)
	lcpRenego   int // of which after authentication began
	authAsks    int // CHAP Challenges received, or PAP answers
	down        string
	rx          [][]byte // IP packets received
}

// pppoeSubs runs n subscribers on one AF_PACKET socket in a namespace.
type pppoeSubs struct {
	t    *testing.T
	conn *pppoe.Conn
	mu   sync.Mutex
	subs map[pppoe.MAC]*pppoeSub
	out  ppp.Output
	auth ppp.AuthProto
	user string
	pass string
}

// startPPPoESubs opens the socket on ifname in ns and starts discovery
// for n subscribers (MAC addresses 02:50:50:base:00:i) authenticating as
// user with pass.
func startPPPoESubs(t *testing.T, ns, ifname string, base byte, n int, user, pass string, auth ppp.AuthProto) *pppoeSubs {
	t.Helper()
	ps := &pppoeSubs{t: t, subs: map[pppoe.MAC]*pppoeSub{}, user: user, pass: pass, auth: auth}
	if err := inNetns(ns, func() error {
		var err error
		ps.conn, err = pppoe.Listen(ifname, pppoe.ListenOptions{Promisc: true})
		return err
	}); err != nil {
		t.Fatalf("PPPoE socket on %s in %s: %v", ifname, ns, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ps.conn.Run(ctx, ps.input) }()
	go func() { defer wg.Done(); ps.timers(ctx) }()
	t.Cleanup(func() {
		cancel()
		ps.conn.Close()
		wg.Wait()
	})
	now := time.Now()
	ps.mu.Lock()
	var frames [][]byte
	for i := 0; i < n; i++ {
		m := pppoe.MAC{0x02, 0x50, 0x50, base, 0, byte(i)}
		s := &pppoeSub{mac: m, disc: pppoe.NewClient(pppoe.ClientConfig{MAC: m, HostUniq: m[:], Timeout: 500 * time.Millisecond, Retries: 6})}
		ps.subs[m] = s
		frames = append(frames, s.disc.Start(now, nil))
	}
	ps.mu.Unlock()
	if _, err := ps.conn.WriteBatch(frames); err != nil {
		t.Fatalf("PADI: %v", err)
	}
	return ps
}

func (ps *pppoeSubs) input(f *pppoe.Frame, pkt []byte) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	s := ps.subs[f.Dst]
	if s == nil {
		return
	}
	now := time.Now()
	if f.Discovery() {
		out, ev := s.disc.Discovery(now, f, nil)
		if len(out) > 0 {
			ps.conn.Write(out)
		}
		switch ev.Kind {
		case pppoe.ClientUp:
			eng, err := ppp.NewSession(ppp.Config{Role: ppp.RoleClient, Rand: rand.Reader, User: ps.user, Password: ps.pass,
				Auth: []ppp.AuthProto{ps.auth}, IPv4: true, MRU: 1492, MaxMRU: 1492})
			if err != nil {
				ps.t.Errorf("ppp: %v", err)
				return
			}
			s.eng = eng
			eng.Start(now, &ps.out)
			ps.flush(s)
		case pppoe.ClientDown:
			s.down = "PADT"
		case pppoe.ClientGaveUp:
			s.down = ev.Reason
		}
		return
	}
	if s.eng == nil || f.SessionID != s.disc.SessionID() || f.Src != s.disc.AC() {
		return
	}
	if proto, info, err := ppp.ParseFrame(f.Payload); err == nil && len(info) > 0 {
		switch {
		case proto == ppp.ProtoLCP && info[0] == 1:
			s.lcpConfReqs++
			if s.authAsks > 0 || s.eng.Phase() >= ppp.PhaseAuthenticate {
				s.lcpRenego++
			}
		case proto == ppp.ProtoCHAP && info[0] == 1, proto == ppp.ProtoPAP && (info[0] == 2 || info[0] == 3):
			s.authAsks++
		}
	}
	s.eng.Input(now, f.Payload, &ps.out)
	ps.flush(s)
}

func (ps *pppoeSubs) flush(s *pppoeSub) {
	for i := 0; i < ps.out.NumFrames(); i++ {
		fr := ps.out.Frame(i)
		if len(fr) >= 2 && fr[0] == 0xff && fr[1] == 0x03 {
			fr = fr[2:] // RFC 2516 §6: no address and control field
		}
		ps.conn.Write(pppoe.AppendSession(nil, s.disc.AC(), s.mac, s.disc.SessionID(), fr))
	}
	for _, e := range ps.out.Events {
		switch e.Kind {
		case ppp.EventNetworkUp:
			if e.Network.Protocol == ppp.ProtoIPCP {
				s.addr = e.Network.LocalIPv4
			}
		case ppp.EventLinkDown:
			s.down = e.Reason.String()
		}
	}
	for _, d := range ps.out.Data {
		s.rx = append(s.rx, append([]byte(nil), d.Packet...))
	}
	ps.out.Reset()
}

func (ps *pppoeSubs) timers(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			ps.mu.Lock()
			for _, s := range ps.subs {
				if out, _ := s.disc.Tick(now, nil); len(out) > 0 {
					ps.conn.Write(out)
				}
				if s.eng != nil {
					if d, ok := s.eng.Deadline(); ok && !now.Before(d) {
						s.eng.Tick(now, &ps.out)
						ps.flush(s)
					}
				}
			}
			ps.mu.Unlock()
		}
	}
}

// waitUp waits until every subscriber has an IPCP address and returns
// them by MAC address.
func (ps *pppoeSubs) waitUp(t *testing.T, timeout time.Duration) map[pppoe.MAC]netip.Addr {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ps.mu.Lock()
		up := map[pppoe.MAC]netip.Addr{}
		var states []string
		for m, s := range ps.subs {
			if s.addr.IsValid() {
				up[m] = s.addr
			} else {
				st := "discovery " + s.disc.State().String()
				if s.eng != nil {
					st = "ppp " + s.eng.Phase().String()
				}
				states = append(states, fmt.Sprintf("%v: %s %s", m, st, s.down))
			}
		}
		ps.mu.Unlock()
		if len(states) == 0 {
			return up
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscribers not up within %v: %v", timeout, states)
		}
		time.Sleep(pollInterval)
	}
}

// sendUDP sends an IPv4/UDP packet (RFC 768) over the subscriber's PPP
// session and waits for a packet back carrying the same payload.
func (ps *pppoeSubs) udpRoundTrip(t *testing.T, m pppoe.MAC, dst netip.AddrPort, payload []byte) {
	t.Helper()
	ps.mu.Lock()
	s := ps.subs[m]
	src := s.addr
	ps.mu.Unlock()
	pkt := ipv4UDP(src, netip.AddrPortFrom(src, 40000), dst, payload)
	frame := append([]byte{0x00, 0x21}, pkt...)
	deadline := time.Now().Add(waitTimeout)
	for time.Now().Before(deadline) {
		ps.mu.Lock()
		ps.conn.Write(pppoe.AppendSession(nil, s.disc.AC(), s.mac, s.disc.SessionID(), frame))
		ps.mu.Unlock()
		for wait := time.Now().Add(500 * time.Millisecond); time.Now().Before(wait); time.Sleep(20 * time.Millisecond) {
			ps.mu.Lock()
			for _, p := range s.rx {
				if len(p) >= 28 && p[9] == 17 && string(p[28:]) == string(payload) &&
					netip.AddrFrom4([4]byte(p[16:20])) == src && netip.AddrFrom4([4]byte(p[12:16])) == dst.Addr() {
					ps.mu.Unlock()
					return
				}
			}
			ps.mu.Unlock()
		}
	}
	t.Fatalf("%v (%v): no UDP answer from %v within %v", m, src, dst, waitTimeout)
}

// ipv4UDP builds an IPv4 header (RFC 791) and UDP datagram.
func ipv4UDP(src netip.Addr, from, to netip.AddrPort, payload []byte) []byte {
	n := 20 + 8 + len(payload)
	b := make([]byte, n)
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	s4, d4 := src.As4(), to.Addr().As4()
	copy(b[12:16], s4[:])
	copy(b[16:20], d4[:])
	binary.BigEndian.PutUint16(b[10:], checksum(b[:20], 0))
	u := b[20:]
	binary.BigEndian.PutUint16(u[0:], from.Port())
	binary.BigEndian.PutUint16(u[2:], to.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	// The pseudo-header (RFC 768): addresses, protocol, UDP length.
	var sum uint32
	for i := 12; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	sum += 17 + uint32(len(u))
	c := checksum(u, sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return b
}

func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
