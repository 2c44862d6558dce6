//! The geo redirect in Zig: clients whose GeoIP region is CN-BJ get
//! cdn-bj.example.com, everyone else cdn-global.example.com.
//!
//! Build (Zig 0.13, e.g. `pip install ziglang==0.13.0`):
//!   python3 -m ziglang build-exe examples/plugins/wasm/zig-geo/geo_redirect.zig \
//!     -target wasm32-wasi -O ReleaseSmall -fno-entry -rdynamic \
//!     --stack 65536 -femit-bin=geo_zig.wasm
//! (`--stack`: Zig's default 16 MiB stack alone would fill the default
//! 16 MiB memory limit of a plugin instance.)
const std = @import("std");

// The host imports used here (grammar/WASM-ABI.md, module "dnspolicy").
extern "dnspolicy" fn geo_region(ip: ?[*]const u8, ip_len: i32, buf: [*]u8, cap: i32) i32;
extern "dnspolicy" fn set_answer(target: [*]const u8, len: i32, rtype: i32, ttl: i32) i32;

const ABI_VERSION: i32 = 1;
const TYPE_A: i32 = 1;
const PASS: i32 = 0;
const DECIDED: i32 = 1;

const beijing = "cdn-bj.example.com";
const global = "cdn-global.example.com";

// The host allocates twice per instance (config, query buffer): a bump
// allocator over a static buffer is enough.
var heap: [8192]u8 align(8) = undefined;
var top: usize = 0;

export fn dnspolicy_abi_version() i32 {
    return ABI_VERSION;
}

export fn alloc(len: i32) i32 {
    if (len <= 0) return 0;
    const need = (@as(usize, @intCast(len)) + 7) & ~@as(usize, 7);
    if (need > heap.len - top) return 0;
    const p = @intFromPtr(&heap[top]);
    top += need;
    return @intCast(p);
}

export fn init(cfg: i32, len: i32) i32 {
    _ = cfg;
    _ = len;
    return 0;
}

export fn process(ctx: i32, len: i32) i32 {
    _ = ctx;
    _ = len;
    var region: [64]u8 = undefined;
    const n = geo_region(null, 0, &region, region.len);
    const target = if (n == 5 and std.mem.eql(u8, region[0..5], "CN-BJ")) beijing else global;
    if (set_answer(target.ptr, @intCast(target.len), TYPE_A, 300) != 0) return PASS;
    return DECIDED;
}

export fn destroy() void {}
