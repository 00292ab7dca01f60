// Package pgtest runs throwaway PostgreSQL clusters for tests: initdb
// into a temporary directory, pg_ctl start listening on a Unix socket
// only, trust authentication, durability off. A test binary starts one
// cluster in TestMain (Main) and gives each test its own database
// (Database); a test that needs to stop the server starts its own
// cluster (Start).
//
// When L2TPD_TEST_DATABASE_URL is set, Database creates the databases
// on that server instead. When no server can be had, tests are skipped,
// except under L2TPD_E2E=1 where they fail.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable giving an existing server to test against
// (a URL whose user may CREATE DATABASE).
const EnvURL = "L2TPD_TEST_DATABASE_URL"

// FindBin returns the directory holding initdb and pg_ctl: from PATH,
// else the newest /usr/lib/postgresql/*/bin (Debian's layout, not on
// PATH by default).
func FindBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgtest: initdb not found on PATH or under /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql-15)")
}

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	bin  string
	dir  string // socket directory; data in dir/data
	cred *syscall.Credential
}

// Start creates and starts a cluster in a new temporary directory. The
// server refuses to run as root, so as root initdb and the server run as
// the postgres user (or nobody).
func Start() (*Cluster, error) {
	bin, err := FindBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "l2tpd-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		c.cred = cred
	}
	if err := c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Restart(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgtest: running as root and neither a postgres nor a nobody user exists to run the server as")
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) run(prog string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s: %w\n%s", prog, err, out)
	}
	return nil
}

// Restart starts the server (again, after Stop) and waits until it
// accepts connections.
func (c *Cluster) Restart() error {
	opts := "-k " + c.dir + " -c listen_addresses='' -c fsync=off -c synchronous_commit=off" +
		" -c full_page_writes=off -c max_connections=200"
	return c.run("pg_ctl", "start", "-w", "-t", "60", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-o", opts)
}

// Stop stops the server the way an outage would look to clients: fast
// shutdown, open connections cut.
func (c *Cluster) Stop() error {
	return c.run("pg_ctl", "stop", "-w", "-m", "fast", "-D", c.data())
}

// Destroy stops the server and removes its directory.
func (c *Cluster) Destroy() {
	c.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", c.data())
	os.RemoveAll(c.dir)
}

// URL returns the connection URL of database db.
func (c *Cluster) URL(db string) string {
	q := url.Values{"host": {c.dir}}
	return "postgres://postgres@/" + db + "?" + q.Encode()
}

// RequirePassword creates a login role with password and makes the
// server ask every role but postgres for its password (scram-sha-256),
// for tests of refused credentials. UserURL connects as that role.
func (c *Cluster) RequirePassword(role, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN SUPERUSER PASSWORD "+quoteLiteral(password)); err != nil {
		return fmt.Errorf("pgtest: create role: %w", err)
	}
	hba := "local all postgres trust\nlocal all all scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(c.data(), "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := c.run("pg_ctl", "reload", "-D", c.data()); err != nil {
		return err
	}
	// The server rereads the file when it gets to the signal: wait
	// until a wrong password is refused.
	for ctx.Err() == nil {
		bad, err := pgx.Connect(ctx, c.UserURL("postgres", role, password+"-wrong"))
		if err != nil {
			return nil
		}
		bad.Close(ctx)
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("pgtest: the server still takes any password: %w", ctx.Err())
}

// UserURL is URL for role with password.
func (c *Cluster) UserURL(db, role, password string) string {
	q := url.Values{"host": {c.dir}}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(role, password), Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var (
	shared   *Cluster
	adminURL string
	setupErr error
	dbSeq    atomic.Int64
	dbMu     sync.Mutex
)

// Main runs a test binary's tests with one shared cluster (or the server
// from L2TPD_TEST_DATABASE_URL). Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	if u := os.Getenv(EnvURL); u != "" {
		adminURL = u
	} else {
		c, err := Start()
		if err != nil {
			setupErr = err
		} else {
			shared = c
			adminURL = c.URL("postgres")
			defer c.Destroy()
		}
	}
	return m.Run()
}

// Unavailable skips the test, or fails it under L2TPD_E2E=1, because no
// PostgreSQL server could be had.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("L2TPD_E2E") == "1" {
		t.Fatalf("no PostgreSQL for the test (L2TPD_E2E=1 requires one): %v", err)
	}
	t.Skipf("no PostgreSQL (set %s or install initdb): %v", EnvURL, err)
}

// Database creates a new empty database for the test on the shared
// server, dropped at cleanup, and returns its URL.
func Database(t testing.TB) string {
	t.Helper()
	if adminURL == "" {
		err := setupErr
		if err == nil {
			err = errors.New("pgtest.Main was not called from TestMain")
		}
		Unavailable(t, err)
	}
	name := fmt.Sprintf("l2tpd_test_%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := adminExec(context.Background(), adminURL, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		adminExec(context.Background(), adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDatabase(adminURL, name)
}

// Own starts a cluster of the test's own, destroyed at cleanup, for
// tests that stop and restart the server.
func Own(t testing.TB) *Cluster {
	t.Helper()
	c, err := Start()
	if err != nil {
		Unavailable(t, err)
	}
	t.Cleanup(c.Destroy)
	return c
}

func adminExec(ctx context.Context, u, sql string) error {
	// CREATE DATABASE copies template1 and takes a lock on it: one at a
	// time is faster than contending.
	dbMu.Lock()
	defer dbMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}

// withDatabase replaces the database name in a URL or key=value
// connection string.
func withDatabase(conn, db string) string {
	if strings.HasPrefix(conn, "postgres://") || strings.HasPrefix(conn, "postgresql://") {
		u, err := url.Parse(conn)
		if err == nil {
			u.Path = "/" + db
			return u.String()
		}
	}
	return conn + " dbname=" + db
}
