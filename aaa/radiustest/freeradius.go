// Package radiustest runs a real FreeRADIUS 3 for tests: its own
// configuration in a temporary directory, unprivileged loopback ports, a
// users file given by the test, accounting written to a detail file, and
// a Message-Authenticator in every Access-Accept and Access-Reject.
package radiustest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// freeradiusBinary returns the FreeRADIUS daemon, skipping the test when
// it is absent unless L2TPD_E2E=1 demands it.
func freeradiusBinary(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"freeradius", "radiusd"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if p := "/usr/sbin/" + name; fileExists(p) {
			return p
		}
	}
	if os.Getenv("L2TPD_E2E") == "1" {
		t.Fatal("L2TPD_E2E=1 but FreeRADIUS is not installed (apt-get install freeradius freeradius-utils)")
	}
	t.Skip("FreeRADIUS not installed; set L2TPD_E2E=1 to require it")
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// FreePorts returns n UDP ports on 127.0.0.1 nothing listens on now.
func FreePorts(t testing.TB, n int) []uint16 {
	t.Helper()
	var conns []*net.UDPConn
	var ports []uint16
	for range n {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		ports = append(ports, uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}
	for _, c := range conns {
		c.Close()
	}
	return ports
}

// frSite is the virtual server: PAP, CHAP, MS-CHAPv2 from the users
// file, accounting into a detail file, and a Message-Authenticator in
// every Access-Accept and Access-Reject (FreeRADIUS 3.2.1 adds none on
// its own).
const frSite = `server l2tpd {
listen {
	type = auth
	ipaddr = 127.0.0.1
	port = %d
}
listen {
	type = acct
	ipaddr = 127.0.0.1
	port = %d
}
authorize {
	preprocess
	chap
	mschap
	files
	pap
}
authenticate {
	Auth-Type PAP {
		pap
	}
	Auth-Type CHAP {
		chap
	}
	Auth-Type MS-CHAP {
		mschap
	}
}
preacct {
	preprocess
}
accounting {
	detail_l2tpd
}
post-auth {
	update reply {
		Message-Authenticator := 0x00
	}
	Post-Auth-Type REJECT {
		update reply {
			Message-Authenticator := 0x00
		}
	}
}
}
`

// FreeRADIUS is a FreeRADIUS 3 daemon with its own configuration in a
// temporary directory, listening on unprivileged loopback ports.
type FreeRADIUS struct {
	t                  testing.TB
	bin, dir           string
	authPort, acctPort uint16
	cmd                *exec.Cmd
	mu                 sync.Mutex
	log                strings.Builder
}

// Secret is the shared secret of the 127.0.0.1 client.
const Secret = "testing123"

// New prepares (but does not start) a FreeRADIUS with users, in the
// syntax of its users file; it is killed when the test ends.
func New(t testing.TB, users string) *FreeRADIUS {
	t.Helper()
	bin := freeradiusBinary(t)
	src := "/etc/freeradius/3.0"
	if !fileExists(src) {
		t.Fatalf("no FreeRADIUS configuration in %s", src)
	}
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-rL", src+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v: %s", src, err, out)
	}
	ports := FreePorts(t, 2)
	f := &FreeRADIUS{t: t, bin: bin, dir: dir, authPort: ports[0], acctPort: ports[1]}
	// EAP wants certificates and the inner tunnel wants EAP; neither is
	// used by l2tpd.
	for _, p := range []string{"mods-enabled/eap", "sites-enabled/inner-tunnel", "sites-enabled/default"} {
		os.Remove(filepath.Join(dir, p))
	}
	conf := f.read("radiusd.conf")
	var lines []string
	for _, l := range strings.Split(conf, "\n") {
		s := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(s, "user = "), strings.HasPrefix(s, "group = "):
			continue // stay the test's user
		case strings.HasPrefix(l, "run_dir = "):
			l = "run_dir = " + dir + "/run"
		case strings.HasPrefix(l, "logdir = "):
			l = "logdir = " + dir + "/log"
		case strings.HasPrefix(s, "reject_delay = "):
			l = "\treject_delay = 0" // keep the suite fast
		}
		lines = append(lines, l)
	}
	f.write("radiusd.conf", strings.Join(lines, "\n"))
	os.MkdirAll(filepath.Join(dir, "run"), 0o700)
	os.MkdirAll(filepath.Join(dir, "log"), 0o700)
	f.write("clients.conf", "client lo {\n\tipaddr = 127.0.0.1\n\tsecret = testing123\n\trequire_message_authenticator = yes\n}\n")
	f.write("mods-config/files/authorize", users)
	f.write("sites-enabled/l2tpd", fmt.Sprintf(frSite, f.authPort, f.acctPort))
	f.write("mods-enabled/detail_l2tpd", "detail detail_l2tpd {\n\tfilename = "+dir+"/detail\n\tpermissions = 0600\n\theader = \"%t\"\n\tlocking = no\n}\n")
	t.Cleanup(f.Stop)
	return f
}

func (f *FreeRADIUS) read(p string) string {
	b, err := os.ReadFile(filepath.Join(f.dir, p))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

func (f *FreeRADIUS) write(p, s string) {
	if err := os.WriteFile(filepath.Join(f.dir, p), []byte(s), 0o640); err != nil {
		f.t.Fatal(err)
	}
}

// Auth is the authentication address.
func (f *FreeRADIUS) Auth() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), f.authPort)
}

// Acct is the accounting address.
func (f *FreeRADIUS) Acct() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), f.acctPort)
}

// Start runs the daemon and returns once it is ready for requests.
func (f *FreeRADIUS) Start() {
	f.t.Helper()
	cmd := exec.Command(f.bin, "-X", "-d", f.dir, "-l", "stdout")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.cmd = cmd
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			f.mu.Lock()
			f.log.WriteString(sc.Text() + "\n")
			f.mu.Unlock()
			if !once && strings.Contains(sc.Text(), "Ready to process requests") {
				once = true
				close(ready)
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); pw.Close() }()
	select {
	case <-ready:
		go func() { <-exited }()
	case err := <-exited:
		f.cmd = nil
		f.t.Fatalf("freeradius exited: %v\n%s", err, f.Log())
	case <-time.After(15 * time.Second):
		f.t.Fatalf("freeradius not ready\n%s", f.Log())
	}
}

// Stop kills the daemon.
func (f *FreeRADIUS) Stop() {
	if f.cmd != nil && f.cmd.Process != nil {
		f.cmd.Process.Kill()
		f.cmd = nil
	}
}

// Log is what the daemon printed (-X).
func (f *FreeRADIUS) Log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.log.String()
}

// Detail returns the accounting records FreeRADIUS wrote, each as its
// attribute lines.
func (f *FreeRADIUS) Detail() []map[string]string {
	b, err := os.ReadFile(filepath.Join(f.dir, "detail"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	var recs []map[string]string
	var cur map[string]string
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case l == "":
			cur = nil
		case !strings.HasPrefix(l, "\t"):
			cur = map[string]string{}
			recs = append(recs, cur)
		case cur != nil:
			k, v, _ := strings.Cut(strings.TrimSpace(l), " = ")
			cur[k] = strings.Trim(v, `"`)
		}
	}
	return recs
}
