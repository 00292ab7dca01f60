package reliable

import (
	"encoding/binary"
	"time"
)

// Config shapes one control channel. Zero values take the RFC defaults.
type Config struct {
	NsNrOffset        int           // where Ns (then Nr) sit in an encoded control message
	ZLB               []byte        // an encoded ZLB control message for this tunnel (header only); Ns/Nr patched at NsNrOffset
	ReceiveWindow     uint16        // our advertised RWS: how many out-of-order messages we hold (0 → 4)
	PeerWindow        uint16        // peer's RWS from its SCCRQ/SCCRP (0 → 4, RFC 2661 §4.4.3 default)
	RetransmitInitial time.Duration // first retransmission timeout (0 → 1s)
	RetransmitCap     time.Duration // backoff cap (0 → 8s; RFC: at least 8s)
	MaxRetransmits    int           // give up after this many retransmissions of one message (0 → 5)
	AckDelay          time.Duration // how long to wait for a piggyback before sending a ZLB (0 → RetransmitInitial/4)

	// Seal, when set, runs on every packet Poll returns, after Ns/Nr are
	// patched: the L2TPv3 Message Digest covers the header (RFC 3931
	// §5.4.1), so it must be computed again for each transmission. It
	// must not keep pkt or change its length.
	Seal func(pkt []byte)
}

// RecvResult tells the caller what to do with a received control message.
type RecvResult uint8

const (
	Deliver     RecvResult = iota // in order: the caller processes this message now (then calls Next until false)
	Held                          // out of order within our window: copied and held, released later by Next
	Duplicate                     // already received: an ack is scheduled at once, caller ignores the message
	OutOfWindow                   // too far ahead: dropped
	AckOnly                       // a ZLB (or v3 ACK): only Nr processed
)

func (r RecvResult) String() string {
	switch r {
	case Deliver:
		return "Deliver"
	case Held:
		return "Held"
	case Duplicate:
		return "Duplicate"
	case OutOfWindow:
		return "OutOfWindow"
	case AckOnly:
		return "AckOnly"
	}
	return "RecvResult(" + itoa(int(r)) + ")"
}

// Stats are the channel's counters, plus its current congestion state.
type Stats struct {
	Sent        uint64 // first transmissions of queued messages
	Retransmits uint64
	Received    uint64 // messages released to the caller in order (Deliver and Next)
	Duplicates  uint64
	OutOfOrder  uint64 // messages held for later in-order release
	OutOfWindow uint64
	ZLBSent     uint64
	ZLBReceived uint64
	CWND        uint16
	SSThresh    uint16
	BadNr       uint64 // acknowledgements of messages we have not sent, ignored
	Acked       uint64 // our messages acknowledged by the peer
	// RTT is the last round trip measured on a message acknowledged
	// without retransmission (Karn's rule); SRTT its smoothed average
	// (7/8 old + 1/8 new). Both zero until the first sample.
	RTT, SRTT time.Duration
}

// entry is one message on the send queue: unsent, or sent and waiting for
// its acknowledgement.
type entry struct {
	buf     []byte
	ns      uint16
	retries int
	rto     time.Duration
	due     time.Time
}

// slot holds one out-of-order message until the gap before it fills.
type slot struct {
	buf  []byte
	full bool
}

// Channel is the reliable delivery state of one control connection
// (RFC 2661 §5.8, RFC 3931 §4.2). It is not safe for concurrent use: the
// tunnel's owner drives it.
type Channel struct {
	off      int
	zlb      []byte
	rws      uint16
	peer     uint16
	rtoInit  time.Duration
	rtoCap   time.Duration
	maxRetx  int
	ackDelay time.Duration
	seal     func([]byte)

	// Send side. The queue is a ring whose first inflight entries have been
	// transmitted; una is the Ns of the oldest of them.
	q        []entry
	qHead    int
	qLen     int
	inflight int
	una      uint16

	// Congestion state (RFC 2661 Appendix A).
	cwnd       uint16
	ssthresh   uint16
	caAcks     uint16
	lossSeen   bool
	recovering bool
	recover    uint16 // first Ns sent after the last window cut
	failed     bool

	// Receive side. held is a ring of rws slots: offset d from rcvNxt lives
	// at (heldHead+d) % rws.
	rcvNxt   uint16
	held     []slot
	heldHead int
	heldLen  int
	ackOwed  bool
	ackDue   time.Time

	lastHeard time.Time
	lastNow   time.Time
	stats     Stats
}

// New returns a channel with Ns and Nr at 0, CWND 1 and SSTHRESH at the
// peer's window (RFC 2661 Appendix A).
func New(cfg Config) *Channel {
	c := &Channel{
		off:      cfg.NsNrOffset,
		rws:      clampWindow(cfg.ReceiveWindow),
		peer:     clampWindow(cfg.PeerWindow),
		rtoInit:  cfg.RetransmitInitial,
		rtoCap:   cfg.RetransmitCap,
		maxRetx:  cfg.MaxRetransmits,
		ackDelay: cfg.AckDelay,
		seal:     cfg.Seal,
	}
	if c.off < 0 {
		panic("reliable: negative NsNrOffset")
	}
	if c.rtoInit <= 0 {
		c.rtoInit = time.Second
	}
	if c.rtoCap <= 0 {
		c.rtoCap = 8 * time.Second
	}
	if c.rtoCap < c.rtoInit {
		c.rtoCap = c.rtoInit
	}
	if c.maxRetx <= 0 {
		c.maxRetx = 5
	}
	if c.ackDelay <= 0 {
		c.ackDelay = c.rtoInit / 4
	}
	c.SetZLB(cfg.ZLB)
	c.cwnd = 1
	c.ssthresh = c.peer
	c.held = make([]slot, c.rws)
	c.q = make([]entry, 4)
	return c
}

// SetPeerWindow applies the RWS learnt from the peer's SCCRQ/SCCRP. Until
// the first retransmission SSTHRESH follows it; CWND never exceeds it.
func (c *Channel) SetPeerWindow(n uint16) {
	c.peer = clampWindow(n)
	if !c.lossSeen || c.ssthresh > c.peer {
		c.ssthresh = c.peer
	}
	if c.cwnd > c.peer {
		c.cwnd = c.peer
	}
}

// SetZLB replaces the ZLB template (the peer's tunnel ID becomes known
// after SCCRQ/SCCRP). The channel keeps its own copy. Until a template
// long enough to hold Ns and Nr is set, owed acknowledgements can only be
// piggybacked.
func (c *Channel) SetZLB(zlb []byte) {
	c.zlb = append(c.zlb[:0], zlb...)
}

// Send queues an encoded control message; the channel copies pkt, assigns
// the next Ns and patches Ns/Nr when it transmits. pkt must hold Ns and Nr
// at NsNrOffset. After Failed, Send drops the message: the tunnel is gone.
func (c *Channel) Send(now time.Time, pkt []byte) {
	if len(pkt) < c.off+4 {
		panic("reliable: control message shorter than its Ns/Nr fields")
	}
	c.touch(now)
	if c.failed {
		return
	}
	if c.qLen == len(c.q) {
		c.grow()
	}
	e := c.at(c.qLen)
	e.buf = append(e.buf[:0], pkt...)
	e.ns = c.una + uint16(c.qLen)
	e.retries = 0
	e.rto = 0
	e.due = time.Time{}
	c.qLen++
}

// grow doubles the send ring, keeping entry order and reusing nothing:
// the old buffers move with their entries.
func (c *Channel) grow() {
	q := make([]entry, 2*len(c.q))
	for i := 0; i < c.qLen; i++ {
		q[i] = *c.at(i)
	}
	c.q = q
	c.qHead = 0
}

func (c *Channel) at(i int) *entry {
	return &c.q[(c.qHead+i)&(len(c.q)-1)]
}

// Recv handles an incoming control message's Ns/Nr (zlb: no AVPs). Nr
// always acknowledges our sent messages, whatever happens to the message
// itself, when it is sane: an Nr beyond the last Ns we sent plus one is
// ignored and counted (RFC 3931 §4.2). pkt is only copied when Held.
func (c *Channel) Recv(now time.Time, ns, nr uint16, zlb bool, pkt []byte) RecvResult {
	c.touch(now)
	sane := c.ack(now, nr)
	if zlb {
		// RFC 2661 §5.8: a ZLB takes no sequence slot, so its Ns does not
		// move our Nr.
		c.stats.ZLBReceived++
		c.heard(now, sane)
		return AckOnly
	}
	d := ns - c.rcvNxt
	switch {
	case d >= 32768:
		// RFC 2661 §5.8: Ns in the 32768 values before Nr is a duplicate,
		// and must be acknowledged: our earlier ack was probably lost.
		return c.duplicate(now, sane)
	case d >= c.rws:
		c.stats.OutOfWindow++
		return OutOfWindow
	}
	s := c.slot(d)
	if s.full {
		return c.duplicate(now, sane)
	}
	c.heard(now, sane)
	if d == 0 {
		c.advance(now)
		return Deliver
	}
	s.buf = append(s.buf[:0], pkt...)
	s.full = true
	c.heldLen++
	c.stats.OutOfOrder++
	return Held
}

func (c *Channel) duplicate(now time.Time, sane bool) RecvResult {
	c.stats.Duplicates++
	c.heard(now, sane)
	if !c.ackOwed || now.Before(c.ackDue) {
		c.ackOwed = true
		c.ackDue = now
	}
	return Duplicate
}

func (c *Channel) heard(now time.Time, sane bool) {
	if sane {
		c.lastHeard = now
	}
}

func (c *Channel) slot(d uint16) *slot {
	return &c.held[(c.heldHead+int(d))%len(c.held)]
}

// advance moves Nr past a message released to the caller and owes the
// peer an acknowledgement, piggybacked or by ZLB after AckDelay.
func (c *Channel) advance(now time.Time) {
	c.rcvNxt++
	c.heldHead = (c.heldHead + 1) % len(c.held)
	c.stats.Received++
	if !c.ackOwed {
		c.ackOwed = true
		c.ackDue = now.Add(c.ackDelay)
	}
}

// ack applies a received Nr: every sent message with Ns < Nr leaves the
// queue (RFC 2661 §5.8). It reports whether Nr was sane.
func (c *Channel) ack(now time.Time, nr uint16) bool {
	k := int(nr - c.una)
	if k == 0 {
		return true
	}
	if k > c.inflight {
		if SeqLess(nr, c.una) {
			return true // an old acknowledgement overtaken by a newer one
		}
		c.stats.BadNr++
		return false
	}
	for i := 0; i < k; i++ {
		if e := &c.q[c.qHead]; e.retries == 0 && !e.due.IsZero() {
			c.sampleRTT(now.Sub(e.due.Add(-e.rto)))
		}
		c.qHead = (c.qHead + 1) & (len(c.q) - 1)
	}
	c.qLen -= k
	c.inflight -= k
	c.una = nr
	c.stats.Acked += uint64(k)
	if c.recovering && !SeqLess(c.una, c.recover) {
		c.recovering = false
	}
	// RFC 2661 Appendix A: one step per new ACK, exponential below
	// SSTHRESH, then one packet per CWND ACKs; never above the peer's RWS.
	if c.cwnd < c.ssthresh {
		c.cwnd++
	} else {
		c.caAcks++
		if c.caAcks >= c.cwnd {
			c.caAcks = 0
			c.cwnd++
		}
	}
	if c.cwnd > c.peer {
		c.cwnd = c.peer
	}
	return true
}

func (c *Channel) sampleRTT(d time.Duration) {
	if d < 0 {
		return
	}
	c.stats.RTT = d
	if c.stats.SRTT == 0 {
		c.stats.SRTT = d
	} else {
		c.stats.SRTT += (d - c.stats.SRTT) / 8
	}
}

// Next returns the next held message that is now in order, if any (after
// the caller processed a Deliver). The returned slice is valid until the
// next call into the channel.
func (c *Channel) Next(now time.Time) ([]byte, bool) {
	c.touch(now)
	s := c.slot(0)
	if !s.full {
		return nil, false
	}
	s.full = false
	c.heldLen--
	c.advance(now)
	return s.buf, true
}

func (c *Channel) window() int {
	w := c.cwnd
	if c.peer < w {
		w = c.peer
	}
	return int(w)
}

// Poll appends to out the packets to transmit now: retransmissions that
// are due, new messages the send window (min(peer RWS, CWND)) allows, and
// a ZLB when an ack is owed and no message carried it within AckDelay.
// Each packet has the current Ns/Nr patched in. The slices are owned by
// the channel and valid until the next call.
func (c *Channel) Poll(now time.Time, out [][]byte) [][]byte {
	c.touch(now)
	if c.failed {
		return out
	}
	sent := false
	// Only messages inside the window are retransmitted: after a cut to
	// CWND 1 the oldest goes alone, and the rest follow as acks reopen
	// the window.
	for i := 0; i < c.inflight && i < c.window(); i++ {
		e := c.at(i)
		if now.Before(e.due) {
			continue
		}
		if e.retries >= c.maxRetx {
			// RFC 2661 §5.8: no response after several retransmissions,
			// the tunnel and its sessions must be cleared.
			c.failed = true
			c.ackOwed = false
			return out
		}
		// RFC 2661 Appendix A: a retransmission halves the window into
		// SSTHRESH and restarts slow start. Messages already in flight
		// when the window was cut belong to the same loss; a message that
		// times out again is a new one.
		if !c.recovering || e.retries > 0 {
			c.cut()
		}
		e.retries++
		// RFC 2661 §5.8: exponential backoff, capped.
		e.rto *= 2
		if e.rto > c.rtoCap {
			e.rto = c.rtoCap
		}
		e.due = now.Add(e.rto)
		out = append(out, c.patch(e.buf, e.ns))
		c.stats.Retransmits++
		sent = true
	}
	for c.inflight < c.qLen && c.inflight < c.window() {
		e := c.at(c.inflight)
		e.rto = c.rtoInit
		e.due = now.Add(e.rto)
		c.inflight++
		out = append(out, c.patch(e.buf, e.ns))
		c.stats.Sent++
		sent = true
	}
	switch {
	case sent:
		// Every message carries the current Nr: the owed ack is
		// piggybacked.
		c.ackOwed = false
	case c.ackOwed && !now.Before(c.ackDue):
		c.ackOwed = false
		if len(c.zlb) >= c.off+4 {
			// RFC 2661 §5.8: a ZLB takes no Ns slot; it carries the Ns of
			// the next new message.
			out = append(out, c.patch(c.zlb, c.una+uint16(c.inflight)))
			c.stats.ZLBSent++
		}
	}
	return out
}

// Flush is Poll without waiting for a piggyback: an owed ack leaves at
// once, as a ZLB if no message carries it. A tunnel that is about to be
// forgotten uses it so the peer's last message is acknowledged.
func (c *Channel) Flush(now time.Time, out [][]byte) [][]byte {
	if c.ackOwed && now.Before(c.ackDue) {
		c.ackDue = now
	}
	return c.Poll(now, out)
}

// AckOwed reports that a received message has not been acknowledged yet.
func (c *Channel) AckOwed() bool { return c.ackOwed }

func (c *Channel) cut() {
	c.ssthresh = c.cwnd / 2
	if c.ssthresh < 1 {
		c.ssthresh = 1
	}
	c.cwnd = 1
	c.caAcks = 0
	c.lossSeen = true
	c.recovering = true
	c.recover = c.una + uint16(c.inflight)
}

func (c *Channel) patch(b []byte, ns uint16) []byte {
	binary.BigEndian.PutUint16(b[c.off:], ns)
	binary.BigEndian.PutUint16(b[c.off+2:], c.rcvNxt)
	if c.seal != nil {
		c.seal(b)
	}
	return b
}

func (c *Channel) touch(now time.Time) {
	if now.After(c.lastNow) {
		c.lastNow = now
	}
}

// Deadline is the next time Poll has something to do (zero time if
// nothing). It may lie in the past: Poll is due at once.
func (c *Channel) Deadline() time.Time {
	if c.failed {
		return time.Time{}
	}
	var d time.Time
	consider := func(t time.Time) {
		if d.IsZero() || t.Before(d) {
			d = t
		}
	}
	if c.ackOwed {
		consider(c.ackDue)
	}
	w := c.window()
	for i := 0; i < c.inflight && i < w; i++ {
		consider(c.at(i).due)
	}
	if c.inflight < c.qLen && c.inflight < w {
		consider(c.lastNow)
	}
	return d
}

// Failed reports that a message went unacknowledged after MaxRetransmits:
// the caller tears the tunnel down. It stays true.
func (c *Channel) Failed() bool { return c.failed }

// Idle reports that nothing is queued or unacknowledged.
func (c *Channel) Idle() bool { return c.qLen == 0 }

// QueueLen is how many messages are queued or unacknowledged; bounding it
// is the caller's job.
func (c *Channel) QueueLen() int { return c.qLen }

// InFlight is how many sent messages wait for their acknowledgement.
func (c *Channel) InFlight() int { return c.inflight }

// HeldLen is how many received messages wait for in-order release: at
// most ReceiveWindow-1 when the caller drains Next after each Deliver, and
// never more than ReceiveWindow.
func (c *Channel) HeldLen() int { return c.heldLen }

// NextNs is the Ns the next message given to Send will carry.
func (c *Channel) NextNs() uint16 { return c.una + uint16(c.qLen) }

// NextNr is the Ns we expect next from the peer: the Nr we send.
func (c *Channel) NextNr() uint16 { return c.rcvNxt }

// LastHeard is when a valid message (incl. ZLB) last arrived: one with a
// sane Nr that was not outside our window. The caller's Hello timer
// (RFC 2661 §5.5) starts from it.
func (c *Channel) LastHeard() time.Time { return c.lastHeard }

// Stats returns the counters and the current CWND and SSTHRESH.
func (c *Channel) Stats() Stats {
	s := c.stats
	s.CWND = c.cwnd
	s.SSThresh = c.ssthresh
	return s
}

// GiveUpAfter is how long an unacknowledged message is retransmitted
// before the channel fails: the "full retransmission interval" for which
// RFC 2661 §5.8 and RFC 3931 §4.2 keep a closing tunnel's state after its
// final message (1+2+4+8+8+8 = 31s with the defaults).
func (c *Channel) GiveUpAfter() time.Duration {
	var total time.Duration
	rto := c.rtoInit
	for i := 0; i <= c.maxRetx; i++ {
		total += rto
		rto *= 2
		if rto > c.rtoCap {
			rto = c.rtoCap
		}
	}
	return total
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
