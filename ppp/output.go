package ppp

// Output collects what one call into a Session produced: frames to send
// to the peer, events for the owner and IP packets for the data path.
// The owner calls Reset before reusing it, so a steady state allocates
// nothing.
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

func (l *link) event(e Event) {
	if l.out != nil {
		l.out.Events = append(l.out.Events, e)
	}
}
