package control

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
)

// runDropping is peer.run with the LAC's messages of type drop lost on
// the way to the server. It returns the LAC tunnel's events.
func (p *peer) runDropping(drop wire.MsgType, cond func([]tunnel.Event) bool, within time.Duration) ([]tunnel.Event, bool) {
	var evs []tunnel.Event
	end := time.Now().Add(within)
	buf := make([]byte, 4096)
	for time.Now().Before(end) {
		for _, pkt := range p.tun.Poll(time.Now(), nil) {
			if m, err := wire.ParseMessage(pkt, wire.EncapUDP, nil); err == nil && m.Type == drop {
				continue
			}
			if _, err := p.conn.WriteToUDPAddrPort(pkt, p.srv); err != nil {
				p.t.Fatal(err)
			}
		}
		evs = append(evs, p.tun.Events()...)
		if cond(evs) {
			return evs, true
		}
		p.conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, _, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			continue
		}
		p.tun.Receive(time.Now(), buf[:n])
	}
	return evs, cond(evs)
}

// halfOpenCall opens a tunnel from a LAC that places one call and loses
// its ICCN: the server holds the call in wait-connect. The LAC's
// retransmissions wait longer than any test, so the ICCN stays lost.
func halfOpenCall(t *testing.T, addr netip.AddrPort, v uint8, id uint32) (*peer, uint32) {
	t.Helper()
	p := newPeer(t, addr, v, id)
	p.tun = tunnel.NewInitiator(time.Now(), tunnel.Config{Version: v, LocalID: id, HostName: "half-open-lac", Rand: rand.Reader,
		RetransmitInitial: time.Minute, RetransmitCap: time.Minute})
	if !p.run(func() bool { return p.tun.State() == tunnel.StateEstablished }, 3*time.Second) {
		t.Fatal("tunnel not established")
	}
	sid, err := p.tun.StartCall(time.Now(), tunnel.CallParams{Serial: id})
	if err != nil {
		t.Fatal(err)
	}
	// The LAC takes its call as up once it has sent the ICCN.
	if _, ok := p.runDropping(wire.MsgICCN, func(evs []tunnel.Event) bool {
		_, up := hasEvent(evs, tunnel.SessionUp, sid)
		return up
	}, 3*time.Second); !ok {
		t.Fatal("no ICRP")
	}
	return p, sid
}

func hasEvent(evs []tunnel.Event, kind tunnel.EventKind, sid uint32) (tunnel.Event, bool) {
	for _, ev := range evs {
		if ev.Kind == kind && ev.SessionID == sid {
			return ev, true
		}
	}
	return tunnel.Event{}, false
}

// halfOpenKeys lists the datapath keys of the server's subscribers and
// whether the datapath holds each.
func halfOpenKeys(t *testing.T, s *Server) map[datapath.SessionKey]bool {
	t.Helper()
	keys := map[datapath.SessionKey]bool{}
	if err := s.eachShard(context.Background(), func(sh *shard) {
		for k := range sh.subs {
			_, ok := s.dp.Counters(k)
			keys[k] = ok
		}
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// RFC 2661 §7.4.2: an LNS in wait-connect clears the call itself when
// the LAC never sends its ICCN. Through the running server: the call is
// cleared with CDN result 10 after control.session_setup_timeout, its
// PPP engine and datapath entry are gone, and its place under
// limits.max_sessions_in_setup is given back, so the next ICRQ, refused
// while the half-open call held the only place, is admitted.
func TestServerSetupTimeout(t *testing.T) {
	for _, v := range []uint8{2, 3} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			const timeout = 400 * time.Millisecond
			s, addr := startServer(t, func(c *Config) {
				c.SessionSetupTimeout = timeout
				c.Limits.MaxSessionsInSetup = 1
				// The server's ICRP waits for the LAC's acknowledgement
				// while the test talks to the other LAC: room for that.
				c.RetransmitInitial, c.RetransmitCap = 500*time.Millisecond, 2*time.Second
			})
			placed := time.Now()
			half, sid := halfOpenCall(t, addr, v, 50)
			ss, err := s.Sessions(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(ss) != 1 || ss[0].State != tunnel.SessionWaitConnect.String() || ss[0].PeerSessionID != sid {
				t.Fatalf("server sessions %+v, want the call in wait-connect", ss)
			}
			keys := halfOpenKeys(t, s)
			if len(keys) != 1 {
				t.Fatalf("datapath keys %v, want the half-open call's", keys)
			}
			for k, installed := range keys {
				if !installed {
					t.Fatalf("the answered call %v is not in the datapath", k)
				}
			}
			if st, _ := s.Stats(context.Background()); st.SessionsInSetup != 1 {
				t.Fatalf("%d sessions in setup, want 1", st.SessionsInSetup)
			}

			// Another LAC's call meanwhile: no place in setup, CDN 4.
			next := newPeer(t, addr, v, 51)
			if !next.run(func() bool { return next.tun.State() == tunnel.StateEstablished }, 3*time.Second) {
				t.Fatal("second tunnel not established")
			}
			refused, err := next.tun.StartCall(time.Now(), tunnel.CallParams{Serial: 2})
			if err != nil {
				t.Fatal(err)
			}
			var down tunnel.Event
			if !next.run(func() bool {
				for _, ev := range next.tun.Events() {
					if ev.Kind == tunnel.SessionDown && ev.SessionID == refused {
						down = ev
						return true
					}
				}
				return false
			}, 3*time.Second) {
				t.Fatal("the call over max_sessions_in_setup was not answered")
			}
			if down.Result.Code != wire.CDNNoResourcesTemp {
				t.Fatalf("call over the setup limit: %+v, want CDN 4", down.Result)
			}

			// The half-open call is cleared by the server, with result 10.
			evs, ok := half.runDropping(wire.MsgICCN, func(evs []tunnel.Event) bool {
				_, gone := hasEvent(evs, tunnel.SessionDown, sid)
				return gone
			}, 5*time.Second)
			cleared := time.Since(placed)
			if !ok {
				t.Fatal("the half-open call was never cleared")
			}
			ev, _ := hasEvent(evs, tunnel.SessionDown, sid)
			if !ev.ByPeer || ev.Result.Code != wire.CDNTimeout || !strings.HasPrefix(ev.Result.Message, "no ICCN within") {
				t.Fatalf("CDN %+v, want result 10", ev.Result)
			}
			if cleared < timeout {
				t.Fatalf("cleared %v after the ICRQ, before the timeout %v", cleared, timeout)
			}
			var st Stats
			waitFor(t, "the server to forget the call", func() bool {
				st, _ = s.Stats(context.Background())
				return st.Sessions == 0
			})
			if st.SessionsInSetup != 0 || st.Counters["sessions_closed_result_10"] != 1 || st.Refused["setup_limit"] != 1 {
				t.Fatalf("after the timeout: %d in setup, counters %v, refused %v", st.SessionsInSetup, st.Counters, st.Refused)
			}
			for k := range keys {
				if _, ok := s.dp.Counters(k); ok {
					t.Fatalf("datapath still holds %v", k)
				}
			}
			if left := halfOpenKeys(t, s); len(left) != 0 {
				t.Fatalf("PPP engines left: %v", left)
			}
			var held int
			s.eachShard(context.Background(), func(sh *shard) {
				for _, pa := range sh.admPeers {
					held += pa.sessions + pa.setup
				}
			})
			if held != 0 {
				t.Fatalf("admission still counts %d for the cleared call", held)
			}
			if half.tun.State() != tunnel.StateEstablished {
				t.Fatalf("the half-open call's tunnel is %v; only the call is cleared", half.tun.State())
			}

			// The place is free again: the next ICRQ is admitted and
			// connected.
			again, err := next.tun.StartCall(time.Now(), tunnel.CallParams{Serial: 3})
			if err != nil {
				t.Fatal(err)
			}
			if !next.run(func() bool {
				ls := next.tun.Session(again)
				return ls != nil && ls.State == tunnel.SessionEstablished
			}, 3*time.Second) {
				t.Fatal("the next call was not admitted")
			}
			waitFor(t, "the next call established", func() bool {
				next.run(func() bool { return false }, 20*time.Millisecond)
				ss, _ := s.Sessions(context.Background())
				return len(ss) == 1 && ss[0].State == tunnel.SessionEstablished.String() && ss[0].PeerSessionID == again
			})
			closeTunnels(t, s, half, next)
		})
	}
}

// closeTunnels clears the server's tunnels while the LACs acknowledge,
// so that the server's shutdown has no StopCCN left to wait for.
func closeTunnels(t *testing.T, s *Server, peers ...*peer) {
	t.Helper()
	for _, ti := range tunnelsOf(t, s) {
		if err := s.ClearTunnel(context.Background(), ti.TunnelID); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the tunnels closed", func() bool {
		for _, p := range peers {
			p.run(func() bool { return false }, 10*time.Millisecond)
		}
		return s.tunnels.Load() == 0
	})
}

// control.session_setup_timeout is read when a tunnel is set up: a
// reload changes it for tunnels set up after it, and a call on an older
// tunnel keeps the bound its tunnel started with.
func TestReloadSessionSetupTimeout(t *testing.T) {
	s, addr := startServer(t, func(c *Config) {
		c.SessionSetupTimeout = time.Hour
		// The older call's ICRP waits for its acknowledgement while the
		// test talks to the newer tunnel: room for that.
		c.RetransmitInitial, c.RetransmitCap = 500*time.Millisecond, 2*time.Second
	})
	old, oldSID := halfOpenCall(t, addr, 2, 60)
	next := *s.config()
	next.SessionSetupTimeout = 300 * time.Millisecond
	d, err := s.Reload(context.Background(), next, false)
	if err != nil || !d.Applied {
		t.Fatalf("reload: %+v %v", d, err)
	}
	if !slices.Contains(d.Changes, "control channel timers or window changed (new tunnels)") {
		t.Fatalf("reload changes %q do not name the control timers", d.Changes)
	}
	placed := time.Now()
	fresh, freshSID := halfOpenCall(t, addr, 2, 61)
	evs, ok := fresh.runDropping(wire.MsgICCN, func(evs []tunnel.Event) bool {
		_, gone := hasEvent(evs, tunnel.SessionDown, freshSID)
		return gone
	}, 5*time.Second)
	if ev, _ := hasEvent(evs, tunnel.SessionDown, freshSID); !ok || ev.Result.Code != wire.CDNTimeout || time.Since(placed) < 300*time.Millisecond {
		t.Fatalf("call on the tunnel set up after the reload: cleared %v, %+v", ok, ev.Result)
	}
	// The older tunnel's call, answered well before, is still waiting.
	evs, _ = old.runDropping(wire.MsgICCN, func([]tunnel.Event) bool { return false }, 100*time.Millisecond)
	if _, gone := hasEvent(evs, tunnel.SessionDown, oldSID); gone {
		t.Fatal("a call on a tunnel set up before the reload was cleared with the new bound")
	}
	ss, err := s.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 1 || ss[0].PeerSessionID != oldSID || ss[0].State != tunnel.SessionWaitConnect.String() {
		t.Fatalf("server sessions %+v, want the older call in wait-connect", ss)
	}
	closeTunnels(t, s, old, fresh)
}
