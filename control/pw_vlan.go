package control

import (
	"time"

	"github.com/l2tpd/l2tpd/control/tunnel"
	"github.com/l2tpd/l2tpd/datapath"
)

// vlanPW is pseudowire type 4 (RFC 4719 Ethernet VLAN): one 802.1Q VLAN
// of a TAP device, its VID rewritten between the two ends' local IDs.
type vlanPW struct{}

func (vlanPW) answered(sh *shard, e *entry, s *tunnel.Session, now time.Time) {
	sh.installPW(e, s, datapath.KindVLAN)
}

func (vlanPW) up(sh *shard, e *entry, s *tunnel.Session, now time.Time) {
	sh.pwUp(e, s, datapath.KindVLAN, now)
}

func (vlanPW) down(sh *shard, e *entry, ev tunnel.Event, now time.Time) {
	sh.pwDown(e, ev, now)
}

func (vlanPW) linkInfo(sh *shard, e *entry, s *tunnel.Session, now time.Time) {
	sh.pwLinkInfo(e, s, datapath.KindVLAN)
}
