//! Rust functions compiled code calls for what needs a value's text
//! (regex, `starts_with`, `len`, `hash` of a non-scalar, set membership,
//! prefix containment, `lower`, concatenation), and the fixed import table
//! that names them.
#![allow(unsafe_code)]

use super::abi::env;
use super::*;

extern "C" fn h_starts_with(e: *mut Env, a: i64, b: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    i64::from(match (e.value(a), e.value(b)) {
        (Some(Value::Name(a)), Some(Value::Name(b))) => name_has_prefix(a, b),
        (Some(Value::Str(a)), Some(Value::Str(b))) => a.starts_with(&**b),
        _ => false,
    })
}

extern "C" fn h_ends_with(e: *mut Env, a: i64, b: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    i64::from(match (e.value(a), e.value(b)) {
        (Some(Value::Name(a)), Some(Value::Name(b))) => name_has_suffix(a, b),
        (Some(Value::Str(a)), Some(Value::Str(b))) => a.ends_with(&**b),
        _ => false,
    })
}

extern "C" fn h_matches(e: *mut Env, re: i64, a: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    let Some(re) = e.jit().policy.regexes.get(re as usize) else {
        return 0;
    };
    i64::from(match e.value(a) {
        Some(Value::Str(s) | Value::Name(s)) => re.is_match(s),
        _ => false,
    })
}

extern "C" fn h_len(e: *mut Env, a: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    match e.value(a) {
        Some(Value::Str(s) | Value::Name(s)) => s.chars().count() as i64,
        _ => 0,
    }
}

extern "C" fn h_hash(e: *mut Env, code: i64, v: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    e.decode(code, v).map_or(0, |v| hash_value(&v))
}

extern "C" fn h_in_set(e: *mut Env, set: i64, code: i64, v: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    let (Some(set), Some(v)) = (e.jit().policy.sets.get(set as usize), e.decode(code, v)) else {
        return 0;
    };
    i64::from(match (set, &v) {
        (ConstSet::Names(ns), Value::Name(n)) => ns.contains(n),
        (ConstSet::Cidrs(cs), Value::Ip(ip)) => cs.iter().any(|c| c.contains(ip)),
        (ConstSet::Cidrs(cs), Value::Cidr(inner)) => cs.iter().any(|c| c.covers(inner)),
        (ConstSet::Values(vs), v) => vs.contains(v),
        _ => false,
    })
}

extern "C" fn h_in_cidr(e: *mut Env, needle: i64, cidr: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    i64::from(match (e.value(needle), e.value(cidr)) {
        (Some(Value::Ip(ip)), Some(Value::Cidr(c))) => c.contains(ip),
        (Some(Value::Cidr(inner)), Some(Value::Cidr(c))) => c.covers(inner),
        _ => false,
    })
}

extern "C" fn h_lower(e: *mut Env, a: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    match e.value(a).cloned() {
        Some(Value::Str(s)) => e.intern(&Value::Str(s.to_lowercase().into())),
        _ => a,
    }
}

extern "C" fn h_concat(e: *mut Env, ac: i64, a: i64, bc: i64, b: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    let (Some(a), Some(b)) = (e.decode(ac, a), e.decode(bc, b)) else {
        return -1;
    };
    e.intern(&Value::Str(format!("{a}{b}").into()))
}

extern "C" fn h_set_value(e: *mut Env, code: i64, v: i64) -> i64 {
    // SAFETY: see `env`.
    let e = unsafe { env(e) };
    e.verdict = e.decode(code, v).map(Verdict::Value);
    -2
}

/// The fixed import table: name, address, number of i64 parameters.
pub(super) fn helpers() -> [(&'static str, *const u8, usize); 10] {
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
