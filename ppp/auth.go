package ppp

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"strings"
	"time"

	"github.com/l2tpd/l2tpd/ppp/mschap"
)

// PAP and CHAP codes (RFC 1334 §2.2, RFC 1994 §4).
const (
	papRequest    = 1
	papAck        = 2
	papNak        = 3
	chapChallenge = 1
	chapResponse  = 2
	chapSuccess   = 3
	chapFailure   = 4
)

type authState uint8

const (
	authIdle    authState = iota
	authWait              // server: waiting for credentials; client: for a challenge or an answer
	authPending           // server: credentials handed to the owner
	authDone
	authFailed
)

// auth is the authentication phase of one Session, either end. The
// client's own state is in Session.client.
type auth struct {
	s        *Session
	deadline time.Time

	// server: last answer, repeated for retransmitted credentials;
	// answerCode 0 means none was sent yet.
	answer     string
	retries    int32
	answerCode uint8
	proto      AuthProto
	state      authState
	timerOn    bool
	id         uint8
	challenge  [mschap.ChallengeSize]byte
}

func (a *auth) reset() {
	a.state = authIdle
	a.timerOn = false
	a.proto = AuthNone
}

func (a *auth) wire() Protocol {
	if a.proto == AuthPAP {
		return ProtoPAP
	}
	return ProtoCHAP
}

func (a *auth) arm(now time.Time, d time.Duration) {
	a.timerOn = true
	a.deadline = now.Add(d)
}

// startServer begins the authenticator side once LCP is opened.
func (a *auth) startServer(now time.Time, p AuthProto) {
	a.proto = p
	a.state = authWait
	if p == AuthPAP {
		// RFC 1334 §2.1: the peer sends first; bound the wait.
		a.arm(now, a.s.cfg.authTimeout)
		return
	}
	a.s.randBytes(a.challenge[:])
	a.id = a.s.randByte()
	a.retries = a.s.cfg.timers.maxConfigure
	a.sendChallenge(now)
}

func (a *auth) sendChallenge(now time.Time) {
	b := a.s.link.begin(ProtoCHAP, chapChallenge, a.id)
	b = append(b, byte(len(a.challenge)))
	b = append(b, a.challenge[:]...)
	b = append(b, a.s.cfg.name...)
	a.s.link.finish(ProtoCHAP, b)
	a.retries--
	a.arm(now, a.s.cfg.timers.restart)
}

// startClient begins the peer side once LCP is opened.
func (a *auth) startClient(now time.Time, p AuthProto) {
	a.proto = p
	a.state = authWait
	if p == AuthPAP {
		a.id = a.s.randByte()
		a.retries = a.s.cfg.timers.maxConfigure
		a.sendPAPRequest(now)
		return
	}
	a.arm(now, a.s.cfg.authTimeout)
}

func (a *auth) sendPAPRequest(now time.Time) {
	c := a.s.client
	b := a.s.link.begin(ProtoPAP, papRequest, a.id)
	b = append(b, byte(len(c.user)))
	b = append(b, c.user...)
	b = append(b, byte(len(c.password)))
	b = append(b, c.password...)
	a.s.link.finish(ProtoPAP, b)
	a.retries--
	a.arm(now, a.s.cfg.timers.restart)
}

func (a *auth) tick(now time.Time) {
	if !a.timerOn || now.Before(a.deadline) {
		return
	}
	a.timerOn = false
	if a.state != authWait {
		return
	}
	server := a.s.cfg.role == RoleServer
	switch {
	case server && a.proto != AuthPAP && a.retries > 0:
		a.sendChallenge(now)
	case !server && a.proto == AuthPAP && a.retries > 0:
		a.sendPAPRequest(now)
	default:
		a.state = authFailed
		a.s.fail(ReasonAuthTimeout)
	}
}

// input handles a PAP or CHAP packet.
func (a *auth) input(now time.Time, proto Protocol, p Packet) {
	if a.state == authIdle || proto != a.wire() {
		return
	}
	if a.s.cfg.role == RoleServer {
		a.serverInput(now, p)
	} else {
		a.clientInput(now, p)
	}
}

func (a *auth) serverInput(now time.Time, p Packet) {
	var req *AuthRequest
	switch {
	case a.proto == AuthPAP && p.Code == papRequest:
		user, rest, ok := lenPrefixed(p.Data)
		pass, _, ok2 := lenPrefixed(rest)
		if !ok || !ok2 {
			return
		}
		if a.repeat(p.ID) {
			return
		}
		a.id = p.ID
		req = &AuthRequest{Protocol: AuthPAP, User: string(user), Password: bytes.Clone(pass)}
	case a.proto != AuthPAP && p.Code == chapResponse:
		if p.ID != a.id {
			return // RFC 1994 §4.1: must match the current challenge
		}
		value, name, ok := lenPrefixed(p.Data)
		if !ok || a.repeat(p.ID) {
			return
		}
		req = &AuthRequest{Protocol: a.proto, User: string(name), ID: p.ID, Challenge: bytes.Clone(a.challenge[:])}
		switch a.proto {
		case AuthCHAPMD5:
			if len(value) != md5.Size {
				return
			}
			req.Response = bytes.Clone(value)
		case AuthMSCHAPv2:
			if len(value) != mschap.ResponseValueSize {
				return
			}
			copy(req.PeerChallenge[:], value[0:16])
			copy(req.NTResponse[:], value[24:48])
		}
	default:
		return
	}
	if a.state != authWait {
		return
	}
	a.state = authPending
	a.timerOn = false
	a.s.link.event(Event{Kind: EventAuthRequest, Auth: req})
}

// repeat answers retransmitted credentials: while the decision is
// pending they are dropped; once decided the answer is sent again
// (RFC 1334 §2.2.1, RFC 1994 §4.2).
func (a *auth) repeat(id uint8) bool {
	switch a.state {
	case authPending:
		return id == a.id
	case authDone, authFailed:
		if id == a.id && a.answerCode != 0 {
			a.sendAnswer()
		}
		return true
	}
	return false
}

func (a *auth) sendAnswer() {
	b := a.s.link.begin(a.wire(), a.answerCode, a.id)
	a.s.link.finish(a.wire(), append(b, a.answer...))
}

// result applies the owner's decision.
func (a *auth) result(now time.Time, r AuthResult) {
	if a.state != authPending {
		return
	}
	if a.proto == AuthMSCHAPv2 && r.Accept && len(r.AuthenticatorResponse) != mschap.AuthResponseSize {
		// Without "S=..." the peer would refuse us (RFC 2759 §5).
		r = AuthResult{Message: "authenticator response missing"}
	}
	msg := r.Message
	switch a.proto {
	case AuthPAP:
		a.answerCode = papNak
		if r.Accept {
			a.answerCode = papAck
		}
		if len(msg) > 255 {
			msg = msg[:255]
		}
		a.answer = string(append([]byte{byte(len(msg))}, msg...))
	case AuthCHAPMD5:
		a.answerCode = chapFailure
		if r.Accept {
			a.answerCode = chapSuccess
		}
		a.answer = msg
	case AuthMSCHAPv2:
		if r.Accept {
			a.answerCode = chapSuccess
			a.answer = r.AuthenticatorResponse + " M=" + msg
		} else {
			// RFC 2759 §6: E=691 authentication failure, no retry.
			a.answerCode = chapFailure
			a.answer = "E=691 R=0 C=" + hex.EncodeToString(a.challenge[:]) + " V=3 M=" + msg
		}
	}
	a.sendAnswer()
	if r.Accept {
		a.state = authDone
		a.s.authDone(now, r)
	} else {
		a.state = authFailed
		a.s.fail(ReasonAuthFailed)
	}
}

func (a *auth) clientInput(now time.Time, p Packet) {
	c := a.s.client
	if a.proto == AuthPAP {
		if a.state != authWait || p.ID != a.id || (p.Code != papAck && p.Code != papNak) {
			return
		}
		msg, _, _ := lenPrefixed(p.Data)
		a.finishClient(now, p.Code == papAck, string(msg))
		return
	}
	switch p.Code {
	case chapChallenge:
		value, _, ok := lenPrefixed(p.Data)
		if !ok || a.state == authDone || a.state == authFailed {
			return
		}
		if c.resp != nil && p.ID == c.respID && bytes.Equal(value, c.gotChallenge) {
			a.s.link.send(ProtoCHAP, chapResponse, p.ID, c.resp)
			return
		}
		if len(value) == 0 || (a.proto == AuthMSCHAPv2 && len(value) != mschap.ChallengeSize) {
			return
		}
		c.gotChallenge = append(c.gotChallenge[:0], value...)
		copy(a.challenge[:], value)
		c.respID = p.ID
		b := c.resp[:0]
		switch a.proto {
		case AuthCHAPMD5:
			// RFC 1994 §4.1: MD5(Identifier || secret || Challenge).
			h := md5.New()
			h.Write([]byte{p.ID})
			h.Write([]byte(c.password))
			h.Write(value)
			b = append(b, md5.Size)
			b = h.Sum(b)
		case AuthMSCHAPv2:
			a.s.randBytes(c.peerChallenge[:])
			c.ntResponse = mschap.GenerateNTResponse(&a.challenge, &c.peerChallenge, c.user, c.password)
			b = append(b, mschap.ResponseValueSize)
			b = append(b, c.peerChallenge[:]...)
			b = append(b, make([]byte, 8)...)
			b = append(b, c.ntResponse[:]...)
			b = append(b, 0)
		}
		b = append(b, c.user...)
		c.resp = b
		a.s.link.send(ProtoCHAP, chapResponse, p.ID, c.resp)
		a.arm(now, a.s.cfg.authTimeout)
	case chapSuccess, chapFailure:
		if a.state != authWait || c.resp == nil || p.ID != c.respID {
			return
		}
		msg := string(p.Data)
		ok := p.Code == chapSuccess
		if ok && a.proto == AuthMSCHAPv2 {
			// RFC 2759 §5: the authenticator proves it knows the password.
			ok = mschap.CheckAuthenticatorResponse(c.password, &c.ntResponse, &c.peerChallenge, &a.challenge, c.user, msg)
			if i := strings.Index(msg, "M="); i >= 0 {
				msg = msg[i+2:]
			}
		}
		a.finishClient(now, ok, msg)
	}
}

func (a *auth) finishClient(now time.Time, ok bool, msg string) {
	a.timerOn = false
	if ok {
		a.state = authDone
		a.s.authDone(now, AuthResult{Accept: true, Message: msg})
		return
	}
	a.state = authFailed
	a.s.failMessage = msg
	a.s.fail(ReasonAuthFailed)
}

// lenPrefixed splits a one-octet length-prefixed field off b.
func lenPrefixed(b []byte) (field, rest []byte, ok bool) {
	if len(b) < 1 || int(b[0]) > len(b)-1 {
		return nil, nil, false
	}
	n := int(b[0])
	return b[1 : 1+n], b[1+n:], true
}
