package main_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/aaa/radiustest"
	"github.com/l2tpd/l2tpd/datapath/pppoe"
	"github.com/l2tpd/l2tpd/ppp"
)

// PPPoE subscribers → l2tpd as LAC → l2tpd as LNS, in three namespaces.
const (
	poeLACAddr  = "198.18.9.1"
	poeLNSAddr  = "198.18.9.2"
	poeDeadAddr = "198.18.9.3" // on the LNS side, nothing listens there
	poeSecret   = "pppoe-e2e-secret"
	poeLACHost  = "lac-e2e"
	poeLNSHost  = "lns-e2e"
	poeAccessIf = "acc0"
	poeSubIf    = "sub0"
	poeLocal    = "100.64.0.1"
	poeEchoPort = 6666
	poeRealm    = "isp.example"
)

var poeUsers = map[string]string{"alice@" + poeRealm: "alice-pass", "bob@" + poeRealm: "bob-pass"}

type poeNetns struct{ sub, lac, lns string }

func newPPPoENetns(t *testing.T) poeNetns {
	t.Helper()
	n := nextSeq()
	p := poeNetns{
		sub: fmt.Sprintf("l2tpd-poe-%d-%d-sub", os.Getpid(), n),
		lac: fmt.Sprintf("l2tpd-poe-%d-%d-lac", os.Getpid(), n),
		lns: fmt.Sprintf("l2tpd-poe-%d-%d-lns", os.Getpid(), n),
	}
	for _, ns := range []string{p.sub, p.lac, p.lns} {
		exec.Command("ip", "netns", "del", ns).Run() // left over by a killed run
		mustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			killNetnsProcs(ns)
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
		mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	mustRun(t, "ip", "link", "add", "name", poeSubIf, "netns", p.sub, "type", "veth", "peer", "name", poeAccessIf, "netns", p.lac)
	mustRun(t, "ip", "-n", p.sub, "link", "set", poeSubIf, "up")
	mustRun(t, "ip", "-n", p.lac, "link", "set", poeAccessIf, "up")
	mustRun(t, "ip", "link", "add", "name", "lac0", "netns", p.lac, "type", "veth", "peer", "name", "lns0", "netns", p.lns)
	mustRun(t, "ip", "-n", p.lac, "addr", "add", poeLACAddr+"/24", "dev", "lac0")
	mustRun(t, "ip", "-n", p.lns, "addr", "add", poeLNSAddr+"/24", "dev", "lns0")
	mustRun(t, "ip", "-n", p.lns, "addr", "add", poeDeadAddr+"/24", "dev", "lns0")
	mustRun(t, "ip", "-n", p.lac, "link", "set", "lac0", "up")
	mustRun(t, "ip", "-n", p.lns, "link", "set", "lns0", "up")
	return p
}

// startDaemon writes cfg, checks it with -check and runs l2tpd in ns
// until the admin socket answers.
func startDaemon(t *testing.T, ns, name, cfg string) *daemon {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	cfg = strings.ReplaceAll(cfg, "@SOCK@", yamlQuote(sock))
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(l2tpdBin, "-check", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("l2tpd -check %s: %v\n%s\nconfig:\n%s", cfgPath, err, out, cfg)
	}
	d := &daemon{sock: sock}
	d.proc = startProc(t, name, filepath.Join(dir, name+".log"), "ip", "netns", "exec", ns, l2tpdBin, "-config", cfgPath)
	t.Cleanup(func() { d.shutdown(t) })
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, err := d.tunnels(); err == nil {
			return d
		}
		if d.exited() {
			t.Fatalf("%s exited at start-up: %v\n%s", name, d.waitErr, d.log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s admin socket did not answer within %v", name, waitTimeout)
		}
		time.Sleep(pollInterval)
	}
}

const poeTimers = "control:\n  hello_interval: 60s\n  retransmit:\n    initial: 250ms\n    cap: 1s\n    max_retries: 3\n"

func poeLNSConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname: %s\nlisten: [\"%s:1701\"]\n", poeLNSHost, poeLNSAddr)
	b.WriteString("log:\n  level: debug\n  format: json\nadmin:\n  socket: @SOCK@\n" + poeTimers)
	// The LAC's proxied LCP and credentials are taken as they are (RFC
	// 2661 §4.4.5): the client must not see a second negotiation.
	fmt.Fprintf(&b, "peers:\n  - name: lac\n    host_name: %s\n    secret: %s\n    renegotiate: never\n", poeLACHost, poeSecret)
	b.WriteString("default_peer:\n  reject: true\nstore:\n  backend: memory\n")
	b.WriteString("tun:\n  name: l2tp0\n  mtu: 1500\n")
	fmt.Fprintf(&b, "ppp:\n  mru: 1500\n  auth: [chap, pap]\n  echo_interval: 30s\n  local_ipv4: %s\n  ipv6: false\n  pool: default\n", poeLocal)
	b.WriteString("pools:\n  - name: default\n    ipv4: [\"100.64.0.10-100.64.0.250\"]\n")
	b.WriteString("auth:\n  local_users:\n")
	for u, p := range poeUsers {
		fmt.Fprintf(&b, "    - name: %s\n      password: %s\n", yamlQuote(u), yamlQuote(p))
	}
	return b.String()
}

// poeLACConfig is the LAC: the access interface, and lnsBlock for the
// LNSs and how they are chosen.
func poeLACConfig(lnsBlock string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname: %s\nlisten: [\"%s:1701\"]\n", poeLACHost, poeLACAddr)
	b.WriteString("log:\n  level: debug\n  format: json\nadmin:\n  socket: @SOCK@\n" + poeTimers)
	b.WriteString("store:\n  backend: memory\n")
	fmt.Fprintf(&b, "lac:\n  listen: [\"%s:0\"]\n  auth: [chap, pap]\n  pppoe:\n    - {interface: %s, ac_name: e2e-bras}\n", poeLACAddr, poeAccessIf)
	b.WriteString(lnsBlock)
	return b.String()
}

type lacSessionJSON struct {
	Role           string `json:"role"`
	State          string `json:"state"`
	UserName       string `json:"user_name"`
	MAC            string `json:"mac"`
	PPPoESessionID uint16 `json:"pppoe_session_id"`
	LNS            string `json:"lns"`
	Peer           string `json:"peer"`
	TunnelID       uint32 `json:"tunnel_id"`
	SessionID      uint32 `json:"session_id"`
	PeerSessionID  uint32 `json:"peer_session_id"`
	CallingNumber  string `json:"calling_number"`
	ProxyLCP       bool   `json:"proxy_lcp"`
	PPPState       string `json:"ppp_state"`
	IPv4           string `json:"ipv4"`
}

func (d *daemon) lacSessions() ([]lacSessionJSON, error) {
	out, err := d.ctl("show", "sessions")
	if err != nil {
		return nil, err
	}
	var ss []lacSessionJSON
	if err := json.Unmarshal(out, &ss); err != nil {
		return nil, fmt.Errorf("l2tpctl show sessions: %v in %q", err, out)
	}
	return ss, nil
}

// PPPoE clients with CHAP and with PAP → LAC → LNS: discovery, LCP and
// authentication at the LAC, the call with proxy LCP and proxy
// authentication (RFC 2661 §4.4.5) that the LNS accepts without a second
// negotiation, IPCP from the LNS, UDP to the LNS side and back, and
// teardown from both ends (PADT → CDN, CDN → PADT; RFC 2516 §5.5).
func TestE2EPPPoELAC(t *testing.T) {
	requireE2E(t, "ip")
	ns := newPPPoENetns(t)
	lns := startDaemon(t, ns.lns, "lns", poeLNSConfig())
	lac := startDaemon(t, ns.lac, "lac", poeLACConfig(fmt.Sprintf(
		"  lns:\n    - {name: lns1, address: \"%s:1701\", secret: %s, version: \"2\"}\n  realms:\n    - {realm: %s, lns: [lns1]}\n",
		poeLNSAddr, poeSecret, poeRealm)))
	startUDPEcho(t, ns.lns, netip.AddrPortFrom(netip.IPv4Unspecified(), poeEchoPort))

	const perUser = 3
	chap := startPPPoESubs(t, ns.sub, poeSubIf, 0x00, perUser, "alice@"+poeRealm, poeUsers["alice@"+poeRealm], ppp.AuthCHAPMD5)
	pap := startPPPoESubs(t, ns.sub, poeSubIf, 0x01, perUser, "bob@"+poeRealm, poeUsers["bob@"+poeRealm], ppp.AuthPAP)
	up := chap.waitUp(t, 30*time.Second)
	for m, a := range pap.waitUp(t, 30*time.Second) {
		up[m] = a
	}
	dst := netip.AddrPortFrom(netip.MustParseAddr(poeLocal), poeEchoPort)
	for _, subs := range []*pppoeSubs{chap, pap} {
		for m := range subs.subs {
			subs.udpRoundTrip(t, m, dst, []byte("pppoe-e2e "+m.String()))
		}
		// One LCP negotiation and one authentication exchange, both
		// with the LAC: the LNS took them over as proxied. (A PAP client
		// Naks the LAC's CHAP, so it sees two Configure-Requests before
		// LCP opens.)
		subs.mu.Lock()
		for m, s := range subs.subs {
			if s.lcpConfReqs == 0 || s.lcpRenego != 0 || s.authAsks != 1 {
				t.Errorf("%v saw %d LCP Configure-Requests (%d after LCP opened) and %d authentication requests or answers; want none after and 1",
					m, s.lcpConfReqs, s.lcpRenego, s.authAsks)
			}
		}
		subs.mu.Unlock()
	}

	// The LNS: every session proxied, with the user and the Calling
	// Number (the client's MAC address), and the address IPCP gave.
	ls, err := lns.lacSessions()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2*perUser {
		t.Fatalf("LNS sessions %+v; want %d", ls, 2*perUser)
	}
	for _, s := range ls {
		m, err := pppoe.ParseMAC(s.CallingNumber)
		if err != nil || !s.ProxyLCP || up[m].String() != s.IPv4 || poeUsers[s.UserName] == "" {
			t.Errorf("LNS session %+v: want proxy_lcp, a known user and the client's MAC and address (%v)", s, up[m])
		}
	}
	// The LAC: role lac, relaying, with the PPPoE and L2TP identifiers.
	as, err := lac.lacSessions()
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2*perUser {
		t.Fatalf("LAC sessions %+v; want %d", as, 2*perUser)
	}
	for _, s := range as {
		if s.Role != "lac" || s.State != "relaying" || s.LNS != "lns1" || s.Peer != poeLNSAddr+":1701" ||
			s.TunnelID == 0 || s.SessionID == 0 || s.PeerSessionID == 0 || s.PPPoESessionID == 0 || poeUsers[s.UserName] == "" {
			t.Errorf("LAC session %+v", s)
		}
	}
	out, err := exec.Command(l2tpctlBin, "-s", lac.sock, "show", "sessions").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PPPOE") || !strings.Contains(string(out), as[0].MAC) {
		t.Errorf("l2tpctl show sessions table on the LAC: %v\n%s", err, out)
	}

	// A PADT from a client ends its call at the LNS (CDN).
	var first *pppoeSub
	for _, s := range chap.subs {
		first = s
		break
	}
	chap.mu.Lock()
	padt := first.disc.Close(nil)
	chap.mu.Unlock()
	if err := chap.conn.Write(padt); err != nil {
		t.Fatal(err)
	}
	lns.waitFor(t, "the LNS session of the client that sent PADT to go", func() error {
		ss, err := lns.lacSessions()
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.CallingNumber == first.mac.String() {
				return fmt.Errorf("%w: %+v", errNotYet, s)
			}
		}
		if len(ss) != 2*perUser-1 {
			return fmt.Errorf("%w: %d sessions", errNotYet, len(ss))
		}
		return nil
	})
	// Clearing a session at the LNS (CDN) sends the client a PADT.
	var victim lacSessionJSON
	for _, s := range ls {
		if s.CallingNumber != first.mac.String() {
			victim = s
			break
		}
	}
	if _, err := lns.ctl("clear", "session", fmt.Sprint(victim.SessionID)); err != nil {
		t.Fatal(err)
	}
	vm, _ := pppoe.ParseMAC(victim.CallingNumber)
	subs := chap
	if _, ok := pap.subs[vm]; ok {
		subs = pap
	}
	lac.waitFor(t, "a PADT for the client whose call the LNS cleared", func() error {
		subs.mu.Lock()
		defer subs.mu.Unlock()
		if s := subs.subs[vm]; s.down != "PADT" {
			return fmt.Errorf("%w: %v down %q", errNotYet, vm, s.down)
		}
		return nil
	})
	lac.waitFor(t, "the LAC to list the other sessions only", func() error {
		ss, err := lac.lacSessions()
		if err != nil {
			return err
		}
		if len(ss) != 2*perUser-2 {
			return fmt.Errorf("%w: %+v", errNotYet, ss)
		}
		return nil
	})
	// Clearing a relayed session at the LAC, by its L2TP session ID:
	// a PADT to the client and a CDN to the LNS.
	var cleared lacSessionJSON
	for _, s := range as {
		if s.MAC != first.mac.String() && s.MAC != victim.CallingNumber {
			cleared = s
			break
		}
	}
	if out, err := lac.ctl("clear", "session", fmt.Sprint(cleared.SessionID)); err != nil {
		t.Fatalf("clear session %d at the LAC: %v %s", cleared.SessionID, err, out)
	}
	cm, _ := pppoe.ParseMAC(cleared.MAC)
	subs = chap
	if _, ok := pap.subs[cm]; ok {
		subs = pap
	}
	lac.waitFor(t, "a PADT for the client the LAC's operator cleared", func() error {
		subs.mu.Lock()
		defer subs.mu.Unlock()
		if s := subs.subs[cm]; s.down != "PADT" {
			return fmt.Errorf("%w: %v down %q", errNotYet, cm, s.down)
		}
		return nil
	})
	lns.waitFor(t, "the LNS session of the call the LAC cleared to go", func() error {
		ss, err := lns.lacSessions()
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.CallingNumber == cleared.MAC {
				return fmt.Errorf("%w: %+v", errNotYet, s)
			}
		}
		return nil
	})
	if ss, err := lac.lacSessions(); err != nil || len(ss) != 2*perUser-3 {
		t.Fatalf("LAC sessions after the clear: %+v %v", ss, err)
	}

	// The LAC stopping sends every remaining client a PADT, and the LNS
	// a CDN for each call.
	lac.sigterm()
	if ok, err := lac.wait(stopTimeout); !ok || err != nil {
		t.Fatalf("LAC did not stop cleanly: %v %v", ok, err)
	}
	for _, subs := range []*pppoeSubs{chap, pap} {
		subs.mu.Lock()
		for m, s := range subs.subs {
			if s != first && s.down != "PADT" {
				t.Errorf("%v after the LAC stopped: down %q, want a PADT", m, s.down)
			}
		}
		subs.mu.Unlock()
	}
	lns.waitFor(t, "the LNS sessions to end with the LAC", func() error {
		ss, err := lns.lacSessions()
		if err != nil {
			return err
		}
		if len(ss) != 0 {
			return fmt.Errorf("%w: %d left", errNotYet, len(ss))
		}
		return nil
	})
}

// RADIUS chooses the LNS (RFC 2868): FreeRADIUS, in the LAC's namespace,
// accepts the subscriber with two tagged Tunnel-* groups. The preferred
// one (Tunnel-Preference 1) names an address where nothing listens; the
// LAC's tunnel there fails and the call goes to the second group's LNS,
// with the Tunnel-Password as the tunnel secret. A wrong password gets
// the RADIUS reject back as a CHAP Failure and no call.
func TestE2EPPPoELACRADIUSFailover(t *testing.T) {
	requireE2E(t, "ip")
	ns := newPPPoENetns(t)
	const user, pass = "carol@radius.example", "carol-pass"
	users := fmt.Sprintf(`"%s" Cleartext-Password := "%s"
	Tunnel-Type:1 = L2TP,
	Tunnel-Medium-Type:1 = IPv4,
	Tunnel-Server-Endpoint:1 = "%s",
	Tunnel-Password:1 = "%s",
	Tunnel-Preference:1 = 1,
	Tunnel-Assignment-Id:1 = "lns-dead",
	Tunnel-Type:2 = L2TP,
	Tunnel-Medium-Type:2 = IPv4,
	Tunnel-Server-Endpoint:2 = "%s",
	Tunnel-Password:2 = "%s",
	Tunnel-Preference:2 = 2,
	Tunnel-Assignment-Id:2 = "lns-live"
`, user, pass, poeDeadAddr, poeSecret, poeLNSAddr, poeSecret)
	fr := radiustest.New(t, users)
	// FreeRADIUS listens on the LAC namespace's loopback.
	if err := inNetns(ns.lac, func() error { fr.Start(); return nil }); err != nil {
		t.Fatal(err)
	}
	poeUsers[user] = pass
	defer delete(poeUsers, user)
	lns := startDaemon(t, ns.lns, "lns", poeLNSConfig())
	lac := startDaemon(t, ns.lac, "lac", poeLACConfig("  radius_tunnels: true\n")+
		fmt.Sprintf("radius:\n  timeout: 1s\n  retries: 1\n  auth_servers: [{address: \"%s\", secret: %s}]\n", fr.Auth(), radiustest.Secret))
	startUDPEcho(t, ns.lns, netip.AddrPortFrom(netip.IPv4Unspecified(), poeEchoPort))

	subs := startPPPoESubs(t, ns.sub, poeSubIf, 0x02, 2, user, pass, ppp.AuthCHAPMD5)
	subs.waitUp(t, 40*time.Second)
	for m := range subs.subs {
		subs.udpRoundTrip(t, m, netip.AddrPortFrom(netip.MustParseAddr(poeLocal), poeEchoPort), []byte("radius "+m.String()))
	}
	as, err := lac.lacSessions()
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 {
		t.Fatalf("LAC sessions %+v; want 2", as)
	}
	for _, s := range as {
		if s.LNS != "lns-live" || s.Peer != poeLNSAddr+":1701" || s.State != "relaying" {
			t.Errorf("LAC session %+v; want it relayed to lns-live at %s:1701", s, poeLNSAddr)
		}
	}
	ls, err := lns.lacSessions()
	if err != nil || len(ls) != 2 {
		t.Fatalf("LNS sessions %+v, %v; want 2", ls, err)
	}
	for _, s := range ls {
		if !s.ProxyLCP || s.UserName != user {
			t.Errorf("LNS session %+v; want proxy_lcp and user %s", s, user)
		}
	}
	// RFC 2868 §3.7: the same Tunnel-Assignment-Id, the same tunnel.
	if ts, err := lns.tunnels(); err != nil || len(ts) != 1 {
		t.Errorf("LNS tunnels %+v, %v; want the two calls in one tunnel", ts, err)
	}
	// The preferred group was tried first and failed.
	tried := false
	for _, l := range strings.Split(lac.log(), "\n") {
		if strings.Contains(l, `"msg":"tunnel to LNS failed"`) && strings.Contains(l, `"name":"lns-dead"`) &&
			strings.Contains(l, poeDeadAddr) {
			tried = true
		}
	}
	if !tried {
		t.Errorf("the LAC's log shows no failed tunnel to lns-dead (%s): the preferred group was not tried first", poeDeadAddr)
	}

	// A wrong password: RADIUS rejects, the client hears CHAP Failure
	// (RFC 1994 §4.4) and the session ends with a PADT.
	bad := startPPPoESubs(t, ns.sub, poeSubIf, 0x03, 1, user, "wrong", ppp.AuthCHAPMD5)
	lac.waitFor(t, "the rejected subscriber's session to end", func() error {
		bad.mu.Lock()
		defer bad.mu.Unlock()
		for _, s := range bad.subs {
			if s.down == "" {
				return fmt.Errorf("%w: still up", errNotYet)
			}
			if s.addr.IsValid() {
				return fmt.Errorf("rejected subscriber got %v", s.addr)
			}
		}
		return nil
	})
	if ls, _ := lns.lacSessions(); len(ls) != 2 {
		t.Errorf("LNS sessions after the reject: %+v; want the 2 from before", ls)
	}
}
