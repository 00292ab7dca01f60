package control

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/l2tpd/l2tpd/control/pool"
)

// listenUDP binds one L2TP UDP socket; the datapath reads it.
func listenUDP(addr string) (*net.UDPConn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		// ":1701" and host names: let the resolver decide.
		ua, rerr := net.ResolveUDPAddr("udp", addr)
		if rerr != nil {
			return nil, fmt.Errorf("control: listen %q: %w", addr, err)
		}
		ap = ua.AddrPort()
	}
	network := "udp4"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		network = "udp6"
	}
	conn, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(ap))
	if err != nil {
		return nil, fmt.Errorf("control: listen %s: %w", addr, err)
	}
	if rc, err := conn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			// Reconnect storms must not be lost in the socket queue.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		})
	}
	return conn, nil
}

// routeState is what l2tpd installed in the kernel's routing table: a
// route to the TUN for every prefix of every pool, and of every pool a
// reload removed or redefined while it still has leases.
type routeState struct {
	dev       string
	installed map[netip.Prefix]bool
	// draining are replaced pools with live leases: their routes stay
	// until the last lease ends.
	draining []drainingPool
	// local is the ppp.local_ipv4 given to the TUN last; an address
	// replaced by a reload stays on it (live subscribers were told it in
	// IPCP) until restart.
	local   netip.Addr
	lastErr string // logged once
	// ip runs the ip command (tests record instead).
	ip func(args ...string) error
	// sess feeds the worker that adds and removes subscribers' own
	// routes (sessionRoute); sessMu orders the shards' reads of dev and
	// ip after the writes of whoever set them.
	sess     chan kernelRouteOp
	sessOnce sync.Once
	sessMu   sync.Mutex
}

type drainingPool struct {
	p   *pool.Pool
	cfg Pool
}

// setupKernelRoutes gives the TUN our PPP address and routes every
// pool toward it, so the host sends subscribers' traffic to l2tpd.
// Reloads keep the pool routes in step (syncRoutes); per-session
// routing is the datapath's own table.
func (s *Server) setupKernelRoutes(dev string) error {
	s.routes.sessMu.Lock()
	s.routes.dev, s.routes.installed, s.routes.ip = dev, map[netip.Prefix]bool{}, runIP
	s.routes.sessMu.Unlock()
	return s.syncRoutes()
}

func runIP(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// poolPrefixes are the prefixes that cover a pool's addresses.
func poolPrefixes(p Pool) []netip.Prefix {
	var out []netip.Prefix
	for _, r := range p.IPv4 {
		out = append(out, rangePrefixes(r.First, r.Last)...)
	}
	if p.IPv6.IsValid() {
		out = append(out, p.IPv6.Masked())
	}
	return out
}

// drainPool keeps old's routes while it has leases (reloadMu held).
func (s *Server) drainPool(p *pool.Pool, cfg Pool) {
	if s.routes.dev == "" {
		return
	}
	s.routes.draining = append(s.routes.draining, drainingPool{p: p, cfg: cfg})
}

// syncRoutes installs the routes of the running pools and of draining
// pools with leases, and removes the others l2tpd installed. Called at
// start, after each reload and periodically (reloadMu held, or before
// the shards run).
func (s *Server) syncRoutes() error {
	rs := &s.routes
	if rs.dev == "" {
		return nil
	}
	var errs []string
	if a := s.config().PPP.LocalIPv4; a.IsValid() && a != rs.local {
		if err := rs.ip("addr", "replace", netip.PrefixFrom(a, 32).String(), "dev", rs.dev); err != nil {
			errs = append(errs, err.Error())
		} else {
			rs.local = a
		}
	}
	want := map[netip.Prefix]bool{}
	for _, p := range s.config().Pools {
		for _, pfx := range poolPrefixes(p) {
			want[pfx] = true
		}
	}
	kept := rs.draining[:0]
	for _, d := range rs.draining {
		if len(d.p.Leases()) == 0 {
			continue
		}
		kept = append(kept, d)
		for _, pfx := range poolPrefixes(d.cfg) {
			want[pfx] = true
		}
	}
	clear(rs.draining[len(kept):])
	rs.draining = kept
	for pfx := range want {
		if rs.installed[pfx] {
			continue
		}
		if err := rs.ip(family(pfx), "route", "replace", pfx.String(), "dev", rs.dev); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		rs.installed[pfx] = true
	}
	for pfx := range rs.installed {
		if want[pfx] {
			continue
		}
		// Forgotten even when ip fails (the route may be gone
		// already): an error is not retried every second.
		if err := rs.ip(family(pfx), "route", "del", pfx.String(), "dev", rs.dev); err != nil {
			errs = append(errs, err.Error())
		}
		delete(rs.installed, pfx)
	}
	if len(errs) > 0 {
		err := fmt.Errorf("control: kernel routes: %s", strings.Join(errs, "; "))
		if err.Error() != rs.lastErr {
			s.log.Warn("kernel routes for the pools", zap.Error(err))
		}
		rs.lastErr = err.Error()
		return err
	}
	rs.lastErr = ""
	return nil
}

func family(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "-4"
	}
	return "-6"
}

// rangePrefixes covers an inclusive IPv4 range with the fewest prefixes.
func rangePrefixes(first, last netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	if !first.Is4() || !last.Is4() || last.Less(first) {
		return nil
	}
	lo, hi := u32(first), u32(last)
	for lo <= hi {
		bits := 32
		for bits > 0 {
			size := uint64(1) << (32 - (bits - 1))
			if uint64(lo)%size != 0 || uint64(lo)+size-1 > uint64(hi) {
				break
			}
			bits--
		}
		out = append(out, netip.PrefixFrom(addr4(lo), bits))
		next := uint64(lo) + uint64(1)<<(32-bits)
		if next > 0xffffffff {
			break
		}
		lo = uint32(next)
	}
	return out
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// sessionRoute asks for (add) or withdraws a kernel route toward the TUN
// for a prefix routed to one subscriber (a Framed-Route, a delegated or
// fixed IPv6 prefix) and reports whether it did: nothing is needed when
// a pool's route covers the prefix or l2tpd manages no kernel routes.
// The ip command runs on one worker, in order, so a shard never waits
// for it.
func (s *Server) sessionRoute(add bool, p netip.Prefix) bool {
	rs := &s.routes
	rs.sessMu.Lock()
	dev, ip := rs.dev, rs.ip
	rs.sessMu.Unlock()
	if dev == "" {
		return false
	}
	if add {
		for _, pl := range s.config().Pools {
			for _, q := range poolPrefixes(pl) {
				if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
					return false
				}
			}
		}
	}
	rs.sessOnce.Do(func() {
		rs.sess = make(chan kernelRouteOp, 4096)
		go s.runSessionRoutes(rs.sess, ip, dev)
	})
	select {
	case rs.sess <- kernelRouteOp{add: add, p: p}:
	default:
		s.log.Warn("kernel route queue full", zap.Stringer("prefix", p), zap.Bool("add", add))
	}
	return true
}

type kernelRouteOp struct {
	add bool
	p   netip.Prefix
}

func (s *Server) runSessionRoutes(ops <-chan kernelRouteOp, ip func(...string) error, dev string) {
	for op := range ops {
		verb := "del"
		if op.add {
			verb = "replace"
		}
		if err := ip(family(op.p), "route", verb, op.p.String(), "dev", dev); err != nil {
			s.log.Warn("kernel route for a subscriber", zap.Error(err))
		}
	}
}
