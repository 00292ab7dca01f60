package pcap

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/l2tpd/l2tpd/control"
)

// Each captured payload comes back from the file inside IP/UDP with the
// right direction and addresses, IPv4 and IPv6.
func TestWrite(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pkts := []control.CapturedPacket{
		{Time: t0, Out: false, Peer: netip.MustParseAddrPort("198.51.100.7:40000"), Local: netip.MustParseAddr("192.0.2.1"), Data: []byte{0xc8, 0x02, 0, 12, 0, 1, 0, 0, 0, 0, 0, 0}},
		{Time: t0.Add(time.Millisecond), Out: true, Peer: netip.MustParseAddrPort("198.51.100.7:40000"), Local: netip.MustParseAddr("192.0.2.1"), Data: []byte{0x00, 0x02, 0, 7, 0, 8, 0xff, 0x03}},
		{Time: t0.Add(2 * time.Millisecond), Out: true, Peer: netip.MustParseAddrPort("[2001:db8::7]:1701"), Local: netip.MustParseAddr("2001:db8::1"), Data: []byte{0x00, 0x02, 0, 7, 0, 8}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, pkts); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct{ src, dst string }{
		{"198.51.100.7:40000", "192.0.2.1:1701"},
		{"192.0.2.1:1701", "198.51.100.7:40000"},
		{"[2001:db8::1]:1701", "[2001:db8::7]:1701"},
	} {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !ci.Timestamp.Equal(pkts[i].Time) {
			t.Errorf("packet %d time %v", i, ci.Timestamp)
		}
		p := gopacket.NewPacket(data, layers.LayerTypeIPv4, gopacket.Default)
		if i == 2 {
			p = gopacket.NewPacket(data, layers.LayerTypeIPv6, gopacket.Default)
		}
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp == nil || !bytes.Equal(udp.Payload, pkts[i].Data) {
			t.Fatalf("packet %d: %v", i, p)
		}
		src, dst := p.NetworkLayer().NetworkFlow().Endpoints()
		gotSrc := netip.AddrPortFrom(netip.MustParseAddr(src.String()), uint16(udp.SrcPort)).String()
		gotDst := netip.AddrPortFrom(netip.MustParseAddr(dst.String()), uint16(udp.DstPort)).String()
		if gotSrc != want.src || gotDst != want.dst {
			t.Errorf("packet %d: %s -> %s, want %s -> %s", i, gotSrc, gotDst, want.src, want.dst)
		}
	}
}
