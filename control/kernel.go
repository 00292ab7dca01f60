package control

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"

	"golang.org/x/sys/unix"
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

// setupKernelRoutes gives the TUN our PPP address and routes every
// pool toward it, so the host sends subscribers' traffic to l2tpd. It
// runs once at start; per-session routing is the datapath's own table.
func (s *Server) setupKernelRoutes(dev string, cfg *Config) error {
	var errs []string
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out))))
		}
	}
	if a := cfg.PPP.LocalIPv4; a.IsValid() {
		run("addr", "replace", netip.PrefixFrom(a, 32).String(), "dev", dev)
	}
	for _, p := range cfg.Pools {
		for _, r := range p.IPv4 {
			for _, pfx := range rangePrefixes(r.First, r.Last) {
				run("route", "replace", pfx.String(), "dev", dev)
			}
		}
		if p.IPv6.IsValid() {
			run("-6", "route", "replace", p.IPv6.Masked().String(), "dev", dev)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
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
