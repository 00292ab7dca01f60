package control

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/aaa/radiustest"
	"github.com/l2tpd/l2tpd/control/tunnel"
)

// callUp brings a tunnel and one call up from p.
func callUp(t *testing.T, p *peer) uint32 {
	t.Helper()
	if !p.run(func() bool { return p.tun.State() == tunnel.StateEstablished }, 3*time.Second) {
		t.Fatal("tunnel not established")
	}
	sid, err := p.tun.StartCall(time.Now(), tunnel.CallParams{Serial: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !p.run(func() bool { s := p.tun.Session(sid); return s != nil && s.State == tunnel.SessionEstablished }, 3*time.Second) {
		t.Fatal("session not established")
	}
	return sid
}

// Removing a listener drains it: the dry run lists its tunnels, the
// tunnel over it keeps running after the reload while no new tunnel is
// taken on it, the other listener's session is untouched, and the port
// is released once its last tunnel ends. Adding it back binds it again.
func TestReloadRemovesListener(t *testing.T) {
	ports := radiustest.FreePorts(t, 2)
	la, lb := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[0]), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ports[1])
	s, _ := startServer(t, func(c *Config) { c.Listen = []string{la.String(), lb.String()} })
	ctx := context.Background()
	pa, pb := newPeer(t, la, 2, 10), newPeer(t, lb, 2, 11)
	sa, sb := callUp(t, pa), callUp(t, pb)
	var tb uint32
	for _, ti := range tunnelsOf(t, s) {
		if ti.PeerTunnelID == 11 {
			tb = ti.TunnelID
		}
	}

	next := *s.config()
	next.Listen = []string{la.String()}
	d, err := s.Reload(ctx, next, true)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if !slices.Equal(d.ListenerTunnels, []uint32{tb}) || len(d.RequiresRestart) != 0 ||
		!slices.ContainsFunc(d.Changes, func(c string) bool { return strings.HasPrefix(c, "listen "+lb.String()+" removed") }) {
		t.Fatalf("dry run diff %+v; want tunnel %d listed", d, tb)
	}
	if d, err = s.Reload(ctx, next, false); err != nil || !d.Applied {
		t.Fatalf("reload: %+v %v", d, err)
	}
	// Both tunnels keep working through their own listener: a new call
	// on each comes up.
	for _, p := range []*peer{pa, pb} {
		sid, err := p.tun.StartCall(time.Now(), tunnel.CallParams{Serial: 2})
		if err != nil {
			t.Fatal(err)
		}
		if !p.run(func() bool { s := p.tun.Session(sid); return s != nil && s.State == tunnel.SessionEstablished }, 3*time.Second) {
			t.Fatalf("no call on LAC %d's tunnel after the reload", p.tun.ID())
		}
	}
	if a, b := pa.tun.Session(sa), pb.tun.Session(sb); a == nil || b == nil || a.State != tunnel.SessionEstablished || b.State != tunnel.SessionEstablished {
		t.Fatal("a session did not survive the listener's removal")
	}
	// No new tunnel on the removed listener.
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteToUDPAddrPort(sccrq(99), lb)
	waitFor(t, "the SCCRQ on the removed listener dropped", func() bool {
		st, _ := s.Stats(ctx)
		return st.Drops["listener_removed"] == 1
	})
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, _, err := conn.ReadFromUDPAddrPort(make([]byte, 1500)); err == nil {
		t.Fatal("an SCCRQ on a removed listener was answered")
	}
	// The port stays bound while its tunnel lives.
	if c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(lb)); err == nil {
		c.Close()
		t.Fatal("the removed listener's port was released under a live tunnel")
	}
	// Its tunnel ends: the port is released.
	if err := s.ClearTunnel(ctx, tb); err != nil {
		t.Fatal(err)
	}
	pb.run(func() bool { return pb.tun.State() == tunnel.StateClosing }, 2*time.Second)
	waitFor(t, "the removed listener's port to be released", func() bool {
		pb.run(func() bool { return false }, 20*time.Millisecond)
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(lb))
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	if a := pa.tun.Session(sa); a == nil || a.State != tunnel.SessionEstablished {
		t.Fatal("the other listener's session did not survive")
	}
	// Back in the configuration: bound again and serving.
	if _, err := s.Reload(ctx, *s.snapConfigWith(func(c *Config) { c.Listen = []string{la.String(), lb.String()} }), false); err != nil {
		t.Fatal(err)
	}
	pc := newPeer(t, lb, 2, 12)
	callUp(t, pc)
}

// A listener that cannot be bound rejects the reload whole, with the
// reason, and the running configuration keeps serving.
func TestReloadListenInUseRejected(t *testing.T) {
	s, addr := startServer(t, nil)
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	next := *s.config()
	next.Listen = append(slices.Clone(next.Listen), busy.LocalAddr().String())
	next.HostName = "changed"
	_, err = s.Reload(context.Background(), next, false)
	if err == nil || !strings.Contains(err.Error(), busy.LocalAddr().String()) {
		t.Fatalf("reload onto a bound port: %v", err)
	}
	if s.config().HostName == "changed" || len(s.LocalAddrs()) != 1 {
		t.Fatal("a rejected reload changed the running state")
	}
	p := newPeer(t, addr, 2, 1)
	callUp(t, p)
	if st, _ := s.Stats(context.Background()); st.Drops[dropNames[dropListenerRemoved]] != 0 {
		t.Fatal("drops after a rejected reload")
	}
}

// snapConfigWith is the running configuration changed by mod.
func (s *Server) snapConfigWith(mod func(*Config)) *Config {
	c := *s.config()
	mod(&c)
	return &c
}
