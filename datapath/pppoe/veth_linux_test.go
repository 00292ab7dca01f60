package pppoe

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// needNetns skips without root or iproute2, unless L2TPD_E2E=1 demands
// the test.
func needNetns(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (network namespaces, AF_PACKET)"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs iproute2's ip command"
	}
	if why == "" {
		return
	}
	if os.Getenv("L2TPD_E2E") == "1" {
		t.Fatalf("L2TPD_E2E=1 but the test cannot run: %s", why)
	}
	t.Skip(why + "; set L2TPD_E2E=1 to make this a failure")
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

func netns(t *testing.T, name string) {
	exec.Command("ip", "netns", "del", name).Run() // left over by a killed run
	ip(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
}

// listenIn opens a Conn on ifname inside namespace ns; the socket stays
// in the namespace whatever thread uses it later.
func listenIn(t *testing.T, ns, ifname string, opt ListenOptions) *Conn {
	t.Helper()
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		fd, err := unix.Open(filepath.Join("/run/netns", ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- res{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- res{err: err}
			return
		}
		c, err := Listen(ifname, opt)
		ch <- res{c, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// An AC and 16 Hosts with their own MAC addresses on the two ends of a
// veth pair in two namespaces: discovery (RFC 2516 §5), session frames
// both ways (§6) relayed by rewriting the header in place, PADT from
// each side (§5.5).
func TestVethDiscoveryAndSession(t *testing.T) {
	needNetns(t)
	pid := os.Getpid()
	nsAC, nsHost := fmt.Sprintf("pppoe-ac-%d", pid), fmt.Sprintf("pppoe-h-%d", pid)
	netns(t, nsAC)
	netns(t, nsHost)
	ip(t, "-n", nsAC, "link", "add", "ac0", "type", "veth", "peer", "name", "h0", "netns", nsHost)
	ip(t, "-n", nsAC, "link", "set", "ac0", "up")
	ip(t, "-n", nsHost, "link", "set", "h0", "up")

	acConn := listenIn(t, nsAC, "ac0", ListenOptions{})
	hostConn := listenIn(t, nsHost, "h0", ListenOptions{Promisc: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The AC side: discovery through the state machine, session frames
	// echoed back by swapping the addresses in the same buffer.
	ac := NewAC(ACConfig{Name: "veth-ac", MAC: acConn.HardwareAddr(), CookieKey: []byte("key")})
	var acMu sync.Mutex
	acEvents := make(chan ACEvent, 64)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		var out []byte
		acConn.Run(ctx, func(f *Frame, pkt []byte) {
			acMu.Lock()
			defer acMu.Unlock()
			if f.Discovery() {
				var ev ACEvent
				out, ev = ac.Discovery(time.Now(), f, out[:0])
				if len(out) > 0 {
					acConn.Write(out)
				}
				if ev.Kind == ACSessionUp || ev.Kind == ACSessionDown {
					acEvents <- ev
				}
				return
			}
			if !ac.Valid(f.SessionID, f.Src) {
				return
			}
			PutSessionHeader(pkt, f.Src, acConn.HardwareAddr(), f.SessionID, len(f.Payload))
			acConn.Write(pkt[:HeaderLen+len(f.Payload)])
		})
	}()

	const n = 16
	var mu sync.Mutex
	clients := map[MAC]*Client{}
	echoes := map[MAC][]byte{}
	downs := make(chan MAC, n)
	for i := 0; i < n; i++ {
		m := MAC{0x02, 0x42, 0, 0, byte(pid), byte(i)}
		clients[m] = NewClient(ClientConfig{MAC: m, HostUniq: []byte{byte(i)}, Timeout: 200 * time.Millisecond, Retries: 5})
	}
	go func() {
		defer wg.Done()
		var out []byte
		hostConn.Run(ctx, func(f *Frame, pkt []byte) {
			mu.Lock()
			defer mu.Unlock()
			c := clients[f.Dst]
			if c == nil {
				return
			}
			if f.Discovery() {
				var ev ClientEvent
				out, ev = c.Discovery(time.Now(), f, out[:0])
				if len(out) > 0 {
					hostConn.Write(out)
				}
				if ev.Kind == ClientDown {
					downs <- c.MAC()
				}
				return
			}
			if c.State() == ClientSession && f.SessionID == c.SessionID() && f.Src == c.AC() {
				echoes[c.MAC()] = append([]byte(nil), f.Payload...)
			}
		})
	}()

	// Discovery, with the Hosts' retransmissions driven by a ticker.
	mu.Lock()
	var batch [][]byte
	for _, c := range clients {
		batch = append(batch, c.Start(time.Now(), nil))
	}
	mu.Unlock()
	if _, err := hostConn.WriteBatch(batch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "sessions up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		up := 0
		for _, c := range clients {
			if c.State() == ClientSession {
				up++
			}
			if out, _ := c.Tick(time.Now(), nil); len(out) > 0 {
				hostConn.Write(out)
			}
		}
		return up == n
	})
	ids := map[uint16]bool{}
	for i := 0; i < n; i++ {
		ev := <-acEvents
		if ev.Kind != ACSessionUp || ids[ev.Session.ID] {
			t.Fatalf("event %+v", ev)
		}
		ids[ev.Session.ID] = true
	}

	// Session frames: an LCP Echo-Request from every Host comes back.
	mu.Lock()
	batch = batch[:0]
	for m, c := range clients {
		ppp := []byte{0xc0, 0x21, 9, 1, 0, 8, m[4], m[5], 0, 0}
		batch = append(batch, AppendSession(nil, c.AC(), m, c.SessionID(), ppp))
	}
	mu.Unlock()
	if _, err := hostConn.WriteBatch(batch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "echoes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(echoes) == n
	})
	mu.Lock()
	for m, e := range echoes {
		if !bytes.Equal(e, []byte{0xc0, 0x21, 9, 1, 0, 8, m[4], m[5], 0, 0}) {
			t.Errorf("%v: echo %x", m, e)
		}
	}
	// PADT from a Host, then from the AC.
	var first, second *Client
	for _, c := range clients {
		if first == nil {
			first = c
		} else if second == nil {
			second = c
		}
	}
	padt := first.Close(nil)
	mu.Unlock()
	hostConn.Write(padt)
	select {
	case ev := <-acEvents:
		if ev.Kind != ACSessionDown || ev.Session.Peer != first.MAC() {
			t.Fatalf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no session-down at the AC")
	}
	acMu.Lock()
	padt, ok := ac.Terminate(second.SessionID(), nil)
	acMu.Unlock()
	if !ok {
		t.Fatal("Terminate")
	}
	acConn.Write(padt)
	select {
	case m := <-downs:
		if m != second.MAC() {
			t.Fatalf("PADT reached %v", m)
		}
	case <-ctx.Done():
		t.Fatal("no PADT at the Host")
	}
	acMu.Lock()
	if ac.Sessions() != n-2 {
		t.Errorf("%d sessions left, want %d", ac.Sessions(), n-2)
	}
	acMu.Unlock()
	cancel()
	wg.Wait()
}

func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// The package depends on the standard library and x/sys only.
func TestDependencies(t *testing.T) {
	out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if !strings.Contains(strings.SplitN(p, "/", 2)[0], ".") {
			continue
		}
		if p != "github.com/l2tpd/l2tpd/datapath/pppoe" && !strings.HasPrefix(p, "golang.org/x/sys/") {
			t.Errorf("pppoe depends on %s", p)
		}
	}
}
