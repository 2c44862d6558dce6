//! The typed IR: what the checker produces and every backend consumes.
//!
//! Everything a backend needs is resolved here: context paths are
//! [`Field`] slots, injected variables are indexes into [`Policy::inputs`],
//! locals are per-rule slot numbers, literal sets are prebuilt
//! [`ConstSet`]s, regexes are compiled, and rules are in evaluation order.
//!
//! Beside the tree live what every backend shares: the language's
//! [`types`] and run-time [`value`]s, the table of DNS [`context`] paths
//! (slots), the stable [`hash`] function, and the rule [`index`] (which
//! rules a query can reach). This layer depends on nothing but
//! [`crate::syntax::span`]; the checker builds it and the backends read it.

pub mod context;
pub mod cost;
pub mod hash;
pub mod http;
pub mod index;
pub mod live;
pub mod name_table;
pub mod types;
pub mod value;

use crate::ir::context::Field;
use crate::ir::types::{name_has_suffix, Cidr, Type};
use crate::ir::value::{HeaderOp, Pick, Value, Verdict};
use crate::syntax::span::Span;
use std::collections::HashSet;
use std::sync::Arc;

/// A checked policy, ready to evaluate or compile.
#[derive(Debug)]
pub struct Policy {
    /// Rules in evaluation order: higher priority first, ties in source order.
    pub rules: Vec<Rule>,
    /// Injected variables, indexed by [`ExprKind::Input`].
    pub inputs: Vec<Input>,
    /// Constant sets, indexed by [`ExprKind::InSet`].
    pub sets: Vec<ConstSet>,
    /// Compiled regexes, indexed by [`ExprKind::Matches`].
    pub regexes: Vec<regex::Regex>,
    /// Number of `set` declarations in the source (for summaries).
    pub declared_sets: usize,
    /// Which rules can match which query names.
    pub index: crate::ir::index::RuleIndex,
    /// The sets read from files, in declaration order: the reader loads
    /// each (`LiveSet::load_text`) before the policy answers, and again
    /// whenever the file changes. Also reachable through [`Policy::sets`].
    pub live_sets: Vec<Arc<live::LiveSet>>,
    /// The front door the policy serves, from the paths it reads and the
    /// verdicts it gives (a policy that says nothing either way serves DNS
    /// or HTTP alike).
    pub front: Front,
}

/// Which requests a policy is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Front {
    /// Reads nothing that exists for one door only (`client.*`, `time.*`,
    /// injected variables, value verdicts, `pass`).
    #[default]
    Any,
    /// DNS queries: reads `query.*` or `pool.*`, or gives DNS verdicts.
    Dns,
    /// HTTP requests: reads `http.*`, or gives `route`/`respond`/`redirect`.
    Http,
}

impl Front {
    /// `"any"`, `"dns"` or `"http"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Front::Any => "any",
            Front::Dns => "dns",
            Front::Http => "http",
        }
    }
}

/// An injected variable.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// Its dotted path.
    pub path: String,
    /// Its type (declared with `input` or inferred).
    pub ty: Type,
}

/// One rule.
#[derive(Debug)]
pub struct Rule {
    /// The rule's name (`main` for the bare statements of a file).
    pub name: String,
    /// Its priority (default 0).
    pub priority: i64,
    /// The `when` guard. Boxed: a server holds each rule it has planned
    /// (and freed the syntax of) until all are ordered, and the guard
    /// inline would make each of those 48 bytes larger.
    pub guard: Option<Box<Expr>>,
    /// The body.
    pub body: Vec<Stmt>,
    /// Number of local slots the body uses.
    pub locals: u32,
    /// The rule's span (for the implicit rule: its first statement).
    pub span: Span,
    /// Whether this is the implicit rule of bare statements.
    pub implicit: bool,
    /// Marked `log`: every decision it makes goes to the decision log,
    /// sampled or not.
    pub log: bool,
}

/// A statement.
#[derive(Debug)]
pub enum Stmt {
    /// `if cond { then_body } else { else_body }`
    If {
        /// A bool expression.
        cond: Expr,
        /// Taken when true.
        then_body: Vec<Stmt>,
        /// Taken when false (`else if` is a nested `If` here).
        else_body: Vec<Stmt>,
    },
    /// `let` into local slot `local`.
    Let {
        /// Slot number.
        local: u32,
        /// The value.
        value: Expr,
    },
    /// `then ACTION`: decides, unless a value it needs is missing, in which
    /// case the rule ends without deciding.
    Then {
        /// What to do.
        action: Action,
        /// Where it is written.
        span: Span,
    },
}

/// An action.
#[derive(Debug)]
pub enum Action {
    /// A value verdict.
    Value(Expr),
    /// Synthesised records.
    Answer {
        /// Record type number.
        rtype: u16,
        /// One expression per record; typed for the record type.
        data: Vec<Expr>,
        /// TTL (an int expression).
        ttl: Expr,
    },
    /// CNAME to `target` plus its records.
    Rewrite {
        /// A name expression.
        target: Expr,
        /// TTL (an int expression).
        ttl: Expr,
    },
    /// Forward to a pool (a string expression).
    Forward(Expr),
    /// Members of an answer pool, picked by the server among the healthy
    /// ones (`then pool NAME [PICK [KEY]] [count N] [ttl N]`).
    Pool {
        /// The pool's name.
        pool: Arc<str>,
        /// How members are picked.
        pick: Pick,
        /// For `sticky`: `hash(KEY)`, an int expression.
        key: Option<Expr>,
        /// Members to answer with; 0 = every one picked.
        count: u32,
        /// TTL in seconds.
        ttl: u32,
    },
    /// NXDOMAIN.
    Nxdomain,
    /// NODATA.
    Nodata,
    /// REFUSED.
    Refuse,
    /// SERVFAIL.
    Servfail,
    /// Drop.
    Drop,
    /// TC=1.
    Truncate,
    /// Explicit pass.
    Pass,
    /// HTTP: `route POOL [set_header NAME VALUE | remove_header NAME]...`
    /// (constants: the verdict is static data in every backend).
    Route {
        /// The HTTP pool.
        pool: Arc<str>,
        /// Header edits, in order.
        headers: Arc<[HeaderOp]>,
    },
    /// HTTP: `respond STATUS [BODY]`.
    Respond {
        /// 100 to 599.
        status: u16,
        /// The body ("" when none).
        body: Arc<str>,
    },
    /// HTTP: `redirect STATUS URL`.
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// The `Location`.
        location: Arc<str>,
    },
}

/// A typed expression.
#[derive(Debug, Clone)]
pub struct Expr {
    /// What kind.
    pub kind: ExprKind,
    /// Its type.
    pub ty: Type,
    /// Where it is written.
    pub span: Span,
}

/// Comparison operators (operands have the same type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Integer operators. Arithmetic wraps on overflow; division and remainder
/// by zero give 0 (functions are total: a policy never traps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (truncating)
    Div,
    /// `%` (sign of the dividend)
    Rem,
}

/// Built-in functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// `hash(x) -> int`, see [`crate::ir::hash`].
    Hash,
    /// `lower(s)`: ASCII and Unicode lowercase of a string (names are already lowercase).
    Lower,
    /// `len(x)`: characters of a string or name, elements of a list.
    Len,
}

/// The kinds of expression.
#[derive(Debug, Clone)]
pub enum ExprKind {
    /// A constant.
    Lit(Value),
    /// A context slot.
    Field(Field),
    /// An injected variable, by index into [`Policy::inputs`].
    Input(u32),
    /// A local slot of the current rule.
    Local(u32),
    /// `!e`
    Not(Box<Expr>),
    /// `a && b` (short-circuit)
    And(Box<Expr>, Box<Expr>),
    /// `a || b` (short-circuit)
    Or(Box<Expr>, Box<Expr>),
    /// `-e` (wrapping)
    Neg(Box<Expr>),
    /// Comparison of two values of one type. Names compare canonically.
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// Membership in a constant set. `negate` is `not in`.
    InSet {
        /// The value looked up.
        needle: Box<Expr>,
        /// Index into [`Policy::sets`].
        set: u32,
        /// `not in`.
        negate: bool,
    },
    /// Membership in a run-time list (equality) or prefix (containment).
    InExpr {
        /// The value looked up.
        needle: Box<Expr>,
        /// A list or a cidr.
        haystack: Box<Expr>,
        /// `not in`.
        negate: bool,
    },
    /// `e matches REGEX` (unanchored search).
    Matches(Box<Expr>, u32),
    /// `a starts_with b` (label-wise for names).
    StartsWith(Box<Expr>, Box<Expr>),
    /// `a ends_with b` (label-wise for names).
    EndsWith(Box<Expr>, Box<Expr>),
    /// Integer arithmetic.
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// String concatenation (`+` on strings).
    Concat(Box<Expr>, Box<Expr>),
    /// A built-in function call.
    Call(Func, Vec<Expr>),
    /// A list built at run time.
    List(Vec<Expr>),
}

/// A constant set, prebuilt for fast membership tests.
#[derive(Debug, Clone)]
pub enum ConstSet {
    /// Names: exact members and `*.suffix` wildcards (any name strictly
    /// below the suffix; the suffix itself does not match).
    Names(NameSet),
    /// Prefixes: an ip is in the set when a prefix contains it; a cidr when
    /// a prefix covers it.
    Cidrs(Vec<Cidr>),
    /// Any other scalar: equality.
    Values(HashSet<Value>),
    /// A set read from a file at run time (`set x = file("...")`): names
    /// and prefixes, swapped in whole while the policy runs.
    Live(Arc<live::LiveSet>),
}

/// A set of names with wildcard suffixes.
#[derive(Debug, Clone, Default)]
pub struct NameSet {
    /// Exact names (canonical).
    pub exact: HashSet<Arc<str>>,
    /// Suffixes of `*.suffix` patterns (canonical, without `*.`).
    pub wildcards: HashSet<Arc<str>>,
}

impl NameSet {
    /// Whether `name` (canonical) is in the set.
    pub fn contains(&self, name: &str) -> bool {
        if self.exact.contains(name) {
            return true;
        }
        if self.wildcards.is_empty() {
            return false;
        }
        // Walk the strict suffixes: for a.b.c try b.c, then c, then the root.
        let mut rest = name;
        while !rest.is_empty() {
            rest = match rest.find('.') {
                Some(i) => &rest[i + 1..],
                None => "",
            };
            if self.wildcards.contains(rest) {
                debug_assert!(name_has_suffix(name, rest));
                return true;
            }
        }
        false
    }
}

impl ConstSet {
    /// Number of members.
    pub fn len(&self) -> usize {
        match self {
            ConstSet::Names(n) => n.exact.len() + n.wildcards.len(),
            ConstSet::Cidrs(c) => c.len(),
            ConstSet::Values(v) => v.len(),
            ConstSet::Live(l) => l.entries(),
        }
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Policy {
    /// Number of rules, counting the implicit rule of bare statements.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The context fields the policy can read, one bit per [`Field`]: a
    /// host fills only these (GeoIP lookups cost more than the policy).
    pub fn fields_used(&self) -> u32 {
        self.rules.iter().fold(0, |m, r| m | r.fields_used())
    }
}

impl Rule {
    /// The context fields this rule reads (guard and body), one bit per
    /// [`Field`].
    pub fn fields_used(&self) -> u32 {
        let mut mask = 0;
        if let Some(g) = &self.guard {
            fields_in_expr(g, &mut mask);
        }
        fields_in_stmts(&self.body, &mut mask);
        mask
    }
}

fn fields_in_stmts(stmts: &[Stmt], mask: &mut u32) {
    for_each_expr(stmts, &mut |e| fields_in_expr(e, mask));
}

fn fields_in_expr(e: &Expr, mask: &mut u32) {
    if let ExprKind::Field(f) = e.kind {
        *mask |= 1 << (f as u32);
    }
    e.for_each_child(|c| fields_in_expr(c, mask));
}

/// Calls `f` on every top-level expression of `stmts` (conditions, `let`
/// values, action operands), recursing into nested blocks.
pub fn for_each_expr(stmts: &[Stmt], f: &mut dyn FnMut(&Expr)) {
    for s in stmts {
        match s {
            Stmt::If {
                cond,
                then_body,
                else_body,
            } => {
                f(cond);
                for_each_expr(then_body, f);
                for_each_expr(else_body, f);
            }
            Stmt::Let { value, .. } => f(value),
            Stmt::Then { action, .. } => match action {
                Action::Value(e) | Action::Forward(e) => f(e),
                Action::Answer { data, ttl, .. } => {
                    data.iter().for_each(&mut *f);
                    f(ttl);
                }
                Action::Rewrite { target, ttl } => {
                    f(target);
                    f(ttl);
                }
                Action::Pool { key: Some(k), .. } => f(k),
                _ => {}
            },
        }
    }
}

/// [`for_each_expr`] with mutable access.
pub fn for_each_expr_mut(stmts: &mut [Stmt], f: &mut dyn FnMut(&mut Expr)) {
    for s in stmts {
        match s {
            Stmt::If {
                cond,
                then_body,
                else_body,
            } => {
                f(cond);
                for_each_expr_mut(then_body, f);
                for_each_expr_mut(else_body, f);
            }
            Stmt::Let { value, .. } => f(value),
            Stmt::Then { action, .. } => match action {
                Action::Value(e) | Action::Forward(e) => f(e),
                Action::Answer { data, ttl, .. } => {
                    data.iter_mut().for_each(&mut *f);
                    f(ttl);
                }
                Action::Rewrite { target, ttl } => {
                    f(target);
                    f(ttl);
                }
                Action::Pool { key: Some(k), .. } => f(k),
                _ => {}
            },
        }
    }
}

impl Expr {
    /// Whether evaluating this expression can give a missing value: it
    /// reads a field, variable or local, directly or through arithmetic,
    /// functions or concatenation. Conditions and comparisons never are
    /// (a missing operand makes them false). Backends use it to skip the
    /// "missing" branch where none can be taken.
    pub fn can_be_missing(&self) -> bool {
        match &self.kind {
            ExprKind::Field(_) | ExprKind::Input(_) | ExprKind::Local(_) => true,
            ExprKind::Lit(_)
            | ExprKind::Not(_)
            | ExprKind::And(..)
            | ExprKind::Or(..)
            | ExprKind::Cmp(..)
            | ExprKind::InSet { .. }
            | ExprKind::InExpr { .. }
            | ExprKind::Matches(..)
            | ExprKind::StartsWith(..)
            | ExprKind::EndsWith(..) => false,
            _ => self.any_child_can_be_missing(),
        }
    }

    /// Whether some direct child can give a missing value.
    pub fn any_child_can_be_missing(&self) -> bool {
        let mut any = false;
        self.for_each_child(|c| any |= c.can_be_missing());
        any
    }

    /// Calls `f` on each direct sub-expression.
    pub fn for_each_child(&self, mut f: impl FnMut(&Expr)) {
        match &self.kind {
            ExprKind::Not(a) | ExprKind::Neg(a) | ExprKind::Matches(a, _) => f(a),
            ExprKind::InSet { needle, .. } => f(needle),
            ExprKind::And(a, b)
            | ExprKind::Or(a, b)
            | ExprKind::Cmp(_, a, b)
            | ExprKind::StartsWith(a, b)
            | ExprKind::EndsWith(a, b)
            | ExprKind::Arith(_, a, b)
            | ExprKind::Concat(a, b)
            | ExprKind::InExpr {
                needle: a,
                haystack: b,
                ..
            } => {
                f(a);
                f(b);
            }
            ExprKind::Call(_, args) | ExprKind::List(args) => args.iter().for_each(f),
            ExprKind::Lit(_) | ExprKind::Field(_) | ExprKind::Input(_) | ExprKind::Local(_) => {}
        }
    }

    /// Calls `f` on each direct sub-expression, mutably.
    pub fn for_each_child_mut(&mut self, mut f: impl FnMut(&mut Expr)) {
        match &mut self.kind {
            ExprKind::Not(a) | ExprKind::Neg(a) | ExprKind::Matches(a, _) => f(a),
            ExprKind::InSet { needle, .. } => f(needle),
            ExprKind::And(a, b)
            | ExprKind::Or(a, b)
            | ExprKind::Cmp(_, a, b)
            | ExprKind::StartsWith(a, b)
            | ExprKind::EndsWith(a, b)
            | ExprKind::Arith(_, a, b)
            | ExprKind::Concat(a, b)
            | ExprKind::InExpr {
                needle: a,
                haystack: b,
                ..
            } => {
                f(a);
                f(b);
            }
            ExprKind::Call(_, args) | ExprKind::List(args) => args.iter_mut().for_each(f),
            ExprKind::Lit(_) | ExprKind::Field(_) | ExprKind::Input(_) | ExprKind::Local(_) => {}
        }
    }
}

/// A `then` operand that is not a literal: the verdict is known only at run
/// time (see [`Action::static_verdict`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotStatic {
    /// The operand.
    pub span: Span,
    /// What it is, for a backend's diagnostic.
    pub what: &'static str,
}

impl Action {
    /// For `then pool`: the verdict without its key, and the key's
    /// expression if it has one. Backends hand the table verdict and the
    /// key computed at run time to the host separately.
    pub fn keyed_pool(&self) -> Option<(Verdict, Option<&Expr>)> {
        let Action::Pool {
            pool,
            pick,
            key,
            count,
            ttl,
        } = self
        else {
            return None;
        };
        Some((
            Verdict::Pool {
                pool: pool.clone(),
                pick: *pick,
                count: *count,
                ttl: *ttl,
                key: None,
            },
            key.as_ref(),
        ))
    }

    /// The verdict of a `then` whose operands are all literals, decided at
    /// compile time as the interpreter would decide it; `Ok(None)`: it can
    /// never decide (a TTL or an address out of range).
    pub fn static_verdict(&self) -> Result<Option<Verdict>, NotStatic> {
        let a = self;
        let lit = |e: &Expr| match &e.kind {
            ExprKind::Lit(Value::List(_)) => Err(NotStatic {
                span: e.span,
                what: "a list verdict",
            }),
            ExprKind::Lit(v) => Ok(v.clone()),
            _ => Err(NotStatic {
                span: e.span,
                what: "a `then` with a run-time operand (other than a value)",
            }),
        };
        let ttl = |e: &Expr| -> Result<Option<u32>, NotStatic> {
            Ok(match lit(e)? {
                Value::Int(t) if (0..=i64::from(i32::MAX)).contains(&t) => Some(t as u32),
                _ => None,
            })
        };
        Ok(Some(match a {
            Action::Value(e) => Verdict::Value(lit(e)?),
            Action::Answer {
                rtype,
                data,
                ttl: t,
            } => {
                // Built in place: one record stays inline (a `Vec` turned
                // into the `SmallVec` would keep its heap buffer, one small
                // allocation per answer of a 100 000-rule policy).
                let mut out = crate::ir::value::Records::new();
                for d in data {
                    let v = lit(d)?;
                    let fits = match (rtype, &v) {
                        (1, Value::Ip(ip)) => ip.is_ipv4(),
                        (28, Value::Ip(ip)) => ip.is_ipv6(),
                        _ => true,
                    };
                    if !fits {
                        return Ok(None);
                    }
                    out.push(v);
                }
                let Some(ttl) = ttl(t)? else { return Ok(None) };
                Verdict::Answer {
                    rtype: *rtype,
                    data: out,
                    ttl,
                }
            }
            Action::Rewrite { target, ttl: t } => match lit(target)? {
                Value::Name(n) => {
                    let Some(ttl) = ttl(t)? else { return Ok(None) };
                    Verdict::Rewrite {
                        target: n.to_string(),
                        ttl,
                    }
                }
                _ => return Ok(None),
            },
            Action::Forward(p) => Verdict::Forward {
                pool: lit(p)?.to_string(),
            },
            Action::Pool { key: Some(k), .. } => {
                return Err(NotStatic {
                    span: k.span,
                    what: "a sticky key (see `Action::keyed_pool`)",
                })
            }
            Action::Pool { key: None, .. } => return Ok(self.keyed_pool().map(|(v, _)| v)),
            Action::Nxdomain => Verdict::Nxdomain,
            Action::Nodata => Verdict::Nodata,
            Action::Refuse => Verdict::Refuse,
            Action::Servfail => Verdict::Servfail,
            Action::Drop => Verdict::Drop,
            Action::Truncate => Verdict::Truncate,
            Action::Pass => Verdict::Pass,
            Action::Route { pool, headers } => Verdict::Route {
                pool: pool.clone(),
                headers: headers.clone(),
            },
            Action::Respond { status, body } => Verdict::Respond {
                status: *status,
                body: body.clone(),
            },
            Action::Redirect { status, location } => Verdict::Redirect {
                status: *status,
                location: location.clone(),
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_strict_subdomains() {
        let mut s = NameSet::default();
        s.wildcards.insert("tracker.example".into());
        s.exact.insert("ads.example.net".into());
        assert!(s.contains("a.tracker.example"));
        assert!(s.contains("x.y.tracker.example"));
        assert!(!s.contains("tracker.example"));
        assert!(!s.contains("badtracker.example"));
        assert!(s.contains("ads.example.net"));
        assert!(!s.contains("x.ads.example.net"));
    }
}
