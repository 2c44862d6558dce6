//! The Cranelift JIT backend: a checked policy as native code.
//!
//! **The ABI.** Compiled code reads a [`JitCtx`] (`#[repr(C)]`): one `i64`
//! per slot (each context field, then each injected variable) and one
//! presence byte per slot, plus a pointer to the evaluation's [`Env`] for
//! helpers. Scalars are themselves (bool 0/1, int, qtype number); strings,
//! names, addresses and prefixes are *interned ids*: every such literal of
//! the policy gets an id at compile time, and a context value gets the
//! literal's id when it equals one (else a fresh id for this evaluation),
//! so equality in compiled code is an integer compare. A rule function has
//! the signature `extern "C" fn(ctx: *const JitCtx, k: *const i64) -> i64`
//! and returns an index into the verdict table (verdicts are data), `-1`
//! when it does not decide, or `-2` when it handed a run-time value to the
//! `set_value` helper.
//!
//! **Shapes.** Rules that differ only in their literals share one compiled
//! function: literals, set and regex numbers and verdict indexes are read
//! from the rule's constant array `k`. A policy of 100 000 rules in three
//! shapes compiles three functions. A rule the name index proves (its guard
//! is exactly an index key) does not test the guard again, and a rule left
//! with a single constant verdict is no code at all, just its verdict.
//!
//! **Helpers.** What needs the text of a value (regex, `starts_with`,
//! `ends_with`, `len`, `hash` of a non-scalar, set membership, prefix
//! containment, `lower`, concatenation) calls back into Rust through a
//! fixed import table (the `h_*` functions). A rule using a construct the
//! lowering does not cover (list values other than the right side of `in`)
//! is evaluated by the reference interpreter, in its place in the order.

#![allow(unsafe_code)]

use crate::context::{Context, Field, FIELDS, FIELD_COUNT};
use crate::hash::hash_value;
use crate::index::{indexed_by, is_exact_key, IndexedBy};
use crate::interp::value_fits;
use crate::ir::{Action, ArithOp, CmpOp, ConstSet, Expr, ExprKind, Func, Policy, Rule, Stmt};
use crate::types::{name_has_prefix, name_has_suffix, Type};
use crate::value::{Value, Verdict};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::types::I64;
use cranelift_codegen::ir::{
    AbiParam, Block, BlockArg, FuncRef, InstBuilder, MemFlagsData, Signature, UserFuncName,
    Value as CVal,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, FuncId, Linkage, Module};
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

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
    jit: *const JitPolicy,
    /// Values of this evaluation that equal no literal (a handful: a
    /// linear search beats hashing them).
    dynamic: Vec<Value>,
    verdict: Option<Verdict>,
}

/// A compiled rule function.
type RuleFn = unsafe extern "C" fn(*const JitCtx, *const i64) -> i64;

enum Code {
    /// Always this verdict (index into the verdict table).
    Const(u32),
    /// Compiled: shape function and constants.
    Jit { shape: usize, k: Box<[i64]> },
    /// Evaluated by the interpreter.
    Interp,
}

/// A policy compiled to native code. Dropping it frees the code.
pub struct JitPolicy {
    policy: Policy,
    module: Option<JITModule>,
    shapes: Vec<RuleFn>,
    code: Vec<Code>,
    values: Vec<Value>,
    ids: FxHashMap<Value, i64>,
    verdicts: Vec<Verdict>,
    clif: String,
    stats: JitStats,
    fields: u32,
}

/// What the compiler did with the rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitStats {
    /// Rules that are a constant verdict (no code).
    pub constant: usize,
    /// Rules run by compiled code.
    pub compiled: usize,
    /// Distinct compiled functions (shapes).
    pub functions: usize,
    /// Rules left to the interpreter.
    pub interpreted: usize,
}

// SAFETY: the compiled code is immutable once finalised and reads only its
// arguments; the function pointers stay valid as long as `module` lives,
// which is as long as the `JitPolicy`.
unsafe impl Send for JitPolicy {}
// SAFETY: as above; evaluation takes `&self` and keeps per-call state in
// the caller's `Prepared`.
unsafe impl Sync for JitPolicy {}

impl Drop for JitPolicy {
    fn drop(&mut self) {
        self.shapes.clear();
        if let Some(m) = self.module.take() {
            // SAFETY: no function pointer into the module survives: the
            // shapes are cleared above and the policy is being dropped.
            unsafe { m.free_memory() };
        }
    }
}

/// The outcome of one compiled evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct JitOutcome<'p> {
    /// The verdict (borrowed from the table when static), or `None`.
    pub verdict: Option<Cow<'p, Verdict>>,
    /// Index of the deciding rule.
    pub rule: Option<usize>,
}

/// A context converted for compiled code (slots, interned values, and the
/// rule candidates of its query name). Keep one and [`JitPolicy::refill`]
/// it per query: its buffers are reused. It borrows the policy it was made
/// for, which therefore cannot move or drop while it lives.
pub struct Prepared<'p> {
    owner: std::marker::PhantomData<&'p JitPolicy>,
    vals: Vec<i64>,
    present: Vec<u8>,
    env: Env,
    candidates: Vec<u32>,
}

/// Compilation failed (Cranelift refused the code; a bug, reported).
#[derive(Debug, thiserror::Error)]
#[error("JIT compilation failed: {0}")]
pub struct JitError(String);

fn err(e: impl std::fmt::Display) -> JitError {
    JitError(e.to_string())
}

// ---- helpers called from compiled code ----------------------------------

/// SAFETY (all helpers): `env` is the `Env` of the `Prepared` being
/// evaluated, valid and exclusively ours for the duration of the call.
unsafe fn env<'a>(env: *mut Env) -> &'a mut Env {
    // SAFETY: see above.
    unsafe { &mut *env }
}

impl Env {
    fn jit(&self) -> &JitPolicy {
        // SAFETY: the policy outlives every evaluation of it.
        unsafe { &*self.jit }
    }

    fn value(&self, id: i64) -> Option<&Value> {
        let jit = self.jit();
        let n = jit.values.len() as i64;
        if id < n {
            jit.values.get(id as usize)
        } else {
            self.dynamic.get((id - n) as usize)
        }
    }

    fn intern(&mut self, v: &Value) -> i64 {
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
    fn decode(&self, code: i64, v: i64) -> Option<Value> {
        Some(match code {
            0 => Value::Bool(v != 0),
            1 => Value::Int(v),
            6 => Value::Qtype(v as u16),
            _ => self.value(v)?.clone(),
        })
    }
}

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
fn helpers() -> [(&'static str, *const u8, usize); 10] {
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

const H_STARTS: usize = 0;
const H_ENDS: usize = 1;
const H_MATCHES: usize = 2;
const H_LEN: usize = 3;
const H_HASH: usize = 4;
const H_IN_SET: usize = 5;
const H_IN_CIDR: usize = 6;
const H_LOWER: usize = 7;
const H_CONCAT: usize = 8;
const H_SET_VALUE: usize = 9;

fn type_code(t: &Type) -> Option<i64> {
    crate::wasm::type_code(t).map(i64::from)
}

// ---- planning: shapes and constants --------------------------------------

/// A walk over a rule that writes its shape (everything the code depends
/// on except literals) and collects its constants, in the order the
/// lowering reads them. `None`: the rule uses something not lowered.
struct Plan<'a> {
    jit_values: &'a mut Vec<Value>,
    jit_ids: &'a mut FxHashMap<Value, i64>,
    verdicts: &'a mut Vec<Verdict>,
    verdict_ids: &'a mut FxHashMap<Verdict, u32>,
    shape: String,
    k: Vec<i64>,
}

impl Plan<'_> {
    fn tok(&mut self, t: std::fmt::Arguments<'_>) {
        let _ = self.shape.write_fmt(t);
        self.shape.push(' ');
    }

    fn word(&mut self, w: &str) {
        self.shape.push_str(w);
        self.shape.push(' ');
    }

    fn intern(&mut self, v: &Value) -> i64 {
        match v {
            Value::Bool(b) => i64::from(*b),
            Value::Int(i) => *i,
            Value::Qtype(q) => i64::from(*q),
            other => {
                if let Some(&id) = self.jit_ids.get(other) {
                    return id;
                }
                let id = self.jit_values.len() as i64;
                self.jit_values.push(other.clone());
                self.jit_ids.insert(other.clone(), id);
                id
            }
        }
    }

    fn verdict(&mut self, v: Verdict) -> u32 {
        if let Some(&i) = self.verdict_ids.get(&v) {
            return i;
        }
        self.verdicts.push(v.clone());
        let i = self.verdicts.len() as u32 - 1;
        self.verdict_ids.insert(v, i);
        i
    }

    fn rule(&mut self, r: &Rule, skip_guard: bool, skip_if: bool) -> Option<()> {
        self.tok(format_args!(
            "rule g{} i{} l{}",
            u8::from(skip_guard),
            u8::from(skip_if),
            r.locals
        ));
        if let (Some(g), false) = (&r.guard, skip_guard) {
            self.word("guard");
            self.expr(g)?;
        }
        let body: &[Stmt] = match (skip_if, r.body.as_slice()) {
            (true, [Stmt::If { then_body, .. }]) => then_body,
            _ => &r.body,
        };
        self.stmts(body)
    }

    fn stmts(&mut self, stmts: &[Stmt]) -> Option<()> {
        self.word("{");
        for s in stmts {
            match s {
                Stmt::If {
                    cond,
                    then_body,
                    else_body,
                } => {
                    self.word("if");
                    self.expr(cond)?;
                    self.stmts(then_body)?;
                    self.stmts(else_body)?;
                }
                Stmt::Let { local, value } => {
                    self.tok(format_args!("let{local}"));
                    type_code(&value.ty)?;
                    self.expr(value)?;
                }
                Stmt::Then { action, .. } => self.then(action)?,
            }
        }
        self.word("}");
        Some(())
    }

    fn then(&mut self, a: &Action) -> Option<()> {
        if let Action::Value(e) = a {
            if !matches!(e.kind, ExprKind::Lit(_)) {
                self.tok(format_args!("then-dyn {}", type_code(&e.ty)?));
                return self.expr(e);
            }
        }
        match crate::wasm::static_verdict(a) {
            Ok(Some(v)) => {
                self.word("then");
                let id = self.verdict(v);
                self.k.push(i64::from(id));
            }
            Ok(None) => self.word("then-never"),
            Err(_) => return None,
        }
        Some(())
    }

    fn expr(&mut self, e: &Expr) -> Option<()> {
        let code = type_code(&e.ty).map_or(-1, |c| c);
        match &e.kind {
            ExprKind::Lit(v) => {
                if matches!(v, Value::List(_)) {
                    return None;
                }
                self.tok(format_args!("lit{code}"));
                let v = self.intern(v);
                self.k.push(v);
            }
            ExprKind::Field(f) => {
                type_code(&e.ty)?;
                self.tok(format_args!("f{}", *f as u32));
            }
            ExprKind::Input(i) => {
                type_code(&e.ty)?;
                self.tok(format_args!("in{i}"));
            }
            ExprKind::Local(l) => {
                type_code(&e.ty)?;
                self.tok(format_args!("loc{l}"));
            }
            ExprKind::Not(a) | ExprKind::Neg(a) => {
                self.word(if matches!(e.kind, ExprKind::Not(_)) {
                    "not"
                } else {
                    "neg"
                });
                self.expr(a)?;
            }
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                self.word(if matches!(e.kind, ExprKind::And(..)) {
                    "and"
                } else {
                    "or"
                });
                self.expr(a)?;
                self.expr(b)?;
            }
            ExprKind::Cmp(op, a, b) => {
                type_code(&a.ty)?;
                self.tok(format_args!("cmp{op:?}{}", type_code(&a.ty)?));
                self.expr(a)?;
                self.expr(b)?;
            }
            ExprKind::InSet {
                needle,
                set,
                negate,
            } => {
                self.tok(format_args!(
                    "inset{} {}",
                    u8::from(*negate),
                    type_code(&needle.ty)?
                ));
                self.k.push(i64::from(*set));
                self.expr(needle)?;
            }
            ExprKind::InExpr {
                needle,
                haystack,
                negate,
            } => {
                let nc = type_code(&needle.ty)?;
                self.tok(format_args!("inexpr{} {nc}", u8::from(*negate)));
                self.expr(needle)?;
                match &haystack.kind {
                    ExprKind::List(items) => {
                        self.tok(format_args!("list{}", items.len()));
                        for it in items {
                            self.tok(format_args!("same{}", u8::from(it.ty == needle.ty)));
                            self.expr(it)?;
                        }
                    }
                    ExprKind::Lit(Value::List(items)) => {
                        self.tok(format_args!("litlist{}", items.len()));
                        for it in items.iter() {
                            self.tok(format_args!("same{}", u8::from(it.ty() == needle.ty)));
                            let v = self.intern(it);
                            self.k.push(v);
                        }
                    }
                    _ if haystack.ty == Type::Cidr => {
                        self.word("cidr");
                        self.expr(haystack)?;
                    }
                    _ => return None,
                }
            }
            ExprKind::Matches(a, re) => {
                type_code(&a.ty)?;
                self.word("matches");
                self.k.push(i64::from(*re));
                self.expr(a)?;
            }
            ExprKind::StartsWith(a, b) | ExprKind::EndsWith(a, b) => {
                let s = matches!(e.kind, ExprKind::StartsWith(..));
                self.word(if s { "starts" } else { "ends" });
                self.expr(a)?;
                self.expr(b)?;
            }
            ExprKind::Arith(op, a, b) => {
                self.tok(format_args!("arith{op:?}"));
                self.expr(a)?;
                self.expr(b)?;
            }
            ExprKind::Concat(a, b) => {
                self.tok(format_args!(
                    "concat{} {}",
                    type_code(&a.ty)?,
                    type_code(&b.ty)?
                ));
                self.expr(a)?;
                self.expr(b)?;
            }
            ExprKind::Call(f, args) => {
                let a = args.first()?;
                let c = type_code(&a.ty)?;
                self.tok(format_args!("call{f:?}{c}"));
                self.expr(a)?;
            }
            ExprKind::List(_) => return None,
        }
        Some(())
    }
}

// ---- lowering --------------------------------------------------------------

struct Lower<'a, 'b> {
    b: FunctionBuilder<'b>,
    helpers: &'a [FuncRef],
    vals: CVal,
    present: CVal,
    env: CVal,
    k: CVal,
    next_k: u32,
    locals: HashMap<u32, (Variable, Variable)>,
    end: Block,
}

impl Lower<'_, '_> {
    fn konst(&mut self) -> CVal {
        let off = (self.next_k * 8) as i32;
        self.next_k += 1;
        self.b.ins().load(I64, MemFlagsData::trusted(), self.k, off)
    }

    fn call(&mut self, h: usize, args: &[CVal]) -> CVal {
        let mut all = vec![self.env];
        all.extend_from_slice(args);
        let inst = self.b.ins().call(self.helpers[h], &all);
        self.b.inst_results(inst)[0]
    }

    fn bool(&mut self, c: CVal) -> CVal {
        self.b.ins().uextend(I64, c)
    }

    /// Jumps to `miss` when `present` is zero, else continues.
    fn miss_if_absent(&mut self, present: CVal, miss: Block) {
        let cont = self.b.create_block();
        self.b.ins().brif(present, cont, &[], miss, &[]);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
    }

    fn slot(&mut self, slot: u32, miss: Block) -> CVal {
        let p = self
            .b
            .ins()
            .uload8(I64, MemFlagsData::trusted(), self.present, slot as i32);
        self.miss_if_absent(p, miss);
        self.b
            .ins()
            .load(I64, MemFlagsData::trusted(), self.vals, (slot * 8) as i32)
    }

    /// `f` with a "missing" label: its value, or 0 when missing.
    fn guarded(&mut self, f: impl FnOnce(&mut Self, Block) -> CVal) -> CVal {
        let out = self.b.create_block();
        self.b.append_block_param(out, I64);
        let miss = self.b.create_block();
        let v = f(self, miss);
        self.b.ins().jump(out, &[BlockArg::Value(v)]);
        self.b.switch_to_block(miss);
        self.b.seal_block(miss);
        let z = self.b.ins().iconst(I64, 0);
        self.b.ins().jump(out, &[BlockArg::Value(z)]);
        self.b.switch_to_block(out);
        self.b.seal_block(out);
        self.b.block_params(out)[0]
    }

    fn maybe_guarded(&mut self, e: &Expr, f: impl FnOnce(&mut Self, Block) -> CVal) -> CVal {
        if e.any_child_can_be_missing() {
            self.guarded(f)
        } else {
            let dummy = self.end;
            f(self, dummy)
        }
    }

    fn cond(&mut self, e: &Expr) -> CVal {
        if e.can_be_missing() {
            self.guarded(|s, miss| s.value(e, miss))
        } else {
            let end = self.end;
            self.value(e, end)
        }
    }

    fn value(&mut self, e: &Expr, miss: Block) -> CVal {
        match &e.kind {
            ExprKind::Lit(_) => self.konst(),
            ExprKind::Field(f) => self.slot(*f as u32, miss),
            ExprKind::Input(i) => self.slot(FIELD_COUNT as u32 + i, miss),
            ExprKind::Local(l) => {
                let (val, present) = self.local(*l);
                let p = self.b.use_var(present);
                self.miss_if_absent(p, miss);
                self.b.use_var(val)
            }
            ExprKind::Not(a) => {
                let c = self.cond(a);
                let r = self.b.ins().icmp_imm_s(IntCC::Equal, c, 0);
                self.bool(r)
            }
            ExprKind::And(x, y) | ExprKind::Or(x, y) => {
                let and = matches!(e.kind, ExprKind::And(..));
                let out = self.b.create_block();
                self.b.append_block_param(out, I64);
                let rhs = self.b.create_block();
                let a = self.cond(x);
                if and {
                    self.b.ins().brif(a, rhs, &[], out, &[BlockArg::Value(a)]);
                } else {
                    self.b.ins().brif(a, out, &[BlockArg::Value(a)], rhs, &[]);
                }
                self.b.switch_to_block(rhs);
                self.b.seal_block(rhs);
                let c = self.cond(y);
                self.b.ins().jump(out, &[BlockArg::Value(c)]);
                self.b.switch_to_block(out);
                self.b.seal_block(out);
                self.b.block_params(out)[0]
            }
            ExprKind::Neg(a) => {
                let v = self.value(a, miss);
                self.b.ins().ineg(v)
            }
            ExprKind::Cmp(op, x, y) => {
                let (op, int) = (*op, x.ty == Type::Int);
                self.maybe_guarded(e, |s, m| {
                    let a = s.value(x, m);
                    let b = s.value(y, m);
                    let cc = match (op, int) {
                        (CmpOp::Eq, _) => IntCC::Equal,
                        (CmpOp::Ne, _) => IntCC::NotEqual,
                        (_, false) => return s.b.ins().iconst(I64, 0),
                        (CmpOp::Lt, _) => IntCC::SignedLessThan,
                        (CmpOp::Le, _) => IntCC::SignedLessThanOrEqual,
                        (CmpOp::Gt, _) => IntCC::SignedGreaterThan,
                        (CmpOp::Ge, _) => IntCC::SignedGreaterThanOrEqual,
                    };
                    let r = s.b.ins().icmp(cc, a, b);
                    s.bool(r)
                })
            }
            ExprKind::InSet { needle, negate, .. } => {
                let negate = *negate;
                let code = type_code(&needle.ty).unwrap_or(-1);
                let set = self.konst();
                self.maybe_guarded(e, |s, m| {
                    let v = s.value(needle, m);
                    let c = s.b.ins().iconst(I64, code);
                    let r = s.call(H_IN_SET, &[set, c, v]);
                    if negate {
                        let z = s.b.ins().icmp_imm_s(IntCC::Equal, r, 0);
                        s.bool(z)
                    } else {
                        r
                    }
                })
            }
            ExprKind::InExpr {
                needle,
                haystack,
                negate,
            } => {
                let negate = *negate;
                self.maybe_guarded(e, |s, m| {
                    let n = s.value(needle, m);
                    let found = match &haystack.kind {
                        ExprKind::List(items) => {
                            // Every element is evaluated: one missing makes
                            // the list missing.
                            let mut acc = s.b.ins().iconst(I64, 0);
                            for it in items {
                                let v = s.value(it, m);
                                if it.ty == needle.ty {
                                    let eq = s.b.ins().icmp(IntCC::Equal, n, v);
                                    let eq = s.bool(eq);
                                    acc = s.b.ins().bor(acc, eq);
                                }
                            }
                            acc
                        }
                        ExprKind::Lit(Value::List(items)) => {
                            let mut acc = s.b.ins().iconst(I64, 0);
                            for it in items.iter() {
                                let v = s.konst();
                                if it.ty() == needle.ty {
                                    let eq = s.b.ins().icmp(IntCC::Equal, n, v);
                                    let eq = s.bool(eq);
                                    acc = s.b.ins().bor(acc, eq);
                                }
                            }
                            acc
                        }
                        _ => {
                            let h = s.value(haystack, m);
                            s.call(H_IN_CIDR, &[n, h])
                        }
                    };
                    if negate {
                        let z = s.b.ins().icmp_imm_s(IntCC::Equal, found, 0);
                        s.bool(z)
                    } else {
                        found
                    }
                })
            }
            ExprKind::Matches(x, _) => {
                let re = self.konst();
                self.maybe_guarded(e, |s, m| {
                    let v = s.value(x, m);
                    s.call(H_MATCHES, &[re, v])
                })
            }
            ExprKind::StartsWith(x, y) | ExprKind::EndsWith(x, y) => {
                let h = if matches!(e.kind, ExprKind::StartsWith(..)) {
                    H_STARTS
                } else {
                    H_ENDS
                };
                self.maybe_guarded(e, |s, m| {
                    let a = s.value(x, m);
                    let b = s.value(y, m);
                    s.call(h, &[a, b])
                })
            }
            ExprKind::Arith(op, x, y) => {
                let a = self.value(x, miss);
                let b = self.value(y, miss);
                match op {
                    ArithOp::Add => self.b.ins().iadd(a, b),
                    ArithOp::Sub => self.b.ins().isub(a, b),
                    ArithOp::Mul => self.b.ins().imul(a, b),
                    ArithOp::Div | ArithOp::Rem => self.divide(*op, a, b),
                }
            }
            ExprKind::Concat(x, y) => {
                let (xc, yc) = (
                    type_code(&x.ty).unwrap_or(-1),
                    type_code(&y.ty).unwrap_or(-1),
                );
                let a = self.value(x, miss);
                let b = self.value(y, miss);
                let (xc, yc) = (self.b.ins().iconst(I64, xc), self.b.ins().iconst(I64, yc));
                self.call(H_CONCAT, &[xc, a, yc, b])
            }
            ExprKind::Call(f, args) => {
                let x = &args[0];
                let v = self.value(x, miss);
                match (f, &x.ty) {
                    (Func::Lower, Type::String) => self.call(H_LOWER, &[v]),
                    (Func::Lower, _) => v,
                    (Func::Len, _) => self.call(H_LEN, &[v]),
                    (Func::Hash, t) => {
                        let c = self.b.ins().iconst(I64, type_code(t).unwrap_or(-1));
                        self.call(H_HASH, &[c, v])
                    }
                }
            }
            // The plan refuses lists elsewhere; never reached.
            ExprKind::List(_) => self.b.ins().iconst(I64, 0),
        }
    }

    /// `/` and `%` as the language defines them: 0 for a zero divisor, and
    /// MIN / -1 wraps (MIN % -1 is 0), where the machine would trap.
    fn divide(&mut self, op: ArithOp, a: CVal, b: CVal) -> CVal {
        let out = self.b.create_block();
        self.b.append_block_param(out, I64);
        let (nonzero, normal) = (self.b.create_block(), self.b.create_block());
        let zero = self.b.ins().iconst(I64, 0);
        self.b
            .ins()
            .brif(b, nonzero, &[], out, &[BlockArg::Value(zero)]);
        self.b.switch_to_block(nonzero);
        self.b.seal_block(nonzero);
        let minus1 = self.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
        let special = if op == ArithOp::Div {
            self.b.ins().ineg(a)
        } else {
            self.b.ins().iconst(I64, 0)
        };
        self.b
            .ins()
            .brif(minus1, out, &[BlockArg::Value(special)], normal, &[]);
        self.b.switch_to_block(normal);
        self.b.seal_block(normal);
        let r = if op == ArithOp::Div {
            self.b.ins().sdiv(a, b)
        } else {
            self.b.ins().srem(a, b)
        };
        self.b.ins().jump(out, &[BlockArg::Value(r)]);
        self.b.switch_to_block(out);
        self.b.seal_block(out);
        self.b.block_params(out)[0]
    }

    fn local(&mut self, l: u32) -> (Variable, Variable) {
        if let Some(v) = self.locals.get(&l) {
            return *v;
        }
        let val = self.b.declare_var(I64);
        let present = self.b.declare_var(I64);
        let z = self.b.ins().iconst(I64, 0);
        self.b.def_var(val, z);
        self.b.def_var(present, z);
        self.locals.insert(l, (val, present));
        (val, present)
    }

    fn stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            match s {
                Stmt::If {
                    cond,
                    then_body,
                    else_body,
                } => {
                    let c = self.cond(cond);
                    let (t, f, join) = (
                        self.b.create_block(),
                        self.b.create_block(),
                        self.b.create_block(),
                    );
                    self.b.ins().brif(c, t, &[], f, &[]);
                    self.b.switch_to_block(t);
                    self.b.seal_block(t);
                    self.stmts(then_body);
                    self.b.ins().jump(join, &[]);
                    self.b.switch_to_block(f);
                    self.b.seal_block(f);
                    self.stmts(else_body);
                    self.b.ins().jump(join, &[]);
                    self.b.switch_to_block(join);
                    self.b.seal_block(join);
                }
                Stmt::Let { local, value } => {
                    let (val, present) = self.local(*local);
                    let done = self.b.create_block();
                    let miss = self.b.create_block();
                    let v = self.value(value, miss);
                    self.b.def_var(val, v);
                    let one = self.b.ins().iconst(I64, 1);
                    self.b.def_var(present, one);
                    self.b.ins().jump(done, &[]);
                    self.b.switch_to_block(miss);
                    self.b.seal_block(miss);
                    let z = self.b.ins().iconst(I64, 0);
                    self.b.def_var(present, z);
                    self.b.ins().jump(done, &[]);
                    self.b.switch_to_block(done);
                    self.b.seal_block(done);
                }
                Stmt::Then { action, .. } => {
                    self.then(action);
                    // Code after a `then` is unreachable (the checker says
                    // so); give it a block of its own.
                    let dead = self.b.create_block();
                    self.b.switch_to_block(dead);
                    self.b.seal_block(dead);
                }
            }
        }
    }

    fn then(&mut self, a: &Action) {
        if let Action::Value(e) = a {
            if !matches!(e.kind, ExprKind::Lit(_)) {
                let end = self.end;
                let v = self.value(e, end);
                let c = self.b.ins().iconst(I64, type_code(&e.ty).unwrap_or(-1));
                let r = self.call(H_SET_VALUE, &[c, v]);
                self.b.ins().return_(&[r]);
                return;
            }
        }
        match crate::wasm::static_verdict(a) {
            Ok(Some(_)) => {
                let id = self.konst();
                self.b.ins().return_(&[id]);
            }
            _ => {
                let end = self.end;
                self.b.ins().jump(end, &[]);
            }
        }
    }
}

// ---- compilation -----------------------------------------------------------

fn isa_module() -> Result<JITModule, JitError> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(err)?;
    flags.set("use_colocated_libcalls", "false").map_err(err)?;
    flags.set("is_pic", "false").map_err(err)?;
    let isa = cranelift_native::builder()
        .map_err(err)?
        .finish(settings::Flags::new(flags))
        .map_err(err)?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    for (name, ptr, _) in helpers() {
        jb.symbol(name, ptr);
    }
    Ok(JITModule::new(jb))
}

impl JitPolicy {
    /// Compiles a checked policy. `with_clif` keeps the Cranelift IR text
    /// of every function (`dnspolicy compile --target clif`).
    pub fn compile(policy: Policy, with_clif: bool) -> Result<JitPolicy, JitError> {
        let mut values = Vec::new();
        let mut ids = FxHashMap::default();
        let mut verdicts = Vec::new();
        let mut verdict_ids = FxHashMap::default();
        let mut plans: Vec<Option<(String, Vec<i64>)>> = Vec::with_capacity(policy.rules.len());
        let mut elide = Vec::with_capacity(policy.rules.len());
        for r in &policy.rules {
            let by = indexed_by(r, &policy.sets);
            let skip_guard = by == IndexedBy::Guard
                && r.guard
                    .as_ref()
                    .is_some_and(|g| is_exact_key(g, &policy.sets));
            let skip_if = by == IndexedBy::BodyIf
                && match r.body.as_slice() {
                    [Stmt::If { cond, .. }] => is_exact_key(cond, &policy.sets),
                    _ => false,
                };
            elide.push((skip_guard, skip_if));
            let mut plan = Plan {
                jit_values: &mut values,
                jit_ids: &mut ids,
                verdicts: &mut verdicts,
                verdict_ids: &mut verdict_ids,
                shape: String::new(),
                k: Vec::new(),
            };
            plans.push(
                plan.rule(r, skip_guard, skip_if)
                    .map(|()| (plan.shape, plan.k)),
            );
        }
        let mut module = isa_module()?;
        let mut sig = Signature::new(module.isa().default_call_conv());
        sig.params.push(AbiParam::new(I64));
        sig.params.push(AbiParam::new(I64));
        sig.returns.push(AbiParam::new(I64));
        let mut helper_ids: Vec<FuncId> = Vec::new();
        for (name, _, n) in helpers() {
            let mut hs = Signature::new(module.isa().default_call_conv());
            for _ in 0..n {
                hs.params.push(AbiParam::new(I64));
            }
            hs.returns.push(AbiParam::new(I64));
            helper_ids.push(
                module
                    .declare_function(name, Linkage::Import, &hs)
                    .map_err(err)?,
            );
        }
        let mut shape_ids: HashMap<String, usize> = HashMap::new();
        let mut func_ids: Vec<FuncId> = Vec::new();
        let mut code = Vec::with_capacity(policy.rules.len());
        let mut stats = JitStats::default();
        let mut clif = String::new();
        let mut fbc = FunctionBuilderContext::new();
        let mut cctx = module.make_context();
        for (i, (r, plan)) in policy.rules.iter().zip(plans).enumerate() {
            let Some((shape, k)) = plan else {
                stats.interpreted += 1;
                code.push(Code::Interp);
                continue;
            };
            // A rule that is one static verdict is no code.
            if shape.splitn(5, ' ').nth(4) == Some("{ then } ") && k.len() == 1 {
                stats.constant += 1;
                code.push(Code::Const(k[0] as u32));
                continue;
            }
            stats.compiled += 1;
            if let Some(&s) = shape_ids.get(&shape) {
                code.push(Code::Jit {
                    shape: s,
                    k: k.into(),
                });
                continue;
            }
            let (skip_guard, skip_if) = elide[i];
            let name = format!("shape{}", func_ids.len());
            let id = module
                .declare_function(&name, Linkage::Local, &sig)
                .map_err(err)?;
            cctx.func.signature = sig.clone();
            cctx.func.name = UserFuncName::user(0, func_ids.len() as u32);
            {
                let mut b = FunctionBuilder::new(&mut cctx.func, &mut fbc);
                let helpers: Vec<FuncRef> = helper_ids
                    .iter()
                    .map(|h| module.declare_func_in_func(*h, b.func))
                    .collect();
                let entry = b.create_block();
                b.append_block_params_for_function_params(entry);
                b.switch_to_block(entry);
                b.seal_block(entry);
                let (ctxp, kp) = (b.block_params(entry)[0], b.block_params(entry)[1]);
                let vals = b.ins().load(I64, MemFlagsData::trusted(), ctxp, 0);
                let present = b.ins().load(I64, MemFlagsData::trusted(), ctxp, 8);
                let envp = b.ins().load(I64, MemFlagsData::trusted(), ctxp, 16);
                let end = b.create_block();
                let mut l = Lower {
                    b,
                    helpers: &helpers,
                    vals,
                    present,
                    env: envp,
                    k: kp,
                    next_k: 0,
                    locals: HashMap::new(),
                    end,
                };
                if let (Some(g), false) = (&r.guard, skip_guard) {
                    let c = l.cond(g);
                    let body = l.b.create_block();
                    l.b.ins().brif(c, body, &[], end, &[]);
                    l.b.switch_to_block(body);
                    l.b.seal_block(body);
                }
                let stmts: &[Stmt] = match (skip_if, r.body.as_slice()) {
                    (true, [Stmt::If { then_body, .. }]) => then_body,
                    _ => &r.body,
                };
                l.stmts(stmts);
                l.b.ins().jump(end, &[]);
                l.b.switch_to_block(end);
                l.b.seal_block(end);
                let none = l.b.ins().iconst(I64, -1);
                l.b.ins().return_(&[none]);
                if l.next_k as usize != k.len() {
                    return Err(JitError(format!(
                        "rule {}: the lowering read {} constants, the plan has {}",
                        r.name,
                        l.next_k,
                        k.len()
                    )));
                }
                l.b.finalize(module.target_config());
            }
            if with_clif {
                let _ = writeln!(clif, "; shape {} (first: rule {})", func_ids.len(), r.name);
                let _ = writeln!(clif, "{}", cctx.func.display());
            }
            module.define_function(id, &mut cctx).map_err(err)?;
            module.clear_context(&mut cctx);
            shape_ids.insert(shape, func_ids.len());
            code.push(Code::Jit {
                shape: func_ids.len(),
                k: k.into(),
            });
            func_ids.push(id);
        }
        module.finalize_definitions().map_err(err)?;
        let shapes: Vec<RuleFn> = func_ids
            .iter()
            .map(|id| {
                let ptr = module.get_finalized_function(*id);
                // SAFETY: the function was defined with `sig`, which is
                // the C ABI signature of `RuleFn` on this platform.
                unsafe { std::mem::transmute::<*const u8, RuleFn>(ptr) }
            })
            .collect();
        stats.functions = shapes.len();
        let fields = policy.fields_used() | (1 << Field::QueryName as u32);
        Ok(JitPolicy {
            fields,
            policy,
            module: Some(module),
            shapes,
            code,
            values,
            ids,
            verdicts,
            clif,
            stats,
        })
    }

    /// The policy compiled.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The Cranelift IR of the compiled functions (when asked for).
    pub fn clif(&self) -> &str {
        &self.clif
    }

    /// What the compiler did with the rules.
    pub fn stats(&self) -> JitStats {
        self.stats
    }

    /// Converts a context for compiled code: slot values, interned ids and
    /// the rule candidates of its query name.
    pub fn prepare(&self, ctx: &Context) -> Prepared<'_> {
        let mut p = Prepared {
            owner: std::marker::PhantomData,
            vals: Vec::new(),
            present: Vec::new(),
            env: Env {
                jit: self,
                dynamic: Vec::new(),
                verdict: None,
            },
            candidates: Vec::new(),
        };
        self.refill(ctx, &mut p);
        p
    }

    /// [`JitPolicy::prepare`] into an existing `Prepared`, reusing its buffers.
    pub fn refill(&self, ctx: &Context, p: &mut Prepared<'_>) {
        let n = FIELD_COUNT + self.policy.inputs.len();
        p.vals.clear();
        p.vals.resize(n, 0);
        p.present.clear();
        p.present.resize(n, 0);
        p.env.jit = self;
        p.env.dynamic.clear();
        p.env.verdict = None;
        let put = |slot: usize, v: &Value, p: &mut Prepared<'_>| {
            let x = match v {
                Value::Bool(b) => i64::from(*b),
                Value::Int(i) => *i,
                Value::Qtype(q) => i64::from(*q),
                // Lists are never read by compiled code (the rule falls back).
                Value::List(_) => return,
                other => p.env.intern(other),
            };
            p.vals[slot] = x;
            p.present[slot] = 1;
        };
        let mut mask = self.fields;
        while mask != 0 {
            let f = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if let Some(v) = FIELDS.get(f).and_then(|info| ctx.get(info.field)) {
                put(f, v, p);
            }
        }
        for (i, input) in self.policy.inputs.iter().enumerate() {
            if let Some(v) = ctx.var(&input.path).filter(|v| value_fits(v, &input.ty)) {
                put(FIELD_COUNT + i, v, p);
            }
        }
        self.policy.index.candidates_in(ctx, &mut p.candidates);
    }

    /// Evaluates a prepared context; `ctx` is the context it was prepared
    /// from (rules left to the interpreter read it).
    pub fn eval_prepared(&self, p: &mut Prepared<'_>, ctx: &Context) -> JitOutcome<'_> {
        // Compiled code trusts the slot buffers' length and the helpers the
        // policy pointer: a `Prepared` made for another policy is redone.
        if !std::ptr::eq(p.env.jit, self) || p.vals.len() != FIELD_COUNT + self.policy.inputs.len()
        {
            self.refill(ctx, p);
        }
        let base = p.env.dynamic.len();
        let jc = JitCtx {
            vals: p.vals.as_ptr(),
            present: p.present.as_ptr(),
            env: &mut p.env,
        };
        let mut out = JitOutcome {
            verdict: None,
            rule: None,
        };
        for &i in &p.candidates {
            let i = i as usize;
            let r = match &self.code[i] {
                Code::Const(v) => i64::from(*v),
                Code::Jit { shape, k } => {
                    // SAFETY: `jc` points at live buffers of the right
                    // length for this policy's slots; `k` holds the
                    // constants the shape reads.
                    unsafe { (self.shapes[*shape])(&jc, k.as_ptr()) }
                }
                Code::Interp => match self.policy.eval_rule(i, ctx) {
                    Some(v) => {
                        out = JitOutcome {
                            verdict: Some(Cow::Owned(v)),
                            rule: Some(i),
                        };
                        break;
                    }
                    None => -1,
                },
            };
            if r >= 0 {
                out = JitOutcome {
                    verdict: self.verdicts.get(r as usize).map(Cow::Borrowed),
                    rule: Some(i),
                };
                break;
            }
            if r == -2 {
                // SAFETY: the call above has returned; nothing else holds
                // the environment.
                let v = unsafe { (*jc.env).verdict.take() };
                out = JitOutcome {
                    verdict: v.map(Cow::Owned),
                    rule: Some(i),
                };
                break;
            }
        }
        // Values interned during this evaluation (concat, lower) are its own.
        p.env.dynamic.truncate(base);
        out
    }

    /// Prepares and evaluates in one step.
    pub fn eval(&self, ctx: &Context) -> JitOutcome<'_> {
        let mut p = self.prepare(ctx);
        let out = self.eval_prepared(&mut p, ctx);
        JitOutcome {
            verdict: out.verdict.map(|v| Cow::Owned(v.into_owned())),
            rule: out.rule,
        }
    }
}
