package store_test

import (
	"os/exec"
	"strings"
	"testing"
)

// Dependencies point one way: the store packages never import the
// control plane, and only store/postgres imports a library outside the
// standard library (pgx).
func TestDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	for _, tc := range []struct {
		pkg       string
		outsiders bool
	}{
		{"github.com/l2tpd/l2tpd/store", false},
		{"github.com/l2tpd/l2tpd/store/memory", false},
		{"github.com/l2tpd/l2tpd/store/storetest", false},
		{"github.com/l2tpd/l2tpd/store/postgres", true},
	} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", tc.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", tc.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			switch {
			case strings.HasPrefix(dep, "github.com/l2tpd/l2tpd/store"), dep == "github.com/l2tpd/l2tpd/migrations":
			case strings.HasPrefix(dep, "github.com/l2tpd/l2tpd/"):
				t.Errorf("%s imports %s", tc.pkg, dep)
			case !tc.outsiders:
				t.Errorf("%s imports %s, outside the standard library", tc.pkg, dep)
			case !strings.HasPrefix(dep, "github.com/jackc/") && !strings.HasPrefix(dep, "golang.org/x/"):
				t.Errorf("%s imports %s", tc.pkg, dep)
			}
		}
	}
}
