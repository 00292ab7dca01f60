package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/cmd/internal/admin"
	"github.com/l2tpd/l2tpd/cmd/internal/config"
	"github.com/l2tpd/l2tpd/cmd/internal/pcap"
	"github.com/l2tpd/l2tpd/configs"
	"github.com/l2tpd/l2tpd/control"
)

// version is set at link time (-ldflags "-X main.version=v1.2.3").
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// After the first signal starts the shutdown, a second one
		// kills the process the default way.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, newControlServer))
}

// controlServer is what the daemon needs from control.Server.
type controlServer interface {
	admin.Backend
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	LocalAddrs() []net.Addr
	Reload(ctx context.Context, cfg control.Config, dryRun bool) (control.Diff, error)
	ConfigHash() string
	RunningConfig() control.Config
	Capture(ctx context.Context, sessionID uint32, count int, d time.Duration) ([]control.CapturedPacket, error)
}

type newServerFunc func(control.Config, *zap.Logger) (controlServer, error)

func newControlServer(cfg control.Config, log *zap.Logger) (controlServer, error) {
	return control.New(cfg, log)
}

func versionString() string {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return v
}

// run is the whole daemon; it returns the exit status. The daemon stops
// when ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, newServer newServerFunc) int {
	fs := flag.NewFlagSet("l2tpd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration `file` (default: the embedded configs/lns.yaml)")
	checkPath := fs.String("check", "", "validate the configuration `file`, print every error and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: l2tpd [-config FILE] | -check FILE | -version\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "l2tpd: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	switch {
	case *showVersion:
		fmt.Fprintf(stdout, "l2tpd %s %s %s/%s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case *checkPath != "":
		if _, err := config.Load(*checkPath); err != nil {
			printConfigErrors(stderr, *checkPath, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", *checkPath)
		return 0
	}

	source := *configPath
	var cfg *config.File
	var err error
	if source == "" {
		source = "embedded configs/lns.yaml"
		cfg, err = config.Parse(configs.Default())
	} else {
		cfg, err = config.Load(source)
	}
	if err != nil {
		printConfigErrors(stderr, source, err)
		return 1
	}
	log, atom, err := newLogger(cfg.Log, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "l2tpd: %v\n", err)
		return 1
	}
	defer log.Sync()
	load := func() (*config.File, error) {
		if *configPath == "" {
			return config.Parse(configs.Default())
		}
		return config.Load(*configPath)
	}
	if err := serve(ctx, cfg, load, log, atom, newServer); err != nil {
		log.Error("l2tpd failed", zap.Error(err))
		return 1
	}
	return 0
}

// serve runs the control server and the admin socket until ctx is done
// or the control server fails.
func serve(ctx context.Context, cfg *config.File, load func() (*config.File, error), log *zap.Logger, atom zap.AtomicLevel, newServer newServerFunc) error {
	log.Info("l2tpd starting",
		zap.String("version", versionString()),
		zap.Strings("listen", cfg.Listen),
		zap.String("host_name", cfg.HostName),
		zap.Int("peers", len(cfg.Peers)),
		zap.String("store", cfg.Store.Backend))
	log.Info("go runtime", applyRuntime(cfg.Runtime, os.Getenv).fields()...)
	srv, err := newServer(cfg.Control(), log.Named("control"))
	if err != nil {
		return err
	}
	ln, err := admin.Listen(cfg.Admin.Socket, cfg.Admin.Mode)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	adminDone := make(chan error, 1)
	metrics := newCollector(srv)
	metrics.setHash(srv.ConfigHash())
	if cfg.Metrics.Listen != "" {
		go func() {
			if err := serveMetrics(ctx, cfg.Metrics.Listen, cfg.Metrics.Pprof, metrics, log.Named("metrics")); err != nil {
				log.Error("metrics endpoint failed", zap.Error(err))
			}
		}()
	}
	reload := func(ctx context.Context, dryRun bool) (any, error) {
		next, err := load()
		if err != nil {
			if !dryRun {
				metrics.reloads.WithLabelValues("rejected").Inc()
			}
			return nil, fmt.Errorf("configuration rejected, the running one stays:\n%s", configErrorLines(err))
		}
		d, err := srv.Reload(ctx, next.Control(), dryRun)
		if !dryRun {
			if err != nil {
				metrics.reloads.WithLabelValues("rejected").Inc()
			} else {
				metrics.reloads.WithLabelValues("ok").Inc()
				metrics.setHash(srv.ConfigHash())
				log.Info("go runtime", applyRuntime(next.Runtime, os.Getenv).fields()...)
			}
		}
		return d, err
	}
	go func() {
		adminDone <- admin.NewServer(srv, admin.Options{
			SetLevel: levelSetter(atom),
			Reload:   reload,
			ShowConfig: func() any {
				return struct {
					Hash   string         `json:"config_hash"`
					Config control.Config `json:"config"`
				}{srv.ConfigHash(), srv.RunningConfig()}
			},
			Capture: func(ctx context.Context, id uint32, count int, d time.Duration) (admin.Capture, error) {
				pkts, err := srv.Capture(ctx, id, count, d)
				if err != nil {
					return admin.Capture{}, err
				}
				var buf bytes.Buffer
				if err := pcap.Write(&buf, pkts); err != nil {
					return admin.Capture{}, err
				}
				return admin.Capture{Packets: len(pkts), Pcap: buf.Bytes()}, nil
			},
			Log: log.Named("admin"),
		}).Serve(ctx, ln)
	}()
	// SIGHUP reloads like `l2tpctl reload`.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = sdNotify("RELOADING=1")
				rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
				if _, err := reload(rctx, false); err != nil {
					log.Error("reload on SIGHUP failed", zap.Error(err))
				}
				rcancel()
				_ = sdNotify("READY=1")
			}
		}
	}()
	runDone := make(chan error, 1)
	go func() { runDone <- srv.Run(ctx) }()

	var runErr error
	stopped := false
	select {
	case <-srv.Ready():
		addrs := make([]string, 0, len(cfg.Listen))
		for _, a := range srv.LocalAddrs() {
			addrs = append(addrs, a.String())
		}
		log.Info("l2tpd started", zap.Strings("listen", addrs), zap.String("admin_socket", cfg.Admin.Socket))
		if err := sdNotify("READY=1"); err != nil {
			log.Warn("sd_notify", zap.Error(err))
		}
	case runErr = <-runDone:
		stopped = true
	case <-ctx.Done():
	}
	if !stopped {
		select {
		case runErr = <-runDone:
		case <-ctx.Done():
			log.Info("l2tpd shutting down: closing every tunnel")
			_ = sdNotify("STOPPING=1")
			runErr = <-runDone
		}
	}
	cancel()
	if err := <-adminDone; err != nil {
		log.Warn("admin socket failed", zap.Error(err))
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	log.Info("l2tpd stopped")
	return nil
}

// configErrorLines formats every configuration error on its own line.
func configErrorLines(err error) string {
	var errs config.Errors
	if errors.As(err, &errs) {
		lines := make([]string, 0, len(errs))
		for _, e := range errs {
			lines = append(lines, e.Error())
		}
		return strings.Join(lines, "\n")
	}
	return err.Error()
}

// printConfigErrors writes one line per problem, prefixed by the file, so
// editors and scripts can jump to each.
func printConfigErrors(w io.Writer, source string, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintf(w, "%s: %s\n", source, e.Error())
		}
		return
	}
	fmt.Fprintf(w, "l2tpd: %v\n", err)
}
