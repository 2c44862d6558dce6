#!/usr/bin/env bash
# Edge fleets on etcd: a 3-member etcd cluster and 3 edges (release build)
# on loopback. Reports push-to-all-edges-answering over 20 pushes (p50,
# p99, max), then the kit's 100 000-rule suffix policy: push time and time
# until the first and the last edge serve it (medians of 3 pushes). Every
# process is stopped by its PID.
#
#   tests/perf/fleet.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${WORK:-/tmp/dnspolicy-fleet}"
BUILD_TOOLS=0
# shellcheck source=kit.sh
source "$ROOT/tests/perf/kit.sh"
command -v etcd >/dev/null || die "etcd missing: apt-get install etcd-server"
BASE="${BASE_PORT:-25400}"
for p in $(seq "$BASE" $((BASE + 8))); do port_free "$p"; done
mkdir -p "$RESULTS_DIR"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT

# etcd: clients on BASE..BASE+2, peers on BASE+3..BASE+5.
CLUSTER="" URLS="" HOSTS=""
for i in 0 1 2; do
  CLUSTER+="m$i=http://127.0.0.1:$((BASE + 3 + i)),"
  URLS+="http://127.0.0.1:$((BASE + i)),"
  HOSTS+="127.0.0.1:$((BASE + i)),"
done
CLUSTER=${CLUSTER%,} URLS=${URLS%,} HOSTS=${HOSTS%,}
for i in 0 1 2; do
  etcd --name "m$i" --data-dir "$WORK/etcd/m$i" \
    --listen-client-urls "http://127.0.0.1:$((BASE + i))" --advertise-client-urls "http://127.0.0.1:$((BASE + i))" \
    --listen-peer-urls "http://127.0.0.1:$((BASE + 3 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((BASE + 3 + i))" \
    --initial-cluster "$CLUSTER" --initial-cluster-token perf --initial-cluster-state new \
    --logger zap --log-level error >"$RESULTS_DIR/etcd$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 0 1 2; do
  for _ in $(seq 1 200); do
    curl -sf "http://127.0.0.1:$((BASE + i))/health" | grep -q true && break
    sleep 0.1
  done
done

version_set() {  # dir text
  mkdir -p "$1"
  printf 'rule version when {query.name} == "version.example.com" { then answer TXT "%s" ttl 1 }\n' "$2" >"$1/version.dsl"
}
version_set "$WORK/sets/v0" v0
"$BIN" push "$WORK/sets/v0" --etcd "$URLS" --set perf >/dev/null

# Edges on BASE+6..BASE+8, one core each would be 3: they share the
# machine's cores with etcd, as a small fleet on one host would.
for i in 0 1 2; do
  "$BIN" serve --listen "127.0.0.1:$((BASE + 6 + i))" --no-admin --workers 1 \
    --source "etcd://$HOSTS/perf" --node "edge-$i" --source-cache "$WORK/state$i" \
    >"$RESULTS_DIR/edge$i.out" 2>"$RESULTS_DIR/edge$i.log" &
  PIDS+=($!)
done
answers() {  # port -> TXT or A answer
  dig +short +tries=1 +time=1 @127.0.0.1 -p "$1" "$2" "$3" 2>/dev/null | tr -d '"'
}
wait_all() {  # name type want max_s -> seconds until the first and the last edge answer it
  local t0 first="" i
  t0=$(date +%s.%N)
  for i in 0 1 2; do
    until [ "$(answers $((BASE + 6 + i)) "$1" "$2")" = "$3" ]; do
      awk -v a="$t0" -v b="$(date +%s.%N)" -v m="$4" 'BEGIN {exit !(b - a > m)}' && die "edge-$i never answered $3"
      sleep 0.005
    done
    [ -n "$first" ] || first=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}')
  done
  echo "$first $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}')"
}
wait_all version.example.com TXT v0 30 >/dev/null

# 20 pushes: from the push command to every edge answering the new text.
lat=()
for v in $(seq 1 20); do
  version_set "$WORK/sets/v$v" "v$v"
  T0=$(date +%s.%N)
  "$BIN" push "$WORK/sets/v$v" --etcd "$URLS" --set perf >/dev/null
  wait_all version.example.com TXT "v$v" 10 >/dev/null
  lat+=("$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.0f", (b - a) * 1000}')")
done
sorted=$(printf '%s\n' "${lat[@]}" | sort -n)
P50=$(echo "$sorted" | median)
P99=$(echo "$sorted" | awk '{a[NR] = $1} END {print a[int(NR * 0.99 + 0.999)]}')
echo "fleet: push to all 3 edges answering, 20 pushes: p50 ${P50} ms, p99 ${P99} ms (all: ${lat[*]})"

# The 100 000-rule policy: a changed file each time (no blob reused).
BIG="$WORK/sets/big"
mkdir -p "$BIG"
PROBE=h1.s099999.example WANT=198.19.134.159
pushes=() firsts=() lasts=()
for run in 1 2 3; do
  cp "$WORK/dnspolicy/suffix-100k/plugins/"*.dsl "$BIG/"
  echo "# run $run $(date +%s%N)" >>"$BIG/suffix.dsl"
  # The old answer must go first: v0's policy does not know the probe.
  version_set "$WORK/sets/v0" "x$run"
  "$BIN" push "$WORK/sets/v0" --etcd "$URLS" --set perf >/dev/null
  wait_all version.example.com TXT "x$run" 30 >/dev/null
  T0=$(date +%s.%N)
  "$BIN" push "$BIG" --etcd "$URLS" --set perf >"$RESULTS_DIR/big-push.out"
  T1=$(date +%s.%N)
  read -r FIRST LAST < <(wait_all "$PROBE" A "$WANT" 300)
  pushes+=("$(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.2f", b - a}')")
  firsts+=("$(awk -v p="${pushes[-1]}" -v f="$FIRST" 'BEGIN {printf "%.2f", p + f}')")
  lasts+=("$(awk -v p="${pushes[-1]}" -v l="$LAST" 'BEGIN {printf "%.2f", p + l}')")
  log "100k run $run: push ${pushes[-1]} s ($(cat "$RESULTS_DIR/big-push.out")), first edge ${firsts[-1]} s, all 3 ${lasts[-1]} s"
done
SIZE=$(du -cb "$BIG"/*.dsl | tail -1 | cut -f1)
echo "fleet: 100 000-rule set ($SIZE bytes): push $(printf '%s\n' "${pushes[@]}" | median) s (includes the pusher's check); first edge serving $(printf '%s\n' "${firsts[@]}" | median) s, all 3 edges $(printf '%s\n' "${lasts[@]}" | median) s after the push began (medians of 3: push ${pushes[*]}; first ${firsts[*]}; all ${lasts[*]})"
