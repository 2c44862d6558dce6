#!/usr/bin/env bash
# Builds the Zig geo plugin: writes the module to $OUT (default
# ./geo_zig.wasm) with Zig 0.13 from PyPI's `ziglang` package. Set
# ZIGLANG_PATH to a directory `pip install --target` filled (scripts/test
# uses target/tools/ziglang); otherwise `python3 -m ziglang` must work.
#
#   OUT=/tmp/geo_zig.wasm bash examples/plugins/wasm/zig-geo/build.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$PWD/geo_zig.wasm}"
if [ -n "${ZIGLANG_PATH:-}" ]; then
  export PYTHONPATH="$ZIGLANG_PATH${PYTHONPATH:+:$PYTHONPATH}"
fi
# Zig writes its cache beside the source unless told otherwise.
CACHE="$(mktemp -d)"
trap 'rm -rf "$CACHE"' EXIT
python3 -m ziglang build-exe "$HERE/geo_redirect.zig" \
  -target wasm32-wasi -O ReleaseSmall -fno-entry -rdynamic --stack 65536 \
  --cache-dir "$CACHE" --global-cache-dir "$CACHE" -femit-bin="$OUT"
echo "wrote $OUT ($(wc -c <"$OUT") bytes)"
