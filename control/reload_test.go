package control

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/ppp"
)

// A reload that adds a user, redefines the pool around a live lease and
// changes a peer's secret keeps the online subscriber; a dry run changes
// nothing; a reload that needs a restart is refused and the old
// configuration keeps serving.
func TestReloadKeepsSessions(t *testing.T) {
	s, addr := pppServer(t, func(c *Config) { c.PPP.IPv6 = false })
	l := newSubscriberLAC(t, addr, 2, "alice", "wonderland", []ppp.AuthProto{ppp.AuthPAP}, false)
	l.dial(t, nil)
	l.client.Start(time.Now(), &l.out)
	l.flush()
	if !l.pump(func() bool { return l.client.IPCPState() == ppp.StateOpened }, 5*time.Second) {
		t.Fatal("not online")
	}
	before := sessionOf(t, s)
	hash := s.ConfigHash()

	next := *s.config()
	next.Users = map[string]string{"alice": "wonderland", "bob": "builder"}
	next.Pools = []Pool{{Name: "default", IPv4: []AddrRange{{First: netip.MustParseAddr("100.64.0.10"), Last: netip.MustParseAddr("100.64.0.30")}}}}
	next.Peers = []Peer{{Name: "lac", HostName: "test-lac", Secret: "new-secret"}}

	d, err := s.Reload(context.Background(), next, true)
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if d.Applied || s.ConfigHash() != hash {
		t.Fatal("dry run applied the configuration")
	}
	for _, want := range []string{"peer lac added", "pool default redefined", "local users changed"} {
		if !slices.ContainsFunc(d.Changes, func(c string) bool { return strings.HasPrefix(c, want) }) {
			t.Fatalf("diff %q lacks %q", d.Changes, want)
		}
	}
	if len(d.AffectedTunnels) != 1 || d.AffectedTunnels[0] != before.TunnelID {
		t.Fatalf("affected tunnels %v, want [%d]", d.AffectedTunnels, before.TunnelID)
	}

	if d, err = s.Reload(context.Background(), next, false); err != nil || !d.Applied {
		t.Fatalf("reload: %+v %v", d, err)
	}
	if s.ConfigHash() == hash {
		t.Fatal("hash unchanged after reload")
	}
	// The subscriber is still online, with its address, on its tunnel.
	l.pump(func() bool { return false }, 300*time.Millisecond)
	after := sessionOf(t, s)
	if after.SessionID != before.SessionID || after.IPv4 != before.IPv4 || after.PPPState != "network" {
		t.Fatalf("session changed by reload: %+v -> %+v", before, after)
	}
	// The redefined pool never hands out the live address again.
	snap := s.snap.Load()
	for i := 0; i < 19; i++ {
		a, err := snap.pools["default"].LeaseIPv4("probe")
		if err != nil {
			t.Fatal(err)
		}
		if a.String() == before.IPv4 {
			t.Fatalf("live address %s leased again after reload", a)
		}
	}

	bad := next
	bad.TUN = TUN{Name: "other0", MTU: 1400}
	if _, err := s.Reload(context.Background(), bad, false); err == nil {
		t.Fatal("a TUN change was applied live")
	}
	if s.config().TUN.Name != next.TUN.Name || sessionOf(t, s).PPPState != "network" {
		t.Fatal("a refused reload changed the running state")
	}
}
