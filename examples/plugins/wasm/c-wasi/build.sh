#!/usr/bin/env bash
# Builds the wasi-libc C geo plugin: writes the module to $OUT (default
# ./geo_c_wasi.wasm). Debian: clang, lld, wasi-libc, libclang-rt-14-dev-wasm32.
#
#   OUT=/tmp/geo_c_wasi.wasm bash examples/plugins/wasm/c-wasi/build.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$PWD/geo_c_wasi.wasm}"
clang --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
  -I "$HERE/.." -o "$OUT" "$HERE/geo_redirect.c"
echo "wrote $OUT ($(wc -c <"$OUT") bytes)"
