//! Planning: a walk over a rule that writes its *shape* (everything the
//! code depends on except literals) and collects its constants in the
//! order the lowering reads them. Rules with the same shape share a
//! compiled function.

#![deny(unsafe_code)]

use super::*;
use std::fmt::Write as _;

pub(super) fn type_code(t: &Type) -> Option<i64> {
    crate::abi::type_code(t).map(i64::from)
}

/// The verdict table's places by verdict, for planning. Kept by hash, not
/// by a copy of each verdict: a 100 000-answer policy would otherwise hold
/// every verdict twice while it loads.
#[derive(Default)]
pub(super) struct VerdictIds {
    by_hash: FxHashMap<u64, u32>,
    /// Verdicts whose hash an earlier, different verdict has.
    collided: FxHashMap<Verdict, u32>,
}

/// A walk over a rule that writes its shape (everything the code depends
/// on except literals) and collects its constants, in the order the
/// lowering reads them. `None`: the rule uses something not lowered.
pub(super) struct Plan<'a> {
    pub(super) jit_values: &'a mut Vec<Value>,
    pub(super) jit_ids: &'a mut FxHashMap<Value, i64>,
    pub(super) verdicts: &'a mut Vec<Verdict>,
    pub(super) verdict_ids: &'a mut VerdictIds,
    pub(super) shape: String,
    pub(super) k: Vec<i64>,
}

impl Plan<'_> {
    pub(super) fn tok(&mut self, t: std::fmt::Arguments<'_>) {
        let _ = self.shape.write_fmt(t);
        self.shape.push(' ');
    }

    pub(super) fn word(&mut self, w: &str) {
        self.shape.push_str(w);
        self.shape.push(' ');
    }

    pub(super) fn intern(&mut self, v: &Value) -> i64 {
        match v {
            Value::Bool(b) => i64::from(*b),
            Value::Int(i) => *i,
            Value::Qtype(q) => i64::from(*q),
            other => intern_literal(self.jit_values, self.jit_ids, other),
        }
    }

    pub(super) fn verdict(&mut self, v: Verdict) -> u32 {
        let ids = &mut *self.verdict_ids;
        let h = {
            use std::hash::BuildHasher;
            rustc_hash::FxBuildHasher.hash_one(&v)
        };
        let place = self.verdicts.len() as u32;
        match ids.by_hash.entry(h) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let i = *e.get();
                if self.verdicts[i as usize] == v {
                    return i;
                }
                // Two verdicts with one hash: the second and later ones
                // are kept whole.
                if let Some(&i) = ids.collided.get(&v) {
                    return i;
                }
                ids.collided.insert(v.clone(), place);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(place);
            }
        }
        self.verdicts.push(v);
        place
    }

    pub(super) fn rule(&mut self, r: &Rule, skip_guard: bool, skip_if: bool) -> Option<()> {
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

    pub(super) fn stmts(&mut self, stmts: &[Stmt]) -> Option<()> {
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

    pub(super) fn then(&mut self, a: &Action) -> Option<()> {
        if let Action::Value(e) = a {
            if !matches!(e.kind, ExprKind::Lit(_)) {
                self.tok(format_args!("then-dyn {}", type_code(&e.ty)?));
                return self.expr(e);
            }
        }
        if let Some((v, Some(key))) = a.keyed_pool() {
            // The static pool verdict's id, then the key computed per query.
            self.word("then-key");
            let id = self.verdict(v);
            self.k.push(i64::from(id));
            return self.expr(key);
        }
        match a.static_verdict() {
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

    pub(super) fn expr(&mut self, e: &Expr) -> Option<()> {
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
