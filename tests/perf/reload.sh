#!/usr/bin/env bash
# Reloading under load: dnsperf at a fixed rate (default 80 000 QPS, about
# half of what dnsperf itself reaches here) for LOAD_SECS, first steady, then
# with `POST /reload` once a second. Beside it, the kit's `blast` keeps one
# query outstanding as a latency probe (dnsperf reports only the mean): its
# p50/p99 steady and during reloads is the comparison. Prints lost queries,
# latency for both phases, and the reload counters. Loopback only; server on
# CPU 0, load and probe on CPU 1.
#
#   tests/perf/run.sh static        # once, to prepare $WORK (the kit and data)
#   tests/perf/reload.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${WORK:-/tmp/dnspolicy-perf}"
RATE="${RATE:-80000}" LOAD_SECS="${LOAD_SECS:-30}" PORT="${PORT:-25397}" ADMIN="${ADMIN:-25396}"
[ -d "$WORK/bench" ] || { echo "run tests/perf/run.sh first (it prepares $WORK)" >&2; exit 2; }
(cd "$ROOT" && cargo build --release -q -p dnspolicy-cli)
python3 "$ROOT/tests/perf/gen_inputs.py" "$WORK/bench/peer/data" "$WORK/dnspolicy"
DIR=$(mktemp -d)
cp "$WORK/dnspolicy/geo/plugins/geo.dsl" "$DIR/"
taskset -c 0 "$ROOT/target/release/dnspolicy" serve --listen "127.0.0.1:$PORT" --admin "127.0.0.1:$ADMIN" \
  --plugin-dir "$DIR" --geoip "$WORK/dnspolicy/geo/regions.csv" --workers 1 >/dev/null 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 1 50); do dig +short +tries=1 +time=1 @127.0.0.1 -p "$PORT" www.example.com >/dev/null 2>&1 && break; sleep 0.1; done
BLAST="$WORK/bench/limit/blast"
load() {
  [ -x "$BLAST" ] && taskset -c 1 "$BLAST" -s 127.0.0.1 -p "$PORT" -d "$WORK/bench/peer/queries/www-a.txt" \
    -l "$LOAD_SECS" -c 1 -q 1 -b 1 -t 2000 2>&1 | grep -E "percentiles|lost" | sed 's/^/  probe: /' &
  local probe=$!
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$PORT" -d "$WORK/bench/peer/queries/www-a.txt" -l "$LOAD_SECS" -Q "$RATE" \
    -c 10 -T 1 -q 1000 2>&1 | grep -E "Queries lost|Queries per second|Average Latency|Latency StdDev"
  wait "$probe" 2>/dev/null || true
}
echo "== steady"
load
echo "== reloading once a second"
( for _ in $(seq 1 "$LOAD_SECS"); do curl -s -X POST "127.0.0.1:$ADMIN/reload" >/dev/null; sleep 1; done ) &
RELOADER=$!
load
wait "$RELOADER" 2>/dev/null || true
curl -s "127.0.0.1:$ADMIN/metrics" | grep -E "^dnspolicy_plugin_(reload_total|load_duration)"
