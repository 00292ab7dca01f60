package main_test

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"
)

// These run without L2TPD_E2E: they check the tests' own pcap and L2TP
// reader against captures whose decoding tshark 4.0.17 showed, so a
// replay failure can be blamed on the daemon and not on the harness.

// RFC 2661 §3.1, §4.1: every control message of the captures parses and
// encodes back to the same bytes.
func TestE2ECodecCapturesRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/pcap/*.pcap")
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in testdata/pcap: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			frames, err := readPcapUDP(f)
			if err != nil {
				t.Fatal(err)
			}
			control := 0
			for _, fr := range frames {
				if fr.SrcPort != 1701 && fr.DstPort != 1701 {
					continue
				}
				m, err := parseL2TP(fr.Payload)
				if err != nil {
					t.Fatalf("frame %d: %v", fr.Number, err)
				}
				if !m.Control {
					continue
				}
				control++
				raw := make([][]byte, len(m.AVPs))
				for i, a := range m.AVPs {
					raw[i] = a.Raw
				}
				got := appendControl(nil, m.TunnelID, m.Session, m.Ns, m.Nr, raw...)
				if !bytes.Equal(got, fr.Payload) {
					t.Errorf("frame %d: re-encoded\n%x\nwant\n%x", fr.Number, got, fr.Payload)
				}
			}
			if control == 0 {
				t.Error("no control messages found")
			}
		})
	}
}

// The message types, IDs and sequence numbers tshark shows for the
// xl2tpd capture (RFC 2661 §3.2, §5.8).
func TestE2ECodecMatchesTshark(t *testing.T) {
	frames, err := readPcapUDP("testdata/pcap/xl2tpd-lac-lns-pppd-fails.pcap")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		frame                   int
		src                     string
		tunnel, session, ns, nr uint16
		typ                     uint16
	}
	want := []row{
		{1, "198.18.0.2", 0, 0, 0, 0, mtSCCRQ},
		{2, "198.18.0.3", 56033, 0, 0, 1, mtSCCRP},
		{3, "198.18.0.2", 1328, 0, 1, 1, mtSCCCN},
		{4, "198.18.0.2", 1328, 0, 2, 1, mtICRQ},
		{5, "198.18.0.3", 56033, 0, 1, 2, 0},
		{6, "198.18.0.3", 56033, 46040, 1, 3, mtICRP},
		{7, "198.18.0.3", 56033, 0, 2, 3, 0},
		{8, "198.18.0.2", 1328, 65497, 3, 2, mtICCN},
		{9, "198.18.0.3", 56033, 46040, 2, 4, 0},
		{10, "198.18.0.2", 1328, 65497, 4, 2, mtCDN},
		{11, "198.18.0.3", 56033, 46040, 2, 5, 0},
		{12, "198.18.0.2", 1328, 0, 5, 2, mtStopCCN},
		{13, "198.18.0.3", 56033, 0, 2, 6, 0},
	}
	var got []row
	for _, fr := range frames {
		m, err := parseL2TP(fr.Payload)
		if err != nil {
			t.Fatalf("frame %d: %v", fr.Number, err)
		}
		got = append(got, row{fr.Number, fr.Src.String(), m.TunnelID, m.Session, m.Ns, m.Nr, m.Type})
	}
	if !slices.Equal(got, want) {
		t.Errorf("decoded\n%v\nwant\n%v", got, want)
	}
	sccrq, _ := parseL2TP(frames[0].Payload)
	if a, ok := sccrq.find(avpHostName); !ok || string(a.Value) != "hr-lac" {
		t.Errorf("SCCRQ Host Name = %q, %v; want hr-lac", a.Value, ok)
	}
	if id, ok := sccrq.uint16AVP(avpAssignedTunnelID); !ok || id != 56033 {
		t.Errorf("SCCRQ Assigned Tunnel ID = %d, %v; want 56033", id, ok)
	}
}

// RFC 2661 §4.4.3, §5.1.1: the Challenge Response the tests compute is
// the one xl2tpd computes, both in the SCCRP (ID 2) and the SCCCN (ID 3).
func TestE2ECodecChallengeResponseMatchesXl2tpd(t *testing.T) {
	frames, err := readPcapUDP("testdata/pcap/xl2tpd-challenge-hidden-s3cret.pcap")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []tMsg
	for _, fr := range frames {
		m, err := parseL2TP(fr.Payload)
		if err != nil {
			t.Fatalf("frame %d: %v", fr.Number, err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) < 3 || msgs[0].Type != mtSCCRQ || msgs[1].Type != mtSCCRP || msgs[2].Type != mtSCCCN {
		t.Fatalf("capture does not start with SCCRQ, SCCRP, SCCCN: %v", msgs)
	}
	for _, c := range []struct {
		challenger, responder int
		id                    uint16
	}{{0, 1, mtSCCRP}, {1, 2, mtSCCCN}} {
		ch, ok := msgs[c.challenger].find(avpChallenge)
		if !ok {
			t.Fatalf("%v has no Challenge", msgs[c.challenger])
		}
		resp, ok := msgs[c.responder].find(avpChallengeResponse)
		if !ok {
			t.Fatalf("%v has no Challenge Response", msgs[c.responder])
		}
		if got := challengeResponse(c.id, "s3cret", ch.Value); !bytes.Equal(got, resp.Value) {
			t.Errorf("%s response: computed %x, xl2tpd sent %x", msgTypeName(c.id), got, resp.Value)
		}
		if got := challengeResponse(c.id, "wrong", ch.Value); bytes.Equal(got, resp.Value) {
			t.Errorf("%s response matches with the wrong secret", msgTypeName(c.id))
		}
	}
}
