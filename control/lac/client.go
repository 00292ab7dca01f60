package lac

import (
	"sync"
	"time"

	"github.com/l2tpd/l2tpd/datapath"
	"github.com/l2tpd/l2tpd/ppp"
)

// Client is a Handler that runs a PPP client (ppp.RoleClient) on its
// call: the subscriber side of a session whose PPP the LAC terminates
// itself, as l2tpbench's emulated subscribers and tests do. Its hooks
// run on the shard goroutine, like every Handler method.
type Client struct {
	LAC  *LAC
	PPP  *ppp.Session
	ID   CallID
	Key  datapath.SessionKey
	Sess Session
	// OnUp, OnEvent, OnData and OnDown, when set, hear of the session
	// coming up, the PPP engine's events, IP packets received and the
	// call's end.
	OnUp    func(c *Client, now time.Time)
	OnEvent func(c *Client, e ppp.Event, now time.Time)
	OnData  func(c *Client, d ppp.Datagram, now time.Time)
	OnDown  func(c *Client, r Reason)
	// Err is the last error sending a frame.
	Err error
}

var outputs = sync.Pool{New: func() any { return new(ppp.Output) }}

// Up starts LCP (RFC 1661 §3.2: Establish phase) once the call is up.
func (c *Client) Up(s Session) {
	c.Key, c.Sess, c.ID = s.Key, s, s.ID
	now := s.SessionUp
	if c.OnUp != nil {
		c.OnUp(c, now)
	}
	out := outputs.Get().(*ppp.Output)
	c.PPP.Start(now, out)
	c.flush(out, now)
}

// Down reports the call's end.
func (c *Client) Down(id CallID, r Reason) {
	c.ID = id // also when the call never came up
	if c.OnDown != nil {
		c.OnDown(c, r)
	}
}

// Frame feeds a frame from the LNS to the PPP engine.
func (c *Client) Frame(id CallID, frame []byte) {
	now := time.Now()
	out := outputs.Get().(*ppp.Output)
	c.PPP.Input(now, frame, out)
	c.flush(out, now)
}

// Tick runs the PPP engine's timers (restart, echo).
func (c *Client) Tick(id CallID, now time.Time) {
	out := outputs.Get().(*ppp.Output)
	c.PPP.Tick(now, out)
	c.flush(out, now)
}

// Send sends one PPP frame (protocol field first) on the session.
func (c *Client) Send(frame []byte) error {
	return c.LAC.SendFrame(c.Key, frame)
}

// Close terminates PPP (LCP Terminate-Request, RFC 1661 §5.5).
func (c *Client) Close(now time.Time) {
	out := outputs.Get().(*ppp.Output)
	c.PPP.Close(now, out)
	c.flush(out, now)
}

func (c *Client) flush(out *ppp.Output, now time.Time) {
	for i := 0; i < out.NumFrames(); i++ {
		if err := c.LAC.SendFrame(c.Key, out.Frame(i)); err != nil {
			c.Err = err
		}
	}
	if c.OnEvent != nil {
		for _, e := range out.Events {
			c.OnEvent(c, e, now)
		}
	}
	if c.OnData != nil {
		for _, d := range out.Data {
			c.OnData(c, d, now)
		}
	}
	out.Reset()
	outputs.Put(out)
	if d, ok := c.PPP.Deadline(); ok {
		c.LAC.SetTimer(c.ID, d)
	}
}
