package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestPPPoEFlags(t *testing.T) {
	o, _, err := parseFlags([]string{"-pppoe", "eth9", "-clients", "50", "-auth", "pap", "-ac-name", "bras1", "-service", "internet"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.pppoe.iface != "eth9" || o.pppoe.clients != 50 || o.pppoe.acName != "bras1" || o.pppoe.service != "internet" || o.pppoe.macBase != "02:50:00:00:00:00" {
		t.Fatalf("%+v", o.pppoe)
	}
	if _, _, err := parseFlags([]string{"-clients", "5"}, io.Discard); err == nil || !strings.Contains(err.Error(), "-pppoe") {
		t.Fatalf("neither -lns nor -pppoe: %v", err)
	}
}

// The client MAC addresses must be unicast and fit after the base.
func TestPPPoEMACBase(t *testing.T) {
	for _, c := range []struct{ base, want string }{
		{"03:00:00:00:00:00", "unicast"},
		{"nonsense", "unicast"},
		{"02:00:00:ff:ff:ff", "do not fit"},
	} {
		o, _, err := parseFlags([]string{"-pppoe", "lo", "-clients", "2", "-mac-base", c.base}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := runPPPoE(context.Background(), o, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("-mac-base %s: %v, want %q", c.base, err, c.want)
		}
	}
}
