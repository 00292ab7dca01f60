package aaa

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2868"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3162"
	"layeh.com/radius/rfc4818"
	"layeh.com/radius/vendors/microsoft"

	"github.com/l2tpd/l2tpd/ppp"
)

// RADIUS packet codes (RFC 2865 §3, RFC 2866 §3, RFC 5176 §2.3, RFC 5997).
const (
	codeAccessRequest      = byte(radius.CodeAccessRequest)
	codeAccessAccept       = byte(radius.CodeAccessAccept)
	codeAccessReject       = byte(radius.CodeAccessReject)
	codeAccountingRequest  = byte(radius.CodeAccountingRequest)
	codeAccountingResponse = byte(radius.CodeAccountingResponse)
	codeAccessChallenge    = byte(radius.CodeAccessChallenge)
	codeStatusServer       = byte(radius.CodeStatusServer)
	codeDisconnectRequest  = byte(radius.CodeDisconnectRequest)
	codeDisconnectACK      = byte(radius.CodeDisconnectACK)
	codeDisconnectNAK      = byte(radius.CodeDisconnectNAK)
	codeCoARequest         = byte(radius.CodeCoARequest)
	codeCoAACK             = byte(radius.CodeCoAACK)
	codeCoANAK             = byte(radius.CodeCoANAK)
)

const (
	headerLen   = 20
	maxPacket   = radius.MaxPacketLength
	vendorMS    = 311
	typeMA      = byte(rfc2869.MessageAuthenticator_Type)
	msChapError = 2  // MS-CHAP-Error (RFC 2548 §2.1.5)
	msPriDNS    = 28 // MS-Primary-DNS-Server (RFC 2548 §2.2.1)
	msSecDNS    = 29 // MS-Secondary-DNS-Server
	msChap2Succ = 26 // MS-CHAP2-Success (RFC 2548 §2.3.3)
)

// Errors a reply can be dropped for. They are counted in Stats.
var (
	ErrShort           = errors.New("aaa: packet too short")
	ErrLength          = errors.New("aaa: bad packet length")
	ErrAttribute       = errors.New("aaa: malformed attribute")
	ErrAuthenticator   = errors.New("aaa: bad response authenticator")
	ErrNoMessageAuth   = errors.New("aaa: Message-Authenticator missing")
	ErrBadMessageAuth  = errors.New("aaa: bad Message-Authenticator")
	ErrUnexpectedCode  = errors.New("aaa: unexpected response code")
	ErrUnknownIdentity = errors.New("aaa: response to no outstanding request")
)

// Request describes one subscriber session to authenticate. It carries
// the PPP credentials (from the PPP engine, or from the LAC's proxy
// authentication AVPs as returned by ppp.EvaluateProxy) and the L2TP
// context the RADIUS server may use for policy.
type Request struct {
	Session
	Auth ppp.AuthRequest
}

// Session is what identifies a subscriber session to RADIUS, in
// authentication and accounting alike.
type Session struct {
	// User is the User-Name of accounting records; an Access-Request
	// takes Auth.User.
	User string
	// NASPort identifies the session on this NAS (for example the
	// local session ID, or tunnel<<16|session).
	NASPort uint32
	// CallingStationID and CalledStationID come from the ICRQ's
	// Calling and Called Number AVPs (RFC 2661 §4.4.5).
	CallingStationID string
	CalledStationID  string
	// TxConnectSpeed and RxConnectSpeed (bits/s) become Connect-Info.
	TxConnectSpeed uint32
	RxConnectSpeed uint32
	// AcctSessionID is the Acct-Session-Id used in accounting as well.
	AcctSessionID string

	// Tunnel attributes (RFC 2868 §3). Tunnel-Type is L2TP and
	// Tunnel-Medium-Type follows the address family of the endpoints.
	TunnelClientEndpoint netip.Addr // the LAC
	TunnelServerEndpoint netip.Addr // the LNS
	TunnelAssignmentID   string
	TunnelClientAuthID   string // the LAC's Host Name
	TunnelServerAuthID   string // our Host Name
}

// NAS identifies this NAS in every request (RFC 2865 §5.4, §5.32).
type NAS struct {
	Identifier string
	IPAddress  netip.Addr // IPv4 as NAS-IP-Address, IPv6 as NAS-IPv6-Address
}

// Route is one parsed Framed-Route or Framed-IPv6-Route (RFC 2865
// §5.22, RFC 3162 §2.5). An unspecified Gateway means the subscriber.
type Route struct {
	Prefix  netip.Prefix
	Gateway netip.Addr
	Metric  uint32
}

// Attributes is what l2tpd uses from an Access-Accept.
type Attributes struct {
	FramedIPAddress      netip.Addr
	FramedIPNetmask      netip.Addr
	FramedPool           string
	FramedIPv6Prefix     []netip.Prefix
	DelegatedIPv6Prefix  []netip.Prefix
	FramedRoutes         []Route
	DNS1, DNS2           netip.Addr // MS-Primary/Secondary-DNS-Server
	SessionTimeout       time.Duration
	IdleTimeout          time.Duration
	AcctInterimInterval  time.Duration
	Class                [][]byte // echoed in accounting (RFC 2865 §5.25)
	ReplyMessage         string   // Reply-Message values joined by newlines
	MSCHAP2Success       string   // "S=..." authenticator response
	MSCHAPError          string   // MS-CHAP-Error text, "E=... R=... "
	BadRoutes, Malformed int      // values that did not parse
	// Tunnels are the RFC 2868 tunnel assignments, one per tag.
	Tunnels []Tunnel
}

// ParseAttributes decodes the attributes of a reply (the octets after
// the 20-octet header). Unknown attributes are skipped; a value of the
// wrong size is counted in Malformed and ignored; only a broken
// attribute framing is an error.
func ParseAttributes(b []byte) (Attributes, error) {
	var a Attributes
	for len(b) > 0 {
		if len(b) < 2 || int(b[1]) < 2 || int(b[1]) > len(b) {
			return a, ErrAttribute
		}
		t, v := radius.Type(b[0]), b[2:b[1]]
		b = b[b[1]:]
		switch t {
		case rfc2865.FramedIPAddress_Type:
			a.FramedIPAddress = a.addr4(v)
		case rfc2865.FramedIPNetmask_Type:
			a.FramedIPNetmask = a.addr4(v)
		case rfc2869.FramedPool_Type:
			a.FramedPool = string(v)
		case rfc3162.FramedIPv6Prefix_Type:
			if p, ok := parseIPv6Prefix(v); ok {
				a.FramedIPv6Prefix = append(a.FramedIPv6Prefix, p)
			} else {
				a.Malformed++
			}
		case rfc4818.DelegatedIPv6Prefix_Type:
			if p, ok := parseIPv6Prefix(v); ok {
				a.DelegatedIPv6Prefix = append(a.DelegatedIPv6Prefix, p)
			} else {
				a.Malformed++
			}
		case rfc2865.FramedRoute_Type, rfc3162.FramedIPv6Route_Type:
			if r, err := ParseRoute(string(v)); err == nil {
				a.FramedRoutes = append(a.FramedRoutes, r)
			} else {
				a.BadRoutes++
			}
		case rfc2865.SessionTimeout_Type:
			a.SessionTimeout = a.seconds(v)
		case rfc2865.IdleTimeout_Type:
			a.IdleTimeout = a.seconds(v)
		case rfc2869.AcctInterimInterval_Type:
			a.AcctInterimInterval = a.seconds(v)
		case rfc2865.Class_Type:
			a.Class = append(a.Class, append([]byte(nil), v...))
		case rfc2865.ReplyMessage_Type:
			if a.ReplyMessage != "" {
				a.ReplyMessage += "\n"
			}
			a.ReplyMessage += string(v)
		case rfc2865.VendorSpecific_Type:
			a.vendor(v)
		default:
			a.tunnelAttr(t, v)
		}
	}
	return a, nil
}

func (a *Attributes) addr4(v []byte) netip.Addr {
	if len(v) != 4 {
		a.Malformed++
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte(v))
}

func (a *Attributes) seconds(v []byte) time.Duration {
	if len(v) != 4 {
		a.Malformed++
		return 0
	}
	return time.Duration(binary.BigEndian.Uint32(v)) * time.Second
}

// vendor decodes a Vendor-Specific attribute in the format RFC 2865
// §5.26 suggests, which Microsoft's attributes use (RFC 2548 §2).
func (a *Attributes) vendor(v []byte) {
	if len(v) < 4 || binary.BigEndian.Uint32(v) != vendorMS {
		return
	}
	for v = v[4:]; len(v) > 0; {
		if len(v) < 2 || int(v[1]) < 2 || int(v[1]) > len(v) {
			a.Malformed++
			return
		}
		t, sv := v[0], v[2:v[1]]
		v = v[v[1]:]
		switch t {
		case msPriDNS:
			a.DNS1 = a.addr4(sv)
		case msSecDNS:
			a.DNS2 = a.addr4(sv)
		case msChap2Succ:
			// Ident, then the 42-octet "S=" string (RFC 2548 §2.3.3).
			if len(sv) < 2 {
				a.Malformed++
				continue
			}
			a.MSCHAP2Success = string(sv[1:])
		case msChapError:
			if len(sv) < 1 {
				a.Malformed++
				continue
			}
			a.MSCHAPError = string(sv[1:])
		}
	}
}

// parseIPv6Prefix decodes the Reserved, Prefix-Length, Prefix format of
// RFC 3162 §2.3 (also Delegated-IPv6-Prefix, RFC 4818 §3).
func parseIPv6Prefix(v []byte) (netip.Prefix, bool) {
	if len(v) < 2 || len(v) > 18 || v[1] > 128 || int(v[1]+7)/8 > len(v)-2 {
		return netip.Prefix{}, false
	}
	var b [16]byte
	copy(b[:], v[2:])
	p, err := netip.AddrFrom16(b).Prefix(int(v[1]))
	if err != nil {
		return netip.Prefix{}, false
	}
	return p, true
}

// ParseRoute parses a Framed-Route ("192.0.2.0/24 192.0.2.1 1", RFC
// 2865 §5.22) or Framed-IPv6-Route ("2001:db8::/32 :: 1", RFC 3162
// §2.5). An IPv4 destination without a length takes its classful mask;
// the gateway and metric may be absent.
func ParseRoute(s string) (Route, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Route{}, fmt.Errorf("aaa: empty route")
	}
	var r Route
	if strings.Contains(f[0], "/") {
		p, err := netip.ParsePrefix(f[0])
		if err != nil {
			return Route{}, fmt.Errorf("aaa: route %q: %w", s, err)
		}
		r.Prefix = p.Masked()
	} else {
		a, err := netip.ParseAddr(f[0])
		if err != nil {
			return Route{}, fmt.Errorf("aaa: route %q: %w", s, err)
		}
		bits := a.BitLen()
		if a.Is4() {
			switch b := a.As4()[0]; {
			case b < 128:
				bits = 8
			case b < 192:
				bits = 16
			case b < 224:
				bits = 24
			}
		}
		r.Prefix, _ = a.Prefix(bits)
	}
	if len(f) > 1 {
		g, err := netip.ParseAddr(f[1])
		if err != nil || g.Is4() != r.Prefix.Addr().Is4() {
			return Route{}, fmt.Errorf("aaa: route %q: bad gateway", s)
		}
		r.Gateway = g
	}
	if len(f) > 2 {
		m, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return Route{}, fmt.Errorf("aaa: route %q: bad metric", s)
		}
		r.Metric = uint32(m)
	}
	return r, nil
}

// accessAttributes builds the attributes of an Access-Request except
// User-Password, which depends on the server's secret and the Request
// Authenticator and is added by encodeAccess.
func accessAttributes(nas NAS, r *Request) (radius.Attributes, error) {
	p := &radius.Packet{}
	if err := sessionAttributes(p, nas, &r.Session, r.Auth.User); err != nil {
		return nil, err
	}
	a := &r.Auth
	switch a.Protocol {
	case ppp.AuthPAP:
		if len(a.Password) > 128 {
			return nil, errors.New("aaa: PAP password longer than 128 octets")
		}
	case ppp.AuthCHAPMD5:
		// RFC 2865 §5.3, §5.40.
		if len(a.Response) != 16 || len(a.Challenge) == 0 {
			return nil, errors.New("aaa: CHAP response must be 16 octets with a challenge")
		}
		cp := make([]byte, 17)
		cp[0] = a.ID
		copy(cp[1:], a.Response)
		if err := rfc2865.CHAPPassword_Set(p, cp); err != nil {
			return nil, err
		}
		if err := rfc2865.CHAPChallenge_Set(p, a.Challenge); err != nil {
			return nil, err
		}
	case ppp.AuthMSCHAPv2:
		// RFC 2548 §2.3.1, §2.3.2: Ident, Flags, Peer-Challenge,
		// Reserved (8), Response (24).
		if len(a.Challenge) != 16 {
			return nil, errors.New("aaa: MS-CHAPv2 challenge must be 16 octets")
		}
		resp := make([]byte, 50)
		resp[0] = a.ID
		copy(resp[2:18], a.PeerChallenge[:])
		copy(resp[26:50], a.NTResponse[:])
		if err := microsoft.MSCHAPChallenge_Set(p, a.Challenge); err != nil {
			return nil, err
		}
		if err := microsoft.MSCHAP2Response_Set(p, resp); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("aaa: cannot authenticate %v over RADIUS", a.Protocol)
	}
	return p.Attributes, nil
}

// sessionAttributes adds what identifies the NAS, port and tunnel; it
// is shared by Access-Request and Accounting-Request.
func sessionAttributes(p *radius.Packet, nas NAS, r *Session, user string) error {
	if user != "" {
		if err := rfc2865.UserName_SetString(p, user); err != nil {
			return err
		}
	}
	if nas.Identifier != "" {
		if err := rfc2865.NASIdentifier_SetString(p, nas.Identifier); err != nil {
			return err
		}
	}
	switch {
	case nas.IPAddress.Is4():
		b := nas.IPAddress.As4()
		p.Add(rfc2865.NASIPAddress_Type, b[:])
	case nas.IPAddress.Is6():
		b := nas.IPAddress.As16()
		p.Add(rfc3162.NASIPv6Address_Type, b[:])
	}
	rfc2865.NASPort_Set(p, rfc2865.NASPort(r.NASPort))
	rfc2865.NASPortType_Set(p, rfc2865.NASPortType_Value_Virtual)
	rfc2865.ServiceType_Set(p, rfc2865.ServiceType_Value_FramedUser)
	rfc2865.FramedProtocol_Set(p, rfc2865.FramedProtocol_Value_PPP)
	for _, s := range []struct {
		t radius.Type
		v string
	}{
		{rfc2865.CallingStationID_Type, r.CallingStationID},
		{rfc2865.CalledStationID_Type, r.CalledStationID},
		{rfc2866.AcctSessionID_Type, r.AcctSessionID},
	} {
		if s.v == "" {
			continue
		}
		v, err := radius.NewString(s.v)
		if err != nil {
			return fmt.Errorf("aaa: attribute %d: %w", s.t, err)
		}
		p.Add(s.t, v)
	}
	if r.TxConnectSpeed != 0 {
		ci := strconv.FormatUint(uint64(r.TxConnectSpeed), 10)
		if r.RxConnectSpeed != 0 && r.RxConnectSpeed != r.TxConnectSpeed {
			ci += "/" + strconv.FormatUint(uint64(r.RxConnectSpeed), 10)
		}
		rfc2869.ConnectInfo_SetString(p, ci)
	}
	// RFC 2868 §3.1, §3.2: tag 1 groups the attributes of our one tunnel.
	const tag = 1
	rfc2868.TunnelType_Add(p, tag, rfc2868.TunnelType_Value_L2TP)
	medium := rfc2868.TunnelMediumType_Value_IPv4
	if r.TunnelClientEndpoint.Is6() && !r.TunnelClientEndpoint.Is4In6() {
		medium = rfc2868.TunnelMediumType_Value_IPv6
	}
	rfc2868.TunnelMediumType_Add(p, tag, medium)
	for _, s := range []struct {
		add func(*radius.Packet, byte, string) error
		v   string
	}{
		{rfc2868.TunnelClientEndpoint_AddString, addrString(r.TunnelClientEndpoint)},
		{rfc2868.TunnelServerEndpoint_AddString, addrString(r.TunnelServerEndpoint)},
		{rfc2868.TunnelAssignmentID_AddString, r.TunnelAssignmentID},
		{rfc2868.TunnelClientAuthID_AddString, r.TunnelClientAuthID},
		{rfc2868.TunnelServerAuthID_AddString, r.TunnelServerAuthID},
	} {
		if s.v == "" {
			continue
		}
		if err := s.add(p, tag, s.v); err != nil {
			return err
		}
	}
	return nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

// encodePacket writes a request with a zeroed Message-Authenticator as
// its first attribute (RFC 3579 §3.2: on every request here, which also
// defeats the forgery of CVE-2024-3596), then fills in the
// authenticators. For Access-Request and Status-Server the Request
// Authenticator is auth; for Accounting, Disconnect and CoA requests it
// is computed over the packet (RFC 2866 §3, RFC 5176 §2.3) and the
// Message-Authenticator is computed with it zeroed (RFC 5176 §3.1).
func encodePacket(dst []byte, code, id byte, auth [16]byte, attrs radius.Attributes, secret []byte) ([]byte, error) {
	n, err := radius.AttributesEncodedLen(attrs)
	if err != nil {
		return nil, err
	}
	size := headerLen + 18 + n
	if size > maxPacket {
		return nil, errors.New("aaa: request too large")
	}
	start := len(dst)
	dst = append(dst, code, id, byte(size>>8), byte(size))
	computed := code != codeAccessRequest && code != codeStatusServer
	if computed {
		dst = append(dst, make([]byte, 16)...)
	} else {
		dst = append(dst, auth[:]...)
	}
	dst = append(dst, typeMA, 18)
	dst = append(dst, make([]byte, 16)...)
	for _, a := range attrs {
		if a.Type < 0 || a.Type > 255 {
			continue
		}
		dst = append(dst, byte(a.Type), byte(2+len(a.Attribute)))
		dst = append(dst, a.Attribute...)
	}
	pkt := dst[start:]
	mac := hmac.New(md5.New, secret)
	mac.Write(pkt)
	mac.Sum(pkt[headerLen+2 : headerLen+2 : headerLen+18])
	if computed {
		h := md5.New()
		h.Write(pkt)
		h.Write(secret)
		h.Sum(pkt[4:4:20])
	}
	return dst, nil
}

// findMA returns the offset of the Message-Authenticator value in pkt,
// -1 when absent, or an error for broken framing or a duplicate.
func findMA(pkt []byte) (int, error) {
	off := -1
	for i := headerLen; i < len(pkt); {
		if len(pkt)-i < 2 || int(pkt[i+1]) < 2 || i+int(pkt[i+1]) > len(pkt) {
			return -1, ErrAttribute
		}
		if pkt[i] == typeMA {
			if pkt[i+1] != 18 || off >= 0 {
				return -1, ErrBadMessageAuth
			}
			off = i + 2
		}
		i += int(pkt[i+1])
	}
	return off, nil
}

// checkMA verifies a Message-Authenticator at off with the
// Authenticator field replaced by auth (RFC 3579 §3.2). pkt is not
// modified.
func checkMA(pkt []byte, off int, auth *[16]byte, secret []byte) bool {
	mac := hmac.New(md5.New, secret)
	mac.Write(pkt[:4])
	mac.Write(auth[:])
	mac.Write(pkt[headerLen:off])
	var zero [16]byte
	mac.Write(zero[:])
	mac.Write(pkt[off+16:])
	var sum [md5.Size]byte
	return hmac.Equal(mac.Sum(sum[:0]), pkt[off:off+16])
}

// checkHeader validates the length field and trims pkt to it (RFC 2865
// §3: octets beyond Length are padding).
func checkHeader(pkt []byte) ([]byte, error) {
	if len(pkt) < headerLen {
		return nil, ErrShort
	}
	n := int(binary.BigEndian.Uint16(pkt[2:4]))
	if n < headerLen || n > len(pkt) || n > maxPacket {
		return nil, ErrLength
	}
	return pkt[:n], nil
}

// checkResponseAuth verifies a Response Authenticator (RFC 2865 §3):
// MD5(Code+ID+Length+RequestAuth+Attributes+Secret).
func checkResponseAuth(pkt []byte, reqAuth *[16]byte, secret []byte) bool {
	h := md5.New()
	h.Write(pkt[:4])
	h.Write(reqAuth[:])
	h.Write(pkt[headerLen:])
	h.Write(secret)
	var sum [md5.Size]byte
	return hmac.Equal(h.Sum(sum[:0]), pkt[4:20])
}

// verifyResponse checks a response against the request's authenticator:
// the Response Authenticator always, and the Message-Authenticator,
// which Access-Accept, -Reject and -Challenge must carry (RFC 3579
// §3.2; required here against CVE-2024-3596) and which other responses
// are checked for when present. Answers to Status-Server may omit it
// (RFC 5997 §6, table): requireMA is false for them.
func verifyResponse(pkt []byte, reqAuth *[16]byte, secret []byte, requireMA bool) error {
	if !checkResponseAuth(pkt, reqAuth, secret) {
		return ErrAuthenticator
	}
	off, err := findMA(pkt)
	if err != nil {
		return err
	}
	switch pkt[0] {
	case codeAccessAccept, codeAccessReject, codeAccessChallenge:
		if off < 0 && requireMA {
			return ErrNoMessageAuth
		}
	}
	if off >= 0 && !checkMA(pkt, off, reqAuth, secret) {
		return ErrBadMessageAuth
	}
	return nil
}

// encodeResponse writes a response to a request with authenticator
// reqAuth: a Message-Authenticator first, then attrs, then the Response
// Authenticator (RFC 2865 §3, RFC 3579 §3.2, RFC 5176 §3.1).
func encodeResponse(dst []byte, code, id byte, reqAuth *[16]byte, attrs []byte, secret []byte) []byte {
	size := headerLen + 18 + len(attrs)
	start := len(dst)
	dst = append(dst, code, id, byte(size>>8), byte(size))
	dst = append(dst, reqAuth[:]...)
	dst = append(dst, typeMA, 18)
	dst = append(dst, make([]byte, 16)...)
	dst = append(dst, attrs...)
	pkt := dst[start:]
	mac := hmac.New(md5.New, secret)
	mac.Write(pkt)
	mac.Sum(pkt[headerLen+2 : headerLen+2 : headerLen+18])
	h := md5.New()
	h.Write(pkt)
	h.Write(secret)
	h.Sum(pkt[4:4:20])
	return dst
}
