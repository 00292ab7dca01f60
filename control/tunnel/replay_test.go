package tunnel

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/l2tpd/l2tpd/control/wire"
)

// The control messages a real L2TPv3 initiator (Juniper Mist AP) sent,
// replayed against a responder: the tunnel comes up in v3 despite the
// unknown vendor AVPs and digests it cannot check (no secret), and its
// Ethernet VLAN pseudowire (type 4) is refused with a CDN because only
// PPP is offered (RFC 3931 §5.4.4, §6.6).
func TestReplayMistInitiator(t *testing.T) {
	f, err := os.Open("testdata/l2tpv3-mist-udp-control-hmac-sha1.pcap")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddr("44.32.200.205")
	b := NewResponder(t0, cfg(3, 200))
	var sent []wire.MsgType
	now := t0
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		now = t0.Add(ci.Timestamp.Sub(time.Unix(0, 0)) % time.Hour)
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil || len(udp.Payload) == 0 || udp.Payload[0]&0x80 == 0 {
			continue
		}
		if src, _ := netip.AddrFromSlice(ip.SrcIP); src != ap {
			continue
		}
		b.Receive(now, append([]byte(nil), udp.Payload...))
		for _, out := range b.Poll(now, nil) {
			m, err := wire.ParseMessage(out, wire.EncapUDP, nil)
			if err != nil {
				t.Fatalf("responder sent an unparsable message: %v", err)
			}
			if m.Header.Version != 3 {
				t.Fatalf("answered a v3 peer in v%d", m.Header.Version)
			}
			// Retransmissions (the AP was slow to acknowledge) count once.
			if m.Type != wire.MsgZLB && (len(sent) == 0 || sent[len(sent)-1] != m.Type) {
				sent = append(sent, m.Type)
			}
		}
	}
	if b.State() != StateEstablished {
		t.Fatalf("tunnel %v, want established; sent %v", b.State(), sent)
	}
	if p := b.Peer(); p.HostName == "" || p.Vendor != "Mist Systems" || p.TunnelID == 0 {
		t.Fatalf("peer %+v", p)
	}
	want := []wire.MsgType{wire.MsgSCCRP, wire.MsgCDN}
	if len(sent) < len(want) || sent[0] != want[0] || sent[1] != want[1] {
		t.Fatalf("sent %v, want %v first", sent, want)
	}
	if b.NumSessions() != 0 {
		t.Fatal("an Ethernet VLAN pseudowire was accepted with only PPP offered")
	}
	if st := b.Stats(); st.Invalid != 0 || st.Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}
