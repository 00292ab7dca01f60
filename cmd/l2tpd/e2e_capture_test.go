package main_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sessionCapture is an `l2tpctl capture` running in the background.
type sessionCapture struct {
	file string
	done chan error
}

// startSessionCapture runs `l2tpctl capture --session id` against d for
// d's duration, writing a pcap in the test's directory.
func startSessionCapture(t *testing.T, d *daemon, id uint32, dur time.Duration) *sessionCapture {
	t.Helper()
	c := &sessionCapture{file: filepath.Join(t.TempDir(), fmt.Sprintf("session-%d.pcap", id)), done: make(chan error, 1)}
	go func() {
		out, err := exec.Command(l2tpctlBin, "-s", d.sock, "capture", "--session", strconv.FormatUint(uint64(id), 10),
			"--duration", dur.String(), "-w", c.file).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("l2tpctl capture --session %d: %v: %s", id, err, out)
		}
		c.done <- err
	}()
	// The capture is armed once the admin socket has the request.
	time.Sleep(300 * time.Millisecond)
	return c
}

// wait returns once the capture's file is written.
func (c *sessionCapture) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("l2tpctl capture did not finish")
	}
}

// checkIPSessionCapture has tshark read a capture of a session carried
// directly over IP (RFC 3931 §4.1.1.2): every frame is IPv4 or IPv6 with
// protocol 115, decoded as L2TPv3 with nothing malformed or flagged, and
// the data messages both ways carry the session's own ID (received) or
// its peer's (sent). cookie is the cookie size in octets.
func checkIPSessionCapture(t *testing.T, file string, v6 bool, id, peerID uint32, cookie int) {
	t.Helper()
	args := []string{"-n", "-r", file, "-o", fmt.Sprintf("l2tp.cookie_size:%d Byte Cookie", cookie), "-o", "l2tp.l2_specific:Default L2-Specific"}
	proto := "ip.proto == 115"
	if v6 {
		proto = "ipv6.nxt == 115"
	}
	if all := tsharkFrames(t, args, "frame"); len(all) == 0 {
		t.Fatal("the capture is empty")
	}
	if other := tsharkFrames(t, args, "!("+proto+") || !l2tp"); len(other) > 0 {
		t.Errorf("frames that are not L2TPv3 over IP protocol 115: %v", other)
	}
	if bad := tsharkFrames(t, args, "_ws.malformed || _ws.expert.severity >= warning", "_ws.expert.message"); len(bad) > 0 {
		t.Errorf("tshark flags frames (frame, message): %v", bad)
	}
	seen := map[string]int{}
	for _, sid := range tsharkFields(t, append(args, "-Y", "l2tp.sid != 0", "-T", "fields", "-e", "l2tp.sid")) {
		seen[sid]++
	}
	mine, peers := fmt.Sprintf("0x%08x", id), fmt.Sprintf("0x%08x", peerID)
	if seen[mine] == 0 || seen[peers] == 0 || len(seen) != 2 {
		t.Errorf("data messages by session ID %v: want both %s (received) and %s (sent), nothing else", seen, mine, peers)
	}
	if t.Failed() {
		out, _ := exec.Command("tshark", append(args, "-T", "fields", "-e", "frame.number", "-e", "ip.proto", "-e", "ipv6.nxt", "-e", "l2tp.sid", "-e", "_ws.col.Info")...).CombinedOutput()
		t.Logf("tshark's view of the capture:\n%s", strings.TrimSpace(string(out)))
	}
}
