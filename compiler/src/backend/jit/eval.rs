//! Running compiled rules: the slot buffers of one evaluation
//! ([`Prepared`], reused from query to query), filled from a [`Context`]
//! or straight from a caller's own data ([`SlotSource`], the server's query
//! path: no `Value` is built, so nothing is allocated once the buffers have
//! grown), then the candidate rules in priority order.
#![allow(unsafe_code)]

use super::abi::Env;
use super::*;
use crate::ir::types::Cidr;
use std::net::IpAddr;

/// The slot buffers of one evaluation. Keep one per worker and refill it
/// per query: its buffers are reused. It is not tied to a policy: an
/// evaluation by another policy refills it first.
pub struct Prepared {
    vals: Vec<i64>,
    present: Vec<u8>,
    read: Vec<u8>,
    env: Env,
    candidates: Vec<u32>,
    /// The query name, when no compiled code needs its id (the index still
    /// looks it up).
    qname: String,
    /// Fields the rule index consulted to find the candidates.
    index_read: u32,
}

// SAFETY: the policy pointer in `env` is dereferenced only while that
// policy evaluates (it sets the pointer first), on the thread doing so; the
// buffers are owned. Moving a `Prepared` between threads is therefore fine.
unsafe impl Send for Prepared {}

impl Default for Prepared {
    fn default() -> Self {
        Prepared {
            vals: Vec::new(),
            present: Vec::new(),
            read: Vec::new(),
            env: Env::new(),
            candidates: Vec::new(),
            qname: String::new(),
            index_read: 0,
        }
    }
}

/// A context field's value as the caller holds it.
#[derive(Clone, Copy, Debug)]
pub enum SlotValue<'a> {
    /// `bool`
    Bool(bool),
    /// `int`
    Int(i64),
    /// `qtype`
    Qtype(u16),
    /// `string`
    Str(&'a str),
    /// `name` (canonical)
    Name(&'a str),
    /// `ip`
    Ip(IpAddr),
    /// `cidr`
    Cidr(Cidr),
}

/// Where an evaluation's fields come from when the caller has no
/// [`Context`]: asked once per field the policy reads.
pub trait SlotSource {
    /// The value of `field`, or `None` when it is missing.
    fn field(&mut self, field: Field) -> Option<SlotValue<'_>>;
    /// An injected variable by path (default: every variable is missing).
    fn var(&mut self, _path: &str) -> Option<SlotValue<'_>> {
        None
    }
    /// The whole context, for the rules the JIT leaves to the interpreter
    /// (asked only when such a rule is a candidate).
    fn context(&mut self) -> &Context;
}

/// The outcome of one compiled evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct JitOutcome<'p> {
    /// The verdict (borrowed from the table when static), or `None`.
    pub verdict: Option<Cow<'p, Verdict>>,
    /// Index of the deciding rule.
    pub rule: Option<usize>,
    /// Context fields the evaluation depended on, one bit per [`Field`]
    /// (what compiled code read, what the rule index consulted, and all
    /// the policy reads when an interpreted rule ran): for the ECS scope.
    pub fields_read: u32,
    /// Fields read while missing (each counted once).
    pub missing_reads: u32,
}

struct ContextSource<'c>(&'c Context);

impl SlotSource for ContextSource<'_> {
    fn field(&mut self, field: Field) -> Option<SlotValue<'_>> {
        slot_of(self.0.get(field)?)
    }
    fn var(&mut self, path: &str) -> Option<SlotValue<'_>> {
        slot_of(self.0.var(path)?)
    }
    fn context(&mut self) -> &Context {
        self.0
    }
}

fn slot_of(v: &Value) -> Option<SlotValue<'_>> {
    Some(match v {
        Value::Bool(b) => SlotValue::Bool(*b),
        Value::Int(i) => SlotValue::Int(*i),
        Value::Qtype(q) => SlotValue::Qtype(*q),
        Value::Str(s) => SlotValue::Str(s),
        Value::Name(s) => SlotValue::Name(s),
        Value::Ip(ip) => SlotValue::Ip(*ip),
        Value::Cidr(c) => SlotValue::Cidr(*c),
        // Lists are never read by compiled code (the rule falls back).
        Value::List(_) => return None,
    })
}

fn fits(v: &SlotValue<'_>, ty: &Type) -> bool {
    matches!(
        (v, ty),
        (SlotValue::Bool(_), Type::Bool)
            | (SlotValue::Int(_), Type::Int)
            | (SlotValue::Qtype(_), Type::Qtype)
            | (SlotValue::Str(_), Type::String)
            | (SlotValue::Name(_), Type::Name)
            | (SlotValue::Ip(_), Type::Ip)
            | (SlotValue::Cidr(_), Type::Cidr)
    )
}

impl JitPolicy {
    /// Converts a context for compiled code: slot values, interned ids and
    /// the rule candidates of its query name.
    pub fn prepare(&self, ctx: &Context) -> Prepared {
        let mut p = Prepared::default();
        self.refill(ctx, &mut p);
        p
    }

    /// [`JitPolicy::prepare`] into an existing `Prepared`, reusing its buffers.
    pub fn refill(&self, ctx: &Context, p: &mut Prepared) {
        self.refill_from(&mut ContextSource(ctx), p);
    }

    /// Fills `p` from a [`SlotSource`]: the fields the policy reads, its
    /// injected variables, and the rule candidates.
    pub fn refill_from(&self, src: &mut dyn SlotSource, p: &mut Prepared) {
        let n = FIELD_COUNT + self.policy.inputs.len();
        p.vals.clear();
        p.vals.resize(n, 0);
        p.present.clear();
        p.present.resize(n, 0);
        p.read.clear();
        p.read.resize(n, 0);
        p.env.jit = self;
        p.env.dynamic.clear();
        p.env.text.clear();
        p.env.verdict = None;
        let put = |slot: usize, v: SlotValue<'_>, p: &mut Prepared| {
            p.vals[slot] = match v {
                SlotValue::Bool(b) => i64::from(b),
                SlotValue::Int(i) => i,
                SlotValue::Qtype(q) => i64::from(q),
                SlotValue::Str(s) => p.env.intern_text(s, false),
                SlotValue::Name(s) => p.env.intern_text(s, true),
                SlotValue::Ip(ip) => p.env.intern(&Value::Ip(ip)),
                SlotValue::Cidr(c) => p.env.intern(&Value::Cidr(c)),
            };
            p.present[slot] = 1;
        };
        let (mut name, mut ip, mut subnet) = (None::<&str>, None, None);
        let mut mask = self.fields;
        while mask != 0 {
            let f = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let Some(info) = FIELDS.get(f) else { continue };
            let Some(v) = src.field(info.field) else {
                continue;
            };
            match (info.field, v) {
                (Field::QueryName, SlotValue::Name(s)) => {
                    // The index looks the name up after every field is in.
                    if self.name_slot {
                        put(f, SlotValue::Name(s), p);
                    } else {
                        p.qname.clear();
                        p.qname.push_str(s);
                        p.present[f] = 1;
                    }
                    name = Some("");
                }
                (Field::ClientIp, SlotValue::Ip(a)) => ip = Some(a),
                (Field::ClientSubnet, SlotValue::Cidr(c)) => subnet = Some(c),
                _ => {}
            }
            if !matches!(info.field, Field::QueryName) && fits(&v, &info.ty) {
                put(f, v, p);
            }
        }
        for (i, input) in self.policy.inputs.iter().enumerate() {
            if let Some(v) = src.var(&input.path).filter(|v| fits(v, &input.ty)) {
                put(FIELD_COUNT + i, v, p);
            }
        }
        // The name's text is the first dynamic or literal value interned for
        // its slot: read it back rather than borrowing the source twice.
        let qname = match name {
            None => None,
            Some(_) if !self.name_slot => Some(p.qname.as_str()),
            Some(_) => match p.env.get(p.vals[Field::QueryName as usize]) {
                Some(super::abi::V::Name(s)) => Some(s),
                _ => None,
            },
        };
        let index = &self.policy.index;
        // Borrow juggling: the candidates buffer is separate from the env.
        let mut candidates = std::mem::take(&mut p.candidates);
        index.candidates_into(qname, ip, subnet, &mut candidates);
        p.candidates = candidates;
        p.index_read = index.fields_consulted();
    }

    /// Evaluates a prepared context; `ctx` is the context it was prepared
    /// from (rules left to the interpreter read it).
    pub fn eval_prepared(&self, p: &mut Prepared, ctx: &Context) -> JitOutcome<'_> {
        // Compiled code trusts the slot buffers' length and the helpers the
        // policy pointer: a `Prepared` made for another policy is redone.
        if !std::ptr::eq(p.env.jit, self) || p.vals.len() != FIELD_COUNT + self.policy.inputs.len()
        {
            self.refill(ctx, p);
        }
        self.run(p, &mut ContextSource(ctx))
    }

    /// Looking up a batch of query names together, so that their cache
    /// misses (a 100 000-rule index, constant and verdict table are far
    /// bigger than the caches) overlap instead of each query waiting for
    /// its own in turn. Step 1 of 3, run over the whole batch before the
    /// next: start loading the name slots `name` reads. Hints only, like
    /// the other steps: no effect on any result.
    pub fn prefetch_name(&self, name: &str) {
        self.policy.index.prefetch_name(name);
    }

    /// Step 2 (the slots now in cache): the first rule `name` leads to by
    /// name, its constant starting to load.
    pub fn prefetch_rule(&self, name: &str) -> Option<u32> {
        let mut first = None;
        self.policy.index.name_rules(name, |r| {
            first = Some(first.map_or(r, |f: u32| f.min(r)));
        });
        let r = first?;
        if let Some(c) = self.consts.get(r as usize) {
            crate::ir::name_table::prefetch(c);
        }
        Some(r)
    }

    /// Step 3: start loading the verdict of rule `rule` when it is constant.
    pub fn prefetch_verdict(&self, rule: u32) {
        let c = self.consts.get(rule as usize).copied().unwrap_or(CODE);
        if let Some(v) = self.verdicts.get(c as usize) {
            crate::ir::name_table::prefetch(v);
        }
    }

    /// Fills `p` from `src` and evaluates: the server's query path.
    pub fn eval_source(&self, p: &mut Prepared, src: &mut dyn SlotSource) -> JitOutcome<'_> {
        self.refill_from(src, p);
        self.run(p, src)
    }

    fn run(&self, p: &mut Prepared, src: &mut dyn SlotSource) -> JitOutcome<'_> {
        let base = p.env.dynamic.len();
        p.read.iter_mut().for_each(|r| *r = 0);
        let jc = JitCtx {
            vals: p.vals.as_ptr(),
            present: p.present.as_ptr(),
            env: &mut p.env,
            read: p.read.as_mut_ptr(),
        };
        let mut out = JitOutcome {
            verdict: None,
            rule: None,
            fields_read: p.index_read,
            missing_reads: 0,
        };
        for &i in &p.candidates {
            let i = i as usize;
            let c = self.consts[i];
            let r = match code_place(c) {
                None => i64::from(c),
                Some(at) => match &self.code[at] {
                    Code::Jit { shape, k } => {
                        // SAFETY: `jc` points at live buffers of the right
                        // length for this policy's slots; `k` holds the
                        // constants the shape reads.
                        unsafe { (self.shapes[*shape])(&jc, k.as_ptr()) }
                    }
                    Code::Interp => {
                        out.fields_read |= self.fields;
                        let verdict = self
                            .interpreted_rule(i)
                            .and_then(|rule| self.policy.eval_rule_of(i, rule, src.context()));
                        match verdict {
                            Some(v) => {
                                out.verdict = Some(Cow::Owned(v));
                                out.rule = Some(i);
                                break;
                            }
                            None => -1,
                        }
                    }
                },
            };
            if r >= 0 {
                out.verdict = self.verdicts.get(r as usize).map(Cow::Borrowed);
                out.rule = Some(i);
                break;
            }
            if r == -2 {
                // SAFETY: the call above has returned; nothing else holds
                // the environment.
                let v = unsafe { (*jc.env).verdict.take() };
                out.verdict = v.map(Cow::Owned);
                out.rule = Some(i);
                break;
            }
        }
        for (f, (&read, &present)) in p.read.iter().zip(&p.present).take(FIELD_COUNT).enumerate() {
            if read != 0 {
                out.fields_read |= 1 << f;
                out.missing_reads += u32::from(present == 0);
            }
        }
        // Values interned during this evaluation (concat, lower) are its own.
        p.env.truncate(base);
        out
    }

    /// Prepares and evaluates in one step.
    pub fn eval(&self, ctx: &Context) -> JitOutcome<'_> {
        let mut p = self.prepare(ctx);
        let out = self.eval_prepared(&mut p, ctx);
        JitOutcome {
            verdict: out.verdict.map(|v| Cow::Owned(v.into_owned())),
            ..out
        }
    }
}
