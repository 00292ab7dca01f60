package ppp

import (
	"bytes"
	"crypto/md5"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/ppp/mschap"
)

// What a LAC proxies after negotiating CHAP-MD5 with a client
// (RFC 2661 §4.4.5): its own request (MRU 1460, CHAP, magic) and the
// client's (MRU 1400, magic, PFC, ACFC).
func chapProxy() *ProxyLCP {
	chal := bytes.Repeat([]byte{0x11}, 16)
	h := md5.New()
	h.Write([]byte{7})
	h.Write([]byte("s3cret"))
	h.Write(chal)
	return &ProxyLCP{
		InitialReceived: []byte{1, 4, 5, 0x78, 5, 6, 9, 9, 9, 9, 7, 2, 8, 2},
		LastSent:        []byte{1, 4, 5, 0xb4, 3, 5, 0xc2, 0x23, 5, 5, 6, 1, 2, 3, 4},
		LastReceived:    []byte{1, 4, 5, 0x78, 5, 6, 9, 9, 9, 9, 7, 2, 8, 2},
		HasAuth:         true,
		AuthType:        ProxyAuthCHAP,
		AuthName:        []byte("alice"),
		AuthChallenge:   chal,
		AuthID:          7,
		AuthResponse:    h.Sum(nil),
	}
}

// RFC 2661 §4.4.5 with each renegotiation policy.
func TestEvaluateProxyPolicies(t *testing.T) {
	cfg := serverConfig(AuthMSCHAPv2, AuthCHAPMD5)
	cfg.setDefaults()
	bigMRU := chapProxy()
	bigMRU.LastReceived = []byte{1, 4, 0x10, 0, 5, 6, 9, 9, 9, 9}
	noAuth := chapProxy()
	noAuth.LastSent = []byte{5, 6, 1, 2, 3, 4}
	noAuth.AuthType = ProxyAuthNone
	papOnly := chapProxy()
	papOnly.LastSent = []byte{3, 4, 0xc0, 0x23, 5, 6, 1, 2, 3, 4}
	papOnly.AuthType, papOnly.AuthResponse = ProxyAuthPAP, []byte("s3cret")
	cases := []struct {
		name   string
		p      *ProxyLCP
		policy Renegotiate
		accept bool
	}{
		{"fits, on-mismatch", chapProxy(), RenegotiateOnMismatch, true},
		{"fits, never", chapProxy(), RenegotiateNever, true},
		{"fits, always", chapProxy(), RenegotiateAlways, false},
		{"MRU too big, on-mismatch", bigMRU, RenegotiateOnMismatch, false},
		{"MRU too big, never", bigMRU, RenegotiateNever, true},
		{"PAP outside policy, on-mismatch", papOnly, RenegotiateOnMismatch, false},
		{"PAP outside policy, never", papOnly, RenegotiateNever, true},
		{"no authentication, never", noAuth, RenegotiateNever, false},
		{"no proxy LCP", &ProxyLCP{}, RenegotiateNever, false},
		{"malformed", &ProxyLCP{LastSent: []byte{1, 9}, LastReceived: []byte{}}, RenegotiateNever, false},
	}
	for _, c := range cases {
		d := EvaluateProxy(&cfg, c.p, c.policy)
		if d.Accept != c.accept {
			t.Errorf("%s: accept %v (%s)", c.name, d.Accept, d.Reason)
		}
		if !d.Accept && d.Reason == "" {
			t.Errorf("%s: no reason", c.name)
		}
	}
	d := EvaluateProxy(&cfg, chapProxy(), RenegotiateOnMismatch)
	if d.AuthProto != AuthCHAPMD5 || d.PeerMRU != 1400 || d.OurMRU != 1460 || d.PeerMagic != 0x09090909 || !d.PeerACFC || !d.PeerPFC {
		t.Errorf("decision %+v", d)
	}
	if a := d.Auth; a == nil || a.Protocol != AuthCHAPMD5 || a.User != "alice" || a.ID != 7 || len(a.Response) != 16 {
		t.Errorf("auth %+v", a)
	}
	d = EvaluateProxy(&cfg, papOnly, RenegotiateNever)
	if a := d.Auth; a == nil || a.Protocol != AuthPAP || string(a.Password) != "s3cret" {
		t.Errorf("PAP auth %+v", a)
	}
}

// Accepted proxy: the engine starts with LCP Opened, hands the proxied
// credentials over, and answers the peer with the CHAP Success.
func TestStartProxyAccepted(t *testing.T) {
	cfg := serverConfig(AuthCHAPMD5)
	s, _ := NewSession(cfg)
	d := EvaluateProxy(&cfg, chapProxy(), RenegotiateOnMismatch)
	var out Output
	s.StartProxy(t0, d, &out)
	if s.LCPState() != StateOpened || s.Phase() != PhaseAuthenticate {
		t.Fatalf("LCP %v phase %v", s.LCPState(), s.Phase())
	}
	e, ok := findEvent(out.Events, EventAuthRequest, 0)
	if !ok || out.NumFrames() != 0 {
		t.Fatalf("events %v frames %d", kinds(out.Events), out.NumFrames())
	}
	r := LocalUsers{"alice": "s3cret"}.Authenticate(e.Auth)
	if !r.Accept {
		t.Fatal("proxied CHAP response not accepted")
	}
	out.Reset()
	s.AuthResult(t0, r, &out)
	sent := decodeOutput(t, &out)
	if len(sent) < 2 || sent[0].proto != ProtoCHAP || sent[0].p.Code != chapSuccess || sent[0].p.ID != 7 {
		t.Fatalf("sent %+v", sent)
	}
	// The proxied client MRU bounds what we send; PFC/ACFC are in use.
	if sent[1].proto != ProtoIPCP || out.Frame(1)[0] == 0xff || s.link.mru != 1400 {
		t.Errorf("IPCP frame %x mru %d", out.Frame(1), s.link.mru)
	}
	if s.Phase() != PhaseNetwork {
		t.Errorf("phase %v", s.Phase())
	}
}

// A proxied client is in its network phase as soon as the LAC connects
// the call (RFC 2661 §4.4.5), so its IPCP Configure-Request can arrive
// while we still check the proxied credentials. It is answered once
// they are accepted, not discarded (which would cost the client its
// restart interval, RFC 1661 §4.6), and dropped if they are refused.
func TestStartProxyHoldsNCPUntilAuthenticated(t *testing.T) {
	ipcpReq := []byte{0xff, 0x03, 0x80, 0x21, 1, 5, 0, 10, 3, 6, 0, 0, 0, 0}
	for _, accept := range []bool{true, false} {
		cfg := serverConfig(AuthCHAPMD5)
		s, _ := NewSession(cfg)
		d := EvaluateProxy(&cfg, chapProxy(), RenegotiateOnMismatch)
		var out Output
		s.StartProxy(t0, d, &out)
		e, ok := findEvent(out.Events, EventAuthRequest, 0)
		if !ok {
			t.Fatalf("events %v", kinds(out.Events))
		}
		out.Reset()
		s.Input(t0, ipcpReq, &out)
		if out.NumFrames() != 0 || s.IPCPState() != StateInitial {
			t.Fatalf("answered IPCP before the authentication: %d frames, IPCP %v", out.NumFrames(), s.IPCPState())
		}
		r := LocalUsers{"alice": "s3cret"}.Authenticate(e.Auth)
		if !accept {
			r = AuthResult{Message: "refused"}
		}
		s.AuthResult(t0.Add(time.Second), r, &out)
		answered := false
		for _, f := range decodeOutput(t, &out) {
			if f.proto == ProtoIPCP && f.p.ID == 5 && f.p.Code >= 2 && f.p.Code <= 4 {
				answered = true
			}
		}
		if answered != accept {
			t.Fatalf("accept %v: client's IPCP Configure-Request answered %v; phase %v", accept, answered, s.Phase())
		}
	}
}

// A proxy decision that renegotiates starts LCP from scratch; one
// without usable credentials challenges the peer itself.
func TestStartProxyRenegotiateAndOwnChallenge(t *testing.T) {
	cfg := serverConfig(AuthCHAPMD5)
	s, _ := NewSession(cfg)
	var out Output
	s.StartProxy(t0, EvaluateProxy(&cfg, chapProxy(), RenegotiateAlways), &out)
	if sent := decodeOutput(t, &out); len(sent) != 1 || sent[0].proto != ProtoLCP || sent[0].p.Code != CodeConfigureRequest {
		t.Fatalf("always: sent %+v", sent)
	}
	p := chapProxy()
	p.HasAuth = false
	s, _ = NewSession(cfg)
	out.Reset()
	d := EvaluateProxy(&cfg, p, RenegotiateOnMismatch)
	s.StartProxy(t0, d, &out)
	if sent := decodeOutput(t, &out); !d.Accept || len(sent) != 1 || sent[0].proto != ProtoCHAP || sent[0].p.Code != chapChallenge {
		t.Fatalf("no proxy auth: accept %v sent %+v", d.Accept, sent)
	}
}

// RFC 1994 §4.1: unanswered challenges are repeated Max-Configure times;
// a response arriving while the decision is pending is not repeated to
// the owner.
func TestCHAPServerRetransmitAndPending(t *testing.T) {
	cfg := serverConfig(AuthMSCHAPv2)
	cfg.Timers = Timers{MaxConfigure: 3}
	s, _ := NewSession(cfg)
	var out Output
	s.Start(t0, &out)
	req := decodeOutput(t, &out)[0].p
	out.Reset()
	s.Input(t0, lcpFrame(CodeConfigureAck, req.ID, req.Data), &out)
	s.Input(t0, lcpFrame(CodeConfigureRequest, 1, nil), &out)
	var challenges []Packet
	now := t0
	for i := 0; i < 10 && !s.Down(); i++ {
		for _, sp := range decodeOutput(t, &out) {
			if sp.proto == ProtoCHAP {
				challenges = append(challenges, Packet{sp.p.Code, sp.p.ID, bytes.Clone(sp.p.Data)})
			}
		}
		out.Reset()
		if len(challenges) == 2 {
			break
		}
		d, _ := s.Deadline()
		now = d
		s.Tick(now, &out)
	}
	if len(challenges) != 2 || !bytes.Equal(challenges[0].Data, challenges[1].Data) || challenges[0].ID != challenges[1].ID {
		t.Fatalf("challenges %+v", challenges)
	}
	c := challenges[0]
	authC := [16]byte(c.Data[1:17])
	var peerC [16]byte
	peerC[0] = 1
	nt := mschap.GenerateNTResponse(&authC, &peerC, "alice", "s3cret")
	val := append(append(append(peerC[:], make([]byte, 8)...), nt[:]...), 0)
	resp := frameOf(ProtoCHAP, chapResponse, c.ID, append(append([]byte{49}, val...), "alice"...))
	s.Input(now, resp, &out)
	e, ok := findEvent(out.Events, EventAuthRequest, 0)
	if !ok || e.Auth.NTResponse != nt || e.Auth.PeerChallenge != peerC {
		t.Fatalf("events %v", kinds(out.Events))
	}
	out.Reset()
	s.Input(now, resp, &out)
	if len(out.Events) != 0 || out.NumFrames() != 0 {
		t.Fatal("duplicate response while pending")
	}
	if _, ok := s.Deadline(); ok {
		// The owner (RADIUS) decides; the engine does not time it out.
		d, _ := s.Deadline()
		if d.Before(now.Add(time.Second)) {
			t.Errorf("deadline %v while waiting for the decision", d.Sub(now))
		}
	}
	s.AuthResult(now, LocalUsers{"alice": "s3cret"}.Authenticate(e.Auth), &out)
	sent := decodeOutput(t, &out)
	if sent[0].p.Code != chapSuccess || !bytes.HasPrefix(sent[0].p.Data, []byte("S=")) {
		t.Fatalf("sent %+v", sent[0])
	}
	// A retransmitted response after Success gets the Success again.
	out.Reset()
	s.Input(now, resp, &out)
	if sent := decodeOutput(t, &out); len(sent) != 1 || sent[0].p.Code != chapSuccess {
		t.Errorf("repeat: %+v", sent)
	}
}
