package main_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A reload in a network namespace: a pool added by it gets its kernel
// route to the TUN at once, a pool removed with no lease loses it, a
// listener added is bound and one removed is closed, and a reload with
// an invalid admission limit is refused with its path while the running
// configuration keeps serving.
func TestE2EReloadRoutesAndListeners(t *testing.T) {
	requireE2E(t, "ip", "ss")
	ns := fmt.Sprintf("l2tpd-e2e-%d-%d-reload", os.Getpid(), nextSeq())
	mustRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	mustRun(t, "ip", "-n", ns, "addr", "add", "127.0.0.2/8", "dev", "lo")

	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	cfgPath := filepath.Join(dir, "l2tpd.yaml")
	write := func(listen, pools, extra string) {
		cfg := fmt.Sprintf(`hostname: lns
listen: [%s]
log: {level: debug, format: json}
admin: {socket: %q}
store: {backend: memory}
tun: {name: l2tpr0, mtu: 1500}
ppp: {auth: [pap], local_ipv4: 100.64.0.1, pool: default}
pools:
  - name: default
    ipv4: ["100.64.0.10-100.64.0.20"]
%s
auth:
  local_users: [{name: u, password: p}]
%s`, listen, sock, pools, extra)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`"127.0.0.1:1701"`, "", "")
	d := &daemon{sock: sock}
	d.proc = startProc(t, "l2tpd", filepath.Join(dir, "l2tpd.log"), "ip", "netns", "exec", ns, l2tpdBin, "-config", cfgPath)
	t.Cleanup(func() { d.shutdown(t) })
	d.waitFor(t, "the admin socket", func() error { _, err := d.tunnels(); return err })

	routes := func() string { return mustRun(t, "ip", "-n", ns, "-4", "route", "show", "dev", "l2tpr0") }
	udp := func() string { return mustRun(t, "ip", "netns", "exec", ns, "ss", "-uln") }
	if r := routes(); !strings.Contains(r, "100.64.0.10/31") || strings.Contains(r, "100.70.0.0/24") {
		t.Fatalf("routes at start:\n%s", r)
	}

	// A pool and a listener added.
	write(`"127.0.0.1:1701", "127.0.0.2:1701"`, `  - name: extra
    ipv4: ["100.70.0.0-100.70.0.255"]`, "")
	if out, err := d.ctl("reload"); err != nil || !strings.Contains(string(out), `"applied": true`) {
		t.Fatalf("reload: %s %v", out, err)
	}
	if r := routes(); !strings.Contains(r, "100.70.0.0/24") || !strings.Contains(r, "100.64.0.10/31") {
		t.Fatalf("no route for the added pool:\n%s", r)
	}
	if u := udp(); !strings.Contains(u, "127.0.0.2:1701") {
		t.Fatalf("added listener not bound:\n%s", u)
	}

	// A broken reload: refused with the path, nothing applied.
	write(`"127.0.0.1:1701"`, "", "limits: {icrq_rate: 10, icrq_burst: 0}\n")
	if out, err := d.ctl("reload"); err == nil || !strings.Contains(err.Error(), "limits.icrq_burst") {
		t.Fatalf("broken reload: %s %v", out, err)
	}
	if r := routes(); !strings.Contains(r, "100.70.0.0/24") {
		t.Fatalf("a refused reload removed a route:\n%s", r)
	}

	// The pool (no lease) and the listener (no tunnel) removed.
	write(`"127.0.0.1:1701"`, "", "")
	if out, err := d.ctl("reload"); err != nil || !strings.Contains(string(out), `"applied": true`) {
		t.Fatalf("reload: %s %v", out, err)
	}
	if r := routes(); strings.Contains(r, "100.70.0.0/24") || !strings.Contains(r, "100.64.0.10/31") {
		t.Fatalf("routes after the pool was removed:\n%s", r)
	}
	if u := udp(); strings.Contains(u, "127.0.0.2:1701") || !strings.Contains(u, "127.0.0.1:1701") {
		t.Fatalf("listeners after the removal:\n%s", u)
	}
	d.checkLog(t)
}

// A reload under a live subscriber (xl2tpd and slirp as LAC and client):
// removing another listener and adding a pool leave the session and its
// traffic alone and route the pool; removing the session's own listener
// drains it: the session keeps running and the port stays bound until
// the tunnel is cleared, then the port is released and a redial on it
// is not answered.
func TestE2EReloadUnderLiveSession(t *testing.T) {
	requireE2E(t, "ip", "ss", "xl2tpd", "unshare", "mount", pppSlirpBin)
	ns := newNetnsPair(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	cfgPath := filepath.Join(dir, "l2tpd.yaml")
	base := pppL2TPDConfig(sock, []string{"pap"})
	a, b := yamlQuote(xlLNSAddr+":1701"), yamlQuote("127.0.0.1:1702")
	// pools are appended to the pools section, which auth follows.
	write := func(listen, pools string) {
		cfg := strings.Replace(base, "listen: ["+a+"]", "listen: ["+listen+"]", 1)
		cfg = strings.Replace(cfg, "auth:\n", pools+"auth:\n", 1)
		if !strings.Contains(cfg, "listen: ["+listen+"]") || !strings.Contains(cfg, pools+"auth:\n") {
			t.Fatalf("config template changed:\n%s", base)
		}
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(a+", "+b, "")
	d := &daemon{sock: sock}
	reload := func() {
		t.Helper()
		if out, err := d.ctl("reload"); err != nil || !strings.Contains(string(out), `"applied": true`) {
			t.Fatalf("reload: %s %v", out, err)
		}
	}
	d.proc = startProc(t, "l2tpd", filepath.Join(dir, "l2tpd.log"), "ip", "netns", "exec", ns.lns, l2tpdBin, "-config", cfgPath)
	t.Cleanup(func() { d.shutdown(t) })
	d.waitFor(t, "the admin socket", func() error { _, err := d.tunnels(); return err })
	udp := func() string { return mustRun(t, "ip", "netns", "exec", ns.lns, "ss", "-uln") }

	lac := startXl2tpdSlirp(t, ns.lac, pppPassword)
	lac.call(t)
	s := waitNetworkPhase(t, d)
	sub := s.subscriberAddr(t)
	// slirp's NAT answers from the LAC namespace: the subscriber's
	// address and the echo port it relays pings to.
	mustRun(t, "ip", "-n", ns.lac, "addr", "add", sub.String()+"/32", "dev", "lo")
	startUDPEcho(t, ns.lac, netip.AddrPortFrom(netip.IPv4Unspecified(), pppEchoPort))
	pingThroughTunnel(t, ns.lns, sub, []byte("before the reloads"))

	// Listener B removed, a pool added: the session on A is untouched.
	write(a, "  - name: extra\n    ipv4: [\"100.70.0.0-100.70.0.255\"]\n")
	reload()
	if r := mustRun(t, "ip", "-n", ns.lns, "route", "show", "100.70.0.0/24"); !strings.Contains(r, "dev "+pppTUN) {
		t.Fatalf("no route for the added pool: %q", r)
	}
	if u := udp(); strings.Contains(u, "127.0.0.1:1702") {
		t.Fatalf("removed listener still bound:\n%s", u)
	}
	after, err := d.pppSessions()
	if err != nil || len(after) != 1 || after[0].SessionID != s.SessionID || after[0].PPPState != "network" {
		t.Fatalf("after the reload: %+v %v; want session %d unchanged", after, err, s.SessionID)
	}
	pingThroughTunnel(t, ns.lns, sub, []byte("after removing listener B"))

	// Now A, the session's listener, removed: it drains.
	write(b, "")
	reload()
	pingThroughTunnel(t, ns.lns, sub, []byte("over a draining listener"))
	if u := udp(); !strings.Contains(u, xlLNSAddr+":1701") {
		t.Fatalf("draining listener closed under a live tunnel:\n%s", u)
	}
	ts, err := d.tunnels()
	if err != nil || len(ts) != 1 {
		t.Fatalf("tunnels %+v %v", ts, err)
	}
	if _, err := d.ctl("clear", "tunnel", fmt.Sprint(ts[0].TunnelID)); err != nil {
		t.Fatal(err)
	}
	d.waitFor(t, "the drained listener's port released", func() error {
		if u := udp(); strings.Contains(u, xlLNSAddr+":1701") {
			return fmt.Errorf("still bound")
		}
		return nil
	})
	d.checkLog(t)
}
