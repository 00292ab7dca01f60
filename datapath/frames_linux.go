package datapath

import (
	"cmp"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FrameBatch queues PPP control frames of many sessions and sends them
// with one sendmmsg per socket and batch, where SendFrame makes one
// sendmsg each: a control shard's timer wake-up that sends the LCP
// Echo-Requests of hundreds of sessions makes a few system calls, and
// with UDP GSO the echoes of one tunnel's sessions travel the kernel's
// stack as one datagram. A
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
	ent, frame, err := b.e.frameEntry(key, frame)
	if err != nil {
		return err
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
	// Frames to one peer through one socket side by side, each session's
	// in the order added: the echoes of a tunnel's sessions, all of one
	// size, then leave as one UDP GSO datagram.
	slices.SortStableFunc(b.frames, compareFrames)
	for i := 0; i < len(b.frames); {
		// A run of frames through one socket.
		s := b.frames[i].ent.s.Socket
		j := i + 1
		for j < len(b.frames) && j-i < len(b.m.iovs) && b.frames[j].ent.s.Socket == s {
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

// compareFrames orders frames by socket, then peer and local address.
func compareFrames(x, y queuedFrame) int {
	if c := cmp.Compare(uintptr(unsafe.Pointer(x.ent.s.Socket)), uintptr(unsafe.Pointer(y.ent.s.Socket))); c != 0 {
		return c
	}
	if c := x.ent.s.Peer.Compare(y.ent.s.Peer); c != 0 {
		return c
	}
	return x.ent.s.Local.Compare(y.ent.s.Local)
}

// send sends frames, all through s, at most one mmsgState's worth.
// Consecutive frames to one peer from one address, all of one size but
// a shorter last one, share a GSO header when the socket has GSO.
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
	below, gso := int(u.gsoBelow.Load()), u.gsoOn()
	nh, ni := 0, 0 // headers and iovecs (frames kept) used
	segSize, total, open := 0, 0, false
	for k := range frames {
		f := frames[k]
		l := f.end - f.start
		if open && l <= segSize && m.segs[nh-1] < maxGSOSegments && total+l <= maxGSOBytes &&
			f.ent.s.Peer == frames[ni-1].ent.s.Peer && f.ent.s.Local == frames[ni-1].ent.s.Local {
			m.iovs[ni].Base = &b.buf[f.start]
			m.iovs[ni].SetLen(l)
			frames[ni] = f
			ni++
			m.segs[nh-1]++
			total += l
			open = l == segSize
			continue
		}
		h := &m.hdrs[nh].Hdr
		if !u.fillName(&m.names[nh], h, f.ent.s.Peer) {
			b.done(&f, false, &failed)
			open = false
			continue
		}
		m.iovs[ni].Base = &b.buf[f.start]
		m.iovs[ni].SetLen(l)
		h.Iov = &m.iovs[ni]
		m.first[nh], m.segs[nh] = ni, 1
		m.pktLen[nh] = putPktinfo(m.oob[nh], f.ent.s.Local, u.v6)
		frames[ni] = f // the frames kept, in iovec order
		ni++
		nh++
		segSize, total, open = l, l, gso && l < below
	}
	m.finishHeaders(nh)
	for i := 0; i < nh; {
		sent, errno := u.sendFrames(m.hdrs[i:nh])
		for j := i; j < i+sent; j++ {
			for _, f := range frames[m.first[j] : m.first[j]+m.segs[j]] {
				b.done(&f, true, &failed)
			}
			if m.segs[j] > 1 {
				u.off.gsoSent.Add(1)
				u.off.gsoSegments.Add(uint64(m.segs[j]))
			}
		}
		i += sent
		if i == nh {
			break
		}
		// Refused: header i's frames one by one, which also waits a
		// bounded time for buffer space; then the batch goes on.
		if m.segs[i] > 1 {
			u.gsoRefused(errno, int(m.iovs[m.first[i]].Len))
		}
		for _, f := range frames[m.first[i] : m.first[i]+m.segs[i]] {
			b.done(&f, u.writeOne(b.buf[f.start:f.end], f.ent.s.Peer, f.ent.s.Local) == nil, &failed)
		}
		i++
	}
	clear(m.iovs[:ni])
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
// many of the first ones the kernel took; it stops at the first refusal,
// returning its error (the caller retries that header's frames one by
// one).
func (u *udpIO) sendFrames(hdrs []unix.Mmsghdr) (sent int, errno unix.Errno) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	if u.closed {
		return 0, unix.EBADF
	}
	for sent < len(hdrs) {
		var n int
		n, errno = mmsgCall(unix.SYS_SENDMMSG, u.fd, hdrs[sent:])
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || n <= 0 {
			return sent, errno
		}
		sent += n
	}
	return sent, 0
}
