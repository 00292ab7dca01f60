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

// A packet of a session carried directly over IP comes back as the
// payload of an IPv4 or IPv6 header with protocol 115, no UDP header in
// between (RFC 3931 §4.1.1.2), with the right direction and addresses.
func TestWriteIP(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Data message of session 0x1234 with an 8-octet cookie; control
	// message (zero Session ID, then the T bit header).
	data := []byte{0, 0, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 0x40, 0, 0, 0}
	ctl := []byte{0, 0, 0, 0, 0xc8, 0x03, 0, 12, 0, 0, 0, 7, 0, 1, 0, 2}
	pkts := []control.CapturedPacket{
		{Time: t0, IP: true, Peer: netip.MustParseAddrPort("198.51.100.7:0"), Local: netip.MustParseAddr("192.0.2.1"), Data: data},
		{Time: t0, IP: true, Out: true, Peer: netip.MustParseAddrPort("198.51.100.7:0"), Local: netip.MustParseAddr("192.0.2.1"), Data: ctl},
		{Time: t0, IP: true, Peer: netip.MustParseAddrPort("[2001:db8::7]:0"), Local: netip.MustParseAddr("2001:db8::1"), Data: data},
		{Time: t0, IP: true, Out: true, Peer: netip.MustParseAddrPort("[2001:db8::7]:0"), Local: netip.MustParseAddr("2001:db8::1"), Data: ctl},
	}
	var buf bytes.Buffer
	if err := Write(&buf, pkts); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeRaw {
		t.Fatalf("link type %v", r.LinkType())
	}
	for i, want := range []struct {
		v4       bool
		src, dst string
	}{
		{true, "198.51.100.7", "192.0.2.1"},
		{true, "192.0.2.1", "198.51.100.7"},
		{false, "2001:db8::7", "2001:db8::1"},
		{false, "2001:db8::1", "2001:db8::7"},
	} {
		b, _, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		var (
			proto    layers.IPProtocol
			payload  []byte
			src, dst string
		)
		if want.v4 {
			p := gopacket.NewPacket(b, layers.LayerTypeIPv4, gopacket.Default)
			ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
			if ip == nil {
				t.Fatalf("packet %d: no IPv4: %v", i, p)
			}
			if int(ip.Length) != len(b) || ip.IHL != 5 {
				t.Errorf("packet %d: IPv4 length %d IHL %d for %d octets", i, ip.Length, ip.IHL, len(b))
			}
			// The header checksum sums to 0xffff with itself included.
			var sum uint32
			for j := 0; j < 20; j += 2 {
				sum += uint32(b[j])<<8 | uint32(b[j+1])
			}
			for sum > 0xffff {
				sum = sum&0xffff + sum>>16
			}
			if sum != 0xffff {
				t.Errorf("packet %d: bad IPv4 header checksum", i)
			}
			proto, payload, src, dst = ip.Protocol, ip.Payload, ip.SrcIP.String(), ip.DstIP.String()
		} else {
			p := gopacket.NewPacket(b, layers.LayerTypeIPv6, gopacket.Default)
			ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
			if ip == nil {
				t.Fatalf("packet %d: no IPv6: %v", i, p)
			}
			if int(ip.Length) != len(b)-40 {
				t.Errorf("packet %d: IPv6 payload length %d for %d octets", i, ip.Length, len(b))
			}
			proto, payload, src, dst = ip.NextHeader, ip.Payload, ip.SrcIP.String(), ip.DstIP.String()
		}
		if proto != 115 {
			t.Errorf("packet %d: protocol %d, want 115", i, proto)
		}
		if !bytes.Equal(payload, pkts[i].Data) {
			t.Errorf("packet %d: payload % x, want % x", i, payload, pkts[i].Data)
		}
		if src != want.src || dst != want.dst {
			t.Errorf("packet %d: %s -> %s, want %s -> %s", i, src, dst, want.src, want.dst)
		}
	}
	if _, _, err := r.ReadPacketData(); err == nil {
		t.Error("more packets than written")
	}
}
