#!/usr/bin/env bash
# The HTTP strategy router of `dnspolicy serve` side by side with nginx
# doing the same routing (examples/http/routes.dsl; nginx's copy is
# http/router.conf), in one run: requests/s, p99 latency and errors under
# wrk, the router's CPU time per request (from /proc), medians of REPS
# runs and the ratio dnspolicy / nginx.
#
#   priority  condition               pool         backend
#   1         X-Canary: true          api-canary   127.0.0.1:18081
#   2         X-User-Tier: premium    api-premium  127.0.0.1:18082
#   3         ?region=cn-sh           api-sh       127.0.0.1:18083
#   default                           api          127.0.0.1:18080
#
# One nginx (http/backends.conf, 1 worker) serves all four pools with a
# small body naming the pool. The router under test listens on
# 127.0.0.1:18090 (nginx, 1 worker, http/router.conf) or 127.0.0.1:18095
# (dnspolicy, --config examples/http/dnspolicy.toml), pinned to CPU 0;
# wrk (1 thread, http/mix.lua: the four request kinds in turn) and the
# backends share CPU 1. Before each load, curl checks that every request
# kind reaches the right pool through the router: a wrong router fails the
# run. Each round runs both routers, alternating which goes first; each
# router is started for its run and stopped after it, so only the one
# measured is up on CPU 0. Loopback only; every process started is stopped
# by its PID (trap on EXIT), the temp dir removed.
#
#   cargo build --release && tests/perf/http.sh
#
# Env: BIN (target/release/dnspolicy), REPS (3), DURATION (5, seconds of
# each measured load), CONNS (32, wrk connections), WARMUP (1, seconds of
# unmeasured load before each run; 0 skips), DNS_PORT (18096) and
# ADMIN_PORT (18097) for dnspolicy's DNS listener and admin endpoint,
# DP_CONFIG (examples/http/dnspolicy.toml), SERVE_FLAGS (extra `serve`
# flags, e.g. "--workers 1"). Exits non-zero if a routing check fails, a
# server does not come up or dies, or any run has errors (non-2xx/3xx
# responses or socket errors).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/tests/perf/http"
cd "$ROOT"   # the config's paths (routes.dsl) are relative to the repository
BIN="${BIN:-target/release/dnspolicy}"
REPS="${REPS:-3}" DURATION="${DURATION:-5}" CONNS="${CONNS:-32}" WARMUP="${WARMUP:-1}"
DNS_PORT="${DNS_PORT:-18096}" ADMIN_PORT="${ADMIN_PORT:-18097}"
DP_CONFIG="${DP_CONFIG:-examples/http/dnspolicy.toml}"
read -ra SERVE_EXTRA <<<"${SERVE_FLAGS:-}"
SERVER_CPU=0 GEN_CPU=1
NGINX_PORT=18090 DP_HTTP_PORT=18095
BACKEND_PORTS=(18080 18081 18082 18083)

die() { echo "http.sh: $*" >&2; exit 1; }
for t in nginx wrk curl taskset ss pgrep getconf; do
  command -v "$t" >/dev/null || die "needs $t (apt-get install -y nginx-light wrk curl util-linux iproute2 procps)"
done
[ -x "$BIN" ] || die "no $BIN: cargo build --release first (or set BIN)"
[ -f "$DP_CONFIG" ] || die "no $DP_CONFIG"
for p in "${BACKEND_PORTS[@]}" "$NGINX_PORT" "$DP_HTTP_PORT" "$DNS_PORT" "$ADMIN_PORT"; do
  [ -z "$(ss -Htlnu "sport = :$p")" ] || die "port $p is in use on this machine"
done

TMP="$(mktemp -d /tmp/dnspolicy-http.XXXXXX)"
chmod 755 "$TMP"   # nginx's workers (nobody, when run as root) reach their temp dirs
BACKEND_PID="" ROUTER_PID="" WRK_PID=""
stop_pid() {  # TERM, up to 5 s, then KILL; reaps it
  local pid="$1" _
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  [ -z "$WRK_PID" ] || stop_pid "$WRK_PID"
  [ -z "$ROUTER_PID" ] || stop_pid "$ROUTER_PID"
  [ -z "$BACKEND_PID" ] || stop_pid "$BACKEND_PID"
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts nginx with CONF under the prefix $TMP/NAME on CPU; sets STARTED.
# (Not in $(...): the process must be this shell's child to be reaped.)
start_nginx() {  # name conf cpu
  local dir="$TMP/$1"
  mkdir -p "$dir/tmp"
  cp "$2" "$dir/nginx.conf"
  taskset -c "$3" nginx -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" \
      -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
  STARTED=$!
}

start_dnspolicy() {  # sets STARTED
  mkdir -p "$TMP/dnspolicy"
  taskset -c "$SERVER_CPU" "$BIN" serve --config "$DP_CONFIG" \
      --http-listen "127.0.0.1:$DP_HTTP_PORT" --listen "127.0.0.1:$DNS_PORT" \
      --admin "127.0.0.1:$ADMIN_PORT" "${SERVE_EXTRA[@]}" \
      >"$TMP/dnspolicy/stdout.log" 2>&1 &
  STARTED=$!
}

logs_of() {  # the tail of a server's logs, for a failure message
  local f
  for f in "$TMP/$1"/*.log; do
    [ -s "$f" ] || continue
    echo "--- $f" >&2
    tail -n 20 "$f" >&2
  done
}

wait_http() {  # url pid name: polls until 200, at most 10 s
  local code="" _
  for _ in $(seq 100); do
    kill -0 "$2" 2>/dev/null || { logs_of "$3"; die "$3 exited while starting"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  logs_of "$3"
  die "$3 not ready after 10 s ($1 answered '${code:-nothing}')"
}

# The routing checks: "want|path|header|header...", want a pool's body (and
# 200) or a status. The first four are wrk's mix (http/mix.lua); the rest
# check the order of priority and routes.dsl's other two rules (/internal/
# 403, /v1/ 308), which router.conf copies too. Change routes.dsl, change
# router.conf and these.
CHECKS=(
  "api-canary|/|X-Canary: true"
  "api-premium|/|X-User-Tier: premium"
  "api-sh|/?region=cn-sh|"
  "api|/|"
  "api-canary|/?region=cn-sh|X-Canary: true|X-User-Tier: premium"
  "api-premium|/?region=cn-sh|X-User-Tier: premium"
  "api|/?region=cn-bj|X-Canary: false|X-User-Tier: free"
  "403|/internal/x|"
  "308|/v1/x|"
)
check_routes() {  # base-url name
  local line want path got body h bad=0
  local -a parts args
  for line in "${CHECKS[@]}"; do
    IFS='|' read -ra parts <<<"$line"
    want="${parts[0]}" path="${parts[1]}" args=()
    for h in "${parts[@]:2}"; do
      [ -z "$h" ] || args+=(-H "$h")
    done
    if [[ "$want" =~ ^[0-9]+$ ]]; then
      got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "${args[@]}" "$1$path" || true)
    else
      got=$(curl -s --max-time 2 -w '|%{http_code}' "${args[@]}" "$1$path" || true)
      [ "$got" = "$want"$'\n|200' ] && got="$want"
    fi
    if [ "$got" != "$want" ]; then
      if [[ "$got" == *'|'* ]]; then
        body="${got%|*}"
        got="'${body%$'\n'}' (HTTP ${got##*|})"
      fi
      echo "ROUTING CHECK FAILED: $2: GET $path ${parts[*]:2} -> ${got:-nothing}, want $want" >&2
      bad=1
    fi
  done
  [ "$bad" = 0 ] || { logs_of "$2"; die "$2 routes wrongly: not benchmarking it"; }
}

us_to_ms() { awk -v v="$1" 'BEGIN {
  if (match(v, /^[0-9.]+/)) { n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1) } else exit 1
  f = (u == "us") ? 0.001 : (u == "ms") ? 1 : (u == "s") ? 1000 : (u == "m") ? 60000 : (u == "h") ? 3600000 : -1
  if (f < 0) exit 1
  printf "%.3f", n * f }'; }

# wrk in the background and waited for, so that a signal stops the script
# (and wrk, in cleanup) at once rather than at the end of the load.
run_wrk() {  # output-file wrk-args...
  local out="$1"; shift
  taskset -c "$GEN_CPU" wrk -t1 -c"$CONNS" -s "$HERE/mix.lua" "$@" >"$out" &
  WRK_PID=$!
  wait "$WRK_PID" || die "wrk failed ($*)"
  WRK_PID=""
}

# One measured run: start the router, check it, warm up, load, stop it,
# parse; appends "ROUND NAME RPS P99_MS NON2XX SOCKET_ERRORS" to $RUNS and
# prints the row.
RUNS="$TMP/runs.txt"
: >"$RUNS"
one_run() {  # name round
  local name="$1" url out
  if [ "$name" = nginx ]; then
    start_nginx nginx "$HERE/router.conf" "$SERVER_CPU"
    url="http://127.0.0.1:$NGINX_PORT"
  else
    start_dnspolicy
    url="http://127.0.0.1:$DP_HTTP_PORT"
  fi
  ROUTER_PID=$STARTED
  wait_http "$url/" "$ROUTER_PID" "$name"
  check_routes "$url" "$name"
  if [ "$WARMUP" != 0 ]; then
    run_wrk /dev/null -d"${WARMUP}s" "$url/"
  fi
  out="$TMP/wrk-$name-$2.txt"
  local t0 t1
  t0=$(cpu_ticks "$ROUTER_PID")
  run_wrk "$out" -d"${DURATION}s" --latency "$url/"
  t1=$(cpu_ticks "$ROUTER_PID")
  kill -0 "$ROUTER_PID" 2>/dev/null || { cat "$out" >&2; logs_of "$name"; die "$name died under load"; }
  stop_pid "$ROUTER_PID"
  ROUTER_PID=""
  local rps p99 non2xx sock reqs cpu
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  reqs=$(awk '/ requests in / {print $1}' "$out")
  cpu=$(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" -v n="${reqs:-0}" 'BEGIN {print (n > 0 ? t * 1e6 / hz / n : 0)}')
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
  sock=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
  if [ -z "$rps" ] || [ -z "$p99" ]; then
    cat "$out" >&2
    die "could not parse wrk's output for $name"
  fi
  p99=$(us_to_ms "$p99") || { cat "$out" >&2; die "unknown latency unit in wrk's 99% line"; }
  echo "$2 $name $rps $p99 ${non2xx:-0} ${sock:-0} $cpu" >>"$RUNS"
  row "$2" "$name" "$rps" "$p99" "${non2xx:-0}" "${sock:-0}" "$cpu"
}
row() { printf '%-5s  %-9s  %12.0f  %9.3f  %8d  %13d  %11.1f\n' "$@"; }

# CPU time (user + system clock ticks) of a router and its children (nginx's
# worker) so far: a load's share divided by its requests is the router's
# CPU per request, steadier than requests/s on a noisy machine.
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {  # pid
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

start_nginx backends "$HERE/backends.conf" "$GEN_CPU"
BACKEND_PID=$STARTED
for p in "${BACKEND_PORTS[@]}"; do
  wait_http "http://127.0.0.1:$p/" "$BACKEND_PID" backends
done

echo "HTTP routing: dnspolicy ($BIN) vs $(nginx -v 2>&1 | sed 's/.*: //'), $REPS rounds"
echo "router on CPU $SERVER_CPU; wrk (-t1 -c$CONNS -d${DURATION}s, the four request kinds in turn)" \
     "and the backend nginx share CPU $GEN_CPU"
echo
printf '%-5s  %-9s  %12s  %9s  %8s  %13s  %11s\n' round router 'requests/s' 'p99 ms' 'non-2xx' 'socket errors' 'cpu us/req'
for r in $(seq "$REPS"); do
  if [ $((r % 2)) = 1 ]; then order=(nginx dnspolicy); else order=(dnspolicy nginx); fi
  for s in "${order[@]}"; do
    one_run "$s" "$r"
  done
done

col() { awk -v s="$1" -v c="$2" '$2 == s {print $c}' "$RUNS"; }
n_rps=$(col nginx 3 | median) n_p99=$(col nginx 4 | median)
d_rps=$(col dnspolicy 3 | median) d_p99=$(col dnspolicy 4 | median)
n_cpu=$(col nginx 7 | median) d_cpu=$(col dnspolicy 7 | median)
total() { awk '{t += $1} END {print t + 0}'; }
n_err=$(col nginx 5 | total) n_se=$(col nginx 6 | total)
d_err=$(col dnspolicy 5 | total) d_se=$(col dnspolicy 6 | total)
echo
printf 'medians of %d: nginx %.0f req/s, p99 %.3f ms; dnspolicy %.0f req/s, p99 %.3f ms\n' \
  "$REPS" "$n_rps" "$n_p99" "$d_rps" "$d_p99"
awk -v dr="$d_rps" -v nr="$n_rps" -v dp="$d_p99" -v np="$n_p99" 'BEGIN {
  printf "ratio dnspolicy / nginx: requests/s %.2f (higher is better), p99 %.2f (lower is better)\n", dr / nr, (np > 0 ? dp / np : 0) }'
awk -v d="$d_cpu" -v n="$n_cpu" 'BEGIN {
  printf "router CPU per request (medians): nginx %.1f us, dnspolicy %.1f us, ratio %.2f (lower is better)\n", n, d, (n > 0 ? d / n : 0) }'
echo "errors over all runs: nginx $n_err non-2xx/3xx, $n_se socket; dnspolicy $d_err non-2xx/3xx, $d_se socket"
[ $((n_err + n_se + d_err + d_se)) = 0 ] || die "some runs had errors"
