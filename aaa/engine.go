package aaa

import (
	"errors"
	"io"
	"net/netip"
	"sort"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
)

// Errors a request completes with when no usable answer came.
var (
	ErrTimeout  = errors.New("aaa: no answer from any RADIUS server")
	ErrNoServer = errors.New("aaa: every RADIUS server is dead")
	ErrBusy     = errors.New("aaa: too many outstanding RADIUS requests")
	ErrClosed   = errors.New("aaa: client closed")
)

// kind is what a transaction asks for.
type kind uint8

const (
	kindAccess kind = iota
	kindAcct
	kindStatus
)

// group selects the server list: authentication or accounting.
type group uint8

const (
	groupAuth group = iota
	groupAcct
)

// Server is one RADIUS server.
type Server struct {
	Addr   netip.AddrPort
	Secret string
	// Priority orders servers: the lowest alive one is used, the others
	// are failed over to in order.
	Priority int
}

// Timing controls retransmission and failover. Zero fields take the
// defaults in parentheses.
type Timing struct {
	// Timeout is how long to wait for each (re)transmission (3s).
	Timeout time.Duration
	// Retries is how many times a request is retransmitted to one
	// server before the next is tried (2; negative for none).
	Retries int
	// DeadAfter consecutive requests that went unanswered mark a
	// server dead (3).
	DeadAfter int
	// DeadTime is how long a dead server is left alone before it is
	// probed, or with Probe off used again (30s).
	DeadTime time.Duration
	// Probe revives dead servers only after they answer a
	// Status-Server (RFC 5997), sent every DeadTime.
	Probe bool
	// MaxOutstanding bounds the requests in flight over all servers
	// (4096); more are refused with ErrBusy.
	MaxOutstanding int
	// MaxSockets bounds the sockets per server, each with 256
	// identifiers (16).
	MaxSockets int
}

func (t Timing) withDefaults() Timing {
	if t.Timeout <= 0 {
		t.Timeout = 3 * time.Second
	}
	if t.Retries < 0 {
		t.Retries = 0
	} else if t.Retries == 0 {
		t.Retries = 2
	}
	if t.DeadAfter <= 0 {
		t.DeadAfter = 3
	}
	if t.DeadTime <= 0 {
		t.DeadTime = 30 * time.Second
	}
	if t.MaxOutstanding <= 0 {
		t.MaxOutstanding = 4096
	}
	if t.MaxSockets <= 0 {
		t.MaxSockets = 16
	}
	return t
}

// Stats counts what the client did and dropped.
type Stats struct {
	Requests, Retransmissions, Responses uint64
	Timeouts, Failovers, Busy, NoServer  uint64
	ServersDead, ServersRevived, Probes  uint64
	// Responses dropped.
	DropMalformed, DropUnknownID, DropAuthenticator uint64
	DropNoMessageAuth, DropBadMessageAuth, DropCode uint64
}

// ServerState is a server's health as the engine sees it.
type ServerState struct {
	Addr      netip.AddrPort
	Dead      bool
	DeadUntil time.Time
	Timeouts  int // consecutive unanswered requests
	Sockets   int
	Pending   int
	// Responses counts the server's valid answers; Latency is their
	// smoothed delay (answers to a first transmission only).
	Responses uint64
	Latency   time.Duration
	// Requests were given to this server; Unanswered of them timed out
	// there (and failed over, or failed).
	Requests, Unanswered uint64
}

type sock struct {
	ids  [256]*txn
	n    int
	next byte
}

type server struct {
	Server
	secret    []byte
	group     group
	socks     []*sock
	timeouts  int
	dead      bool
	deadUntil time.Time
	probing   bool
	responses uint64
	requests  uint64        // requests given to this server (failovers included)
	unanswer  uint64        // requests this server left unanswered
	latency   time.Duration // smoothed, from answers to a first transmission
}

// txn is one request until it is answered or given up.
type txn struct {
	kind     kind
	group    group
	attrs    radius.Attributes
	password []byte    // PAP, encrypted per server and authenticator
	created  time.Time // accounting: Acct-Delay-Time counts from here
	tried    []bool    // per server index
	done     func(resp []byte, from netip.AddrPort, err error)

	srv, sock int // -1 when not assigned
	id        byte
	auth      [16]byte
	pkt       []byte
	tries     int
	deadline  time.Time
	prev      *txn // deadline list
	nextT     *txn
	inList    bool
}

// send is a datagram the shell must write on socket sock of server srv.
type send struct {
	srv, sock int
	pkt       []byte
}

// completion is a finished transaction for the shell to report.
type completion struct {
	t    *txn
	resp []byte
	from netip.AddrPort
	err  error
}

// engine is the client's pure core: it owns the servers, their
// identifier spaces, retransmission and failover. It never reads the
// clock or touches a socket; the shell feeds it time and datagrams and
// performs what it queues in out and done.
type engine struct {
	timing  Timing
	nas     NAS
	rand    io.Reader
	servers []*server
	pending int
	head    *txn // deadline order; every send sets now+Timeout
	tail    *txn
	out     []send
	done    []completion
	stats   Stats
}

func newEngine(auth, acct []Server, nas NAS, t Timing, rnd io.Reader) *engine {
	e := &engine{timing: t.withDefaults(), nas: nas, rand: rnd}
	add := func(list []Server, g group) {
		sorted := append([]Server(nil), list...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Priority < sorted[j].Priority })
		for _, s := range sorted {
			e.servers = append(e.servers, &server{Server: s, secret: []byte(s.Secret), group: g})
		}
	}
	add(auth, groupAuth)
	add(acct, groupAcct)
	return e
}

// inherit takes over the counters of a previous engine's servers. The
// server values are copied under the previous client's lock; only
// their counters and health are read here.
func (e *engine) inherit(prev []server, st Stats) {
	e.stats = st
	for _, s := range e.servers {
		for i := range prev {
			o := &prev[i]
			if o.group != s.group || o.Addr != s.Addr || o.Secret != s.Secret {
				continue
			}
			s.responses, s.requests, s.unanswer, s.latency = o.responses, o.requests, o.unanswer, o.latency
			s.dead, s.deadUntil, s.timeouts = o.dead, o.deadUntil, o.timeouts
			break
		}
	}
}

// pick returns the first alive server of t's group not yet tried.
func (e *engine) pick(t *txn) int {
	for i, s := range e.servers {
		if s.group == t.group && !s.dead && !t.tried[i] {
			return i
		}
	}
	return -1
}

// submit starts a transaction. It fails at once when the client is
// full or every server of the group is dead.
func (e *engine) submit(now time.Time, t *txn) error {
	if e.pending >= e.timing.MaxOutstanding {
		e.stats.Busy++
		return ErrBusy
	}
	t.tried = make([]bool, len(e.servers))
	t.srv, t.sock = -1, -1
	i := e.pick(t)
	if i < 0 {
		e.stats.NoServer++
		return ErrNoServer
	}
	if err := e.assign(t, i); err != nil {
		return err
	}
	e.pending++
	e.stats.Requests++
	return e.transmit(now, t)
}

// assign gives t an identifier on server i, opening a socket when all
// are full.
func (e *engine) assign(t *txn, i int) error {
	s := e.servers[i]
	for k, sk := range s.socks {
		if sk.n < len(sk.ids) {
			e.take(t, i, k)
			return nil
		}
	}
	if len(s.socks) >= e.timing.MaxSockets {
		e.stats.Busy++
		return ErrBusy
	}
	s.socks = append(s.socks, &sock{})
	e.take(t, i, len(s.socks)-1)
	return nil
}

func (e *engine) take(t *txn, i, k int) {
	sk := e.servers[i].socks[k]
	for sk.ids[sk.next] != nil {
		sk.next++
	}
	t.srv, t.sock, t.id = i, k, sk.next
	e.servers[i].requests++
	sk.ids[t.id] = t
	sk.n++
	sk.next++
	t.tried[i] = true
	t.tries = 0
	t.pkt = nil
}

func (e *engine) release(t *txn) {
	if t.srv < 0 {
		return
	}
	sk := e.servers[t.srv].socks[t.sock]
	if sk.ids[t.id] == t {
		sk.ids[t.id] = nil
		sk.n--
	}
}

// transmit (re)sends t to its server. Access-Request and Status-Server
// are resent byte for byte: same Identifier and Request Authenticator
// (RFC 5080 §2.2.1). An Accounting-Request carries an updated
// Acct-Delay-Time, so it is a new packet with a new Identifier (RFC
// 2866 §5.2).
func (e *engine) transmit(now time.Time, t *txn) error {
	s := e.servers[t.srv]
	if t.pkt != nil && t.kind == kindAcct {
		e.release(t)
		t.tried[t.srv] = false
		tries := t.tries
		if err := e.assign(t, t.srv); err != nil {
			return err
		}
		t.tries = tries
	}
	if t.pkt == nil || t.kind == kindAcct {
		if err := e.encode(now, t, s); err != nil {
			return err
		}
	}
	t.tries++
	t.deadline = now.Add(e.timing.Timeout)
	e.unlink(t)
	e.pushBack(t)
	e.out = append(e.out, send{srv: t.srv, sock: t.sock, pkt: t.pkt})
	return nil
}

func (e *engine) encode(now time.Time, t *txn, s *server) error {
	attrs := t.attrs
	code := codeAccessRequest
	switch t.kind {
	case kindAccess, kindStatus:
		if t.kind == kindStatus {
			code = codeStatusServer
		}
		if _, err := io.ReadFull(e.rand, t.auth[:]); err != nil {
			return err
		}
		if t.password != nil {
			pw, err := radius.NewUserPassword(t.password, s.secret, t.auth[:])
			if err != nil {
				return err
			}
			attrs = append(attrs[:len(attrs):len(attrs)], &radius.AVP{Type: rfc2865.UserPassword_Type, Attribute: pw})
		}
	case kindAcct:
		code = codeAccountingRequest
		delay := now.Sub(t.created) / time.Second
		if delay < 0 {
			delay = 0
		}
		attrs = append(attrs[:len(attrs):len(attrs)], &radius.AVP{Type: rfc2866.AcctDelayTime_Type, Attribute: radius.NewInteger(uint32(delay))})
	}
	pkt, err := encodePacket(t.pkt[:0], code, t.id, t.auth, attrs, s.secret)
	if err != nil {
		return err
	}
	copy(t.auth[:], pkt[4:20])
	t.pkt = pkt
	return nil
}

func (e *engine) pushBack(t *txn) {
	t.prev, t.nextT, t.inList = e.tail, nil, true
	if e.tail != nil {
		e.tail.nextT = t
	} else {
		e.head = t
	}
	e.tail = t
}

func (e *engine) unlink(t *txn) {
	if !t.inList {
		return
	}
	if t.prev != nil {
		t.prev.nextT = t.nextT
	} else {
		e.head = t.nextT
	}
	if t.nextT != nil {
		t.nextT.prev = t.prev
	} else {
		e.tail = t.prev
	}
	t.prev, t.nextT, t.inList = nil, nil, false
}

// finish ends t and queues its completion.
func (e *engine) finish(t *txn, resp []byte, err error) {
	e.unlink(t)
	e.release(t)
	var from netip.AddrPort
	if t.srv >= 0 {
		from = e.servers[t.srv].Addr
	}
	if t.kind == kindStatus {
		e.servers[t.srv].probing = false
		return
	}
	e.pending--
	e.done = append(e.done, completion{t: t, resp: resp, from: from, err: err})
}

// receive handles a datagram that arrived on socket k of server i.
func (e *engine) receive(now time.Time, i, k int, b []byte) {
	pkt, err := checkHeader(b)
	if err != nil {
		e.stats.DropMalformed++
		return
	}
	if i < 0 || i >= len(e.servers) || k < 0 || k >= len(e.servers[i].socks) {
		e.stats.DropUnknownID++
		return
	}
	s := e.servers[i]
	t := s.socks[k].ids[pkt[1]]
	if t == nil || t.pkt == nil {
		e.stats.DropUnknownID++
		return
	}
	switch err := verifyResponse(pkt, &t.auth, s.secret, t.kind != kindStatus); err {
	case nil:
	case ErrAuthenticator:
		e.stats.DropAuthenticator++
		return
	case ErrNoMessageAuth:
		e.stats.DropNoMessageAuth++
		return
	case ErrBadMessageAuth:
		e.stats.DropBadMessageAuth++
		return
	default:
		e.stats.DropMalformed++
		return
	}
	if !codeAnswers(t.kind, pkt[0]) {
		e.stats.DropCode++
		return
	}
	if _, err := ParseAttributes(pkt[headerLen:]); err != nil {
		e.stats.DropMalformed++
		return
	}
	decryptTunnelPasswords(pkt[headerLen:], s.secret, t.auth)
	e.stats.Responses++
	s.responses++
	if t.tries == 1 {
		// Only an answer to a single transmission is unambiguous.
		d := now.Sub(t.deadline.Add(-e.timing.Timeout))
		if s.latency == 0 {
			s.latency = d
		} else {
			s.latency += (d - s.latency) / 8
		}
	}
	s.timeouts = 0
	if s.dead {
		s.dead = false
		e.stats.ServersRevived++
	}
	e.finish(t, append([]byte(nil), pkt...), nil)
}

func codeAnswers(k kind, code byte) bool {
	switch k {
	case kindAccess:
		return code == codeAccessAccept || code == codeAccessReject || code == codeAccessChallenge
	case kindAcct:
		return code == codeAccountingResponse
	case kindStatus:
		return code == codeAccessAccept || code == codeAccountingResponse
	}
	return false
}

// tick handles every deadline up to now: retransmissions, failover,
// dead servers coming back and their probes.
func (e *engine) tick(now time.Time) {
	for e.head != nil && !e.head.deadline.After(now) {
		t := e.head
		if t.kind == kindStatus {
			e.finish(t, nil, ErrTimeout)
			s := e.servers[t.srv]
			s.deadUntil = now.Add(e.timing.DeadTime)
			continue
		}
		if t.tries <= e.timing.Retries {
			e.stats.Retransmissions++
			if err := e.transmit(now, t); err != nil {
				e.finish(t, nil, err)
			}
			continue
		}
		e.serverTimeout(now, t.srv)
		e.release(t)
		i := e.pick(t)
		if i < 0 {
			e.stats.Timeouts++
			e.finish(t, nil, ErrTimeout)
			continue
		}
		e.stats.Failovers++
		if err := e.assign(t, i); err != nil {
			e.finish(t, nil, err)
			continue
		}
		if err := e.transmit(now, t); err != nil {
			e.finish(t, nil, err)
		}
	}
	for i, s := range e.servers {
		if !s.dead || s.probing || now.Before(s.deadUntil) {
			continue
		}
		if !e.timing.Probe {
			s.dead = false
			s.timeouts = 0
			e.stats.ServersRevived++
			continue
		}
		e.probe(now, i)
	}
}

func (e *engine) serverTimeout(now time.Time, i int) {
	s := e.servers[i]
	s.timeouts++
	s.unanswer++
	if !s.dead && s.timeouts >= e.timing.DeadAfter {
		s.dead = true
		s.deadUntil = now.Add(e.timing.DeadTime)
		e.stats.ServersDead++
	}
}

// probe sends a Status-Server (RFC 5997 §3) to dead server i, once, with
// a Message-Authenticator as §3 requires.
func (e *engine) probe(now time.Time, i int) {
	s := e.servers[i]
	p := &radius.Packet{}
	if e.nas.Identifier != "" {
		rfc2865.NASIdentifier_SetString(p, e.nas.Identifier)
	}
	t := &txn{kind: kindStatus, group: s.group, attrs: p.Attributes, tried: make([]bool, len(e.servers))}
	if err := e.assign(t, i); err != nil {
		s.deadUntil = now.Add(e.timing.DeadTime)
		return
	}
	t.tries = e.timing.Retries + 1
	s.probing = true
	e.stats.Probes++
	if err := e.transmit(now, t); err != nil {
		e.release(t)
		s.probing = false
		s.deadUntil = now.Add(e.timing.DeadTime)
	}
}

// deadline is when tick must next run; zero when nothing waits.
func (e *engine) deadline() time.Time {
	var d time.Time
	if e.head != nil {
		d = e.head.deadline
	}
	for _, s := range e.servers {
		if s.dead && !s.probing && (d.IsZero() || s.deadUntil.Before(d)) {
			d = s.deadUntil
		}
	}
	return d
}

// closeAll fails every transaction.
func (e *engine) closeAll() {
	for e.head != nil {
		e.finish(e.head, nil, ErrClosed)
	}
}

func (e *engine) serverStates() []ServerState {
	st := make([]ServerState, len(e.servers))
	for i, s := range e.servers {
		st[i] = ServerState{Addr: s.Addr, Dead: s.dead, DeadUntil: s.deadUntil, Timeouts: s.timeouts, Sockets: len(s.socks),
			Responses: s.responses, Latency: s.latency, Requests: s.requests, Unanswered: s.unanswer}
		for _, sk := range s.socks {
			st[i].Pending += sk.n
		}
	}
	return st
}
