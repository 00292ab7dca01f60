// Package datapathtest holds test doubles for code that drives the
// datapath: a Recorder that implements datapath.Upcall and keeps copies
// of what it is handed.
package datapathtest

import (
	"net/netip"
	"sync"

	"github.com/l2tpd/l2tpd/datapath"
)

// Control is one control message handed up.
type Control struct {
	Socket *datapath.Socket
	Pkt    []byte
	From   netip.AddrPort
	To     netip.Addr
}

// Frame is one PPP frame handed up.
type Frame struct {
	Key   datapath.SessionKey
	Frame []byte
}

// Recorder implements datapath.Upcall. It is safe for concurrent use;
// the optional channels, when set before use, get each upcall as well
// (sends block, so size them for the test).
type Recorder struct {
	ControlCh chan Control
	FrameCh   chan Frame

	mu       sync.Mutex
	controls []Control
	frames   []Frame
}

var _ datapath.Upcall = (*Recorder)(nil)

// Control records a copy of pkt.
func (r *Recorder) Control(s *datapath.Socket, pkt []byte, from netip.AddrPort, to netip.Addr) {
	c := Control{Socket: s, Pkt: append([]byte(nil), pkt...), From: from, To: to}
	r.mu.Lock()
	r.controls = append(r.controls, c)
	r.mu.Unlock()
	if r.ControlCh != nil {
		r.ControlCh <- c
	}
}

// Frame records a copy of frame.
func (r *Recorder) Frame(key datapath.SessionKey, frame []byte) {
	f := Frame{Key: key, Frame: append([]byte(nil), frame...)}
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.mu.Unlock()
	if r.FrameCh != nil {
		r.FrameCh <- f
	}
}

// Controls returns the control messages recorded so far.
func (r *Recorder) Controls() []Control {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Control(nil), r.controls...)
}

// Frames returns the frames recorded so far.
func (r *Recorder) Frames() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Frame(nil), r.frames...)
}
