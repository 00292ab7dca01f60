package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control"
)

// metricsSource is what the collector reads on each scrape: the same
// queries the admin socket answers, so a scrape costs the shards one
// command each and nothing on the packet path.
type metricsSource interface {
	Tunnels(ctx context.Context) ([]control.TunnelInfo, error)
	Sessions(ctx context.Context) ([]control.SessionInfo, error)
	Stats(ctx context.Context) (control.Stats, error)
}

// collector turns the control plane's state into Prometheus metrics.
type collector struct {
	src     metricsSource
	reloads *prometheus.CounterVec
	hash    atomic.Value // string: the loaded configuration's hash

	tunnels, sessions, counters, drops, pkts, bytes, info        *prometheus.Desc
	acctQueue, storeQueue, storeUp, radiusUp, setup, online, rtt *prometheus.Desc
	radiusLatency, radiusResponses, radiusRequests               *prometheus.Desc
	radiusUnanswered, refused, inSetup                           *prometheus.Desc
	offloadMode, offloadWork                                     *prometheus.Desc
}

// offloadModes are the datapath's offload_ entries that describe a mode
// (sockets or a TUN with an offload in use, the TUN's flags) rather than
// count work: gauges, not counters.
var offloadModes = map[string]bool{
	"offload_udp_gso_sockets": true,
	"offload_udp_gro_sockets": true,
	"offload_tun_vnet_hdr":    true,
	"offload_tun_flags":       true,
}

func newCollector(src metricsSource) *collector {
	c := &collector{
		src: src,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "l2tpd_config_reloads_total",
			Help: "Configuration reloads by result (ok, rejected).",
		}, []string{"result"}),
		tunnels:          prometheus.NewDesc("l2tpd_tunnels", "Tunnels by state, protocol version and peer.", []string{"state", "version", "peer"}, nil),
		sessions:         prometheus.NewDesc("l2tpd_sessions", "Sessions by L2TP state and PPP state.", []string{"state", "ppp_state"}, nil),
		counters:         prometheus.NewDesc("l2tpd_control_events_total", "Control plane events (tunnels/sessions established and closed, retransmissions, duplicates, out-of-order messages, PPP outcomes).", []string{"event"}, nil),
		drops:            prometheus.NewDesc("l2tpd_drops_total", "Packets dropped by reason (datapath_ prefix: the forwarding plane).", []string{"reason"}, nil),
		pkts:             prometheus.NewDesc("l2tpd_session_packets", "Packets of the live sessions, by direction (rx: from the LAC).", []string{"direction"}, nil),
		bytes:            prometheus.NewDesc("l2tpd_session_bytes", "Bytes of the live sessions, by direction (rx: from the LAC).", []string{"direction"}, nil),
		info:             prometheus.NewDesc("l2tpd_config_info", "The loaded configuration, by hash.", []string{"hash"}, nil),
		acctQueue:        prometheus.NewDesc("l2tpd_accounting_queue", "Accounting records waiting for a RADIUS server.", nil, nil),
		storeQueue:       prometheus.NewDesc("l2tpd_store_queue", "Writes waiting for the state store.", nil, nil),
		storeUp:          prometheus.NewDesc("l2tpd_store_up", "1 while the state store answers, 0 during an outage.", nil, nil),
		radiusUp:         prometheus.NewDesc("l2tpd_radius_server_up", "1 while a RADIUS server is alive, by address.", []string{"server"}, nil),
		setup:            prometheus.NewDesc("l2tpd_session_setup_seconds", "Time from ICRQ to ICCN (L2TP session setup).", nil, nil),
		online:           prometheus.NewDesc("l2tpd_subscriber_online_seconds", "Time from ICRQ to the subscriber's first network protocol open (LCP, authentication, IPCP/IPv6CP).", nil, nil),
		rtt:              prometheus.NewDesc("l2tpd_control_rtt_seconds", "Smoothed control channel round trip (Hello included) of the tunnels, at scrape time.", nil, nil),
		radiusLatency:    prometheus.NewDesc("l2tpd_radius_latency_seconds", "Smoothed delay of a RADIUS server's answers, by address.", []string{"server"}, nil),
		radiusResponses:  prometheus.NewDesc("l2tpd_radius_responses_total", "Valid answers from a RADIUS server, by address.", []string{"server"}, nil),
		radiusRequests:   prometheus.NewDesc("l2tpd_radius_requests_total", "Requests sent to a RADIUS server, by address.", []string{"server"}, nil),
		radiusUnanswered: prometheus.NewDesc("l2tpd_radius_timeouts_total", "Requests a RADIUS server left unanswered, by address.", []string{"server"}, nil),
		refused:          prometheus.NewDesc("l2tpd_admission_refused_total", "New tunnels (StopCCN 2/4) and sessions (CDN 4) refused by admission control, or their SCCRQ/ICRQ dropped under overload, by reason.", []string{"reason"}, nil),
		inSetup:          prometheus.NewDesc("l2tpd_sessions_in_setup", "Sessions admitted and not yet established (ICRQ answered, no ICCN yet).", nil, nil),
		offloadMode:      prometheus.NewDesc("l2tpd_datapath_offload_mode", "Datapath offloads in use: sockets with UDP GSO or GRO, 1 when the TUN has IFF_VNET_HDR, the TUN_F_ flags the kernel accepted.", []string{"mode"}, nil),
		offloadWork:      prometheus.NewDesc("l2tpd_datapath_offload_total", "Datapath offload work: super-datagrams sent and received and the datagrams in them, GSO fallbacks, TUN super-packets cut and checksums completed.", []string{"event"}, nil),
	}
	c.reloads.WithLabelValues("ok")
	c.reloads.WithLabelValues("rejected")
	return c
}

func (c *collector) setHash(h string) { c.hash.Store(h) }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.tunnels, c.sessions, c.counters, c.drops, c.pkts, c.bytes, c.info, c.acctQueue, c.storeQueue, c.storeUp, c.radiusUp, c.setup, c.online, c.rtt, c.radiusLatency, c.radiusResponses, c.radiusRequests, c.radiusUnanswered, c.refused, c.inSetup, c.offloadMode, c.offloadWork} {
		ch <- d
	}
	c.reloads.Describe(ch)
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.reloads.Collect(ch)
	if h, _ := c.hash.Load().(string); h != "" {
		ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, h)
	}
	if ts, err := c.src.Tunnels(ctx); err == nil {
		type key struct{ state, version, peer string }
		n := map[key]float64{}
		for _, t := range ts {
			host, _, _ := net.SplitHostPort(t.Peer)
			n[key{t.State, strconv.Itoa(t.Version), host}]++
		}
		for k, v := range n {
			ch <- prometheus.MustNewConstMetric(c.tunnels, prometheus.GaugeValue, v, k.state, k.version, k.peer)
		}
		h := control.Histogram{Bounds: rttBounds, Counts: make([]uint64, len(rttBounds))}
		for _, t := range ts {
			if t.RTTSeconds <= 0 {
				continue
			}
			h.Count++
			h.Sum += t.RTTSeconds
			for i, b := range rttBounds {
				if t.RTTSeconds <= b {
					h.Counts[i]++
				}
			}
		}
		ch <- histogram(c.rtt, h)
	}
	if ss, err := c.src.Sessions(ctx); err == nil {
		type key struct{ state, ppp string }
		n := map[key]float64{}
		var rxp, txp, rxb, txb float64
		for _, s := range ss {
			n[key{s.State, s.PPPState}]++
			rxp += float64(s.RxPackets)
			txp += float64(s.TxPackets)
			rxb += float64(s.RxBytes)
			txb += float64(s.TxBytes)
		}
		for k, v := range n {
			ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, v, k.state, k.ppp)
		}
		ch <- prometheus.MustNewConstMetric(c.pkts, prometheus.GaugeValue, rxp, "rx")
		ch <- prometheus.MustNewConstMetric(c.pkts, prometheus.GaugeValue, txp, "tx")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, rxb, "rx")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, txb, "tx")
	}
	if st, err := c.src.Stats(ctx); err == nil {
		for k, v := range st.Counters {
			ch <- prometheus.MustNewConstMetric(c.counters, prometheus.CounterValue, float64(v), k)
		}
		for k, v := range st.Drops {
			ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(v), k)
		}
		for k, v := range st.Refused {
			ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(v), k)
		}
		ch <- prometheus.MustNewConstMetric(c.inSetup, prometheus.GaugeValue, float64(st.SessionsInSetup))
		for k, v := range st.Offload {
			name := strings.TrimPrefix(k, "offload_")
			if offloadModes[k] {
				ch <- prometheus.MustNewConstMetric(c.offloadMode, prometheus.GaugeValue, float64(v), name)
			} else {
				ch <- prometheus.MustNewConstMetric(c.offloadWork, prometheus.CounterValue, float64(v), name)
			}
		}
		ch <- histogram(c.setup, st.SessionSetup)
		ch <- histogram(c.online, st.OnlineSetup)
		ch <- prometheus.MustNewConstMetric(c.acctQueue, prometheus.GaugeValue, float64(st.AcctQueue))
		ch <- prometheus.MustNewConstMetric(c.storeQueue, prometheus.GaugeValue, float64(st.StoreQueue))
		up := 0.0
		if st.StoreUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.storeUp, prometheus.GaugeValue, up)
		for _, sv := range st.Servers {
			up := 1.0
			if sv.Dead {
				up = 0
			}
			ch <- prometheus.MustNewConstMetric(c.radiusUp, prometheus.GaugeValue, up, sv.Addr)
			ch <- prometheus.MustNewConstMetric(c.radiusLatency, prometheus.GaugeValue, sv.LatencySeconds, sv.Addr)
			ch <- prometheus.MustNewConstMetric(c.radiusResponses, prometheus.CounterValue, float64(sv.Responses), sv.Addr)
			ch <- prometheus.MustNewConstMetric(c.radiusRequests, prometheus.CounterValue, float64(sv.Requests), sv.Addr)
			ch <- prometheus.MustNewConstMetric(c.radiusUnanswered, prometheus.CounterValue, float64(sv.Unanswered), sv.Addr)
		}
	}
}

// serveMetrics runs the Prometheus endpoint until ctx is done.
func serveMetrics(ctx context.Context, addr string, withPprof bool, c *collector, log *zap.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("metrics endpoint", zap.String("addr", ln.Addr().String()))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// rttBounds are the control RTT buckets, in seconds.
var rttBounds = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

func histogram(d *prometheus.Desc, h control.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.Sum, buckets)
}
