// Package pcap writes captured L2TP packets as a pcap file that
// Wireshark and tshark read: each UDP payload gets the IPv4 or IPv6 and
// UDP headers it travelled with, so the L2TP dissector (UDP port 1701)
// decodes it.
package pcap

import (
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/l2tpd/l2tpd/control"
)

// Write writes pkts as a raw-IP pcap.
func Write(w io.Writer, pkts []control.CapturedPacket) error {
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeRaw); err != nil {
		return fmt.Errorf("pcap: %w", err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	for _, p := range pkts {
		src, dst := fromAddrPort(p.Peer), local(p)
		if p.Out {
			src, dst = dst, src
		}
		udp := &layers.UDP{SrcPort: layers.UDPPort(src.port), DstPort: layers.UDPPort(dst.port)}
		var ip gopacket.SerializableLayer
		if src.ip.To4() != nil && dst.ip.To4() != nil {
			ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.ip.To4(), DstIP: dst.ip.To4()}
			_ = udp.SetNetworkLayerForChecksum(ip4)
			ip = ip4
		} else {
			ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: src.ip.To16(), DstIP: dst.ip.To16()}
			_ = udp.SetNetworkLayerForChecksum(ip6)
			ip = ip6
		}
		if err := gopacket.SerializeLayers(buf, opts, ip, udp, gopacket.Payload(p.Data)); err != nil {
			return fmt.Errorf("pcap: %w", err)
		}
		b := buf.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(b), Length: len(b)}
		if err := pw.WritePacket(ci, b); err != nil {
			return fmt.Errorf("pcap: %w", err)
		}
	}
	return nil
}

type endpoint struct {
	ip   net.IP
	port uint16
}

func fromAddrPort(a netip.AddrPort) endpoint {
	return endpoint{ip: net.IP(a.Addr().Unmap().AsSlice()), port: a.Port()}
}

// local is l2tpd's end: the address the peer targeted, on port 1701 (the
// port is not recorded; L2TP's).
func local(p control.CapturedPacket) endpoint {
	a := p.Local.Unmap()
	if !a.IsValid() {
		a = netip.IPv4Unspecified()
		if p.Peer.Addr().Unmap().Is6() {
			a = netip.IPv6Unspecified()
		}
	}
	return endpoint{ip: net.IP(a.AsSlice()), port: 1701}
}
