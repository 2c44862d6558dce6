//! An index of the name scopes of rules seen so far, so the rule-order
//! lints look only at the earlier rules that share a name with the rule at
//! hand instead of at every earlier rule: a 100 000-rule policy is linted in
//! time linear in its rules, not quadratic.
//!
//! Names are keyed by their labels reversed (`www.example.com` →
//! `com.example.www`): a name's ancestors are found by walking its labels,
//! its descendants by one key range.

use crate::ir::index::NameScope;
use std::collections::BTreeMap;

type Ids = BTreeMap<String, Vec<usize>>;

/// Rules by the names of their scopes (ids in the order they were added).
#[derive(Default)]
pub(super) struct ScopeIndex {
    exact: Ids,
    suffix: Ids,
    wildcard: Ids,
}

/// `www.example.com` → `com.example.www`; the root stays empty.
fn rev(name: &str) -> String {
    let mut labels: Vec<&str> = name.split('.').collect();
    labels.reverse();
    labels.join(".")
}

/// The name, its parents, and the root (`""`): reversed keys.
fn ancestors_or_self(name: &str) -> impl Iterator<Item = String> + '_ {
    let mut next = Some(name);
    std::iter::from_fn(move || {
        let n = next?;
        next = if n.is_empty() {
            None
        } else {
            Some(n.split_once('.').map_or("", |(_, rest)| rest))
        };
        Some(rev(n))
    })
}

fn strict_ancestors(name: &str) -> impl Iterator<Item = String> + '_ {
    ancestors_or_self(name).skip(1)
}

fn push(map: &mut Ids, key: String, id: usize) {
    let v = map.entry(key).or_default();
    if v.last() != Some(&id) {
        v.push(id);
    }
}

/// Every id under `key` (the name itself when `with_self`, and every name
/// below it).
fn descendants(map: &Ids, name: &str, with_self: bool, out: &mut Vec<usize>, first: bool) {
    let k = rev(name);
    if k.is_empty() {
        for (key, ids) in map {
            if with_self || !key.is_empty() {
                take(out, ids, first);
            }
        }
        return;
    }
    if with_self {
        if let Some(ids) = map.get(&k) {
            take(out, ids, first);
        }
    }
    // Keys starting with `k.` sort between `k.` and `k/` ('/' follows '.').
    for (_, ids) in map.range(format!("{k}.")..format!("{k}/")) {
        take(out, ids, first);
    }
}

/// Every id, or (`first`) only the earliest: where any hit is as good as
/// another, the earliest is the one reported, and taking one per key keeps
/// many rules on one name from costing their square.
fn take(out: &mut Vec<usize>, ids: &[usize], first: bool) {
    if first {
        out.extend(ids.first());
    } else {
        out.extend(ids);
    }
}

fn lookup(map: &Ids, keys: impl Iterator<Item = String>, out: &mut Vec<usize>, first: bool) {
    for k in keys {
        if let Some(ids) = map.get(&k) {
            take(out, ids, first);
        }
    }
}

impl ScopeIndex {
    /// Adds rule `id`'s scope (ids must come in increasing order).
    pub(super) fn add(&mut self, id: usize, s: &NameScope) {
        for e in &s.exact {
            push(&mut self.exact, rev(e), id);
        }
        for x in &s.suffix {
            push(&mut self.suffix, rev(x), id);
        }
        for w in &s.wildcard {
            push(&mut self.wildcard, rev(w), id);
        }
    }

    /// Rules whose scope covers one name `b` certainly has (its first
    /// exact name, else its first suffix, else its first wildcard base):
    /// every rule that can cover all of `b` is among them. `None` when
    /// `b` names nothing (every rule covers it).
    pub(super) fn covering_one(&self, b: &NameScope) -> Option<Vec<usize>> {
        let mut out = Vec::new();
        if let Some(e) = b.exact.first() {
            lookup(&self.exact, std::iter::once(rev(e)), &mut out, false);
            lookup(&self.suffix, ancestors_or_self(e), &mut out, false);
            lookup(&self.wildcard, strict_ancestors(e), &mut out, false);
        } else if let Some(s) = b.suffix.first() {
            lookup(&self.suffix, ancestors_or_self(s), &mut out, false);
        } else if let Some(w) = b.wildcard.first() {
            lookup(&self.wildcard, ancestors_or_self(w), &mut out, false);
            lookup(&self.suffix, ancestors_or_self(w), &mut out, false);
        } else {
            return None;
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// Rules whose scope shares some name with `b`, the earliest per key
    /// (every hit is an overlap, so the earliest overall is among them).
    pub(super) fn overlapping(&self, b: &NameScope) -> Vec<usize> {
        let mut out = Vec::new();
        for e in &b.exact {
            lookup(&self.exact, std::iter::once(rev(e)), &mut out, true);
            lookup(&self.suffix, ancestors_or_self(e), &mut out, true);
            lookup(&self.wildcard, strict_ancestors(e), &mut out, true);
        }
        for s in &b.suffix {
            descendants(&self.exact, s, true, &mut out, true);
            lookup(&self.suffix, ancestors_or_self(s), &mut out, true);
            descendants(&self.suffix, s, true, &mut out, true);
            descendants(&self.wildcard, s, true, &mut out, true);
            lookup(&self.wildcard, strict_ancestors(s), &mut out, true);
        }
        for w in &b.wildcard {
            descendants(&self.exact, w, false, &mut out, true);
            lookup(&self.suffix, ancestors_or_self(w), &mut out, true);
            descendants(&self.suffix, w, false, &mut out, true);
            lookup(&self.wildcard, ancestors_or_self(w), &mut out, true);
            descendants(&self.wildcard, w, true, &mut out, true);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn scope(exact: &[&str], suffix: &[&str], wildcard: &[&str]) -> NameScope {
        let v = |x: &[&str]| x.iter().map(|s| Arc::<str>::from(*s)).collect();
        NameScope {
            exact: v(exact),
            suffix: v(suffix),
            wildcard: v(wildcard),
            exact_key: true,
        }
    }

    #[test]
    fn keys_and_ancestors() {
        assert_eq!(rev("www.example.com"), "com.example.www");
        let a: Vec<String> = ancestors_or_self("a.b.c").collect();
        assert_eq!(a, ["c.b.a", "c.b", "c", ""]);
    }

    #[test]
    fn finds_what_overlaps_and_covers() {
        let mut ix = ScopeIndex::default();
        ix.add(0, &scope(&["www.example.com"], &[], &[]));
        ix.add(1, &scope(&[], &["example.com"], &[]));
        ix.add(2, &scope(&[], &[], &["example.com"]));
        ix.add(3, &scope(&["example-x.com"], &[], &[]));
        ix.add(4, &scope(&[], &[""], &[]));
        let b = scope(&["www.example.com"], &[], &[]);
        assert_eq!(ix.covering_one(&b), Some(vec![0, 1, 2, 4]));
        // A suffix meets the names below it, not its sibling `example-x`.
        assert_eq!(
            ix.overlapping(&scope(&[], &["example.com"], &[])),
            vec![0, 1, 2, 4]
        );
        // A wildcard base does not meet the base name itself.
        ix.add(5, &scope(&["example.com"], &[], &[]));
        assert!(!ix
            .overlapping(&scope(&[], &[], &["example.com"]))
            .contains(&5));
        assert!(ix
            .overlapping(&scope(&[], &[], &["example.com"]))
            .contains(&0));
    }
}
