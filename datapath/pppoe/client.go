package pppoe

import (
	"bytes"
	"time"
)

// ClientConfig configures one emulated Host.
type ClientConfig struct {
	// MAC is the Host's address.
	MAC MAC
	// ServiceName is requested in PADI and PADR; empty: any service.
	ServiceName string
	// ACName selects the AC whose PADO is taken; empty: the first PADO
	// offering the service.
	ACName string
	// HostUniq is sent in PADI and PADR; answers must carry it back.
	HostUniq []byte
	// Timeout is the first PADI/PADR wait, doubled at each resend (RFC
	// 2516 §8; default 1s).
	Timeout time.Duration
	// Retries is how many PADIs (and PADRs per PADO) are sent before
	// giving up (default 4).
	Retries int
}

// ClientState is the discovery state of a Host.
type ClientState uint8

// Client states.
const (
	ClientIdle        ClientState = iota
	ClientDiscovering             // PADI sent, waiting for a PADO
	ClientRequesting              // PADR sent, waiting for the PADS
	ClientSession                 // PADS received
	ClientClosed                  // PADT sent or received
	ClientFailed                  // gave up, or the AC refused
)

func (s ClientState) String() string {
	switch s {
	case ClientIdle:
		return "idle"
	case ClientDiscovering:
		return "discovering"
	case ClientRequesting:
		return "requesting"
	case ClientSession:
		return "session"
	case ClientClosed:
		return "closed"
	case ClientFailed:
		return "failed"
	}
	return "unknown"
}

// ClientEventKind says what changed.
type ClientEventKind uint8

// Client events.
const (
	ClientNone   ClientEventKind = iota
	ClientUp                     // PADS received: the session is up
	ClientDown                   // the AC sent PADT
	ClientGaveUp                 // retries exhausted or an error tag; Reason says why
)

// ClientEvent is what a packet or a tick did.
type ClientEvent struct {
	Kind   ClientEventKind
	Reason string
}

// Client is the discovery state machine of a Host (RFC 2516 §5). It is
// not safe for concurrent use.
type Client struct {
	cfg      ClientConfig
	state    ClientState
	tries    int // PADIs sent in this discovery
	padrs    int // PADRs sent to the chosen AC
	wait     time.Duration
	deadline time.Time
	ac       MAC
	acName   string
	cookie   []byte
	relay    []byte
	hasRelay bool
	id       uint16
}

// NewClient returns an idle Host.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 4
	}
	return &Client{cfg: cfg}
}

// State is the discovery state.
func (c *Client) State() ClientState { return c.state }

// SessionID is the session ID from the PADS.
func (c *Client) SessionID() uint16 { return c.id }

// AC is the chosen AC's address.
func (c *Client) AC() MAC { return c.ac }

// ACName is the chosen AC's AC-Name.
func (c *Client) ACName() string { return c.acName }

// MAC is the Host's address.
func (c *Client) MAC() MAC { return c.cfg.MAC }

// Deadline is when Tick must be called next; zero when nothing waits.
func (c *Client) Deadline() time.Time { return c.deadline }

// Start begins discovery and appends the first PADI.
func (c *Client) Start(now time.Time, out []byte) []byte {
	c.tries = 0
	c.wait = c.cfg.Timeout
	return c.padi(now, out)
}

func (c *Client) padi(now time.Time, out []byte) []byte {
	c.state = ClientDiscovering
	c.tries++
	c.deadline = now.Add(c.wait)
	start := len(out)
	out = AppendHeader(out, Broadcast, c.cfg.MAC, EtherTypeDiscovery, CodePADI, 0)
	out = AppendTagString(out, TagServiceName, c.cfg.ServiceName)
	if c.cfg.HostUniq != nil {
		out = AppendTag(out, TagHostUniq, c.cfg.HostUniq)
	}
	SetLength(out[start:])
	return out
}

func (c *Client) padr(now time.Time, out []byte) []byte {
	c.state = ClientRequesting
	c.padrs++
	c.deadline = now.Add(c.wait)
	start := len(out)
	out = AppendHeader(out, c.ac, c.cfg.MAC, EtherTypeDiscovery, CodePADR, 0)
	out = AppendTagString(out, TagServiceName, c.cfg.ServiceName)
	if c.cfg.HostUniq != nil {
		out = AppendTag(out, TagHostUniq, c.cfg.HostUniq)
	}
	if c.cookie != nil {
		out = AppendTag(out, TagACCookie, c.cookie)
	}
	if c.hasRelay {
		out = AppendTag(out, TagRelaySessionID, c.relay)
	}
	SetLength(out[start:])
	return out
}

// Tick resends at the deadline, doubling the wait (RFC 2516 §8); after
// Retries PADRs it goes back to PADI, after Retries PADIs it gives up.
func (c *Client) Tick(now time.Time, out []byte) ([]byte, ClientEvent) {
	if c.deadline.IsZero() || now.Before(c.deadline) {
		return out, ClientEvent{}
	}
	c.wait *= 2
	switch c.state {
	case ClientDiscovering:
		if c.tries >= c.cfg.Retries {
			return out, c.fail("no PADO")
		}
		return c.padi(now, out), ClientEvent{}
	case ClientRequesting:
		if c.padrs >= c.cfg.Retries {
			if c.tries >= c.cfg.Retries {
				return out, c.fail("no PADS")
			}
			return c.padi(now, out), ClientEvent{}
		}
		return c.padr(now, out), ClientEvent{}
	}
	c.deadline = time.Time{}
	return out, ClientEvent{}
}

func (c *Client) fail(reason string) ClientEvent {
	c.state = ClientFailed
	c.deadline = time.Time{}
	return ClientEvent{Kind: ClientGaveUp, Reason: reason}
}

// mine reports whether an answer carries the Host-Uniq sent (RFC 2516
// Appendix A: it lets a Host tell its answers apart).
func (c *Client) mine(d *Discovery) bool {
	if c.cfg.HostUniq == nil {
		return d.Has&HasHostUniq == 0
	}
	return d.Has&HasHostUniq != 0 && bytes.Equal(d.HostUniq, c.cfg.HostUniq)
}

// offered reports whether a PADO offers the requested service.
func (c *Client) offered(d *Discovery) bool {
	it := NewTags(d.Raw)
	for {
		t, ok := it.Next()
		if !ok {
			return false
		}
		if t.Type == TagServiceName && (c.cfg.ServiceName == "" || string(t.Value) == c.cfg.ServiceName) {
			return true
		}
	}
}

// Discovery handles one discovery packet addressed to the Host and
// appends the answer, if any, to out.
func (c *Client) Discovery(now time.Time, f *Frame, out []byte) ([]byte, ClientEvent) {
	if f.Dst != c.cfg.MAC {
		return out, ClientEvent{}
	}
	d, err := ParseDiscovery(f.Payload)
	// A PADT need not carry the Host-Uniq (RFC 2516 §5.5: no tags are
	// required); the session ID and the AC's address identify it.
	if err != nil || (f.Code != CodePADT && !c.mine(&d)) {
		return out, ClientEvent{}
	}
	switch f.Code {
	case CodePADO: // RFC 2516 §5.2, §5.3
		if c.state != ClientDiscovering || f.SessionID != 0 || d.Has&HasACName == 0 || !f.Src.IsUnicast() {
			return out, ClientEvent{}
		}
		if c.cfg.ACName != "" && string(d.ACName) != c.cfg.ACName {
			return out, ClientEvent{}
		}
		if !c.offered(&d) {
			return out, ClientEvent{}
		}
		c.ac = f.Src
		c.acName = string(d.ACName)
		c.cookie = nil
		if d.Has&HasACCookie != 0 {
			// Returned unmodified in the PADR (RFC 2516 Appendix A).
			c.cookie = append([]byte{}, d.ACCookie...)
		}
		c.hasRelay = d.Has&HasRelaySessionID != 0
		c.relay = append(c.relay[:0], d.RelaySessionID...)
		c.padrs = 0
		c.wait = c.cfg.Timeout
		return c.padr(now, out), ClientEvent{}
	case CodePADS: // RFC 2516 §5.4
		if c.state != ClientRequesting || f.Src != c.ac {
			return out, ClientEvent{}
		}
		if d.ErrorTag != 0 || f.SessionID == 0 {
			return out, c.fail(d.ErrorTag.String() + ": " + string(d.Error))
		}
		c.id = f.SessionID
		c.state = ClientSession
		c.deadline = time.Time{}
		return out, ClientEvent{Kind: ClientUp}
	case CodePADT: // RFC 2516 §5.5
		if c.state != ClientSession || f.Src != c.ac || f.SessionID != c.id {
			return out, ClientEvent{}
		}
		c.state = ClientClosed
		return out, ClientEvent{Kind: ClientDown, Reason: "PADT"}
	}
	return out, ClientEvent{}
}

// Close ends the session and appends the PADT (RFC 2516 §5.5); nothing
// when there is no session.
func (c *Client) Close(out []byte) []byte {
	if c.state != ClientSession {
		if c.state == ClientDiscovering || c.state == ClientRequesting {
			c.state = ClientClosed
			c.deadline = time.Time{}
		}
		return out
	}
	c.state = ClientClosed
	start := len(out)
	out = AppendHeader(out, c.ac, c.cfg.MAC, EtherTypeDiscovery, CodePADT, c.id)
	SetLength(out[start:])
	return out
}
