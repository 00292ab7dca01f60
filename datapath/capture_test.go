package datapath

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// datagram is the UDP payload of one captured frame carrying L2TP.
type datagram struct {
	frame    int // 1-based, as tshark numbers frames
	src, dst netip.AddrPort
	b        []byte
}

// readCapture returns the UDP datagrams to or from port 1701 in a capture
// from testdata (gopacket decodes the PPPoE and PPP layers in front of
// the outer IP of the nb6 captures).
func readCapture(t testing.TB, name string) []datagram {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []datagram
	for frame := 1; ; frame++ {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if !ok || (udp.SrcPort != 1701 && udp.DstPort != 1701) {
			continue
		}
		var src, dst netip.Addr
		if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
			src, _ = netip.AddrFromSlice(ip.SrcIP.To4())
			dst, _ = netip.AddrFromSlice(ip.DstIP.To4())
		}
		out = append(out, datagram{
			frame: frame,
			src:   netip.AddrPortFrom(src, uint16(udp.SrcPort)),
			dst:   netip.AddrPortFrom(dst, uint16(udp.DstPort)),
			b:     append([]byte(nil), udp.Payload...),
		})
	}
	return out
}
