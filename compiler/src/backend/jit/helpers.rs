//! Rust functions compiled code calls for what needs a value's text
//! (regex, `starts_with`, `len`, `hash` of a non-scalar, set membership,
//! prefix containment, `lower`, concatenation), and the fixed import table
//! that names them. Only `lower`, concatenation and a run-time value
//! verdict allocate: they make new values.
#![allow(unsafe_code)]

use super::abi::{env, V};
use super::*;
use crate::ir::hash::hash_text;

extern "C" fn h_starts_with(e: *mut Env, a: i64, b: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    i64::from(match (e.get(a), e.get(b)) {
        (Some(V::Name(a)), Some(V::Name(b))) => name_has_prefix(a, b),
        (Some(V::Str(a)), Some(V::Str(b))) => a.starts_with(b),
        _ => false,
    })
}

extern "C" fn h_ends_with(e: *mut Env, a: i64, b: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    i64::from(match (e.get(a), e.get(b)) {
        (Some(V::Name(a)), Some(V::Name(b))) => name_has_suffix(a, b),
        (Some(V::Str(a)), Some(V::Str(b))) => a.ends_with(b),
        _ => false,
    })
}

extern "C" fn h_matches(e: *mut Env, re: i64, a: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    let Some(re) = e.jit().policy.regexes.get(re as usize) else {
        return 0;
    };
    i64::from(match e.get(a) {
        Some(V::Str(s) | V::Name(s)) => re.is_match(s),
        _ => false,
    })
}

extern "C" fn h_len(e: *mut Env, a: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    match e.get(a) {
        Some(V::Str(s) | V::Name(s)) => s.chars().count() as i64,
        _ => 0,
    }
}

extern "C" fn h_hash(e: *mut Env, code: i64, v: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    match (code, e.get(v)) {
        (2, Some(V::Str(s))) => hash_text(false, s),
        (3, Some(V::Name(s))) => hash_text(true, s),
        _ => e.decode(code, v).map_or(0, |v| hash_value(&v)),
    }
}

extern "C" fn h_in_set(e: *mut Env, set: i64, code: i64, v: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    let jit = e.jit();
    let Some(s) = jit.policy.sets.get(set as usize) else {
        return 0;
    };
    i64::from(match (s, e.get(v)) {
        (ConstSet::Names(ns), Some(V::Name(n))) if code == 3 => ns.contains(n),
        (ConstSet::Cidrs(cs), Some(V::Ip(ip))) if code == 4 => cs.iter().any(|c| c.contains(&ip)),
        (ConstSet::Cidrs(cs), Some(V::Cidr(inner))) if code == 5 => {
            cs.iter().any(|c| c.covers(&inner))
        }
        // Members that are not scalars are literals, interned at compile
        // time: a value is a member exactly when its id is one of theirs.
        (ConstSet::Values(_), _) if !matches!(code, 0 | 1 | 6) => jit
            .set_ids
            .get(set as usize)
            .is_some_and(|ids| ids.contains(&v)),
        (ConstSet::Values(vs), _) => e.decode(code, v).is_some_and(|v| vs.contains(&v)),
        // By slot: the members are read now, so a swapped file counts
        // without recompiling.
        (ConstSet::Live(l), Some(V::Name(n))) if code == 3 => l.contains_name(n),
        (ConstSet::Live(l), Some(V::Ip(ip))) if code == 4 => l.contains_ip(&ip),
        (ConstSet::Live(l), Some(V::Cidr(c))) if code == 5 => l.covers(&c),
        _ => false,
    })
}

extern "C" fn h_in_cidr(e: *mut Env, needle: i64, cidr: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    i64::from(match (e.get(needle), e.get(cidr)) {
        (Some(V::Ip(ip)), Some(V::Cidr(c))) => c.contains(&ip),
        (Some(V::Cidr(inner)), Some(V::Cidr(c))) => c.covers(&inner),
        _ => false,
    })
}

extern "C" fn h_lower(e: *mut Env, a: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    match e.get(a) {
        Some(V::Str(s)) => {
            let lower = s.to_lowercase();
            e.intern_text(&lower, false)
        }
        _ => a,
    }
}

extern "C" fn h_concat(e: *mut Env, ac: i64, a: i64, bc: i64, b: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    let (Some(a), Some(b)) = (e.decode(ac, a), e.decode(bc, b)) else {
        return -1;
    };
    e.intern_text(&format!("{a}{b}"), false)
}

extern "C" fn h_set_value(e: *mut Env, code: i64, v: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    e.verdict = e.decode(code, v).map(Verdict::Value);
    -2
}

/// A pool verdict of the table with its sticky key, computed per query.
extern "C" fn h_set_key(e: *mut Env, id: i64, key: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    // SAFETY: `jit` points at the policy evaluating (set before the call).
    let table = unsafe { &(*e.jit).verdicts };
    e.verdict = match usize::try_from(id).ok().and_then(|i| table.get(i)) {
        Some(Verdict::Pool {
            pool,
            pick,
            count,
            ttl,
            ..
        }) => Some(Verdict::Pool {
            pool: pool.clone(),
            pick: *pick,
            count: *count,
            ttl: *ttl,
            key: Some(key),
        }),
        _ => None,
    };
    -2
}

/// The fixed import table: name, address, number of i64 parameters.
pub(super) fn helpers() -> [(&'static str, *const u8, usize); 11] {
    [
        ("h_starts_with", h_starts_with as *const u8, 3),
        ("h_ends_with", h_ends_with as *const u8, 3),
        ("h_matches", h_matches as *const u8, 3),
        ("h_len", h_len as *const u8, 2),
        ("h_hash", h_hash as *const u8, 3),
        ("h_in_set", h_in_set as *const u8, 4),
        ("h_in_cidr", h_in_cidr as *const u8, 3),
        ("h_lower", h_lower as *const u8, 2),
        ("h_concat", h_concat as *const u8, 5),
        ("h_set_value", h_set_value as *const u8, 3),
        ("h_set_key", h_set_key as *const u8, 3),
    ]
}

pub(super) const H_STARTS: usize = 0;
pub(super) const H_ENDS: usize = 1;
pub(super) const H_MATCHES: usize = 2;
pub(super) const H_LEN: usize = 3;
pub(super) const H_HASH: usize = 4;
pub(super) const H_IN_SET: usize = 5;
pub(super) const H_IN_CIDR: usize = 6;
pub(super) const H_LOWER: usize = 7;
pub(super) const H_CONCAT: usize = 8;
pub(super) const H_SET_VALUE: usize = 9;
pub(super) const H_SET_KEY: usize = 10;
