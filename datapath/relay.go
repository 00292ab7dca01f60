package datapath

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
