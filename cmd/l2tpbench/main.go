// Command l2tpbench is a load generator that emulates PPP subscribers
// behind an L2TP LAC: each subscriber's call goes through the control/lac
// engine to the LNS under test, and its PPP client (LCP, PAP/CHAP/
// MS-CHAPv2, IPCP, IPv6CP) runs to the network phase. It reports setup
// rate, latency per phase, failures by reason and data rates; see
// docs/l2tpbench.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/lac"
	"github.com/l2tpd/l2tpd/ppp"
)

func main() {
	o, jsonPath, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "l2tpbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "l2tpbench:", err)
		os.Exit(1)
	}
	out, _ := json.MarshalIndent(rep, "", "  ")
	out = append(out, '\n')
	switch jsonPath {
	case "":
	case "-":
		os.Stdout.Write(out)
	default:
		if err := os.WriteFile(jsonPath, out, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "l2tpbench:", err)
			os.Exit(1)
		}
	}
	if rep.Failed > 0 || rep.Up < rep.Attempted {
		os.Exit(3)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, string, error) {
	fs := flag.NewFlagSet("l2tpbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	lns := fs.String("lns", "", "LNS address (host:port, port 1701 when omitted)")
	fs.StringVar(&o.secret, "secret", "", "tunnel secret (RFC 2661 §5.1.1 challenge, v3 Message Digest)")
	fs.BoolVar(&o.hide, "hide", false, "hide AVPs (needs -secret)")
	v3 := fs.Bool("v3", false, "L2TPv3 (RFC 3931) instead of L2TPv2")
	fs.IntVar(&o.tunnels, "tunnels", 1, "tunnels to spread the sessions over")
	fs.IntVar(&o.sessions, "sessions", 1, "subscribers to bring up")
	fs.Float64Var(&o.rate, "rate", 0, "calls placed per second (0: as fast as -concurrency allows)")
	fs.IntVar(&o.concurrency, "concurrency", 1000, "subscribers in setup at once")
	auth := fs.String("auth", "chap", "authentication: pap, chap or mschapv2")
	fs.StringVar(&o.userFmt, "user", "user%d", "user name; a %d verb takes the subscriber's index")
	fs.StringVar(&o.password, "password", "secret", "password")
	fs.BoolVar(&o.ipv6, "ipv6", false, "negotiate IPv6CP too")
	fs.Float64Var(&o.traffic, "traffic", 0, "ICMP echo requests per second per online subscriber")
	dst := fs.String("traffic-dst", "", "destination of -traffic (default: each subscriber's PPP peer address)")
	fs.DurationVar(&o.duration, "duration", 0, "time to stay online once all subscribers are up")
	fs.DurationVar(&o.hold, "hold", 0, "hang up and redial each subscriber after it was online this long, until -duration ends")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "setup timeout per call")
	fs.DurationVar(&o.echo, "echo", 0, "LCP echo interval of each client (0: none)")
	fs.IntVar(&o.redial, "redial", 0, "redial a subscriber whose setup failed up to this many times (as a real client retries)")
	fs.DurationVar(&o.pppRestart, "ppp-restart", 3*time.Second, "PPP restart timer of the clients (RFC 1661 §4.6)")
	fs.BoolVar(&o.storm, "storm", false, "reconnect storm: drop all sessions at once, redial them all, time the return")
	loss := fs.Float64("loss", 0, "lossy relay: percent of datagrams dropped (both ways)")
	reorder := fs.Float64("reorder", 0, "lossy relay: percent of datagrams reordered (both ways)")
	fs.IntVar(&o.opening, "open", 1, "tunnels opened to the LNS at once (l2tpns needs 1: it takes a second SCCRQ from one port for a duplicate)")
	fs.IntVar(&o.shards, "shards", runtime.NumCPU(), "LAC shards (goroutines)")
	fs.IntVar(&o.retries, "retries", 0, "control retransmissions before giving up (0: 5, or 10 with the relay)")
	fs.DurationVar(&o.retransmit, "retransmit", 0, "initial control retransmission timeout (0: 1s)")
	fs.StringVar(&o.local, "local", "0.0.0.0:0", "local UDP address of the LAC")
	fs.DurationVar(&o.progress, "progress", time.Second, "progress line interval on stderr (0: none)")
	jsonPath := fs.String("json", "", "write the JSON report to this file (- for stdout)")
	pppoeFlags(fs, &o.pppoe)
	if err := fs.Parse(args); err != nil {
		return o, "", err
	}
	if fs.NArg() > 0 {
		return o, "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *lns == "" && o.pppoe.iface == "" {
		return o, "", errors.New("-lns (or -pppoe) is required")
	}
	a := *lns
	if a == "" {
		a = "127.0.0.1:1701" // not used by -pppoe
	}
	if !strings.Contains(a, ":") || strings.HasSuffix(a, "]") {
		a += ":1701"
	}
	ap, err := netip.ParseAddrPort(a)
	if err != nil {
		return o, "", fmt.Errorf("-lns: %w", err)
	}
	o.lns = ap
	o.version = 2
	if *v3 {
		o.version = 3
	}
	switch *auth {
	case "pap":
		o.auth = ppp.AuthPAP
	case "chap":
		o.auth = ppp.AuthCHAPMD5
	case "mschapv2":
		o.auth = ppp.AuthMSCHAPv2
	default:
		return o, "", fmt.Errorf("-auth %q: pap, chap or mschapv2", *auth)
	}
	if *dst != "" {
		if o.trafficDst, err = netip.ParseAddr(*dst); err != nil || !o.trafficDst.Is4() {
			return o, "", fmt.Errorf("-traffic-dst %q: an IPv4 address", *dst)
		}
	}
	if o.tunnels < 1 || o.sessions < 1 || o.concurrency < 1 {
		return o, "", errors.New("-tunnels, -sessions and -concurrency must be positive")
	}
	if o.tunnels > o.sessions {
		o.tunnels = o.sessions
	}
	if o.tunnels > 60000 {
		return o, "", errors.New("-tunnels: at most 60000 (16-bit tunnel IDs)")
	}
	if o.sessions/o.tunnels > 65000 {
		return o, "", errors.New("more than 65000 sessions per tunnel: raise -tunnels")
	}
	o.loss, o.reorder = *loss/100, *reorder/100
	if o.loss < 0 || o.loss >= 1 || o.reorder < 0 || o.reorder >= 1 {
		return o, "", errors.New("-loss and -reorder are percentages below 100")
	}
	if o.retries == 0 {
		o.retries = 5
		if o.loss > 0 {
			o.retries = 10
		}
	}
	if o.shards < 1 {
		o.shards = 1
	}
	return o, *jsonPath, nil
}

// Report is the JSON summary of a run.
type Report struct {
	Started        time.Time              `json:"started"`
	LNS            string                 `json:"lns"`
	Version        int                    `json:"version"`
	Auth           string                 `json:"auth"`
	Tunnels        int                    `json:"tunnels"`
	Sessions       int                    `json:"sessions"`
	Attempted      int64                  `json:"attempted"`
	Up             int64                  `json:"up"`
	Failed         int64                  `json:"failed"`
	FailedBy       map[string]int         `json:"failed_by_reason"`
	RetriedBy      map[string]int         `json:"redialed_by_reason,omitempty"`
	Churned        uint64                 `json:"hold_redials,omitempty"`
	SetupSeconds   float64                `json:"setup_seconds"`
	SetupRate      float64                `json:"setup_rate_per_second"`
	Latency        map[string]Percentiles `json:"latency"`
	DataSent       uint64                 `json:"data_sent"`
	DataReceived   uint64                 `json:"data_received"`
	DataPPS        float64                `json:"data_received_per_second"`
	Storm          *StormReport           `json:"storm,omitempty"`
	Relay          *RelayStats            `json:"relay,omitempty"`
	LAC            lac.Stats              `json:"lac"`
	RSSBytes       int64                  `json:"bench_rss_bytes"`
	RSSPerSession  float64                `json:"bench_rss_per_session_bytes"`
	Goroutines     int                    `json:"bench_goroutines"`
	DurationSecond float64                `json:"run_seconds"`
}

// StormReport times a reconnect storm.
type StormReport struct {
	Dropped        int            `json:"dropped"`
	AllDownSeconds float64        `json:"all_down_seconds"`
	AllUpSeconds   float64        `json:"all_up_seconds"`
	Up             int64          `json:"up"`
	Failed         int64          `json:"failed"`
	FailedBy       map[string]int `json:"failed_by_reason"`
	Latency        Percentiles    `json:"total_latency"`
}

func run(ctx context.Context, o options, stderr io.Writer) (*Report, error) {
	if o.pppoe.iface != "" {
		return runPPPoE(ctx, o, stderr)
	}
	rep := &Report{Started: time.Now().UTC(), LNS: o.lns.String(), Version: int(o.version), Auth: o.auth.String(),
		Tunnels: o.tunnels, Sessions: o.sessions}
	target := o.lns
	var rl *relay
	if o.loss > 0 || o.reorder > 0 {
		var err error
		if rl, err = newRelay("127.0.0.1:0", o.lns, o.loss, o.reorder); err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
		defer rl.Close()
		target = rl.Addr()
	}
	l, err := lac.New(lac.Config{HostName: "l2tpbench", Shards: o.shards, Listen: []string{o.local},
		RetransmitInitial: o.retransmit, MaxRetransmits: o.retries, SetupTimeout: o.timeout, TunnelIdle: -1,
		HoldDown: time.Second}, zap.NewNop())
	if err != nil {
		return nil, err
	}
	lctx, stopLAC := context.WithCancel(context.Background())
	lacDone := make(chan error, 1)
	go func() { lacDone <- l.Run(lctx) }()
	defer func() {
		stopLAC()
		<-lacDone
	}()
	<-l.Ready()
	cand := []lac.LNS{{Name: "lns", Addr: target, Secret: []byte(o.secret), HideAVPs: o.hide, Version: o.version,
		MaxOpening: o.opening}}
	b := newBench(o, l, cand)

	pctx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	if o.progress > 0 {
		go b.progressLoop(pctx, stderr, o.progress)
	}
	start := time.Now()
	b.dialAll(ctx)
	if b.firstUp.Load() != 0 {
		rep.SetupSeconds = time.Duration(b.lastUp.Load() - start.UnixNano()).Seconds()
		if rep.SetupSeconds > 0 {
			rep.SetupRate = float64(b.up.Load()) / rep.SetupSeconds
		}
	}
	rep.Attempted, rep.Up, rep.Failed = b.attempted.Load(), b.up.Load(), b.failed.Load()
	b.mu.Lock()
	rep.FailedBy = copyMap(b.failures)
	rep.RetriedBy = copyMap(b.retried)
	b.mu.Unlock()
	rep.Latency = b.lat.summary()
	rep.RSSBytes = rss()
	if rep.Up > 0 {
		rep.RSSPerSession = float64(rep.RSSBytes) / float64(rep.Up)
	}
	rep.Goroutines = runtime.NumGoroutine()

	// Steady state: traffic, holding, until -duration ends.
	if o.duration > 0 && ctx.Err() == nil {
		tctx, stopTraffic := context.WithTimeout(ctx, o.duration)
		if o.traffic > 0 {
			go b.traffic(tctx, o.traffic)
		}
		if o.hold > 0 {
			b.churning.Store(true)
			go b.churn(tctx)
		}
		t0 := time.Now()
		<-tctx.Done()
		stopTraffic()
		b.churning.Store(false)
		time.Sleep(200 * time.Millisecond) // the last echoes
		rep.DataSent, rep.DataReceived = b.sent.Load(), b.received.Load()
		rep.DataPPS = float64(rep.DataReceived) / time.Since(t0).Seconds()
	}
	if o.storm && ctx.Err() == nil {
		rep.Storm = b.stormRound(ctx)
	}
	stopProgress()
	rep.LAC = l.Stats()
	rep.Churned = b.redialed.Load()
	if rl != nil {
		rep.Relay = rl.stats()
	}
	// Orderly end: CDNs, then StopCCNs from the LAC's shutdown.
	b.hangupAll()
	end := time.Now().Add(5 * time.Second)
	for b.calls() > 0 && time.Now().Before(end) {
		time.Sleep(20 * time.Millisecond)
	}
	rep.DurationSecond = time.Since(start).Seconds()
	if o.progress > 0 {
		b.progressLine(stderr, start)
		fmt.Fprintln(stderr)
	}
	return rep, nil
}

// stormRound drops every online subscriber at once, waits until all are
// gone, redials them all and times the return to all online.
func (b *bench) stormRound(ctx context.Context) *StormReport {
	st := &StormReport{}
	t0 := time.Now()
	st.Dropped = b.hangupAll()
	for b.calls() > 0 && ctx.Err() == nil && time.Since(t0) < time.Minute {
		time.Sleep(5 * time.Millisecond)
	}
	st.AllDownSeconds = time.Since(t0).Seconds()
	b.lat = latencies{}
	failedBefore := b.failed.Load()
	b.mu.Lock()
	before := copyMap(b.failures)
	b.mu.Unlock()
	b.dialAll(ctx)
	st.AllUpSeconds = time.Since(t0).Seconds()
	st.Up = b.up.Load()
	st.Failed = b.failed.Load() - failedBefore
	b.mu.Lock()
	st.FailedBy = map[string]int{}
	for k, v := range b.failures {
		if d := v - before[k]; d > 0 {
			st.FailedBy[k] = d
		}
	}
	b.mu.Unlock()
	st.Latency = b.lat.summary()["total"]
	return st
}

// churn hangs up subscribers that have been online for -hold and
// redials them, until ctx ends.
func (b *bench) churn(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		var ids []lac.CallID
		for id, s := range b.byID {
			if f := s.flow.Load(); f != nil && time.Since(s.dialed) > b.o.hold {
				ids = append(ids, id)
				s.flow.Store(nil)
			}
		}
		b.mu.Unlock()
		for _, id := range ids {
			b.l.Hangup(id, tunnelAdmin, nil)
		}
	}
}

func (b *bench) progressLoop(ctx context.Context, w io.Writer, every time.Duration) {
	start := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.progressLine(w, start)
		}
	}
}

var lastProgress struct {
	at time.Time
	up int64
}

func (b *bench) progressLine(w io.Writer, start time.Time) {
	now := time.Now()
	up := b.up.Load()
	rate := 0.0
	if !lastProgress.at.IsZero() {
		rate = float64(up-lastProgress.up) / now.Sub(lastProgress.at).Seconds()
	}
	lastProgress.at, lastProgress.up = now, up
	fmt.Fprintf(w, "\r%6.1fs attempted %d up %d failed %d in-setup %d rate %.0f/s tunnels %d echo %d/%d   ",
		now.Sub(start).Seconds(), b.attempted.Load(), up, b.failed.Load(), b.inSetup.Load(), rate, b.l.Tunnels(),
		b.received.Load(), b.sent.Load())
}

func copyMap(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// rss is this process's resident set size (Linux /proc).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
