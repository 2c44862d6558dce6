#!/usr/bin/env bash
# Builds the Rust geo plugin: writes the module to $OUT (default
# ./rust_geo.wasm).
#
#   OUT=/tmp/rust_geo.wasm bash examples/plugins/wasm/rust-geo/build.sh
#
# Uses $RUSTC (default: Debian's /usr/bin/rustc 1.63 with
# libstd-rust-dev-wasm32) and $TARGET (default wasm32-wasi; newer
# toolchains call it wasm32-wasip1), without cargo: the SDK is built as an
# rlib, then the plugin as a cdylib against it. With a rustup toolchain
# that has the target, `cargo build --release --target wasm32-wasip1` in
# this folder does the same.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
SDK="$HERE/../../../../sdk/rust/dnspolicy-plugin"
RUSTC="${RUSTC:-/usr/bin/rustc}"
TARGET="${TARGET:-wasm32-wasi}"
OUT="${OUT:-$PWD/rust_geo.wasm}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
FLAGS=(--edition 2021 --target "$TARGET" -C opt-level=s -C panic=abort)
LINK=()
# A no_std module on wasm32-wasi takes memset/memcmp from wasi-libc (the
# toolchain's self-contained libc.a); wasm32-unknown-unknown has its own.
case "$TARGET" in wasm32-wasi*) LINK=(-C link-arg=-lc) ;; esac
"$RUSTC" "${FLAGS[@]}" --crate-type rlib --crate-name dnspolicy_plugin \
  -o "$TMP/libdnspolicy_plugin.rlib" "$SDK/src/lib.rs"
"$RUSTC" "${FLAGS[@]}" --crate-type cdylib --crate-name rust_geo -C lto \
  -C link-arg=--strip-debug \
  --extern dnspolicy_plugin="$TMP/libdnspolicy_plugin.rlib" "${LINK[@]}" \
  -o "$OUT" "$HERE/src/lib.rs"
echo "wrote $OUT ($(wc -c <"$OUT") bytes)"
