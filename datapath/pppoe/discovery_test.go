package pppoe

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestAC(services ...string) *AC {
	return NewAC(ACConfig{Name: "bras1", MAC: acMAC, ServiceNames: services, CookieKey: []byte("k")})
}

func mustFrame(t *testing.T, b []byte) *Frame {
	t.Helper()
	f, err := ParseFrame(b)
	if err != nil {
		t.Fatalf("%v: %x", err, b)
	}
	return &f
}

// describe renders a discovery frame for transcripts: code, session ID,
// addresses, then each tag.
func describe(t *testing.T, b []byte) string {
	t.Helper()
	if len(b) == 0 {
		return "-"
	}
	f := mustFrame(t, b)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%v sid=%d %v>%v", f.Code, f.SessionID, f.Src, f.Dst)
	it := NewTags(f.Payload)
	for {
		tag, ok := it.Next()
		if !ok {
			break
		}
		if tag.Type == TagACCookie {
			fmt.Fprintf(&sb, " %v(%d)", tag.Type, len(tag.Value))
			continue
		}
		fmt.Fprintf(&sb, " %v=%q", tag.Type, tag.Value)
	}
	if it.Err() != nil {
		t.Fatal(it.Err())
	}
	return sb.String()
}

// RFC 2516 §5.1–§5.4: PADI, PADO (AC-Name, the requested and the other
// offered Service-Names, AC-Cookie, Host-Uniq echoed), PADR with the
// cookie, PADS with a new session ID.
func TestDiscoveryTranscript(t *testing.T) {
	ac := newTestAC("internet", "voip")
	c := NewClient(ClientConfig{MAC: hostMAC, ServiceName: "internet", HostUniq: []byte{1, 2, 3, 4}})
	padi := c.Start(t0, nil)
	want := `PADI sid=0 02:00:00:00:00:01>ff:ff:ff:ff:ff:ff Service-Name="internet" Host-Uniq="\x01\x02\x03\x04"`
	if got := describe(t, padi); got != want {
		t.Fatalf("PADI:\n got %s\nwant %s", got, want)
	}
	pado, ev := ac.Discovery(t0, mustFrame(t, padi), nil)
	want = `PADO sid=0 02:00:00:00:00:ac>02:00:00:00:00:01 AC-Name="bras1" Service-Name="internet" Service-Name="voip" AC-Cookie(20) Host-Uniq="\x01\x02\x03\x04"`
	if got := describe(t, pado); got != want || ev.Kind != ACNone {
		t.Fatalf("PADO (%v):\n got %s\nwant %s", ev.Kind, got, want)
	}
	if ac.Sessions() != 0 {
		t.Fatal("a PADI must not use a session (RFC 2516 §9)")
	}
	padr, cev := c.Discovery(t0.Add(time.Millisecond), mustFrame(t, pado), nil)
	want = `PADR sid=0 02:00:00:00:00:01>02:00:00:00:00:ac Service-Name="internet" Host-Uniq="\x01\x02\x03\x04" AC-Cookie(20)`
	if got := describe(t, padr); got != want || cev.Kind != ClientNone || c.State() != ClientRequesting {
		t.Fatalf("PADR (%v %v):\n got %s\nwant %s", cev.Kind, c.State(), got, want)
	}
	pads, ev := ac.Discovery(t0.Add(2*time.Millisecond), mustFrame(t, padr), nil)
	want = `PADS sid=1 02:00:00:00:00:ac>02:00:00:00:00:01 Service-Name="internet" AC-Name="bras1" Host-Uniq="\x01\x02\x03\x04"`
	if got := describe(t, pads); got != want {
		t.Fatalf("PADS:\n got %s\nwant %s", got, want)
	}
	if ev.Kind != ACSessionUp || ev.Session.ID != 1 || ev.Session.Peer != hostMAC || ev.Session.ServiceName != "internet" {
		t.Fatalf("event %+v", ev)
	}
	out, cev := c.Discovery(t0.Add(3*time.Millisecond), mustFrame(t, pads), nil)
	if len(out) != 0 || cev.Kind != ClientUp || c.SessionID() != 1 || c.AC() != acMAC || c.ACName() != "bras1" {
		t.Fatalf("client %v id %d event %+v", c.State(), c.SessionID(), cev)
	}
	if !ac.Valid(1, hostMAC) || ac.Valid(1, acMAC) || ac.Valid(2, hostMAC) {
		t.Fatal("Valid")
	}
	if !c.Deadline().IsZero() {
		t.Fatal("a Host with a session has nothing to wait for")
	}

	// RFC 2516 §5.5: the Host's PADT ends the session at the AC.
	padt := c.Close(nil)
	want = `PADT sid=1 02:00:00:00:00:01>02:00:00:00:00:ac`
	if got := describe(t, padt); got != want {
		t.Fatalf("PADT:\n got %s\nwant %s", got, want)
	}
	out, ev = ac.Discovery(t0.Add(time.Second), mustFrame(t, padt), nil)
	if len(out) != 0 || ev.Kind != ACSessionDown || ev.Session.ID != 1 || ac.Sessions() != 0 {
		t.Fatalf("event %+v, %d sessions", ev, ac.Sessions())
	}
	if _, ev = ac.Discovery(t0.Add(time.Second), mustFrame(t, padt), nil); ev.Kind != ACRefused {
		t.Fatalf("second PADT: %+v", ev)
	}
}

// establish runs discovery between a new Host and ac.
func establish(t *testing.T, ac *AC, mac MAC, now time.Time) *Client {
	t.Helper()
	c := NewClient(ClientConfig{MAC: mac, HostUniq: mac[:]})
	pado, _ := ac.Discovery(now, mustFrame(t, c.Start(now, nil)), nil)
	padr, _ := c.Discovery(now, mustFrame(t, pado), nil)
	pads, _ := ac.Discovery(now, mustFrame(t, padr), nil)
	if _, ev := c.Discovery(now, mustFrame(t, pads), nil); ev.Kind != ClientUp {
		t.Fatalf("%v: %+v", mac, ev)
	}
	return c
}

// RFC 2516 §5.5: the AC's PADT ends the session at the Host.
func TestACTerminate(t *testing.T) {
	ac := newTestAC()
	c := establish(t, ac, hostMAC, t0)
	padt, ok := ac.Terminate(c.SessionID(), nil)
	if !ok || ac.Sessions() != 0 {
		t.Fatal("Terminate")
	}
	want := `PADT sid=1 02:00:00:00:00:ac>02:00:00:00:00:01 AC-Name="bras1"`
	if got := describe(t, padt); got != want {
		t.Fatalf("PADT:\n got %s\nwant %s", got, want)
	}
	_, ev := c.Discovery(t0, mustFrame(t, padt), nil)
	if ev.Kind != ClientDown || c.State() != ClientClosed {
		t.Fatalf("%+v %v", ev, c.State())
	}
	if _, ok := ac.Terminate(c.SessionID(), nil); ok {
		t.Fatal("second Terminate")
	}
}

// RFC 2516 §9: the AC-Cookie binds the PADR to the Host's address and
// expires; a PADR without a valid cookie uses no session.
func TestCookie(t *testing.T) {
	ac := newTestAC()
	c := NewClient(ClientConfig{MAC: hostMAC})
	pado, _ := ac.Discovery(t0, mustFrame(t, c.Start(t0, nil)), nil)
	padr, _ := c.Discovery(t0, mustFrame(t, pado), nil)

	// Another Host replaying the cookie.
	other := append([]byte(nil), padr...)
	other[11] = 0x02
	if out, ev := ac.Discovery(t0, mustFrame(t, other), nil); len(out) != 0 || ev.Kind != ACRefused || ev.Reason != "bad AC-Cookie" {
		t.Fatalf("replayed cookie: %x %+v", out, ev)
	}
	// A flipped bit.
	bad := append([]byte(nil), padr...)
	bad[len(bad)-1] ^= 1
	if _, ev := ac.Discovery(t0, mustFrame(t, bad), nil); ev.Reason != "bad AC-Cookie" {
		t.Fatalf("forged cookie: %+v", ev)
	}
	// Too late.
	if _, ev := ac.Discovery(t0.Add(61*time.Second), mustFrame(t, padr), nil); ev.Reason != "bad AC-Cookie" {
		t.Fatalf("expired cookie: %+v", ev)
	}
	// Another AC (other key).
	ac2 := NewAC(ACConfig{Name: "bras1", MAC: acMAC, CookieKey: []byte("other")})
	if _, ev := ac2.Discovery(t0, mustFrame(t, padr), nil); ev.Reason != "bad AC-Cookie" {
		t.Fatalf("other key: %+v", ev)
	}
	if ac.Sessions() != 0 {
		t.Fatal("sessions used")
	}
	if _, ev := ac.Discovery(t0.Add(59*time.Second), mustFrame(t, padr), nil); ev.Kind != ACSessionUp {
		t.Fatalf("valid cookie: %+v", ev)
	}
}

// RFC 2516 §5.2: an AC that cannot serve the PADI does not answer; §5.4:
// a PADR for a service not offered gets a PADS with Service-Name-Error
// and session ID 0.
func TestServiceNames(t *testing.T) {
	ac := newTestAC("internet")
	c := NewClient(ClientConfig{MAC: hostMAC, ServiceName: "tv"})
	out, ev := ac.Discovery(t0, mustFrame(t, c.Start(t0, nil)), nil)
	if len(out) != 0 || ev.Kind != ACRefused {
		t.Fatalf("PADI for tv: %x %+v", out, ev)
	}
	// Empty Service-Name: any service (RFC 2516 Appendix A).
	c = NewClient(ClientConfig{MAC: hostMAC})
	pado, _ := ac.Discovery(t0, mustFrame(t, c.Start(t0, nil)), nil)
	want := `PADO sid=0 02:00:00:00:00:ac>02:00:00:00:00:01 AC-Name="bras1" Service-Name="" Service-Name="internet" AC-Cookie(20)`
	if got := describe(t, pado); got != want {
		t.Fatalf("PADO:\n got %s\nwant %s", got, want)
	}
	// A PADR that changed its mind to a service not offered.
	padr, _ := c.Discovery(t0, mustFrame(t, pado), nil)
	f := mustFrame(t, padr)
	d, _ := ParseDiscovery(f.Payload)
	tv := AppendHeader(nil, acMAC, hostMAC, EtherTypeDiscovery, CodePADR, 0)
	tv = AppendTagString(tv, TagServiceName, "tv")
	tv = AppendTag(tv, TagACCookie, d.ACCookie)
	SetLength(tv)
	pads, ev := ac.Discovery(t0, mustFrame(t, tv), nil)
	want = `PADS sid=0 02:00:00:00:00:ac>02:00:00:00:00:01 Service-Name="tv" Service-Name-Error="service not offered"`
	if got := describe(t, pads); got != want || ev.Kind != ACRefused {
		t.Fatalf("PADS (%+v):\n got %s\nwant %s", ev, got, want)
	}
	_, cev := c.Discovery(t0, mustFrame(t, pads), nil)
	if cev.Kind != ClientGaveUp || c.State() != ClientFailed || !strings.Contains(cev.Reason, "Service-Name-Error") {
		t.Fatalf("client: %+v %v", cev, c.State())
	}
	// RFC 2516 §5.1: exactly one Service-Name.
	two := AppendHeader(nil, Broadcast, hostMAC, EtherTypeDiscovery, CodePADI, 0)
	two = AppendTagString(two, TagServiceName, "")
	two = AppendTagString(two, TagServiceName, "internet")
	SetLength(two)
	if out, ev := ac.Discovery(t0, mustFrame(t, two), nil); len(out) != 0 || ev.Kind != ACRefused {
		t.Fatalf("two Service-Names: %+v", ev)
	}
}

// RFC 2516 Appendix A: Relay-Session-Id is echoed in PADO and PADS, and
// the Host returns it in the PADR.
func TestRelaySessionID(t *testing.T) {
	ac := newTestAC()
	padi := AppendHeader(nil, Broadcast, hostMAC, EtherTypeDiscovery, CodePADI, 0)
	padi = AppendTagString(padi, TagServiceName, "")
	padi = AppendTagString(padi, TagRelaySessionID, "relay-7")
	SetLength(padi)
	c := NewClient(ClientConfig{MAC: hostMAC})
	c.Start(t0, nil)
	pado, _ := ac.Discovery(t0, mustFrame(t, padi), nil)
	if !strings.Contains(describe(t, pado), `Relay-Session-Id="relay-7"`) {
		t.Fatalf("PADO %s", describe(t, pado))
	}
	padr, _ := c.Discovery(t0, mustFrame(t, pado), nil)
	if !strings.Contains(describe(t, padr), `Relay-Session-Id="relay-7"`) {
		t.Fatalf("PADR %s", describe(t, padr))
	}
	pads, ev := ac.Discovery(t0, mustFrame(t, padr), nil)
	if !strings.Contains(describe(t, pads), `Relay-Session-Id="relay-7"`) || string(ev.Session.RelaySessionID) != "relay-7" {
		t.Fatalf("PADS %s %+v", describe(t, pads), ev)
	}
}

// RFC 2516 §8: a Host resends its PADI doubling the wait, and gives up
// after its retries; a lost PADS makes it resend the PADR, which the AC
// answers with the same session.
func TestRetransmission(t *testing.T) {
	c := NewClient(ClientConfig{MAC: hostMAC, Timeout: time.Second, Retries: 3})
	c.Start(t0, nil)
	now := t0
	var sent []time.Duration
	for i := 0; i < 10 && !c.Deadline().IsZero(); i++ {
		if out, _ := c.Tick(c.Deadline().Add(-time.Nanosecond), nil); len(out) != 0 {
			t.Fatal("sent before the deadline")
		}
		now = c.Deadline()
		out, ev := c.Tick(now, nil)
		if len(out) > 0 {
			if mustFrame(t, out).Code != CodePADI {
				t.Fatalf("resent %s", describe(t, out))
			}
			sent = append(sent, now.Sub(t0))
		}
		if ev.Kind == ClientGaveUp {
			if ev.Reason != "no PADO" || c.State() != ClientFailed {
				t.Fatalf("%+v %v", ev, c.State())
			}
		}
	}
	if fmt.Sprint(sent) != "[1s 3s]" || c.State() != ClientFailed || now.Sub(t0) != 7*time.Second {
		t.Fatalf("PADIs resent at %v, gave up at %v in %v", sent, now.Sub(t0), c.State())
	}

	ac := newTestAC()
	c = NewClient(ClientConfig{MAC: hostMAC, HostUniq: []byte("h"), Timeout: time.Second, Retries: 2})
	pado, _ := ac.Discovery(t0, mustFrame(t, c.Start(t0, nil)), nil)
	padr, _ := c.Discovery(t0, mustFrame(t, pado), nil)
	if _, ev := ac.Discovery(t0, mustFrame(t, padr), nil); ev.Kind != ACSessionUp {
		t.Fatal("no session")
	}
	// The PADS is lost.
	padr2, _ := c.Tick(t0.Add(time.Second), nil)
	if mustFrame(t, padr2).Code != CodePADR {
		t.Fatalf("resent %s", describe(t, padr2))
	}
	pads, ev := ac.Discovery(t0.Add(time.Second), mustFrame(t, padr2), nil)
	if ev.Kind != ACNone || ac.Sessions() != 1 || mustFrame(t, pads).SessionID != 1 {
		t.Fatalf("repeated PADR: %+v, %d sessions, %s", ev, ac.Sessions(), describe(t, pads))
	}
	// After two PADRs the Host goes back to PADI (RFC 2516 §8).
	c2 := NewClient(ClientConfig{MAC: hostMAC, Timeout: time.Second, Retries: 2})
	pado, _ = ac.Discovery(t0, mustFrame(t, c2.Start(t0, nil)), nil)
	c2.Discovery(t0, mustFrame(t, pado), nil)
	c2.Tick(t0.Add(time.Second), nil) // second PADR
	out, _ := c2.Tick(t0.Add(3*time.Second), nil)
	if mustFrame(t, out).Code != CodePADI || c2.State() != ClientDiscovering {
		t.Fatalf("after PADRs: %s %v", describe(t, out), c2.State())
	}
}

// RFC 2516 §5.3: the Host chooses by AC-Name; answers for another
// Host-Uniq or another address are not its own.
func TestClientSelection(t *testing.T) {
	other := NewAC(ACConfig{Name: "other", MAC: MAC{2, 0, 0, 0, 0, 0xbb}, CookieKey: []byte("x")})
	ac := newTestAC()
	c := NewClient(ClientConfig{MAC: hostMAC, ACName: "bras1", HostUniq: []byte{9}})
	padi := c.Start(t0, nil)
	pado1, _ := other.Discovery(t0, mustFrame(t, padi), nil)
	if out, _ := c.Discovery(t0, mustFrame(t, pado1), nil); len(out) != 0 || c.State() != ClientDiscovering {
		t.Fatal("took the PADO of another AC-Name")
	}
	pado2, _ := ac.Discovery(t0, mustFrame(t, padi), nil)
	foreign := append([]byte(nil), pado2...)
	foreign[len(foreign)-1] = 8 // Host-Uniq is the last tag
	if out, _ := c.Discovery(t0, mustFrame(t, foreign), nil); len(out) != 0 {
		t.Fatal("took a PADO for another Host-Uniq")
	}
	if out, _ := c.Discovery(t0, mustFrame(t, pado2), nil); mustFrame(t, out).Dst != acMAC {
		t.Fatal("no PADR to bras1")
	}
}

// Session IDs are unique, skip those in use, and the AC refuses PADIs
// when full (RFC 2516 §5.2) and PADRs with AC-System-Error.
func TestSessionIDs(t *testing.T) {
	ac := NewAC(ACConfig{Name: "a", MAC: acMAC, CookieKey: []byte("k"), MaxSessions: 3})
	var cs []*Client
	for i := 0; i < 3; i++ {
		cs = append(cs, establish(t, ac, MAC{2, 0, 0, 0, 1, byte(i)}, t0))
	}
	for i, c := range cs {
		if c.SessionID() != uint16(i+1) {
			t.Fatalf("client %d has session %d", i, c.SessionID())
		}
	}
	c := NewClient(ClientConfig{MAC: hostMAC})
	padi := c.Start(t0, nil)
	if out, ev := ac.Discovery(t0, mustFrame(t, padi), nil); len(out) != 0 || ev.Reason != "no free session" {
		t.Fatalf("full AC answered PADI: %+v", ev)
	}
	ac.Terminate(2, nil)
	c4 := establish(t, ac, MAC{2, 0, 0, 0, 2, 0}, t0)
	if c4.SessionID() != 4 {
		t.Fatalf("got session %d, want 4 (IDs are not reused at once)", c4.SessionID())
	}
	// A PADR racing the last free session gets AC-System-Error.
	c5 := NewClient(ClientConfig{MAC: MAC{2, 0, 0, 0, 3, 0}})
	ac.Terminate(1, nil)
	pado, _ := ac.Discovery(t0, mustFrame(t, c5.Start(t0, nil)), nil)
	establish(t, ac, MAC{2, 0, 0, 0, 4, 0}, t0)
	padr, _ := c5.Discovery(t0, mustFrame(t, pado), nil)
	pads, ev := ac.Discovery(t0, mustFrame(t, padr), nil)
	if ev.Kind != ACRefused || !strings.Contains(describe(t, pads), "AC-System-Error") || mustFrame(t, pads).SessionID != 0 {
		t.Fatalf("%+v %s", ev, describe(t, pads))
	}
}

// Our Host against a real Cisco BRAS: the PADR returns its AC-Cookie
// unmodified, and its PADS brings the session up (RFC 2516 §5.3, §5.4).
func TestClientAgainstCiscoBRAS(t *testing.T) {
	frames := readFrames(t, "pppoe-cisco-bras-pap-ipcp-ipv6cp.pcap")
	host := mustFrame(t, frames[0]).Src
	c := NewClient(ClientConfig{MAC: host, HostUniq: []byte{0x64, 0x13, 0x85, 0x18}})
	padi := c.Start(t0, nil)
	if !bytes.Equal(padi, frames[0][:len(padi)]) {
		t.Fatalf("PADI\n got %x\nwant %x", padi, frames[0][:len(padi)])
	}
	padr, _ := c.Discovery(t0, mustFrame(t, frames[1]), nil)
	want := mustFrame(t, frames[2])
	got := mustFrame(t, padr)
	gd, _ := ParseDiscovery(got.Payload)
	wd, _ := ParseDiscovery(want.Payload)
	if got.Dst != want.Dst || !bytes.Equal(gd.ACCookie, wd.ACCookie) || !bytes.Equal(gd.HostUniq, wd.HostUniq) {
		t.Fatalf("PADR\n got %s\nwant %s", describe(t, padr), describe(t, frames[2]))
	}
	if _, ev := c.Discovery(t0, mustFrame(t, frames[3]), nil); ev.Kind != ClientUp || c.SessionID() != 0x11 || c.ACName() != "BRAS" {
		t.Fatalf("%+v session %#x", ev, c.SessionID())
	}
}

// Our AC answers the real Cisco Host's PADI, echoing its Host-Uniq.
func TestACAgainstCiscoHost(t *testing.T) {
	frames := readFrames(t, "pppoe-cisco-bras-pap-ipcp-ipv6cp.pcap")
	ac := newTestAC()
	pado, ev := ac.Discovery(t0, mustFrame(t, frames[0]), nil)
	want := `PADO sid=0 02:00:00:00:00:ac>cc:05:0e:88:00:00 AC-Name="bras1" Service-Name="" AC-Cookie(20) Host-Uniq="d\x13\x85\x18"`
	if got := describe(t, pado); got != want || ev.Kind != ACNone {
		t.Fatalf("PADO (%+v):\n got %s\nwant %s", ev, got, want)
	}
}

// A Host at its session limit gets no PADO (RFC 2516 §5.2: an AC that
// cannot serve a PADI does not answer) and its PADR a PADS with
// AC-System-Error; a PADT frees its slot.
func TestMaxPerMAC(t *testing.T) {
	ac := NewAC(ACConfig{Name: "a", MAC: acMAC, CookieKey: []byte("k"), MaxPerMAC: 1})
	first := NewClient(ClientConfig{MAC: hostMAC, HostUniq: []byte{1}})
	pado, _ := ac.Discovery(t0, mustFrame(t, first.Start(t0, nil)), nil)
	// A second Host-Uniq on the same MAC races the first to its PADR.
	second := NewClient(ClientConfig{MAC: hostMAC, HostUniq: []byte{2}})
	pado2, _ := ac.Discovery(t0, mustFrame(t, second.Start(t0, nil)), nil)
	padr, _ := first.Discovery(t0, mustFrame(t, pado), nil)
	pads, ev := ac.Discovery(t0, mustFrame(t, padr), nil)
	if ev.Kind != ACSessionUp {
		t.Fatalf("%+v", ev)
	}
	first.Discovery(t0, mustFrame(t, pads), nil)
	// The PADO of the full Host is not sent.
	third := NewClient(ClientConfig{MAC: hostMAC, HostUniq: []byte{3}})
	if out, ev := ac.Discovery(t0, mustFrame(t, third.Start(t0, nil)), nil); len(out) != 0 || ev.Reason != "sessions per MAC address" {
		t.Fatalf("PADI at the limit: %x %+v", out, ev)
	}
	padr2, _ := second.Discovery(t0, mustFrame(t, pado2), nil)
	pads2, ev := ac.Discovery(t0, mustFrame(t, padr2), nil)
	want := `PADS sid=0 02:00:00:00:00:ac>02:00:00:00:00:01 Service-Name="" AC-System-Error="sessions per MAC address" Host-Uniq="\x02"`
	if got := describe(t, pads2); got != want || ev.Kind != ACRefused {
		t.Fatalf("PADR at the limit (%+v):\n got %s\nwant %s", ev, got, want)
	}
	// Other Hosts are not affected.
	establish(t, ac, MAC{2, 0, 0, 0, 9, 9}, t0)
	// The first Host's PADT frees its slot.
	ac.Discovery(t0, mustFrame(t, first.Close(nil)), nil)
	if c := establish(t, ac, hostMAC, t0.Add(time.Second)); c.State() != ClientSession {
		t.Fatal("no session after the PADT")
	}
}
