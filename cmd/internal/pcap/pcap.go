// Package pcap writes captured L2TP packets as a pcap file that
// Wireshark and tshark read: each UDP payload gets the IPv4 or IPv6 and
// UDP headers it travelled with, so the L2TP dissector (UDP port 1701)
// decodes it; each packet of a session carried directly over IP gets an
// IPv4 or IPv6 header with protocol 115, which the dissector decodes as
// L2TPv3 over IP (RFC 3931 §4.1.1).
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
		proto := layers.IPProtocolUDP
		if p.IP {
			proto = ipProtoL2TP
		}
		var ip gopacket.NetworkLayer
		if src.ip.To4() != nil && dst.ip.To4() != nil {
			ip = &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.ip.To4(), DstIP: dst.ip.To4()}
		} else {
			ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.ip.To16(), DstIP: dst.ip.To16()}
		}
		ls := []gopacket.SerializableLayer{ip.(gopacket.SerializableLayer)}
		if !p.IP {
			udp := &layers.UDP{SrcPort: layers.UDPPort(src.port), DstPort: layers.UDPPort(dst.port)}
			_ = udp.SetNetworkLayerForChecksum(ip)
			ls = append(ls, udp)
		}
		ls = append(ls, gopacket.Payload(p.Data))
		if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
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

// ipProtoL2TP is L2TPv3 directly over IP (RFC 3931 §4.1.1.2).
const ipProtoL2TP layers.IPProtocol = 115

type endpoint struct {
	ip   net.IP
	port uint16
}

func fromAddrPort(a netip.AddrPort) endpoint {
	return endpoint{ip: net.IP(a.Addr().Unmap().AsSlice()), port: a.Port()}
}

// local is l2tpd's end: the address the peer targeted, on port 1701 (the
// port is not recorded; L2TP's). Over IP there are no ports.
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
