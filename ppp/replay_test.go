package ppp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

type captured struct {
	when       time.Time
	fromClient bool
	frame      []byte // PPP frame, address/control field included
	number     int    // frame number in the capture, from 1
}

// l2tpDataPayload returns the PPP frame of an L2TPv2 data message
// (RFC 2661 §3.1), or nil for control messages.
func l2tpDataPayload(b []byte) []byte {
	if len(b) < 6 {
		return nil
	}
	flags := binary.BigEndian.Uint16(b)
	if flags&0x8000 != 0 || flags&0x000f != 2 {
		return nil
	}
	off := 2
	if flags&0x4000 != 0 {
		off += 2
	}
	off += 4 // tunnel and session IDs
	if flags&0x0800 != 0 {
		off += 4
	}
	if flags&0x0200 != 0 {
		if len(b) < off+2 {
			return nil
		}
		off += 2 + int(binary.BigEndian.Uint16(b[off:]))
	}
	if off > len(b) {
		return nil
	}
	return b[off:]
}

func readCapture(t *testing.T, path string, client netip.Addr) []captured {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []captured
	for n := 1; ; n++ {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		pkt := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		ip, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil {
			continue
		}
		ppp := l2tpDataPayload(udp.Payload)
		if ppp == nil {
			continue
		}
		src, _ := netip.AddrFromSlice(ip.SrcIP)
		out = append(out, captured{when: ci.Timestamp, fromClient: src == client, frame: bytes.Clone(ppp), number: n})
	}
	return out
}

type sentPacket struct {
	proto Protocol
	p     Packet
}

func decodeOutput(t *testing.T, o *Output) []sentPacket {
	t.Helper()
	var r []sentPacket
	for i := 0; i < o.NumFrames(); i++ {
		proto, info, err := ParseFrame(o.Frame(i))
		if err != nil {
			t.Fatalf("engine sent an unparsable frame %x", o.Frame(i))
		}
		p, err := ParsePacket(info)
		if err != nil {
			t.Fatalf("engine sent an unparsable packet %x", info)
		}
		if n := int(info[2])<<8 | int(info[3]); n != len(info) {
			t.Fatalf("engine sent a packet of length %d in %d octets: %x", n, len(info), info)
		}
		r = append(r, sentPacket{proto, p})
	}
	return r
}

// The Windows client of a real capture (RFC 2661 LAC with a Cisco LNS)
// is replayed against the server engine. Its answers to the Cisco's
// requests are replaced by an Ack of the engine's own last request (the
// engine asks for the same things: PAP, a magic number, an address);
// everything the client asks is fed as captured, and the engine's
// answers are checked against RFC 1661, RFC 1570, RFC 1334, RFC 1332
// and RFC 1877.
func TestReplayWindowsClientPAP(t *testing.T) {
	frames := readCapture(t, "testdata/l2tpv2-windows-lac-cisco-lns-tunnelauth-pap.pcap", netip.MustParseAddr("192.168.101.233"))
	cfg := serverConfig(AuthPAP)
	cfg.LocalIPv4 = netip.MustParseAddr("172.16.10.1")
	cfg.PeerIPv4 = netip.MustParseAddr("172.16.10.2")
	s, err := NewSession(cfg)
	if err != nil {
		t.Fatal(err)
	}
	users := LocalUsers{"markw": "qwerty"}
	var out Output
	lastReq := map[Protocol][]byte{}
	answered := map[Protocol]bool{}
	ackedClient := map[Protocol]bool{}
	var events []Event
	var data int
	started := false
	var replies []string // compact transcript of what the engine sent in reply to the client
	note := func(tag string, sent []sentPacket) {
		for _, sp := range sent {
			replies = append(replies, tag+" -> "+sp.proto.String()+" code "+strconv.Itoa(int(sp.p.Code)))
			if sp.p.Code == CodeConfigureAck {
				ackedClient[sp.proto] = true
			}
			if sp.p.Code == CodeConfigureRequest {
				lastReq[sp.proto] = AppendPacket(nil, sp.p.Code, sp.p.ID, sp.p.Data)
				answered[sp.proto] = false
			}
		}
	}
	var rejectedCallback, ackedLCP, gotPAPAck, protoRejCCP, rejNBNS, nakAddr, ackAddr, termAck bool
	for _, c := range frames {
		if c.number < 45 {
			continue // the earlier session
		}
		if !c.fromClient {
			continue
		}
		now := c.when
		if !started {
			s.Start(now, &out)
			started = true
		} else if d, ok := s.Deadline(); ok && !now.Before(d) {
			s.Tick(now, &out)
		}
		note("tick", decodeOutput(t, &out))
		events = append(events, out.Events...)
		out.Reset()

		frame := c.frame
		proto, info, err := ParseFrame(frame)
		if err != nil {
			t.Fatalf("frame %d: %v", c.number, err)
		}
		if proto == ProtoLCP || proto == ProtoIPCP {
			p, _ := ParsePacket(info)
			if p.Code >= CodeConfigureAck && p.Code <= CodeConfigureReject {
				// An answer to the Cisco's request: answer ours instead,
				// once.
				req := lastReq[proto]
				if req == nil || answered[proto] {
					continue
				}
				answered[proto] = true
				ack := bytes.Clone(req)
				ack[0] = CodeConfigureAck
				frame = AppendPacket(AppendFrameHeader(nil, proto, false, false), ack[0], ack[1], ack[4:])
			}
			if p.Code == CodeConfigureRequest && ackedClient[proto] {
				// The Cisco Nak'd what the engine acknowledged; the
				// client's next request answers the Cisco, not us.
				continue
			}
			if proto == ProtoLCP && p.Code == CodeEchoReply {
				continue // replies to the Cisco's echoes
			}
		}
		s.Input(now, frame, &out)
		sent := decodeOutput(t, &out)
		note(proto.String()+" "+strconv.Itoa(c.number), sent)
		for _, sp := range sent {
			switch {
			case sp.proto == ProtoLCP && sp.p.Code == CodeConfigureReject:
				// RFC 1570 §2.3: Callback is rejected, and only it.
				rejectedCallback = bytes.Equal(sp.p.Data, []byte{13, 3, 6})
			case sp.proto == ProtoLCP && sp.p.Code == CodeConfigureAck:
				ackedLCP = true
			case sp.proto == ProtoPAP && sp.p.Code == papAck:
				gotPAPAck = true
			case sp.proto == ProtoLCP && sp.p.Code == CodeProtocolReject:
				protoRejCCP = binary.BigEndian.Uint16(sp.p.Data) == uint16(ProtoCCP)
			case sp.proto == ProtoIPCP && sp.p.Code == CodeConfigureReject:
				// RFC 1877 §1.2, §1.4: NBNS rejected, DNS kept.
				rejNBNS = bytes.Equal(sp.p.Data, []byte{130, 6, 0, 0, 0, 0, 132, 6, 0, 0, 0, 0})
			case sp.proto == ProtoIPCP && sp.p.Code == CodeConfigureNak:
				nakAddr = bytes.Equal(sp.p.Data, []byte{3, 6, 172, 16, 10, 2})
			case sp.proto == ProtoIPCP && sp.p.Code == CodeConfigureAck:
				ackAddr = bytes.Equal(sp.p.Data, []byte{3, 6, 172, 16, 10, 2})
			case sp.proto == ProtoLCP && sp.p.Code == CodeTerminateAck:
				termAck = true
			}
		}
		data += len(out.Data)
		for _, e := range out.Events {
			events = append(events, e)
			if e.Kind == EventAuthRequest {
				if e.Auth.Protocol != AuthPAP || e.Auth.User != "markw" || string(e.Auth.Password) != "qwerty" {
					t.Errorf("AuthRequest %+v", *e.Auth)
				}
				var o2 Output
				s.AuthResult(now, users.Authenticate(e.Auth), &o2)
				for _, sp := range decodeOutput(t, &o2) {
					if sp.proto == ProtoPAP && sp.p.Code == papAck {
						gotPAPAck = true
					}
				}
				note("auth", decodeOutput(t, &o2))
				events = append(events, o2.Events...)
			}
		}
		out.Reset()
	}
	// Let the Terminate-Ack wait of RFC 1661 §4.1 (RTR in Opened) end.
	last := frames[len(frames)-1].when
	s.Tick(last.Add(10*time.Second), &out)
	events = append(events, out.Events...)
	for _, r := range replies {
		t.Log(r)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"LCP Configure-Reject of Callback", rejectedCallback},
		{"LCP Configure-Ack", ackedLCP},
		{"PAP Authenticate-Ack", gotPAPAck},
		{"LCP Protocol-Reject of CCP", protoRejCCP},
		{"IPCP Configure-Reject of NBNS", rejNBNS},
		{"IPCP Configure-Nak of 0.0.0.0 with 172.16.10.2", nakAddr},
		{"IPCP Configure-Ack of 172.16.10.2", ackAddr},
		{"LCP Terminate-Ack", termAck},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("missing: %s", c.name)
		}
	}
	if data == 0 {
		t.Error("no IP packet reached the data path")
	}
	want := []EventKind{EventLinkUp, EventAuthRequest, EventAuthenticated, EventNetworkUp, EventNetworkDown, EventLinkDown}
	var got []EventKind
	for _, e := range events {
		got = append(got, e.Kind)
	}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
	if r := events[len(events)-1].Reason; r != ReasonPeerTerminate {
		t.Errorf("LinkDown reason %v", r)
	}
}
