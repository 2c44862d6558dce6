#!/usr/bin/env bash
# Builds the C++ geo plugin (libc++, no exceptions): writes the module to
# $OUT (default ./geo_cpp.wasm). Debian: clang, lld, wasi-libc,
# libclang-rt-14-dev-wasm32, libc++-14-dev-wasm32, libc++abi-14-dev-wasm32.
#
#   OUT=/tmp/geo_cpp.wasm bash examples/plugins/wasm/cpp-wasi/build.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${OUT:-$PWD/geo_cpp.wasm}"
clang++ --target=wasm32-wasi --sysroot=/usr -std=c++17 -O2 -fno-exceptions \
  -mexec-model=reactor -I "$HERE/.." -o "$OUT" "$HERE/geo_redirect.cpp"
echo "wrote $OUT ($(wc -c <"$OUT") bytes)"
