package main_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const opsMetricsPort = 9701

// Operating a live LNS: with a real subscriber online (xl2tpd + slirp),
// the metrics endpoint shows it and its counters move, `l2tpctl capture`
// writes a pcap of its PPP and data that tshark decodes, a reload that
// changes users, limits and the tunnel secret keeps it online, and a
// broken reload (or one that needs a restart) is refused with its
// reasons while the old configuration keeps serving. The datapath's
// offloads show in the metrics.
func TestE2EOperations(t *testing.T) {
	requireE2E(t, "ip", "xl2tpd", "tshark", "unshare", "mount", pppSlirpBin)
	ns := newNetnsPair(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	cfgPath := filepath.Join(dir, "l2tpd.yaml")
	base := pppL2TPDConfig(sock, []string{"pap"})
	metricsAddr := fmt.Sprintf("%s:%d", xlLNSAddr, opsMetricsPort)
	writeConfig := func(extra string) {
		cfg := base + fmt.Sprintf("metrics:\n  listen: %q\n", metricsAddr) + extra
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("")
	d := &daemon{sock: sock}
	d.proc = startProc(t, "l2tpd", filepath.Join(dir, "l2tpd.log"), "ip", "netns", "exec", ns.lns, l2tpdBin, "-config", cfgPath)
	t.Cleanup(func() { d.shutdown(t) })
	d.waitFor(t, "the admin socket", func() error { _, err := d.tunnels(); return err })

	lac := startXl2tpdSlirp(t, ns.lac, pppPassword)
	lac.call(t)
	s := waitNetworkPhase(t, d)
	sub := s.subscriberAddr(t)
	mustRun(t, "ip", "-n", ns.lac, "addr", "add", sub.String()+"/32", "dev", "lo")
	startUDPEcho(t, ns.lac, netip.AddrPortFrom(netip.IPv4Unspecified(), pppEchoPort))

	// Metrics: the subscriber is counted.
	m1 := scrape(t, ns.lns, metricsAddr)
	if v := m1[`l2tpd_sessions{ppp_state="network",state="established"}`]; v != 1 {
		t.Errorf("l2tpd_sessions network = %v; want 1\n%v", v, m1)
	}
	if v := m1[`l2tpd_subscriber_online_seconds_count`]; v < 1 {
		t.Errorf("subscriber_online_seconds_count = %v", v)
	}
	if v := m1[`l2tpd_control_events_total{event="sessions_established"}`]; v < 1 {
		t.Errorf("sessions_established = %v", v)
	}
	// The datapath's offloads are on by default and exported apart from
	// the drops: the TUN with its virtio header, the listener with GSO.
	if v := m1[`l2tpd_datapath_offload_mode{mode="tun_vnet_hdr"}`]; v != 1 {
		t.Errorf("offload mode tun_vnet_hdr = %v; want 1", v)
	}
	if v := m1[`l2tpd_datapath_offload_mode{mode="udp_gso_sockets"}`]; v < 1 {
		t.Errorf("offload mode udp_gso_sockets = %v; want at least the listener", v)
	}
	if _, ok := m1[`l2tpd_datapath_offload_total{event="gso_sent"}`]; !ok {
		t.Error("no l2tpd_datapath_offload_total{event=\"gso_sent\"}")
	}
	for k := range m1 {
		if strings.HasPrefix(k, "l2tpd_drops_total") && strings.Contains(k, "offload") {
			t.Errorf("offload entry among the drops: %s", k)
		}
	}

	// Capture while traffic flows; tshark must decode the session's LCP
	// keepalive and the ICMP inside the tunnel.
	pcapFile := filepath.Join(dir, "session.pcap")
	capDone := make(chan error, 1)
	go func() {
		out, err := exec.Command(l2tpctlBin, "-s", sock, "capture", "--session", strconv.Itoa(int(s.SessionID)),
			"--duration", "5s", "-w", pcapFile).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		capDone <- err
	}()
	time.Sleep(500 * time.Millisecond)
	mark := []byte("l2tpd-e2e capture")
	pingThroughTunnel(t, ns.lns, sub, mark)
	if err := <-capDone; err != nil {
		t.Fatalf("l2tpctl capture: %v", err)
	}
	for _, f := range []struct{ what, filter string }{
		{"LCP Echo-Request", "ppp.protocol == 0xc021 && ppp.code == 9"},
		{"LCP Echo-Reply", "ppp.protocol == 0xc021 && ppp.code == 10"},
		{"ICMP echo request to the subscriber", fmt.Sprintf("icmp.type == 8 && ip.dst == %s", sub)},
		{"ICMP echo reply from the subscriber", fmt.Sprintf("icmp.type == 0 && ip.src == %s", sub)},
	} {
		out, err := exec.Command("tshark", "-r", pcapFile, "-d", "udp.port==1701,l2tp", "-Y", f.filter, "-T", "fields", "-e", "frame.number").Output()
		if err != nil || len(strings.TrimSpace(string(out))) == 0 {
			t.Errorf("capture has no %s (%v)", f.what, err)
		}
	}
	if out, _ := exec.Command("tshark", "-r", pcapFile, "-d", "udp.port==1701,l2tp", "-Y", "_ws.malformed || _ws.expert.severity >= warning").Output(); len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("capture decodes with errors:\n%s", out)
	}

	// l2tpctl's views of the live session and configuration.
	if out, err := d.ctl("show", "session", strconv.Itoa(int(s.SessionID))); err != nil ||
		!strings.Contains(string(out), `"user_name": "`+pppUser+`"`) || !strings.Contains(string(out), `"auth_protocol": "PAP"`) {
		t.Errorf("show session: %s %v", out, err)
	}
	if out, err := d.ctl("show", "sessions", "--user", "nobody"); err != nil || strings.TrimSpace(string(out)) != "[]" {
		t.Errorf("show sessions --user nobody: %s %v", out, err)
	}
	if out, err := d.ctl("show", "config"); err != nil || !strings.Contains(string(out), `"config_hash"`) || strings.Contains(string(out), pppPassword) {
		t.Errorf("show config (must not reveal secrets): %s %v", out, err)
	}

	// Reload under load: more users, other limits, a tunnel secret.
	writeConfig("limits:\n  max_sessions: 1000\n  max_tunnels: 100\npeers:\n  - name: other-lac\n    host_name: other\n    secret: changed-secret\n")
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(mustRead(t, cfgPath), "auth:\n  local_users:\n", "auth:\n  local_users:\n    - name: second\n      password: second-pw\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := d.ctl("reload")
	if err != nil || !strings.Contains(string(out), `"applied": true`) {
		t.Fatalf("reload: %s %v", out, err)
	}
	// A broken file is refused with its path; the old configuration serves.
	if err := os.WriteFile(cfgPath, []byte(mustRead(t, cfgPath)+"bogus_key: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := d.ctl("reload"); err == nil || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("broken reload: %s %v", out, err)
	}
	// An offload switch needs a restart: the reload says which.
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(mustRead(t, cfgPath), "bogus_key: 1\n", "datapath:\n  gro: false\n", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := d.ctl("reload"); err == nil || !strings.Contains(err.Error(), "datapath.gro") || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("reload turning GRO off: %s %v; want it rejected as needing a restart", out, err)
	}
	after, err := d.pppSessions()
	if err != nil || len(after) != 1 || after[0].SessionID != s.SessionID || after[0].PPPState != "network" || after[0].IPv4 != s.IPv4 {
		t.Fatalf("after reloads: %+v %v; want session %d unchanged", after, err, s.SessionID)
	}
	pingThroughTunnel(t, ns.lns, sub, []byte("l2tpd-e2e after reload"))

	m2 := scrape(t, ns.lns, metricsAddr)
	if m2[`l2tpd_config_reloads_total{result="ok"}`] != 1 || m2[`l2tpd_config_reloads_total{result="rejected"}`] != 2 {
		t.Errorf("reload counters %v / %v", m2[`l2tpd_config_reloads_total{result="ok"}`], m2[`l2tpd_config_reloads_total{result="rejected"}`])
	}
	if m2[`l2tpd_session_packets{direction="rx"}`] <= m1[`l2tpd_session_packets{direction="rx"}`] ||
		m2[`l2tpd_session_packets{direction="tx"}`] <= m1[`l2tpd_session_packets{direction="tx"}`] {
		t.Errorf("session packet counters did not move: %v,%v -> %v,%v",
			m1[`l2tpd_session_packets{direction="rx"}`], m1[`l2tpd_session_packets{direction="tx"}`],
			m2[`l2tpd_session_packets{direction="rx"}`], m2[`l2tpd_session_packets{direction="tx"}`])
	}
	// Clearing with a CDN result code ends the session.
	if _, err := d.ctl("clear", "session", strconv.Itoa(int(s.SessionID)), "--result", "2"); err != nil {
		t.Fatal(err)
	}
	d.waitSessionGone(t, "session cleared with result 2", s.SessionID)
	d.checkLog(t)
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// scrape reads the Prometheus endpoint from inside the namespace and
// returns each sample by its series name.
func scrape(t *testing.T, ns, addr string) map[string]float64 {
	t.Helper()
	var conn net.Conn
	deadline := time.Now().Add(waitTimeout)
	for {
		err := inNetns(ns, func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			conn = c
			return err
		})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics endpoint %s: %v", addr, err)
		}
		time.Sleep(pollInterval)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %s\n%s", resp.Status, body)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m
}
