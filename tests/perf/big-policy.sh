#!/usr/bin/env bash
# The 100 000-rule policy (the kit's suffix-100k data): time from launch to
# the first answer, RSS while serving, and peak RSS while a reload builds
# the next chain beside the serving one. Loopback only; the server is
# stopped by its PID.
#
#   tests/perf/big-policy.sh            # RULES=100k (or 10k)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${WORK:-/tmp/dnspolicy-big}"
RULES="${RULES:-100k}"
BUILD_TOOLS=0
# shellcheck source=kit.sh
source "$ROOT/tests/perf/kit.sh"
PORT="${PORT:-25330}" ADMIN="${ADMIN_PORT:-25331}"
port_free "$PORT"
port_free "$ADMIN"
mkdir -p "$RESULTS_DIR"
case "$RULES" in
  100k) PROBE=h1.s099999.example WANT=198.19.134.159 ;;
  10k) PROBE=h1.s000010.example WANT=198.18.0.10 ;;
  *) die "RULES is 10k or 100k" ;;
esac
launch() {  # [PLUGIN_DIR]
  ( pin "$SERVER_CPU" "$BIN" serve --listen "127.0.0.1:$PORT" --admin "127.0.0.1:$ADMIN" --workers 1 \
      --plugin-dir "${1:-$WORK/dnspolicy/suffix-$RULES/plugins}" ) >"$RESULTS_DIR/server.log" 2>&1 &
  SPID=$!
}
# Start-up and serving RSS: median of 3 launches.
starts=() rsss=()
for run in 1 2 3; do
  T0=$(date +%s.%N)
  launch
  trap 'stop_pid $SPID' EXIT
  START_S=$(wait_ready "$PORT" "$PROBE" "$SPID" 120 "$T0") || die "server did not come up"
  GOT=$(dig +short +tries=1 +time=2 @127.0.0.1 -p "$PORT" "$PROBE" A)
  [ "$GOT" = "$WANT" ] || die "sanity: $PROBE -> '$GOT', want $WANT"
  sleep 1
  starts+=("$START_S") rsss+=("$(rss_kb "$SPID")")
  log "launch $run: first answer ${START_S}s, RSS ${rsss[-1]} kB"
  if [ "$run" -lt 3 ]; then stop_pid "$SPID"; fi
done
START_S=$(printf '%s\n' "${starts[@]}" | median)
RSS=$(printf '%s\n' "${rsss[@]}" | median)
# Peak from here on: reset the high-water mark, change the policy (an
# unchanged file would be reused, not rebuilt), reload, read it back.
echo "# reloaded $(date +%s)" >>"$WORK/dnspolicy/suffix-$RULES/plugins/suffix.dsl"
echo 5 >"/proc/$SPID/clear_refs"
R0=$(date +%s.%N)
curl -sf -X POST "http://127.0.0.1:$ADMIN/reload" >"$RESULTS_DIR/reload.json"
R1=$(date +%s.%N)
PEAK=$(hwm_kb "$SPID")
grep -q '"result":"ok"' "$RESULTS_DIR/reload.json" || die "reload: $(cat "$RESULTS_DIR/reload.json")"
GOT2=$(dig +short +tries=1 +time=2 @127.0.0.1 -p "$PORT" "$PROBE" A)
[ "$GOT2" = "$WANT" ] || die "after reload: $PROBE -> '$GOT2'"
sleep 1
RSS2=$(rss_kb "$SPID")
echo "big policy ($RULES suffix rules): first answer ${START_S}s after launch (median of 3: ${starts[*]})"
echo "big policy: RSS serving $RSS kB (median of 3: ${rsss[*]}); peak while reloading $PEAK kB ($(awk -v a="$RSS" -v b="$PEAK" 'BEGIN {printf "%.2f", b / a}')x); reload took $(awk -v a="$R0" -v b="$R1" 'BEGIN {printf "%.2f", b - a}') s; RSS after it $RSS2 kB"
stop_pid "$SPID"
trap - EXIT
# The same server with two of those rules: what the process is without the
# policy's tables (most of it the binary's code pages, RssFile).
BASE="$WORK/dnspolicy/suffix-base/plugins"
mkdir -p "$BASE"
{ grep -m1 '^rule s0 ' "$WORK/dnspolicy/suffix-$RULES/plugins/suffix.dsl"
  grep -m1 '^rule other ' "$WORK/dnspolicy/suffix-$RULES/plugins/suffix.dsl"; } >"$BASE/suffix.dsl"
[ "$(wc -l <"$BASE/suffix.dsl")" = 2 ] || die "two-rule policy: $(cat "$BASE/suffix.dsl")"
launch "$BASE"
trap 'stop_pid $SPID' EXIT
wait_ready "$PORT" h1.s000001.example "$SPID" 30 "$(date +%s.%N)" >/dev/null || die "two-rule server did not come up"
sleep 1
echo "big policy: the same server with 2 of its rules: RSS $(rss_kb "$SPID") kB, of it file-backed (the binary) $(awk '/^RssFile/ {print $2}' "/proc/$SPID/status") kB"
stop_pid "$SPID"
trap - EXIT
# The budget (issue 14): start < 1 s, RSS < 100 MB serving, and < 1.5x that
# (150 MB) while a reload builds the next chain beside the serving one.
if [ "$RULES" = 100k ]; then
  awk -v s="$START_S" -v r="$RSS" -v p="$PEAK" 'BEGIN {
    ok = s < 1 && r < 100000 && p < 150000
    printf "budget: start %.2f s < 1 s, serving %.1f MB < 100 MB, reload peak %.1f MB < 150 MB: %s\n", s, r / 1000, p / 1000, ok ? "met" : "NOT met"
    exit !ok }' || die "over budget"
fi
