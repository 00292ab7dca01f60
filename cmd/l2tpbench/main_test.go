package main

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control"
)

// startLNS runs the product's LNS on loopback with one local user and no
// admission limits, as the benchmark configuration does.
func startLNS(t *testing.T, secret string) (*control.Server, netip.AddrPort) {
	t.Helper()
	cfg := control.DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.RetransmitInitial = 100 * time.Millisecond
	cfg.RetransmitCap = 400 * time.Millisecond
	cfg.MaxRetransmits = 10
	cfg.Default.Secret = secret
	cfg.Users = map[string]string{"bench": "pw"}
	cfg.PPP.Auth = []string{"chap", "pap", "mschapv2"}
	cfg.PPP.LocalIPv4 = netip.MustParseAddr("100.64.0.1")
	cfg.PPP.Pool = "p"
	cfg.Pools = []control.Pool{{Name: "p", IPv4: []control.AddrRange{{First: netip.MustParseAddr("100.72.0.1"), Last: netip.MustParseAddr("100.72.255.254")}}}}
	cfg.Limits.MaxSessionsInSetup, cfg.Limits.MaxSessionsInSetupPerPeer = 0, 0
	cfg.Limits.ICRQRate, cfg.Limits.ICRQRatePerPeer, cfg.Limits.SCCRQRate, cfg.Limits.SCCRQRatePerPeer = 0, 0, 0, 0
	s, err := control.New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return s, s.LocalAddrs()[0].(*net.UDPAddr).AddrPort()
}

func opts(t *testing.T, args ...string) options {
	t.Helper()
	o, _, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Every subscriber reaches the network phase (RFC 1661 §3.2) and every
// phase is timed once per subscriber; the sessions spread over the
// requested tunnels.
func TestBenchAgainstLNS(t *testing.T) {
	srv, addr := startLNS(t, "s")
	for _, auth := range []string{"pap", "chap", "mschapv2"} {
		o := opts(t, "-lns", addr.String(), "-secret", "s", "-hide", "-tunnels", "3", "-sessions", "30", "-user", "bench",
			"-password", "pw", "-auth", auth, "-progress", "0", "-concurrency", "10")
		rep, err := run(context.Background(), o, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Attempted != 30 || rep.Up != 30 || rep.Failed != 0 || rep.SetupRate <= 0 {
			t.Fatalf("%s: report %+v", auth, rep)
		}
		for _, p := range phaseNames {
			if rep.Latency[p].Count != 30 {
				t.Fatalf("%s: phase %s timed %d times", auth, p, rep.Latency[p].Count)
			}
		}
		if rep.LAC.TunnelsOpened != 3 || rep.LAC.CallsUp != 30 {
			t.Fatalf("%s: LAC %+v", auth, rep.LAC)
		}
	}
	// The run hung up: the LNS is empty again.
	end := time.Now().Add(5 * time.Second)
	for {
		ss, _ := srv.Sessions(context.Background())
		if len(ss) == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%d sessions left at the LNS", len(ss))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A wrong password is counted by reason, not as up.
func TestBenchFailuresByReason(t *testing.T) {
	_, addr := startLNS(t, "")
	o := opts(t, "-lns", addr.String(), "-sessions", "4", "-user", "bench", "-password", "wrong", "-auth", "pap", "-progress", "0")
	rep, err := run(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Up != 0 || rep.Failed != 4 || rep.FailedBy["ppp-authentication failed"] != 4 {
		t.Fatalf("report %+v", rep)
	}
}

// Reconnect storm: all sessions dropped at once come back.
func TestBenchStorm(t *testing.T) {
	_, addr := startLNS(t, "")
	o := opts(t, "-lns", addr.String(), "-tunnels", "2", "-sessions", "40", "-user", "bench", "-password", "pw", "-storm", "-progress", "0")
	rep, err := run(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Up != 40 || rep.Storm == nil || rep.Storm.Dropped != 40 || rep.Storm.Up != 40 || rep.Storm.Failed != 0 || rep.Storm.AllUpSeconds <= 0 {
		t.Fatalf("report %+v storm %+v", rep, rep.Storm)
	}
}

// Through the lossy relay (10 % loss and 10 % reordering both ways) every
// tunnel and session still comes up: the control channel retransmits
// (RFC 2661 §5.8) and PPP restarts its requests (RFC 1661 §4.6).
func TestBenchLossyRelay(t *testing.T) {
	_, addr := startLNS(t, "")
	o := opts(t, "-lns", addr.String(), "-tunnels", "20", "-sessions", "20", "-user", "bench", "-password", "pw",
		"-loss", "10", "-reorder", "10", "-retransmit", "100ms", "-progress", "0", "-timeout", "20s", "-redial", "3", "-ppp-restart", "300ms")
	rep, err := run(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Up != 20 || rep.Relay == nil || rep.Relay.Dropped == 0 || rep.Relay.Reordered == 0 || rep.LAC.TunnelsUp != 20 {
		t.Fatalf("report %+v relay %+v", rep, rep.Relay)
	}
}

func TestFlags(t *testing.T) {
	o := opts(t, "-lns", "192.0.2.1", "-v3", "-tunnels", "5", "-sessions", "3")
	if o.lns.String() != "192.0.2.1:1701" || o.version != 3 || o.tunnels != 3 {
		t.Fatalf("%+v", o)
	}
	for _, bad := range [][]string{{}, {"-lns", "x"}, {"-lns", "192.0.2.1", "-auth", "eap"}, {"-lns", "192.0.2.1", "-loss", "100"}} {
		if _, _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestPercentiles(t *testing.T) {
	var s []float32
	for i := 1; i <= 100; i++ {
		s = append(s, float32(i))
	}
	p := percentiles(s)
	if p.Count != 100 || p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Fatalf("%+v", p)
	}
}

// RFC 791/792 checksums of the echo request verify to zero.
func TestEchoFrame(t *testing.T) {
	f := appendEcho(nil, netip.MustParseAddr("100.72.0.1"), netip.MustParseAddr("100.64.0.1"), 7, 9)
	if len(f) != 2+36 || checksum(f[2:22]) != 0 || checksum(f[22:]) != 0 {
		t.Fatalf("frame %x", f)
	}
}
