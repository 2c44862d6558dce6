// A tiny AssemblyScript binding of the dnspolicy plugin ABI
// (grammar/WASM-ABI.md): the host imports of module "dnspolicy" this
// example uses, the constants, and an `abort` that traps instead of
// importing `env.abort` (which the host does not offer).

export const ABI_VERSION: i32 = 1;
export const PASS: i32 = 0;
export const DECIDED: i32 = 1;
export const TYPE_A: i32 = 1;

@external("dnspolicy", "geo_region")
export declare function geo_region(ip: usize, ipLen: i32, buf: usize, cap: i32): i32;

@external("dnspolicy", "set_answer")
export declare function set_answer(target: usize, len: i32, rtype: i32, ttl: i32): i32;

@external("dnspolicy", "log")
export declare function log(level: i32, msg: usize, len: i32): void;

/** UTF-8 bytes of `s`, made once (the stub runtime never frees). */
export function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

/** Sets the answer to the UTF-8 name in `target`. */
export function answer(target: ArrayBuffer, ttl: i32): i32 {
  return set_answer(changetype<usize>(target), target.byteLength, TYPE_A, ttl);
}

// Replaces AssemblyScript's abort (asconfig.json "use"): a trap, which the
// host counts and contains.
export function abort(msg: usize, file: usize, line: u32, col: u32): void {
  unreachable();
}
