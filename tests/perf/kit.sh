# Sourced by the perf scripts (needs ROOT and WORK): copies the peer kit in
# ../shared/bench to $WORK (it is read-only in CI), loads its library,
# installs what it needs and makes its data (BUILD_TOOLS=0 skips building
# its C tools), builds the release binary ($BIN; DNSPOLICY_BIN=path runs
# that binary instead, unbuilt, to compare two builds) and the dnspolicy inputs
# under $WORK/dnspolicy, and defines `median` (of numbers on stdin).
# Settings the kit's library reads (LOAD_SECS, REPS, ...) are exported
# before sourcing.
KIT="${KIT:-$ROOT/../shared/bench}"
rm -rf "$WORK"
mkdir -p "$WORK"
cp -r "$KIT" "$WORK/bench"
chmod -R u+w "$WORK/bench"
export RESULTS_DIR="$WORK/results"
# shellcheck source=/dev/null
source "$WORK/bench/lib/bench.sh"
ensure_deps
[ "${BUILD_TOOLS:-1}" = 0 ] || build_tools
gen_data
if [ -n "${DNSPOLICY_BIN:-}" ]; then
  BIN="$DNSPOLICY_BIN"
else
  (cd "$ROOT" && cargo build --release -q -p dnspolicy-cli)
  BIN="$ROOT/target/release/dnspolicy"
fi
python3 "$ROOT/tests/perf/gen_inputs.py" "$WORK/bench/peer/data" "$WORK/dnspolicy"
median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
