//! Lint warnings about rule order, from the checked policy and its rule
//! index: W0005, a rule that can never decide because a rule before it
//! always decides first for every name it could; W0006, two rules of the
//! same priority that can both decide for some name (which one does then
//! depends on their order in the file).
//!
//! Name scopes come from the index's keys (`ir::index::name_scope`): a rule
//! not indexed by name may match any name. The analysis is conservative:
//! W0005 is said only when it is certain.

use super::scope_index::ScopeIndex;
use crate::diagnostics::Diagnostic;
use crate::ir::index::{name_scope, NameScope};
use crate::ir::types::name_has_suffix;
use crate::ir::{Action, Policy, Stmt};
use std::collections::HashMap;

/// `name` is strictly below `base`.
fn below(name: &str, base: &str) -> bool {
    name != base && name_has_suffix(name, base)
}

/// Every name `b` covers is covered by `a` (`None` = every name).
fn covered(b: &Option<NameScope>, a: &Option<NameScope>) -> bool {
    let Some(a) = a else { return true };
    let Some(b) = b else { return false };
    let exact = |e: &str| {
        a.exact.iter().any(|x| &**x == e)
            || a.suffix.iter().any(|s| name_has_suffix(e, s))
            || a.wildcard.iter().any(|w| below(e, w))
    };
    b.exact.iter().all(|e| exact(e))
        && b.suffix
            .iter()
            .all(|s| a.suffix.iter().any(|t| name_has_suffix(s, t)))
        && b.wildcard.iter().all(|w| {
            a.wildcard.iter().any(|v| name_has_suffix(w, v))
                || a.suffix.iter().any(|t| name_has_suffix(w, t))
        })
}

/// Some name is covered by both.
fn overlap(a: &Option<NameScope>, b: &Option<NameScope>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    let one_way = |x: &NameScope, y: &NameScope| {
        x.exact.iter().any(|e| {
            y.exact.iter().any(|f| f == e)
                || y.suffix.iter().any(|s| name_has_suffix(e, s))
                || y.wildcard.iter().any(|w| below(e, w))
        }) || x.suffix.iter().any(|s| {
            y.suffix
                .iter()
                .any(|t| name_has_suffix(s, t) || name_has_suffix(t, s))
                || y.wildcard
                    .iter()
                    .any(|w| name_has_suffix(w, s) || below(s, w))
        }) || x.wildcard.iter().any(|w| {
            y.wildcard
                .iter()
                .any(|v| name_has_suffix(w, v) || name_has_suffix(v, w))
        })
    };
    one_way(a, b) || one_way(b, a)
}

/// A `then` at the top of `stmts` that always decides (all its operands
/// are literals and it can decide).
fn always_decides(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match s {
        Stmt::Then { action, .. } => matches!(action.static_verdict(), Ok(Some(_))),
        _ => false,
    })
}

/// Whether anything in `stmts` can decide.
fn can_decide(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match s {
        Stmt::Then { action, .. } => {
            !matches!(action.static_verdict(), Ok(None)) && !matches!(action, Action::Pass)
        }
        Stmt::If {
            then_body,
            else_body,
            ..
        } => can_decide(then_body) || can_decide(else_body),
        Stmt::Let { .. } => false,
    })
}

fn rule_label(r: &crate::ir::Rule) -> String {
    if r.implicit {
        "the bare statements (rule `main`)".into()
    } else {
        format!("rule `{}`", r.name)
    }
}

/// W0005 and W0006 for a checked policy (rules in evaluation order).
/// Earlier rules are found through [`ScopeIndex`]es by the names they
/// share with the rule at hand, so the cost grows with the rules, not
/// their pairs.
pub(super) fn lints(p: &Policy) -> Vec<Diagnostic> {
    let scopes: Vec<_> = p.rules.iter().map(|r| name_scope(r, &p.sets)).collect();
    let mut out = Vec::new();
    // Earlier rules that always decide for every name of their scope.
    let mut shadowers = ScopeIndex::default();
    let mut scoped_shadowers: Vec<usize> = Vec::new();
    let mut first_universal: Option<usize> = None;
    // Earlier rules scoped by name that can decide, by priority.
    let mut deciders: HashMap<i64, ScopeIndex> = HashMap::new();
    for (j, b) in p.rules.iter().enumerate() {
        let (bs, bb) = &scopes[j];
        let decides = can_decide(bb)
            || matches!(
                bb.first(),
                Some(Stmt::Then {
                    action: Action::Pass,
                    ..
                })
            );
        if decides {
            lint_rule(
                p,
                j,
                &scopes,
                (&shadowers, &scoped_shadowers, first_universal),
                &deciders,
                &mut out,
            );
        }
        let exact_guard = bs.as_ref().is_none_or(|s| s.exact_key);
        // Unindexed with a guard: the guard may be false.
        let unguarded = bs.is_some() || b.guard.is_none();
        if exact_guard && unguarded && always_decides(bb) {
            match bs {
                None => {
                    first_universal.get_or_insert(j);
                }
                Some(s) => {
                    shadowers.add(j, s);
                    scoped_shadowers.push(j);
                }
            }
        }
        if let Some(s) = bs {
            if can_decide(bb) {
                deciders.entry(b.priority).or_default().add(j, s);
            }
        }
    }
    out
}

type Scopes<'p> = [(Option<NameScope>, &'p [Stmt])];

/// W0005 or W0006 for rule `j`, from the earlier rules' indexes.
fn lint_rule(
    p: &Policy,
    j: usize,
    scopes: &Scopes<'_>,
    (shadowers, scoped_shadowers, first_universal): (&ScopeIndex, &[usize], Option<usize>),
    deciders: &HashMap<i64, ScopeIndex>,
    out: &mut Vec<Diagnostic>,
) {
    let b = &p.rules[j];
    let bs = &scopes[j].0;
    // W0005: an earlier rule that always decides for all of b's names.
    let mut candidates: Vec<usize> = first_universal.into_iter().collect();
    if let Some(s) = bs {
        match shadowers.covering_one(s) {
            Some(v) => candidates.extend(v),
            None => candidates.extend_from_slice(scoped_shadowers),
        }
    }
    candidates.sort_unstable();
    let shadow = candidates.into_iter().find(|&i| covered(bs, &scopes[i].0));
    if let Some(i) = shadow {
        let a = &p.rules[i];
        out.push(
            Diagnostic::warning(
                "W0005",
                format!("{} can never decide", rule_label(b)),
                b.span,
            )
            .with_label("shadowed")
            .with_secondary(
                a.span,
                format!(
                    "{} (priority {}) always decides first for every name it could",
                    rule_label(a),
                    a.priority
                ),
            )
            .with_help("give it a higher priority, narrow the earlier rule, or remove it"),
        );
        return;
    }
    // W0006: an earlier rule of the same priority that can decide for
    // some of the same names.
    // Only rules scoped by name: for others the overlap is not certain
    // (`{user.k} == 1` and `{user.k} == 2` never meet).
    let same = match (bs, deciders.get(&b.priority)) {
        (Some(s), Some(ix)) => ix.overlapping(s),
        _ => Vec::new(),
    };
    if let Some(i) = same.into_iter().find(|&i| overlap(&scopes[i].0, bs)) {
        let a = &p.rules[i];
        out.push(
            Diagnostic::warning(
                "W0006",
                format!(
                    "{} and {} have the same priority and can decide for the same names",
                    rule_label(a),
                    rule_label(b)
                ),
                b.span,
            )
            .with_label(format!(
                "priority {}, after the other in the file",
                b.priority
            ))
            .with_secondary(a.span, "decides first, only because it comes first")
            .with_help("give one of them a higher priority so the order says what you mean"),
        );
    }
}
