package main_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Addresses of the veth pair between the two pseudowire ends, from the
// 198.18.0.0/15 benchmarking range (RFC 2544) and the documentation
// IPv6 prefix (RFC 3849).
const (
	pwAddrA  = "198.18.9.1"
	pwAddrB  = "198.18.9.2"
	pwAddr6A = "2001:db8:9::1"
	pwAddr6B = "2001:db8:9::2"
	pwIf     = "veth-pw"
)

// pwPair is two namespaces joined by a veth pair with IPv4 and IPv6
// addresses, one l2tpd in each.
type pwPair struct{ a, b string }

func newPWPair(t *testing.T) pwPair {
	t.Helper()
	n := nextSeq()
	p := pwPair{a: fmt.Sprintf("l2tpd-pw-%d-%d-a", os.Getpid(), n), b: fmt.Sprintf("l2tpd-pw-%d-%d-b", os.Getpid(), n)}
	for _, ns := range []string{p.a, p.b} {
		mustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			killNetnsProcs(ns)
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	mustRun(t, "ip", "link", "add", "name", pwIf, "netns", p.a, "type", "veth", "peer", "name", pwIf, "netns", p.b)
	for _, x := range []struct{ ns, v4, v6 string }{{p.a, pwAddrA, pwAddr6A}, {p.b, pwAddrB, pwAddr6B}} {
		mustRun(t, "ip", "-n", x.ns, "addr", "add", x.v4+"/24", "dev", pwIf)
		mustRun(t, "ip", "-n", x.ns, "addr", "add", x.v6+"/64", "dev", pwIf, "nodad")
		mustRun(t, "ip", "-n", x.ns, "link", "set", pwIf, "up")
		mustRun(t, "ip", "-n", x.ns, "link", "set", "lo", "up")
	}
	return p
}

// pwConfig is an l2tpd configuration for one pseudowire end: body holds
// the pseudowires and static_tunnels sections.
func pwConfig(host, sock string, listen []string, body string) string {
	q := make([]string, len(listen))
	for i, l := range listen {
		q[i] = yamlQuote(l)
	}
	return fmt.Sprintf(`hostname: %s
listen: [%s]
log: {level: debug, format: json}
admin: {socket: %s}
control:
  hello_interval: 2s
  retransmit: {initial: 250ms, cap: 1s, max_retries: 3}
store: {backend: memory}
%s`, yamlQuote(host), strings.Join(q, ", "), yamlQuote(sock), body)
}

// startPWDaemon checks and starts l2tpd in ns with the configuration
// render gives for its admin socket, and waits for the socket.
func startPWDaemon(t *testing.T, ns string, render func(sock string) string) *pwDaemon {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	cfgPath := filepath.Join(dir, "l2tpd.yaml")
	cfg := render(sock)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(l2tpdBin, "-check", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("l2tpd -check: %v\n%s\nconfig:\n%s", err, out, cfg)
	}
	d := &daemon{sock: sock}
	d.proc = startProc(t, "l2tpd", filepath.Join(dir, "l2tpd.log"), "ip", "netns", "exec", ns, l2tpdBin, "-config", cfgPath)
	t.Cleanup(func() { d.shutdown(t) })
	d.waitFor(t, "the admin socket", func() error { _, err := d.tunnels(); return err })
	return &pwDaemon{daemon: d, cfgPath: cfgPath, render: render}
}

// pwDaemon is an l2tpd started by startPWDaemon, with its config file.
type pwDaemon struct {
	*daemon
	cfgPath string
	render  func(sock string) string
}

// reload rewrites the configuration with render and has l2tpd apply it.
func (d *pwDaemon) reload(t *testing.T, render func(sock string) string) {
	t.Helper()
	if err := os.WriteFile(d.cfgPath, []byte(render(d.sock)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := d.ctl("reload"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
}

// pwSessionJSON is a session as l2tpctl -o json show sessions lists it.
type pwSessionJSON struct {
	SessionID     uint32 `json:"session_id"`
	PeerSessionID uint32 `json:"peer_session_id"`
	TunnelID      uint32 `json:"tunnel_id"`
	Version       int    `json:"version"`
	State         string `json:"state"`
	Kind          string `json:"kind"`
	Pseudowire    string `json:"pseudowire"`
	StaticTunnel  string `json:"static_tunnel"`
	TAP           string `json:"tap"`
	VLAN          uint16 `json:"vlan"`
	CookieLen     int    `json:"cookie_len"`
	PeerCookieLen int    `json:"peer_cookie_len"`
	Circuit       bool   `json:"circuit_active"`
	PeerCircuit   bool   `json:"peer_circuit_active"`
	RxPackets     uint64 `json:"rx_packets"`
	TxPackets     uint64 `json:"tx_packets"`
}

func (d *daemon) pwSessions() ([]pwSessionJSON, error) {
	out, err := d.ctl("show", "sessions")
	if err != nil {
		return nil, err
	}
	var ss []pwSessionJSON
	if err := json.Unmarshal(out, &ss); err != nil {
		return nil, fmt.Errorf("show sessions: %v in %q", err, out)
	}
	return ss, nil
}

// waitPW waits until the pseudowire or static session accepted by match
// is listed and returns it.
func (d *daemon) waitPW(t *testing.T, what string, match func(pwSessionJSON) bool) pwSessionJSON {
	t.Helper()
	return waitListed(t, d, what, "sessions", d.pwSessions, match)
}

// pwStats returns l2tpctl -o json show stats: drops and counters.
func (d *daemon) pwStats(t *testing.T) (drops, counters map[string]uint64) {
	t.Helper()
	out, err := d.ctl("show", "stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Drops    map[string]uint64 `json:"drops"`
		Counters map[string]uint64 `json:"counters"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("show stats: %v in %q", err, out)
	}
	return st.Drops, st.Counters
}

// pingAnswered sends ICMP echo requests from ns to dst for the given
// time and reports whether a reply came back (for a path that must stay
// closed).
func pingAnswered(t *testing.T, ns string, dst netip.Addr, d time.Duration) bool {
	t.Helper()
	var c net.PacketConn
	if err := inNetns(ns, func() error {
		var err error
		c, err = net.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		t.Fatalf("ICMP socket in %s: %v", ns, err)
	}
	defer c.Close()
	id := uint16(os.Getpid()) + 1
	buf := make([]byte, 2048)
	end := time.Now().Add(d)
	for seq := uint16(1); time.Now().Before(end); seq++ {
		if _, err := c.WriteTo(icmpEcho(8, id, seq, []byte("closed")), &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			t.Fatalf("ICMP echo to %v: %v", dst, err)
		}
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break
			}
			if n >= 8 && buf[0] == 0 && binary.BigEndian.Uint16(buf[4:]) == id && from.String() == dst.String() {
				return true
			}
		}
	}
	return false
}

// addrOn puts addr on ifc in ns (no duplicate address detection).
func addrOn(t *testing.T, ns, ifc, addr string) {
	t.Helper()
	mustRun(t, "ip", "-n", ns, "addr", "add", addr, "dev", ifc)
	mustRun(t, "ip", "-n", ns, "link", "set", ifc, "up")
}

// tsharkFields runs tshark with args and returns the whitespace-separated
// fields it printed.
func tsharkFields(t *testing.T, args []string) []string {
	t.Helper()
	cmd := exec.Command("tshark", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.Fields(string(out))
}

// vlanEtherType marks the test's frames (IEEE local experimental).
const vlanEtherType = 0x88b5

// vlanFrameThrough writes an 802.1Q frame with VID vid and payload mark
// on tap in nsIn and returns the VID it has when it comes out of tap in
// nsOut.
func vlanFrameThrough(t *testing.T, nsIn, nsOut, tap string, vid uint16, mark []byte) uint16 {
	t.Helper()
	got, ok := vlanFrameTry(t, nsIn, nsOut, tap, vid, mark, waitTimeout)
	if !ok {
		t.Fatalf("a frame tagged %d on %s in %s did not come out of %s in %s within %v", vid, tap, nsIn, tap, nsOut, waitTimeout)
	}
	return got
}

// vlanFrameTry is vlanFrameThrough that reports a frame that never came.
func vlanFrameTry(t *testing.T, nsIn, nsOut, tap string, vid uint16, mark []byte, wait time.Duration) (uint16, bool) {
	t.Helper()
	rx := packetSocket(t, nsOut, tap, true)
	defer unix.Close(rx.fd)
	tx := packetSocket(t, nsIn, tap, false)
	defer unix.Close(tx.fd)
	frame := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x81, 0x00, byte(vid >> 8), byte(vid)}
	frame = binary.BigEndian.AppendUint16(frame, vlanEtherType)
	frame = append(frame, mark...)
	for len(frame) < 60 {
		frame = append(frame, 0)
	}
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	end := time.Now().Add(wait)
	for time.Now().Before(end) {
		if err := unix.Sendto(tx.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: tx.ifindex, Halen: 6, Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}); err != nil {
			t.Fatalf("send on %s in %s: %v", tap, nsIn, err)
		}
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		unix.SetsockoptTimeval(rx.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		for {
			n, oobn, _, _, err := unix.Recvmsg(rx.fd, buf, oob, 0)
			if err != nil {
				break
			}
			if got, ok := taggedMark(buf[:n], oob[:oobn], mark); ok {
				return got, true
			}
		}
	}
	return 0, false
}

// taggedMark finds the VID of a received frame carrying mark: in the
// frame itself, or (when the kernel took the tag off on receive) in the
// packet socket's auxiliary data.
func taggedMark(f, oob []byte, mark []byte) (uint16, bool) {
	if len(f) >= 18 && binary.BigEndian.Uint16(f[12:]) == 0x8100 && binary.BigEndian.Uint16(f[16:]) == vlanEtherType && bytes.HasPrefix(f[18:], mark) {
		return binary.BigEndian.Uint16(f[14:]) & 0x0fff, true
	}
	if len(f) < 14 || binary.BigEndian.Uint16(f[12:]) != vlanEtherType || !bytes.HasPrefix(f[14:], mark) {
		return 0, false
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})) {
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&m.Data[0]))
			if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
				return aux.Vlan_tci & 0x0fff, true
			}
		}
	}
	return 0, false
}

type pktSock struct {
	fd      int
	ifindex int
}

// packetSocket opens an AF_PACKET socket bound to ifc in ns; a receiving
// one asks for the VLAN tag in its auxiliary data.
func packetSocket(t *testing.T, ns, ifc string, recv bool) pktSock {
	t.Helper()
	var s pktSock
	err := inNetns(ns, func() error {
		ifi, err := net.InterfaceByName(ifc)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		if recv {
			if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
				unix.Close(fd)
				return err
			}
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		s = pktSock{fd: fd, ifindex: ifi.Index}
		return nil
	})
	if err != nil {
		t.Fatalf("packet socket on %s in %s: %v", ifc, ns, err)
	}
	return s
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// hostBehindTAP bridges the TAP tap of namespace ns with a veth whose
// other end is eth0 of a new namespace, a host of its own with address
// addr (a prefix, "192.168.91.1/24"), the way an operator bridges a
// pseudowire to a LAN segment. It returns the host's namespace.
func hostBehindTAP(t *testing.T, ns, tap, addr string) string {
	t.Helper()
	host := fmt.Sprintf("l2tpd-pwh-%d-%d", os.Getpid(), nextSeq())
	mustRun(t, "ip", "netns", "add", host)
	t.Cleanup(func() {
		killNetnsProcs(host)
		if out, err := exec.Command("ip", "netns", "del", host).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", host, err, out)
		}
	})
	mustRun(t, "ip", "-n", ns, "link", "add", "br-pw", "type", "bridge")
	mustRun(t, "ip", "-n", ns, "link", "set", tap, "master", "br-pw")
	mustRun(t, "ip", "link", "add", "name", "veth-host", "netns", ns, "type", "veth", "peer", "name", "eth0", "netns", host)
	mustRun(t, "ip", "-n", ns, "link", "set", "veth-host", "master", "br-pw")
	for _, ifc := range []string{"veth-host", "br-pw"} {
		mustRun(t, "ip", "-n", ns, "link", "set", ifc, "up")
	}
	mustRun(t, "ip", "-n", host, "addr", "add", addr, "dev", "eth0")
	mustRun(t, "ip", "-n", host, "link", "set", "eth0", "up")
	mustRun(t, "ip", "-n", host, "link", "set", "lo", "up")
	return host
}

// neighbourOf reports the link-layer address host's eth0 learnt for ip
// by ARP, or "" when it has none.
func neighbourOf(t *testing.T, host, ip string) string {
	t.Helper()
	f := strings.Fields(mustRun(t, "ip", "-n", host, "neigh", "show", ip, "dev", "eth0"))
	for i, w := range f {
		if w == "lladdr" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}
