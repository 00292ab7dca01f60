package reliable

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
	"time"
)

// Real control connections replayed from one side: the peer's packets go
// into Recv, and each message the recorded side sent goes through Send and
// Poll. What Poll emits must be byte for byte what the real implementation
// put on the wire (same Ns, same Nr), and its acknowledgements must carry
// Ns/Nr our channel agrees with (RFC 2661 §5.8, RFC 3931 §4.2).

type capPacket struct {
	frame int
	at    time.Time
	src   netip.Addr
	l2tp  []byte
}

// readPcap returns the UDP payloads of an Ethernet/IPv4 pcap file.
func readPcap(t *testing.T, name string) []capPacket {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 {
		t.Fatalf("%s: short pcap header", name)
	}
	var bo binary.ByteOrder
	switch binary.BigEndian.Uint32(b) {
	case 0xa1b2c3d4:
		bo = binary.BigEndian
	case 0xd4c3b2a1:
		bo = binary.LittleEndian
	default:
		t.Fatalf("%s: not a microsecond pcap file", name)
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		t.Fatalf("%s: link type %d, want Ethernet", name, lt)
	}
	var out []capPacket
	b = b[24:]
	for frame := 1; len(b) >= 16; frame++ {
		sec, usec, incl := bo.Uint32(b), bo.Uint32(b[4:]), int(bo.Uint32(b[8:]))
		if len(b) < 16+incl {
			t.Fatalf("%s: frame %d truncated", name, frame)
		}
		pkt := b[16 : 16+incl]
		b = b[16+incl:]
		if len(pkt) < 14 {
			continue
		}
		etype, p := binary.BigEndian.Uint16(pkt[12:]), pkt[14:]
		if etype == 0x8100 && len(p) >= 4 {
			etype, p = binary.BigEndian.Uint16(p[2:]), p[4:]
		}
		if etype != 0x0800 || len(p) < 20 || p[9] != 17 {
			continue
		}
		ihl := int(p[0]&0x0f) * 4
		src := netip.AddrFrom4([4]byte(p[12:16]))
		if len(p) < ihl+8 {
			continue
		}
		udp := p[ihl:]
		ulen := int(binary.BigEndian.Uint16(udp[4:]))
		if ulen < 8 || ulen > len(udp) {
			continue
		}
		at := time.Unix(int64(sec), int64(usec)*1000)
		out = append(out, capPacket{frame, at, src, udp[8:ulen]})
	}
	return out
}

// l2tpControl finds Ns/Nr in an L2TP control message and tells whether
// it is an acknowledgement only: a ZLB, or the v3 explicit ACK (message
// type 20, RFC 3931 §6.15).
func l2tpControl(b []byte) (off int, ns, nr uint16, ack, ok bool) {
	if len(b) < 12 || b[0]&0x80 == 0 {
		return 0, 0, 0, false, false
	}
	ver := b[1] & 0x0f
	off = 2
	if b[0]&0x40 != 0 {
		off += 2
	}
	switch ver {
	case 2, 3:
		off += 4 // v2 Tunnel and Session IDs; v3 Control Connection ID
	default:
		return 0, 0, 0, false, false
	}
	if len(b) < off+4 {
		return 0, 0, 0, false, false
	}
	ns, nr = binary.BigEndian.Uint16(b[off:]), binary.BigEndian.Uint16(b[off+2:])
	body := b[off+4:]
	switch {
	case len(body) == 0:
		ack = true
	case ver == 3 && len(body) >= 8 && binary.BigEndian.Uint16(body[2:]) == 0 &&
		binary.BigEndian.Uint16(body[4:]) == 0 && binary.BigEndian.Uint16(body[6:]) == 20:
		ack = true
	}
	return off, ns, nr, ack, true
}

func TestReplayCaptures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		file      string
		self      string // the side our channel plays
		fromFrame int
		peerRWS   uint16 // the peer's Receive Window Size AVP
		delivered int    // messages the recorded side received in order
		sent      int    // messages it sent, not counting retransmissions
		retx      int    // retransmissions it made in the capture
	}{
		// Cisco IOS LNS facing a Windows LAC (frames 45 on: one tunnel).
		{"cisco-lns", "l2tpv2-windows-lac-cisco-lns-tunnelauth-pap.pcap", "192.168.98.222", 45, 8, 6, 2, 0},
		// Both ends of xl2tpd LAC ↔ l2tpns LNS; l2tpns retransmits its
		// StopCCN twice after xl2tpd has gone, and xl2tpd acks
		// l2tpns's CDN with a ZLB before it sends its own StopCCN.
		{"xl2tpd-lac", "xl2tpd-lac-l2tpns-lns.pcap", "198.18.0.2", 1, 4, 4, 5, 0},
		{"l2tpns-lns", "xl2tpd-lac-l2tpns-lns.pcap", "198.18.0.4", 1, 4, 5, 4, 2},
		// Both ends of an L2TPv3 Juniper Mist AP ↔ Mist Edge, with explicit
		// ACK messages and Hellos; the AP's SCCRQ goes twice, 16s apart.
		{"mist-ap", "l2tpv3-mist-udp-control-hmac-sha1.pcap", "44.32.200.205", 1, 8, 5, 4, 1},
		{"mist-edge", "l2tpv3-mist-udp-control-hmac-sha1.pcap", "192.168.11.250", 2, 8, 4, 5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			self := netip.MustParseAddr(tc.self)
			var c *Channel
			var out [][]byte
			checked, retx := 0, 0
			for _, p := range readPcap(t, "testdata/pcap/"+tc.file) {
				if p.frame < tc.fromFrame {
					continue
				}
				off, ns, nr, ack, ok := l2tpControl(p.l2tp)
				if !ok {
					continue
				}
				if c == nil {
					c = New(Config{NsNrOffset: off, PeerWindow: tc.peerRWS, MaxRetransmits: 10})
				}
				checked++
				if p.src != self {
					wantNr := c.NextNr()
					r := c.Recv(p.at, ns, nr, ack, p.l2tp)
					var want RecvResult
					switch {
					case ack:
						want = AckOnly
					case ns == wantNr:
						want = Deliver
					case SeqLess(ns, wantNr):
						want = Duplicate
					default:
						t.Fatalf("frame %d: peer Ns %d ahead of %d", p.frame, ns, wantNr)
					}
					if r != want {
						t.Fatalf("frame %d: Recv(ns %d, nr %d) = %v, want %v", p.frame, ns, nr, r, want)
					}
					if _, more := c.Next(p.at); more {
						t.Fatalf("frame %d: a held message where the capture has none", p.frame)
					}
					continue
				}
				// A packet the recorded side sent.
				if ack {
					// Its acknowledgement may lag ours (a peer that acks
					// one message at a time), never lead it.
					if next := c.una + uint16(c.inflight); ns != next || !SeqLessEq(nr, c.NextNr()) {
						t.Fatalf("frame %d: ack (ns %d, nr %d), our channel is at (ns %d, nr %d)",
							p.frame, ns, nr, next, c.NextNr())
					}
					continue
				}
				switch {
				case ns == c.NextNs():
					// A new message: ours must leave now, identical.
					c.Send(p.at, p.l2tp)
					out = c.Poll(p.at, out[:0])
					found := false
					for _, q := range out {
						found = found || bytes.Equal(q, p.l2tp)
					}
					if !found {
						t.Fatalf("frame %d: Poll sent %d packets, none equal to the captured (ns %d, nr %d); our Nr %d, in flight %d",
							p.frame, len(out), ns, nr, c.NextNr(), c.InFlight())
					}
				case SeqLess(ns, c.NextNs()) && !SeqLess(ns, c.una):
					// A retransmission: the message must still wait for its
					// ack in our channel too, and carry the current Nr.
					if nr != c.NextNr() {
						t.Fatalf("frame %d: retransmission with Nr %d, ours is %d", p.frame, nr, c.NextNr())
					}
					retx++
				default:
					t.Fatalf("frame %d: message Ns %d, our channel has una %d, next %d", p.frame, ns, c.una, c.NextNs())
				}
			}
			if c == nil || checked < 8 {
				t.Fatalf("only %d control packets replayed", checked)
			}
			st := c.Stats()
			t.Logf("%d control packets; %+v", checked, st)
			if st.BadNr != 0 || st.OutOfWindow != 0 || st.OutOfOrder != 0 || c.Failed() {
				t.Errorf("stats %+v", st)
			}
			if int(st.Received) != tc.delivered || int(st.Sent) != tc.sent || retx != tc.retx {
				t.Errorf("delivered %d, sent %d, retransmitted %d; want %d, %d, %d",
					st.Received, st.Sent, retx, tc.delivered, tc.sent, tc.retx)
			}
		})
	}
}
