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
mod eval;
mod helpers;
mod lower;
mod plan;
mod planner;

pub use abi::{Env, JitCtx};
pub use eval::{JitOutcome, Prepared, SlotSource, SlotValue};
pub use planner::Planner;

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

/// Set in [`JitPolicy::consts`] for a rule that is code: the rest of the
/// word is its place in [`JitPolicy::code`]. Clear: a constant verdict.
const CODE: u32 = 1 << 31;

/// The place in [`JitPolicy::code`] of a rule whose [`JitPolicy::consts`]
/// entry is `c`; `None` for a constant verdict (`c` itself).
#[inline]
fn code_place(c: u32) -> Option<usize> {
    (c & CODE != 0).then_some((c & !CODE) as usize)
}

/// A compiled rule function.
type RuleFn = unsafe extern "C" fn(*const JitCtx, *const i64) -> i64;

enum Code {
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
    /// The rules that are not a constant verdict, in order: a policy of
    /// 100 000 constant rules has none (32 bytes a rule otherwise).
    code: Vec<Code>,
    /// Per rule, its verdict when constant, else [`CODE`] and its place in
    /// `code`: 4 bytes a rule (with 100 000 rules a query's cache miss
    /// lands in 400 kB rather than 3.2 MB).
    consts: Vec<u32>,
    values: Vec<Value>,
    ids: FxHashMap<Value, i64>,
    /// Ids of the string and name literals, looked up by text (no `Value`
    /// is built to find one).
    str_ids: FxHashMap<std::sync::Arc<str>, i64>,
    name_ids: FxHashMap<std::sync::Arc<str>, i64>,
    /// Per constant set of values: the ids of its non-scalar members.
    set_ids: Vec<rustc_hash::FxHashSet<i64>>,
    verdicts: Vec<Verdict>,
    /// The place of `pass` in `verdicts` (`u32::MAX`: none).
    pass_id: u32,
    /// The interpreted rules by place, once the rest are released.
    interp: Vec<(u32, crate::ir::Rule)>,
    clif: String,
    stats: JitStats,
    fields: u32,
    /// [`JitPolicy::fields_used`].
    rule_fields: u32,
    /// Whether compiled code reads `query.name` (else its id is not made).
    name_slot: bool,
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

/// Compilation failed (Cranelift refused the code; a bug, reported).
#[derive(Debug, thiserror::Error)]
#[error("JIT compilation failed: {0}")]
pub struct JitError(String);

fn err(e: impl std::fmt::Display) -> JitError {
    JitError(e.to_string())
}

/// The id of a literal, interning it when new.
fn intern_literal(values: &mut Vec<Value>, ids: &mut FxHashMap<Value, i64>, v: &Value) -> i64 {
    if let Some(&id) = ids.get(v) {
        return id;
    }
    values.push(v.clone());
    let id = values.len() as i64 - 1;
    ids.insert(v.clone(), id);
    id
}

impl JitPolicy {
    /// Compiles a checked policy. `with_clif` keeps the Cranelift IR text
    /// of every function (`dnspolicy compile --target clif`).
    pub fn compile(policy: Policy, with_clif: bool) -> Result<JitPolicy, JitError> {
        Self::build(policy, with_clif, Planner::new(false))
    }

    /// [`JitPolicy::compile`] for a server: the syntax of each rule is
    /// freed as soon as it is planned (but an interpreted rule's, and the
    /// one each compiled function is lowered from), and the policy keeps no
    /// rules, as after [`JitPolicy::release_compiled_ir`].
    pub fn compile_for_serving(policy: Policy) -> Result<JitPolicy, JitError> {
        Self::compile_planned(policy, Planner::new(true))
    }

    /// Compiles a policy whose rules `planner` took from the checker as
    /// they were checked ([`Planner::for_serving`] with
    /// [`crate::check::check_for_serving_with`]); plans the rest, builds
    /// the rule index when the planner keeps it, and keeps no rules, as
    /// [`JitPolicy::compile_for_serving`].
    pub fn compile_planned(policy: Policy, planner: Planner) -> Result<JitPolicy, JitError> {
        Self::build(policy, false, planner)
    }

    fn build(
        mut policy: Policy,
        with_clif: bool,
        mut planner: Planner,
    ) -> Result<JitPolicy, JitError> {
        let n = policy.rules.len();
        // Rules planned as the checker handed them over are found by where
        // they start (each rule's own place in the source).
        let mut early: Vec<(u32, u32)> = planner.starts.iter().copied().zip(0u32..).collect();
        early.sort_unstable();
        // Per rule planned early: its place in evaluation order.
        let mut place = vec![u32::MAX; early.len()];
        let mut consts: Vec<u32> = Vec::with_capacity(n);
        let mut code: Vec<Code> = Vec::new();
        // Per shape: the rule its function is lowered from.
        let mut lower_from: Vec<usize> = Vec::new();
        let mut stats = JitStats::default();
        // Two rules found at one place in the source: the plans would be
        // mixed up (a bug, reported rather than served).
        let twice = |i: usize| JitError(format!("rule {i}: two rules start at one byte"));
        for i in 0..n {
            let start = policy.rules[i].span.start;
            let found = early
                .binary_search_by_key(&start, |e| e.0)
                .ok()
                .map(|at| early[at].1 as usize);
            let planned = match found {
                Some(id) => {
                    if place[id] != u32::MAX {
                        return Err(twice(i));
                    }
                    place[id] = i as u32;
                    planner.take(id)
                }
                None => {
                    if let Some(ix) = &mut planner.index {
                        place.push(i as u32);
                        ix.add(&policy.rules[i], &policy.sets);
                    }
                    planner.plan(&mut policy.rules[i], &policy.sets)
                }
            };
            let c = match planned {
                planner::Early::Interp => {
                    stats.interpreted += 1;
                    Code::Interp
                }
                planner::Early::Const(v) if v < CODE => {
                    stats.constant += 1;
                    consts.push(v);
                    continue;
                }
                planner::Early::Const(v) => {
                    return Err(JitError(format!("rule {i}: verdict {v} out of range")))
                }
                planner::Early::Jit { shape, k, lowers } => {
                    stats.compiled += 1;
                    let shape = shape as usize;
                    if lowers {
                        if lower_from.len() <= shape {
                            lower_from.resize(shape + 1, usize::MAX);
                        }
                        lower_from[shape] = i;
                    }
                    Code::Jit { shape, k }
                }
                planner::Early::Taken => return Err(twice(i)),
            };
            consts.push(CODE | code.len() as u32);
            code.push(c);
        }
        drop(early);
        if place.contains(&u32::MAX) || lower_from.len() != planner.shapes() {
            return Err(JitError(
                "a rule planned while checking is not in the policy".into(),
            ));
        }
        planner.taken();
        // Released, the rules go before the index and the code are built
        // (a 100 000-rule policy's are ~14 MB even without their syntax):
        // only the interpreted ones and those shapes are lowered from stay.
        let mut interp: Vec<(u32, Rule)> = Vec::new();
        let mut lowering: Vec<Option<Rule>> = Vec::new();
        if planner.release {
            lowering.resize_with(lower_from.len(), || None);
            for (i, r) in std::mem::take(&mut policy.rules).into_iter().enumerate() {
                match code_place(consts[i]).map(|at| &code[at]) {
                    Some(Code::Interp) => interp.push((i as u32, r)),
                    Some(Code::Jit { shape, .. }) if lower_from[*shape] == i => {
                        lowering[*shape] = Some(r)
                    }
                    _ => {}
                }
            }
        }
        if let Some(ix) = planner.index.take() {
            policy.index = ix.finish(Some(&place));
        }
        drop(place);
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
        let mut func_ids: Vec<FuncId> = Vec::with_capacity(lower_from.len());
        let mut clif = String::new();
        let mut fbc = FunctionBuilderContext::new();
        let mut cctx = module.make_context();
        for (shape, &i) in lower_from.iter().enumerate() {
            let r = match lowering.get(shape) {
                Some(r) => r.as_ref(),
                None => policy.rules.get(i),
            }
            .ok_or_else(|| JitError(format!("shape {shape}: no rule to lower it from")))?;
            let Some(Code::Jit { k, .. }) = code_place(consts[i]).map(|at| &code[at]) else {
                return Err(JitError(format!("rule {}: lowered but not code", r.name)));
            };
            let (skip_guard, skip_if) = planner::elision(r, &policy.sets);
            let name = format!("shape{shape}");
            let id = module
                .declare_function(&name, Linkage::Local, &sig)
                .map_err(err)?;
            cctx.func.signature = sig.clone();
            cctx.func.name = UserFuncName::user(0, shape as u32);
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
                let readp = b.ins().load(I64, MemFlagsData::trusted(), ctxp, 24);
                let end = b.create_block();
                let mut l = Lower {
                    b,
                    helpers: &helpers,
                    vals,
                    present,
                    env: envp,
                    read: readp,
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
                let _ = writeln!(clif, "; shape {shape} (first: rule {})", r.name);
                let _ = writeln!(clif, "{}", cctx.func.display());
            }
            module.define_function(id, &mut cctx).map_err(err)?;
            module.clear_context(&mut cctx);
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
        let planner::Planner {
            mut values,
            mut ids,
            mut verdicts,
            fields: rule_fields,
            name_slot,
            ..
        } = planner;
        // Grown by doubling: up to half of it would be slack for as long
        // as the policy serves.
        verdicts.shrink_to_fit();
        // Members of value sets get ids too, so membership is an id test.
        let set_ids = policy
            .sets
            .iter()
            .map(|s| match s {
                ConstSet::Values(vs) => vs
                    .iter()
                    .filter(|v| !matches!(v, Value::Bool(_) | Value::Int(_) | Value::Qtype(_)))
                    .map(|v| intern_literal(&mut values, &mut ids, v))
                    .collect(),
                _ => rustc_hash::FxHashSet::default(),
            })
            .collect();
        let mut str_ids = FxHashMap::default();
        let mut name_ids = FxHashMap::default();
        for (v, &id) in &ids {
            match v {
                Value::Str(s) => {
                    str_ids.insert(s.clone(), id);
                }
                Value::Name(s) => {
                    name_ids.insert(s.clone(), id);
                }
                _ => {}
            }
        }
        // Text is found by its text from here on: one map for it is enough.
        ids.retain(|v, _| !matches!(v, Value::Str(_) | Value::Name(_)));
        ids.shrink_to_fit();
        code.shrink_to_fit();
        Ok(JitPolicy {
            consts,
            // Only code reads a slot, but the name's is always made: the
            // index looks it up.
            fields: rule_fields | 1 << Field::QueryName as u32,
            rule_fields,
            name_slot,
            policy,
            module: Some(module),
            shapes,
            code,
            values,
            ids,
            str_ids,
            name_ids,
            set_ids,
            pass_id: verdicts
                .iter()
                .position(|v| matches!(v, Verdict::Pass))
                .map_or(u32::MAX, |i| i as u32),
            verdicts,
            interp,
            clif,
            stats,
        })
    }

    /// The context fields the policy's rules read, one bit per [`Field`]
    /// (what [`Policy::fields_used`] said before the rules were released).
    pub fn fields_used(&self) -> u32 {
        self.rule_fields
    }

    /// Frees every rule that runs as native code or is a constant verdict:
    /// evaluation never reads it again. Rules left to the interpreter are
    /// kept apart, by their place; [`JitPolicy::policy`] has no rules after
    /// this (a server keeps its own copy of the names for metrics). A
    /// server holding a 100 000-rule policy keeps the compiled form only.
    pub fn release_compiled_ir(&mut self) {
        if self.policy.rules.is_empty() {
            // Released already (or none): `interp` holds what is kept.
            return;
        }
        let rules = std::mem::take(&mut self.policy.rules);
        self.interp = rules
            .into_iter()
            .zip(&self.consts)
            .enumerate()
            .filter(|(_, (_, &c))| {
                code_place(c).is_some_and(|at| matches!(self.code[at], Code::Interp))
            })
            .map(|(i, (r, _))| (i as u32, r))
            .collect();
    }

    /// Rule `i`, when the interpreter runs it.
    pub(crate) fn interpreted_rule(&self, i: usize) -> Option<&crate::ir::Rule> {
        if self.policy.rules.is_empty() {
            let at = self
                .interp
                .binary_search_by_key(&(i as u32), |(k, _)| *k)
                .ok()?;
            Some(&self.interp[at].1)
        } else {
            self.policy.rules.get(i)
        }
    }

    /// The policy compiled.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The Cranelift IR of the compiled functions (when asked for).
    pub fn clif(&self) -> &str {
        &self.clif
    }

    /// Whether `v` (from an outcome of this policy) is `pass`, without
    /// reading it when it is one of the static verdicts: with 100 000 of
    /// them that read is a cache miss, which a server takes later, beside
    /// other work, when it writes the answer.
    #[inline]
    pub fn is_pass(&self, v: &Verdict) -> bool {
        let table = self.verdicts.as_ptr_range();
        let at = v as *const Verdict;
        if table.contains(&at) {
            (at as usize - table.start as usize) / std::mem::size_of::<Verdict>()
                == self.pass_id as usize
        } else {
            matches!(v, Verdict::Pass)
        }
    }

    /// What the compiler did with the rules (compiled, constant, interpreted).
    pub fn stats(&self) -> JitStats {
        self.stats
    }
}
