package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/aaa/radiustest"
	"github.com/l2tpd/l2tpd/store"
	"github.com/l2tpd/l2tpd/store/postgres"
	"github.com/l2tpd/l2tpd/store/postgres/pgtest"
)

// storeNode is what the store tests vary in a daemon's config: l2tpd on
// loopback without a TUN (PPP terminated, no forwarding), PostgreSQL
// store, local users, optionally RADIUS accounting.
type storeNode struct {
	Node, DB     string
	Listen       netip.AddrPort
	Acct         netip.AddrPort // RADIUS accounting server, if valid
	Policy       string         // store.outage_policy
	First, Last  string         // the pool
	EchoInterval time.Duration
}

func (n storeNode) render(sock string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostname: %s\n", yamlQuote(n.Node))
	fmt.Fprintf(&b, "listen: [%s]\n", yamlQuote(n.Listen.String()))
	b.WriteString("log:\n  level: debug\n  format: json\n")
	fmt.Fprintf(&b, "admin:\n  socket: %s\n", yamlQuote(sock))
	b.WriteString("control:\n  hello_interval: 60s\n  retransmit:\n    initial: 250ms\n    cap: 1s\n    max_retries: 3\n")
	b.WriteString("default_peer:\n  hide_avps: false\n")
	fmt.Fprintf(&b, "store:\n  backend: postgres\n  url: %s\n  node_id: %s\n", yamlQuote(n.DB), yamlQuote(n.Node))
	if n.Policy != "" {
		fmt.Fprintf(&b, "  outage_policy: %s\n", n.Policy)
	}
	echo := n.EchoInterval
	if echo == 0 {
		echo = 10 * time.Second
	}
	fmt.Fprintf(&b, "ppp:\n  auth: [pap]\n  echo_interval: %s\n  echo_failures: 3\n  local_ipv4: 100.64.0.1\n  ipv6: false\n  pool: default\n", echo)
	fmt.Fprintf(&b, "pools:\n  - name: default\n    ipv4: [\"%s-%s\"]\n", n.First, n.Last)
	b.WriteString("auth:\n  local_users:\n    - name: e2e\n      password: e2e-password\n")
	if n.Acct.IsValid() {
		fmt.Fprintf(&b, "radius:\n  timeout: 1s\n  retries: 1\n  acct_servers:\n    - {address: %s, secret: %s}\n",
			yamlQuote(n.Acct.String()), yamlQuote(radiustest.Secret))
	}
	return b.String()
}

// startStoreNode checks and starts l2tpd with cfg in dir (kept across
// restarts of the same node) and waits for its admin socket.
func startStoreNode(t *testing.T, dir string, n storeNode) *daemon {
	t.Helper()
	sock := filepath.Join(dir, "admin.sock")
	cfgPath := filepath.Join(dir, "l2tpd.yaml")
	if err := os.WriteFile(cfgPath, []byte(n.render(sock)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(l2tpdBin, "-check", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("l2tpd -check: %v\n%s\n%s", err, out, n.render(sock))
	}
	d := &daemon{sock: sock}
	d.proc = startProc(t, "l2tpd "+n.Node, filepath.Join(dir, fmt.Sprintf("l2tpd-%d.log", nextSeq())), l2tpdBin, "-config", cfgPath)
	t.Cleanup(func() { d.shutdown(t) })
	d.waitFor(t, "the admin socket", func() error { _, err := d.tunnels(); return err })
	return d
}

// kill9 kills the daemon the way a crash does: no StopCCN, no
// Acct-Stop, nothing flushed.
func (d *daemon) kill9(t *testing.T) {
	t.Helper()
	p := d.proc
	p.signal(syscall.SIGKILL)
	if ok, _ := p.wait(stopTimeout); !ok {
		t.Fatal("l2tpd did not die after SIGKILL")
	}
	d.checkLog(t)
	d.proc = nil // nothing left for the SIGTERM cleanup
}

type storeSessionJSON struct {
	SessionID     uint32 `json:"session_id"`
	UserName      string `json:"user_name"`
	IPv4          string `json:"ipv4"`
	AcctSessionID string `json:"acct_session_id"`
}

func (d *daemon) storeSessions(t *testing.T) []storeSessionJSON {
	t.Helper()
	out, err := d.ctl("show", "sessions")
	if err != nil {
		t.Fatal(err)
	}
	var ss []storeSessionJSON
	if err := json.Unmarshal(out, &ss); err != nil {
		t.Fatal(err)
	}
	return ss
}

type statsJSON struct {
	StoreUp    bool              `json:"store_up"`
	StoreQueue int               `json:"store_queue"`
	AcctQueue  int               `json:"acct_queue"`
	Counters   map[string]uint64 `json:"counters"`
}

func (d *daemon) stats(t *testing.T) statsJSON {
	t.Helper()
	out, err := d.ctl("show", "stats")
	if err != nil {
		t.Fatal(err)
	}
	var st statsJSON
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func openStore(t *testing.T, url string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, url, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func leasesOf(t *testing.T, st store.Store, node string) map[netip.Addr]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ls, err := st.LeasesIPv4Of(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	m := map[netip.Addr]string{}
	for _, l := range ls {
		m[l.Addr] = l.Owner
	}
	return m
}

func udpPort(t *testing.T) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), radiustest.FreePorts(t, 1)[0])
}

// A node killed with -9 while subscribers are online, and restarted:
// the new run closes the sessions its previous life left open with an
// Acct-Stop whose cause is NAS-Reboot (RFC 2866 §5.10), frees their
// leases in the database, and delivers the accounting record that was
// spooled, during a RADIUS outage, before the kill, once.
func TestE2EStoreCrashRecovery(t *testing.T) {
	requireE2E(t)
	db := pgtest.Own(t).URL("postgres")
	fr := radiustest.New(t, "")
	fr.Start()
	dir := t.TempDir()
	n := storeNode{Node: fmt.Sprintf("crash-%d", os.Getpid()), DB: db, Listen: udpPort(t), Acct: fr.Acct(),
		First: "100.64.10.10", Last: "100.64.10.29"}
	d := startStoreNode(t, dir, n)
	st := openStore(t, db)

	l := newStoreLAC(t, n.Listen)
	calls := l.call(3, "e2e", "e2e-password")
	if !l.pump(allSettled(calls), 10*time.Second) {
		t.Fatal("subscribers not online")
	}
	for _, c := range calls {
		if !c.addr.IsValid() {
			t.Fatalf("call %d refused: %+v", c.sid, c.down)
		}
	}
	ids := map[netip.Addr]string{}
	for _, s := range d.storeSessions(t) {
		ids[netip.MustParseAddr(s.IPv4)] = s.AcctSessionID
	}
	// Every address is this node's lease in the database, owned by its
	// session.
	leases := leasesOf(t, st, n.Node)
	for _, c := range calls {
		if leases[c.addr] == "" || leases[c.addr] != ids[c.addr] {
			t.Fatalf("lease of %v in the database: %q, want %q (all: %v)", c.addr, leases[c.addr], ids[c.addr], leases)
		}
	}
	d.waitFor(t, "three Acct-Start", func() error {
		if n := countDetail(fr, "Start", "", ""); n != 3 {
			return fmt.Errorf("%d Acct-Start", n)
		}
		return nil
	})

	// RADIUS goes away; one subscriber hangs up: its Acct-Stop can only
	// wait, in the spool, that is in the database.
	fr.Stop()
	hung := calls[0]
	l.hangUp(hung)
	l.pump(func() bool { return false }, 200*time.Millisecond)
	hungID := ids[hung.addr]
	d.waitFor(t, "the Acct-Stop spooled in the database", func() error {
		recs, err := st.AcctNext(context.Background(), n.Node, 100)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.Status == store.AcctStop && r.AcctSessionID == hungID {
				return nil
			}
		}
		return fmt.Errorf("queue: %+v", recs)
	})

	d.kill9(t)
	fr.Start()
	d2 := startStoreNode(t, dir, n)

	d2.waitFor(t, "Acct-Stop NAS-Reboot for the sessions left open, and the spooled Stop", func() error {
		for _, c := range calls[1:] {
			if k := countDetail(fr, "Stop", ids[c.addr], "NAS-Reboot"); k != 1 {
				return fmt.Errorf("%d NAS-Reboot Stops for %s", k, ids[c.addr])
			}
		}
		if k := countDetail(fr, "Stop", hungID, ""); k != 1 {
			return fmt.Errorf("%d Stops for the session that hung up before the kill", k)
		}
		return nil
	})
	if got := leasesOf(t, st, n.Node); len(got) != 0 {
		t.Fatalf("leases left after recovery: %v", got)
	}
	d2.waitFor(t, "the accounting queue drained", func() error {
		recs, err := st.AcctNext(context.Background(), n.Node, 100)
		if err != nil || len(recs) != 0 {
			return fmt.Errorf("%d records, %v", len(recs), err)
		}
		return nil
	})
	// Delivered once: a second look finds no duplicate.
	time.Sleep(500 * time.Millisecond)
	if k := countDetail(fr, "Stop", hungID, ""); k != 1 {
		t.Fatalf("the spooled Stop was delivered %d times", k)
	}
	for _, r := range fr.Detail() {
		if r["Acct-Terminate-Cause"] == "NAS-Reboot" && r["Acct-Session-Id"] == hungID {
			t.Fatalf("the session that hung up was also closed as NAS-Reboot: %v", r)
		}
	}
}

// countDetail counts the FreeRADIUS detail records of a status, for one
// Acct-Session-Id and cause when given.
func countDetail(fr *radiustest.FreeRADIUS, status, id, cause string) int {
	n := 0
	for _, r := range fr.Detail() {
		if r["Acct-Status-Type"] != status || id != "" && r["Acct-Session-Id"] != id ||
			cause != "" && r["Acct-Terminate-Cause"] != cause {
			continue
		}
		n++
	}
	return n
}

// Two l2tpd processes on one database with the same 20-address pool,
// subscribers arriving at both at once: no address is handed out twice,
// and when the pool is used up the rest are refused (PPP authentication
// failure "no address available", then a CDN), not given duplicates.
func TestE2EStoreTwoNodesOnePool(t *testing.T) {
	requireE2E(t)
	db := pgtest.Own(t).URL("postgres")
	pid := os.Getpid()
	a := storeNode{Node: fmt.Sprintf("a-%d", pid), DB: db, Listen: udpPort(t), First: "100.64.20.10", Last: "100.64.20.29"}
	b := a
	b.Node, b.Listen = fmt.Sprintf("b-%d", pid), udpPort(t)
	da := startStoreNode(t, t.TempDir(), a)
	db2 := startStoreNode(t, t.TempDir(), b)
	st := openStore(t, db)

	la, lb := newStoreLAC(t, a.Listen), newStoreLAC(t, b.Listen)
	ca, cb := la.call(14, "e2e", "e2e-password"), lb.call(14, "e2e", "e2e-password")
	if !pumpBoth(la, lb, allSettled(append(append([]*lacCall(nil), ca...), cb...)), 30*time.Second) {
		t.Fatal("calls neither online nor refused in time")
	}
	seen := map[netip.Addr]string{}
	online, refused := 0, 0
	for i, c := range append(append([]*lacCall(nil), ca...), cb...) {
		node := a.Node
		if i >= len(ca) {
			node = b.Node
		}
		if c.down != nil {
			refused++
			continue
		}
		online++
		if other, dup := seen[c.addr]; dup {
			t.Fatalf("%v handed out twice: to a subscriber of %s and of %s", c.addr, other, node)
		}
		seen[c.addr] = node
	}
	if online != 20 || refused != 8 {
		t.Fatalf("%d online, %d refused; want the 20 addresses used and 8 refusals", online, refused)
	}
	// The database agrees: each address is leased once, to the node
	// whose subscriber has it.
	la2, lb2 := leasesOf(t, st, a.Node), leasesOf(t, st, b.Node)
	if len(la2)+len(lb2) != 20 {
		t.Fatalf("%d + %d leases in the database: %v %v; sessions a %+v b %+v", len(la2), len(lb2), la2, lb2, da.storeSessions(t), db2.storeSessions(t))
	}
	for addr, node := range seen {
		_, inA := la2[addr]
		_, inB := lb2[addr]
		if node == a.Node && !inA || node == b.Node && !inB {
			t.Fatalf("%v is %s's, the database says a:%v b:%v", addr, node, inA, inB)
		}
	}
	sa, sb := da.stats(t), db2.stats(t)
	if sa.Counters["pool_exhausted"]+sb.Counters["pool_exhausted"] != uint64(refused) {
		t.Fatalf("pool_exhausted %d + %d, refused %d", sa.Counters["pool_exhausted"], sb.Counters["pool_exhausted"], refused)
	}
	// Both nodes started from the same first address: the database,
	// not luck, kept them apart.
	if sa.Counters["store_lease_conflicts"]+sb.Counters["store_lease_conflicts"] == 0 {
		t.Fatal("no lease conflict seen in the database: the nodes never raced for an address")
	}
}

// pumpBoth runs two LACs in turn until cond holds or within passes, so
// the subscribers of both keep answering LCP echoes.
func pumpBoth(a, b *storeLAC, cond func() bool, within time.Duration) bool {
	end := time.Now().Add(within)
	for time.Now().Before(end) {
		if a.pump(cond, 5*time.Millisecond) || b.pump(cond, 5*time.Millisecond) {
			return true
		}
	}
	return cond()
}

// The database stops while subscribers are online: none is dropped,
// store_up goes to 0, the writes wait and are applied once it is back.
// New sessions follow the policy: admitted by the node whose policy is
// admit (its lease written when the database returns), refused with
// CDN result 4 (RFC 2661 §4.4.2, temporary lack of facilities) by the
// node whose policy is refuse.
func TestE2EStoreDatabaseOutage(t *testing.T) {
	requireE2E(t)
	pg := pgtest.Own(t)
	db := pg.URL("postgres")
	pid := os.Getpid()
	adm := storeNode{Node: fmt.Sprintf("admit-%d", pid), DB: db, Listen: udpPort(t), First: "100.64.30.10", Last: "100.64.30.19",
		EchoInterval: 2 * time.Second}
	ref := adm
	ref.Node, ref.Listen, ref.Policy, ref.First, ref.Last = fmt.Sprintf("refuse-%d", pid), udpPort(t), "refuse", "100.64.30.20", "100.64.30.29"
	da := startStoreNode(t, t.TempDir(), adm)
	dr := startStoreNode(t, t.TempDir(), ref)

	la, lr := newStoreLAC(t, adm.Listen), newStoreLAC(t, ref.Listen)
	live := la.call(2, "e2e", "e2e-password")
	liveR := lr.call(1, "e2e", "e2e-password")
	all := append(append([]*lacCall(nil), live...), liveR...)
	if !pumpBoth(la, lr, allSettled(all), 10*time.Second) {
		t.Fatal("not online")
	}
	for _, c := range all {
		if !c.addr.IsValid() {
			t.Fatalf("refused before the outage: %+v", c.down)
		}
	}
	storeUp := func(want bool) func() bool {
		return func() bool { return da.stats(t).StoreUp == want && dr.stats(t).StoreUp == want }
	}

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if !pumpBoth(la, lr, storeUp(false), 10*time.Second) {
		t.Fatal("store_up did not go to 0")
	}
	// New sessions during the outage.
	late := la.call(1, "e2e", "e2e-password")
	lateR := lr.call(1, "e2e", "e2e-password")
	if !pumpBoth(la, lr, allSettled(append(append([]*lacCall(nil), late...), lateR...)), 10*time.Second) {
		t.Fatal("calls during the outage neither online nor refused")
	}
	if !late[0].addr.IsValid() {
		t.Fatalf("admit policy: the session set up during the outage: %+v", late[0].down)
	}
	if lateR[0].down == nil || lateR[0].down.Result.Code != 4 {
		t.Fatalf("refuse policy: the call during the outage got %+v, want CDN result 4", lateR[0].down)
	}
	// The live subscribers stay up through several LCP echo intervals.
	pumpBoth(la, lr, func() bool { return false }, 5*time.Second)
	for _, c := range all {
		if c.down != nil || c.failed != 0 {
			t.Fatalf("a live session was dropped during the outage: %+v %v", c.down, c.failed)
		}
	}
	if q := da.stats(t).StoreQueue; q == 0 {
		t.Fatal("no store writes waiting during the outage")
	}

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	if !pumpBoth(la, lr, func() bool { s := da.stats(t); return storeUp(true)() && s.StoreQueue == 0 }, 15*time.Second) {
		t.Fatalf("after the database returned: %+v", da.stats(t))
	}
	st := openStore(t, db)
	// Every session of the admit node is recorded, and every address
	// (the one handed out during the outage too) is its lease.
	var leases map[netip.Addr]string
	if !pumpBoth(la, lr, func() bool {
		leases = leasesOf(t, st, adm.Node)
		return len(leases) == 3
	}, 5*time.Second) {
		t.Fatalf("leases after the outage: %v", leases)
	}
	for _, c := range append(live, late...) {
		if leases[c.addr] == "" {
			t.Fatalf("no lease for %v after the outage: %v", c.addr, leases)
		}
	}
	for _, s := range da.storeSessions(t) {
		r, err := st.Session(context.Background(), s.AcctSessionID)
		if err != nil || !r.Open() {
			t.Fatalf("session %s after the outage: %+v %v", s.AcctSessionID, r, err)
		}
	}
	// The refuse node takes sessions again.
	again := lr.call(1, "e2e", "e2e-password")
	if !pumpBoth(la, lr, allSettled(again), 10*time.Second) || !again[0].addr.IsValid() {
		t.Fatalf("refuse node after the outage: %+v", again[0].down)
	}
}
