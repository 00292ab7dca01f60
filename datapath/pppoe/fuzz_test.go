package pppoe

import (
	"bytes"
	"testing"
	"time"
)

func addSeeds(f *testing.F) {
	for _, name := range []string{"pppoe-cisco-bras-pap-ipcp-ipv6cp.pcap", "pppoe-discovery-lcp-ipcp-ccp-ipv6cp.pcap"} {
		for _, b := range readFrames(f, name) {
			f.Add(b)
		}
	}
}

// Any input either fails to parse or parses to a frame whose tags and
// payload re-encode to the same octets and parse back the same (RFC 2516
// §4, §5, §6).
func FuzzParseFrame(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFrame(b)
		if err != nil {
			return
		}
		if len(fr.Payload) > len(b)-HeaderLen {
			t.Fatal("payload past the frame")
		}
		if !fr.Discovery() {
			out := AppendSession(nil, fr.Dst, fr.Src, fr.SessionID, fr.Payload)
			if !bytes.Equal(out, b[:HeaderLen+len(fr.Payload)]) {
				t.Fatalf("session re-encoded\n got %x\nwant %x", out, b[:HeaderLen+len(fr.Payload)])
			}
			return
		}
		d, err := ParseDiscovery(fr.Payload)
		if err != nil {
			return
		}
		out := AppendHeader(nil, fr.Dst, fr.Src, fr.EtherType, fr.Code, fr.SessionID)
		it := NewTags(d.Raw)
		n := 0
		for {
			tag, ok := it.Next()
			if !ok {
				break
			}
			n++
			out = AppendTag(out, tag.Type, tag.Value)
		}
		SetLength(out)
		fr2, err := ParseFrame(out)
		if err != nil {
			t.Fatalf("re-encoded frame: %v", err)
		}
		d2, err := ParseDiscovery(fr2.Payload)
		if err != nil {
			t.Fatalf("re-encoded tags: %v", err)
		}
		if d2.Has != d.Has || d2.ServiceNames != d.ServiceNames || !bytes.Equal(d2.ServiceName, d.ServiceName) ||
			!bytes.Equal(d2.ACCookie, d.ACCookie) || !bytes.Equal(d2.HostUniq, d.HostUniq) || d2.ErrorTag != d.ErrorTag {
			t.Fatalf("tags changed: %+v vs %+v", d, d2)
		}
	})
}

// Whatever discovery packets arrive, the AC and a Host neither crash nor
// break their invariants: the AC only answers unicast Hosts, PADS
// session IDs are never 0 or 0xffff for a session, and sessions come up
// only after a PADR with a valid cookie.
func FuzzDiscovery(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ac := NewAC(ACConfig{Name: "bras1", MAC: acMAC, CookieKey: []byte("fuzz-only key"), MaxSessions: 4})
		fr, err := ParseFrame(b)
		if err != nil || !fr.Discovery() {
			return
		}
		out, ev := ac.Discovery(t0, &fr, nil)
		if ev.Kind == ACSessionUp {
			t.Fatal("a session came up without a cookie the AC made")
		}
		if len(out) > 0 {
			o, err := ParseFrame(out)
			if err != nil {
				t.Fatalf("AC sent an unparsable frame: %v", err)
			}
			if o.Dst != fr.Src || !o.Dst.IsUnicast() {
				t.Fatalf("AC answered %v to %v", o.Code, o.Dst)
			}
		}
		c := NewClient(ClientConfig{MAC: fr.Dst, HostUniq: []byte{1}})
		c.Start(t0, nil)
		c.Discovery(t0.Add(time.Millisecond), &fr, nil)
		c.Tick(t0.Add(time.Hour), nil)
		c.Close(nil)
	})
}
