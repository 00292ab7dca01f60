package postgres

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadMigrations(t *testing.T) {
	fsys := fstest.MapFS{
		"0002_leases.sql": {Data: []byte("CREATE TABLE b ();")},
		"0001_init.sql":   {Data: []byte("CREATE TABLE a ();")},
		"0010_more.sql":   {Data: []byte("CREATE TABLE c ();")},
		"README":          {Data: []byte("not a migration")},
	}
	ms, err := readMigrations(fsys)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name)
	}
	// Numeric, not lexical, order.
	if strings.Join(got, " ") != "0001_init.sql 0002_leases.sql 0010_more.sql" {
		t.Fatalf("order %v", got)
	}
	for _, bad := range []fstest.MapFS{
		{"init.sql": {}},
		{"0000_zero.sql": {}},
		{"x1_a.sql": {}},
		{"0001_a.sql": {}, "1_b.sql": {}},
	} {
		if _, err := readMigrations(bad); err == nil {
			t.Errorf("readMigrations(%v) accepted bad names", bad)
		}
	}
}

// Any file name either becomes a migration with a positive version or is
// refused; versions come out strictly increasing.
func FuzzReadMigrations(f *testing.F) {
	f.Add("0001_init.sql", "0002_b.sql")
	f.Add("1_a.sql", "01_b.sql")
	f.Add("-1_a.sql", "README")
	f.Add("99999999999999999999_a.sql", "0_b.sql")
	f.Fuzz(func(t *testing.T, a, b string) {
		fsys := fstest.MapFS{a: {Data: []byte("a")}, b: {Data: []byte("b")}}
		ms, err := readMigrations(fsys)
		if err != nil {
			return
		}
		for i, m := range ms {
			if m.Version <= 0 || !strings.HasSuffix(m.Name, ".sql") {
				t.Fatalf("accepted %+v", m)
			}
			if i > 0 && m.Version <= ms[i-1].Version {
				t.Fatalf("versions not increasing: %+v", ms)
			}
		}
	})
}
