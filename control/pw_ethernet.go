package control

import (
	"time"

	"go.uber.org/zap"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/control/wire"
	"github.com/l2tpd/l2tpd/datapath"
)

// ethernetPW is pseudowire type 5 (RFC 4719 Ethernet port): the whole
// TAP device is bridged to the peer.
type ethernetPW struct{}

func (ethernetPW) answered(sh *shard, e *entry, s *tunnel.Session, now time.Time) {
	sh.installPW(e, s, datapath.KindEthernet)
}

func (ethernetPW) up(sh *shard, e *entry, s *tunnel.Session, now time.Time) {
	sh.pwUp(e, s, datapath.KindEthernet, now)
}

func (ethernetPW) down(sh *shard, e *entry, ev tunnel.Event, now time.Time) {
	sh.pwDown(e, ev, now)
}

func (ethernetPW) linkInfo(sh *shard, e *entry, s *tunnel.Session, now time.Time) {
	sh.pwLinkInfo(e, s, datapath.KindEthernet)
}

// pwUp completes a pseudowire call. The responder installed the session
// when it answered; the initiator installs it now that it knows the
// peer's cookie and sublayer.
func (sh *shard) pwUp(e *entry, s *tunnel.Session, kind datapath.Kind, now time.Time) {
	l := sh.pw.bySession[s.ID]
	if l == nil || l.e != e {
		return
	}
	if s.PW.Remote.L2SS != s.PW.Local.L2SS {
		// The data path uses one sublayer format both ways.
		_ = e.t.CloseSession(now, s.ID, tunnel.Result{Code: wire.CDNGeneralError, Error: wire.ErrCodeRange,
			Message: "L2-Specific Sublayer differs from ours"}, nil)
		return
	}
	l.backoff = 0
	if s.Initiator {
		sh.installPW(e, s, kind)
	}
	sh.srv.log.Info("pseudowire up", zap.String("pseudowire", l.cfg.Name), zap.Uint32("tunnel_id", e.t.ID()),
		zap.Uint32("session_id", s.ID), zap.Uint32("peer_session_id", s.PeerID), zap.String("tap", l.cfg.TAP),
		zap.Int("cookie_len", len(s.PW.Local.Cookie)), zap.Int("peer_cookie_len", len(s.PW.Remote.Cookie)))
}

// installPW programs the datapath for a pseudowire session, unless the
// peer said its circuit is down (RFC 3931 §5.4.5: data toward it stops).
func (sh *shard) installPW(e *entry, s *tunnel.Session, kind datapath.Kind) {
	l := sh.pw.bySession[s.ID]
	if l == nil || l.e != e || sh.srv.dp == nil {
		return
	}
	if s.RemoteCircuitKnown() && !s.PW.Remote.Active {
		sh.removePW(l)
		return
	}
	ds := datapath.Session{
		Key:                datapath.SessionKey{Version: 3, Session: s.ID},
		PeerSession:        s.PeerID,
		Peer:               e.peer,
		Local:              e.local,
		Socket:             e.sock,
		Cookie:             s.PW.Local.Cookie,
		PeerCookie:         s.PW.Remote.Cookie,
		L2SpecificSublayer: s.PW.Local.L2SS == tunnel.L2SSDefault,
		Sequencing:         s.PW.Remote.Sequencing != tunnel.SequenceNone && s.PW.Local.L2SS == tunnel.L2SSDefault,
		Kind:               kind,
		TAP:                l.cfg.TAP,
	}
	if kind == datapath.KindVLAN {
		ds.VLAN = l.cfg.VLAN
	}
	if err := sh.srv.dp.Install(ds); err != nil {
		sh.counters["pseudowire_install_errors"]++
		sh.srv.log.Warn("pseudowire: datapath install", zap.String("pseudowire", l.cfg.Name), zap.Error(err))
		return
	}
	l.installed = true
}

func (sh *shard) removePW(l *pwLink) {
	if l.installed && sh.srv.dp != nil {
		sh.srv.dp.Remove(datapath.SessionKey{Version: 3, Session: l.sid})
	}
	l.installed = false
}

// pwDown forgets a pseudowire's session; an initiating pseudowire places
// its call again after a backoff.
func (sh *shard) pwDown(e *entry, ev tunnel.Event, now time.Time) {
	l := sh.pw.bySession[ev.SessionID]
	if l == nil || l.e != e {
		return
	}
	sh.removePW(l)
	delete(sh.pw.bySession, ev.SessionID)
	l.e, l.sid = nil, 0
	l.backoff = nextBackoff(l.backoff)
	l.retryAt = now.Add(l.backoff)
	sh.srv.log.Info("pseudowire down", zap.String("pseudowire", l.cfg.Name), zap.Uint16("result", ev.Result.Code),
		zap.String("message", ev.Result.Message), zap.Bool("by_peer", ev.ByPeer))
}

// pwLinkInfo follows the peer's Circuit Status (RFC 4719 §2.3.2).
func (sh *shard) pwLinkInfo(e *entry, s *tunnel.Session, kind datapath.Kind) {
	l := sh.pw.bySession[s.ID]
	if l == nil || l.e != e || s.Initiator && s.State != tunnel.SessionEstablished {
		return
	}
	sh.srv.log.Info("pseudowire peer circuit", zap.String("pseudowire", l.cfg.Name), zap.Bool("active", s.PW.Remote.Active))
	sh.installPW(e, s, kind)
}
