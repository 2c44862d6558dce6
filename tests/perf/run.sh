#!/usr/bin/env bash
# Side by side, in one run: `dnspolicy serve` and dnsdist on the same
# policy, data and queries, using the peer kit in ../shared/bench (copied
# to $WORK first: it is read-only in CI). Server pinned to CPU 0, load
# generator to CPU 1; every load is bounded by LOAD_SECS; loopback only.
#
#   tests/perf/run.sh [SCENARIO...]     SCENARIO = static gslb geo lua-geo wasm-geo suffix-10k suffix-100k tcp
#
# static also runs the kit's bare C responder (../shared/bench/limit, the
# single-core ceiling) in the same run; tcp is the static policy over TCP
# (dnsperf -m tcp) against dnsdist's static config; gslb is the static
# answer from three health-checked answer pools (compare it with static's
# dnspolicy row: the goal is >= 0.9x).
#
# Env: LOAD_SECS (10), REPS (3), MATRIX (the kit's settings; default
# dnsperf-c10q1000 and blast-c10q1000), WORK (/tmp/dnspolicy-perf),
# DNSDIST=0 to skip the peer, BASELINE_BIN=path/to/an/older/dnspolicy to
# run that build too, in the same run (e.g. before/after a change). Prints a
# table of median QPS, p99 latency, lost queries and the ratio dnspolicy /
# dnsdist per scenario and setting (and this build / the baseline).
#
# ROUNDS=N (1) runs the whole list N times with one rep each (REPS is then
# 1), so scenarios, peers and the bare responder alternate through the run
# instead of each taking its reps in one block: this VM drifts by more than
# the margins during a 25-minute run, and a ratio between two scenarios is
# only fair when both were measured at the same times. Medians are then
# over rounds.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${WORK:-/tmp/dnspolicy-perf}"
export LOAD_SECS="${LOAD_SECS:-10}" REPS="${REPS:-3}"
export MATRIX="${MATRIX:-dnsperf-c10q1000:dnsperf:-c 10 -T 1 -q 1000
blast-c10q1000:blast:-c 10 -q 1000 -b 32}"
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(static gslb geo lua-geo wasm-geo suffix-10k suffix-100k tcp)
TCP_MATRIX="${TCP_MATRIX:-dnsperf-tcp-c10q100:dnsperf:-m tcp -c 10 -T 1 -q 100}"

# The gslb inputs check the server's own port.
export DP_PORT="${DP_PORT:-25310}"
# shellcheck source=kit.sh
source "$ROOT/tests/perf/kit.sh"
mkdir -p "$RESULTS_DIR/logs"

run_dnspolicy() {  # scenario qfile probe want [extra serve flags...]
  run_build dnspolicy "$BIN" "$@"
  if [ -n "${BASELINE_BIN:-}" ]; then
    run_build baseline "$BASELINE_BIN" "$@"
  fi
}

run_build() {  # label binary scenario qfile probe want [extra serve flags...]
  local label="$1" bin="$2" scen="$3" qf="$4" probe="$5" want="$6"; shift 6
  port_free "$DP_PORT"
  log "starting $label $scen on 127.0.0.1:$DP_PORT"
  local t0; t0=$(date +%s.%N)
  ( pin "$SERVER_CPU" "$bin" serve --listen "127.0.0.1:$DP_PORT" --no-admin --workers 1 \
      --plugin-dir "$WORK/dnspolicy/$scen/plugins" "$@" ) >"$RESULTS_DIR/logs/$label-$scen.log" 2>&1 &
  local spid=$!
  local start_s; start_s=$(wait_ready "$DP_PORT" "$probe" "$spid" 300 "$t0") || die "$label did not come up"
  local got; got=$(dig +short +tries=1 +time=2 @127.0.0.1 -p "$DP_PORT" "$probe" A)
  [ "$got" = "$want" ] || { stop_pid "$spid"; die "sanity: $probe -> '$got', want $want"; }
  sleep 1
  log "$label $scen up in ${start_s}s, RSS $(rss_kb "$spid") kB"
  run_matrix "$label-$scen" pinned "$spid" "$DP_PORT" "$qf" "$(rss_kb "$spid")" "$start_s"
  stop_pid "$spid"
}

Q="$WORK/bench/peer/queries"
ROUNDS="${ROUNDS:-1}"
[ "$ROUNDS" -le 1 ] || export REPS=1
for round in $(seq 1 "$ROUNDS"); do
[ "$ROUNDS" -le 1 ] || log "round $round of $ROUNDS"
for s in "${SCENARIOS[@]}"; do
  case "$s" in
    static)
      run_dnspolicy static "$Q/www-a.txt" www.example.com 192.0.2.1
      if [ "${LIMIT:-1}" = 1 ]; then
        "$WORK/bench/limit/run.sh"
      fi
      peers=(static) ;;
    tcp)
      # The static policy and dnsdist's static config, queried over TCP.
      MATRIX="$TCP_MATRIX" run_dnspolicy static "$Q/www-a.txt" www.example.com 192.0.2.1
      if [ "${DNSDIST:-1}" = 1 ]; then
        MATRIX="$TCP_MATRIX" "$WORK/bench/peer/run.sh" static
      fi
      peers=() ;;
    gslb)
      run_dnspolicy gslb "$Q/www-a.txt" www.example.com 192.0.2.1 --config "$WORK/dnspolicy/gslb/dnspolicy.toml"
      peers=() ;;
    geo)
      run_dnspolicy geo "$Q/www-a.txt" www.example.com 192.0.2.10 --geoip "$WORK/dnspolicy/geo/regions.csv"
      peers=(geo-native lua-geo-ffi) ;;
    lua-geo)
      run_dnspolicy lua-geo "$Q/www-a.txt" www.example.com 192.0.2.10 --geoip "$WORK/dnspolicy/geo/regions.csv"
      peers=(lua-geo-ffi lua-geo) ;;
    wasm-geo)
      run_dnspolicy wasm-geo "$Q/www-a.txt" www.example.com 192.0.2.10 --geoip "$WORK/dnspolicy/geo/regions.csv"
      peers=(lua-geo-ffi lua-geo) ;;
    suffix-10k)
      run_dnspolicy suffix-10k "$Q/suffix-10k.txt" h1.s000010.example 198.18.0.10
      peers=(suffix-10k-ffi) ;;
    suffix-100k)
      run_dnspolicy suffix-100k "$Q/suffix-100k.txt" h1.s099999.example 198.19.134.159
      peers=(suffix-100k-ffi) ;;
    *) die "unknown scenario $s" ;;
  esac
  if [ "${DNSDIST:-1}" = 1 ] && [ ${#peers[@]} -gt 0 ]; then
    for p in "${peers[@]}"; do
      "$WORK/bench/peer/run.sh" "$p"
    done
  fi
done
done
python3 "$ROOT/tests/perf/compare.py" "$RESULTS_DIR/runs.csv" | tee "$RESULTS_DIR/compare.md"
