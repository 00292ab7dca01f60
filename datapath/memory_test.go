package datapath

import (
	"bytes"
	"net/netip"
	"runtime"
	"testing"
	"unsafe"
)

// sessionBudget is the heap an installed PPP session may cost the
// datapath: its entry (256 bytes), counters and sequence state (64), and
// its slots in the session table and the IPv4 route table. One l2tpd
// holds 100,000 sessions in 4 KiB each across all layers; this is what
// was measured (423 bytes) plus 10 %.
const sessionBudget = 465

// The entry is the bulk of it: 256 bytes is a size class of its own, the
// next one is 288.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n > 256 {
		t.Fatalf("entry is %d bytes, budget 256", n)
	}
}

// The longest encapsulation an entry keeps fits its header array: v3
// with an 8-octet cookie, the default L2-specific sublayer with sequence
// numbers (RFC 3931 §4.1, §4.6) and FF 03.
func TestEntryLongestHeader(t *testing.T) {
	r := newRig(t, false, 8)
	s := r.installV3(t, func(s *Session) { s.Sequencing = true })
	ent := r.e.sessions.get(s.Key)
	want := AppendV3(nil, Header{Session: s.PeerSession, Cookie: s.PeerCookie, L2SS: true, Sequenced: true}, []byte{0xff, 0x03})
	if len(want) != len(ent.hdr) || !bytes.Equal(ent.hdr[:ent.hlen], want) || int(ent.nsOff) != 8+len(s.PeerCookie) {
		t.Fatalf("header % x (nsOff %d), want % x", ent.hdr[:ent.hlen], ent.nsOff, want)
	}
}

// Each PPP session is installed when the call is answered and again
// with its address once IPCP is up (control's prepare and installRoutes):
// after both, what stays on the heap per session is within budget.
func TestSessionMemory(t *testing.T) {
	const n = 20000
	r := newRig(t, false, 8)
	sessions := make([]Session, n)
	for i := range sessions {
		sessions[i] = Session{
			Key:        SessionKey{Version: 2, Tunnel: uint32(1 + i/1000), Session: uint32(1 + i%1000)},
			PeerTunnel: uint32(1 + i/1000), PeerSession: uint32(1 + i%1000),
			Peer: lac, Local: lnsAddr, Socket: r.sock, MSSClamp: 1460,
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range sessions {
		s := &sessions[i]
		if err := r.e.Install(*s); err != nil {
			t.Fatal(err)
		}
		s.IPv4 = netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)})
		if err := r.e.Install(*s); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes of heap per installed session (%d sessions)", per, n)
	if per > sessionBudget {
		t.Fatalf("%.0f bytes per installed session, budget %d", per, sessionBudget)
	}
	if got := r.e.v4.lookup([]byte{100, 64, 0, 5}); got == nil || got.s.Key != sessions[5].Key {
		t.Fatal("route of session 5 lost")
	}
	runtime.KeepAlive(sessions)
}
