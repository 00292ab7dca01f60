package aaa

import (
	"crypto/md5"
	"net"
	"net/netip"
	"testing"

	"github.com/l2tpd/l2tpd/aaa/radiustest"
)

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

// freeRADIUS adapts radiustest.FreeRADIUS to the names the tests use.
type freeRADIUS struct{ *radiustest.FreeRADIUS }

func newFreeRADIUS(t *testing.T) *freeRADIUS { return &freeRADIUS{radiustest.New(t, frUsers)} }

// freePorts returns n loopback UDP ports nothing listens on.
func freePorts(t *testing.T, n int) []uint16 { return radiustest.FreePorts(t, n) }

func (f *freeRADIUS) start()                      { f.Start() }
func (f *freeRADIUS) stop()                       { f.Stop() }
func (f *freeRADIUS) auth() netip.AddrPort        { return f.Auth() }
func (f *freeRADIUS) acct() netip.AddrPort        { return f.Acct() }
func (f *freeRADIUS) logText() string             { return f.Log() }
func (f *freeRADIUS) detail() []map[string]string { return f.Detail() }

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
