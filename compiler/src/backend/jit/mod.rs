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
//!
//! Files: `abi` (the context compiled code reads), `helpers` (Rust
//! functions it calls), `plan` (shapes and constants), `lower` (IR).
//! `unsafe` lives in this file (calling and freeing compiled code) and in
//! `abi` and `helpers` (the raw pointers of the calling convention).
#![allow(unsafe_code)]

mod abi;
mod helpers;
mod lower;
mod plan;

pub use abi::{Env, JitCtx};

use crate::backend::interp::value_fits;
use crate::ir::context::{Context, Field, FIELDS, FIELD_COUNT};
use crate::ir::hash::hash_value;
use crate::ir::index::{indexed_by, is_exact_key, IndexedBy};
use crate::ir::types::{name_has_prefix, name_has_suffix, Type};
use crate::ir::value::{Value, Verdict};
use crate::ir::{Action, ArithOp, CmpOp, ConstSet, Expr, ExprKind, Func, Policy, Rule, Stmt};
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
use helpers::*;
use lower::*;
use plan::*;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

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
