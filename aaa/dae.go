package aaa

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3162"
	"layeh.com/radius/rfc3576"
)

// DAEPort is the Dynamic Authorization port (RFC 5176 §2.3).
const DAEPort = 3799

// Error-Cause values (RFC 5176 §3.5).
const (
	ErrorUnsupportedAttribute = 401
	ErrorMissingAttribute     = 402
	ErrorNASIdentification    = 403
	ErrorInvalidRequest       = 404
	ErrorSessionNotFound      = 503
	ErrorResourcesUnavailable = 506
	errorCauseType            = byte(rfc3576.ErrorCause_Type)
	proxyStateType            = byte(rfc2865.ProxyState_Type)
)

// DAEClient is a Dynamic Authorization Client allowed to send requests,
// identified by its source address.
type DAEClient struct {
	Addr   netip.Addr
	Secret string
}

// DAEConfig configures a DAE server.
type DAEConfig struct {
	Clients []DAEClient
	// NAS is checked against NAS-Identifier, NAS-IP-Address and
	// NAS-IPv6-Address in requests; a mismatch is NAKed with 403.
	NAS NAS
	// RequireMessageAuthenticator drops requests without one.
	RequireMessageAuthenticator bool
}

// Match selects sessions; every set field must match (RFC 5176 §3).
type Match struct {
	AcctSessionID string
	UserName      string
	FramedIP      netip.Addr
}

// Change is what a CoA-Request changes; a zero field is unchanged.
type Change struct {
	SessionTimeout time.Duration
	IdleTimeout    time.Duration
}

// Sessions is implemented by the control plane. Each call returns how
// many sessions matched; zero is answered with Error-Cause 503, an
// error with 506.
type Sessions interface {
	Disconnect(m Match) (n int, err error)
	Change(m Match, c Change) (n int, err error)
}

// DAEStats counts what the DAE server did.
type DAEStats struct {
	Requests, ACKs, NAKs                    uint64
	DropClient, DropMalformed, DropAuth     uint64
	DropMessageAuth, DropNoMessageAuth, Bad uint64
}

// DAE answers Disconnect-Request and CoA-Request (RFC 5176).
type DAE struct {
	cfg      DAEConfig
	secrets  map[netip.Addr][]byte
	sessions Sessions
	mu       sync.Mutex
	stats    DAEStats
}

// NewDAE builds a DAE server; Serve runs it on a socket.
func NewDAE(cfg DAEConfig, s Sessions) *DAE {
	d := &DAE{cfg: cfg, sessions: s, secrets: make(map[netip.Addr][]byte)}
	for _, c := range cfg.Clients {
		d.secrets[c.Addr.Unmap()] = []byte(c.Secret)
	}
	return d
}

// SetConfig replaces the clients and the NAS identity; requests read
// after it returns are checked against the new ones.
func (d *DAE) SetConfig(cfg DAEConfig) {
	secrets := make(map[netip.Addr][]byte, len(cfg.Clients))
	for _, c := range cfg.Clients {
		secrets[c.Addr.Unmap()] = []byte(c.Secret)
	}
	d.mu.Lock()
	d.cfg, d.secrets = cfg, secrets
	d.mu.Unlock()
}

// Stats returns the counters.
func (d *DAE) Stats() DAEStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

func (d *DAE) count(f func(*DAEStats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}

// Serve answers requests on conn until it is closed.
func (d *DAE) Serve(conn *net.UDPConn) error {
	buf := make([]byte, maxPacket)
	var out []byte
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			continue
		}
		var ok bool
		out, ok = d.Handle(out[:0], buf[:n], from.Addr())
		if ok {
			conn.WriteToUDPAddrPort(out, from)
		}
	}
}

// Handle processes one request from addr and appends the answer to
// dst; ok is false when the request is dropped silently (unknown
// client, bad authenticator, malformed; RFC 5176 §3.1, §3.4).
func (d *DAE) Handle(dst, b []byte, from netip.Addr) (out []byte, ok bool) {
	pkt, err := checkHeader(b)
	if err != nil {
		d.count(func(s *DAEStats) { s.DropMalformed++ })
		return dst, false
	}
	code := pkt[0]
	if code != codeDisconnectRequest && code != codeCoARequest {
		d.count(func(s *DAEStats) { s.DropMalformed++ })
		return dst, false
	}
	d.mu.Lock()
	secret, known := d.secrets[from.Unmap()]
	cfg := d.cfg
	d.mu.Unlock()
	if !known {
		d.count(func(s *DAEStats) { s.DropClient++ })
		return dst, false
	}
	// RFC 5176 §2.3: the Request Authenticator is computed like an
	// Accounting-Request's (RFC 2866 §3).
	var zero [16]byte
	h := md5.New()
	h.Write(pkt[:4])
	h.Write(zero[:])
	h.Write(pkt[headerLen:])
	h.Write(secret)
	var sum [md5.Size]byte
	if !hmac.Equal(h.Sum(sum[:0]), pkt[4:20]) {
		d.count(func(s *DAEStats) { s.DropAuth++ })
		return dst, false
	}
	off, err := findMA(pkt)
	if err == ErrAttribute {
		d.count(func(s *DAEStats) { s.DropMalformed++ })
		return dst, false
	}
	// RFC 5176 §3.1: the Message-Authenticator is computed with the
	// Request Authenticator field zeroed.
	if err != nil || (off >= 0 && !checkMA(pkt, off, &zero, secret)) {
		d.count(func(s *DAEStats) { s.DropMessageAuth++ })
		return dst, false
	}
	if off < 0 && cfg.RequireMessageAuthenticator {
		d.count(func(s *DAEStats) { s.DropNoMessageAuth++ })
		return dst, false
	}
	d.count(func(s *DAEStats) { s.Requests++ })

	req := parseDAE(pkt, code == codeCoARequest, cfg.NAS)
	cause := req.cause
	if cause == 0 {
		var n int
		var err error
		if code == codeDisconnectRequest {
			n, err = d.sessions.Disconnect(req.match)
		} else {
			n, err = d.sessions.Change(req.match, req.change)
		}
		switch {
		case err != nil:
			cause = ErrorResourcesUnavailable
		case n == 0:
			cause = ErrorSessionNotFound
		}
	}
	ack, nak := codeDisconnectACK, codeDisconnectNAK
	if code == codeCoARequest {
		ack, nak = codeCoAACK, codeCoANAK
	}
	// Proxy-State is echoed in order (RFC 5176 §3.1 via RFC 2865 §5.33).
	var attrs []byte
	rcode := ack
	if cause != 0 {
		rcode = nak
		attrs = append(attrs, errorCauseType, 6)
		attrs = binary.BigEndian.AppendUint32(attrs, cause)
		d.count(func(s *DAEStats) { s.NAKs++ })
	} else {
		d.count(func(s *DAEStats) { s.ACKs++ })
	}
	attrs = append(attrs, req.proxyState...)
	var reqAuth [16]byte
	copy(reqAuth[:], pkt[4:20])
	return encodeResponse(dst, rcode, pkt[1], &reqAuth, attrs, secret), true
}

type daeRequest struct {
	match      Match
	change     Change
	cause      uint32
	proxyState []byte // whole Proxy-State attributes
}

// parseDAE reads the attributes of a verified request. The first
// problem found sets cause.
func parseDAE(pkt []byte, coa bool, nas NAS) daeRequest {
	var r daeRequest
	set := func(c uint32) {
		if r.cause == 0 {
			r.cause = c
		}
	}
	ident, changes := false, false
	for b := pkt[headerLen:]; len(b) > 0; {
		t, v, whole := b[0], b[2:b[1]], b[:b[1]] // framing checked by findMA
		b = b[b[1]:]
		switch t {
		case byte(rfc2866.AcctSessionID_Type):
			r.match.AcctSessionID, ident = string(v), true
		case byte(rfc2865.UserName_Type):
			r.match.UserName, ident = string(v), true
		case byte(rfc2865.FramedIPAddress_Type):
			if len(v) != 4 {
				set(ErrorInvalidRequest)
				continue
			}
			r.match.FramedIP, ident = netip.AddrFrom4([4]byte(v)), true
		case byte(rfc2865.NASIdentifier_Type):
			if nas.Identifier != "" && string(v) != nas.Identifier {
				set(ErrorNASIdentification)
			}
		case byte(rfc2865.NASIPAddress_Type):
			if len(v) != 4 {
				set(ErrorInvalidRequest)
			} else if nas.IPAddress.IsValid() && netip.AddrFrom4([4]byte(v)) != nas.IPAddress.Unmap() {
				set(ErrorNASIdentification)
			}
		case byte(rfc3162.NASIPv6Address_Type):
			if len(v) != 16 {
				set(ErrorInvalidRequest)
			} else if nas.IPAddress.IsValid() && netip.AddrFrom16([16]byte(v)) != nas.IPAddress {
				set(ErrorNASIdentification)
			}
		case byte(rfc2865.SessionTimeout_Type), byte(rfc2865.IdleTimeout_Type):
			if !coa {
				// RFC 5176 §3: a Disconnect-Request changes no
				// authorization.
				set(ErrorUnsupportedAttribute)
				continue
			}
			if len(v) != 4 {
				set(ErrorInvalidRequest)
				continue
			}
			d := time.Duration(binary.BigEndian.Uint32(v)) * time.Second
			if t == byte(rfc2865.SessionTimeout_Type) {
				r.change.SessionTimeout = d
			} else {
				r.change.IdleTimeout = d
			}
			changes = true
		case byte(rfc2865.ProxyState_Type):
			r.proxyState = append(r.proxyState, whole...)
		case typeMA, byte(rfc2869.EventTimestamp_Type):
		default:
			set(ErrorUnsupportedAttribute)
		}
	}
	if !ident {
		set(ErrorMissingAttribute)
	}
	if coa && !changes {
		set(ErrorMissingAttribute)
	}
	return r
}
