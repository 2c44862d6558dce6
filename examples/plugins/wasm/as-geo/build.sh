#!/usr/bin/env bash
# Builds the AssemblyScript geo plugin: writes the module to $OUT (default
# ./geo_as.wasm). Installs the compiler from package-lock.json first
# (npm ci) when node_modules is missing.
#
#   OUT=/tmp/geo_as.wasm bash examples/plugins/wasm/as-geo/build.sh
set -euo pipefail
cd "$(dirname "$0")"
OUT="${OUT:-$PWD/geo_as.wasm}"
[ -x node_modules/.bin/asc ] || npm ci --no-audit --no-fund --loglevel=error
node_modules/.bin/asc assembly/index.ts --config asconfig.json -o "$OUT"
echo "wrote $OUT ($(wc -c <"$OUT") bytes)"
