package datapath

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// FrameBatch queues PPP control frames of many sessions and sends them
// with one sendmmsg per socket and batch, where SendFrame makes one
// sendmsg each: a control shard's timer wake-up that sends the LCP
// Echo-Requests of hundreds of sessions makes a few system calls. A
// FrameBatch belongs to one goroutine; its memory is reused from one
// Flush to the next.
type FrameBatch struct {
	e      *Engine
	buf    []byte // the queued datagrams, back to back
	frames []queuedFrame
	m      *mmsgState
}

type queuedFrame struct {
	ent        *entry
	start, end int // in buf
	payload    int // octets counted as sent (the frame less its protocol field)
}

// NewFrameBatch returns an empty batch sending through e.
func (e *Engine) NewFrameBatch() *FrameBatch {
	return &FrameBatch{e: e, m: newMmsgState(e.cfg.Batch, false)}
}

// Len is the number of frames queued.
func (b *FrameBatch) Len() int { return len(b.frames) }

// Add queues frame (PPP header included, as for SendFrame) for the
// session's peer. The L2TP header and sequence number are taken now, so
// frames go out in the order added.
func (b *FrameBatch) Add(key SessionKey, frame []byte) error {
	ent := b.e.sessions.get(key)
	if ent == nil {
		return fmt.Errorf("datapath: send frame: session %v not installed", key)
	}
	if len(frame) >= 2 && frame[0] == 0xff && frame[1] == 0x03 {
		frame = frame[2:]
	}
	if len(frame) < 2 {
		return fmt.Errorf("datapath: send frame: %d bytes", len(frame))
	}
	start := len(b.buf)
	b.buf = append(b.buf, ent.hdr[:ent.hlen]...)
	b.buf = append(b.buf, frame...)
	ent.putSeq(b.buf[start:])
	b.frames = append(b.frames, queuedFrame{ent: ent, start: start, end: len(b.buf), payload: len(frame) - 2})
	return nil
}

// Flush sends what is queued and empties the batch. It returns the
// number of frames that could not be sent; each is counted as a send
// drop on its session, as SendFrame counts it.
func (b *FrameBatch) Flush() (failed int) {
	for i := 0; i < len(b.frames); {
		// A run of frames through one socket.
		s := b.frames[i].ent.s.Socket
		j := i + 1
		for j < len(b.frames) && j-i < len(b.m.hdrs) && b.frames[j].ent.s.Socket == s {
			j++
		}
		failed += b.send(s, b.frames[i:j])
		i = j
	}
	clear(b.frames) // do not keep removed sessions reachable
	b.frames = b.frames[:0]
	b.buf = b.buf[:0]
	return failed
}

// send sends frames, all through s, at most one mmsgState's worth.
func (b *FrameBatch) send(s *Socket, frames []queuedFrame) (failed int) {
	for k := range frames {
		f := &frames[k]
		f.ent.ctr.tapped(true, b.buf[f.start:f.end], f.ent.s.Peer, f.ent.s.Local)
	}
	u, ok := s.io.(*udpIO)
	if !ok || s.ip {
		for k := range frames {
			f := &frames[k]
			b.done(f, s.io.writeOne(b.buf[f.start:f.end], f.ent.s.Peer, f.ent.s.Local) == nil, &failed)
		}
		return failed
	}
	m := b.m
	n := 0
	for k := range frames {
		f := &frames[k]
		h := &m.hdrs[n].Hdr
		if !u.fillName(&m.names[n], h, f.ent.s.Peer) {
			b.done(f, false, &failed)
			continue
		}
		m.iovs[n].Base = &b.buf[f.start]
		m.iovs[n].SetLen(f.end - f.start)
		h.Iov = &m.iovs[n]
		h.SetIovlen(1)
		l := putPktinfo(m.oob[n], f.ent.s.Local, u.v6)
		h.Control = nil
		if l > 0 {
			h.Control = &m.oob[n][0]
		}
		h.SetControllen(l)
		frames[n] = *f // the frames with a header, in header order
		n++
	}
	sent := u.sendFrames(m.hdrs[:n])
	for k := 0; k < sent; k++ {
		b.done(&frames[k], true, &failed)
	}
	for k := sent; k < n; k++ {
		// Refused in the batch: one more try on its own, which also
		// waits a bounded time for buffer space.
		f := &frames[k]
		b.done(f, u.writeOne(b.buf[f.start:f.end], f.ent.s.Peer, f.ent.s.Local) == nil, &failed)
	}
	clear(m.iovs[:n])
	return failed
}

func (b *FrameBatch) done(f *queuedFrame, ok bool, failed *int) {
	if !ok {
		b.e.drop(dropSend, f.ent)
		*failed++
		return
	}
	f.ent.ctr.txPackets.Add(1)
	f.ent.ctr.txBytes.Add(uint64(f.payload))
}

// sendFrames sends hdrs with sendmmsg without waiting and returns how
// many of the first ones the kernel took; it stops at the first refusal
// (the caller retries the rest one by one).
func (u *udpIO) sendFrames(hdrs []unix.Mmsghdr) (sent int) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.closed || len(hdrs) == 0 {
		return 0
	}
	for sent < len(hdrs) {
		n, errno := mmsgCall(unix.SYS_SENDMMSG, u.fd, hdrs[sent:])
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || n <= 0 {
			return sent
		}
		sent += n
	}
	return sent
}
