#!/usr/bin/env bash
# A large RPZ feed: N triggers (default 1 000 000: 90 % exact NXDOMAIN
# names, 10 % wildcards) imported with `dnspolicy import rpz`, then served:
# import time, serve start-up until the first answer, RSS, and a few
# answers checked with dig. Medians of REPS runs. Loopback only.
#
#   tests/perf/rpz-import.sh            N=200000 REPS=3 tests/perf/rpz-import.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
N="${N:-1000000}"
REPS="${REPS:-3}"
WORK="${WORK:-/tmp/dnspolicy-rpz-perf}"
PORT="${PORT:-25320}"
mkdir -p "$WORK"
(cd "$ROOT" && cargo build --release -q -p dnspolicy-cli)
BIN="$ROOT/target/release/dnspolicy"
python3 - "$N" "$WORK/feed.rpz" <<'PY'
import sys
n, out = int(sys.argv[1]), sys.argv[2]
with open(out, "w") as f:
    f.write("$ORIGIN rpz.feed.\n$TTL 60\n@ SOA localhost. h.localhost. 1 3600 600 86400 60\n  NS localhost.\n")
    for i in range(n):
        if i % 10 == 0:
            f.write(f"*.w{i}.example CNAME .\n")
        else:
            f.write(f"b{i}.example CNAME .\n")
PY
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
imports=(); starts=(); rss=()
for r in $(seq 1 "$REPS"); do
  t0=$(date +%s.%N)
  mkdir -p "$WORK/plugins"
  "$BIN" import rpz "$WORK/feed.rpz" -o "$WORK/plugins/feed.dsl" 2>/dev/null
  t1=$(date +%s.%N)
  imports+=("$(echo "$t1 - $t0" | bc)")
  t0=$(date +%s.%N)
  "$BIN" serve --listen "127.0.0.1:$PORT" --no-admin --workers 1 --plugin-dir "$WORK/plugins" >"$WORK/serve.log" 2>&1 &
  spid=$!
  until dig +short +tries=1 +time=1 @127.0.0.1 -p "$PORT" b1.example A >/dev/null 2>&1 && \
        dig +tries=1 +time=1 @127.0.0.1 -p "$PORT" b1.example A | grep -q NXDOMAIN; do
    kill -0 "$spid" 2>/dev/null || { cat "$WORK/serve.log"; exit 1; }
    sleep 0.1
  done
  t1=$(date +%s.%N)
  starts+=("$(echo "$t1 - $t0" | bc)")
  rss+=("$(awk '/VmRSS/ {print $2}' /proc/$spid/status)")
  last=$((N - 1)); [ $((last % 10)) -eq 0 ] && last=$((N - 2))
  dig +tries=1 +time=1 @127.0.0.1 -p "$PORT" "b$last.example" A | grep -q NXDOMAIN
  dig +tries=1 +time=1 @127.0.0.1 -p "$PORT" "x.w0.example" A | grep -q NXDOMAIN
  # A wildcard is not its own base name.
  if dig +tries=1 +time=1 @127.0.0.1 -p "$PORT" "w0.example" A | grep -q NXDOMAIN; then
    echo "w0.example must not be blocked"; kill "$spid"; exit 1
  fi
  kill "$spid"; wait "$spid" 2>/dev/null || true
done
echo "triggers: $N"
echo "import (s), median of $REPS: $(printf '%s\n' "${imports[@]}" | median)  [${imports[*]}]"
echo "serve start-up to first answer (s), median: $(printf '%s\n' "${starts[@]}" | median)  [${starts[*]}]"
echo "serve RSS (kB), median: $(printf '%s\n' "${rss[@]}" | median)"
echo "policy: $(wc -c <"$WORK/plugins/feed.dsl") bytes, $(grep -c '^rule' "$WORK/plugins/feed.dsl") rules"
