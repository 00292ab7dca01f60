package main_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// answerTimeout bounds the wait for each answer l2tpd owes the replayed LAC.
const answerTimeout = 5 * time.Second

// replayCase is one capture whose LAC side is replayed against l2tpd.
type replayCase struct {
	file     string
	lac, lns netip.Addr
	// from is the first frame of the tunnel to replay.
	from int
	// skip are frames left out, with the reason.
	skip map[int]string
	// clear are frames the real LNS sent on its own initiative (a
	// RADIUS disconnect, an operator); l2tpd is asked for the same with
	// `l2tpctl clear session|tunnel` before its answer is expected.
	clear map[int]string
	// secret configures l2tpd's default peer; needed when the capture's
	// LAC challenged its LNS.
	secret string
}

var replayCases = []replayCase{
	{
		file: "xl2tpd-lac-lns-pppd-fails.pcap",
		lac:  netip.MustParseAddr("198.18.0.2"), lns: netip.MustParseAddr("198.18.0.3"),
		from: 1,
	},
	{
		file: "kernel-xl2tpd-pppd-chap.pcap",
		lac:  netip.MustParseAddr("198.18.100.2"), lns: netip.MustParseAddr("198.18.100.1"),
		from: 1,
	},
	{
		file: "xl2tpd-lac-l2tpns-lns.pcap",
		lac:  netip.MustParseAddr("198.18.0.2"), lns: netip.MustParseAddr("198.18.0.4"),
		from: 1,
		// Frame 32 is the CDN l2tpns sent on a RADIUS disconnect.
		clear: map[int]string{32: "session"},
		skip: map[int]string{
			37: "StopCCN l2tpns sent back after the LAC's StopCCN (RFC 2661 §6.4 wants only the ZLB)",
			38: "retransmission of frame 37",
			39: "retransmission of frame 37",
		},
		// The LAC challenged l2tpns (Challenge AVP in its SCCRQ).
		secret: "replay-secret",
	},
	{
		file: "l2tpv2-windows-lac-cisco-lns-tunnelauth-pap.pcap",
		lac:  netip.MustParseAddr("192.168.101.233"), lns: netip.MustParseAddr("192.168.98.222"),
		// Frames 1-44 end an earlier tunnel.
		from: 45,
	},
}

// Replays the LAC side of real captures against l2tpd on loopback and
// checks that l2tpd answers with the message types the real LNS sent
// and reaches the states the real LNS reached (RFC 2661 §5, §7).
func TestE2EReplay(t *testing.T) {
	requireE2E(t)
	for _, c := range replayCases {
		t.Run(strings.TrimSuffix(c.file, ".pcap"), func(t *testing.T) {
			runReplay(t, c)
		})
	}
}

func runReplay(t *testing.T, c replayCase) {
	frames, err := readPcapUDP("testdata/pcap/" + c.file)
	if err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	d := startL2TPD(t, "", l2tpdConfig{
		HostName: "l2tpd-replay",
		Listen:   fmt.Sprintf("127.0.0.1:%d", port),
		Default:  peerConfig{Secret: c.secret},
	})
	conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &replayer{
		t: t, d: d, conn: conn, secret: c.secret,
		tunnelMap: map[uint16]uint16{}, sessionMap: map[uint16]uint16{},
		lacSessions: map[uint16]uint16{},
	}
	replayed := 0
	for _, fr := range frames {
		if fr.Number < c.from || (fr.SrcPort != 1701 && fr.DstPort != 1701) {
			continue
		}
		if why, ok := c.skip[fr.Number]; ok {
			t.Logf("frame %d left out: %s", fr.Number, why)
			continue
		}
		m, err := parseL2TP(fr.Payload)
		if err != nil {
			t.Fatalf("frame %d: %v", fr.Number, err)
		}
		if !m.Control {
			continue // PPP data is not replayed
		}
		if what, ok := c.clear[fr.Number]; ok {
			r.clearFromCLI(fr.Number, what)
		}
		switch fr.Src {
		case c.lac:
			r.sendLAC(fr.Number, m)
		case c.lns:
			r.expectLNS(fr.Number, m)
		default:
			t.Fatalf("frame %d from %v, neither LAC nor LNS", fr.Number, fr.Src)
		}
		replayed++
	}
	if replayed == 0 {
		t.Fatal("nothing replayed")
	}
	r.checkNothingMore()
	if !r.tunnelClosed {
		r.checkShutdownStopCCN()
	}
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// replayer plays the LAC: it sends the captured LAC messages with the
// IDs and acknowledgements l2tpd's answers call for, and keeps l2tpd's
// control channel (RFC 2661 §5.8) in step.
type replayer struct {
	t      *testing.T
	d      *daemon
	conn   *net.UDPConn
	secret string

	// tunnelMap and sessionMap turn the IDs the real LNS assigned into
	// the ones l2tpd assigned.
	tunnelMap  map[uint16]uint16
	sessionMap map[uint16]uint16
	// lacSessions maps the LAC's own session IDs to l2tpd's.
	lacSessions map[uint16]uint16

	lacTunnelID  uint16 // the LAC's Assigned Tunnel ID (from its SCCRQ)
	lacHostName  string
	lacChallenge []byte // Challenge the LAC sent in its SCCRQ
	lnsChallenge []byte // Challenge l2tpd sent in its SCCRP
	tunnelID     uint16 // l2tpd's Assigned Tunnel ID
	sessionID    uint16 // l2tpd's Assigned Session ID of the last call
	tunnelClosed bool

	lastSCCRQ []byte // for retransmission while l2tpd starts listening

	nextRecv  uint16 // next Ns expected from l2tpd: our Nr
	sentNs    uint16 // Ns of our last non-ZLB message
	sentAny   bool
	ackedNr   uint16 // highest Nr l2tpd sent
	gotAck    bool
	pending   []tMsg // in-order messages from l2tpd not yet matched
	buf       []byte
	dataCount int
}

// sendLAC sends a captured LAC message rewritten for l2tpd.
func (r *replayer) sendLAC(frame int, m tMsg) {
	t := r.t
	t.Helper()
	tunnel := uint16(0)
	if m.TunnelID != 0 {
		var ok bool
		if tunnel, ok = r.tunnelMap[m.TunnelID]; !ok {
			t.Fatalf("frame %d: tunnel %d was never assigned by l2tpd", frame, m.TunnelID)
		}
	}
	session := uint16(0)
	if m.Session != 0 {
		var ok bool
		if session, ok = r.sessionMap[m.Session]; !ok {
			t.Fatalf("frame %d: session %d was never assigned by l2tpd", frame, m.Session)
		}
	}
	var avps [][]byte
	for _, a := range m.AVPs {
		if a.Hidden {
			t.Fatalf("frame %d: hidden AVP %d cannot be replayed under another secret", frame, a.Type)
		}
		// The captured response answers the real LNS's challenge; the
		// right one for l2tpd's challenge is added below.
		if a.Vendor == 0 && a.Type == avpChallengeResponse {
			continue
		}
		avps = append(avps, a.Raw)
	}
	if m.Type == mtSCCCN && r.lnsChallenge != nil {
		if r.secret == "" {
			t.Fatalf("frame %d: l2tpd challenged a peer it has no secret for", frame)
		}
		avps = append(avps, encodeAVP(true, avpChallengeResponse, challengeResponse(mtSCCCN, r.secret, r.lnsChallenge)))
	}
	pkt := appendControl(nil, tunnel, session, m.Ns, r.nextRecv, avps...)
	r.send(frame, pkt)
	if m.ZLB {
		return
	}
	r.sentNs, r.sentAny = m.Ns, true

	switch m.Type {
	case mtSCCRQ:
		r.lastSCCRQ = pkt
		id, ok := m.uint16AVP(avpAssignedTunnelID)
		if !ok {
			t.Fatalf("frame %d: SCCRQ without Assigned Tunnel ID", frame)
		}
		r.lacTunnelID = id
		if a, ok := m.find(avpHostName); ok {
			r.lacHostName = string(a.Value)
		}
		if a, ok := m.find(avpChallenge); ok {
			r.lacChallenge = a.Value
		}
	case mtSCCCN:
		// RFC 2661 §7.2: the LNS's tunnel is established on SCCCN.
		tu := r.d.waitTunnel(t, fmt.Sprintf("tunnel %d established after frame %d (SCCCN)", r.tunnelID, frame), func(tu tunnelJSON) bool {
			return tu.TunnelID == uint32(r.tunnelID) && tu.State == "established"
		})
		if tu.Version != 2 || tu.PeerTunnelID != uint32(r.lacTunnelID) || tu.PeerHostName != r.lacHostName || !strings.Contains(tu.Peer, "127.0.0.1") {
			t.Errorf("tunnel %+v; want version 2, peer tunnel %d, host name %q, peer 127.0.0.1", tu, r.lacTunnelID, r.lacHostName)
		}
	case mtICCN:
		// RFC 2661 §7.4.1: the LNS's session is established on ICCN.
		sid := r.sessionMap[m.Session]
		r.d.waitSession(t, fmt.Sprintf("session %d established after frame %d (ICCN)", sid, frame), func(s sessionJSON) bool {
			return s.SessionID == uint32(sid) && s.TunnelID == uint32(r.tunnelID) && s.State == "established"
		})
	case mtCDN:
		// RFC 2661 §6.12: the session is cleared; the tunnel stays.
		sid := r.sessionMap[m.Session]
		if m.Session == 0 {
			// A CDN may address the session by the LAC's Assigned
			// Session ID only.
			own, _ := m.uint16AVP(avpAssignedSessionID)
			sid = r.lacSessions[own]
		}
		r.d.waitSessionGone(t, fmt.Sprintf("session %d cleared after frame %d (CDN)", sid, frame), uint32(sid))
		ts, err := r.d.tunnels()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, tu := range ts {
			found = found || tu.TunnelID == uint32(r.tunnelID)
		}
		if !found {
			t.Errorf("tunnel %d gone after a CDN: %+v", r.tunnelID, ts)
		}
	case mtStopCCN:
		// RFC 2661 §6.4: the tunnel and its sessions are cleared.
		r.waitTunnelGone(fmt.Sprintf("tunnel %d cleared after frame %d (StopCCN)", r.tunnelID, frame))
		r.tunnelClosed = true
	}
}

func (r *replayer) waitTunnelGone(what string) {
	r.t.Helper()
	r.d.waitFor(r.t, what, func() error {
		ts, err := r.d.tunnels()
		if err != nil {
			return err
		}
		for _, tu := range ts {
			if tu.TunnelID == uint32(r.tunnelID) {
				return fmt.Errorf("%w: %+v", errNotYet, tu)
			}
		}
		ss, err := r.d.sessions()
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.TunnelID == uint32(r.tunnelID) {
				return fmt.Errorf("%w: session left: %+v", errNotYet, s)
			}
		}
		return nil
	})
}

func (r *replayer) send(frame int, pkt []byte) {
	r.t.Helper()
	if _, err := r.conn.Write(pkt); err != nil {
		r.t.Fatalf("frame %d: send: %v", frame, err)
	}
}

// expectLNS checks l2tpd's answer where the real LNS sent m.
func (r *replayer) expectLNS(frame int, m tMsg) {
	t := r.t
	t.Helper()
	if m.ZLB {
		// A ZLB only acknowledges; l2tpd may acknowledge by piggybacking
		// instead (RFC 2661 §5.8), so what is checked is that everything
		// sent so far is acknowledged.
		r.waitAcked(frame)
		return
	}
	got := r.next(frame, m.Type)
	if got.Type != m.Type {
		t.Fatalf("frame %d: the real LNS sent %s, l2tpd sent %v", frame, msgTypeName(m.Type), got)
	}
	switch m.Type {
	case mtSCCRP:
		id, ok := got.uint16AVP(avpAssignedTunnelID)
		if !ok || id == 0 {
			t.Fatalf("frame %d: l2tpd's SCCRP has no usable Assigned Tunnel ID: %v", frame, got.AVPs)
		}
		captured, ok := m.uint16AVP(avpAssignedTunnelID)
		if !ok {
			t.Fatalf("frame %d: captured SCCRP without Assigned Tunnel ID", frame)
		}
		r.tunnelMap[captured] = id
		r.tunnelID = id
		// RFC 2661 §5.1.1: a challenged LNS answers with a response.
		if r.lacChallenge != nil {
			resp, ok := got.find(avpChallengeResponse)
			if !ok {
				t.Fatalf("frame %d: the LAC challenged, l2tpd's SCCRP has no Challenge Response", frame)
			}
			if want := challengeResponse(mtSCCRP, r.secret, r.lacChallenge); !bytes.Equal(resp.Value, want) {
				t.Fatalf("frame %d: l2tpd's Challenge Response %x, want %x", frame, resp.Value, want)
			}
		}
		if a, ok := got.find(avpChallenge); ok {
			r.lnsChallenge = a.Value
		}
	case mtICRP:
		id, ok := got.uint16AVP(avpAssignedSessionID)
		if !ok || id == 0 {
			t.Fatalf("frame %d: l2tpd's ICRP has no usable Assigned Session ID: %v", frame, got.AVPs)
		}
		captured, ok := m.uint16AVP(avpAssignedSessionID)
		if !ok {
			t.Fatalf("frame %d: captured ICRP without Assigned Session ID", frame)
		}
		r.sessionMap[captured] = id
		r.sessionID = id
		// RFC 2661 §3.1: the header carries the recipient's session ID.
		r.lacSessions[got.Session] = id
		if m.Session != got.Session {
			t.Errorf("frame %d: l2tpd's ICRP is for session %d, the LAC assigned %d", frame, got.Session, m.Session)
		}
	case mtCDN:
		// RFC 2661 §6.12: addressed to the LAC's session, with a
		// Result Code; l2tpd's session is gone.
		if m.Session != got.Session {
			t.Errorf("frame %d: l2tpd's CDN is for session %d, want the LAC's %d", frame, got.Session, m.Session)
		}
		if _, ok := got.find(avpResultCode); !ok {
			t.Errorf("frame %d: l2tpd's CDN has no Result Code", frame)
		}
		r.d.waitSessionGone(t, fmt.Sprintf("session %d gone after l2tpd's CDN", r.sessionID), uint32(r.sessionID))
	}
}

// clearFromCLI asks l2tpd through l2tpctl to tear down the current
// session or the tunnel, as the real LNS did on its own at frame.
func (r *replayer) clearFromCLI(frame int, what string) {
	r.t.Helper()
	id := r.tunnelID
	if what == "session" {
		id = r.sessionID
	}
	if out, err := r.d.ctl("clear", what, strconv.Itoa(int(id))); err != nil {
		r.t.Fatalf("frame %d: %v: %s", frame, err, out)
	}
}

// next returns the next in-order message l2tpd sent.
func (r *replayer) next(frame int, want uint16) tMsg {
	r.t.Helper()
	deadline := time.Now().Add(answerTimeout)
	resend := time.Now().Add(time.Second)
	for len(r.pending) == 0 {
		now := time.Now()
		if now.After(deadline) {
			r.t.Fatalf("frame %d: l2tpd sent no %s within %v", frame, msgTypeName(want), answerTimeout)
		}
		// Like a LAC, retransmit the SCCRQ while no answer comes: the
		// admin socket may answer before the UDP listener is bound.
		if want == mtSCCRP && now.After(resend) && r.lastSCCRQ != nil {
			r.send(frame, r.lastSCCRQ)
			resend = now.Add(time.Second)
		}
		r.recv(earlier(deadline, resend))
	}
	m := r.pending[0]
	r.pending = r.pending[1:]
	return m
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// waitAcked waits until l2tpd has acknowledged our last message.
func (r *replayer) waitAcked(frame int) {
	r.t.Helper()
	if !r.sentAny {
		return
	}
	deadline := time.Now().Add(answerTimeout)
	for !r.gotAck || seqLess(r.ackedNr, r.sentNs+1) {
		if time.Now().After(deadline) {
			r.t.Fatalf("frame %d: l2tpd did not acknowledge Ns %d within %v (its Nr is %d)", frame, r.sentNs, answerTimeout, r.ackedNr)
		}
		r.recv(deadline)
	}
}

// seqLess compares sequence numbers modulo 2^16 (RFC 2661 §5.8).
func seqLess(a, b uint16) bool { return int16(a-b) < 0 }

// recv reads at most one packet from l2tpd until deadline and files it.
func (r *replayer) recv(deadline time.Time) {
	t := r.t
	t.Helper()
	if r.buf == nil {
		r.buf = make([]byte, 65536)
	}
	r.conn.SetReadDeadline(deadline)
	n, err := r.conn.Read(r.buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		// ECONNREFUSED: nothing listens yet; the caller retries.
		if strings.Contains(err.Error(), "connection refused") {
			time.Sleep(pollInterval)
			return
		}
		t.Fatalf("receive: %v", err)
	}
	pkt := append([]byte(nil), r.buf[:n]...)
	m, err := parseL2TP(pkt)
	if err != nil {
		t.Fatalf("l2tpd sent a packet that does not parse: %v: %x", err, pkt)
	}
	if !m.Control {
		r.dataCount++
		return
	}
	// RFC 2661 §3.1: the header carries the recipient's tunnel ID.
	if m.TunnelID != r.lacTunnelID {
		t.Errorf("l2tpd sent %v to tunnel %d, the LAC's tunnel is %d", m, m.TunnelID, r.lacTunnelID)
	}
	if !r.gotAck || seqLess(r.ackedNr, m.Nr) {
		r.ackedNr, r.gotAck = m.Nr, true
	}
	if m.ZLB {
		return
	}
	switch {
	case m.Ns == r.nextRecv:
		r.nextRecv++
		r.pending = append(r.pending, m)
	case seqLess(m.Ns, r.nextRecv):
		// A retransmission: our acknowledgement was not seen in time.
		// Acknowledge again with a ZLB as a LAC does (RFC 2661 §5.8).
		ns := r.sentNs
		if r.sentAny {
			ns++
		}
		r.send(0, appendControl(nil, r.tunnelID, 0, ns, r.nextRecv))
	default:
		t.Fatalf("l2tpd sent %v out of order: expected Ns %d", m, r.nextRecv)
	}
}

// checkNothingMore fails if l2tpd sent control messages the real LNS
// did not send.
func (r *replayer) checkNothingMore() {
	r.t.Helper()
	r.recvFor(300 * time.Millisecond)
	for _, m := range r.pending {
		r.t.Errorf("l2tpd sent %v, the real LNS sent nothing more", m)
	}
	r.pending = nil
}

// recvFor files what l2tpd sends during d.
func (r *replayer) recvFor(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		r.recv(deadline)
	}
}

// checkShutdownStopCCN stops l2tpd while the replayed tunnel is up: it
// must close the tunnel with a StopCCN (RFC 2661 §6.4) before exiting.
func (r *replayer) checkShutdownStopCCN() {
	t := r.t
	t.Helper()
	r.d.sigterm()
	m := r.next(0, mtStopCCN)
	// Clearing each session first is allowed; the StopCCN alone would
	// clear them too.
	for m.Type == mtCDN {
		m = r.next(0, mtStopCCN)
	}
	if m.Type != mtStopCCN {
		t.Fatalf("l2tpd sent %v on shutdown, want StopCCN", m)
	}
	if id, ok := m.uint16AVP(avpAssignedTunnelID); !ok || id != r.tunnelID {
		t.Errorf("StopCCN Assigned Tunnel ID = %d, %v; want %d", id, ok, r.tunnelID)
	}
	if _, ok := m.find(avpResultCode); !ok {
		t.Error("StopCCN without Result Code")
	}
	ns := r.sentNs
	if r.sentAny {
		ns++
	}
	r.send(0, appendControl(nil, r.tunnelID, 0, ns, r.nextRecv))
}
