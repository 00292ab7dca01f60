package aaa

import (
	"os/exec"
	"strings"
	"testing"
)

// aaa sits below control: it may use ppp's types and layeh, never the
// control plane, the store or the data path.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		for _, banned := range []string{"/control", "/store", "/datapath", "/cmd/", "go.uber.org/zap", "gopkg.in/yaml", "github.com/google/gopacket"} {
			if strings.Contains(p, banned) {
				t.Errorf("aaa depends on %s", p)
			}
		}
	}
}
