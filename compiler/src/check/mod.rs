//! The checker: names, types and sense, from [`ast::Program`] to the typed
//! [`ir::Policy`]. It reports every problem it finds (not just the first)
//! and never gives a policy when there is an error.
//!
//! This module walks items, rules and statements; `actions` checks what a
//! `then` does (record data, TTLs, pools); expressions are typed by concern: `expr` (entry points and dispatch), `names`
//! (paths, variables, locals, sets, calls), `literals` (literals that follow
//! the other side), `operators`, `membership` (`in` and constant sets) and
//! `infer` (inference of injected variables, coercion, mismatch messages).
//!
//! Depends on the syntax layer (it parses) and builds the [`crate::ir`];
//! never on a backend.

mod actions;

pub use actions::is_hop_by_hop;
mod expr;
mod infer;
mod lint;
mod literals;
mod membership;
mod names;
mod never;
mod operators;
mod program;
mod scope_index;

use crate::diagnostics::{closest, edit_distance, Diagnostic};
use crate::ir::context::{Field, FIELDS, ROOTS};
use crate::ir::types::{canonical_name, qtype_from_str, Cidr, CidrError, Type, QTYPES};
use crate::ir::value::{Pick, Value};
use crate::ir::{
    self, Action, ArithOp, CmpOp, ConstSet, Expr, ExprKind, Func, NameSet, Policy, Stmt,
};
use crate::syntax::ast::{self, ActionKind, BinOp, Item, StmtKind, UnOp};
use crate::syntax::parser;
use crate::syntax::span::Span;
use literals::*;
use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;

/// Default TTL of `answer` and `rewrite` when no `ttl` is given.
pub const DEFAULT_TTL: i64 = 300;

/// The result of checking one source file.
#[derive(Debug)]
pub struct Checked {
    /// The syntax tree (with error nodes where parsing recovered); empty
    /// from [`check_for_serving`].
    pub ast: ast::Program,
    /// The policy, when there were no errors.
    pub policy: Option<Policy>,
    /// Errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// Number of errors (not warnings).
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// Parses and checks a source file.
pub fn check(src: &str) -> Checked {
    check_with(src, true, None)
}

/// [`check`] without the rule-order and dead-guard lints (W0005-W0007):
/// for loading a policy to serve, where warnings are not shown and the
/// lints were a quarter of the time and much of the memory a 100 000-rule
/// policy takes to load. Errors are the same as [`check`]'s; `dnspolicy
/// check` and `lsp` still report the warnings (`push` checks as `serve` loads).
/// The syntax tree is not kept ([`Checked::ast`] is empty).
pub fn check_for_serving(src: &str) -> Checked {
    check_with(src, false, None)
}

/// [`check_for_serving`] that hands each rule to `hook` as soon as it is
/// checked (with the constant sets declared so far, and only while no
/// error has been found), for a backend that
/// plans rules one at a time and frees their syntax: a 100 000-rule
/// policy's typed rules then never exist all at once. Rules whose types
/// wait on inference from later rules, and the implicit rule `main`, are
/// not handed over: they are in the policy whole. The hook may take a
/// rule's guard and body, so the policy's [`Policy::index`] is left empty
/// for the hook's owner to build.
pub fn check_for_serving_with(
    src: &str,
    hook: &mut dyn FnMut(&mut ir::Rule, &[ConstSet]),
) -> Checked {
    check_with(src, false, Some(hook))
}

fn check_with(src: &str, lints: bool, mut hook: Option<&mut program::RuleHook<'_>>) -> Checked {
    let is_decl = |i: &Item| matches!(i, Item::Const(_) | Item::Set(_) | Item::Input(_));
    let (ast, mut diagnostics, policy, mut check_diags) = if lints {
        let (ast, diagnostics) = parser::parse(src);
        let mut ck = Checker::new();
        let rules = ast
            .items
            .iter()
            .filter(|i| matches!(i, Item::Rule(_)))
            .count();
        let policy = ck.program(&ast.items, ast.items.iter(), rules);
        let diags = std::mem::take(&mut ck.diags);
        drop(ck);
        (ast, diagnostics, policy, diags)
    } else {
        // Serving never holds the syntax tree (a 100 000-rule policy's is
        // ~50 MB, beside its IR, and a reload builds both beside the
        // serving generation): each rule is checked as soon as it is
        // parsed, then dropped. Items may use declarations made after
        // them, so those are collected first: from the text before the
        // first rule when they are all there, else by parsing the file
        // twice.
        // The declarations in `text` (into `decls`), how many rules it
        // has, and whether it parsed to the end without an error.
        let declarations = |text: &str, decls: &mut Vec<Item>| {
            let mut rules = 0;
            let (diags, complete) = parser::parse_items(text, &mut |item: Item| {
                if is_decl(&item) {
                    decls.push(item);
                } else if matches!(item, Item::Rule(_)) {
                    rules += 1;
                }
            });
            (complete && !diags.iter().any(Diagnostic::is_error), rules)
        };
        let mut decls = Vec::new();
        let head =
            parser::declarations_end(src).filter(|&end| declarations(&src[..end], &mut decls).0);
        let rules = if let Some(end) = head {
            // A capacity, not a count: the word may be in names or text.
            // Bounded by the shortest rule (`rule r{then pass}`), so text
            // full of the word cannot reserve more than rules could need.
            let rest = &src[end..];
            rest.matches("rule").count().min(rest.len() / 16)
        } else {
            decls.clear();
            declarations(src, &mut decls).1
        };
        let mut ck = Checker::new();
        ck.lints = false;
        let mut body = ck.begin(&decls, rules);
        let (diagnostics, complete) = parser::parse_items(src, &mut |item: Item| {
            ck.item(&mut body, &item, hook.as_deref_mut());
        });
        let mut policy = ck.finish(body);
        let mut diags = std::mem::take(&mut ck.diags);
        drop(ck);
        drop(decls);
        if !complete {
            // The parser gave up: `check` has no tree to check then.
            diags.clear();
        }
        if hook.is_none() {
            policy.index = crate::ir::index::RuleIndex::build(&policy.rules, &policy.sets);
        }
        let ast = ast::Program { items: Vec::new() };
        (ast, diagnostics, policy, diags)
    };
    let syntax_errors = diagnostics.iter().any(Diagnostic::is_error);
    let check_errors = check_diags.iter().any(Diagnostic::is_error);
    // Statements lost to a syntax error distort reachability, and a
    // misspelt name makes its definition look unused: those reports would
    // be noise next to the real errors.
    check_diags.retain(|d| {
        !(syntax_errors && d.code == "E0040")
            && !((syntax_errors || check_errors) && d.code == "W0002")
    });
    diagnostics.append(&mut check_diags);
    diagnostics.sort_by_key(|d| (d.primary.span.start, d.primary.span.end));
    let policy = if diagnostics.iter().any(Diagnostic::is_error) {
        None
    } else {
        Some(policy)
    };
    Checked {
        ast,
        policy,
        diagnostics,
    }
}

struct ConstInfo<'a> {
    decl: &'a ast::ConstDecl,
    used: bool,
}

struct SetInfo<'a> {
    decl: &'a ast::SetDecl,
    used: bool,
}

struct InputState {
    path: String,
    ty: Option<Type>,
    /// The declaration, or the first use that fixed the type.
    fixed_at: Option<Span>,
    declared: bool,
    first_use: Span,
}

struct Local {
    name: String,
    slot: u32,
    ty: Type,
}

pub(crate) struct Checker<'a> {
    diags: Vec<Diagnostic>,
    consts: HashMap<&'a str, ConstInfo<'a>>,
    sets: HashMap<&'a str, SetInfo<'a>>,
    inputs: Vec<InputState>,
    input_ids: HashMap<String, u32>,
    scopes: Vec<Vec<Local>>,
    next_local: u32,
    const_sets: Vec<ConstSet>,
    set_cache: HashMap<(usize, String), u32>,
    /// File-backed sets by name: their slot in `const_sets`.
    live_slots: HashMap<String, u32>,
    live_sets: Vec<std::sync::Arc<crate::ir::live::LiveSet>>,
    regexes: Vec<regex::Regex>,
    regex_cache: HashMap<String, u32>,
    pending_eq: Vec<(u32, u32, Span)>,
    /// The injected variable on the other side of the comparison being
    /// checked, so a literal that does not fit reports a conflict on it.
    other_input: Option<u32>,
    /// The first read or verdict that exists for one front door only, per
    /// door (what `{query.name}` or `route` tie the policy to), and whether
    /// mixing them was reported.
    front_dns: Option<(Span, String)>,
    front_http: Option<(Span, String)>,
    front_mixed: bool,
    /// Whether to run the rule-order and dead-guard lints.
    lints: bool,
}

/// A statement list after checking, and whether it always decides (so
/// anything after it is unreachable).
struct BlockOut {
    stmts: Vec<Stmt>,
    decides: Option<Span>,
}

impl<'a> Checker<'a> {
    fn new() -> Self {
        Checker {
            diags: Vec::new(),
            consts: HashMap::default(),
            sets: HashMap::default(),
            inputs: Vec::new(),
            input_ids: HashMap::default(),
            scopes: Vec::new(),
            next_local: 0,
            const_sets: Vec::new(),
            set_cache: HashMap::default(),
            live_slots: HashMap::default(),
            live_sets: Vec::new(),
            regexes: Vec::new(),
            regex_cache: HashMap::default(),
            pending_eq: Vec::new(),
            other_input: None,
            front_dns: None,
            front_http: None,
            front_mixed: false,
            lints: true,
        }
    }

    /// Notes that `what` at `span` belongs to one front door; the first use
    /// of the other door is E0047 (once per policy).
    pub(super) fn front_use(&mut self, front: ir::Front, span: Span, what: &str) {
        let (mine, other, door, other_door) = match front {
            ir::Front::Dns => (&mut self.front_dns, &self.front_http, "DNS", "HTTP"),
            ir::Front::Http => (&mut self.front_http, &self.front_dns, "HTTP", "DNS"),
            ir::Front::Any => return,
        };
        if mine.is_none() {
            *mine = Some((span, what.to_string()));
        }
        let Some((at, first)) = other.clone() else {
            return;
        };
        if self.front_mixed {
            return;
        }
        self.front_mixed = true;
        self.error(
            Diagnostic::error(
                "E0047",
                format!("{what} is for {door}, but this policy is for {other_door}"),
                span,
            )
            .with_label(format!("{door} only"))
            .with_secondary(at, format!("{first}: {other_door} only"))
            .with_help(format!(
                "a policy serves one front door: put the {door} rules in a file of their own"
            )),
        );
    }

    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// First pass: consts, sets and inputs, so they may be used before
    /// their declaration.
    fn declarations(&mut self, decls: &'a [Item]) {
        let mut seen: HashMap<&str, Span> = HashMap::default();
        for item in decls {
            let (name, span) = match item {
                Item::Const(c) => (&c.name.name, c.name.span),
                Item::Set(s) => (&s.name.name, s.name.span),
                _ => continue,
            };
            if let Some(prev) = seen.insert(name, span) {
                self.error(
                    Diagnostic::error("E0022", format!("`{name}` is defined twice"), span)
                        .with_label("defined again here")
                        .with_secondary(prev, "first defined here"),
                );
                continue;
            }
            match item {
                Item::Const(c) => {
                    if !is_literal(&c.value) {
                        self.error(
                            Diagnostic::error("E0044", format!("the value of const `{name}` is not a literal"), c.value.span)
                                .with_label("not a literal")
                                .with_help("a const holds a literal: a number, string, address, prefix, bool, or a list of them"),
                        );
                    }
                    self.consts.insert(
                        name,
                        ConstInfo {
                            decl: c,
                            used: false,
                        },
                    );
                }
                Item::Set(s) => {
                    let ok = match &s.value.kind {
                        ast::ExprKind::List(items) => items.iter().all(is_literal),
                        _ => literals::file_path(&s.value).is_some(),
                    };
                    if !ok {
                        self.error(
                            Diagnostic::error("E0044", format!("set `{name}` must be a list of literals"), s.value.span)
                                .with_label("not a list of literals")
                                .with_help("write the members in brackets: `set name = [\"a.example\", \"*.b.example\"]`, or read them from a file: `set name = file(\"names.txt\")`"),
                        );
                    }
                    self.sets.insert(
                        name,
                        SetInfo {
                            decl: s,
                            used: false,
                        },
                    );
                }
                _ => {}
            }
        }
        for item in decls {
            let Item::Input(i) = item else { continue };
            let path = &i.path.name;
            let root = path.split('.').next().unwrap_or("");
            if ROOTS.contains(&root) {
                self.error(
                    Diagnostic::error(
                        "E0027",
                        format!("`{path}` is a context path, not an injected variable"),
                        i.path.span,
                    )
                    .with_label(format!("`{root}.` paths are filled in by the server"))
                    .with_help(
                        "choose another root for injected variables, e.g. `user.` or `app.`",
                    ),
                );
                continue;
            }
            let elem = match Type::from_name(&i.ty.name.name) {
                Some(t) => t,
                None => {
                    let mut d = Diagnostic::error(
                        "E0026",
                        format!("unknown type `{}`", i.ty.name.name),
                        i.ty.name.span,
                    )
                    .with_label("not a type");
                    d = match closest(&i.ty.name.name, Type::NAMES.iter().copied()) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help(format!("types are {}", Type::NAMES.join(", "))),
                    };
                    self.error(d);
                    Type::Unknown
                }
            };
            let ty = if i.ty.list {
                Type::List(Box::new(elem))
            } else {
                elem
            };
            if let Some(&id) = self.input_ids.get(path.as_str()) {
                let prev = self.inputs[id as usize].fixed_at.unwrap_or(i.span);
                self.error(
                    Diagnostic::error(
                        "E0022",
                        format!("input `{path}` is declared twice"),
                        i.path.span,
                    )
                    .with_label("declared again here")
                    .with_secondary(prev, "first declared here"),
                );
                continue;
            }
            let id = self.inputs.len() as u32;
            self.inputs.push(InputState {
                path: path.clone(),
                ty: Some(ty),
                fixed_at: Some(i.span),
                declared: true,
                first_use: i.span,
            });
            self.input_ids.insert(path.clone(), id);
        }
    }

    fn unreachable(&mut self, span: Span, decided_at: Span) {
        self.error(
            Diagnostic::error("E0040", "unreachable statement", span)
                .with_label("this is never evaluated")
                .with_secondary(
                    decided_at,
                    "every path reaching here has already decided with `then`",
                )
                .with_help("remove it, or put it before the `then`"),
        );
    }

    fn block(&mut self, stmts: &[ast::Stmt]) -> BlockOut {
        self.scopes.push(Vec::new());
        let mut out = Vec::new();
        let mut decides = None;
        let mut reported = false;
        for s in stmts {
            if let Some(at) = decides {
                if !reported {
                    reported = true;
                    self.unreachable(s.span, at);
                }
                let _ = self.stmt(s);
                continue;
            }
            let o = self.stmt(s);
            decides = o.decides;
            out.extend(o.stmts);
        }
        self.scopes.pop();
        out.shrink_to_fit();
        BlockOut {
            stmts: out,
            decides,
        }
    }

    fn stmt(&mut self, s: &ast::Stmt) -> BlockOut {
        match &s.kind {
            StmtKind::If {
                cond,
                then_block,
                else_branch,
            } => {
                let cond = self.cond(cond);
                let t = self.block(&then_block.stmts);
                let e = match else_branch {
                    None => BlockOut {
                        stmts: vec![],
                        decides: None,
                    },
                    Some(ast::Else::Block(b)) => self.block(&b.stmts),
                    Some(ast::Else::If(s)) => self.stmt(s),
                };
                let decides = match (t.decides, e.decides) {
                    (Some(_), Some(_)) => Some(s.span),
                    _ => None,
                };
                BlockOut {
                    stmts: vec![Stmt::If {
                        cond,
                        then_body: t.stmts,
                        else_body: e.stmts,
                    }],
                    decides,
                }
            }
            StmtKind::Let { name, value } => {
                let value = self.expr_value(value);
                let slot = self.next_local;
                self.next_local += 1;
                if let Some(scope) = self.scopes.last_mut() {
                    scope.push(Local {
                        name: name.name.clone(),
                        slot,
                        ty: value.ty.clone(),
                    });
                }
                BlockOut {
                    stmts: vec![Stmt::Let { local: slot, value }],
                    decides: None,
                }
            }
            StmtKind::Then(a) => {
                let action = self.action(a);
                BlockOut {
                    stmts: vec![Stmt::Then {
                        action,
                        span: s.span,
                    }],
                    decides: Some(s.span),
                }
            }
            StmtKind::Error => BlockOut {
                stmts: vec![],
                decides: None,
            },
        }
    }

    fn is_bound(&self, name: &str) -> bool {
        self.lookup_local(name).is_some()
            || self.consts.contains_key(name)
            || self.sets.contains_key(name)
    }

    fn lookup_local(&self, name: &str) -> Option<(u32, Type)> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|l| l.name == name)
            .map(|l| (l.slot, l.ty.clone()))
    }

    /// Resolves pending equalities between untyped inputs and reports the
    /// ones whose type nothing fixed.
    fn finish_inputs(&mut self) {
        let mut changed = true;
        while changed {
            changed = false;
            for (a, b, span) in self.pending_eq.clone() {
                let (ta, tb) = (
                    self.inputs[a as usize].ty.clone(),
                    self.inputs[b as usize].ty.clone(),
                );
                match (ta, tb) {
                    (Some(t), None) => {
                        self.inputs[b as usize].ty = Some(t);
                        self.inputs[b as usize].fixed_at = Some(span);
                        changed = true;
                    }
                    (None, Some(t)) => {
                        self.inputs[a as usize].ty = Some(t);
                        self.inputs[a as usize].fixed_at = Some(span);
                        changed = true;
                    }
                    (Some(x), Some(y)) if x != y => {
                        let (pa, pb) = (
                            self.inputs[a as usize].path.clone(),
                            self.inputs[b as usize].path.clone(),
                        );
                        self.error(
                            Diagnostic::error("E0030", "mismatched types", span)
                                .with_label(format!("`{pa}` is {x} but `{pb}` is {y}")),
                        );
                    }
                    _ => {}
                }
            }
            self.pending_eq.retain(|(a, b, _)| {
                self.inputs[*a as usize].ty.is_none() || self.inputs[*b as usize].ty.is_none()
            });
        }
        let unresolved: Vec<(String, Span)> = self
            .inputs
            .iter()
            .filter(|i| i.ty.is_none())
            .map(|i| (i.path.clone(), i.first_use))
            .collect();
        for (path, span) in unresolved {
            self.error(
                Diagnostic::error("E0034", format!("cannot infer the type of `{path}`"), span)
                    .with_label("nothing here says what type this variable has")
                    .with_help(format!("declare it, e.g. `input {path} : string`")),
            );
        }
    }

    fn zonk_rule(&self, rule: &mut ir::Rule) {
        if let Some(g) = &mut rule.guard {
            self.zonk_expr(g);
        }
        self.zonk_stmts(&mut rule.body);
    }

    fn zonk_stmts(&self, stmts: &mut [Stmt]) {
        ir::for_each_expr_mut(stmts, &mut |e| self.zonk_expr(e));
    }

    /// Fills in the types of inputs whose type was inferred after the node was built.
    fn zonk_expr(&self, e: &mut Expr) {
        e.for_each_child_mut(|c| self.zonk_expr(c));
        if let ExprKind::Input(i) = e.kind {
            if e.ty == Type::Unknown {
                e.ty = self.inputs[i as usize].ty.clone().unwrap_or(Type::Unknown);
            }
        }
        if let Type::List(inner) = &e.ty {
            if **inner == Type::Unknown {
                if let ExprKind::List(items) = &e.kind {
                    if let Some(first) = items.first() {
                        e.ty = Type::List(Box::new(first.ty.clone()));
                    }
                }
            }
        }
    }

    fn unused_warnings(&mut self) {
        let mut unused: Vec<(Span, String, &str)> = Vec::new();
        for (name, c) in &self.consts {
            if !c.used {
                unused.push((c.decl.name.span, name.to_string(), "const"));
            }
        }
        for (name, s) in &self.sets {
            if !s.used {
                unused.push((s.decl.name.span, name.to_string(), "set"));
            }
        }
        unused.sort();
        for (span, name, what) in unused {
            self.diags.push(
                Diagnostic::warning("W0002", format!("{what} `{name}` is never used"), span)
                    .with_label("defined here"),
            );
        }
    }
}

fn lit(v: Value, ty: Type, span: Span) -> Expr {
    Expr {
        kind: ExprKind::Lit(v),
        ty,
        span,
    }
}

/// Every known context path, for suggestions.
fn field_paths() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().map(|f| f.path)
}
