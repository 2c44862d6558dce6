//! The calling convention between compiled code and Rust: the
//! `#[repr(C)]` context a rule function reads, and the per-evaluation
//! environment the helpers see (interned values, a run-time verdict).
#![allow(unsafe_code)]

use super::*;

/// What compiled code reads: slot values, presence, and the helpers' view.
#[repr(C)]
pub struct JitCtx {
    /// One value per slot ([`FIELD_COUNT`] fields, then the inputs).
    pub vals: *const i64,
    /// 1 when the slot's value is present.
    pub present: *const u8,
    /// The evaluation's environment (interned values, dynamic verdict).
    pub env: *mut Env,
}

/// Per-evaluation state the helpers use.
pub struct Env {
    pub(super) jit: *const JitPolicy,
    /// Values of this evaluation that equal no literal (a handful: a
    /// linear search beats hashing them).
    pub(super) dynamic: Vec<Value>,
    pub(super) verdict: Option<Verdict>,
}

/// SAFETY (all helpers): `env` is the `Env` of the `Prepared` being
/// evaluated, valid and exclusively ours for the duration of the call.
pub(super) unsafe fn env<'a>(env: *mut Env) -> &'a mut Env {
    // SAFETY: see above.
    unsafe { &mut *env }
}

impl Env {
    pub(super) fn jit(&self) -> &JitPolicy {
        // SAFETY: the policy outlives every evaluation of it.
        unsafe { &*self.jit }
    }

    pub(super) fn value(&self, id: i64) -> Option<&Value> {
        let jit = self.jit();
        let n = jit.values.len() as i64;
        if id < n {
            jit.values.get(id as usize)
        } else {
            self.dynamic.get((id - n) as usize)
        }
    }

    pub(super) fn intern(&mut self, v: &Value) -> i64 {
        let base = self.jit().values.len();
        if let Some(&id) = self.jit().ids.get(v) {
            return id;
        }
        if let Some(i) = self.dynamic.iter().position(|d| d == v) {
            return (base + i) as i64;
        }
        self.dynamic.push(v.clone());
        (base + self.dynamic.len() - 1) as i64
    }

    /// A value from its slot form and type code.
    pub(super) fn decode(&self, code: i64, v: i64) -> Option<Value> {
        Some(match code {
            0 => Value::Bool(v != 0),
            1 => Value::Int(v),
            6 => Value::Qtype(v as u16),
            _ => self.value(v)?.clone(),
        })
    }
}
