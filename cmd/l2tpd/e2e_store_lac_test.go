package main_test

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/ppp"
)

// storeLAC is a LAC with many PPP subscribers behind one tunnel, built
// from the product's own cores (the tunnel initiator and the PPP client
// engine), talking to an l2tpd over loopback UDP.
type storeLAC struct {
	t     *testing.T
	conn  *net.UDPConn
	srv   netip.AddrPort
	tun   *tunnel.Tunnel
	calls map[uint32]*lacCall // by our session ID
	buf   []byte
}

// lacCall is one subscriber: its session and PPP client.
type lacCall struct {
	sid    uint32
	user   string
	client *ppp.Session
	out    ppp.Output
	addr   netip.Addr     // from IPCP
	down   *tunnel.Event  // the CDN that ended it
	failed ppp.DownReason // why PPP went down, if it did
}

func newStoreLAC(t *testing.T, srv netip.AddrPort) *storeLAC {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	l := &storeLAC{t: t, conn: conn, srv: srv, calls: map[uint32]*lacCall{}, buf: make([]byte, 4096)}
	l.tun = tunnel.NewInitiator(time.Now(), tunnel.Config{Version: 2, LocalID: 4242, HostName: "store-lac", Rand: rand.Reader,
		RetransmitInitial: 250 * time.Millisecond, RetransmitCap: time.Second, MaxSessions: 1024})
	if !l.pump(func() bool { return l.tun.State() == tunnel.StateEstablished }, 5*time.Second) {
		t.Fatalf("tunnel to %v not established", srv)
	}
	return l
}

// call places n calls for user and returns them; pump brings them up.
func (l *storeLAC) call(n int, user, pass string) []*lacCall {
	l.t.Helper()
	var out []*lacCall
	for i := 0; i < n; i++ {
		sid, err := l.tun.StartCall(time.Now(), tunnel.CallParams{Serial: uint32(len(l.calls) + 1)})
		if err != nil {
			l.t.Fatal(err)
		}
		c, err := ppp.NewSession(ppp.Config{Role: ppp.RoleClient, Rand: rand.Reader, User: user, Password: pass,
			Auth: []ppp.AuthProto{ppp.AuthPAP}, IPv4: true})
		if err != nil {
			l.t.Fatal(err)
		}
		lc := &lacCall{sid: sid, user: user, client: c}
		l.calls[sid] = lc
		out = append(out, lc)
	}
	return out
}

// settled: online or ended.
func (c *lacCall) settled() bool { return c.addr.IsValid() || c.down != nil }

func allSettled(cs []*lacCall) func() bool {
	return func() bool {
		for _, c := range cs {
			if !c.settled() {
				return false
			}
		}
		return true
	}
}

func (l *storeLAC) send(c *lacCall) {
	s := l.tun.Session(c.sid)
	for i := 0; i < c.out.NumFrames(); i++ {
		if s != nil {
			var hdr [6]byte
			binary.BigEndian.PutUint16(hdr[0:], 0x0002)
			binary.BigEndian.PutUint16(hdr[2:], uint16(l.tun.Peer().TunnelID))
			binary.BigEndian.PutUint16(hdr[4:], uint16(s.PeerID))
			l.conn.WriteToUDPAddrPort(append(hdr[:], c.out.Frame(i)...), l.srv)
		}
	}
	for _, e := range c.out.Events {
		switch e.Kind {
		case ppp.EventNetworkUp:
			if e.Network.Protocol == ppp.ProtoIPCP {
				c.addr = e.Network.LocalIPv4
			}
		case ppp.EventLinkDown:
			c.failed = e.Reason
		}
	}
	c.out.Reset()
}

// hangUp ends a call from the LAC's side (CDN).
func (l *storeLAC) hangUp(c *lacCall) {
	_ = l.tun.CloseSession(time.Now(), c.sid, tunnel.Result{Code: 3, Message: "subscriber hung up"}, nil)
}

// pump runs the tunnel, the PPP clients and their timers until cond
// holds or within passes.
func (l *storeLAC) pump(cond func() bool, within time.Duration) bool {
	end := time.Now().Add(within)
	for {
		now := time.Now()
		for _, pkt := range l.tun.Poll(now, nil) {
			l.conn.WriteToUDPAddrPort(pkt, l.srv)
		}
		for _, e := range l.tun.Events() {
			c := l.calls[e.SessionID]
			if c == nil {
				continue
			}
			switch e.Kind {
			case tunnel.SessionUp:
				c.client.Start(now, &c.out)
				l.send(c)
			case tunnel.SessionDown:
				ev := e
				c.down = &ev
			}
		}
		for _, c := range l.calls {
			if d, ok := c.client.Deadline(); ok && !now.Before(d) && c.down == nil {
				c.client.Tick(now, &c.out)
				l.send(c)
			}
		}
		if cond() {
			return true
		}
		if !now.Before(end) {
			return false
		}
		l.conn.SetReadDeadline(now.Add(10 * time.Millisecond))
		n, _, err := l.conn.ReadFromUDPAddrPort(l.buf)
		if err != nil || n < 6 {
			continue
		}
		pkt := l.buf[:n]
		flags := binary.BigEndian.Uint16(pkt)
		if flags&0x8000 != 0 {
			l.tun.Receive(time.Now(), pkt)
			continue
		}
		// RFC 2661 §3.1: optional Length, then the IDs, optional Ns/Nr
		// and Offset.
		off := 2
		if flags&0x4000 != 0 {
			off += 2
		}
		if len(pkt) < off+4 {
			continue
		}
		sid := uint32(binary.BigEndian.Uint16(pkt[off+2:]))
		off += 4
		if flags&0x0800 != 0 {
			off += 4
		}
		if flags&0x0200 != 0 {
			if len(pkt) < off+2 {
				continue
			}
			off += 2 + int(binary.BigEndian.Uint16(pkt[off:]))
		}
		c := l.calls[sid]
		if c == nil || off > len(pkt) {
			continue
		}
		c.client.Input(time.Now(), pkt[off:], &c.out)
		l.send(c)
	}
}
