package aaa

import (
	"bufio"
	"crypto/md5"
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
func freeradiusBinary(t *testing.T) string {
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

// freePorts returns n UDP ports on 127.0.0.1 nothing listens on now.
func freePorts(t *testing.T, n int) []uint16 {
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

const frUsers = `papuser Cleartext-Password := "pappass"
	Framed-IP-Address = 10.1.2.3,
	Framed-IP-Netmask = 255.255.255.255,
	Session-Timeout = 3600,
	Idle-Timeout = 600,
	Class = "class-pap",
	Acct-Interim-Interval = 300,
	MS-Primary-DNS-Server = 192.0.2.53,
	MS-Secondary-DNS-Server = 192.0.2.54,
	Framed-Route = "198.51.100.0/24 0.0.0.0 1",
	Framed-Pool = "subscribers",
	Reply-Message = "welcome"
chapuser Cleartext-Password := "chappass"
	Framed-IP-Address = 10.1.2.4,
	Class = "class-chap"
msuser Cleartext-Password := "mspass"
	Framed-IP-Address = 10.1.2.5
`

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

// freeRADIUS is a FreeRADIUS 3 daemon with its own configuration in a
// temporary directory, listening on unprivileged loopback ports.
type freeRADIUS struct {
	t                  *testing.T
	bin, dir           string
	authPort, acctPort uint16
	cmd                *exec.Cmd
	mu                 sync.Mutex
	log                strings.Builder
}

func newFreeRADIUS(t *testing.T) *freeRADIUS {
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
	ports := freePorts(t, 2)
	f := &freeRADIUS{t: t, bin: bin, dir: dir, authPort: ports[0], acctPort: ports[1]}
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
	f.write("mods-config/files/authorize", frUsers)
	f.write("sites-enabled/l2tpd", fmt.Sprintf(frSite, f.authPort, f.acctPort))
	f.write("mods-enabled/detail_l2tpd", "detail detail_l2tpd {\n\tfilename = "+dir+"/detail\n\tpermissions = 0600\n\theader = \"%t\"\n\tlocking = no\n}\n")
	t.Cleanup(f.stop)
	return f
}

func (f *freeRADIUS) read(p string) string {
	b, err := os.ReadFile(filepath.Join(f.dir, p))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

func (f *freeRADIUS) write(p, s string) {
	if err := os.WriteFile(filepath.Join(f.dir, p), []byte(s), 0o640); err != nil {
		f.t.Fatal(err)
	}
}

func (f *freeRADIUS) auth() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), f.authPort)
}

func (f *freeRADIUS) acct() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), f.acctPort)
}

// start runs the daemon and returns once it is ready for requests.
func (f *freeRADIUS) start() {
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
		f.t.Fatalf("freeradius exited: %v\n%s", err, f.logText())
	case <-time.After(15 * time.Second):
		f.t.Fatalf("freeradius not ready\n%s", f.logText())
	}
}

func (f *freeRADIUS) stop() {
	if f.cmd != nil && f.cmd.Process != nil {
		f.cmd.Process.Kill()
		f.cmd = nil
	}
}

func (f *freeRADIUS) logText() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.log.String()
}

// detail returns the accounting records FreeRADIUS wrote, each as its
// attribute lines.
func (f *freeRADIUS) detail() []map[string]string {
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

// chapResponse is the RFC 1994 §4.1 MD5 response.
func chapResponse(id byte, secret string, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write([]byte(secret))
	h.Write(challenge)
	return h.Sum(nil)
}

func listenDAE(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return conn, conn.LocalAddr().(*net.UDPAddr).AddrPort()
}
