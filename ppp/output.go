package ppp

import (
	"encoding/binary"
	"sync"
)

// Output collects what one call into a Session produced: frames to send
// to the peer, events for the owner and IP packets for the data path.
// The owner calls Reset before reusing it, so a steady state allocates
// nothing. A Session uses the Output only during the call it is passed
// to and keeps no reference to it, so one Output can serve many
// sessions in turn.
type Output struct {
	buf    []byte
	ends   []int
	Events []Event
	// Data holds the IP packets (protocol 0x0021 or 0x0057) received
	// while their NCP is opened, as views into the input frame.
	Data []Datagram
}

// Datagram is a network-layer packet of a PPP frame.
type Datagram struct {
	Protocol Protocol
	Packet   []byte
}

// Reset empties o and keeps its memory.
func (o *Output) Reset() {
	o.buf = o.buf[:0]
	o.ends = o.ends[:0]
	clear(o.Events)
	o.Events = o.Events[:0]
	o.Data = o.Data[:0]
}

// NumFrames returns the number of frames to send.
func (o *Output) NumFrames() int { return len(o.ends) }

// Frame returns frame i, PPP header included (address/control field and
// protocol); the caller prepends the L2TP header.
func (o *Output) Frame(i int) []byte {
	start := 0
	if i > 0 {
		start = o.ends[i-1]
	}
	return o.buf[start:o.ends[i]:o.ends[i]]
}

// link is the sending side shared by the machines of one Session.
type link struct {
	out  *Output
	acfc bool   // peer accepted Address-and-Control-Field-Compression
	pfc  bool   // peer accepted Protocol-Field-Compression
	mru  uint16 // largest information field the peer accepts
}

func (l *link) maxInfo() int {
	if l.mru == 0 {
		return 1500
	}
	return int(l.mru)
}

// send appends a control packet framed for the peer. LCP always goes
// uncompressed (RFC 1661 §6.5, §6.6).
func (l *link) send(p Protocol, code, id uint8, data []byte) {
	if l.out == nil {
		return
	}
	o := l.out
	c := p != ProtoLCP
	o.buf = AppendFrameHeader(o.buf, p, c && l.acfc, c && l.pfc)
	o.buf = AppendPacket(o.buf, code, id, data)
	o.ends = append(o.ends, len(o.buf))
}

// begin appends the frame and packet headers of a control packet for
// the caller to append the data to; finish completes it. Packets made of
// several parts are built in the Output that way, with no buffer kept
// in the Session. With no Output both return nothing.
func (l *link) begin(p Protocol, code, id uint8) []byte {
	if l.out == nil {
		return nil
	}
	c := p != ProtoLCP
	b := AppendFrameHeader(l.out.buf, p, c && l.acfc, c && l.pfc)
	return append(b, code, id, 0, 0)
}

// finish patches the length of the packet of protocol p begun with
// begin and ends the frame.
func (l *link) finish(p Protocol, b []byte) {
	o := l.out
	if o == nil {
		return
	}
	// The frame begins where the previous one ended; its header is the
	// one begin wrote.
	c := p != ProtoLCP
	start := len(o.buf) + 2
	if c && l.acfc {
		start = len(o.buf)
	}
	if c && l.pfc && p < 0x100 {
		start++
	} else {
		start += 2
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	o.buf = b
	o.ends = append(o.ends, len(b))
}

func (l *link) event(e Event) {
	if l.out != nil {
		l.out.Events = append(l.out.Events, e)
	}
}

// scratchPool lends the buffers a call needs only while it runs (the
// reply to a Configure-Request): an idle Session keeps none.
var scratchPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 256)
	return &b
}}

// maxScratch bounds the buffers kept in the pool: a reply holds at most
// one information field.
const maxScratch = 4096

func getScratch() *[]byte {
	b := scratchPool.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

// putScratch returns b to the pool, or the larger buffer used grew into.
func putScratch(b *[]byte, used []byte) {
	if cap(used) > cap(*b) && cap(used) <= maxScratch {
		*b = used[:0]
	}
	scratchPool.Put(b)
}
