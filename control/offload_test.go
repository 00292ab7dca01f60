package control

import (
	"slices"
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
