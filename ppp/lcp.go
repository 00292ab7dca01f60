package ppp

import (
	"encoding/binary"
	"time"
)

// LCP option types (RFC 1661 §6, RFC 1570).
const (
	lcpOptMRU      = 1
	lcpOptACCM     = 2
	lcpOptAuth     = 3
	lcpOptQuality  = 4
	lcpOptMagic    = 5
	lcpOptPFC      = 7
	lcpOptACFC     = 8
	lcpOptCallback = 13
)

const chapAlgMD5, chapAlgMSCHAPv2 = 5, 0x81

// lcp is the Link Control Protocol layer of one Session.
type lcp struct {
	// f's deadline is also the next Echo-Request's: the restart timer
	// never runs in Opened, where alone the echoes do (RFC 1661 §4.1:
	// every way into Opened stops it, every way out calls tld, which
	// stops the echoes).
	f fsm
	s *Session

	authIdx int32 // index in cfg.auth of the protocol we ask for (server)

	// Our request.
	magic uint32
	mru   uint16 // 0: not requested

	// What the peer asked of us and we acknowledged.
	peerMRU   uint16
	peerMagic uint32

	loops       int32 // Magic-Number collisions seen (RFC 1661 §6.4)
	echoPending int32

	sendMagic bool
	sendAuth  bool
	peerACFC  bool
	peerPFC   bool
	peerAuth  AuthProto // client: protocol the server wants
	// Negotiated outcome of our request.
	ourAuth AuthProto // server: protocol the peer agreed to

	echoOn bool
	echoID uint8
}

func (l *lcp) reset() {
	cfg := &l.s.cfg
	l.mru = 0
	if cfg.mru != 0 && cfg.mru != 1500 {
		l.mru = cfg.mru
	}
	l.sendMagic = true
	l.magic = l.s.randMagic()
	l.sendAuth = cfg.role == RoleServer && len(cfg.auth) > 0
	l.authIdx = 0
	l.ourAuth = AuthNone
}

func appendAuthOption(b []byte, a AuthProto) []byte {
	switch a {
	case AuthPAP:
		return append(b, lcpOptAuth, 4, 0xc0, 0x23)
	case AuthCHAPMD5:
		return append(b, lcpOptAuth, 5, 0xc2, 0x23, chapAlgMD5)
	case AuthMSCHAPv2:
		return append(b, lcpOptAuth, 5, 0xc2, 0x23, chapAlgMSCHAPv2)
	}
	return b
}

// parseAuthOption decodes an Authentication-Protocol value; AuthNone
// means a protocol we do not implement (EAP, CHAP-MS-v1, ...).
func parseAuthOption(v []byte) AuthProto {
	if len(v) < 2 {
		return AuthNone
	}
	switch Protocol(binary.BigEndian.Uint16(v)) {
	case ProtoPAP:
		if len(v) == 2 {
			return AuthPAP
		}
	case ProtoCHAP:
		if len(v) == 3 && v[2] == chapAlgMD5 {
			return AuthCHAPMD5
		}
		if len(v) == 3 && v[2] == chapAlgMSCHAPv2 {
			return AuthMSCHAPv2
		}
	}
	return AuthNone
}

func (l *lcp) appendRequest(b []byte) []byte {
	if l.mru != 0 {
		b = appendOption16(b, lcpOptMRU, l.mru)
	}
	if l.sendAuth {
		b = appendAuthOption(b, l.s.cfg.auth[l.authIdx])
	}
	if l.sendMagic {
		b = appendOption32(b, lcpOptMagic, l.magic)
	}
	return b
}

type verdict uint8

const (
	vAck verdict = iota
	vNak
	vRej
)

// negotiate runs judge over every option of a Configure-Request and
// builds the reply of RFC 1661 §5.3-5.4: Reject if any option is
// rejected, else Nak if any is Nak'd, else Ack. judge appends its Nak
// value when it returns vNak.
func negotiate(opts, reply []byte, nakAllowed bool, judge func(o Option, nak []byte) (verdict, []byte)) (uint8, []byte) {
	start := len(reply)
	code := uint8(CodeConfigureAck)
	for rest := opts; len(rest) > 0; {
		o, r, err := NextOption(rest)
		if err != nil {
			break
		}
		rest = r
		mark := len(reply)
		v, out := judge(o, reply)
		if v == vNak && !nakAllowed {
			v = vRej
		}
		switch v {
		case vAck:
			reply = out[:mark]
		case vNak:
			if code == CodeConfigureReject {
				reply = out[:mark]
				continue
			}
			code = CodeConfigureNak
			reply = out
		case vRej:
			if code != CodeConfigureReject {
				reply = reply[:start]
				code = CodeConfigureReject
				mark = start
			}
			reply = appendOptionRaw(out[:mark], o)
		}
	}
	if code == CodeConfigureAck {
		reply = append(reply[:start], opts...)
	}
	return code, reply
}

func (l *lcp) checkRequest(opts, reply []byte, nakAllowed bool) (uint8, []byte) {
	cfg := &l.s.cfg
	l.peerMRU, l.peerMagic, l.peerACFC, l.peerPFC, l.peerAuth = 0, 0, false, false, AuthNone
	if l.sendMagic && nakAllowed {
		for rest := opts; len(rest) > 0; {
			o, r, _ := NextOption(rest)
			rest = r
			if o.Type == lcpOptMagic && len(o.Value) == 4 && binary.BigEndian.Uint32(o.Value) == l.magic {
				// RFC 1661 §6.4: our own number coming back suggests a
				// looped-back link. Only the Magic-Number is Nak'd, so
				// that a loop keeps showing it rather than a Reject of
				// options we sent ourselves.
				l.loops++
				l.magic = l.s.randMagic()
				return CodeConfigureNak, appendOption32(reply, lcpOptMagic, l.s.randMagicNot(l.magic))
			}
		}
	}
	return negotiate(opts, reply, nakAllowed, func(o Option, nak []byte) (verdict, []byte) {
		switch o.Type {
		case lcpOptMRU:
			if len(o.Value) != 2 {
				return vRej, nak
			}
			v := binary.BigEndian.Uint16(o.Value)
			if v < cfg.minMRU {
				return vNak, appendOption16(nak, lcpOptMRU, cfg.minMRU)
			}
			if v > cfg.maxMRU {
				return vNak, appendOption16(nak, lcpOptMRU, cfg.maxMRU)
			}
			l.peerMRU = v
			return vAck, nak
		case lcpOptACCM:
			// Meaningless on a synchronous L2TP link (RFC 2661 §5.1
			// carries frames without HDLC escaping): accept any map.
			if len(o.Value) != 4 {
				return vRej, nak
			}
			return vAck, nak
		case lcpOptAuth:
			if cfg.role == RoleServer {
				// The LNS does not authenticate itself to subscribers.
				return vRej, nak
			}
			a := parseAuthOption(o.Value)
			if a != AuthNone && l.s.supports(a) {
				l.peerAuth = a
				return vAck, nak
			}
			return vNak, appendAuthOption(nak, cfg.auth[0])
		case lcpOptMagic:
			if len(o.Value) != 4 {
				return vRej, nak
			}
			v := binary.BigEndian.Uint32(o.Value)
			if v == 0 || (l.sendMagic && v == l.magic) {
				// Zero is not a magic number; an equal one reaches here
				// only once Naks are exhausted and becomes a Reject.
				return vNak, appendOption32(nak, lcpOptMagic, l.s.randMagicNot(l.magic))
			}
			l.peerMagic = v
			return vAck, nak
		case lcpOptPFC:
			if len(o.Value) != 0 {
				return vRej, nak
			}
			l.peerPFC = true
			return vAck, nak
		case lcpOptACFC:
			if len(o.Value) != 0 {
				return vRej, nak
			}
			l.peerACFC = true
			return vAck, nak
		}
		// Quality-Protocol, Callback (RFC 1570 §2.3), multilink and the
		// rest are not offered on this link.
		return vRej, nak
	})
}

func (l *lcp) gotAck(opts []byte) {
	if l.sendAuth {
		l.ourAuth = l.s.cfg.auth[l.authIdx]
	} else {
		l.ourAuth = AuthNone
	}
}

func (l *lcp) gotNak(opts []byte) bool {
	cfg := &l.s.cfg
	for rest := opts; len(rest) > 0; {
		o, r, _ := NextOption(rest)
		rest = r
		switch o.Type {
		case lcpOptMRU:
			if len(o.Value) != 2 {
				return false
			}
			v := binary.BigEndian.Uint16(o.Value)
			if v >= cfg.minMRU && v <= cfg.maxMRU {
				l.mru = v
				if v == 1500 {
					l.mru = 0
				}
			}
		case lcpOptAuth:
			if !l.sendAuth {
				continue
			}
			// RFC 1661 §6.2: the Nak names the protocol the peer wants;
			// take it if we allow it, else offer our next preference.
			want := parseAuthOption(o.Value)
			next := -1
			for i, a := range cfg.auth {
				if a == want && want != AuthNone {
					next = i
					break
				}
			}
			if next < 0 {
				next = int(l.authIdx) + 1
			}
			if next >= len(cfg.auth) {
				l.s.fail(ReasonNoAuthProtocol)
				continue
			}
			l.authIdx = int32(next) // NewSession bounds the list
		case lcpOptMagic:
			l.magic = l.s.randMagic()
		}
	}
	return true
}

func (l *lcp) gotReject(opts []byte) bool {
	for rest := opts; len(rest) > 0; {
		o, r, _ := NextOption(rest)
		rest = r
		switch o.Type {
		case lcpOptMRU:
			l.mru = 0
		case lcpOptAuth:
			if l.sendAuth {
				l.sendAuth = false
				l.s.fail(ReasonNoAuthProtocol)
			}
		case lcpOptMagic:
			l.sendMagic = false
		default:
			return false // we never sent it
		}
	}
	return true
}

func (l *lcp) session() *Session      { return l.s }
func (l *lcp) up(now time.Time)       { l.s.lcpUp(now) }
func (l *lcp) down(now time.Time)     { l.s.lcpDown(now) }
func (l *lcp) started(now time.Time)  {}
func (l *lcp) finished(now time.Time) { l.s.lcpFinished(now) }

func (l *lcp) extraCode(now time.Time, p Packet) bool {
	opened := l.f.state == StateOpened
	switch p.Code {
	case CodeProtocolReject:
		// RFC 1661 §5.7: only meaningful in Opened.
		if !opened || len(p.Data) < 2 {
			return true
		}
		proto := Protocol(binary.BigEndian.Uint16(p.Data))
		if proto == ProtoLCP {
			l.s.fail(ReasonProtocolRejected)
			l.f.event(now, EvRXJMinus, p.ID, nil)
			return true
		}
		l.f.event(now, EvRXJPlus, p.ID, nil)
		l.s.protocolRejected(now, proto)
	case CodeEchoRequest:
		// RFC 1661 §5.8: answer only in Opened, with our magic number.
		if !opened || len(p.Data) < 4 {
			return true
		}
		if m := binary.BigEndian.Uint32(p.Data); l.sendMagic && m != 0 && m == l.magic {
			l.loops++
		}
		rest := p.Data[4:]
		if max := l.s.link.maxInfo() - 8; len(rest) > max {
			rest = rest[:max]
		}
		b := l.s.link.begin(ProtoLCP, CodeEchoReply, p.ID)
		b = binary.BigEndian.AppendUint32(b, l.ourMagic())
		l.s.link.finish(ProtoLCP, append(b, rest...))
	case CodeEchoReply:
		if opened && p.ID == l.echoID {
			l.echoPending = 0
		}
	case CodeDiscardRequest, CodeIdentification, CodeTimeRemaining:
		// RFC 1661 §5.10, RFC 1570 §2: informational, no answer.
	default:
		return false
	}
	return true
}

func (l *lcp) ourMagic() uint32 {
	if l.sendMagic {
		return l.magic
	}
	return 0
}

func (l *lcp) startEcho(now time.Time) {
	cfg := &l.s.cfg
	l.echoOn = cfg.echoInterval > 0
	l.echoPending = 0
	l.f.deadline = now.Add(cfg.echoInterval)
}

// echoTick sends the keepalive and declares the link dead after
// EchoFailures unanswered requests.
func (l *lcp) echoTick(now time.Time) {
	if !l.echoOn || now.Before(l.f.deadline) {
		return
	}
	cfg := &l.s.cfg
	if l.echoPending >= cfg.timers.echoFailures {
		l.echoOn = false
		l.s.fail(ReasonEchoTimeout)
		return
	}
	l.echoPending++
	l.echoID++
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], l.ourMagic())
	l.s.link.send(ProtoLCP, CodeEchoRequest, l.echoID, m[:])
	l.f.deadline = now.Add(cfg.echoInterval)
}
