package control

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
)

// pwTestNetns creates a network namespace unique to this process with
// its loopback up, removed at cleanup. Without root or ip it skips,
// unless L2TPD_E2E=1 asks for every test to run.
func pwTestNetns(t *testing.T, tag string) string {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (a network namespace and a TAP device)"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs iproute2's ip command"
	} else if _, err := os.Stat("/dev/net/tun"); err != nil {
		why = "needs /dev/net/tun"
	}
	if why != "" {
		if os.Getenv("L2TPD_E2E") == "1" {
			t.Fatalf("L2TPD_E2E=1 but the test cannot run: %s", why)
		}
		t.Skip(why + "; set L2TPD_E2E=1 to make this a failure")
	}
	name := fmt.Sprintf("l2ctl-%d-%s", os.Getpid(), tag)
	exec.Command("ip", "netns", "del", name).Run() // a leftover of a killed run
	for _, args := range [][]string{{"netns", "add", name}, {"-n", name, "link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name
}

// pwPeer is the far end of an initiating pseudowire: a v3 responder
// tunnel on a socket of the pseudowire's namespace. While silent is
// set it answers no ICRQ: its ICRPs are lost on the way, though the
// ICRQ and its retransmissions are acknowledged.
type pwPeer struct {
	t      *testing.T
	conn   *net.UDPConn
	tun    *tunnel.Tunnel
	to     netip.AddrPort // where l2tpd sends from
	silent bool
	events []tunnel.Event
	icrqs  []time.Time // when each new ICRQ arrived
}

func newPWPeer(t *testing.T, ns string) *pwPeer {
	t.Helper()
	p := &pwPeer{t: t}
	if err := datapath.InNetns(ns, func() error {
		var err error
		p.conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.conn.Close() })
	p.tun = tunnel.NewResponder(time.Now(), tunnel.Config{Version: 3, LocalID: 77, HostName: "pw-peer", Rand: rand.Reader,
		// Its ICRP is retransmitted after the lost first copy, by then
		// to a call the other end has cleared.
		RetransmitInitial: 700 * time.Millisecond, RetransmitCap: time.Second,
		Pseudowires: []uint16{tunnel.PseudowirePPP, tunnel.PseudowireEthernet},
		Bind:        func(s *tunnel.Session) (tunnel.PWParams, *tunnel.Result) { return tunnel.PWParams{Active: true}, nil },
	})
	return p
}

func (p *pwPeer) port() uint16 { return uint16(p.conn.LocalAddr().(*net.UDPAddr).Port) }

// run exchanges messages until cond holds or within has passed.
func (p *pwPeer) run(cond func() bool, within time.Duration) bool {
	end := time.Now().Add(within)
	buf := make([]byte, 4096)
	for time.Now().Before(end) {
		for _, pkt := range p.tun.Poll(time.Now(), nil) {
			if m, err := wire.ParseMessage(pkt, wire.EncapUDP, nil); err == nil && m.Type == wire.MsgICRP && p.silent {
				continue
			}
			if p.to.IsValid() {
				if _, err := p.conn.WriteToUDPAddrPort(pkt, p.to); err != nil {
					p.t.Fatal(err)
				}
			}
		}
		p.events = append(p.events, p.tun.Events()...)
		if cond() {
			return true
		}
		p.conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		n, from, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			continue
		}
		p.to = from
		before := p.tun.NumSessions()
		p.tun.Receive(time.Now(), buf[:n])
		if m, err := wire.ParseMessage(buf[:n], wire.EncapUDP, nil); err == nil && m.Type == wire.MsgICRQ && p.tun.NumSessions() > before {
			p.icrqs = append(p.icrqs, time.Now())
		}
	}
	return cond()
}

func (p *pwPeer) event(kind tunnel.EventKind) (tunnel.Event, bool) {
	for _, ev := range p.events {
		if ev.Kind == kind {
			return ev, true
		}
	}
	return tunnel.Event{}, false
}

// RFC 3931 §3.4.1, RFC 2661 §7.4.1: l2tpd places the call of an
// initiating pseudowire; a peer that acknowledges the ICRQ but never
// answers it has the call cleared with CDN result 10 once
// control.session_setup_timeout has passed. The pseudowire then places
// its call again after its backoff, on the same tunnel, and comes up
// once the peer answers.
func TestServerPWRedialsUnansweredICRQ(t *testing.T) {
	ns := pwTestNetns(t, "pwto")
	const timeout = 300 * time.Millisecond
	p := newPWPeer(t, ns)
	p.silent = true
	s, _ := startServer(t, func(c *Config) {
		c.SessionSetupTimeout = timeout
		c.RetransmitInitial, c.RetransmitCap = 200*time.Millisecond, 400*time.Millisecond
		c.Pseudowires = []Pseudowire{{Name: "silent", Peer: netip.MustParseAddr("127.0.0.1"), Port: p.port(), Encap: EncapUDP,
			Netns: ns, Type: PWEthernet, RemoteEndID: "\x00\x00\x00\x2a", Initiate: true, TAP: "pwto0", MTU: 1500}}
	})

	// The tunnel comes up and the first ICRQ is left unanswered.
	if !p.run(func() bool { return len(p.icrqs) == 1 }, 5*time.Second) {
		t.Fatalf("no ICRQ from the pseudowire (peer tunnel %v)", p.tun.State())
	}
	var first tunnel.Session
	p.tun.Sessions(func(s *tunnel.Session) { first = *s })
	if !p.run(func() bool { _, ok := p.event(tunnel.SessionDown); return ok }, 3*time.Second) {
		t.Fatal("the unanswered call was never cleared")
	}
	down, _ := p.event(tunnel.SessionDown)
	cleared := time.Since(p.icrqs[0])
	if !down.ByPeer || down.SessionID != first.ID || down.Result.Code != wire.CDNTimeout || down.Result.Message != "no ICRP within 300ms" {
		t.Fatalf("the call ended with %+v (by peer %v), want CDN result 10", down.Result, down.ByPeer)
	}
	// The lower bound is exact; the upper one leaves room for a busy
	// machine (the shard wakes at the expiry).
	if cleared < timeout-20*time.Millisecond || cleared > timeout+time.Second {
		t.Fatalf("cleared %v after the ICRQ arrived, want about %v", cleared, timeout)
	}

	// The peer answers from now on: the next ICRQ, after the backoff,
	// comes up.
	p.silent = false
	if !p.run(func() bool { _, ok := p.event(tunnel.SessionUp); return ok }, 5*time.Second) {
		t.Fatalf("the pseudowire's call was not placed again (%d ICRQs)", len(p.icrqs))
	}
	if len(p.icrqs) != 2 {
		t.Fatalf("%d ICRQs, want 2", len(p.icrqs))
	}
	if gap := p.icrqs[1].Sub(p.icrqs[0]); gap < timeout+time.Second-20*time.Millisecond {
		t.Fatalf("placed again %v after the first ICRQ, before the clear and its 1s backoff", gap)
	}
	up, _ := p.event(tunnel.SessionUp)
	if up.SessionID == first.ID {
		t.Fatal("the call that came up is the cleared one")
	}
	var st Stats
	waitFor(t, "the pseudowire to be up", func() bool {
		ss, err := s.Sessions(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		st, _ = s.Stats(context.Background())
		return len(ss) == 1 && ss[0].State == tunnel.SessionEstablished.String() && ss[0].Pseudowire == "silent"
	})
	if st.Counters["pseudowire_dials"] != 1 || st.Counters["pseudowire_calls"] != 2 || st.Counters["sessions_closed_result_10"] != 1 {
		t.Fatalf("counters %v: want one tunnel, two calls, one cleared by the setup timeout", st.Counters)
	}
}
