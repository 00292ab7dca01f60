package main

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// relay is a UDP relay between the LAC and the LNS that loses and
// reorders datagrams, both ways, control and data alike.
type relay struct {
	front, back *net.UDPConn // front faces the LAC, back the LNS
	lns         netip.AddrPort
	loss        float64 // probability a datagram is dropped
	reorder     float64 // probability a datagram is held back behind the next one
	hold        time.Duration

	mu  sync.Mutex
	lac netip.AddrPort

	forwarded, dropped, reordered atomic.Uint64
	done                          chan struct{}
}

// RelayStats are the relay's counters in the report.
type RelayStats struct {
	LossPercent    float64 `json:"loss_percent"`
	ReorderPercent float64 `json:"reorder_percent"`
	Forwarded      uint64  `json:"forwarded"`
	Dropped        uint64  `json:"dropped"`
	Reordered      uint64  `json:"reordered"`
}

func newRelay(listen string, lns netip.AddrPort, loss, reorder float64) (*relay, error) {
	fa, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, err
	}
	front, err := net.ListenUDP("udp", fa)
	if err != nil {
		return nil, err
	}
	back, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		front.Close()
		return nil, err
	}
	for _, c := range []*net.UDPConn{front, back} {
		c.SetReadBuffer(8 << 20)
		c.SetWriteBuffer(8 << 20)
	}
	r := &relay{front: front, back: back, lns: lns, loss: loss, reorder: reorder, hold: 20 * time.Millisecond, done: make(chan struct{})}
	go r.pump(front, true)
	go r.pump(back, false)
	return r, nil
}

// Addr is where the LAC sends to.
func (r *relay) Addr() netip.AddrPort {
	return r.front.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (r *relay) Close() {
	close(r.done)
	r.front.Close()
	r.back.Close()
}

func (r *relay) stats() *RelayStats {
	return &RelayStats{LossPercent: r.loss * 100, ReorderPercent: r.reorder * 100,
		Forwarded: r.forwarded.Load(), Dropped: r.dropped.Load(), Reordered: r.reordered.Load()}
}

// pump forwards one direction. A held datagram goes out right after the
// next one, or after r.hold when none follows.
func (r *relay) pump(in *net.UDPConn, fromLAC bool) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	buf := make([]byte, 65536)
	var held []byte
	var heldTo netip.AddrPort
	for {
		if held != nil {
			in.SetReadDeadline(time.Now().Add(r.hold))
		} else {
			in.SetReadDeadline(time.Time{})
		}
		n, from, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() && held != nil {
				r.send(fromLAC, held, heldTo)
				held = nil
				continue
			}
			select {
			case <-r.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return
		}
		var to netip.AddrPort
		if fromLAC {
			r.mu.Lock()
			r.lac = from
			r.mu.Unlock()
			to = r.lns
		} else {
			r.mu.Lock()
			to = r.lac
			r.mu.Unlock()
			if !to.IsValid() {
				continue
			}
		}
		if rng.Float64() < r.loss {
			r.dropped.Add(1)
			continue
		}
		pkt := append([]byte(nil), buf[:n]...)
		if held == nil && rng.Float64() < r.reorder {
			held, heldTo = pkt, to
			r.reordered.Add(1)
			continue
		}
		r.send(fromLAC, pkt, to)
		if held != nil {
			r.send(fromLAC, held, heldTo)
			held = nil
		}
	}
}

func (r *relay) send(fromLAC bool, pkt []byte, to netip.AddrPort) {
	out := r.back
	if !fromLAC {
		out = r.front
	}
	if _, err := out.WriteToUDPAddrPort(pkt, to); err == nil {
		r.forwarded.Add(1)
	}
}
