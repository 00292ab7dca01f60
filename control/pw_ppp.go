package control

import (
	"time"

	"github.com/l2tpd/l2tpd/aaa"
	"github.com/l2tpd/l2tpd/control/tunnel"
)

// pppPW is pseudowire type 7 (and every L2TPv2 session): the session
// terminates PPP for a subscriber, through the subscriber path.
type pppPW struct{}

func (pppPW) answered(sh *shard, e *entry, s *tunnel.Session, now time.Time) {
	sh.preparePPP(e, s)
}

func (pppPW) up(sh *shard, e *entry, s *tunnel.Session, now time.Time) {
	sh.startPPP(e, s, now)
}

func (pppPW) down(sh *shard, e *entry, ev tunnel.Event, now time.Time) {
	if sub := sh.subs[sessionKey(e.t, ev.SessionID)]; sub != nil && sub.e == e {
		if !sub.started.IsZero() {
			cause := stopCause(sub, ev)
			sh.accounting(sub, aaa.AcctStop, cause, now)
			sh.recordStop(sub, cause, now)
		}
		sh.stopPPP(sub.key)
	}
}

func (pppPW) linkInfo(sh *shard, e *entry, s *tunnel.Session, now time.Time) {}
