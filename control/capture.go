package control

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/l2tpd/l2tpd/datapath"
)

// Capture limits: a capture is for one subscriber's troubleshooting, not
// for recording a link.
const (
	MaxCapturePackets  = 100000
	MaxCaptureBytes    = 64 << 20
	MaxCaptureDuration = 10 * time.Minute
)

// CapturedPacket is one L2TP packet of a capture: a UDP payload, or for
// a session carried directly over IP (IP set, Peer's port 0) the IP
// payload, which starts at the Session ID (RFC 3931 §4.1.1.2).
type CapturedPacket struct {
	Time  time.Time      `json:"time"`
	Out   bool           `json:"out"` // sent by l2tpd
	IP    bool           `json:"ip,omitempty"`
	Peer  netip.AddrPort `json:"peer"`
	Local netip.Addr     `json:"local"`
	Data  []byte         `json:"data"`
}

// capture collects the packets of one session: its data packets from the
// datapath tap and its tunnel's control messages from the shard.
type capture struct {
	mu      sync.Mutex
	pkts    []CapturedPacket
	bytes   int
	max     int
	full    chan struct{}
	closed  bool
	dropped int
}

func (c *capture) add(out bool, pkt []byte, peer netip.AddrPort, local netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if len(c.pkts) >= c.max || c.bytes+len(pkt) > MaxCaptureBytes {
		c.dropped++
		return
	}
	// Over IP there is no port: the datapath and the shard give the
	// peer's as 0, which no UDP peer has.
	c.pkts = append(c.pkts, CapturedPacket{Time: time.Now(), Out: out, IP: peer.Port() == 0, Peer: peer, Local: local, Data: append([]byte(nil), pkt...)})
	c.bytes += len(pkt)
	if len(c.pkts) == c.max {
		c.closed = true
		close(c.full)
	}
}

// ErrCaptureBusy is returned when the session is already being captured.
var ErrCaptureBusy = errors.New("control: a capture of this session is already running")

// Capture records a session's packets, control and data, until count
// packets are in, d has passed or ctx is done, whichever comes first.
// While no capture runs, nothing is copied on the packet path.
func (s *Server) Capture(ctx context.Context, sessionID uint32, count int, d time.Duration) ([]CapturedPacket, error) {
	if count <= 0 || count > MaxCapturePackets {
		count = MaxCapturePackets
	}
	if d <= 0 || d > MaxCaptureDuration {
		d = MaxCaptureDuration
	}
	c := &capture{max: count, full: make(chan struct{})}
	var (
		found  bool
		owner  *shard
		tunID  uint32
		key    datapath.SessionKey
		busy   bool
		mu     sync.Mutex
		tapped bool
	)
	err := s.eachShard(ctx, func(sh *shard) {
		for id, e := range sh.tunnels {
			if e.t.Session(sessionID) == nil {
				continue
			}
			mu.Lock()
			defer mu.Unlock()
			if found {
				return
			}
			found, owner, tunID, key = true, sh, id, sessionKey(e.t, sessionID)
			if sh.captures[id] != nil {
				busy = true
				return
			}
			sh.captures[id] = c
			if s.eng != nil {
				tapped = s.eng.SetTap(key, c.add)
			}
			return
		}
	})
	if err != nil {
		return nil, err
	}
	static := false
	if !found {
		// A static session (RFC 3931 §3.1) has no tunnel on a shard and no
		// control messages: its data packets are all there is.
		key = datapath.SessionKey{Version: 3, Session: sessionID}
		found, busy = s.startStaticCapture(key, c)
		static = true
	}
	if !found {
		return nil, fmt.Errorf("%w: session %d", ErrNotFound, sessionID)
	}
	if busy {
		return nil, ErrCaptureBusy
	}
	_ = tapped // a session in setup has no datapath entry yet: control only
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-c.full:
	case <-timer.C:
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.eng != nil {
		s.eng.SetTap(key, nil)
	}
	if static {
		s.pw.mu.Lock()
		if s.pw.captures[sessionID] == c {
			delete(s.pw.captures, sessionID)
		}
		s.pw.mu.Unlock()
	}
	_ = s.eachShard(stopCtx, func(sh *shard) {
		if sh == owner && sh.captures[tunID] == c {
			delete(sh.captures, tunID)
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.pkts, nil
}

// startStaticCapture taps the static session key if there is one. It
// reports whether the session exists and whether it is already being
// captured.
func (s *Server) startStaticCapture(key datapath.SessionKey, c *capture) (found, busy bool) {
	s.pw.mu.Lock()
	defer s.pw.mu.Unlock()
	for k := range s.pw.statics {
		if k.id == key.Session {
			found = true
			break
		}
	}
	if !found {
		return false, false
	}
	if s.pw.captures[key.Session] != nil {
		return true, true
	}
	if s.pw.captures == nil {
		s.pw.captures = map[uint32]*capture{}
	}
	s.pw.captures[key.Session] = c
	if s.eng != nil {
		s.eng.SetTap(key, c.add)
	}
	return true, false
}
