package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// capturedPacket is the L2TP part of one captured frame.
type capturedPacket struct {
	frame int // 1-based, as tshark numbers frames
	enc   Encap
	b     []byte
}

// readL2TP returns the L2TP payloads of a capture: UDP port 1701 either
// way and IP protocol 115.
func readL2TP(t *testing.T, name string) []capturedPacket {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := openCapture(f)
	if err != nil {
		t.Fatal(err)
	}
	var out []capturedPacket
	for frame := 1; ; frame++ {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.Default)
		if ip, ok := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok && ip.Protocol == 115 {
			out = append(out, capturedPacket{frame, EncapIP, ip.Payload})
			continue
		}
		if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && (udp.SrcPort == 1701 || udp.DstPort == 1701) {
			out = append(out, capturedPacket{frame, EncapUDP, udp.Payload})
		}
	}
	return out
}

// packetSource is what pcapgo's pcap and pcapng readers have in common.
type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

// openCapture reads pcap or pcapng (some .pcap files are pcapng).
func openCapture(f *os.File) (packetSource, error) {
	if r, err := pcapgo.NewReader(f); err == nil {
		return r, nil
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	return pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
}

// reencode rebuilds a parsed control message from its header and AVPs.
func reencode(m *Message, enc Encap) []byte {
	b := AppendControlHeader(nil, enc, m.Header)
	b = AppendAVPs(b, m.AVPs)
	FinishControl(b, 0, enc)
	return b
}

// controlMessageLen is the length of the control message at b[0],
// including the zero session ID over IP.
func controlMessageLen(m *Message, enc Encap) int {
	if enc == EncapIP {
		return 4 + int(m.Header.Length)
	}
	return int(m.Header.Length)
}

// Every control message of the real-peer captures parses, validates and
// re-encodes byte for byte (RFC 2661 §3.1 and §4.1, RFC 3931 §3.2.1 and
// §5.1). The expected counts are tshark's "l2tp.type==1" and data counts
// for the same files.
func TestCapturesParseValidateReencode(t *testing.T) {
	cases := []struct {
		file          string
		control, data int
		types         []MsgType // message types in order, ZLBs included
	}{
		{"xl2tpd-lac-lns-pppd-fails.pcap", 13, 0, []MsgType{MsgSCCRQ, MsgSCCRP, MsgSCCCN, MsgICRQ, MsgZLB, MsgICRP, MsgZLB, MsgICCN, MsgZLB, MsgCDN, MsgZLB, MsgStopCCN, MsgZLB}},
		{"xl2tpd-lac-lns-slirp-ppp.pcap", 11, 16, nil},
		{"xl2tpd-lac-l2tpns-lns.pcap", 15, 22, nil},
		{"l2tpns-tunnel-switch.pcap", 24, 42, nil},
		{"kernel-xl2tpd-pppd-chap.pcap", 9, 27, []MsgType{MsgSCCRQ, MsgSCCRP, MsgSCCCN, MsgZLB, MsgICRQ, MsgICRP, MsgZLB, MsgICCN, MsgZLB}},
		{"kernel-l2tpv3-static-eth.pcap", 0, 28, nil},
		{"l2tpv2-windows-lac-cisco-lns-tunnelauth-pap.pcap", 18, 150, nil},
		{"l2tpv3-mist-udp-control-hmac-sha1.pcap", 18, 117, []MsgType{MsgSCCRQ, MsgSCCRQ, MsgSCCRP, MsgSCCCN, MsgACK, MsgACK, MsgICRQ, MsgICRP, MsgACK, MsgICCN, MsgACK, MsgACK, MsgHello, MsgACK, MsgHello, MsgACK, MsgHello, MsgACK}},
	}
	var avps []AVP
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			var nc, nd int
			var types []MsgType
			for _, p := range readL2TP(t, c.file) {
				h, off, err := ParseHeader(p.b, p.enc)
				if err != nil {
					t.Fatalf("frame %d: ParseHeader: %v", p.frame, err)
				}
				if !h.Control {
					nd++
					if off > len(p.b) {
						t.Fatalf("frame %d: payload offset %d beyond %d", p.frame, off, len(p.b))
					}
					continue
				}
				nc++
				m, err := ParseMessage(p.b, p.enc, avps)
				if err != nil {
					t.Fatalf("frame %d: ParseMessage: %v", p.frame, err)
				}
				avps = m.AVPs
				types = append(types, m.Type)
				if err := Validate(&m); err != nil {
					t.Errorf("frame %d %v: Validate: %v", p.frame, m.Type, err)
				}
				if _, err := m.Unhide([]byte("unused"), nil); err != nil {
					t.Errorf("frame %d: Unhide: %v", p.frame, err)
				}
				want := p.b[:controlMessageLen(&m, p.enc)]
				if got := reencode(&m, p.enc); !bytes.Equal(got, want) {
					t.Errorf("frame %d %v: re-encoded\n%x\nwant\n%x", p.frame, m.Type, got, want)
				}
			}
			if nc != c.control || nd != c.data {
				t.Errorf("got %d control and %d data messages, want %d and %d", nc, nd, c.control, c.data)
			}
			if c.types != nil && !equalTypes(types, c.types) {
				t.Errorf("message types %v, want %v", types, c.types)
			}
		})
	}
}

func equalTypes(a, b []MsgType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The values the capture README states for the Windows LAC / Cisco LNS
// exchange (RFC 2661 §4.4.3, §5.1.1).
func TestCaptureWindowsCiscoValues(t *testing.T) {
	var sccrq, sccrp, scccn, iccn *Message
	for _, p := range readL2TP(t, "l2tpv2-windows-lac-cisco-lns-tunnelauth-pap.pcap") {
		m, err := ParseMessage(p.b, p.enc, nil)
		if errors.Is(err, ErrNotControl) {
			// Data messages carry L but no S bit (flags 0x4002, 0x4102).
			h, _, err := ParseHeader(p.b, p.enc)
			if err != nil || !h.HasLength || h.HasSeq || h.Version != 2 {
				t.Fatalf("frame %d: data header %+v, %v", p.frame, h, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("frame %d: %v", p.frame, err)
		}
		switch {
		case p.frame == 45:
			sccrq = &m
		case p.frame == 46:
			sccrp = &m
		case p.frame == 47:
			scccn = &m
		case p.frame == 52:
			iccn = &m
		}
	}
	if sccrq == nil || sccrp == nil || scccn == nil || iccn == nil {
		t.Fatal("SCCRQ, SCCRP, SCCCN or ICCN not found")
	}
	checkString(t, sccrq, AVPHostName, "albatross.dev.hsd.com.au")
	checkString(t, sccrq, AVPVendorName, "Microsoft")
	checkU16(t, sccrq, AVPFirmwareRevision, 0x0500)
	checkU16(t, sccrq, AVPReceiveWindowSize, 8)
	checkU16(t, sccrq, AVPProtocolVersion, ProtocolVersionV2)
	checkString(t, sccrp, AVPHostName, "lac@test2.hsd.com.au")
	checkString(t, sccrp, AVPVendorName, "Cisco Systems, Inc.")
	checkU16(t, sccrp, AVPFirmwareRevision, 0x1120)
	checkU16(t, sccrp, AVPReceiveWindowSize, 300)
	if a, ok := sccrp.Find(VendorIETF, AVPChallenge); !ok || len(a.Value) == 0 {
		t.Error("SCCRP without Challenge")
	}
	if a, ok := scccn.Find(VendorIETF, AVPChallengeResponse); !ok || len(a.Value) != 16 {
		t.Error("SCCCN without a 16-octet Challenge Response")
	}
	if a, ok := iccn.Find(VendorIETF, AVPTxConnectSpeed); !ok {
		t.Error("ICCN without Connect Speed")
	} else if v, _ := a.Uint32(); v != 100000000 {
		t.Errorf("Connect Speed %d", v)
	}
	checkU16(t, iccn, AVPProxyAuthenType, 4)
}

func checkString(t *testing.T, m *Message, typ AVPType, want string) {
	t.Helper()
	a, ok := m.Find(VendorIETF, typ)
	if !ok || string(a.Value) != want {
		t.Errorf("%v %v = %q, want %q", m.Type, typ, a.Value, want)
	}
}

func checkU16(t *testing.T, m *Message, typ AVPType, want uint16) {
	t.Helper()
	a, ok := m.Find(VendorIETF, typ)
	v, err := a.Uint16()
	if !ok || err != nil || v != want {
		t.Errorf("%v %v = %d (%v), want %d", m.Type, typ, v, err, want)
	}
}

// Mist's L2TPv3 control plane: digests on every message, nonces in
// SCCRQ/SCCRP, vendor 52845 AVPs kept as they are (RFC 3931 §5.2: no M
// bit, so they are skipped by Validate, but ParseMessage returns them).
func TestCaptureMistDigestAndVendorAVPs(t *testing.T) {
	const mist = 52845
	var vendorAVPs, digests int
	key := DeriveAuthKey([]byte("not the secret"))
	for _, p := range readL2TP(t, "l2tpv3-mist-udp-control-hmac-sha1.pcap") {
		m, err := ParseMessage(p.b, p.enc, nil)
		if errors.Is(err, ErrNotControl) {
			continue
		}
		if err != nil {
			t.Fatalf("frame %d: %v", p.frame, err)
		}
		if m.Header.Version != 3 {
			t.Fatalf("frame %d: version %d", p.frame, m.Header.Version)
		}
		for _, a := range m.AVPs {
			if a.Vendor == mist {
				vendorAVPs++
				if a.Mandatory {
					t.Errorf("frame %d: Mist AVP %d has the M bit", p.frame, a.Type)
				}
			}
		}
		// RFC 3931 §5.4.1: the digest follows Message Type.
		if len(m.AVPs) < 2 || m.AVPs[1].Type != AVPMessageDigest || len(m.AVPs[1].Value) != 21 || m.AVPs[1].Value[0] != DigestSHA1 {
			t.Fatalf("frame %d: second AVP is not an HMAC-SHA-1 Message Digest", p.frame)
		}
		digests++
		msg := p.b[:m.Header.Length]
		var verr error
		if m.Type == MsgSCCRQ {
			verr = VerifyDigest(msg, p.enc, key)
		} else {
			verr = VerifyDigestNonce(msg, p.enc, key, []byte("local"), []byte("remote"))
		}
		if !errors.Is(verr, ErrBadDigest) {
			t.Errorf("frame %d: verify with a wrong key: %v, want ErrBadDigest", p.frame, verr)
		}
		if m.Type == MsgSCCRQ || m.Type == MsgSCCRP {
			if a, ok := m.Find(VendorIETF, AVPNonce); !ok || len(a.Value) != 16 {
				t.Errorf("frame %d: %v without a 16-octet nonce", p.frame, m.Type)
			}
		}
		if m.Type == MsgICRQ {
			if a, _ := m.Find(VendorIETF, AVPPseudowireType); binary.BigEndian.Uint16(a.Value) != 4 {
				t.Errorf("PW type %x, want 4 (Ethernet VLAN)", a.Value)
			}
			checkString(t, &m, AVPRemoteEndID, "mxtunnel")
		}
	}
	if digests != 18 {
		t.Errorf("%d digests, want 18", digests)
	}
	// SCCRQ twice and SCCRP: 3 each; the Hello in frame 22: 7.
	if vendorAVPs != 3+3+3+7 {
		t.Errorf("%d Mist vendor AVPs, want 16", vendorAVPs)
	}
}

// Data headers with the O and P bits (RFC 2661 §3.1) give the tunnel and
// session IDs the capture README states, and the PPP frame after the
// offset pad.
func TestCaptureOffsetPriorityDataHeaders(t *testing.T) {
	want := []struct {
		tid, sid        uint32
		offset, prio    bool
		payloadPrefix   []byte
		offsetSizeField uint16
	}{
		{18994, 54110, true, true, []byte{0xff, 0x03, 0xc0, 0x21}, 0},
		{1527, 8298, false, false, []byte{0xff, 0x03, 0x00, 0x57}, 0},
		{1527, 8298, false, false, []byte{0xff, 0x03}, 0},
		{18994, 54110, true, false, []byte{0xff, 0x03}, 0},
	}
	pkts := readL2TP(t, "l2tpv2-in-pppoe-nb6-offset-priority.pcap")
	if len(pkts) != len(want) {
		t.Fatalf("%d packets", len(pkts))
	}
	for i, p := range pkts {
		h, off, err := ParseHeader(p.b, p.enc)
		if err != nil {
			t.Fatal(err)
		}
		w := want[i]
		if h.Control || h.Version != 2 || h.TunnelID != w.tid || h.SessionID != w.sid ||
			h.HasOffset != w.offset || h.Priority != w.prio || h.OffsetSize != w.offsetSizeField {
			t.Errorf("frame %d: %+v", p.frame, h)
		}
		if !bytes.HasPrefix(p.b[off:], w.payloadPrefix) {
			t.Errorf("frame %d: payload % x", p.frame, p.b[off:min(off+4, len(p.b))])
		}
	}
}

// L2TPv3 data from the Linux kernel, over UDP and IP (RFC 3931 §4.1.1.1,
// §4.1.2.1): sessions 3000/4000 over UDP, 3001/4001 over IP.
func TestCaptureKernelV3DataHeaders(t *testing.T) {
	seen := map[Encap]map[uint32]int{EncapUDP: {}, EncapIP: {}}
	for _, p := range readL2TP(t, "kernel-l2tpv3-static-eth.pcap") {
		h, off, err := ParseHeader(p.b, p.enc)
		if err != nil {
			t.Fatal(err)
		}
		wantOff := 8
		if p.enc == EncapIP {
			wantOff = 4
		}
		if h.Control || h.Version != 3 || off != wantOff {
			t.Errorf("frame %d: %+v off %d", p.frame, h, off)
		}
		if v, ok := VersionOf(p.b, p.enc); !ok || v != 3 {
			t.Errorf("frame %d: VersionOf %d %v", p.frame, v, ok)
		}
		seen[p.enc][h.SessionID]++
	}
	if seen[EncapUDP][3000] != 4 || seen[EncapUDP][4000] != 10 || seen[EncapIP][3001] != 4 || seen[EncapIP][4001] != 10 {
		t.Errorf("sessions seen: %v", seen)
	}
}

// tcpdump's AVP overflow regression input: every L2TP message is
// rejected with an error, nothing panics.
func TestCaptureMalformedRejected(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "l2tpv2-malformed-avp-overflow.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		// Ethernet, IPv4 with its own header length, UDP: the L2TP bytes
		// start there whatever the (broken) length fields say.
		if len(data) < 14+20+8 {
			continue
		}
		off := 14 + int(data[14]&0x0f)*4 + 8
		if off >= len(data) {
			continue
		}
		n++
		b := data[off:]
		m, err := ParseMessage(b, EncapUDP, nil)
		if err == nil {
			err = Validate(&m)
		}
		if err == nil {
			t.Errorf("accepted malformed message % x", b)
		}
	}
	// Frames 7 and 13 are cut to 8 bytes, before any L2TP byte.
	if n != 18 {
		t.Errorf("%d L2TP packets, want 18", n)
	}
}
