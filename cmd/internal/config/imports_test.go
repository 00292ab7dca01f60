package config

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Each outside library lives in one place: yaml.v3 here, zap in the
// shells (cmd/, the control package itself and the LAC engine in
// control/lac, which runs its own shards; not the protocol cores).
// Imports are read from the sources, so a package that does not build
// yet is still checked.
func TestLibraryBoundaries(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	allowed := map[string]func(dir string) bool{
		"gopkg.in/yaml.v3": func(dir string) bool { return dir == "cmd/internal/config" },
		"go.uber.org/zap": func(dir string) bool {
			return dir == "control" || dir == "control/lac" || dir == "cmd" || strings.HasPrefix(dir, "cmd/")
		},
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return nil // a file being edited; the compiler will say more
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for lib, ok := range allowed {
				if (p == lib || strings.HasPrefix(p, lib+"/")) && !ok(rel) {
					t.Errorf("%s imports %s, which belongs elsewhere", filepath.ToSlash(path[len(root)+1:]), p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
