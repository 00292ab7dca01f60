package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/l2tpd/l2tpd/cmd/internal/admin/admintest"
	"github.com/l2tpd/l2tpd/control"
)

// The collector exports the admin view: tunnels by state and peer,
// sessions by state, events, drops, traffic, reloads and the config hash.
func TestCollector(t *testing.T) {
	fake := admintest.New(
		[]control.TunnelInfo{
			{TunnelID: 1, Peer: "192.0.2.1:1701", Version: 2, State: "established", RTTSeconds: 0.02},
			{TunnelID: 2, Peer: "192.0.2.1:1701", Version: 2, State: "established"},
			{TunnelID: 3, Peer: "[2001:db8::1]:1701", Version: 3, State: "wait-ctl-conn"},
		},
		[]control.SessionInfo{{SessionID: 7, State: "established", PPPState: "network", RxPackets: 10, TxPackets: 4, RxBytes: 1000, TxBytes: 400}},
		control.Stats{Counters: map[string]uint64{"tunnels_established": 5}, Drops: map[string]uint64{"malformed": 2},
			Refused: map[string]uint64{"icrq_rate": 4}, SessionsInSetup: 6,
			Offload:   map[string]uint64{"offload_udp_gso_sockets": 2, "offload_tun_flags": 0x17, "offload_gso_sent": 11, "offload_gso_segments": 300},
			AcctQueue: 3, Servers: []control.ServerInfo{{Addr: "192.0.2.10:1812", Dead: true, Responses: 7, LatencySeconds: 0.012, Requests: 9, Unanswered: 2}},
			OnlineSetup: control.Histogram{Bounds: []float64{0.1, 1}, Counts: []uint64{1, 3}, Count: 4, Sum: 2.5}},
	)
	c := newCollector(fake)
	c.setHash("abc123")
	c.reloads.WithLabelValues("ok").Inc()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `
# HELP l2tpd_tunnels Tunnels by state, protocol version and peer.
# TYPE l2tpd_tunnels gauge
l2tpd_tunnels{peer="192.0.2.1",state="established",version="2"} 2
l2tpd_tunnels{peer="2001:db8::1",state="wait-ctl-conn",version="3"} 1
# HELP l2tpd_drops_total Packets dropped by reason (datapath_ prefix: the forwarding plane).
# TYPE l2tpd_drops_total counter
l2tpd_drops_total{reason="malformed"} 2
# HELP l2tpd_session_packets Packets of the live sessions, by direction (rx: from the LAC).
# TYPE l2tpd_session_packets gauge
l2tpd_session_packets{direction="rx"} 10
l2tpd_session_packets{direction="tx"} 4
# HELP l2tpd_config_info The loaded configuration, by hash.
# TYPE l2tpd_config_info gauge
l2tpd_config_info{hash="abc123"} 1
# HELP l2tpd_config_reloads_total Configuration reloads by result (ok, rejected).
# TYPE l2tpd_config_reloads_total counter
l2tpd_config_reloads_total{result="ok"} 1
l2tpd_config_reloads_total{result="rejected"} 0
# HELP l2tpd_accounting_queue Accounting records waiting for a RADIUS server.
# TYPE l2tpd_accounting_queue gauge
l2tpd_accounting_queue 3
# HELP l2tpd_radius_server_up 1 while a RADIUS server is alive, by address.
# TYPE l2tpd_radius_server_up gauge
l2tpd_radius_server_up{server="192.0.2.10:1812"} 0
# HELP l2tpd_radius_latency_seconds Smoothed delay of a RADIUS server's answers, by address.
# TYPE l2tpd_radius_latency_seconds gauge
l2tpd_radius_latency_seconds{server="192.0.2.10:1812"} 0.012
# HELP l2tpd_radius_timeouts_total Requests a RADIUS server left unanswered, by address.
# TYPE l2tpd_radius_timeouts_total counter
l2tpd_radius_timeouts_total{server="192.0.2.10:1812"} 2
# HELP l2tpd_subscriber_online_seconds Time from ICRQ to the subscriber's first network protocol open (LCP, authentication, IPCP/IPv6CP).
# TYPE l2tpd_subscriber_online_seconds histogram
l2tpd_subscriber_online_seconds_bucket{le="0.1"} 1
l2tpd_subscriber_online_seconds_bucket{le="1"} 3
l2tpd_subscriber_online_seconds_bucket{le="+Inf"} 4
l2tpd_subscriber_online_seconds_sum 2.5
l2tpd_subscriber_online_seconds_count 4
# HELP l2tpd_admission_refused_total New tunnels (StopCCN 2/4) and sessions (CDN 4) refused by admission control, or their SCCRQ/ICRQ dropped under overload, by reason.
# TYPE l2tpd_admission_refused_total counter
l2tpd_admission_refused_total{reason="icrq_rate"} 4
# HELP l2tpd_sessions_in_setup Sessions admitted and not yet established (ICRQ answered, no ICCN yet).
# TYPE l2tpd_sessions_in_setup gauge
l2tpd_sessions_in_setup 6
# HELP l2tpd_datapath_offload_mode Datapath offloads in use: sockets with UDP GSO or GRO, 1 when the TUN has IFF_VNET_HDR, the TUN_F_ flags the kernel accepted.
# TYPE l2tpd_datapath_offload_mode gauge
l2tpd_datapath_offload_mode{mode="tun_flags"} 23
l2tpd_datapath_offload_mode{mode="udp_gso_sockets"} 2
# HELP l2tpd_datapath_offload_total Datapath offload work: super-datagrams sent and received and the datagrams in them, GSO fallbacks, TUN super-packets cut and checksums completed.
# TYPE l2tpd_datapath_offload_total counter
l2tpd_datapath_offload_total{event="gso_segments"} 300
l2tpd_datapath_offload_total{event="gso_sent"} 11
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"l2tpd_tunnels", "l2tpd_drops_total", "l2tpd_session_packets", "l2tpd_config_info", "l2tpd_config_reloads_total",
		"l2tpd_accounting_queue", "l2tpd_radius_server_up", "l2tpd_subscriber_online_seconds", "l2tpd_radius_latency_seconds", "l2tpd_radius_timeouts_total",
		"l2tpd_admission_refused_total", "l2tpd_sessions_in_setup", "l2tpd_datapath_offload_mode", "l2tpd_datapath_offload_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c, "l2tpd_control_rtt_seconds"); n != 1 {
		t.Fatalf("%d rtt series", n)
	}
	if n := testutil.CollectAndCount(c, "l2tpd_sessions"); n != 1 {
		t.Fatalf("%d session series", n)
	}
}

// The runtime profiles are served only when metrics.pprof asks for them.
func TestMetricsPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- serveMetrics(ctx, addr, on, newCollector(admintest.New(nil, nil, control.Stats{})), zap.NewNop())
		}()
		var resp *http.Response
		for deadline := time.Now().Add(5 * time.Second); ; {
			resp, err = http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if on && (resp.StatusCode != 200 || !strings.Contains(string(body), "heap profile")) {
			t.Errorf("pprof on: %s %.200s", resp.Status, body)
		}
		if !on && resp.StatusCode != 404 {
			t.Errorf("pprof off: %s", resp.Status)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
