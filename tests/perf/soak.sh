#!/usr/bin/env bash
# Soak: the geo policy under a fixed load of 80 % of the measured capacity
# for SOAK_SECS (600), with a reload every RELOAD_EVERY seconds (30).
# Prints RSS at start (after one warm-up reload, see below) and end, its
# growth, anonymous memory's growth, reloads done, and queries lost;
# exits 1 when a query was lost or RSS grew by 5 % or more.
#
#   tests/perf/soak.sh
#
# Env: SOAK_SECS, RELOAD_EVERY, CAPACITY (skip the capacity run), WORK
# (/tmp/dnspolicy-soak). Loopback only; every process started is stopped
# by its PID; the load is bounded by SOAK_SECS.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${WORK:-/tmp/dnspolicy-soak}"
SOAK_SECS="${SOAK_SECS:-600}"
RELOAD_EVERY="${RELOAD_EVERY:-30}"
export LOAD_SECS=10 REPS=1
# shellcheck source=kit.sh
source "$ROOT/tests/perf/kit.sh"
PORT="${PORT:-25320}" ADMIN="${ADMIN_PORT:-25321}"
port_free "$PORT"
port_free "$ADMIN"
mkdir -p "$RESULTS_DIR"
PLUGINS="$WORK/dnspolicy/geo/plugins"
( pin "$SERVER_CPU" "$BIN" serve --listen "127.0.0.1:$PORT" --admin "127.0.0.1:$ADMIN" \
    --workers 1 --plugin-dir "$PLUGINS" --geoip "$WORK/dnspolicy/geo/regions.csv" ) \
  >"$RESULTS_DIR/server.log" 2>&1 &
SPID=$!
trap 'stop_pid $SPID' EXIT
wait_ready "$PORT" www.example.com "$SPID" 60 "$(date +%s.%N)" >/dev/null || die "server did not come up"
Q="$WORK/bench/peer/queries/www-a.txt"

if [ -z "${CAPACITY:-}" ]; then
  log "measuring capacity (dnsperf, 10 s)"
  CAPACITY=$(pin "$GEN_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$Q" -l 10 -t 2 -b 4096 -c 10 -T 1 -q 1000 \
    | awk '/Queries per second:/ {printf "%d", $4}')
fi
RATE=$((CAPACITY * 8 / 10))
# One reload before the start figure: the first reload pages in the code
# of the reload path (~1 MB of the binary's text, file-backed) and makes
# the reload thread's allocator arena. That is first use, once, not growth
# over time; the soak then measures what the reloads after it add. The growth
# of anonymous memory (RssAnon: heap, arenas, stacks) is printed too.
for f in "$PLUGINS"/*.dsl; do echo "# warm-up reload" >>"$f"; done
curl -sf -X POST "http://127.0.0.1:$ADMIN/reload" >/dev/null || die "warm-up reload refused"
sleep 2
anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
RSS0=$(rss_kb "$SPID") ANON0=$(anon_kb "$SPID")
log "capacity $CAPACITY qps; soaking at $RATE qps for ${SOAK_SECS}s, reload every ${RELOAD_EVERY}s; RSS $RSS0 kB"
( pin "$GEN_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$Q" -l "$SOAK_SECS" -t 2 -b 4096 -c 10 -T 1 \
    -q 1000 -Q "$RATE" ) >"$RESULTS_DIR/dnsperf.txt" 2>&1 &
GPID=$!
reloads=0 failed=0
end=$(( $(date +%s) + SOAK_SECS ))
while kill -0 "$GPID" 2>/dev/null && [ "$(date +%s)" -lt "$end" ]; do
  sleep "$RELOAD_EVERY"
  kill -0 "$GPID" 2>/dev/null || break
  # A new version each time (unchanged files would be reused as they are):
  # the policy is compiled again, swapped in, and the old one retired.
  for f in "$PLUGINS"/*.dsl; do echo "# soak reload $reloads" >>"$f"; done
  if curl -sf -X POST "http://127.0.0.1:$ADMIN/reload" >/dev/null; then
    reloads=$((reloads + 1))
  else
    failed=$((failed + 1))
  fi
done
wait "$GPID" || true
RSS1=$(rss_kb "$SPID") ANON1=$(anon_kb "$SPID")
read -r sent done lost < <(awk '/Queries sent:/ {s=$3} /Queries completed:/ {c=$3} /Queries lost:/ {l=$3} END {print s+0, c+0, l+0}' "$RESULTS_DIR/dnsperf.txt")
growth=$(awk -v a="$RSS0" -v b="$RSS1" 'BEGIN {printf "%.1f", 100 * (b - a) / a}')
echo "soak: ${SOAK_SECS}s at $RATE qps (80 % of $CAPACITY), $reloads reloads ($failed refused)"
echo "soak: RSS start $RSS0 kB, end $RSS1 kB, growth $growth % (start taken after one warm-up reload)"
echo "soak: anonymous memory (RssAnon) start $ANON0 kB, end $ANON1 kB, growth $(awk -v a="$ANON0" -v b="$ANON1" 'BEGIN {printf "%.1f", 100 * (b - a) / a}') %"
echo "soak: queries sent $sent, completed $done, lost $lost"
stop_pid "$SPID"; trap - EXIT
if [ "$lost" != 0 ] || awk -v g="$growth" 'BEGIN {exit !(g >= 5)}'; then
  exit 1
fi
