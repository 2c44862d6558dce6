//! The calling convention between compiled code and Rust: the
//! `#[repr(C)]` context a rule function reads, and the per-evaluation
//! environment the helpers see (interned values, a run-time verdict).
#![allow(unsafe_code)]

use super::*;
use crate::ir::types::Cidr;
use std::net::IpAddr;

/// What compiled code reads: slot values, presence, the helpers' view, and
/// where it marks the slots it read.
#[repr(C)]
pub struct JitCtx {
    /// One value per slot ([`FIELD_COUNT`] fields, then the inputs).
    pub vals: *const i64,
    /// 1 when the slot's value is present.
    pub present: *const u8,
    /// The evaluation's environment (interned values, dynamic verdict).
    pub env: *mut Env,
    /// Set to 1 for each slot the code read (present or not): what the
    /// decision depended on, for the ECS scope.
    pub read: *mut u8,
}

/// A value of this evaluation that equals no literal of the policy.
#[derive(Clone, Debug)]
pub(super) enum Dyn {
    /// Text in [`Env::text`]: `start..end`, a name or a string.
    Text { name: bool, start: u32, end: u32 },
    /// Anything else (addresses and prefixes need no allocation).
    Other(Value),
}

/// A value as the helpers see it: literals and this evaluation's own
/// values alike, without building a [`Value`].
#[derive(Clone, Copy, Debug)]
pub(super) enum V<'a> {
    /// A string.
    Str(&'a str),
    /// A canonical DNS name.
    Name(&'a str),
    /// An address.
    Ip(IpAddr),
    /// A prefix.
    Cidr(Cidr),
    /// Another value (lists, and scalars that are never interned).
    Other(&'a Value),
}

/// Per-evaluation state the helpers use. Its buffers are reused from one
/// evaluation to the next, so a value read from a query (a name, a region)
/// costs no allocation once they have grown.
pub struct Env {
    pub(super) jit: *const JitPolicy,
    /// Values of this evaluation that equal no literal (a handful: a
    /// linear search beats hashing them).
    pub(super) dynamic: Vec<Dyn>,
    /// The text of the dynamic strings and names, back to back.
    pub(super) text: String,
    pub(super) verdict: Option<Verdict>,
}

impl Env {
    pub(super) fn new() -> Env {
        Env {
            jit: std::ptr::null(),
            dynamic: Vec::new(),
            text: String::new(),
            verdict: None,
        }
    }
}

/// SAFETY (all helpers): `env` is the `Env` of the `Prepared` being
/// evaluated, valid and exclusively ours for the duration of the call.
pub(super) unsafe fn env<'a>(env: *mut Env) -> &'a mut Env {
    // SAFETY: see above.
    unsafe { &mut *env }
}

impl Env {
    /// The policy being evaluated. The lifetime is not tied to `self`:
    /// the policy is not part of the environment, only pointed at.
    pub(super) fn jit<'a>(&self) -> &'a JitPolicy {
        // SAFETY: set by the evaluation that is running, to the policy
        // evaluating; the policy outlives the call and is never mutated.
        unsafe { &*self.jit }
    }

    /// The value behind an interned id.
    pub(super) fn get(&self, id: i64) -> Option<V<'_>> {
        let jit = self.jit();
        let n = jit.values.len() as i64;
        if (0..n).contains(&id) {
            return jit.values.get(id as usize).map(|v| match v {
                Value::Str(s) => V::Str(s),
                Value::Name(s) => V::Name(s),
                Value::Ip(ip) => V::Ip(*ip),
                Value::Cidr(c) => V::Cidr(*c),
                other => V::Other(other),
            });
        }
        let d = self.dynamic.get(usize::try_from(id - n).ok()?)?;
        Some(match d {
            Dyn::Text { name, start, end } => {
                let t = self.text.get(*start as usize..*end as usize)?;
                if *name {
                    V::Name(t)
                } else {
                    V::Str(t)
                }
            }
            Dyn::Other(Value::Ip(ip)) => V::Ip(*ip),
            Dyn::Other(Value::Cidr(c)) => V::Cidr(*c),
            Dyn::Other(v) => V::Other(v),
        })
    }

    /// The id of a string or name: the literal's when the policy has one,
    /// else one of this evaluation's (its text copied into the buffer).
    pub(super) fn intern_text(&mut self, s: &str, name: bool) -> i64 {
        let jit = self.jit();
        let lit = if name { &jit.name_ids } else { &jit.str_ids };
        if let Some(&id) = lit.get(s) {
            return id;
        }
        let base = jit.values.len();
        let text = &self.text;
        let found = self.dynamic.iter().position(|d| {
            matches!(d, Dyn::Text { name: n, start, end }
                if *n == name && text.get(*start as usize..*end as usize) == Some(s))
        });
        if let Some(i) = found {
            return (base + i) as i64;
        }
        let start = self.text.len() as u32;
        self.text.push_str(s);
        self.dynamic.push(Dyn::Text {
            name,
            start,
            end: self.text.len() as u32,
        });
        (base + self.dynamic.len() - 1) as i64
    }

    /// The id of any non-scalar value.
    pub(super) fn intern(&mut self, v: &Value) -> i64 {
        match v {
            Value::Str(s) => return self.intern_text(s, false),
            Value::Name(s) => return self.intern_text(s, true),
            _ => {}
        }
        let base = self.jit().values.len();
        if let Some(&id) = self.jit().ids.get(v) {
            return id;
        }
        if let Some(i) = self
            .dynamic
            .iter()
            .position(|d| matches!(d, Dyn::Other(o) if o == v))
        {
            return (base + i) as i64;
        }
        self.dynamic.push(Dyn::Other(v.clone()));
        (base + self.dynamic.len() - 1) as i64
    }

    /// A value from its slot form and type code, as a [`Value`] (text is
    /// copied: for the helpers that build new values anyway).
    pub(super) fn decode(&self, code: i64, v: i64) -> Option<Value> {
        Some(match code {
            0 => Value::Bool(v != 0),
            1 => Value::Int(v),
            6 => Value::Qtype(v as u16),
            _ => match self.get(v)? {
                V::Str(s) => Value::Str(s.into()),
                V::Name(s) => Value::Name(s.into()),
                V::Ip(ip) => Value::Ip(ip),
                V::Cidr(c) => Value::Cidr(c),
                V::Other(o) => o.clone(),
            },
        })
    }

    /// Forgets this evaluation's values from `len` on (those made while
    /// evaluating: concatenations, `lower`).
    pub(super) fn truncate(&mut self, len: usize) {
        if let Some(Dyn::Text { start, .. }) = self
            .dynamic
            .get(len..)
            .and_then(|rest| rest.iter().find(|d| matches!(d, Dyn::Text { .. })))
        {
            self.text.truncate(*start as usize);
        }
        self.dynamic.truncate(len);
    }
}
