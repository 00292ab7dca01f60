package main_test

import (
	"fmt"
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
