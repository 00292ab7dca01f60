package wire

import "testing"

// ParseHeader and ParseMessage with a reused AVP slice do not allocate
// (the per-packet path of the control plane).
func TestParseDoesNotAllocate(t *testing.T) {
	var msgs [][]byte
	var encs []Encap
	for _, f := range []string{"l2tpv2-windows-lac-cisco-lns-tunnelauth-pap.pcap", "l2tpv3-mist-udp-control-hmac-sha1.pcap", "kernel-l2tpv3-static-eth.pcap"} {
		for _, p := range readL2TP(t, f) {
			msgs = append(msgs, p.b)
			encs = append(encs, p.enc)
		}
	}
	avps := make([]AVP, 0, 64)
	var nAVPs int
	allocs := testing.AllocsPerRun(20, func() {
		nAVPs = 0
		for i, b := range msgs {
			h, _, err := ParseHeader(b, encs[i])
			if err != nil || !h.Control {
				continue
			}
			m, err := ParseMessage(b, encs[i], avps)
			if err != nil {
				panic(err)
			}
			avps = m.AVPs
			nAVPs += len(m.AVPs)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run", allocs)
	}
	if nAVPs < 100 {
		t.Errorf("only %d AVPs parsed", nAVPs)
	}
}
