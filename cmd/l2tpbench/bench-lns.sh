#!/usr/bin/env bash
# Setup rate and scale of l2tpd as LNS against l2tpns as LNS, with the
# same l2tpbench settings (docs/performance.md, "Setup rate and scale
# (l2tpbench) vs l2tpns"). Run as root on Debian 12 with l2tpns and
# freeradius installed (.ci/install-deps): `make bench-lns`.
#
# Topology: l2tpbench in namespace $NS_LAC, the LNS under test (l2tpd or
# l2tpns) and FreeRADIUS in $NS_LNS, a veth pair between them. Results go
# to $OUT as one JSON report per run plus summary.txt.
#
# Sizes are environment variables; the defaults are the published runs.
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-/tmp/l2tpbench-results}
RATE_SESSIONS=${RATE_SESSIONS:-20000}   # setup-rate runs
RATE_TUNNELS=${RATE_TUNNELS:-100}
SCALE_SESSIONS=${SCALE_SESSIONS:-100000} # concurrent sessions in l2tpd
L2TPNS_SCALE=${L2TPNS_SCALE:-65000}     # l2tpns holds at most 65,535 sessions (its pool is 100.64.0.0/16)
SCALE_TUNNELS=${SCALE_TUNNELS:-100}
STORM_SESSIONS=${STORM_SESSIONS:-50000}
LOSSY_TUNNELS=${LOSSY_TUNNELS:-1000}
L2TPNS_LOSSY_TUNNELS=${L2TPNS_LOSSY_TUNNELS:-499} # l2tpns' tunnel table holds 499 (MAXTUNNEL 500)
HOLD=${HOLD:-60s}                       # idle time held at scale (LCP echo every 30 s)
SETTLE=${SETTLE:-15}                    # seconds at scale before sampling
SAMPLE=${SAMPLE:-30}                    # seconds of CPU sampled (HOLD must cover SETTLE+SAMPLE)
CONCURRENCY=${CONCURRENCY:-2000}
RUNS=${RUNS:-"rate scale storm lossy"}
LNSS=${LNSS:-"l2tpd l2tpns"}
PPROF=${PPROF:-}                        # set: l2tpd serves /debug/pprof; scale runs save a heap and a 10 s CPU profile after sampling

WORK=$(mktemp -d /tmp/bench-lns.XXXXXX)
BIN=$WORK/bin
NS_LAC=bench-lac-$$
NS_LNS=bench-lns-$$
LAC_IP=198.18.9.1
LNS_IP=198.18.9.2
SECRET=bench-tunnel-secret
mkdir -p "$OUT" "$BIN"

PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for ns in $NS_LAC $NS_LNS; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "bench-lns: $*" | tee -a "$OUT/summary.txt" >&2; }

go build -o "$BIN/" ./cmd/l2tpd ./cmd/l2tpbench

ip netns add $NS_LAC
ip netns add $NS_LNS
ip link add name bench-lac netns $NS_LAC type veth peer name bench-lns netns $NS_LNS
ip -n $NS_LAC addr add $LAC_IP/30 dev bench-lac
ip -n $NS_LNS addr add $LNS_IP/30 dev bench-lns
for ns in $NS_LAC $NS_LNS; do
	ip -n "$ns" link set lo up
done
ip -n $NS_LAC link set bench-lac up
ip -n $NS_LNS link set bench-lns up

# FreeRADIUS with one user, no debug output (-X would serialise it).
start_radius() {
	local d=$WORK/radius
	rm -rf "$d"; mkdir -p "$d"
	cp -rL /etc/freeradius/3.0/. "$d"
	rm -f "$d/mods-enabled/eap" "$d/sites-enabled/inner-tunnel" "$d/sites-enabled/default"
	sed -i -e '/^\s*user = /d' -e '/^\s*group = /d' -e "s|^run_dir = .*|run_dir = $d/run|" -e "s|^logdir = .*|logdir = $d/log|" \
		-e 's|^\(\s*\)reject_delay = .*|\1reject_delay = 0|' "$d/radiusd.conf"
	mkdir -p "$d/run" "$d/log"
	printf 'client lo {\n\tipaddr = 127.0.0.1\n\tsecret = testing123\n\trequire_message_authenticator = no\n\tlimit_proxy_state = no\n}\n' >"$d/clients.conf"
	printf 'bench Cleartext-Password := "secret"\n' >"$d/mods-config/files/authorize"
	cat >"$d/sites-enabled/bench" <<'SITE'
server bench {
listen {
	type = auth
	ipaddr = 127.0.0.1
	port = 1812
}
listen {
	type = acct
	ipaddr = 127.0.0.1
	port = 1813
}
authorize {
	preprocess
	chap
	mschap
	files
	pap
}
authenticate {
	Auth-Type PAP {
		pap
	}
	Auth-Type CHAP {
		chap
	}
	Auth-Type MS-CHAP {
		mschap
	}
}
preacct {
	preprocess
}
accounting {
	ok
}
post-auth {
	update reply {
		Message-Authenticator := 0x00
	}
	Post-Auth-Type REJECT {
		update reply {
			Message-Authenticator := 0x00
		}
	}
}
}
SITE
	ip netns exec $NS_LNS freeradius -f -d "$d" -l "$d/radius.log" &
	RADIUS_PID=$!
	PIDS+=("$RADIUS_PID")
	for _ in $(seq 100); do
		ip netns exec $NS_LNS ss -lun | grep -q '127.0.0.1:1812' && return 0
		sleep 0.1
	done
	echo "freeradius did not start" >&2; cat "$d/radius.log" >&2; exit 1
}

stop_radius() { kill "$RADIUS_PID" 2>/dev/null || true; wait "$RADIUS_PID" 2>/dev/null || true; }

# l2tpd: $1 is local or radius.
start_l2tpd() {
	local auth=$1 c=$WORK/l2tpd.yaml
	cat >"$c" <<YAML
hostname: lns-bench
listen: ["$LNS_IP:1701"]
log:
  level: warn
admin:
  socket: $WORK/l2tpd.sock
default_peer:
  secret: "$SECRET"
store:
  backend: memory
tun:
  name: l2tp0
ppp:
  auth: [chap, pap]
  echo_interval: 30s
  local_ipv4: 100.64.0.1
  pool: subscribers
pools:
  - name: subscribers
    ipv4: ["100.72.0.0/14"]
limits:
  max_sessions: 200000
  max_tunnels_per_peer: 4096
  max_half_open_per_peer: 4096
  max_sessions_in_setup: 0
  max_sessions_in_setup_per_peer: 0
  icrq_rate: 0
  icrq_rate_per_peer: 0
  sccrq_rate: 0
  sccrq_rate_per_peer: 0
YAML
	if [ -n "$PPROF" ]; then
		printf 'metrics:\n  listen: "127.0.0.1:9701"\n  pprof: true\n' >>"$c"
	fi
	if [ "$auth" = local ]; then
		printf 'auth:\n  local_users:\n    - name: bench\n      password: "secret"\n' >>"$c"
	else
		printf 'radius:\n  nas_identifier: lns-bench\n  auth_servers:\n    - {address: "127.0.0.1:1812", secret: "testing123"}\n' >>"$c"
	fi
	"$BIN/l2tpd" -check "$c" >/dev/null
	ip netns exec $NS_LNS "$BIN/l2tpd" -config "$c" >"$WORK/l2tpd.log" 2>&1 &
	LNS_PID=$!
	PIDS+=("$LNS_PID")
	for _ in $(seq 100); do
		[ -S "$WORK/l2tpd.sock" ] && return 0
		sleep 0.1
	done
	echo "l2tpd did not start" >&2; cat "$WORK/l2tpd.log" >&2; exit 1
}

# l2tpns with FreeRADIUS (it has no local users); its address pool file
# is compiled in as /etc/l2tpns/ip_pool, so a private mount namespace
# gets its own /etc/l2tpns with a /16.
start_l2tpns() {
	local d=$WORK/l2tpns
	rm -rf "$d"; mkdir -p "$d/etc"
	echo "100.64.0.0/16" >"$d/etc/ip_pool"
	touch "$d/etc/users"
	cat >"$d/etc/startup-config" <<CONF
set debug ${L2TPNS_DEBUG:-0}
set log_file "$d/l2tpns.log"
set pid_file "$d/l2tpns.pid"
set l2tp_secret "$SECRET"
set primary_dns 192.0.2.53
set primary_radius 127.0.0.1
set primary_radius_port 1812
set radius_secret "testing123"
set radius_accounting no
set radius_authtypes "chap,pap"
set bind_address $LNS_IP
set cli_bind_address 127.0.0.1
set cluster_interface "bench-lns"
set cluster_hb_timeout 5
set allow_duplicate_users yes
set echo_timeout 30
set idle_echo_timeout 240
CONF
	# setsid: l2tpns signals its whole process group when it stops.
	ip netns exec $NS_LNS setsid unshare --mount --propagation private sh -c \
		"mount --bind $d/etc /etc/l2tpns && exec l2tpns -c /etc/l2tpns/startup-config -h lns-bench" >"$d/stdout.log" 2>&1 &
	LNS_PID=$!
	PIDS+=("$LNS_PID")
	for _ in $(seq 200); do
		grep -q "declaring myself the master" "$d/l2tpns.log" 2>/dev/null && { LNS_PID=$(cat "$d/l2tpns.pid"); return 0; }
		sleep 0.1
	done
	echo "l2tpns did not start" >&2; cat "$d/stdout.log" "$d/l2tpns.log" >&2; exit 1
}

stop_lns() {
	[ -f "$WORK/l2tpns/l2tpns.log" ] && cp "$WORK/l2tpns/l2tpns.log" "$OUT/l2tpns-last.log"
	[ -f "$WORK/l2tpd.log" ] && cp "$WORK/l2tpd.log" "$OUT/l2tpd-last.log"
	kill -TERM "$LNS_PID" 2>/dev/null || true
	for _ in $(seq 100); do kill -0 "$LNS_PID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$LNS_PID" 2>/dev/null || true
	for p in $(ip netns pids $NS_LNS); do
		[ "$p" = "${RADIUS_PID:-}" ] || kill -9 "$p" 2>/dev/null || true
	done
	sleep 1
}

# fetch_profile PATH FILE: one of l2tpd's /debug/pprof/ profiles (PPROF=1).
fetch_profile() {
	ip netns exec $NS_LNS python3 -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen("http://127.0.0.1:9701/debug/pprof/" + sys.argv[1], timeout=60).read())' "$1" "$2"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# bench NAME ARGS...: one l2tpbench run against the LNS that is up.
bench() {
	local name=$1; shift
	log "run $name: l2tpbench $*"
	ip netns exec $NS_LAC "$BIN/l2tpbench" -lns $LNS_IP -secret $SECRET -user bench -password secret \
		-concurrency "$CONCURRENCY" -json "$OUT/$name.json" "$@" 2>"$OUT/$name.progress" || true
	python3 - "$OUT/$name.json" <<'PY' | tee -a "$OUT/summary.txt" >&2
import json, sys
r = json.load(open(sys.argv[1]))
t = r["latency"]["total"]
print(f'  up {r["up"]}/{r["attempted"]} failed {r["failed"]} {r["failed_by_reason"]} '
      f'rate {r["setup_rate_per_second"]:.0f}/s in {r["setup_seconds"]:.1f}s; total p50 {t["p50_ms"]:.0f} ms p99 {t["p99_ms"]:.0f} ms')
if r.get("storm"):
    s = r["storm"]
    print(f'  storm: dropped {s["dropped"]}, all down in {s["all_down_seconds"]:.1f}s, all up again {s["all_up_seconds"]:.1f}s after the drop ({s["up"]} up, {s["failed"]} failed {s["failed_by_reason"]})')
if r.get("relay"):
    x = r["relay"]
    print(f'  relay: {x["dropped"]} dropped, {x["reordered"]} reordered of {x["forwarded"]+x["dropped"]}; tunnels up {r["lac"]["TunnelsUp"]}, redials {r.get("redialed_by_reason")}')
PY
}

# scale NAME SESSIONS: bring SESSIONS up and hold them for $HOLD, then
# sample the LNS's RSS, and its CPU over $SAMPLE s of the hold.
scale() {
	local name=$1 n=$2
	local base_rss; base_rss=$(rss_kb "$LNS_PID")
	log "run $name: l2tpbench -sessions $n -tunnels $SCALE_TUNNELS -duration $HOLD (LNS RSS before: $base_rss kB)"
	ip netns exec $NS_LAC "$BIN/l2tpbench" -lns $LNS_IP -secret $SECRET -user bench -password secret -auth chap \
		-concurrency "$CONCURRENCY" -sessions "$n" -tunnels "$SCALE_TUNNELS" -duration "$HOLD" -timeout 120s \
		-json "$OUT/$name.json" 2>"$OUT/$name.progress" &
	local bp=$!
	touch "$OUT/$name.progress"
	# Wait for the hold: nothing left in setup.
	while kill -0 $bp 2>/dev/null; do
		if tail -c 300 "$OUT/$name.progress" | tr '\r' '\n' | tail -1 | grep -q "attempted $n .* in-setup 0 "; then break; fi
		sleep 1
	done
	sleep "$SETTLE"
	local c0 t0 c1 t1 rss
	c0=$(cpu_ticks "$LNS_PID"); t0=$(date +%s.%N)
	sleep "$SAMPLE"
	c1=$(cpu_ticks "$LNS_PID"); t1=$(date +%s.%N)
	rss=$(rss_kb "$LNS_PID")
	if [ -n "$PPROF" ] && [ "$(cat /proc/$LNS_PID/comm)" = l2tpd ]; then
		fetch_profile heap "$OUT/$name.heap.pb.gz"
		fetch_profile "heap?debug=1" "$OUT/$name.heap.txt"
		log "  Go heap: $(grep -E '^# (HeapAlloc|HeapInuse|HeapSys|HeapReleased|NextGC|NumGC) ' "$OUT/$name.heap.txt" | sed 's/^# //' | tr '\n' ' ')"
		fetch_profile "profile?seconds=10" "$OUT/$name.cpu.pb.gz"
		log "  profiles: $OUT/$name.heap.pb.gz $OUT/$name.cpu.pb.gz (go tool pprof -top FILE)"
	fi
	wait $bp || true
	python3 - "$OUT/$name.json" "$base_rss" "$rss" "$c0" "$c1" "$t0" "$t1" "$(getconf CLK_TCK)" <<'PY' | tee -a "$OUT/summary.txt" >&2
import json, sys
r = json.load(open(sys.argv[1]))
base, rss, c0, c1, t0, t1, hz = map(float, sys.argv[2:])
up = r["up"]
cpu = (c1 - c0) / hz / (t1 - t0) * 100
per = (rss - base) * 1024 / up if up else 0
r["lns"] = {"rss_kb_before": base, "rss_kb_at_scale": rss, "rss_bytes_per_session": per, "idle_cpu_percent": cpu}
json.dump(r, open(sys.argv[1], "w"), indent=2)
print(f'  up {up}/{r["attempted"]} failed {r["failed"]} {r["failed_by_reason"]} rate {r["setup_rate_per_second"]:.0f}/s; '
      f'LNS RSS {base/1024:.0f} -> {rss/1024:.0f} MiB ({per:.0f} B/session), idle CPU {cpu:.1f}% of one core; '
      f'l2tpbench RSS {r["bench_rss_per_session_bytes"]:.0f} B/session')
PY
}

log "$(date -u +%FT%TZ) $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for lns in $LNSS; do
	for run in $RUNS; do
		case $lns in
		l2tpd) modes="local radius" ;;
		l2tpns) modes="radius" ;;
		esac
		for mode in $modes; do
			# Setup rate with both authentication backends; the rest with the
			# one both LNSs share (FreeRADIUS) only for l2tpns.
			[ "$run" != rate ] && [ "$lns" = l2tpd ] && [ "$mode" = radius ] && continue
			[ "$mode" = radius ] && start_radius
			if [ "$lns" = l2tpd ]; then start_l2tpd "$mode"; else start_l2tpns; fi
			log "$lns ($mode auth), load $(cut -d' ' -f1-3 /proc/loadavg)"
			case $run in
			rate) bench "rate-$lns-$mode" -sessions "$RATE_SESSIONS" -tunnels "$RATE_TUNNELS" -auth chap -timeout 120s ;;
			scale)
				n=$SCALE_SESSIONS
				[ "$lns" = l2tpns ] && n=$L2TPNS_SCALE
				scale "scale-$lns-$mode" "$n" ;;
			storm) bench "storm-$lns-$mode" -sessions "$STORM_SESSIONS" -tunnels "$SCALE_TUNNELS" -auth chap -storm -timeout 120s ;;
			lossy)
				# l2tpns can only open one tunnel at a time from one LAC port
				# (a second SCCRQ is taken for a duplicate); l2tpd opens many.
				open=1 nt=$L2TPNS_LOSSY_TUNNELS
				[ "$lns" = l2tpd ] && open=64 nt=$LOSSY_TUNNELS
				bench "lossy-$lns-$mode" -sessions "$nt" -tunnels "$nt" -auth chap -loss 10 -reorder 10 \
					-redial 3 -timeout 900s -open $open ;;
			esac
			stop_lns
			[ "$mode" = radius ] && stop_radius
		done
	done
done
log "done; reports in $OUT"
