package aaa

import (
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"layeh.com/radius"

	"github.com/l2tpd/l2tpd/ppp"
)

// Config configures a Client.
type Config struct {
	// Auth and Acct are the authentication and accounting servers.
	Auth, Acct []Server
	NAS        NAS
	Timing     Timing
	// Rand supplies Request Authenticators (crypto/rand when nil).
	Rand io.Reader
	// Now reads the clock (time.Now when nil).
	Now func() time.Time
}

// Result is the answer to an Access-Request.
type Result struct {
	// Err is set when no server gave a usable answer (ErrTimeout,
	// ErrNoServer, ErrClosed); the other fields are then zero.
	Err error
	// Accept is true for an Access-Accept; Challenge for an
	// Access-Challenge, which PPP cannot relay and treats as a reject.
	Accept, Challenge bool
	Attrs             Attributes
	// PPP is the decision for the PPP engine.
	PPP    ppp.AuthResult
	Server netip.AddrPort
}

// Client sends RADIUS requests on its own UDP sockets: one or more
// connected sockets per server, each with its own 256 identifiers. One
// goroutine runs timers and callbacks and one reads each socket; no
// call blocks on the network.
type Client struct {
	nas NAS
	now func() time.Time
	mu  sync.Mutex
	eng *engine
	// stopped: the loop is gone; requests are refused (under mu).
	stopped bool
	wake    chan struct{}
	quit    chan struct{}
	wg      sync.WaitGroup

	connMu sync.Mutex
	conns  map[[2]int]*net.UDPConn
	closed bool
}

// NewClient starts a client.
func NewClient(cfg Config) (*Client, error) {
	if len(cfg.Auth) == 0 && len(cfg.Acct) == 0 {
		return nil, errors.New("aaa: no RADIUS servers")
	}
	for _, s := range append(append([]Server(nil), cfg.Auth...), cfg.Acct...) {
		if !s.Addr.IsValid() || s.Secret == "" {
			return nil, errors.New("aaa: RADIUS server needs an address and a secret")
		}
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	c := &Client{
		nas:   cfg.NAS,
		now:   cfg.Now,
		eng:   newEngine(cfg.Auth, cfg.Acct, cfg.NAS, cfg.Timing, rnd),
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		conns: make(map[[2]int]*net.UDPConn),
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

// Authenticate sends an Access-Request for req. done is called once,
// from the client's goroutine, unless an error is returned (ErrBusy,
// ErrNoServer, or a request that cannot be encoded). The caller must
// not block in done; a shard forwards the Result to itself.
func (c *Client) Authenticate(req *Request, done func(Result)) error {
	attrs, err := accessAttributes(c.nas, req)
	if err != nil {
		return err
	}
	t := &txn{kind: kindAccess, group: groupAuth, attrs: attrs}
	if req.Auth.Protocol == ppp.AuthPAP {
		t.password = append([]byte{}, req.Auth.Password...)
	}
	proto := req.Auth.Protocol
	t.done = func(resp []byte, from netip.AddrPort, err error) {
		done(accessResult(proto, resp, from, err))
	}
	return c.submit(t)
}

// accessResult maps a verified response into a Result.
func accessResult(proto ppp.AuthProto, resp []byte, from netip.AddrPort, err error) Result {
	if err != nil {
		return Result{Err: err, PPP: ppp.AuthResult{Message: "authentication service unavailable"}}
	}
	r := Result{Server: from}
	r.Attrs, _ = ParseAttributes(resp[headerLen:]) // checked on receipt
	r.Accept = resp[0] == codeAccessAccept
	r.Challenge = resp[0] == codeAccessChallenge
	r.PPP = ppp.AuthResult{Accept: r.Accept, Message: r.Attrs.ReplyMessage, PeerIPv4: r.Attrs.FramedIPAddress}
	if proto == ppp.AuthMSCHAPv2 {
		if r.Accept {
			r.PPP.AuthenticatorResponse = r.Attrs.MSCHAP2Success
			// RFC 2759 §5: without the authenticator response the
			// peer would reject us; RFC 2548 §2.3.3 makes it
			// mandatory in the Accept.
			if len(r.PPP.AuthenticatorResponse) != 42 {
				r.PPP.Accept = false
				r.PPP.Message = "no MS-CHAP2-Success from RADIUS"
			}
		} else if r.Attrs.MSCHAPError != "" && r.PPP.Message == "" {
			r.PPP.Message = r.Attrs.MSCHAPError
		}
	}
	if !r.PPP.Accept && r.PPP.Message == "" {
		r.PPP.Message = "authentication failed"
	}
	return r
}

// sendAccounting sends one Accounting-Request with attrs; created is the
// time of the event (for Acct-Delay-Time).
func (c *Client) sendAccounting(attrs radius.Attributes, created time.Time, done func(error)) error {
	t := &txn{kind: kindAcct, group: groupAcct, attrs: attrs, created: created}
	t.done = func(_ []byte, _ netip.AddrPort, err error) { done(err) }
	return c.submit(t)
}

func (c *Client) submit(t *txn) error {
	c.mu.Lock()
	if c.stopped {
		// Nothing would ever complete it.
		c.mu.Unlock()
		return ErrClosed
	}
	now := c.now()
	c.eng.tick(now)
	err := c.eng.submit(now, t)
	c.mu.Unlock()
	c.poke()
	return err
}

func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eng.stats
}

// Pending is how many requests are in flight.
func (c *Client) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eng.pending
}

// Inherit carries old's counters over to c, and each server's counters
// and health to the server of c with the same address, secret and role:
// a configuration change does not reset what the metrics count.
func (c *Client) Inherit(old *Client) {
	old.mu.Lock()
	prev := make([]server, len(old.eng.servers))
	for i, s := range old.eng.servers {
		prev[i] = *s
	}
	st := old.eng.stats
	old.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.eng.inherit(prev, st)
}

// Servers returns each server's health, authentication servers first.
func (c *Client) Servers() []ServerState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.eng.serverStates()
}

// Close stops the client; outstanding requests complete with ErrClosed.
func (c *Client) Close() error {
	c.connMu.Lock()
	if c.closed {
		c.connMu.Unlock()
		return nil
	}
	c.closed = true
	for _, conn := range c.conns {
		conn.Close()
	}
	c.connMu.Unlock()
	close(c.quit)
	c.wg.Wait()
	return nil
}

func (c *Client) loop() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var out []send
	var done []completion
	for {
		c.mu.Lock()
		now := c.now()
		c.eng.tick(now)
		out, c.eng.out = c.eng.out, out[:0]
		done, c.eng.done = c.eng.done, done[:0]
		next := c.eng.deadline()
		c.mu.Unlock()

		for _, s := range out {
			c.write(s)
		}
		for i := range done {
			d := &done[i]
			d.t.done(d.resp, d.from, d.err)
			done[i] = completion{}
		}
		for i := range out {
			out[i] = send{}
		}

		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(c.now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-c.wake:
		case <-timer.C:
		case <-c.quit:
			c.mu.Lock()
			c.eng.closeAll()
			c.stopped = true
			done, c.eng.done = c.eng.done, nil
			c.mu.Unlock()
			for _, d := range done {
				d.t.done(nil, d.from, d.err)
			}
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// write sends on socket s.sock of server s.srv, opening it first. A
// failed write is left to the retransmission timer.
func (c *Client) write(s send) {
	conn := c.conn(s.srv, s.sock)
	if conn != nil {
		conn.Write(s.pkt)
	}
}

func (c *Client) conn(srv, sk int) *net.UDPConn {
	key := [2]int{srv, sk}
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if conn := c.conns[key]; conn != nil || c.closed {
		return conn
	}
	c.mu.Lock()
	addr := c.eng.servers[srv].Addr
	c.mu.Unlock()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil
	}
	c.conns[key] = conn
	c.wg.Add(1)
	go c.read(conn, srv, sk)
	return conn
}

func (c *Client) read(conn *net.UDPConn, srv, sk int) {
	defer c.wg.Done()
	buf := make([]byte, maxPacket+1)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ECONNREFUSED from an ICMP port unreachable: the
			// timers deal with the silence.
			select {
			case <-c.quit:
				return
			default:
				continue
			}
		}
		c.mu.Lock()
		c.eng.receive(c.now(), srv, sk, buf[:n])
		c.mu.Unlock()
		c.poke()
	}
}
