package control

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// The sockets and the TUN take their offloads when they are opened: a
// change of any offload switch is reported as needing a restart, by key.
func TestOffloadChangeNeedsRestart(t *testing.T) {
	a := DefaultConfig()
	if d := diffConfig(&a, &a); len(d.RequiresRestart) != 0 {
		t.Fatalf("no change: %v", d.RequiresRestart)
	}
	for _, tt := range []struct {
		set  func(*Datapath)
		want []string
	}{
		{func(d *Datapath) { d.DisableGSO = true }, []string{"datapath.gso"}},
		{func(d *Datapath) { d.DisableGRO = true }, []string{"datapath.gro"}},
		{func(d *Datapath) { d.DisableTUNOffload = true }, []string{"datapath.tun_offload"}},
		{func(d *Datapath) { *d = Datapath{true, true, true} }, []string{"datapath.gso", "datapath.gro", "datapath.tun_offload"}},
	} {
		b := DefaultConfig()
		tt.set(&b.Datapath)
		if got := diffConfig(&a, &b).RequiresRestart; !slices.Equal(got, tt.want) {
			t.Errorf("%+v: requires restart %v, want %v", b.Datapath, got, tt.want)
		}
		// Turning it back on is a change too.
		if got := diffConfig(&b, &a).RequiresRestart; !slices.Equal(got, tt.want) {
			t.Errorf("%+v back on: requires restart %v, want %v", b.Datapath, got, tt.want)
		}
	}
}

// The offload switches reach the datapath's sockets, and show stats
// reports the offload_ entries apart from the drops.
func TestOffloadSwitchesReachDatapath(t *testing.T) {
	for _, tt := range []struct {
		dp      Datapath
		sockets uint64 // sockets with GSO and with GRO: the one listener, or none
	}{
		{Datapath{}, 1},
		{Datapath{DisableGSO: true, DisableGRO: true}, 0},
	} {
		s, _ := startServer(t, func(c *Config) { c.Datapath = tt.dp })
		st, err := s.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for k := range st.Drops {
			if strings.Contains(k, "offload") {
				t.Errorf("%+v: offload entry %q among the drops", tt.dp, k)
			}
		}
		if _, ok := st.Offload["offload_gso_sent"]; !ok {
			t.Errorf("%+v: no offload_gso_sent in %v", tt.dp, st.Offload)
		}
		if g, r := st.Offload["offload_udp_gso_sockets"], st.Offload["offload_udp_gro_sockets"]; g != tt.sockets || r != tt.sockets {
			t.Errorf("%+v: %d GSO and %d GRO sockets, want %d", tt.dp, g, r, tt.sockets)
		}
	}
}
