// The geo redirect in AssemblyScript: clients whose GeoIP region is CN-BJ
// get cdn-bj.example.com, everyone else cdn-global.example.com.
import { ABI_VERSION, DECIDED, PASS, answer, geo_region, utf8 } from "./dnspolicy";

// Made once at start-up: no allocation per query.
const BEIJING = utf8("cdn-bj.example.com");
const GLOBAL = utf8("cdn-global.example.com");
const CN_BJ = utf8("CN-BJ");
const region = new ArrayBuffer(64);

export function dnspolicy_abi_version(): i32 {
  return ABI_VERSION;
}

/** The host's two allocations (config, query buffer). */
export function alloc(len: i32): usize {
  if (len <= 0) return 0;
  return heap.alloc(<usize>len);
}

export function init(cfg: usize, len: i32): i32 {
  return 0;
}

function isBeijing(n: i32): bool {
  if (n != CN_BJ.byteLength) return false;
  const a = changetype<usize>(region);
  const b = changetype<usize>(CN_BJ);
  for (let i = 0; i < n; i++) {
    if (load<u8>(a + i) != load<u8>(b + i)) return false;
  }
  return true;
}

export function process(ctx: usize, len: i32): i32 {
  const n = geo_region(0, 0, changetype<usize>(region), region.byteLength);
  const target = isBeijing(n) ? BEIJING : GLOBAL;
  return answer(target, 300) == 0 ? DECIDED : PASS;
}

export function destroy(): void {}
