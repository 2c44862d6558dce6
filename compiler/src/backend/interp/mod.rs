//! The reference interpreter. It defines the meaning of every construct;
//! the JIT and WASM backends are tested against it.
//!
//! Missing values (a context field or injected variable the caller did not
//! set) follow one rule: every comparison that reads one is false, a bool
//! read in a condition is false, arithmetic and functions of one are
//! missing, and a `then` whose value is missing ends its rule without
//! deciding. Every read of a missing value is counted.

mod explain;

pub use explain::explain;

use crate::ir::context::Context;
use crate::ir::hash::hash_value;
use crate::ir::types::{name_has_prefix, name_has_suffix, Cidr};
use crate::ir::value::{Value, Verdict};
use crate::ir::{Action, ArithOp, CmpOp, ConstSet, Expr, ExprKind, Func, Policy, Rule, Stmt};
use crate::syntax::span::Span;
use std::net::IpAddr;

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The verdict, or `None` when no rule decided.
    pub verdict: Option<Verdict>,
    /// Index into [`Policy::rules`] of the deciding rule.
    pub rule: Option<usize>,
    /// How many times a missing field or variable was read.
    pub missing_reads: u32,
    /// Which context fields were read, one bit per [`crate::Field`]
    /// (`1 << field as u32`). The server uses it to tell caches whether the
    /// answer depended on the client's address (the ECS scope).
    pub fields_read: u32,
    /// What happened, when tracing was asked for.
    pub trace: Option<Trace>,
}

/// The path an evaluation took, for `eval --explain`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// One step of a [`Trace`].
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// This many rules were not tried: the name index showed their
    /// condition on `query.name` cannot hold.
    IndexSkipped(usize),
    /// Started evaluating rule `rule` (index into [`Policy::rules`]).
    Rule(usize),
    /// A `when` guard was evaluated.
    Guard {
        /// The guard's span.
        span: Span,
        /// Its value.
        result: bool,
    },
    /// An `if` condition was evaluated.
    Cond {
        /// The condition's span.
        span: Span,
        /// Its value.
        result: bool,
    },
    /// A `then` decided.
    Decided {
        /// The `then` statement's span.
        span: Span,
    },
    /// A `then` could not decide because a value it needs is missing.
    MissingValue {
        /// The `then` statement's span.
        span: Span,
    },
}

enum Flow {
    Next,
    EndRule,
    Decided(Verdict),
}

struct Interp<'p, 'c> {
    policy: &'p Policy,
    ctx: &'c Context,
    locals: Vec<Option<Value>>,
    missing: u32,
    fields_read: u32,
    trace: Option<Trace>,
}

impl Policy {
    /// Evaluates the policy for one context.
    pub fn eval(&self, ctx: &Context) -> Evaluation {
        self.run(ctx, false, true)
    }

    /// Evaluates the policy and records which rules and conditions decided.
    pub fn eval_traced(&self, ctx: &Context) -> Evaluation {
        self.run(ctx, true, true)
    }

    /// Evaluates every rule in order, without the name index: the
    /// reference the index is tested against.
    pub fn eval_without_index(&self, ctx: &Context) -> Evaluation {
        self.run(ctx, false, false)
    }

    /// Evaluates rule `index` alone (what a backend falls back to for a
    /// rule it does not compile): its verdict, or `None` when it does not
    /// decide.
    pub fn eval_rule(&self, index: usize, ctx: &Context) -> Option<Verdict> {
        self.eval_rule_of(index, self.rules.get(index)?, ctx)
    }

    /// Evaluates `rule`, rule `index` of this policy kept apart from
    /// [`Policy::rules`] (a compiled policy keeps only the rules it
    /// interprets).
    pub fn eval_rule_of(&self, index: usize, rule: &Rule, ctx: &Context) -> Option<Verdict> {
        let mut it = Interp {
            policy: self,
            ctx,
            locals: Vec::new(),
            missing: 0,
            fields_read: 0,
            trace: None,
        };
        it.rule(index, rule)
    }

    fn run(&self, ctx: &Context, traced: bool, indexed: bool) -> Evaluation {
        let mut it = Interp {
            policy: self,
            ctx,
            locals: Vec::new(),
            missing: 0,
            fields_read: 0,
            trace: traced.then(Trace::default),
        };
        let mut outcome = (None, None);
        // Only rules the index says can match are evaluated; skipping the
        // others cannot change the verdict (a necessary condition of theirs
        // is false), and it keeps 100 000-rule policies flat.
        let mut candidates = Vec::new();
        if indexed {
            self.index.candidates_in(ctx, &mut candidates);
        } else {
            candidates.extend(0..self.rules.len() as u32);
        }
        let skipped = self.rules.len() - candidates.len();
        if skipped > 0 {
            it.step(Step::IndexSkipped(skipped));
        }
        for i in candidates {
            let i = i as usize;
            if let Some(v) = it.rule(i, &self.rules[i]) {
                outcome = (Some(v), Some(i));
                break;
            }
        }
        Evaluation {
            verdict: outcome.0,
            rule: outcome.1,
            missing_reads: it.missing,
            // Skipping a rule by the client's prefix is a decision that
            // depended on the client: the index's reads count too.
            fields_read: it.fields_read
                | if indexed {
                    self.index.fields_consulted()
                } else {
                    0
                },
            trace: it.trace,
        }
    }
}

impl Interp<'_, '_> {
    fn step(&mut self, s: Step) {
        if let Some(t) = &mut self.trace {
            t.steps.push(s);
        }
    }

    fn rule(&mut self, index: usize, rule: &Rule) -> Option<Verdict> {
        self.step(Step::Rule(index));
        self.locals.clear();
        self.locals.resize(rule.locals as usize, None);
        if let Some(g) = &rule.guard {
            let ok = self.cond(g);
            self.step(Step::Guard {
                span: g.span,
                result: ok,
            });
            if !ok {
                return None;
            }
        }
        match self.block(&rule.body) {
            Flow::Decided(v) => Some(v),
            Flow::Next | Flow::EndRule => None,
        }
    }

    fn block(&mut self, stmts: &[Stmt]) -> Flow {
        for s in stmts {
            match self.stmt(s) {
                Flow::Next => {}
                other => return other,
            }
        }
        Flow::Next
    }

    fn stmt(&mut self, s: &Stmt) -> Flow {
        match s {
            Stmt::If {
                cond,
                then_body,
                else_body,
            } => {
                let c = self.cond(cond);
                self.step(Step::Cond {
                    span: cond.span,
                    result: c,
                });
                self.block(if c { then_body } else { else_body })
            }
            Stmt::Let { local, value } => {
                let v = self.eval(value);
                self.locals[*local as usize] = v;
                Flow::Next
            }
            Stmt::Then { action, span } => match self.action(action) {
                Some(v) => {
                    self.step(Step::Decided { span: *span });
                    Flow::Decided(v)
                }
                None => {
                    self.step(Step::MissingValue { span: *span });
                    Flow::EndRule
                }
            },
        }
    }

    fn action(&mut self, a: &Action) -> Option<Verdict> {
        Some(match a {
            Action::Value(e) => Verdict::Value(self.eval(e)?),
            Action::Answer { rtype, data, ttl } => {
                let mut out = Vec::with_capacity(data.len());
                for d in data {
                    let v = self.eval(d)?;
                    // A run-time address of the wrong family cannot be an A/AAAA record.
                    let fits = match (rtype, &v) {
                        (1, Value::Ip(ip)) => ip.is_ipv4(),
                        (28, Value::Ip(ip)) => ip.is_ipv6(),
                        _ => true,
                    };
                    if !fits {
                        return None;
                    }
                    out.push(v);
                }
                Verdict::Answer {
                    rtype: *rtype,
                    data: out.into(),
                    ttl: self.ttl(ttl)?,
                }
            }
            Action::Rewrite { target, ttl } => match self.eval(target)? {
                Value::Name(n) => Verdict::Rewrite {
                    target: n.to_string(),
                    ttl: self.ttl(ttl)?,
                },
                _ => return None,
            },
            Action::Forward(p) => Verdict::Forward {
                pool: self.eval(p)?.to_string(),
            },
            Action::Pool { key, .. } => {
                let (v, _) = a.keyed_pool()?;
                match (v, key) {
                    (
                        Verdict::Pool {
                            key: _,
                            pool,
                            pick,
                            count,
                            ttl,
                        },
                        Some(k),
                    ) => {
                        let Value::Int(k) = self.eval(k)? else {
                            return None;
                        };
                        Verdict::Pool {
                            pool,
                            pick,
                            count,
                            ttl,
                            key: Some(k),
                        }
                    }
                    (v, _) => v,
                }
            }
            Action::Nxdomain => Verdict::Nxdomain,
            Action::Nodata => Verdict::Nodata,
            Action::Refuse => Verdict::Refuse,
            Action::Servfail => Verdict::Servfail,
            Action::Drop => Verdict::Drop,
            Action::Truncate => Verdict::Truncate,
            Action::Pass => Verdict::Pass,
            Action::Route { .. } | Action::Respond { .. } | Action::Redirect { .. } => {
                // Constants, checked at compile time.
                return a.static_verdict().ok().flatten();
            }
        })
    }

    /// TTLs outside 0..=2^31-1 (RFC 2181) make the `then` pass.
    fn ttl(&mut self, e: &Expr) -> Option<u32> {
        match self.eval(e)? {
            Value::Int(t) if (0..=i64::from(i32::MAX)).contains(&t) => Some(t as u32),
            _ => None,
        }
    }

    /// A bool in a condition: missing reads as false.
    fn cond(&mut self, e: &Expr) -> bool {
        matches!(self.eval(e), Some(Value::Bool(true)))
    }

    fn eval(&mut self, e: &Expr) -> Option<Value> {
        match &e.kind {
            ExprKind::Lit(v) => Some(v.clone()),
            ExprKind::Field(f) => {
                self.fields_read |= 1 << (*f as u32);
                let v = self.ctx.get(*f).cloned();
                self.count(v)
            }
            ExprKind::Input(i) => {
                let input = &self.policy.inputs[*i as usize];
                // A value of the wrong type is treated as missing, never trusted.
                let v = self
                    .ctx
                    .var(&input.path)
                    .filter(|v| value_fits(v, &input.ty))
                    .cloned();
                self.count(v)
            }
            ExprKind::Local(l) => self.locals[*l as usize].clone(),
            ExprKind::Not(a) => Some(Value::Bool(!self.cond(a))),
            ExprKind::And(a, b) => Some(Value::Bool(self.cond(a) && self.cond(b))),
            ExprKind::Or(a, b) => Some(Value::Bool(self.cond(a) || self.cond(b))),
            ExprKind::Neg(a) => match self.eval(a)? {
                Value::Int(i) => Some(Value::Int(i.wrapping_neg())),
                _ => None,
            },
            ExprKind::Cmp(op, a, b) => {
                let (a, b) = (self.eval(a), self.eval(b));
                Some(Value::Bool(match (a, b) {
                    (Some(a), Some(b)) => compare(*op, &a, &b),
                    _ => false,
                }))
            }
            ExprKind::InSet {
                needle,
                set,
                negate,
            } => {
                let Some(n) = self.eval(needle) else {
                    return Some(Value::Bool(false));
                };
                let found = in_const_set(&self.policy.sets[*set as usize], &n);
                Some(Value::Bool(found != *negate))
            }
            ExprKind::InExpr {
                needle,
                haystack,
                negate,
            } => {
                let (n, h) = (self.eval(needle), self.eval(haystack));
                let (Some(n), Some(h)) = (n, h) else {
                    return Some(Value::Bool(false));
                };
                let found = match (&n, &h) {
                    (_, Value::List(items)) => items.contains(&n),
                    (Value::Ip(ip), Value::Cidr(c)) => c.contains(ip),
                    (Value::Cidr(inner), Value::Cidr(c)) => c.covers(inner),
                    _ => false,
                };
                Some(Value::Bool(found != *negate))
            }
            ExprKind::Matches(a, re) => {
                let Some(v) = self.eval(a) else {
                    return Some(Value::Bool(false));
                };
                let text = match &v {
                    Value::Str(s) | Value::Name(s) => s,
                    _ => return Some(Value::Bool(false)),
                };
                Some(Value::Bool(
                    self.policy.regexes[*re as usize].is_match(text),
                ))
            }
            ExprKind::StartsWith(a, b) | ExprKind::EndsWith(a, b) => {
                let starts = matches!(e.kind, ExprKind::StartsWith(..));
                let (a, b) = (self.eval(a), self.eval(b));
                Some(Value::Bool(match (a, b) {
                    (Some(Value::Name(a)), Some(Value::Name(b))) => {
                        if starts {
                            name_has_prefix(&a, &b)
                        } else {
                            name_has_suffix(&a, &b)
                        }
                    }
                    (Some(Value::Str(a)), Some(Value::Str(b))) => {
                        if starts {
                            a.starts_with(&*b)
                        } else {
                            a.ends_with(&*b)
                        }
                    }
                    _ => false,
                }))
            }
            ExprKind::Arith(op, a, b) => {
                let (Value::Int(a), Value::Int(b)) = (self.eval(a)?, self.eval(b)?) else {
                    return None;
                };
                Some(Value::Int(arith(*op, a, b)))
            }
            ExprKind::Concat(a, b) => {
                let (a, b) = (self.eval(a)?, self.eval(b)?);
                Some(Value::Str(format!("{a}{b}").into()))
            }
            ExprKind::Call(f, args) => {
                let v = self.eval(args.first()?)?;
                Some(match (f, v) {
                    (Func::Hash, v) => Value::Int(hash_value(&v)),
                    (Func::Lower, Value::Str(s)) => Value::Str(s.to_lowercase().into()),
                    (Func::Lower, v @ Value::Name(_)) => v,
                    (Func::Len, Value::Str(s) | Value::Name(s)) => {
                        Value::Int(s.chars().count() as i64)
                    }
                    (Func::Len, Value::List(items)) => Value::Int(items.len() as i64),
                    _ => return None,
                })
            }
            ExprKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.eval(i)?);
                }
                Some(Value::List(out.into()))
            }
        }
    }

    fn count(&mut self, v: Option<Value>) -> Option<Value> {
        if v.is_none() {
            self.missing += 1;
        }
        v
    }
}

/// Integer arithmetic as the language defines it: wrapping, and 0 for
/// division or remainder by zero.
pub fn arith(op: ArithOp, a: i64, b: i64) -> i64 {
    match op {
        ArithOp::Add => a.wrapping_add(b),
        ArithOp::Sub => a.wrapping_sub(b),
        ArithOp::Mul => a.wrapping_mul(b),
        ArithOp::Div if b == 0 => 0,
        ArithOp::Div => a.wrapping_div(b),
        ArithOp::Rem if b == 0 => 0,
        ArithOp::Rem => a.wrapping_rem(b),
    }
}

fn compare(op: CmpOp, a: &Value, b: &Value) -> bool {
    match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        _ => {
            let (Value::Int(a), Value::Int(b)) = (a, b) else {
                return false;
            };
            match op {
                CmpOp::Lt => a < b,
                CmpOp::Le => a <= b,
                CmpOp::Gt => a > b,
                CmpOp::Ge => a >= b,
                CmpOp::Eq | CmpOp::Ne => false,
            }
        }
    }
}

fn in_const_set(set: &ConstSet, v: &Value) -> bool {
    match (set, v) {
        (ConstSet::Names(ns), Value::Name(n)) => ns.contains(n),
        (ConstSet::Cidrs(cs), Value::Ip(ip)) => cs.iter().any(|c| c.contains(ip)),
        (ConstSet::Cidrs(cs), Value::Cidr(inner)) => cs.iter().any(|c| c.covers(inner)),
        (ConstSet::Values(vs), v) => vs.contains(v),
        (ConstSet::Live(l), Value::Name(n)) => l.contains_name(n),
        (ConstSet::Live(l), Value::Ip(ip)) => l.contains_ip(ip),
        (ConstSet::Live(l), Value::Cidr(c)) => l.covers(c),
        _ => false,
    }
}

/// Whether a run-time value has the static type `ty` (lists check every element).
pub fn value_fits(v: &Value, ty: &crate::ir::types::Type) -> bool {
    use crate::ir::types::Type;
    match (v, ty) {
        (Value::List(items), Type::List(t)) => items.iter().all(|i| value_fits(i, t)),
        (_, Type::Unknown) => true,
        (v, t) => &v.ty() == t,
    }
}

/// The default `client.subnet` for a source address without ECS: its /24
/// (IPv4) or /56 (IPv6).
pub fn default_subnet(ip: IpAddr) -> Cidr {
    Cidr::containing(ip, if ip.is_ipv4() { 24 } else { 56 })
}
