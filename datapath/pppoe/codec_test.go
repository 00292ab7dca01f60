package pppoe

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/pcapgo"
)

// readFrames returns the raw Ethernet frames of a capture in testdata.
func readFrames(t testing.TB, name string) [][]byte {
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
		out = append(out, append([]byte(nil), data...))
	}
	return out
}

var (
	hostMAC = MAC{0x02, 0, 0, 0, 0, 0x01}
	acMAC   = MAC{0x02, 0, 0, 0, 0, 0xac}
)

// RFC 2516 §4, §5: the discovery frames of a Cisco Host and BRAS parse
// with the tags tshark shows.
func TestParseCiscoDiscovery(t *testing.T) {
	frames := readFrames(t, "pppoe-cisco-bras-pap-ipcp-ipv6cp.pcap")
	want := []struct {
		code   Code
		sid    uint16
		acName string
	}{{CodePADI, 0, ""}, {CodePADO, 0, "BRAS"}, {CodePADR, 0, "BRAS"}, {CodePADS, 0x11, "BRAS"}}
	hostUniq := []byte{0x64, 0x13, 0x85, 0x18}
	for i, w := range want {
		f, err := ParseFrame(frames[i])
		if err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		if !f.Discovery() || f.Code != w.code || f.SessionID != w.sid {
			t.Fatalf("frame %d: %v session %#x, want %v %#x", i+1, f.Code, f.SessionID, w.code, w.sid)
		}
		d, err := ParseDiscovery(f.Payload)
		if err != nil {
			t.Fatalf("frame %d: %v", i+1, err)
		}
		if string(d.ACName) != w.acName || !bytes.Equal(d.HostUniq, hostUniq) || d.ServiceNames != 1 {
			t.Errorf("frame %d: AC-Name %q Host-Uniq %x Service-Names %d", i+1, d.ACName, d.HostUniq, d.ServiceNames)
		}
	}
}

// RFC 2516 §6: session frames carry a PPP frame starting with the
// protocol field; Ethernet padding after LENGTH is not part of it.
func TestParseSessionPadding(t *testing.T) {
	frames := readFrames(t, "pppoe-cisco-bras-pap-ipcp-ipv6cp.pcap")
	f, err := ParseFrame(frames[4]) // LCP Configure-Request in a 60-octet frame
	if err != nil {
		t.Fatal(err)
	}
	if f.Discovery() || f.Code != CodeSession || f.SessionID != 0x11 {
		t.Fatalf("got %+v", f)
	}
	if len(frames[4]) != 60 || len(f.Payload) >= 60-HeaderLen {
		t.Fatalf("frame %d octets, payload %d: padding not cut", len(frames[4]), len(f.Payload))
	}
	if f.Payload[0] != 0xc0 || f.Payload[1] != 0x21 || f.Payload[2] != 1 {
		t.Fatalf("payload %x is not an LCP Configure-Request", f.Payload)
	}
	lcpLen := int(f.Payload[4])<<8 | int(f.Payload[5])
	if lcpLen != len(f.Payload)-2 {
		t.Fatalf("LCP length %d, payload %d", lcpLen, len(f.Payload))
	}
}

// Every frame of both captures parses or is refused with an error, and
// re-appending a parsed frame gives the same octets (padding aside).
func TestRoundTripCaptures(t *testing.T) {
	for _, name := range []string{"pppoe-cisco-bras-pap-ipcp-ipv6cp.pcap", "pppoe-discovery-lcp-ipcp-ccp-ipv6cp.pcap"} {
		n := 0
		for i, b := range readFrames(t, name) {
			f, err := ParseFrame(b)
			if errors.Is(err, ErrEtherType) {
				continue
			}
			if err != nil {
				t.Fatalf("%s frame %d: %v", name, i+1, err)
			}
			n++
			var out []byte
			if f.Discovery() {
				d, err := ParseDiscovery(f.Payload)
				if err != nil {
					t.Fatalf("%s frame %d: %v", name, i+1, err)
				}
				out = AppendHeader(nil, f.Dst, f.Src, f.EtherType, f.Code, f.SessionID)
				it := NewTags(d.Raw)
				for {
					tag, ok := it.Next()
					if !ok {
						break
					}
					out = AppendTag(out, tag.Type, tag.Value)
				}
				SetLength(out)
			} else {
				out = AppendSession(nil, f.Dst, f.Src, f.SessionID, f.Payload)
			}
			if !bytes.Equal(out, b[:HeaderLen+len(f.Payload)]) {
				t.Errorf("%s frame %d:\n got %x\nwant %x", name, i+1, out, b[:HeaderLen+len(f.Payload)])
			}
		}
		if n < 30 {
			t.Errorf("%s: only %d PPPoE frames", name, n)
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := AppendHeader(nil, acMAC, hostMAC, EtherTypeDiscovery, CodePADI, 0)
	good = AppendTagString(good, TagServiceName, "")
	SetLength(good)
	if _, err := ParseFrame(good); err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:19], ErrShort},
		{"ethertype", mut(func(b []byte) []byte { b[13] = 0; return b }), ErrEtherType},
		{"version", mut(func(b []byte) []byte { b[14] = 0x21; return b }), ErrVersion},
		{"length", mut(func(b []byte) []byte { b[19]++; return b }), ErrLength},
		{"session code on discovery", mut(func(b []byte) []byte { b[15] = 0; return b }), ErrCode},
		{"discovery code on session", mut(func(b []byte) []byte { b[13] = 0x64; return b }), ErrCode},
	}
	for _, c := range cases {
		if _, err := ParseFrame(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// A TAG running past the payload (RFC 2516 §5: TAG_LENGTH).
	bad := AppendHeader(nil, acMAC, hostMAC, EtherTypeDiscovery, CodePADI, 0)
	bad = append(bad, 0x01, 0x01, 0x00, 0x09, 'x')
	SetLength(bad)
	f, err := ParseFrame(bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseDiscovery(f.Payload); !errors.Is(err, ErrTag) {
		t.Fatalf("ParseDiscovery: %v, want ErrTag", err)
	}
}

// RFC 2516 Appendix A: unknown tags are ignored, End-Of-List ends the
// list, the first error tag is reported.
func TestTags(t *testing.T) {
	p := AppendTagString(nil, TagServiceName, "a")
	p = AppendTag(p, 0x0999, []byte{1, 2})
	p = AppendTagString(p, TagServiceName, "b")
	p = AppendTagString(p, TagGenericError, "oops")
	p = AppendTagString(p, TagACSystemError, "later")
	p = AppendTag(p, TagEndOfList, nil)
	p = AppendTagString(p, TagACName, "after-end")
	d, err := ParseDiscovery(p)
	if err != nil {
		t.Fatal(err)
	}
	if d.ServiceNames != 2 || string(d.ServiceName) != "a" || d.Has&HasACName != 0 {
		t.Fatalf("%+v", d)
	}
	if d.ErrorTag != TagGenericError || string(d.Error) != "oops" || d.Has&HasACSystemError == 0 {
		t.Fatalf("error %v %q has %b", d.ErrorTag, d.Error, d.Has)
	}
}

func TestMAC(t *testing.T) {
	m, err := ParseMAC("02:00:5E-10:AB:ff")
	if err != nil || m != (MAC{2, 0, 0x5e, 0x10, 0xab, 0xff}) || m.String() != "02:00:5e:10:ab:ff" {
		t.Fatalf("%v %v", m, err)
	}
	for _, s := range []string{"", "02:00:5e:10:ab", "02:00:5e:10:ab:fg", "02.00:5e:10:ab:ff"} {
		if _, err := ParseMAC(s); err == nil {
			t.Errorf("ParseMAC(%q) accepted", s)
		}
	}
	if Broadcast.IsUnicast() || (MAC{}).IsUnicast() || !hostMAC.IsUnicast() {
		t.Fatal("IsUnicast")
	}
}

// The session header write used by relays allocates nothing.
func TestPutSessionHeaderAllocs(t *testing.T) {
	buf := make([]byte, 64)
	n := testing.AllocsPerRun(100, func() {
		PutSessionHeader(buf, hostMAC, acMAC, 7, 30)
		if _, err := ParseFrame(buf[:HeaderLen+30]); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}
