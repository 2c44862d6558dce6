//! W0007: a `when` guard that matches nothing. The guard's conjuncts are
//! read as constraints on one subject each (a context field or an injected
//! variable: `==`, `!=`, `in` a set or prefix), and two that no value can
//! meet together are reported with both places. Conservative: only
//! certain contradictions are said (two prefixes are either nested or
//! disjoint, so prefix checks are exact); anything else is assumed
//! satisfiable.

use crate::diagnostics::Diagnostic;
use crate::ir::context::Field;
use crate::ir::value::Value;
use crate::ir::{CmpOp, ConstSet, Expr, ExprKind, Policy};
use crate::Span;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Subject {
    Field(Field),
    Input(u32),
}

#[derive(Clone, Copy)]
enum Atom<'a> {
    Eq(&'a Value),
    Ne(&'a Value),
    In(&'a ConstSet),
    NotIn(&'a ConstSet),
}

struct Constraint<'a> {
    subject: Subject,
    atom: Atom<'a>,
    span: Span,
}

fn subject(e: &Expr) -> Option<Subject> {
    match e.kind {
        ExprKind::Field(f) => Some(Subject::Field(f)),
        ExprKind::Input(i) => Some(Subject::Input(i)),
        _ => None,
    }
}

fn literal(e: &Expr) -> Option<&Value> {
    match &e.kind {
        ExprKind::Lit(v) => Some(v),
        _ => None,
    }
}

/// The conjuncts of `e` (`a && b && c`).
fn conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match &e.kind {
        ExprKind::And(a, b) => {
            conjuncts(a, out);
            conjuncts(b, out);
        }
        _ => out.push(e),
    }
}

/// A conjunct as a constraint, when it is one of the simple forms.
/// `negated` reads it under a `!`.
fn constraint<'a>(p: &'a Policy, e: &'a Expr, negated: bool) -> Option<Constraint<'a>> {
    let (subject, atom) = match &e.kind {
        ExprKind::Not(inner) => return constraint(p, inner, !negated),
        ExprKind::Cmp(op @ (CmpOp::Eq | CmpOp::Ne), a, b) => {
            let (s, v) = match (subject(a), literal(b), subject(b), literal(a)) {
                (Some(s), Some(v), _, _) | (_, _, Some(s), Some(v)) => (s, v),
                _ => return None,
            };
            let eq = (*op == CmpOp::Eq) != negated;
            (s, if eq { Atom::Eq(v) } else { Atom::Ne(v) })
        }
        ExprKind::InSet {
            needle,
            set,
            negate,
        } => {
            let set = p.sets.get(*set as usize)?;
            let inside = *negate == negated;
            (
                subject(needle)?,
                if inside {
                    Atom::In(set)
                } else {
                    Atom::NotIn(set)
                },
            )
        }
        _ => return None,
    };
    Some(Constraint {
        subject,
        atom,
        span: e.span,
    })
}

/// Whether `v` is certainly in / certainly not in `set`: `None` when the
/// kinds do not line up (then nothing is claimed).
fn member(set: &ConstSet, v: &Value) -> Option<bool> {
    match (set, v) {
        (ConstSet::Names(n), Value::Name(x)) => Some(n.contains(x)),
        (ConstSet::Cidrs(cs), Value::Ip(ip)) if !mapped(ip) => {
            Some(cs.iter().any(|c| c.contains(ip)))
        }
        (ConstSet::Values(vs), v) if !matches!(v, Value::Ip(_)) => Some(vs.contains(v)),
        _ => None,
    }
}

/// An IPv4-mapped IPv6 address: whether it equals its IPv4 form is the
/// runtime's business, so no claim is made about it.
fn mapped(ip: &std::net::IpAddr) -> bool {
    matches!(ip, std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

/// Whether two values are certainly different.
fn differ(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Ip(x), Value::Ip(y)) => x.to_canonical() != y.to_canonical(),
        (Value::Ip(_), _) | (_, Value::Ip(_)) => false,
        _ => a != b,
    }
}

/// Whether `a` and `b` certainly cannot both hold.
fn clash(a: Atom<'_>, b: Atom<'_>) -> bool {
    use Atom::*;
    match (a, b) {
        (Eq(x), Eq(y)) => differ(x, y),
        (Eq(x), Ne(y)) | (Ne(y), Eq(x)) => x == y,
        (Eq(v), In(s)) | (In(s), Eq(v)) => member(s, v) == Some(false),
        (Eq(v), NotIn(s)) | (NotIn(s), Eq(v)) => member(s, v) == Some(true),
        // Prefixes are nested or disjoint; across families no claim.
        (In(ConstSet::Cidrs(a)), In(ConstSet::Cidrs(b))) => a.iter().all(|x| {
            b.iter()
                .all(|y| x.addr.is_ipv4() == y.addr.is_ipv4() && !x.covers(y) && !y.covers(x))
        }),
        _ => false,
    }
}

/// W0007 for every rule whose guard matches nothing.
pub(super) fn lints(p: &Policy) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for r in &p.rules {
        let Some(g) = &r.guard else { continue };
        let mut parts = Vec::new();
        conjuncts(g, &mut parts);
        let constant_false = parts
            .iter()
            .find(|e| matches!(e.kind, ExprKind::Lit(Value::Bool(false))));
        let found = if let Some(f) = constant_false {
            Some((f.span, None))
        } else {
            let cs: Vec<Constraint<'_>> = parts
                .iter()
                .filter_map(|e| constraint(p, e, false))
                .collect();
            let empty = cs
                .iter()
                .find(|c| matches!(c.atom, Atom::In(s) if s.is_empty()));
            empty.map(|c| (c.span, None)).or_else(|| {
                cs.iter().enumerate().find_map(|(i, a)| {
                    cs[i + 1..]
                        .iter()
                        .find(|b| a.subject == b.subject && clash(a.atom, b.atom))
                        .map(|b| (b.span, Some(a.span)))
                })
            })
        };
        let Some((here, earlier)) = found else {
            continue;
        };
        let mut d = Diagnostic::warning(
            "W0007",
            format!("the `when` guard of rule `{}` matches nothing", r.name),
            here,
        )
        .with_label(if earlier.is_some() {
            "cannot hold together with the condition before it"
        } else {
            "never true"
        })
        .with_help("the rule never runs: fix the condition or remove the rule");
        if let Some(e) = earlier {
            d = d.with_secondary(e, "this condition");
        }
        out.push(d);
    }
    out
}
