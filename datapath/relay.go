package datapath

import "fmt"

// Relay receives every PPP frame of a session (address and control
// field as received) on the socket reader goroutine, instead of the TUN
// or Upcall.Frame: a LAC passes its subscribers' frames straight to the
// access side this way, without a trip through the control plane. It
// must not block or keep frame after it returns.
type Relay func(frame []byte)

// SetRelay starts (r non-nil) or stops (nil) relaying a session's PPP
// frames to r. It reports false when the session is not installed. The
// relay stays across a reinstall of the session (new addresses).
func (e *Engine) SetRelay(key SessionKey, r Relay) bool {
	ent := e.sessions.get(key)
	if ent == nil {
		return false
	}
	if r == nil {
		ent.ctr.relay.Store(nil)
	} else {
		ent.ctr.relay.Store(&r)
	}
	return true
}

// relayed hands frame to the session's relay, if it has one, counting it
// as received.
func (e *Engine) relayed(ent *entry, frame []byte) bool {
	r := ent.ctr.relay.Load()
	if r == nil {
		return false
	}
	ent.ctr.rxPackets.Add(1)
	ent.ctr.rxBytes.Add(uint64(len(frame)))
	(*r)(frame)
	return true
}

// SendFrameHeadroom sends the PPP frame b[start:] (protocol field first)
// on a session like SendFrame, but writes the L2TP header and the FF 03
// address and control field into b[:start] when they fit, so the frame
// is not copied: a relay hands over the buffer it read the frame into
// (a PPPoE frame has 20 octets of headers in front of its PPP frame).
// When they do not fit (a v3 session with a long cookie) the frame is
// copied as SendFrame does.
func (e *Engine) SendFrameHeadroom(key SessionKey, b []byte, start int) error {
	ent := e.sessions.get(key)
	if ent == nil {
		return fmt.Errorf("datapath: send frame: session %v not installed", key)
	}
	frame := b[start:]
	if start < int(ent.hlen) || len(frame) < 2 || frame[0] == 0xff {
		return e.SendFrame(key, frame)
	}
	msg := b[start-int(ent.hlen):]
	copy(msg, ent.hdr[:ent.hlen])
	ent.putSeq(msg)
	ent.ctr.tapped(true, msg, ent.s.Peer, ent.s.Local)
	if err := ent.s.Socket.io.writeOne(msg, ent.s.Peer, ent.s.Local); err != nil {
		e.drop(dropSend, ent)
		return fmt.Errorf("datapath: send frame to %v: %w", ent.s.Peer, err)
	}
	ent.ctr.txPackets.Add(1)
	ent.ctr.txBytes.Add(uint64(len(frame) - 2)) // as SendFrame: the protocol field is not counted
	return nil
}
