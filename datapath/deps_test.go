package datapath

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The datapath depends on the standard library and x/sys only: never on
// the control plane, PPP, AAA or storage packages.
func TestDependencies(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
			continue // standard library
		}
		if p != "github.com/l2tpd/l2tpd/datapath" && !strings.HasPrefix(p, "golang.org/x/sys/") {
			t.Errorf("datapath depends on %s", p)
		}
	}
}
