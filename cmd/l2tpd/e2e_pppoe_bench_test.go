package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// l2tpbench's PPPoE client mode → l2tpd LAC → l2tpd LNS: every emulated
// client (its own MAC address) runs discovery, LCP, CHAP or PAP and IPCP
// to the end, pings the LNS's PPP address through both tunnels' worth of
// relaying, and hangs up with PADT; the LNS took every session with
// proxy LCP.
func TestE2EPPPoEBench(t *testing.T) {
	requireE2E(t, "ip")
	bench := l2tpbenchBin(t)
	ns := newPPPoENetns(t)
	lns := startDaemon(t, ns.lns, "lns", poeLNSConfig())
	lac := startDaemon(t, ns.lac, "lac", poeLACConfig(fmt.Sprintf(
		"  lns:\n    - {name: lns1, address: \"%s:1701\", secret: %s, version: \"2\"}\n  realms:\n    - {realm: %s, lns: [lns1]}\n",
		poeLNSAddr, poeSecret, poeRealm)))

	run := func(auth, user string, clients int, macBase string) benchReport {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.sub, bench, "-pppoe", poeSubIf, "-clients", fmt.Sprint(clients),
			"-mac-base", macBase, "-auth", auth, "-user", user, "-password", poeUsers[user], "-timeout", "30s",
			"-duration", "2s", "-traffic", "5", "-progress", "0", "-json", "-")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var rep benchReport
		if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
			t.Fatalf("l2tpbench -pppoe (%v): report %v\nstdout: %s\nstderr: %s", err, jerr, stdout.String(), stderr.String())
		}
		if err != nil || rep.Up != int64(clients) || rep.Failed != 0 {
			t.Fatalf("l2tpbench -pppoe: %v: up %d of %d, failed %+v\nstderr: %s", err, rep.Up, clients, rep.FailedBy, stderr.String())
		}
		if rep.DataSent == 0 || rep.DataReceived == 0 {
			t.Errorf("no ICMP echo through the LAC and the LNS: sent %d, received %d", rep.DataSent, rep.DataReceived)
		}
		for _, ph := range []string{"discovery", "lcp", "auth", "ipcp", "total"} {
			if rep.Latency[ph].Count != clients {
				t.Errorf("latency %s: %d samples, want %d", ph, rep.Latency[ph].Count, clients)
			}
		}
		return rep
	}
	const clients = 16
	run("chap", "alice@"+poeRealm, clients, "02:51:00:00:00:00")
	run("pap", "bob@"+poeRealm, clients/2, "02:52:00:00:00:00")

	// The LAC's counters: every call up, and the LNS's frames reached the
	// clients through the datapath's relay.
	out, err := lac.ctl("show", "stats")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Counters map[string]uint64 `json:"counters"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	c := st.Counters
	t.Logf("LAC counters: %v", c)
	if c["lac_calls_up"] != clients+clients/2 || c["lac_pppoe_sessions"] != clients+clients/2 ||
		c["lac_frames_to_clients_relayed"] == 0 || c["lac_frames_to_lns"] == 0 {
		t.Errorf("LAC counters %v", c)
	}

	// Every client hung up (PADT): nothing is left on either daemon.
	for _, d := range []*daemon{lac, lns} {
		d.waitFor(t, "every session to end after l2tpbench's PADTs", func() error {
			ss, err := d.lacSessions()
			if err != nil {
				return err
			}
			if len(ss) != 0 {
				return fmt.Errorf("%w: %d sessions left", errNotYet, len(ss))
			}
			return nil
		})
	}
	// The LNS log: every subscriber was authenticated from the proxied
	// credentials, with the proxied LCP accepted.
	n := 0
	for _, l := range strings.Split(lns.log(), "\n") {
		if strings.Contains(l, `"msg":"subscriber authenticated"`) && strings.Contains(l, `"proxy":true`) {
			n++
		}
	}
	if n != clients+clients/2 {
		t.Errorf("LNS log shows %d subscribers authenticated by proxy; want %d", n, clients+clients/2)
	}
}
