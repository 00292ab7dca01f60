package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/l2tpd/l2tpd/configs"
	"github.com/l2tpd/l2tpd/control"
	"github.com/l2tpd/l2tpd/control/pool"
)

// The schema as documented, with every key set away from its default.
const full = `
hostname: lns-1
listen: ["0.0.0.0:1701", "[::]:1701"]
log: {level: debug, format: json}
admin: {socket: /tmp/l2tpd.sock, mode: "0660"}
control:
  shards: 4
  receive_window: 32
  hello_interval: 30s
  retransmit: {initial: 500ms, cap: 4s, max_retries: 7}
  session_setup_timeout: 45s
limits: {max_tunnels: 10, max_sessions: 20, max_sessions_per_tunnel: 5, max_half_open_per_peer: 2, max_tunnels_per_peer: 3,
  max_sessions_per_peer: 9, max_sessions_in_setup: 8, max_sessions_in_setup_per_peer: 0, sccrq_rate: 2.5, sccrq_burst: 5,
  sccrq_rate_per_peer: 0, sccrq_burst_per_peer: 0, icrq_rate: 50, icrq_burst: 100, icrq_rate_per_peer: 0.5, icrq_burst_per_peer: 1,
  sessions_per_user: 2}
peers:
  - name: cisco-lac-1
    host_name: LAC1
    addresses: ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]
    secret: "s3cret"
    hide_avps: true
    reject: false
    renegotiate: always
    pool: business
  - name: banned
    addresses: ["203.0.113.0/24"]
    reject: true
default_peer: {secret: "fallback", hide_avps: false, reject: true, renegotiate: never, pool: default}
store: {backend: memory, outage_policy: refuse}
auth:
  local_users:
    - {name: test, password: test}
    - {name: alice, password: wonderland}
tun: {name: l2tp7, mtu: 1400}
ppp:
  mru: 1492
  auth: [mschapv2, pap]
  echo_interval: 10s
  echo_failures: 5
  local_ipv4: 100.64.0.1
  dns: [192.0.2.53, 192.0.2.54]
  ipv6: true
  pool: default
pools:
  - name: default
    ipv4: ["100.64.0.10-100.64.0.250", "100.65.0.0/24", 100.66.0.7]
    ipv6: "2001:db8:100::/48"
  - name: business
    ipv4: [" 198.51.100.10 - 198.51.100.20 "]
    ipv6: "2001:db8:200::/40"
    ipv6_length: 56
`

func TestParseFull(t *testing.T) {
	f, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	want := control.Config{
		Listen:            []string{"0.0.0.0:1701", "[::]:1701"},
		HostName:          "lns-1",
		Shards:            4,
		ReceiveWindow:     32,
		Hello:             30 * time.Second,
		RetransmitInitial: 500 * time.Millisecond,
		RetransmitCap:     4 * time.Second,
		MaxRetransmits:    7,
		// RFC 2661 §7.4.2: an answered call without ICCN is cleared.
		SessionSetupTimeout: 45 * time.Second,
		Limits: control.Limits{MaxTunnels: 10, MaxSessions: 20, MaxSessionsPerTunnel: 5, MaxHalfOpenPerPeer: 2, MaxTunnelsPerPeer: 3,
			MaxSessionsPerPeer: 9, MaxSessionsInSetup: 8, SCCRQRate: 2.5, SCCRQBurst: 5, ICRQRate: 50, ICRQBurst: 100,
			ICRQRatePerPeer: 0.5, ICRQBurstPerPeer: 1, SessionsPerUser: 2},
		Peers: []control.Peer{
			{
				Name:     "cisco-lac-1",
				HostName: "LAC1",
				Addresses: []netip.Prefix{
					netip.MustParsePrefix("192.0.2.0/24"),
					netip.MustParsePrefix("2001:db8::/32"),
					netip.MustParsePrefix("198.51.100.7/32"),
				},
				Secret:      "s3cret",
				HideAVPs:    true,
				Renegotiate: "always",
				Pool:        "business",
			},
			{Name: "banned", Addresses: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, Reject: true},
		},
		Default: control.Peer{Name: "default", Secret: "fallback", Reject: true, Renegotiate: "never", Pool: "default"},
		TUN:     control.TUN{Name: "l2tp7", MTU: 1400},
		Store:   control.Store{Backend: "memory", OutagePolicy: "refuse"},
		RADIUS:  control.RADIUS{Timeout: 3 * time.Second, Retries: 2},
		PPP: control.PPP{
			MRU:          1492,
			Auth:         []string{"mschapv2", "pap"},
			EchoInterval: 10 * time.Second,
			EchoFailures: 5,
			LocalIPv4:    netip.MustParseAddr("100.64.0.1"),
			DNS:          []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")},
			IPv6:         true,
			Pool:         "default",
		},
		Pools: []control.Pool{
			{
				Name: "default",
				IPv4: []control.AddrRange{
					{First: netip.MustParseAddr("100.64.0.10"), Last: netip.MustParseAddr("100.64.0.250")},
					{First: netip.MustParseAddr("100.65.0.0"), Last: netip.MustParseAddr("100.65.0.255")},
					{First: netip.MustParseAddr("100.66.0.7"), Last: netip.MustParseAddr("100.66.0.7")},
				},
				IPv6:       netip.MustParsePrefix("2001:db8:100::/48"),
				IPv6Length: 64,
			},
			{
				Name:       "business",
				IPv4:       []control.AddrRange{{First: netip.MustParseAddr("198.51.100.10"), Last: netip.MustParseAddr("198.51.100.20")}},
				IPv6:       netip.MustParsePrefix("2001:db8:200::/40"),
				IPv6Length: 56,
			},
		},
		Users: map[string]string{"test": "test", "alice": "wonderland"},
	}
	if got := f.Control(); !reflect.DeepEqual(got, want) {
		t.Errorf("Control() =\n%+v\nwant\n%+v", got, want)
	}
	if f.Log != (Log{Level: "debug", Format: "json"}) {
		t.Errorf("Log = %+v", f.Log)
	}
	if f.Admin != (Admin{Socket: "/tmp/l2tpd.sock", Mode: 0o660}) {
		t.Errorf("Admin = %+v", f.Admin)
	}
	if f.Store.Backend != "memory" {
		t.Errorf("Store = %+v", f.Store)
	}
	wantUsers := []User{{"test", "test"}, {"alice", "wonderland"}}
	if !reflect.DeepEqual(f.Auth.LocalUsers, wantUsers) {
		t.Errorf("LocalUsers = %+v", f.Auth.LocalUsers)
	}
}

// Keys left out take control.DefaultConfig's values.
func TestEmptyDocumentTakesDefaults(t *testing.T) {
	for _, doc := range []string{"", "# nothing\n", "---\n", "{}\n", "control:\n"} {
		f, err := Parse([]byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		want := control.DefaultConfig()
		want.Default.Name = "default"
		if got := f.Control(); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: Control() = %+v, want %+v", doc, got, want)
		}
		if f.Log.Level != "info" || f.Log.Format != "console" || f.Admin.Socket != DefaultAdminSocket ||
			f.Admin.Mode != 0o600 || f.Store.Backend != "memory" {
			t.Errorf("%q: non-control defaults wrong: %+v", doc, f)
		}
	}
}

// The returned config must not share slices with the file, since the
// running config is an immutable snapshot.
func TestControlCopies(t *testing.T) {
	f, err := Parse([]byte(full))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Control()
	c.Listen[0] = "changed"
	c.Peers[0].Addresses[0] = netip.Prefix{}
	c.PPP.Auth[0] = "changed"
	c.PPP.DNS[0] = netip.Addr{}
	c.Pools[0].IPv4[0] = control.AddrRange{}
	if f.Listen[0] == "changed" || !f.Peers[0].Addresses[0].IsValid() || f.PPP.Auth[0] == "changed" ||
		!f.PPP.DNS[0].IsValid() || !f.Pools[0].IPv4[0].First.IsValid() {
		t.Error("Control() aliases the File's slices")
	}
}

func TestInvalidField(t *testing.T) {
	tests := []struct {
		name, doc string
		path      string
		line      int
		msg       string // substring of the message
	}{
		{"unknown top-level key", "hostname: a\nlisten_on: [\"1.2.3.4:1\"]\n", "listen_on", 2, `unknown key "listen_on"`},
		{"unknown nested key", "control:\n  retransmit:\n    initial: 1s\n    backoff: 2\n", "control.retransmit.backoff", 4, "unknown key"},
		{"unknown peer key", "peers:\n  - name: a\n    host_name: A\n    password: x\n", "peers[0].password", 4, "unknown key"},
		{"matching key in default_peer", "default_peer:\n  host_name: X\n", "default_peer.host_name", 2, "unknown key"},
		{"repeated key", "hostname: a\nhostname: b\n", "hostname", 2, "repeated (first on line 1)"},
		{"empty hostname", "hostname: \"\"\n", "hostname", 1, "must not be empty"},
		{"listen no port", "listen: [\"0.0.0.0\"]\n", "listen[0]", 1, "want host:port"},
		{"listen bad port", "listen:\n  - \"0.0.0.0:1701\"\n  - \"0.0.0.0:70000\"\n", "listen[1]", 3, "port must be a number"},
		{"listen host name", "listen: [\"lns.example:1701\"]\n", "listen[0]", 1, "host must be an IP address"},
		{"listen empty", "listen: []\n", "listen", 1, "at least one address"},
		{"listen duplicate", "listen: [\":1701\", \":1701\"]\n", "listen[1]", 1, "duplicate address"},
		{"listen not a list", "listen: \"0.0.0.0:1701\"\n", "listen", 1, "expected a list"},
		{"log level", "log:\n  level: verbose\n", "log.level", 2, `invalid level "verbose"`},
		{"log format", "log: {format: xml}\n", "log.format", 1, `invalid format "xml"`},
		{"admin mode not octal", "admin:\n  mode: \"0689\"\n", "admin.mode", 2, "want octal"},
		{"admin mode too wide", "admin: {mode: \"01777\"}\n", "admin.mode", 1, "want octal"},
		{"admin mode locks owner out", "admin: {mode: \"0066\"}\n", "admin.mode", 1, "owner read and write"},
		{"admin socket empty", "admin: {socket: \"\"}\n", "admin.socket", 1, "must not be empty"},
		{"datapath unknown offload", "datapath:\n  gso: true\n  tso: false\n", "datapath.tso", 3, `unknown key "tso"`},
		{"datapath offload not a boolean", "datapath:\n  gro: \"off\"\n", "datapath.gro", 2, "expected true or false"},
		{"datapath offload yes", "datapath: {tun_offload: yes}\n", "datapath.tun_offload", 1, "expected true or false"},
		{"datapath not a mapping", "datapath: [gso]\n", "datapath", 1, "expected a mapping"},
		{"shards zero", "control: {shards: 0}\n", "control.shards", 1, "from 1 to 64, got 0"},
		{"shards too many", "control:\n  shards: 65\n", "control.shards", 2, "from 1 to 64, got 65"},
		{"shards not integer", "control: {shards: two}\n", "control.shards", 1, `expected an integer, got "two"`},
		{"receive window zero", "control: {receive_window: 0}\n", "control.receive_window", 1, "from 1 to 65535"},
		{"receive window too big", "control: {receive_window: 65536}\n", "control.receive_window", 1, "from 1 to 65535"},
		{"hello no unit", "control: {hello_interval: 60}\n", "control.hello_interval", 1, "needs a unit"},
		{"hello negative", "control: {hello_interval: -1s}\n", "control.hello_interval", 1, "must be positive"},
		{"hello zero", "control: {hello_interval: 0s}\n", "control.hello_interval", 1, "must be positive"},
		{"hello garbage", "control: {hello_interval: soon}\n", "control.hello_interval", 1, "invalid duration"},
		{"setup timeout no unit", "control: {session_setup_timeout: 30}\n", "control.session_setup_timeout", 1, "needs a unit"},
		{"setup timeout zero", "control:\n  session_setup_timeout: 0s\n", "control.session_setup_timeout", 2, "must be positive"},
		{"setup timeout negative", "control: {session_setup_timeout: -5s}\n", "control.session_setup_timeout", 1, "must be positive"},
		{"setup timeout garbage", "control: {session_setup_timeout: [30s]}\n", "control.session_setup_timeout", 1, "a duration"},
		{"cap below initial", "control:\n  retransmit:\n    initial: 2s\n    cap: 1s\n", "control.retransmit.cap", 4, "below the initial timeout"},
		{"initial above default cap", "control:\n  retransmit:\n    initial: 10s\n", "control.retransmit.initial", 3, "below the initial timeout"},
		{"max retries zero", "control: {retransmit: {max_retries: 0}}\n", "control.retransmit.max_retries", 1, "from 1 to 100"},
		{"limit zero", "limits:\n  max_tunnels: 0\n", "limits.max_tunnels", 2, "from 1 to"},
		{"limit not integer", "limits: {max_sessions: 1.5}\n", "limits.max_sessions", 1, "expected an integer"},
		{"setup limit negative", "limits: {max_sessions_in_setup: -1}\n", "limits.max_sessions_in_setup", 1, "from 0 to"},
		{"rate not a number", "limits: {icrq_rate: fast}\n", "limits.icrq_rate", 1, "expected a rate per second"},
		{"rate negative", "limits: {sccrq_rate_per_peer: -2}\n", "limits.sccrq_rate_per_peer", 1, "from 0 (no limit)"},
		{"burst zero with a rate", "limits:\n  icrq_rate: 10\n  icrq_burst: 0\n", "limits.icrq_burst", 3, "at least 1 when icrq_rate"},
		{"peer without name", "peers:\n  - host_name: A\n", "peers[0].name", 2, "required"},
		{"peer empty name", "peers:\n  - {name: \"\", host_name: A}\n", "peers[0].name", 2, "must not be empty"},
		{"peer duplicate name", "peers:\n  - {name: a, host_name: A}\n  - {name: a, host_name: B}\n", "peers[1].name", 3, `duplicate peer name "a" (first used on line 2)`},
		{"peer matches nothing", "peers:\n  - name: a\n    secret: x\n", "peers[0]", 2, "needs host_name or addresses"},
		{"peer empty address list", "peers:\n  - name: a\n    addresses: []\n", "peers[0]", 2, "needs host_name or addresses"},
		{"peer bad prefix", "peers:\n  - name: a\n    addresses:\n      - 192.0.2.0/24\n      - 10.0.0/8\n", "peers[0].addresses[1]", 5, `invalid prefix "10.0.0/8"`},
		{"peer prefix host bits", "peers:\n  - {name: a, addresses: [10.0.0.1/8]}\n", "peers[0].addresses[0]", 2, `did you mean "10.0.0.0/8"`},
		{"peer empty secret", "peers:\n  - name: a\n    host_name: A\n    secret: \"\"\n", "peers[0].secret", 4, "must not be empty"},
		{"peer null secret", "peers:\n  - name: a\n    host_name: A\n    secret:\n", "peers[0].secret", 4, "missing value"},
		{"peer bool as string", "peers:\n  - {name: a, host_name: A, reject: \"yes\"}\n", "peers[0].reject", 2, "expected true or false"},
		{"peer not a mapping", "peers:\n  - cisco\n", "peers[0]", 2, "expected a mapping"},
		{"peers not a list", "peers: {name: a}\n", "peers", 1, "expected a list"},
		{"store unknown backend", "store: {backend: redis}\n", "store.backend", 1, "unknown backend"},
		{"store postgres without url", "store: {backend: postgres}\n", "store.url", 1, "required with backend postgres"},
		{"store url with memory", "store: {backend: memory, url: \"postgres://x\"}\n", "store.url", 1, "only used with backend postgres"},
		{"store unknown outage policy", "store: {backend: memory, outage_policy: drop}\n", "store.outage_policy", 1, `unknown outage policy "drop"`},
		{"sessions per user zero", "limits: {sessions_per_user: 0}\n", "limits.sessions_per_user", 1, "from 1 to"},
		{"store unknown", "store:\n  backend: redis\n", "store.backend", 2, `unknown backend "redis"`},
		{"user duplicate", "auth:\n  local_users:\n    - {name: a, password: x}\n    - {name: a, password: y}\n", "auth.local_users[1].name", 4, `duplicate user "a"`},
		{"user without password", "auth:\n  local_users:\n    - {name: a}\n", "auth.local_users[0].password", 3, "required"},
		{"user empty name", "auth:\n  local_users:\n    - {name: \"\", password: x}\n", "auth.local_users[0].name", 3, "must not be empty"},
		{"string given a mapping", "hostname: {a: b}\n", "hostname", 1, "expected a string, got a mapping"},
		{"tun name too long", "tun: {name: abcdefghijklmnopq}\n", "tun.name", 1, "longer than 15 bytes"},
		{"tun name with slash", "tun:\n  name: \"a/b\"\n", "tun.name", 2, `invalid interface name "a/b"`},
		{"tun mtu too small", "tun: {mtu: 100}\n", "tun.mtu", 1, "from 576 to 65535, got 100"},
		{"tun unknown key", "tun: {name: \"\", queues: 4}\n", "tun.queues", 1, "unknown key"},
		{"ppp mru too big", "ppp:\n  mru: 70000\n", "ppp.mru", 2, "from 576 to 65535"},
		{"ppp auth unknown", "ppp:\n  auth: [chap, eap]\n", "ppp.auth[1]", 2, `unknown authentication protocol "eap"`},
		{"ppp auth duplicate", "ppp:\n  auth:\n    - pap\n    - pap\n", "ppp.auth[1]", 4, "pap listed twice (first on line 3)"},
		{"ppp auth empty", "ppp: {auth: []}\n", "ppp.auth", 1, "at least one protocol"},
		{"ppp auth null", "ppp:\n  auth:\n", "ppp.auth", 2, "at least one protocol"},
		{"ppp auth not a list", "ppp: {auth: chap}\n", "ppp.auth", 1, "expected a list"},
		{"ppp echo interval no unit", "ppp: {echo_interval: 30}\n", "ppp.echo_interval", 1, "needs a unit"},
		{"ppp echo failures zero", "ppp: {echo_failures: 0}\n", "ppp.echo_failures", 1, "from 1 to 100"},
		{"ppp local IPv6", "ppp: {local_ipv4: \"2001:db8::1\"}\n", "ppp.local_ipv4", 1, `invalid IPv4 address "2001:db8::1"`},
		{"ppp local multicast", "ppp: {local_ipv4: 224.0.0.1}\n", "ppp.local_ipv4", 1, "not a unicast address"},
		{"ppp local unspecified", "ppp: {local_ipv4: 0.0.0.0}\n", "ppp.local_ipv4", 1, "not a unicast address"},
		{"ppp dns three", "ppp:\n  dns: [192.0.2.1, 192.0.2.2, 192.0.2.3]\n", "ppp.dns", 2, "at most 2 servers"},
		{"ppp dns bad", "ppp:\n  dns:\n    - 192.0.2.1\n    - dns.example\n", "ppp.dns[1]", 4, `invalid IPv4 address "dns.example"`},
		{"ppp ipv6 not bool", "ppp: {ipv6: \"yes\"}\n", "ppp.ipv6", 1, "expected true or false"},
		{"ppp pool undefined", "ppp:\n  pool: nope\n", "ppp.pool", 2, `no pool named "nope"`},
		{"ppp pool undefined, pools after", "ppp: {pool: b}\npools: [{name: a, ipv4: [10.0.0.0/24]}]\n", "ppp.pool", 1, `no pool named "b"`},
		{"ppp pool empty", "ppp: {pool: \"\"}\n", "ppp.pool", 1, `no pool named ""`},
		{"tun without local_ipv4", "tun: {name: l2tp0}\nppp: {pool: a}\npools: [{name: a, ipv4: [10.0.0.0/24]}]\n", "ppp.local_ipv4", 2, "required when tun.name is set (line 1)"},
		{"tun without pool", "ppp:\n  local_ipv4: 10.9.9.9\ntun:\n  name: l2tp0\n", "ppp.pool", 2, "required when tun.name is set (line 4)"},
		{"local_ipv4 inside a pool", "ppp: {local_ipv4: 10.0.0.5}\npools:\n  - name: a\n    ipv4: [10.0.0.0/24]\n", "ppp.local_ipv4", 1, `inside 10.0.0.0/24 of pool "a" (line 4)`},
		{"pool without name", "pools:\n  - ipv4: [10.0.0.0/24]\n", "pools[0].name", 2, "required"},
		{"pool empty name", "pools:\n  - {name: \"\", ipv4: [10.0.0.0/24]}\n", "pools[0].name", 2, "must not be empty"},
		{"pool duplicate name", "pools:\n  - {name: a, ipv4: [10.0.0.0/24]}\n  - {name: a, ipv4: [10.0.1.0/24]}\n", "pools[1].name", 3, `duplicate pool name "a" (first used on line 2)`},
		{"pool without addresses", "pools:\n  - name: a\n", "pools[0]", 2, "needs ipv4 ranges or an ipv6 prefix"},
		{"pool empty ipv4", "pools:\n  - {name: a, ipv4: []}\n", "pools[0]", 2, "needs ipv4 ranges or an ipv6 prefix"},
		{"pool unknown key", "pools:\n  - {name: a, ipv4: [10.0.0.0/24], gateway: 10.0.0.1}\n", "pools[0].gateway", 2, "unknown key"},
		{"pools not a list", "pools: {name: a}\n", "pools", 1, "expected a list"},
		{"range reversed", "pools:\n  - name: a\n    ipv4: [10.0.0.9-10.0.0.1]\n", "pools[0].ipv4[0]", 3, "first address is after the last"},
		{"range half", "pools:\n  - name: a\n    ipv4: [\"10.0.0.1-\"]\n", "pools[0].ipv4[0]", 3, "invalid IPv4 range"},
		{"range IPv6", "pools:\n  - name: a\n    ipv4: [\"2001:db8::1-2001:db8::9\"]\n", "pools[0].ipv4[0]", 3, "invalid IPv4 range"},
		{"range IPv6 prefix", "pools:\n  - name: a\n    ipv4: [\"2001:db8::/64\"]\n", "pools[0].ipv4[0]", 3, "invalid IPv4 range"},
		{"range prefix host bits", "pools:\n  - name: a\n    ipv4: [10.0.0.1/24]\n", "pools[0].ipv4[0]", 3, `did you mean "10.0.0.0/24"`},
		{"range garbage", "pools:\n  - name: a\n    ipv4: [ten]\n", "pools[0].ipv4[0]", 3, "invalid IPv4 range"},
		{"ranges overlap in a pool", "pools:\n  - name: a\n    ipv4:\n      - 10.0.0.0/24\n      - 10.0.0.128-10.0.1.5\n", "pools[0].ipv4[1]", 5, `overlaps 10.0.0.0/24 of pool "a" (line 4)`},
		{"ranges overlap across pools", "pools:\n  - {name: a, ipv4: [10.0.0.0/24]}\n  - {name: b, ipv4: [10.0.1.0/24, 10.0.0.255]}\n", "pools[1].ipv4[1]", 3, `overlaps 10.0.0.0/24 of pool "a" (line 2)`},
		{"range too big", "pools:\n  - {name: a, ipv4: [10.0.0.0/7]}\n", "pools[0].ipv4[0]", 2, "more than 16777216 addresses"},
		{"ranges too big together", "pools:\n  - {name: a, ipv4: [10.0.0.0/8, 11.0.0.0]}\n", "pools[0].ipv4[1]", 2, "more than 16777216 addresses"},
		{"ipv6 not IPv6", "pools:\n  - {name: a, ipv6: 10.0.0.0/8}\n", "pools[0].ipv6", 2, "invalid IPv6 prefix"},
		{"ipv6 host bits", "pools:\n  - {name: a, ipv6: \"2001:db8::1/48\"}\n", "pools[0].ipv6", 2, `did you mean "2001:db8::/48"`},
		{"ipv6_length below prefix", "pools:\n  - name: a\n    ipv6: \"2001:db8::/56\"\n    ipv6_length: 48\n", "pools[0].ipv6_length", 4, "shorter than the pool's prefix /56"},
		{"default ipv6_length below prefix", "pools:\n  - name: a\n    ipv6: \"2001:db8::/96\"\n", "pools[0].ipv6", 3, "ipv6_length 64 is shorter"},
		{"ipv6_length too many prefixes", "pools:\n  - {name: a, ipv6: \"2001:db8::/32\"}\n", "pools[0].ipv6", 2, "more than 16777216 prefixes"},
		{"ipv6_length too many prefixes, /128", "pools:\n  - name: a\n    ipv6: \"2001:db8::/48\"\n    ipv6_length: 128\n", "pools[0].ipv6_length", 4, "more than 16777216 prefixes"},
		{"ipv6_length out of range", "pools:\n  - {name: a, ipv6: \"2001:db8::/48\", ipv6_length: 129}\n", "pools[0].ipv6_length", 2, "from 1 to 128"},
		{"ipv6_length without ipv6", "pools:\n  - name: a\n    ipv4: [10.0.0.0/24]\n    ipv6_length: 64\n", "pools[0].ipv6_length", 4, "without an ipv6 prefix"},
		{"ipv6 overlap across pools", "pools:\n  - {name: a, ipv6: \"2001:db8::/48\"}\n  - {name: b, ipv6: \"2001:db8::/56\"}\n", "pools[1].ipv6", 3, `overlaps 2001:db8::/48 of pool "a" (line 2)`},
		{"peer renegotiate", "peers:\n  - {name: a, host_name: A, renegotiate: sometimes}\n", "peers[0].renegotiate", 2, `invalid policy "sometimes"`},
		{"peer pool undefined", "peers:\n  - name: a\n    host_name: A\n    pool: vip\n", "peers[0].pool", 4, `no pool named "vip"`},
		{"default_peer pool undefined", "default_peer: {pool: vip}\npools: [{name: a, ipv4: [10.0.0.0/24]}]\n", "default_peer.pool", 1, `no pool named "vip"`},
		{"default_peer renegotiate", "default_peer:\n  renegotiate: ON-MISMATCH\n", "default_peer.renegotiate", 2, "invalid policy"},
		{"root not a mapping", "- a\n- b\n", "", 1, "expected a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse([]byte(tt.doc))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", f)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(errs), err)
			}
			e := errs[0]
			if e.Path != tt.path || e.Line != tt.line || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("got %q (path %q line %d), want path %q line %d containing %q",
					e.Error(), e.Path, e.Line, tt.path, tt.line, tt.msg)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	doc := "peers:\n  - name: a\n    addresses:\n      - 10.0.0/8\n"
	_, err := Parse([]byte(doc))
	want := `peers[0].addresses[0] (line 4): invalid prefix "10.0.0/8"`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// Validation runs over the whole document: one bad field does not hide
// the next.
func TestSeveralErrorsReportedTogether(t *testing.T) {
	doc := `hostname: lns
listen: ["0.0.0.0"]
log: {level: loud}
control:
  shards: 100
  colour: blue
peers:
  - name: a
    addresses: [300.0.0.0/8]
  - name: a
    host_name: B
store: {backend: redis}
`
	_, err := Parse([]byte(doc))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	want := []struct {
		path string
		line int
	}{
		{"listen[0]", 2},
		{"log.level", 3},
		{"control.shards", 5},
		{"control.colour", 6},
		{"peers[0].addresses[0]", 9},
		{"peers[1].name", 10},
		{"store.backend", 12},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if errs[i].Path != w.path || errs[i].Line != w.line {
			t.Errorf("error %d = %q, want path %s line %d", i, errs[i].Error(), w.path, w.line)
		}
	}
	if n := strings.Count(err.Error(), "\n"); n != len(want)-1 {
		t.Errorf("Error() has %d lines, want one per problem:\n%s", n+1, err)
	}
}

func TestSyntaxErrorHasLine(t *testing.T) {
	_, err := Parse([]byte("hostname: a\nlisten: [\"x\"\nlog: {}\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("got %v, want one error", err)
	}
	if errs[0].Line == 0 || strings.HasPrefix(errs[0].Msg, "yaml:") {
		t.Errorf("syntax error lacks a line or keeps the yaml prefix: %+v", errs[0])
	}
}

func TestSecondDocumentRejected(t *testing.T) {
	_, err := Parse([]byte("hostname: a\n---\nhostname: b\n"))
	if err == nil || !strings.Contains(err.Error(), "only one YAML document") {
		t.Errorf("got %v", err)
	}
}

// Anchors are resolved, so shared peer fragments validate like inline ones.
func TestAliases(t *testing.T) {
	doc := "peers:\n  - name: a\n    addresses: &nets [192.0.2.0/24]\n  - name: b\n    addresses: *nets\n"
	f, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Peers) != 2 || len(f.Peers[1].Addresses) != 1 {
		t.Errorf("peers = %+v", f.Peers)
	}
}

func TestAdminModeForms(t *testing.T) {
	for doc, want := range map[string]fs.FileMode{
		`admin: {mode: "0600"}`:  0o600,
		`admin: {mode: "0o660"}`: 0o660,
		`admin: {mode: 0600}`:    0o600,
		`admin: {mode: 666}`:     0o666,
	} {
		f, err := Parse([]byte(doc))
		if err != nil {
			t.Errorf("%s: %v", doc, err)
			continue
		}
		if f.Admin.Mode != want {
			t.Errorf("%s: mode %o, want %o", doc, f.Admin.Mode, want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "l2tpd.yaml")
	if err := os.WriteFile(p, []byte("hostname: from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil || f.HostName != "from-file" {
		t.Fatalf("Load = %+v, %v", f, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
}

// Every shipped configuration must pass validation.
func TestShippedConfigsParse(t *testing.T) {
	entries, err := fs.ReadDir(configs.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("no configs embedded")
	}
	for _, e := range entries {
		b, err := fs.ReadFile(configs.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Errorf("configs/%s:\n%v", e.Name(), err)
		}
	}
	// The on-disk directory too, in case a file is not embedded.
	disk, err := filepath.Glob("../../../configs/*.y*ml")
	if err != nil {
		t.Fatal(err)
	}
	if len(disk) != len(entries) {
		t.Errorf("configs/ has %d YAML files on disk but %d embedded", len(disk), len(entries))
	}
}

// The embedded default is an open LNS on the standard port with the
// memory store and one local user.
func TestEmbeddedDefault(t *testing.T) {
	f, err := Parse(configs.Default())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Listen, []string{"0.0.0.0:1701"}) {
		t.Errorf("listen = %v", f.Listen)
	}
	if f.Store.Backend != "memory" || len(f.Auth.LocalUsers) != 1 || len(f.Peers) != 0 ||
		f.DefaultPeer.Secret != "" || f.DefaultPeer.Reject {
		t.Errorf("embedded default = %+v", f)
	}
	// Spelling out the defaults must not change them; on top of them
	// the embedded default terminates PPP from a CGNAT pool.
	want := control.DefaultConfig()
	want.Default.Name = "default"
	want.TUN.Name = "l2tp0"
	want.PPP.LocalIPv4 = netip.MustParseAddr("100.64.0.1")
	want.PPP.Pool = "default"
	want.Pools = []control.Pool{{
		Name: "default",
		IPv4: []control.AddrRange{{First: netip.MustParseAddr("100.65.0.0"), Last: netip.MustParseAddr("100.65.255.255")}},
	}}
	want.Users = map[string]string{"test": "test"}
	if got := f.Control(); !reflect.DeepEqual(got, want) {
		t.Errorf("lns.yaml differs from control.DefaultConfig plus PPP termination:\n%+v\n%+v", got, want)
	}
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	for _, r := range f.Pools[0].IPv4 {
		if !cgnat.Contains(r.First) || !cgnat.Contains(r.Last) {
			t.Errorf("default pool range %v is outside %s", r, cgnat)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(full))
	f.Add(configs.Default())
	f.Add([]byte("peers:\n  - {name: a, addresses: [10.0.0/8]}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			return
		}
		c := file.Control()
		if c.Shards < 1 || c.Shards > 64 || c.ReceiveWindow == 0 || len(c.Listen) == 0 ||
			c.RetransmitInitial <= 0 || c.RetransmitCap < c.RetransmitInitial || c.Hello <= 0 {
			t.Fatalf("accepted an invalid config: %+v", c)
		}
		if len(c.PPP.Auth) == 0 || len(c.PPP.DNS) > 2 || c.PPP.EchoInterval <= 0 || c.PPP.EchoFailures < 1 {
			t.Fatalf("accepted an invalid PPP policy: %+v", c.PPP)
		}
		if c.TUN.Name != "" && (!c.PPP.LocalIPv4.IsValid() || c.PPP.Pool == "") {
			t.Fatalf("accepted a TUN without PPP addressing: %+v", c)
		}
		checkPools(t, c)
	})
}

// Errors from checks spanning several keys still come in line order.
func TestErrorsInLineOrder(t *testing.T) {
	doc := "control:\n  retransmit:\n    initial: 9s\n  shards: 0\npeers:\n  - name: a\n"
	_, err := Parse([]byte(doc))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 3 {
		t.Fatalf("got %v", err)
	}
	for i, want := range []int{3, 4, 6} {
		if errs[i].Line != want {
			t.Errorf("error %d on line %d, want %d:\n%v", i, errs[i].Line, want, err)
		}
	}
}

// checkPools builds the pools the daemon would build and checks every
// reference to them, so the config accepts nothing control.New refuses.
func checkPools(t *testing.T, c control.Config) {
	t.Helper()
	var cfgs []pool.Config
	for _, p := range c.Pools {
		pc := pool.Config{Name: p.Name, IPv6: p.IPv6, IPv6Length: p.IPv6Length}
		for _, r := range p.IPv4 {
			pc.IPv4 = append(pc.IPv4, pool.Range{First: r.First, Last: r.Last})
		}
		cfgs = append(cfgs, pc)
	}
	set, err := pool.NewSet(cfgs)
	if err != nil {
		t.Fatalf("accepted pools the pool package refuses: %v", err)
	}
	names := []string{c.PPP.Pool, c.Default.Pool}
	for _, p := range c.Peers {
		names = append(names, p.Pool)
	}
	for _, n := range names {
		if n != "" && set.Get(n) == nil {
			t.Fatalf("accepted a reference to pool %q, which does not exist", n)
		}
	}
	for _, p := range set.All() {
		if c.PPP.LocalIPv4.IsValid() && p.Contains(c.PPP.LocalIPv4) {
			t.Fatalf("accepted local_ipv4 %s inside pool %s", c.PPP.LocalIPv4, p.Name())
		}
	}
}

func TestPoolsBuild(t *testing.T) {
	for name, doc := range map[string][]byte{"full": []byte(full), "lns.yaml": configs.Default()} {
		f, err := Parse(doc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkPools(t, f.Control())
	}
}

// Without a TUN nothing is terminated, so PPP addressing is optional.
func TestControlPlaneOnly(t *testing.T) {
	for _, doc := range []string{
		"tun: {name: \"\"}\n",
		"tun:\n  mtu: 9000\nppp: {auth: [pap]}\n",
		"pools: [{name: a, ipv4: [10.0.0.0/24]}]\n",
	} {
		f, err := Parse([]byte(doc))
		if err != nil {
			t.Errorf("%q: %v", doc, err)
			continue
		}
		if c := f.Control(); c.TUN.Name != "" || c.PPP.LocalIPv4.IsValid() {
			t.Errorf("%q: %+v", doc, c)
		}
	}
}

// A TUN with no ppp section names both missing keys, at the tun line.
func TestTUNNeedsPPPAddressing(t *testing.T) {
	_, err := Parse([]byte("hostname: a\ntun: {name: l2tp0}\n"))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 2 {
		t.Fatalf("got %v, want two errors", err)
	}
	for i, path := range []string{"ppp.local_ipv4", "ppp.pool"} {
		if errs[i].Path != path || errs[i].Line != 2 {
			t.Errorf("error %d = %q, want %s at line 2", i, errs[i].Error(), path)
		}
	}
}

// Ranges may be written three ways; .0 and .255 stay in the range (the
// pool decides what it leases).
func TestRangeForms(t *testing.T) {
	tests := map[string]control.AddrRange{
		"100.64.0.10-100.64.0.250":  {First: netip.MustParseAddr("100.64.0.10"), Last: netip.MustParseAddr("100.64.0.250")},
		"100.64.0.10 - 100.64.0.10": {First: netip.MustParseAddr("100.64.0.10"), Last: netip.MustParseAddr("100.64.0.10")},
		"100.65.0.0/16":             {First: netip.MustParseAddr("100.65.0.0"), Last: netip.MustParseAddr("100.65.255.255")},
		"100.65.0.7/32":             {First: netip.MustParseAddr("100.65.0.7"), Last: netip.MustParseAddr("100.65.0.7")},
		"0.0.0.0/0":                 {First: netip.MustParseAddr("0.0.0.0"), Last: netip.MustParseAddr("255.255.255.255")},
		"192.0.2.1":                 {First: netip.MustParseAddr("192.0.2.1"), Last: netip.MustParseAddr("192.0.2.1")},
	}
	for in, want := range tests {
		got, msg := parseRange(in)
		if msg != "" || got != want {
			t.Errorf("parseRange(%q) = %v, %q; want %v", in, got, msg, want)
		}
	}
}

// Cross-section checks join the per-key errors, in line order.
func TestPPPErrorsTogether(t *testing.T) {
	doc := `ppp:
  auth: [eap]
  local_ipv4: 10.0.0.1
  pool: missing
pools:
  - name: a
    ipv4: [10.0.0.0/24, 10.0.0.7]
peers:
  - {name: p, host_name: P, pool: gone, renegotiate: maybe}
tun: {name: l2tp0}
`
	_, err := Parse([]byte(doc))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	want := []struct {
		path string
		line int
	}{
		{"ppp.auth[0]", 2},
		{"ppp.local_ipv4", 3},
		{"ppp.pool", 4},
		{"pools[0].ipv4[1]", 7},
		{"peers[0].renegotiate", 9},
		{"peers[0].pool", 9},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if errs[i].Path != w.path || errs[i].Line != w.line {
			t.Errorf("error %d = %q, want path %s line %d", i, errs[i].Error(), w.path, w.line)
		}
	}
}

func TestMetricsListen(t *testing.T) {
	f, err := Parse([]byte("metrics: {listen: \"127.0.0.1:9701\"}\n"))
	if err != nil || f.Metrics.Listen != "127.0.0.1:9701" {
		t.Fatalf("%+v %v", f, err)
	}
	_, err = Parse([]byte("metrics:\n  listen: localhost\n"))
	if err == nil || !strings.Contains(err.Error(), "metrics.listen (line 2)") {
		t.Fatalf("error %v", err)
	}
	f, err = Parse([]byte("metrics: {listen: \"127.0.0.1:9701\", pprof: true}\n"))
	if err != nil || !f.Metrics.Pprof {
		t.Fatalf("%+v %v", f.Metrics, err)
	}
	_, err = Parse([]byte("metrics:\n  pprof: true\n"))
	if err == nil || !strings.Contains(err.Error(), "pprof needs listen") {
		t.Fatalf("error %v", err)
	}
}

func TestRuntimeSection(t *testing.T) {
	f, err := Parse([]byte("runtime: {gc_percent: 75, memory_limit: 2GiB}\n"))
	if err != nil || f.Runtime.GCPercent == nil || *f.Runtime.GCPercent != 75 || f.Runtime.MemoryLimit != 2<<30 {
		t.Fatalf("%+v %v", f.Runtime, err)
	}
	f, err = Parse([]byte("runtime: {gc_percent: -1, memory_limit: 1536MiB}\n"))
	if err != nil || *f.Runtime.GCPercent != -1 || f.Runtime.MemoryLimit != 1536<<20 {
		t.Fatalf("%+v %v", f.Runtime, err)
	}
	f, err = Parse([]byte("runtime: {memory_limit: 1000000}\n"))
	if err != nil || f.Runtime.GCPercent != nil || f.Runtime.MemoryLimit != 1000000 {
		t.Fatalf("%+v %v", f.Runtime, err)
	}
	for _, bad := range []string{"runtime: {gc_percent: -2}", "runtime: {memory_limit: 2GB}", "runtime: {memory_limit: 0}", "runtime: {memory_limit: 99999999TiB}", "runtime: {gogc: 50}"} {
		if _, err := Parse([]byte(bad + "\n")); err == nil || !strings.Contains(err.Error(), "runtime.") {
			t.Errorf("%s: error %v", bad, err)
		}
	}
}

func TestRADIUSSection(t *testing.T) {
	f, err := Parse([]byte(`radius:
  nas_identifier: lns1
  timeout: 2s
  retries: 1
  dead_time: 45s
  interim_interval: 300s
  auth_servers:
    - {address: "192.0.2.10:1812", secret: one, priority: 1}
    - {address: "192.0.2.11:1812", secret: two}
  acct_servers:
    - {address: "192.0.2.10:1813", secret: one}
  dae:
    listen: "127.0.0.1:3799"
    clients: [{address: 192.0.2.10, secret: dae}]
`))
	if err != nil {
		t.Fatal(err)
	}
	r := f.Control().RADIUS
	if len(r.Auth) != 2 || r.Auth[0].Priority != 1 || r.Auth[1].Addr.Port() != 1812 || len(r.Acct) != 1 ||
		r.NASIdentifier != "lns1" || r.InterimInterval != 300*time.Second || r.DeadTime != 45*time.Second || r.DAEListen != "127.0.0.1:3799" || len(r.DAEClients) != 1 {
		t.Fatalf("%+v", r)
	}
	_, err = Parse([]byte("radius:\n  auth_servers:\n    - {address: \"nohost\", secret: x}\n    - {address: \"192.0.2.1:1812\"}\n  interim_interval: 10s\n"))
	for _, want := range []string{"radius.auth_servers[0].address", "radius.auth_servers[1] (line 4): needs address and secret", "radius.interim_interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

// Every datapath offload is on by default; each key turns its own off and
// the control plane gets exactly that.
func TestDatapathOffloads(t *testing.T) {
	f, err := Parse([]byte("hostname: a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Control().Datapath; got != (control.Datapath{}) {
		t.Errorf("default %+v, want every offload on", got)
	}
	for _, tt := range []struct {
		doc  string
		want control.Datapath
	}{
		{"datapath: {gso: true, gro: true, tun_offload: true}\n", control.Datapath{}},
		{"datapath:\n", control.Datapath{}},
		{"datapath: {gso: false}\n", control.Datapath{DisableGSO: true}},
		{"datapath: {gro: false}\n", control.Datapath{DisableGRO: true}},
		{"datapath: {tun_offload: false}\n", control.Datapath{DisableTUNOffload: true}},
		{"datapath:\n  gso: false\n  gro: false\n  tun_offload: false\n", control.Datapath{DisableGSO: true, DisableGRO: true, DisableTUNOffload: true}},
	} {
		f, err := Parse([]byte(tt.doc))
		if err != nil {
			t.Errorf("%q: %v", tt.doc, err)
			continue
		}
		if got := f.Control().Datapath; got != tt.want {
			t.Errorf("%q: %+v, want %+v", tt.doc, got, tt.want)
		}
	}
}
