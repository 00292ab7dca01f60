package datapath

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// readIPCapture returns the IP protocol 115 payloads of a capture.
func readIPCapture(t testing.TB, name string) [][]byte {
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
	var out [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && ip.Protocol == IPProto {
			out = append(out, append([]byte(nil), ip.Payload...))
		}
	}
	return out
}

// Linux's l2tp_eth (ip l2tp static tunnels, the captures in testdata)
// and this engine put the same bytes on the wire for the same
// parameters: each captured message, received, puts its Ethernet frame
// on the TAP, and that frame read back from the TAP leaves as the
// identical message (RFC 3931 §4.1.1.2, §4.1.2.1, §4.6.1; the sequence
// number of the sequenced capture is carried over).
func TestPWMatchesLinuxCaptures(t *testing.T) {
	for _, c := range []struct {
		file   string
		ip     bool
		cookie int
		l2ss   bool
		seq    bool
	}{
		{"l2tpv3-linux-static-v3-01.pcap", false, 0, false, false},
		{"l2tpv3-linux-static-v3-02.pcap", false, 4, false, false},
		{"l2tpv3-linux-static-v3-03.pcap", false, 8, false, false},
		{"l2tpv3-linux-static-v3-04.pcap", false, 8, true, false},
		{"l2tpv3-linux-static-v3-05.pcap", true, 0, false, false},
		{"l2tpv3-linux-static-v3-07.pcap", true, 8, false, false},
		{"l2tpv3-linux-static-v3-08.pcap", true, 8, true, false},
		{"l2tpv3-linux-static-v3-09.pcap", true, 8, true, true},
	} {
		t.Run(c.file, func(t *testing.T) {
			var msgs [][]byte
			if c.ip {
				msgs = readIPCapture(t, c.file)
			} else {
				for _, d := range readCapture(t, c.file) {
					msgs = append(msgs, d.b)
				}
			}
			if len(msgs) < 2 {
				t.Fatalf("%d messages in the capture", len(msgs))
			}
			for i, msg := range msgs {
				var (
					h     Header
					frame []byte
					err   error
				)
				if c.ip {
					h, frame, err = ParseV3IP(msg, c.cookie, c.l2ss)
				} else {
					h, frame, err = ParseV3(msg, c.cookie, c.l2ss)
				}
				if err != nil || h.Sequenced != c.seq {
					t.Fatalf("message %d: %+v %v", i, h, err)
				}
				r := newRig(t, true, 8)
				r.sock.ip = c.ip
				w := r.addFakeTAP(t, "pw0")
				key := SessionKey{Version: 3, Session: h.Session}
				if err := r.e.Install(Session{Key: key, PeerSession: h.Session, Peer: peerPW, Socket: r.sock,
					Cookie: h.Cookie, PeerCookie: h.Cookie, L2SpecificSublayer: c.l2ss, Sequencing: c.seq,
					Kind: KindEthernet, TAP: "pw0"}); err != nil {
					t.Fatal(err)
				}
				in := append([]byte(nil), msg...)
				if c.ip {
					r.e.receiveIP(r.sock, in, netip.AddrPortFrom(peerPW.Addr(), 0), lnsAddr)
				} else {
					r.e.receive(r.sock, in, peerPW, lnsAddr)
				}
				if len(w.pkts) != 1 || !bytes.Equal(w.pkts[0], frame) {
					t.Fatalf("message %d: TAP got % x; stats %v", i, w.pkts, r.e.Stats())
				}
				r.e.sessions.get(key).ctr.seq.txNs.Store(h.Ns)
				b, n := tapRead(frame)
				f := &pwForwarder{e: r.e}
				f.forward(r.tap("pw0"), b, n)
				f.flush()
				if len(r.io.sent) != 1 || !bytes.Equal(r.io.sent[0].b, msg) {
					t.Fatalf("message %d: sent\n%v\nLinux sent\n% x", i, r.io.sent, msg)
				}
			}
		})
	}
}

// requireTool fails under L2TPD_E2E=1 and skips otherwise when a command
// is missing.
func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("L2TPD_E2E") == "1" {
			t.Fatalf("L2TPD_E2E=1 but %s is missing", name)
		}
		t.Skipf("needs %s; set L2TPD_E2E=1 to make this a failure", name)
	}
}

// tshark, told the session's cookie size and sublayer, decodes what the
// engine sends for frames written to its TAP as L2TPv3 with the right
// Session ID, cookie and sequence numbers around the whole Ethernet
// frame, over UDP on a non-standard port and over IP, with no malformed
// packet or expert warning. The messages are read from the peer's socket
// and written to a pcap as IPv4/UDP or IPv4/protocol 115 frames.
func TestPWTsharkDecodes(t *testing.T) {
	requireRoot(t)
	requireTool(t, "tshark")
	for _, ip := range []bool{false, true} {
		name := map[bool]string{false: "udp", true: "ip"}[ip]
		t.Run(name, func(t *testing.T) {
			ns := newNetnsNamed(t, "ts"+name)
			local, peer := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
			var (
				e        *Engine
				sock     *Socket
				peerConn net.PacketConn
				peerAP   netip.AddrPort
			)
			err := InNetns(ns, func() (err error) {
				// The TAP carries only the frames sent here: with IPv6
				// on, the kernel's own Router Solicitations and MLD
				// reports on the new link would also enter the
				// pseudowire and take sequence numbers.
				for _, p := range []string{"all", "default"} {
					if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+p+"/disable_ipv6", []byte("1"), 0); err != nil {
						return err
					}
				}
				if e, err = New(Config{Batch: 8}, &chanUp{control: make(chan []byte, 16), frames: make(chan []byte, 16), to: make(chan netip.Addr, 16)}); err != nil {
					return err
				}
				if err := e.OpenTAP("pwtap", 1500); err != nil {
					return err
				}
				if ip {
					if sock, err = e.AddIPSocket(local); err != nil {
						return err
					}
					peerConn, err = net.ListenPacket("ip4:115", peer.String())
					peerAP = netip.AddrPortFrom(peer, 0)
					return err
				}
				c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local.AsSlice()})
				if err != nil {
					return err
				}
				if sock, err = e.AddSocket(c); err != nil {
					return err
				}
				peerConn, err = net.ListenPacket("udp4", peer.String()+":0")
				if err == nil {
					peerAP = peerConn.LocalAddr().(*net.UDPAddr).AddrPort()
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer peerConn.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			defer func() { cancel(); <-done }()
			if err := e.Install(Session{Key: SessionKey{Version: 3, Session: 0x1234}, PeerSession: 0xabcdef01,
				Peer: peerAP, Local: local, Socket: sock, Cookie: cookieIn, PeerCookie: cookieOut,
				L2SpecificSublayer: true, Sequencing: true, Kind: KindEthernet, TAP: "pwtap"}); err != nil {
				t.Fatal(err)
			}
			ps := packetSocket(t, ns, "pwtap")
			frame := ethFrame(0x88b5, []byte(strings.Repeat("tshark", 10)))
			var msgs [][]byte
			buf := make([]byte, 2048)
			peerConn.SetReadDeadline(time.Now().Add(3 * time.Second))
			for i := 0; i < 3; i++ {
				ps.send(t, frame)
				for {
					n, _, err := peerConn.ReadFrom(buf)
					if err != nil {
						c, _ := e.Counters(SessionKey{Version: 3, Session: 0x1234})
						t.Fatalf("nothing from the engine: %v; counters %+v, stats %v", err, c, e.Stats())
					}
					m := buf[:n] // (*net.IPConn).ReadFrom strips the IPv4 header
					if bytes.HasSuffix(m, frame) {
						msgs = append(msgs, append([]byte(nil), m...))
						break
					}
				}
			}
			file := filepath.Join(t.TempDir(), name+".pcap")
			src := netip.AddrPortFrom(local, 0)
			if u, ok := sock.LocalAddr().(*net.UDPAddr); ok {
				src = u.AddrPort()
			}
			writePWPcap(t, file, msgs, ip, src, peerAP)
			args := []string{"-r", file, "-V", "-o", "l2tp.cookie_size:8 Byte Cookie",
				"-o", "l2tp.l2_specific:Default L2-Specific", "-d", "l2tp.pw_type==0,eth"}
			if !ip {
				args = append(args, "-d", "udp.port=="+strconv.Itoa(int(peerAP.Port()))+",l2tp")
			}
			out, err := exec.Command("tshark", args...).CombinedOutput()
			if err != nil {
				t.Fatalf("tshark: %v: %s", err, out)
			}
			text := string(out)
			for _, want := range []string{
				"Layer 2 Tunneling Protocol version 3",
				"Session ID: 0xabcdef01",
				"Cookie: 0102030405060708",
				"S-bit: True",
				"Sequence Number: 2",
				"Ethernet II, Src: 02:00:00:00:00:0a",
				"Dst: 02:00:00:00:00:0b",
				"(0x88b5)",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("tshark output lacks %q:\n%s", want, text)
				}
			}
			if strings.Count(text, "Layer 2 Tunneling Protocol version 3") != 3 {
				t.Errorf("tshark decoded %d L2TPv3 messages, want 3", strings.Count(text, "Layer 2 Tunneling Protocol version 3"))
			}
			for _, bad := range []string{"Malformed", "Expert Info (Warning", "Expert Info (Error"} {
				if strings.Contains(text, bad) {
					t.Errorf("tshark reports %q:\n%s", bad, text)
				}
			}
		})
	}
}

// writePWPcap writes messages the engine sent from src to dst as
// Ethernet/IPv4/UDP or Ethernet/IPv4/protocol 115 frames.
func writePWPcap(t *testing.T, file string, msgs [][]byte, ip bool, src, dst netip.AddrPort) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 1, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 1, 2}, EthernetType: layers.EthernetTypeIPv4}
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Id: uint16(i), SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice(), Protocol: IPProto}
		sb := gopacket.NewSerializeBuffer()
		opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
		if ip {
			err = gopacket.SerializeLayers(sb, opts, eth, ip4, gopacket.Payload(m))
		} else {
			ip4.Protocol = layers.IPProtocolUDP
			udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
			udp.SetNetworkLayerForChecksum(ip4)
			err = gopacket.SerializeLayers(sb, opts, eth, ip4, udp, gopacket.Payload(m))
		}
		if err != nil {
			t.Fatal(err)
		}
		data := sb.Bytes()
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(1700000000, int64(i)*1000), CaptureLength: len(data), Length: len(data)}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
}
