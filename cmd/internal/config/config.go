package config

import (
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/l2tpd/l2tpd/control"
)

// File is a validated configuration document with every default filled in.
type File struct {
	HostName string
	Listen   []string
	Log      Log
	Admin    Admin
	// Channel tunes the reliable control channel (the "control" key).
	Channel Channel
	Limits  control.Limits
	// Peers are matched in order; DefaultPeer applies when none matches.
	Peers       []Peer
	DefaultPeer Peer
	Store       Store
	Auth        Auth
	// TUN, PPP and Pools configure PPP termination; an empty TUN.Name
	// runs the control plane only.
	TUN   control.TUN
	PPP   control.PPP
	Pools []control.Pool
	// Metrics is the Prometheus endpoint.
	Metrics Metrics
	// RADIUS authenticates and accounts when it names servers.
	RADIUS control.RADIUS
	// Pseudowires and StaticTunnels are the L2TPv3 Ethernet and VLAN
	// pseudowires ("pseudowires" and "static_tunnels" keys).
	Pseudowires   []control.Pseudowire
	StaticTunnels []control.StaticTunnel
	// LAC is the LAC role (the lac section).
	LAC control.LAC
	// Datapath holds the kernel offload switches (the datapath section).
	Datapath control.Datapath
	// Runtime tunes the Go garbage collector (the runtime section).
	Runtime Runtime
}

// DefaultGCPercent is the collector's target when neither the runtime
// section nor the GOGC environment variable sets one: the heap may grow
// to 1.5 times what is live before a collection, where Go's own default
// lets it double. An LNS's heap is almost all long-lived session state,
// so the smaller headroom costs little collection work and keeps
// resident memory close to what the sessions need.
const DefaultGCPercent = 50

// Runtime tunes the Go runtime: the collector's target (GOGC) and a soft
// memory limit (GOMEMLIMIT). A field left unset leaves the environment
// variable, or the default, in force.
type Runtime struct {
	// GCPercent is the heap growth, in percent of the live heap, that
	// starts a collection; -1 turns collection off (then MemoryLimit
	// should be set). Nil: GOGC, else DefaultGCPercent.
	GCPercent *int
	// MemoryLimit is a soft limit on the process's Go memory in bytes;
	// the collector works harder as the heap nears it. 0: GOMEMLIMIT,
	// else none.
	MemoryLimit int64
}

// Metrics configures the Prometheus endpoint; an empty Listen turns it
// off.
type Metrics struct {
	Listen string
	// Pprof also serves Go's runtime profiles under /debug/pprof/ on the
	// same listener (heap, goroutine, 30 s CPU profiles): for diagnosis
	// only, since anyone who reaches the port can read them.
	Pprof bool
}

// Log selects the daemon's log level and encoding.
type Log struct {
	// Level is debug, info, warn or error.
	Level string
	// Format is console or json.
	Format string
}

// Admin places the admin socket l2tpctl talks to.
type Admin struct {
	Socket string
	Mode   fs.FileMode
}

// Channel holds the control-channel timers and window.
type Channel struct {
	Shards            int
	ReceiveWindow     uint16
	HelloInterval     time.Duration
	RetransmitInitial time.Duration
	RetransmitCap     time.Duration
	MaxRetries        int
	// SessionSetupTimeout clears a call answered with ICRP and never
	// connected by an ICCN.
	SessionSetupTimeout time.Duration
}

// Peer is a tunnel-peer policy.
type Peer struct {
	Name      string
	HostName  string
	Addresses []netip.Prefix
	Secret    string
	HideAVPs  bool
	Reject    bool
	// Renegotiate is the proxy LCP policy: never, on-mismatch or
	// always; empty leaves control's default (on-mismatch).
	Renegotiate string
	// Pool overrides ppp.pool for this peer's sessions when not empty.
	Pool string
}

// Store selects the session store backend.
type Store struct {
	Backend string
	// URL is the PostgreSQL connection string (backend postgres).
	URL string
	// NodeID names this node in a shared database (default: hostname).
	NodeID string
	// OutagePolicy is "admit" (default) or "refuse": new sessions while
	// the database is unreachable.
	OutagePolicy string
}

// Auth configures PPP authentication.
type Auth struct {
	LocalUsers []User
}

// User is a PPP user authenticated locally.
type User struct {
	Name     string
	Password string
}

// Defaults for the keys control.DefaultConfig does not cover.
const (
	DefaultLogLevel    = "info"
	DefaultLogFormat   = "console"
	DefaultAdminSocket = "/run/l2tpd/admin.sock"
	DefaultAdminMode   = fs.FileMode(0o600)
	DefaultStore       = "memory"
)

// Default returns the configuration an empty document yields.
func Default() *File {
	c := control.DefaultConfig()
	return &File{
		HostName: c.HostName,
		Listen:   append([]string(nil), c.Listen...),
		Log:      Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
		Admin:    Admin{Socket: DefaultAdminSocket, Mode: DefaultAdminMode},
		Channel: Channel{
			Shards:              c.Shards,
			ReceiveWindow:       c.ReceiveWindow,
			HelloInterval:       c.Hello,
			RetransmitInitial:   c.RetransmitInitial,
			RetransmitCap:       c.RetransmitCap,
			MaxRetries:          c.MaxRetransmits,
			SessionSetupTimeout: c.SessionSetupTimeout,
		},
		Limits:      c.Limits,
		DefaultPeer: Peer{Name: "default"},
		Store:       Store{Backend: DefaultStore},
		TUN:         c.TUN,
		PPP:         c.PPP,
		RADIUS:      c.RADIUS,
	}
}

// Load reads and validates the document at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data)
}

// Parse decodes and validates one YAML document. On failure the error is
// an Errors value holding every problem found, each with its path and line.
func Parse(data []byte) (*File, error) {
	f := Default()
	d := &decoder{}
	d.document(data, f)
	if len(d.errs) > 0 {
		// Checks that span several keys run after the keys are read;
		// sorting puts their errors back in document order.
		slices.SortStableFunc(d.errs, func(a, b FieldError) int { return a.Line - b.Line })
		return nil, d.errs
	}
	return f, nil
}

// Control returns the control plane's part of the configuration.
func (f *File) Control() control.Config {
	cfg := control.Config{
		Listen:            append([]string(nil), f.Listen...),
		HostName:          f.HostName,
		Shards:            f.Channel.Shards,
		Default:           f.DefaultPeer.control(),
		ReceiveWindow:     f.Channel.ReceiveWindow,
		Hello:             f.Channel.HelloInterval,
		RetransmitInitial: f.Channel.RetransmitInitial,
		RetransmitCap:     f.Channel.RetransmitCap,
		MaxRetransmits:    f.Channel.MaxRetries,
		Limits:            f.Limits,
		TUN:               f.TUN,
		PPP:               f.PPP,
		RADIUS:            cloneRADIUS(f.RADIUS),
		Store:             control.Store{Backend: f.Store.Backend, URL: f.Store.URL, NodeID: f.Store.NodeID, OutagePolicy: f.Store.OutagePolicy},
		LAC:               cloneLAC(f.LAC),
		Datapath:          f.Datapath,
	}
	cfg.SessionSetupTimeout = f.Channel.SessionSetupTimeout
	cfg.Pseudowires = slices.Clone(f.Pseudowires)
	for _, st := range f.StaticTunnels {
		st.Sessions = slices.Clone(st.Sessions)
		cfg.StaticTunnels = append(cfg.StaticTunnels, st)
	}
	cfg.PPP.Auth = slices.Clone(f.PPP.Auth)
	cfg.PPP.DNS = slices.Clone(f.PPP.DNS)
	for _, p := range f.Peers {
		cfg.Peers = append(cfg.Peers, p.control())
	}
	for _, p := range f.Pools {
		p.IPv4 = slices.Clone(p.IPv4)
		cfg.Pools = append(cfg.Pools, p)
	}
	if len(f.Auth.LocalUsers) > 0 {
		cfg.Users = make(map[string]string, len(f.Auth.LocalUsers))
		for _, u := range f.Auth.LocalUsers {
			cfg.Users[u.Name] = u.Password
		}
	}
	return cfg
}

func (p Peer) control() control.Peer {
	return control.Peer{
		Name:      p.Name,
		HostName:  p.HostName,
		Addresses: append([]netip.Prefix(nil), p.Addresses...),
		Secret:    p.Secret,
		HideAVPs:  p.HideAVPs,
		Reject:    p.Reject,

		Renegotiate: p.Renegotiate,
		Pool:        p.Pool,
	}
}
