//! A static cost bound per query, after the rule index: the most rule
//! bodies and helper calls any single query can reach (`dnspolicy check
//! --cost`). There are no loops in the language, so a rule's helper calls
//! (`hash`, `lower`, `len`, `matches`) are counted over all its branches;
//! the rules a query reaches are the index's candidates for its name plus
//! those for its client address and subnet.

use crate::ir::index::RuleIndex;
use crate::ir::types::Cidr;
use crate::ir::{for_each_expr, Expr, ExprKind, Policy};

/// The bound for one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cost {
    /// At most this many rule bodies run for one query.
    pub rules: usize,
    /// Of this many rules in the policy.
    pub total_rules: usize,
    /// At most this many helper calls run for one query.
    pub calls: usize,
    /// Rules that are candidates for every query (not indexed).
    pub always: usize,
    /// A query name that reaches the most rules (`*.suffix` for any name
    /// below it); `None` when no rule is indexed by name.
    pub worst_name: Option<String>,
}

fn calls_in(e: &Expr, n: &mut usize) {
    if matches!(e.kind, ExprKind::Call(..) | ExprKind::Matches(..)) {
        *n += 1;
    }
    e.for_each_child(|c| calls_in(c, n));
}

/// Helper calls in each rule, over all branches.
fn calls_per_rule(p: &Policy) -> Vec<usize> {
    p.rules
        .iter()
        .map(|r| {
            let mut n = 0;
            if let Some(g) = &r.guard {
                calls_in(g, &mut n);
            }
            for_each_expr(&r.body, &mut |e| calls_in(e, &mut n));
            n
        })
        .collect()
}

/// The largest (rules, calls) over probes, and the probe that gave the
/// most rules.
fn worst<T: Clone>(
    probes: impl Iterator<Item = T>,
    cands: impl Fn(&T) -> Vec<u32>,
    calls: &[usize],
) -> (usize, usize, Option<T>) {
    let (mut rules, mut most_calls, mut at) = (0, 0, None);
    for p in probes {
        let c = cands(&p);
        if c.len() > rules || at.is_none() {
            rules = c.len();
            at = Some(p.clone());
        }
        most_calls = most_calls.max(c.iter().map(|&i| calls[i as usize]).sum());
    }
    (rules, most_calls, at)
}

/// The cost bound of `p`.
pub fn cost(p: &Policy) -> Cost {
    let ix: &RuleIndex = &p.index;
    let calls = calls_per_rule(p);
    let (entries, always) = ix.entries();
    let always_calls: usize = always.iter().map(|&i| calls[i as usize]).sum();
    // Name probes: each exact key itself, and a name strictly below each
    // suffix or wildcard key (it reaches that key and every shallower one).
    // A label no policy can spell keeps the probe off the exact keys.
    let names = entries.iter().map(|&(kind, key, _)| match kind {
        1 => key.to_string(),
        _ if key.is_empty() => "\u{1}".to_string(),
        _ => format!("\u{1}.{key}"),
    });
    let (name_rules, name_calls, name_at) =
        worst(names, |n| ix.candidates(Some(n), None, None), &calls);
    // Prefix probes: each key's network address (inside that key and every
    // shorter one). Their candidates hold each always-rule once, so what a
    // prefix adds is the rest.
    let (ips, subnets) = ix.prefix_keys();
    let (ip_rules, ip_calls, _) = worst(
        ips.into_iter(),
        |c: &Cidr| ix.candidates(None, Some(c.addr), None),
        &calls,
    );
    let (sub_rules, sub_calls, _) = worst(
        subnets.into_iter(),
        |c: &Cidr| ix.candidates(None, None, Some(*c)),
        &calls,
    );
    let beyond = |rules: usize, calls: usize| {
        (
            rules.saturating_sub(always.len()),
            calls.saturating_sub(always_calls),
        )
    };
    let (ip_rules, ip_calls) = beyond(ip_rules, ip_calls);
    let (sub_rules, sub_calls) = beyond(sub_rules, sub_calls);
    let total = p.rules.len();
    Cost {
        rules: (name_rules.max(always.len()) + ip_rules + sub_rules).min(total),
        total_rules: total,
        calls: name_calls.max(always_calls) + ip_calls + sub_calls,
        always: always.len(),
        worst_name: name_at.map(|n| match n.strip_prefix('\u{1}') {
            Some("") => "*".to_string(),
            Some(rest) => format!("*{rest}"),
            None => n,
        }),
    }
}
