//! The rule index: which rules can possibly decide a query, found without
//! evaluating them.
//!
//! A rule is indexed when a condition it cannot decide without (its `when`
//! guard, or the condition of an `if` that is its whole body) is a key:
//!
//! - on `query.name`: `==` a name, `in` a constant name set (with `*.`
//!   wildcards), `ends_with` a name; looked up exactly, by each suffix of
//!   the query name, and by wildcard parents;
//! - on the client: `client.ip in` / `client.subnet in` constant prefixes,
//!   looked up by hashing the address per prefix length.
//!
//! `&&` of keys is indexed by one side (the name side wins: it is more
//! selective), `||` only when both sides are. Every other rule is a
//! candidate for every query. With 100 000 suffix rules a query touches the
//! few whose keys are suffixes of its name; a property test checks that the
//! index never changes a verdict.

use crate::ir::context::Field;
use crate::ir::name_table::NameTable;
use crate::ir::types::Cidr;
use crate::ir::value::Value;
use crate::ir::{CmpOp, ConstSet, Expr, ExprKind, Rule, Stmt};
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Name keys a rule can only match under.
#[derive(Debug, Default)]
struct Keys {
    exact: Vec<Arc<str>>,
    suffix: Vec<Arc<str>>,
    wildcard: Vec<Arc<str>>,
    /// Prefixes `client.ip` must be inside.
    ip: Vec<Cidr>,
    /// Prefixes that must cover `client.subnet`.
    subnet: Vec<Cidr>,
}

/// One key of the index: its kind (1 exact, 2 suffix, 3 wildcard), the
/// name, and the rules (in evaluation order) it leads to.
pub type IndexEntry<'a> = (u8, &'a str, &'a [u32]);

/// Rules by the query names they can match.
#[derive(Debug, Default)]
pub struct RuleIndex {
    /// Name keys: exact (1), suffix (2) and wildcard (3). FxHash inside:
    /// keys are names from the policy, not an attacker's choice, and every
    /// query hashes each suffix of its name.
    names: NameTable,
    /// Rules by a prefix `client.ip` must lie in, and the prefix lengths
    /// present (per family): a lookup masks the address to each length.
    ip: FxHashMap<Cidr, Vec<u32>>,
    ip_lens: Vec<(bool, u8)>,
    /// Rules by a prefix that must cover `client.subnet`.
    subnet: FxHashMap<Cidr, Vec<u32>>,
    subnet_lens: Vec<(bool, u8)>,
    /// Rules reached through a prefix key (backends without the prefix
    /// lookup run them always).
    by_prefix: Vec<u32>,
    always: Vec<u32>,
    indexed: usize,
}

/// A [`RuleIndex`] built one rule at a time, in any order: each rule gets
/// the next number, and [`IndexBuilder::finish`] maps the numbers to places
/// in evaluation order. Lets a server index each rule as soon as it is
/// checked and free its syntax, before the order is known.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    /// Name keys as `(kind, where the name is in `text`, rule number)`,
    /// grouped by name only in [`IndexBuilder::finish`]: a map from each
    /// name to its rules would take three times the memory while a
    /// 100 000-rule policy loads.
    names: Vec<NameKey>,
    text: String,
    ip: FxHashMap<Cidr, Vec<u32>>,
    subnet: FxHashMap<Cidr, Vec<u32>>,
    by_prefix: Vec<u32>,
    /// Per rule number: whether it has keys (else it is always a candidate).
    keyed: Vec<bool>,
}

/// One name key of one rule, for [`IndexBuilder`].
#[derive(Debug, Clone, Copy)]
struct NameKey {
    kind: u8,
    at: u32,
    len: u32,
    rule: u32,
}

impl IndexBuilder {
    /// Indexes `r` under the next number (the rules added so far).
    pub fn add(&mut self, r: &Rule, sets: &[ConstSet]) {
        let i = self.keyed.len() as u32;
        let keys = rule_keys(r, sets).map(|(_, k)| k);
        self.keyed.push(keys.is_some());
        let Some(k) = keys else { return };
        for (kind, keys) in (1u8..).zip([k.exact, k.suffix, k.wildcard]) {
            for n in keys {
                let at = u32::try_from(self.text.len()).expect("name keys over 4 GiB");
                self.text.push_str(&n);
                self.names.push(NameKey {
                    kind,
                    at,
                    len: n.len() as u32,
                    rule: i,
                });
            }
        }
        if !k.ip.is_empty() || !k.subnet.is_empty() {
            self.by_prefix.push(i);
        }
        for c in k.ip {
            let v = self.ip.entry(c).or_default();
            if v.last() != Some(&i) {
                v.push(i);
            }
        }
        for c in k.subnet {
            let v = self.subnet.entry(c).or_default();
            if v.last() != Some(&i) {
                v.push(i);
            }
        }
    }

    /// The index. `place[n]` is the place in evaluation order of the rule
    /// added `n`-th (`None`: they were added in evaluation order).
    pub fn finish(self, place: Option<&[u32]>) -> RuleIndex {
        let IndexBuilder {
            mut names,
            text,
            mut ip,
            mut subnet,
            mut by_prefix,
            keyed,
        } = self;
        let mut ix = RuleIndex::default();
        let at = |n: u32| place.map_or(n, |p| p[n as usize]);
        // Lists must be in evaluation order: renumbered, then sorted.
        let renumber = |v: &mut [u32]| {
            if place.is_some() {
                v.iter_mut().for_each(|n| *n = at(*n));
                v.sort_unstable();
            }
        };
        let name = |k: &NameKey| &text[k.at as usize..(k.at + k.len) as usize];
        for k in &mut names {
            k.rule = at(k.rule);
        }
        // Equal keys side by side, their rules in evaluation order.
        names.sort_unstable_by(|a, b| (a.kind, name(a), a.rule).cmp(&(b.kind, name(b), b.rule)));
        let rules: Vec<u32> = names.iter().map(|k| k.rule).collect();
        let mut groups: Vec<(u8, &str, std::ops::Range<usize>)> = Vec::new();
        for (j, k) in names.iter().enumerate() {
            match groups.last_mut() {
                Some((kind, n, r)) if *kind == k.kind && *n == name(k) => r.end = j + 1,
                _ => groups.push((k.kind, name(k), j..j + 1)),
            }
        }
        drop(names);
        ip.values_mut().for_each(|v| renumber(v));
        subnet.values_mut().for_each(|v| renumber(v));
        renumber(&mut by_prefix);
        ix.always = (0..keyed.len() as u32)
            .filter(|&n| !keyed[n as usize])
            .map(at)
            .collect();
        ix.always.sort_unstable();
        ix.indexed = keyed.iter().filter(|&&k| k).count();
        let lens = |m: &FxHashMap<Cidr, Vec<u32>>| {
            let mut l: Vec<(bool, u8)> = m.keys().map(|c| (c.addr.is_ipv4(), c.len)).collect();
            l.sort_unstable();
            l.dedup();
            l
        };
        ix.names = NameTable::build(
            groups.len(),
            groups
                .iter()
                .map(|(kind, n, r)| (*kind, *n, &rules[r.clone()])),
        );
        ix.ip_lens = lens(&ip);
        ix.subnet_lens = lens(&subnet);
        ix.ip = ip;
        ix.subnet = subnet;
        ix.by_prefix = by_prefix;
        ix
    }
}

impl RuleIndex {
    /// Builds the index for rules in evaluation order.
    pub fn build(rules: &[Rule], sets: &[ConstSet]) -> RuleIndex {
        let mut b = IndexBuilder::default();
        for r in rules {
            b.add(r, sets);
        }
        b.finish(None)
    }

    /// The rules that run for every query in a backend that looks up names
    /// only: [`RuleIndex::entries`]' always-list plus the rules indexed by a
    /// prefix, in evaluation order.
    pub fn always_without_prefixes(&self) -> Vec<u32> {
        let mut v = self.always.clone();
        v.extend_from_slice(&self.by_prefix);
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The index as data, for backends that build their own lookup
    /// structure: `(kind, key, rules)` with kind 1 = exact name, 2 = suffix
    /// (the name itself or below it), 3 = wildcard (strictly below), sorted
    /// by kind and key; and the rules that are candidates for every name.
    pub fn entries(&self) -> (Vec<IndexEntry<'_>>, &[u32]) {
        let mut out: Vec<IndexEntry<'_>> = Vec::new();
        out.extend(self.names.iter());
        out.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        (out, &self.always)
    }

    /// The prefixes rules are indexed by: keys on the client's address and
    /// keys on its subnet.
    pub fn prefix_keys(&self) -> (Vec<Cidr>, Vec<Cidr>) {
        (
            self.ip.keys().copied().collect(),
            self.subnet.keys().copied().collect(),
        )
    }

    /// Number of rules reached through the index (the others always run).
    pub fn indexed(&self) -> usize {
        self.indexed
    }

    /// The rules that can match a query for `name`, `client.ip` and
    /// `client.subnet` (`None`: missing, so no rule indexed by it can
    /// match), in evaluation order.
    pub fn candidates(
        &self,
        name: Option<&str>,
        ip: Option<IpAddr>,
        subnet: Option<Cidr>,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        self.candidates_into(name, ip, subnet, &mut out);
        out
    }

    /// The candidates for a context: its query name, client address and
    /// client subnet (each missing when not set), into `out`.
    pub fn candidates_in(&self, ctx: &crate::ir::context::Context, out: &mut Vec<u32>) {
        let name = match ctx.get(Field::QueryName) {
            Some(Value::Name(n)) => Some(&**n),
            _ => None,
        };
        let ip = match ctx.get(Field::ClientIp) {
            Some(Value::Ip(ip)) => Some(*ip),
            _ => None,
        };
        let subnet = match ctx.get(Field::ClientSubnet) {
            Some(Value::Cidr(c)) => Some(*c),
            _ => None,
        };
        self.candidates_into(name, ip, subnet, out);
    }

    /// The context fields [`RuleIndex::candidates_into`] consults, one bit
    /// per [`Field`]: the query name always, the client's address and
    /// subnet when some rule is indexed by a prefix of them. Skipping a
    /// rule by the client's prefix is a decision that depended on it.
    pub fn fields_consulted(&self) -> u32 {
        let mut m = 1 << Field::QueryName as u32;
        if !self.ip_lens.is_empty() {
            m |= 1 << Field::ClientIp as u32;
        }
        if !self.subnet_lens.is_empty() {
            m |= 1 << Field::ClientSubnet as u32;
        }
        m
    }

    /// [`RuleIndex::candidates`] into a buffer the caller keeps.
    pub fn candidates_into(
        &self,
        name: Option<&str>,
        ip: Option<IpAddr>,
        subnet: Option<Cidr>,
        out: &mut Vec<u32>,
    ) {
        out.clear();
        out.extend_from_slice(&self.always);
        let mut merged = false;
        if let Some(ip) = ip {
            for &(v4, len) in &self.ip_lens {
                if v4 == ip.is_ipv4() {
                    if let Some(v) = self.ip.get(&Cidr::containing(ip, len)) {
                        out.extend_from_slice(v);
                        merged = true;
                    }
                }
            }
        }
        if let Some(s) = subnet {
            for &(v4, len) in &self.subnet_lens {
                if v4 == s.addr.is_ipv4() && len <= s.len {
                    if let Some(v) = self.subnet.get(&Cidr::containing(s.addr, len)) {
                        out.extend_from_slice(v);
                        merged = true;
                    }
                }
            }
        }
        if merged && name.is_none() {
            out.sort_unstable();
            out.dedup();
        }
        if let Some(name) = name {
            name_keys(name, |kind, key| {
                out.extend_from_slice(self.names.get(kind, key));
            });
            out.sort_unstable();
            out.dedup();
        }
    }

    /// How many name keys (exact, suffix, wildcard) the index holds.
    pub fn name_keys(&self) -> usize {
        self.names.keys()
    }

    /// Starts loading the name slots a lookup of `name` reads: the first
    /// step of looking a batch of queries up together (a hint: no effect
    /// on any result).
    pub fn prefetch_name(&self, name: &str) {
        name_keys(name, |kind, key| self.names.prefetch(kind, key));
    }

    /// Each rule `name` leads to through the name keys (not the rules every
    /// name reaches, nor those found by address).
    pub fn name_rules(&self, name: &str, mut f: impl FnMut(u32)) {
        name_keys(name, |kind, key| {
            self.names.get(kind, key).iter().for_each(|&r| f(r));
        });
    }
}

/// The name keys a lookup of `name` reads, as `(kind, key)`: the name
/// itself exactly, then as a suffix, then each strict suffix as a suffix
/// and a wildcard, down to the root.
fn name_keys(name: &str, mut f: impl FnMut(u8, &str)) {
    f(1, name);
    let mut rest = name;
    let mut strict = false;
    loop {
        f(2, rest);
        if strict {
            f(3, rest);
        }
        if rest.is_empty() {
            break;
        }
        rest = rest
            .bytes()
            .position(|b| b == b'.')
            .map_or("", |i| &rest[i + 1..]);
        strict = true;
    }
}

/// Which condition put a rule in the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexedBy {
    /// Its `when` guard.
    Guard,
    /// The condition of the single `if` (without `else`) that is its body.
    BodyIf,
    /// Not indexed: a candidate for every name.
    Nothing,
}

/// How [`RuleIndex::build`] indexes `rule`.
pub fn indexed_by(rule: &Rule, sets: &[ConstSet]) -> IndexedBy {
    rule_keys(rule, sets).map_or(IndexedBy::Nothing, |(by, _)| by)
}

/// The condition a rule is indexed by, and its keys: the `when` guard's,
/// else those of the `if` (without `else`) that is its whole body.
fn rule_keys(rule: &Rule, sets: &[ConstSet]) -> Option<(IndexedBy, Keys)> {
    if let Some(k) = rule.guard.as_ref().and_then(|g| keys_of(g, sets)) {
        return Some((IndexedBy::Guard, k));
    }
    match rule.body.as_slice() {
        [Stmt::If {
            cond, else_body, ..
        }] if else_body.is_empty() => keys_of(cond, sets).map(|k| (IndexedBy::BodyIf, k)),
        _ => None,
    }
}

/// Whether the index's keys for `e` say exactly when `e` holds: a rule
/// that is a candidate through them needs `e` no more (backends skip it).
/// True for `==` a name, `in` a name set and `ends_with` a name on
/// `query.name`, and `||` of such; not for `&&`, whose other side must
/// still be tested.
pub fn is_exact_key(e: &Expr, sets: &[ConstSet]) -> bool {
    match &e.kind {
        ExprKind::Or(a, b) => is_exact_key(a, sets) && is_exact_key(b, sets),
        ExprKind::And(..) => false,
        _ => keys_of(e, sets).is_some(),
    }
}

/// The query names a rule can decide for (for lints): the name keys of
/// its indexing condition. `None`: any name (not indexed by name; client
/// prefix keys say nothing about names).
#[derive(Clone, Debug, Default)]
pub struct NameScope {
    /// Exact names.
    pub exact: Vec<Arc<str>>,
    /// `ends_with` names (the name itself and everything below).
    pub suffix: Vec<Arc<str>>,
    /// `*.` wildcard bases (strictly below).
    pub wildcard: Vec<Arc<str>>,
    /// The condition holds exactly for these names (no other test is
    /// `&&`-ed to it, no client key): a body that always decides then
    /// decides for every one of them.
    pub exact_key: bool,
}

/// The [`NameScope`] of `rule`, and the statements that run when its
/// indexing condition holds (the body, or the `if`'s branch).
pub fn name_scope<'r>(rule: &'r Rule, sets: &[ConstSet]) -> (Option<NameScope>, &'r [Stmt]) {
    let (cond, body): (Option<&Expr>, &[Stmt]) = match indexed_by(rule, sets) {
        IndexedBy::Guard => (rule.guard.as_deref(), &rule.body),
        IndexedBy::BodyIf => match rule.body.as_slice() {
            [Stmt::If {
                cond, then_body, ..
            }] => (Some(cond), then_body),
            _ => (None, &rule.body),
        },
        IndexedBy::Nothing => (None, &rule.body),
    };
    let Some(cond) = cond else {
        return (None, body);
    };
    match keys_of(cond, sets) {
        Some(k) if k.has_names() => {
            let exact_key = is_exact_key(cond, sets) && k.ip.is_empty() && k.subnet.is_empty();
            (
                Some(NameScope {
                    exact: k.exact,
                    suffix: k.suffix,
                    wildcard: k.wildcard,
                    exact_key,
                }),
                body,
            )
        }
        // Client keys, or none: the condition stays a condition.
        _ => (None, &rule.body),
    }
}

impl Keys {
    fn has_names(&self) -> bool {
        !(self.exact.is_empty() && self.suffix.is_empty() && self.wildcard.is_empty())
    }
}

fn prefix_keys(f: Field, cidrs: Vec<Cidr>) -> Keys {
    if f == Field::ClientIp {
        Keys {
            ip: cidrs,
            ..Keys::default()
        }
    } else {
        Keys {
            subnet: cidrs,
            ..Keys::default()
        }
    }
}

fn is_qname(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Field(Field::QueryName))
}

fn lit_name(e: &Expr) -> Option<Arc<str>> {
    match &e.kind {
        ExprKind::Lit(Value::Name(n)) => Some(n.clone()),
        _ => None,
    }
}

/// The keys under which `e` can be true, if `e` is a necessary name test.
fn keys_of(e: &Expr, sets: &[ConstSet]) -> Option<Keys> {
    match &e.kind {
        ExprKind::Cmp(CmpOp::Eq, a, b) => {
            let n = if is_qname(a) {
                lit_name(b)
            } else if is_qname(b) {
                lit_name(a)
            } else {
                None
            }?;
            Some(Keys {
                exact: vec![n],
                ..Keys::default()
            })
        }
        ExprKind::InSet {
            needle,
            set,
            negate: false,
        } if is_qname(needle) => match sets.get(*set as usize)? {
            ConstSet::Names(ns) => Some(Keys {
                exact: ns.exact.iter().cloned().collect(),
                wildcard: ns.wildcards.iter().cloned().collect(),
                ..Keys::default()
            }),
            _ => None,
        },
        ExprKind::EndsWith(a, b) if is_qname(a) => Some(Keys {
            suffix: vec![lit_name(b)?],
            ..Keys::default()
        }),
        // `client.ip` inside, or `client.subnet` covered by, constant prefixes.
        ExprKind::InSet {
            needle,
            set,
            negate: false,
        } => match (&needle.kind, sets.get(*set as usize)?) {
            (ExprKind::Field(f @ (Field::ClientIp | Field::ClientSubnet)), ConstSet::Cidrs(cs)) => {
                Some(prefix_keys(*f, cs.clone()))
            }
            _ => None,
        },
        ExprKind::InExpr {
            needle,
            haystack,
            negate: false,
        } => match (&needle.kind, &haystack.kind) {
            (
                ExprKind::Field(f @ (Field::ClientIp | Field::ClientSubnet)),
                ExprKind::Lit(Value::Cidr(c)),
            ) => Some(prefix_keys(*f, vec![*c])),
            _ => None,
        },
        // Either side is necessary; names are the more selective keys (a
        // prefix set is often shared by many rules), so they win.
        ExprKind::And(a, b) => match (keys_of(a, sets), keys_of(b, sets)) {
            (Some(x), Some(y)) if !x.has_names() && y.has_names() => Some(y),
            (Some(x), _) => Some(x),
            (None, y) => y,
        },
        ExprKind::Or(a, b) => {
            let (mut x, y) = (keys_of(a, sets)?, keys_of(b, sets)?);
            x.exact.extend(y.exact);
            x.suffix.extend(y.suffix);
            x.wildcard.extend(y.wildcard);
            x.ip.extend(y.ip);
            x.subnet.extend(y.subnet);
            Some(x)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::{compile, Context, Field, Value};

    #[test]
    fn candidates_are_the_matching_rules() {
        let p = compile(
            r#"
            rule a when {query.name} == "www.example.com" { then 1 }
            rule b when {query.name} ends_with "example.com" { then 2 }
            rule c { if {query.name} in ["*.tracker.test", "ads.test"] { then 3 } }
            rule d when {query.name} == "x.test" || {query.name} ends_with "y.test" { then 4 }
            rule e when {client.asn} == 1 && {query.name} == "z.test" { then 5 }
            rule f { if {client.asn} == 7 { then 6 } }
            "#,
        )
        .expect("checks");
        assert_eq!(p.index.indexed(), 5);
        let names = |n: Option<&str>| -> Vec<String> {
            p.index
                .candidates(n, None, None)
                .iter()
                .map(|&i| p.rules[i as usize].name.clone())
                .collect()
        };
        assert_eq!(names(Some("www.example.com")), ["a", "b", "f"]);
        assert_eq!(names(Some("example.com")), ["b", "f"]);
        assert_eq!(names(Some("a.b.tracker.test")), ["c", "f"]);
        assert_eq!(names(Some("tracker.test")), ["f"]);
        assert_eq!(names(Some("q.y.test")), ["d", "f"]);
        assert_eq!(names(Some("z.test")), ["e", "f"]);
        assert_eq!(names(None), ["f"]);
        let mut ctx = Context::default();
        ctx.set(Field::QueryName, Value::Name("ads.test".into()));
        assert_eq!(
            p.eval(&ctx).verdict.map(|v| v.to_json()),
            Some(serde_json::json!(3))
        );
    }

    #[test]
    fn prefix_keys_find_rules_by_client_address() {
        let p = compile(
            r#"
            set nets = [10.1.0.0/16, 2001:db8::/32]
            rule a when {client.ip} in nets { then 1 }
            rule b { if {client.subnet} in 192.0.2.0/24 { then 2 } }
            rule c when {client.ip} in 10.1.2.0/23 || {query.name} == "x.test" { then 3 }
            rule d { then 4 }
            "#,
        )
        .expect("checks");
        assert_eq!(p.index.indexed(), 3);
        let names = |n: Option<&str>, ip: Option<&str>, s: Option<&str>| -> Vec<String> {
            p.index
                .candidates(
                    n,
                    ip.map(|i| i.parse().expect("ip")),
                    s.map(|c| c.parse().expect("cidr")),
                )
                .iter()
                .map(|&i| p.rules[i as usize].name.clone())
                .collect()
        };
        assert_eq!(names(None, Some("10.1.3.4"), None), ["a", "c", "d"]);
        assert_eq!(names(None, Some("10.1.200.4"), None), ["a", "d"]);
        assert_eq!(names(None, Some("2001:db8::1"), None), ["a", "d"]);
        assert_eq!(names(None, Some("192.0.2.1"), None), ["d"]);
        // A /24 subnet is covered by 192.0.2.0/24; a /16 is not.
        assert_eq!(names(None, None, Some("192.0.2.0/24")), ["b", "d"]);
        assert_eq!(names(None, None, Some("192.0.0.0/16")), ["d"]);
        assert_eq!(names(Some("x.test"), None, None), ["c", "d"]);
        assert_eq!(names(None, None, None), ["d"]);
    }
}
