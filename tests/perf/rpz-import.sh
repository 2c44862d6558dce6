#!/usr/bin/env bash
# A large RPZ feed, side by side with the reference: N triggers (default
# 1 000 000: 90 % exact NXDOMAIN names, 10 % wildcards) imported with
# `dnspolicy import rpz` and served by `dnspolicy serve`, and the same zone
# served by Unbound's RPZ, in one run. Reports medians of REPS runs: import
# time, `dnspolicy check` time, start-up until the first NXDOMAIN, RSS, and
# QPS under the kit's blast (c10 q1000, LOAD_SECS each) on a mix of blocked
# exact and wildcard names — with the dnspolicy / Unbound ratio. A few
# answers are checked with dig each run. Server pinned to SERVER_CPU, blast
# to GEN_CPU; loopback only; every server stopped by its PID.
#
#   tests/perf/rpz-import.sh            N=200000 REPS=3 tests/perf/rpz-import.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
N="${N:-1000000}"
REPS="${REPS:-3}"
WORK="${WORK:-/tmp/dnspolicy-rpz-perf}"
PORT="${PORT:-25320}"
export LOAD_SECS="${LOAD_SECS:-5}"
# shellcheck source=kit.sh
source "$ROOT/tests/perf/kit.sh"
port_free "$PORT"
command -v unbound >/dev/null || die "unbound is missing (Debian package unbound)"
python3 - "$N" "$WORK/feed.rpz" "$WORK/queries.txt" <<'PY'
import random, sys
n, out, qfile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(out, "w") as f:
    f.write("$ORIGIN rpz.feed.\n$TTL 60\n@ SOA localhost. h.localhost. 1 3600 600 86400 60\n  NS localhost.\n")
    for i in range(n):
        if i % 10 == 0:
            f.write(f"*.w{i}.example CNAME .\n")
        else:
            f.write(f"b{i}.example CNAME .\n")
rnd = random.Random(7)
with open(qfile, "w") as f:
    for _ in range(100000):
        i = rnd.randrange(n)
        f.write(f"x.w{i - i % 10}.example A\n" if i % 10 == 0 else f"b{i}.example A\n")
PY

nxdomain() { dig +tries=1 +time=1 @127.0.0.1 -p "$PORT" "$1" A 2>/dev/null | grep -q NXDOMAIN; }
until_up() {  # pid: waits for the first NXDOMAIN, prints nothing
  until nxdomain b1.example; do
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.05
  done
}
check_answers() {
  local last=$((N - 1)); [ $((last % 10)) -eq 0 ] && last=$((N - 2))
  nxdomain "b$last.example" || die "$1: b$last.example not blocked"
  nxdomain "x.w0.example" || die "$1: x.w0.example not blocked"
  # A wildcard is not its own base name.
  if nxdomain "w0.example"; then die "$1: w0.example must not be blocked"; fi
}
load() {  # prints QPS
  pin "$GEN_CPU" "$WORK/bench/limit/blast" -s 127.0.0.1 -p "$PORT" -d "$WORK/queries.txt" \
    -l "$LOAD_SECS" -t 2000 -c 10 -q 1000 -b 32 | awk '/Queries per second:/ {printf "%d", $4}'
}

measure() {  # label log cmd...: sets S (start-up s), R (RSS kB), Q (QPS)
  local label=$1 log=$2 t0 t1 pid; shift 2
  t0=$(date +%s.%N)
  ( pin "$SERVER_CPU" "$@" ) >"$log" 2>&1 &
  pid=$!
  until_up "$pid" || { cat "$log"; die "$label did not start"; }
  t1=$(date +%s.%N)
  S=$(echo "$t1 - $t0" | bc)
  R=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  check_answers "$label"
  Q=$(load)
  stop_pid "$pid"
}

cat >"$WORK/unbound.conf" <<EOF
server:
  interface: 127.0.0.1
  port: $PORT
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$WORK"
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  module-config: "respip iterator"
rpz:
  name: "rpz.feed."
  zonefile: "$WORK/feed.rpz"
EOF

imports=() checks=() starts=() rss=() qps=() ustarts=() urss=() uqps=()
for r in $(seq 1 "$REPS"); do
  mkdir -p "$WORK/plugins"
  t0=$(date +%s.%N)
  "$BIN" import rpz "$WORK/feed.rpz" -o "$WORK/plugins/feed.dsl" 2>/dev/null
  t1=$(date +%s.%N)
  imports+=("$(echo "$t1 - $t0" | bc)")
  t0=$(date +%s.%N)
  "$BIN" check "$WORK/plugins/feed.dsl" >/dev/null
  t1=$(date +%s.%N)
  checks+=("$(echo "$t1 - $t0" | bc)")

  measure dnspolicy "$WORK/serve.log" "$BIN" serve --listen "127.0.0.1:$PORT" --no-admin \
    --workers 1 --plugin-dir "$WORK/plugins"
  starts+=("$S") rss+=("$R") qps+=("$Q")
  measure unbound "$WORK/unbound.log" unbound -d -c "$WORK/unbound.conf"
  ustarts+=("$S") urss+=("$R") uqps+=("$Q")
  echo "run $r: dnspolicy ${qps[-1]} QPS, unbound ${uqps[-1]} QPS"
done
m() { printf '%s\n' "$@" | median; }
echo "triggers: $N; queries: blocked exact and wildcard names; medians of $REPS"
echo "import (s): $(m "${imports[@]}")  [${imports[*]}]"
echo "check (s): $(m "${checks[@]}")  [${checks[*]}]"
echo "start-up to first answer (s): dnspolicy $(m "${starts[@]}"), unbound $(m "${ustarts[@]}")"
echo "RSS (kB): dnspolicy $(m "${rss[@]}"), unbound $(m "${urss[@]}")"
dq=$(m "${qps[@]}") uq=$(m "${uqps[@]}")
echo "QPS: dnspolicy $dq, unbound $uq, ratio $(echo "scale=2; $dq / $uq" | bc)"
echo "policy: $(wc -c <"$WORK/plugins/feed.dsl") bytes, $(grep -c '^rule' "$WORK/plugins/feed.dsl") rules"
