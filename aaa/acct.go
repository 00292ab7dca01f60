package aaa

import (
	"errors"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3162"
	"layeh.com/radius/rfc4818"

	"github.com/l2tpd/l2tpd/ppp"
)

// AcctStatus is Acct-Status-Type (RFC 2866 §5.1).
type AcctStatus uint32

const (
	AcctStart   AcctStatus = 1
	AcctStop    AcctStatus = 2
	AcctInterim AcctStatus = 3 // Interim-Update (RFC 2869 §2.1)
)

func (s AcctStatus) String() string {
	switch s {
	case AcctStart:
		return "Start"
	case AcctStop:
		return "Stop"
	case AcctInterim:
		return "Interim-Update"
	}
	return "AcctStatus(" + strconv.Itoa(int(s)) + ")"
}

// TerminateCause is Acct-Terminate-Cause (RFC 2866 §5.10).
type TerminateCause uint32

const (
	CauseNone               TerminateCause = 0 // not sent
	CauseUserRequest        TerminateCause = 1
	CauseLostCarrier        TerminateCause = 2
	CauseLostService        TerminateCause = 3
	CauseIdleTimeout        TerminateCause = 4
	CauseSessionTimeout     TerminateCause = 5
	CauseAdminReset         TerminateCause = 6
	CauseAdminReboot        TerminateCause = 7
	CausePortError          TerminateCause = 8
	CauseNASError           TerminateCause = 9
	CauseNASRequest         TerminateCause = 10
	CauseNASReboot          TerminateCause = 11
	CausePortUnneeded       TerminateCause = 12
	CausePortPreempted      TerminateCause = 13
	CausePortSuspended      TerminateCause = 14
	CauseServiceUnavailable TerminateCause = 15
	CauseCallback           TerminateCause = 16
	CauseUserError          TerminateCause = 17
	CauseHostRequest        TerminateCause = 18
)

var causeNames = [...]string{"None", "User-Request", "Lost-Carrier", "Lost-Service", "Idle-Timeout", "Session-Timeout", "Admin-Reset", "Admin-Reboot", "Port-Error", "NAS-Error", "NAS-Request", "NAS-Reboot", "Port-Unneeded", "Port-Preempted", "Port-Suspended", "Service-Unavailable", "Callback", "User-Error", "Host-Request"}

func (c TerminateCause) String() string {
	if int(c) < len(causeNames) {
		return causeNames[c]
	}
	return "TerminateCause(" + strconv.Itoa(int(c)) + ")"
}

// CauseFromPPP maps why the PPP link went down.
func CauseFromPPP(r ppp.DownReason) TerminateCause {
	switch r {
	case ppp.ReasonAdminClose:
		return CauseAdminReset
	case ppp.ReasonPeerTerminate:
		return CauseUserRequest
	case ppp.ReasonEchoTimeout:
		return CauseLostCarrier
	case ppp.ReasonNegotiation, ppp.ReasonProtocolRejected, ppp.ReasonNetworkFailed:
		return CauseServiceUnavailable
	case ppp.ReasonLoopback:
		return CausePortError
	case ppp.ReasonNoAuthProtocol, ppp.ReasonAuthFailed, ppp.ReasonAuthTimeout:
		return CauseUserError
	}
	return CauseNone
}

// CauseFromCDN maps the Result Code of a CDN (RFC 2661 §4.4.2) from the
// LAC.
func CauseFromCDN(result uint16) TerminateCause {
	switch result {
	case 1, 7, 10: // lost carrier, no carrier detected, call timed out
		return CauseLostCarrier
	case 2: // general error, see Error Code
		return CauseNASError
	case 3: // administrative reason
		return CauseAdminReset
	case 4, 5: // lack of facilities
		return CausePortPreempted
	case 6, 8, 9, 11: // invalid destination, busy, no dial tone, no framing
		return CauseServiceUnavailable
	}
	return CauseNASError
}

// CauseFromDisconnect maps a PPP Disconnect Cause Code (RFC 3145 §3,
// L2TP AVP 46) with its direction (1: peer, 2: local).
func CauseFromDisconnect(code uint16, direction uint8) TerminateCause {
	switch {
	case code == 1:
		return CauseAdminReset
	case code == 3 && direction == 2:
		return CauseNASRequest
	case code == 3:
		return CauseUserRequest
	case code == 8:
		return CauseLostCarrier
	case code == 5 || code == 6 || code == 7:
		return CausePortError
	case code >= 13 && code <= 16: // authentication errors (§3.3)
		return CauseUserError
	case code >= 17: // network control protocol errors (§3.4)
		return CauseServiceUnavailable
	case code == 0:
		return CauseNone
	}
	return CauseServiceUnavailable
}

// AcctRecord is one Accounting-Request to deliver.
type AcctRecord struct {
	Session
	Status AcctStatus
	// Time is when the event happened; Acct-Delay-Time counts from it
	// (RFC 2866 §5.2).
	Time                time.Time
	FramedIPAddress     netip.Addr
	FramedIPv6Prefix    netip.Prefix
	DelegatedIPv6Prefix netip.Prefix
	// Counters are 64 bits; the high 32 go in the Gigawords
	// attributes (RFC 2869 §5.1, §5.2).
	InputOctets, OutputOctets   uint64
	InputPackets, OutputPackets uint64
	SessionTime                 time.Duration
	TerminateCause              TerminateCause // Stop only
	Class                       [][]byte       // from the Access-Accept
}

// acctAttributes builds the Accounting-Request attributes except
// Acct-Delay-Time, which changes with every transmission.
func acctAttributes(nas NAS, r *AcctRecord) (radius.Attributes, error) {
	p := &radius.Packet{}
	if err := sessionAttributes(p, nas, &r.Session, r.User); err != nil {
		return nil, err
	}
	rfc2866.AcctStatusType_Set(p, rfc2866.AcctStatusType(r.Status))
	if r.FramedIPAddress.Is4() {
		b := r.FramedIPAddress.As4()
		p.Add(rfc2865.FramedIPAddress_Type, b[:])
	}
	for _, x := range []struct {
		t radius.Type
		p netip.Prefix
	}{{rfc3162.FramedIPv6Prefix_Type, r.FramedIPv6Prefix}, {rfc4818.DelegatedIPv6Prefix_Type, r.DelegatedIPv6Prefix}} {
		if !x.p.IsValid() || !x.p.Addr().Is6() {
			continue
		}
		a := x.p.Masked().Addr().As16()
		n := (x.p.Bits() + 7) / 8
		v := append([]byte{0, byte(x.p.Bits())}, a[:n]...)
		p.Add(x.t, v)
	}
	for _, c := range r.Class {
		if len(c) > 253 {
			return nil, errors.New("aaa: Class longer than 253 octets")
		}
		p.Add(rfc2865.Class_Type, append(radius.Attribute(nil), c...))
	}
	if r.Status != AcctStart {
		p.Add(rfc2866.AcctInputOctets_Type, radius.NewInteger(uint32(r.InputOctets)))
		p.Add(rfc2866.AcctOutputOctets_Type, radius.NewInteger(uint32(r.OutputOctets)))
		p.Add(rfc2869.AcctInputGigawords_Type, radius.NewInteger(uint32(r.InputOctets>>32)))
		p.Add(rfc2869.AcctOutputGigawords_Type, radius.NewInteger(uint32(r.OutputOctets>>32)))
		p.Add(rfc2866.AcctInputPackets_Type, radius.NewInteger(clamp32(r.InputPackets)))
		p.Add(rfc2866.AcctOutputPackets_Type, radius.NewInteger(clamp32(r.OutputPackets)))
		p.Add(rfc2866.AcctSessionTime_Type, radius.NewInteger(uint32(r.SessionTime/time.Second)))
	}
	if r.Status == AcctStop && r.TerminateCause != CauseNone {
		p.Add(rfc2866.AcctTerminateCause_Type, radius.NewInteger(uint32(r.TerminateCause)))
	}
	if !r.Time.IsZero() {
		p.Add(rfc2869.EventTimestamp_Type, radius.NewInteger(uint32(r.Time.Unix())))
	}
	return p.Attributes, nil
}

func clamp32(v uint64) uint32 {
	if v > 0xffffffff {
		return 0xffffffff
	}
	return uint32(v)
}

// SpoolEntry is a spooled record and its sequence number.
type SpoolEntry struct {
	Seq    uint64
	Record AcctRecord
}

// Spool keeps accounting records until a server acknowledges them. A
// durable implementation (the store) makes accounting survive restarts.
type Spool interface {
	// Put appends a record and returns its sequence number, which
	// grows with each Put.
	Put(rec AcctRecord) (uint64, error)
	// Next returns up to max unacknowledged records with Seq > after,
	// oldest first.
	Next(after uint64, max int) ([]SpoolEntry, error)
	// Ack removes a delivered record.
	Ack(seq uint64) error
}

var errUnencodable = errors.New("aaa: accounting record cannot be encoded")

// ErrSpoolFull is returned by MemSpool.Put at its limit.
var ErrSpoolFull = errors.New("aaa: accounting spool full")

// MemSpool is a Spool in memory, bounded to Limit records (0: no bound).
type MemSpool struct {
	Limit   int
	mu      sync.Mutex
	seq     uint64
	entries []SpoolEntry // ascending Seq
}

func (s *MemSpool) Put(rec AcctRecord) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Limit > 0 && len(s.entries) >= s.Limit {
		return 0, ErrSpoolFull
	}
	s.seq++
	s.entries = append(s.entries, SpoolEntry{Seq: s.seq, Record: rec})
	return s.seq, nil
}

func (s *MemSpool) Next(after uint64, max int) ([]SpoolEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.search(after + 1)
	j := min(len(s.entries), i+max)
	if j <= i {
		return nil, nil
	}
	return append([]SpoolEntry(nil), s.entries[i:j]...), nil
}

func (s *MemSpool) Ack(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.search(seq)
	if i < len(s.entries) && s.entries[i].Seq == seq {
		s.entries = append(s.entries[:i], s.entries[i+1:]...)
	}
	return nil
}

// Len returns how many records wait for acknowledgement.
func (s *MemSpool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *MemSpool) search(seq uint64) int {
	lo, hi := 0, len(s.entries)
	for lo < hi {
		m := (lo + hi) / 2
		if s.entries[m].Seq < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// AcctConfig tunes an Accounting sender.
type AcctConfig struct {
	// Window is how many records may be in flight (32). Records of one
	// Acct-Session-Id are always sent one after the other, in order.
	Window int
	// RetryInterval is the pause after a record could not be delivered
	// (no server answered, or all are dead) before trying again (5s).
	RetryInterval time.Duration
}

// Accounting delivers spooled records through a Client: in spool
// order per session, each until a server acknowledges it, then Acks it.
// It runs one goroutine.
type Accounting struct {
	client  atomic.Pointer[Client]
	swapped atomic.Bool // the client changed: retry at once
	spool   Spool
	cfg     AcctConfig
	wake    chan struct{}
	results chan acctResult
	quit    chan struct{}
	wg      sync.WaitGroup

	mu        sync.Mutex
	delivered uint64
	failures  uint64
	lastErr   error
}

type acctResult struct {
	seq uint64
	err error
}

// NewAccounting starts delivering what spool holds.
func NewAccounting(c *Client, spool Spool, cfg AcctConfig) *Accounting {
	if cfg.Window <= 0 {
		cfg.Window = 32
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 5 * time.Second
	}
	a := &Accounting{
		spool: spool, cfg: cfg,
		wake:    make(chan struct{}, 1),
		results: make(chan acctResult, cfg.Window),
		quit:    make(chan struct{}),
	}
	a.client.Store(c)
	a.wg.Add(1)
	go a.loop()
	return a
}

// SetClient sends the records not yet submitted, and those that fail
// from now on, through c. Records in flight finish on the client they
// were given to: answered there they are acknowledged, failed there
// they come back in line for c. Nothing is dropped or sent twice by
// the switch.
func (a *Accounting) SetClient(c *Client) {
	a.client.Store(c)
	a.swapped.Store(true)
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Spool is where the records wait.
func (a *Accounting) Spool() Spool { return a.spool }

// Client is the client new records go through.
func (a *Accounting) Client() *Client { return a.client.Load() }

// Send spools rec for delivery. It fails only when the spool does.
func (a *Accounting) Send(rec AcctRecord) error {
	if rec.Time.IsZero() {
		rec.Time = a.client.Load().now()
	}
	if _, err := a.spool.Put(rec); err != nil {
		return err
	}
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return nil
}

// Notify tells the sender that the spool has records to offer which
// its last Next did not return (a durable spool that offers a record
// only once it is written).
func (a *Accounting) Notify() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// AcctStats counts deliveries.
type AcctStats struct {
	Delivered, Failures uint64
	LastErr             error
}

func (a *Accounting) Stats() AcctStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return AcctStats{a.delivered, a.failures, a.lastErr}
}

// Close stops the sender; undelivered records stay in the spool.
func (a *Accounting) Close() {
	close(a.quit)
	a.wg.Wait()
}

func (a *Accounting) loop() {
	defer a.wg.Done()
	var (
		after    uint64
		waiting  []SpoolEntry
		inflight = map[uint64]SpoolEntry{}
		retryAt  time.Time
		timer    = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	for {
		now := a.client.Load().now()
		if a.swapped.Swap(false) {
			// New servers get the waiting records now, not after the
			// pause the old ones earned.
			retryAt = time.Time{}
		}
		if room := a.cfg.Window - len(inflight) - len(waiting); room > 0 {
			more, err := a.spool.Next(after, room)
			if err != nil {
				a.note(0, err)
				retryAt = now.Add(a.cfg.RetryInterval)
			}
			for _, e := range more {
				after = e.Seq
				waiting = append(waiting, e)
			}
		}
		if !now.Before(retryAt) {
			busy := make(map[string]bool, len(inflight))
			for _, e := range inflight {
				busy[e.Record.AcctSessionID] = true
			}
			kept := waiting[:0]
			stop := false
			for _, e := range waiting {
				id := e.Record.AcctSessionID
				if stop || busy[id] {
					busy[id] = true
					kept = append(kept, e)
					continue
				}
				busy[id] = true
				err := a.submit(e)
				if err == errUnencodable {
					continue
				}
				if err != nil {
					a.note(0, err)
					retryAt = now.Add(a.cfg.RetryInterval)
					stop = true
					kept = append(kept, e)
					continue
				}
				inflight[e.Seq] = e
			}
			waiting = kept
		}

		wait := time.Hour
		if len(waiting) > 0 && !retryAt.IsZero() {
			wait = max(retryAt.Sub(now), 0)
		}
		timer.Reset(wait)
		select {
		case <-a.quit:
			return
		case <-a.wake:
		case <-timer.C:
		case r := <-a.results:
			for {
				if r.err == nil {
					a.spool.Ack(r.seq)
					a.note(1, nil)
					delete(inflight, r.seq)
				} else {
					a.note(0, r.err)
					retryAt = a.client.Load().now().Add(a.cfg.RetryInterval)
					// Back in line, in sequence order.
					e := inflight[r.seq]
					delete(inflight, r.seq)
					waiting = insertBySeq(waiting, e)
				}
				select {
				case r = <-a.results:
					continue
				default:
				}
				break
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (a *Accounting) submit(e SpoolEntry) error {
	c := a.client.Load()
	attrs, err := acctAttributes(c.nas, &e.Record)
	if err != nil {
		// No server could ever take it; keeping it would stall
		// its session's records for good.
		a.spool.Ack(e.Seq)
		a.note(0, err)
		return errUnencodable
	}
	seq := e.Seq
	return c.sendAccounting(attrs, e.Record.Time, func(err error) {
		a.results <- acctResult{seq, err}
	})
}

func (a *Accounting) note(delivered uint64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.delivered += delivered
	if err != nil {
		a.failures++
		a.lastErr = err
	}
}

func insertBySeq(l []SpoolEntry, e SpoolEntry) []SpoolEntry {
	i := len(l)
	for i > 0 && l[i-1].Seq > e.Seq {
		i--
	}
	l = append(l, SpoolEntry{})
	copy(l[i+1:], l[i:])
	l[i] = e
	return l
}
