//! Expression typing: name resolution, literal conversion ("a string
//! literal becomes a name, address, prefix or record type when the other
//! side demands it"), inference of injected variables' types, and constant
//! sets for `in`.

use super::{field_paths, lit, Checker, InputState};
use crate::ast::{self, BinOp, UnOp};
use crate::context::{Field, ROOTS};
use crate::diagnostics::{closest, edit_distance, Diagnostic};
use crate::ir::{ArithOp, CmpOp, ConstSet, Expr, ExprKind, Func, NameSet};
use crate::span::Span;
use crate::types::{canonical_name, qtype_from_str, Cidr, Type, QTYPES};
use crate::value::Value;
use std::collections::HashSet;
use std::net::IpAddr;

/// A literal whose type is decided by where it is used.
#[derive(Clone, Copy)]
enum Flex<'a> {
    Str(&'a str, Span),
    /// List items; the key identifies the list for set caching.
    List(&'a [ast::Expr], usize),
}

/// Whether an AST node is a literal (or a list of literals), as `const`
/// and `set` values must be.
pub(super) fn is_literal(e: &ast::Expr) -> bool {
    match &e.kind {
        ast::ExprKind::Int(_)
        | ast::ExprKind::Str(_)
        | ast::ExprKind::Bool(_)
        | ast::ExprKind::Ip(_)
        | ast::ExprKind::Cidr(_)
        | ast::ExprKind::Error => true,
        ast::ExprKind::Ident(n) => {
            qtype_from_str(n).is_some()
                && n.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        }
        ast::ExprKind::List(items) => items.iter().all(is_literal),
        _ => false,
    }
}

/// A problem with the text of a record of type `rtype`, if any.
pub(super) fn rdata_problem(rtype: u16, s: &str) -> Option<String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let name_ok = |n: &str| canonical_name(n).is_ok();
    match rtype {
        // MX: preference exchange
        15 => match parts.as_slice() {
            [p, n] if p.parse::<u16>().is_ok() && name_ok(n) => None,
            _ => Some("MX data is `PREFERENCE EXCHANGE`, e.g. \"10 mail.example.com\"".into()),
        },
        // SRV: priority weight port target
        33 => match parts.as_slice() {
            [a, b, c, n] if [a, b, c].iter().all(|x| x.parse::<u16>().is_ok()) && name_ok(n) => {
                None
            }
            _ => Some(
                "SRV data is `PRIORITY WEIGHT PORT TARGET`, e.g. \"10 5 443 edge.example.com\""
                    .into(),
            ),
        },
        16 if s.len() > 65_535 => Some("TXT data is longer than a DNS message can carry".into()),
        _ => None,
    }
}

enum ConvError {
    Mismatch,
    Wildcard,
    Invalid(String),
}

/// Converts a string literal to `t`.
fn convert_str(s: &str, t: &Type) -> Result<Value, ConvError> {
    match t {
        Type::String => Ok(Value::Str(s.into())),
        Type::Name => {
            if s == "*" || s.starts_with("*.") {
                return Err(ConvError::Wildcard);
            }
            canonical_name(s)
                .map(|n| Value::Name(n.into()))
                .map_err(ConvError::Invalid)
        }
        Type::Ip => s
            .parse::<IpAddr>()
            .map(Value::Ip)
            .map_err(|_| ConvError::Invalid(format!("`{s}` is not an IP address"))),
        Type::Cidr => parse_cidr_or_host(s)
            .map(Value::Cidr)
            .map_err(ConvError::Invalid),
        Type::Qtype => qtype_from_str(s)
            .map(Value::Qtype)
            .ok_or_else(|| ConvError::Invalid(format!("`{s}` is not a record type"))),
        _ => Err(ConvError::Mismatch),
    }
}

fn parse_cidr_or_host(s: &str) -> Result<Cidr, String> {
    if s.contains('/') {
        s.parse()
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| format!("`{s}` is not a prefix or address"))?;
        Ok(Cidr::containing(ip, crate::types::max_len(&ip)))
    }
}

/// A set element: a value, or a `*.suffix` wildcard for name sets.
enum Elem {
    Value(Value),
    Wildcard(String),
}

impl<'a> Checker<'a> {
    fn flex(&mut self, e: &'a ast::Expr) -> Option<Flex<'a>> {
        match &e.kind {
            ast::ExprKind::Str(s) => Some(Flex::Str(s, e.span)),
            ast::ExprKind::List(items) => Some(Flex::List(items, items.as_ptr() as usize)),
            ast::ExprKind::Ident(n) if self.lookup_local(n).is_none() => {
                if let Some(c) = self.consts.get_mut(n.as_ref()) {
                    c.used = true;
                    let v = &c.decl.value;
                    return match &v.kind {
                        ast::ExprKind::Str(s) => Some(Flex::Str(s, e.span)),
                        ast::ExprKind::List(items) => {
                            Some(Flex::List(items, items.as_ptr() as usize))
                        }
                        _ => None,
                    };
                }
                if let Some(s) = self.sets.get_mut(n.as_ref()) {
                    s.used = true;
                    if let ast::ExprKind::List(items) = &s.decl.value.kind {
                        return Some(Flex::List(items, items.as_ptr() as usize));
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// The natural type of a flexible literal with no other side to follow.
    fn flex_default(&mut self, f: Flex<'a>, span: Span) -> Expr {
        match f {
            Flex::Str(s, sp) => lit(Value::Str(s.into()), Type::String, sp),
            Flex::List(items, _) => self.list(items, span),
        }
    }

    /// Types a value position (`let`, `then VALUE`): literals keep their natural type.
    pub(super) fn expr_value(&mut self, e: &'a ast::Expr) -> Expr {
        match self.flex(e) {
            Some(f) => self.flex_default(f, e.span),
            None => self.expr(e),
        }
    }

    /// Types `e` as a condition.
    pub(super) fn cond(&mut self, e: &'a ast::Expr) -> Expr {
        let t = self.expr_value(e);
        if self.infer(&t, &Type::Bool) || t.ty == Type::Bool || t.ty == Type::Unknown {
            return Expr {
                ty: Type::Bool,
                ..t
            };
        }
        let help = match &t.ty {
            Type::Int => "compare it, e.g. `x > 0`",
            Type::String | Type::Name => "compare it, e.g. `x == \"...\"`",
            Type::List(_) => "test membership with `in`",
            _ => "use a comparison",
        };
        self.error(
            Diagnostic::error("E0032", format!("condition is {}, not bool", t.ty), e.span)
                .with_label(format!("this is {}", t.ty))
                .with_help(help),
        );
        Expr {
            ty: Type::Bool,
            ..t
        }
    }

    /// If `e` is an injected variable whose type is not yet known, fixes it
    /// to `t` and returns true.
    fn infer(&mut self, e: &Expr, t: &Type) -> bool {
        if let (ExprKind::Input(id), Type::Unknown) = (&e.kind, &e.ty) {
            let st = &mut self.inputs[*id as usize];
            if st.ty.is_none() {
                st.ty = Some(t.clone());
                st.fixed_at = Some(e.span);
                return true;
            }
        }
        false
    }

    /// Types `e` so that it has type `want`, converting a literal if needed.
    pub(super) fn coerce(
        &mut self,
        e: &'a ast::Expr,
        want: &Type,
        other: Option<(Span, &Type)>,
    ) -> Expr {
        self.coerce_with(e, want, other, "E0033", "")
    }

    /// Like [`Checker::coerce`], with the code and message used when a
    /// literal does not convert.
    pub(super) fn coerce_with(
        &mut self,
        e: &'a ast::Expr,
        want: &Type,
        other: Option<(Span, &Type)>,
        code: &'static str,
        what: &str,
    ) -> Expr {
        if *want == Type::Unknown {
            return self.expr_value(e);
        }
        if let Some(Flex::Str(s, span)) = self.flex(e) {
            return match convert_str(s, want) {
                Ok(v) => lit(v, want.clone(), span),
                Err(ConvError::Mismatch) => {
                    let input = self.other_input.take();
                    self.mismatch_with(e.span, &Type::String, other, want, input);
                    lit(Value::Str(s.into()), Type::Unknown, span)
                }
                Err(ConvError::Wildcard) => {
                    self.error(
                        Diagnostic::error(
                            "E0039",
                            format!("wildcard name `{s}` outside a set"),
                            span,
                        )
                        .with_label("a wildcard only means \"any subdomain\" inside a set or list")
                        .with_help(format!(
                            "test membership instead: `in [\"{s}\"]`, or use `ends_with \"{}\"`",
                            s.trim_start_matches("*.")
                        )),
                    );
                    lit(Value::Name("".into()), want.clone(), span)
                }
                Err(ConvError::Invalid(msg)) => {
                    let message = if what.is_empty() {
                        format!("`{s}` is not a valid {want}")
                    } else {
                        what.to_string()
                    };
                    let mut d = Diagnostic::error(code, message, span).with_label(msg);
                    if let Some((os, ot)) = other {
                        d = d.with_secondary(
                            os,
                            format!("this is {ot}, so the string must be one too"),
                        );
                    }
                    self.error(d);
                    lit(Value::Str(s.into()), Type::Unknown, span)
                }
            };
        }
        let t = match self.flex(e) {
            Some(f) => self.flex_default(f, e.span),
            None => self.expr(e),
        };
        self.expect(t, want, other, code, what)
    }

    /// Checks an already typed expression against `want`.
    fn expect(
        &mut self,
        t: Expr,
        want: &Type,
        other: Option<(Span, &Type)>,
        code: &'static str,
        what: &str,
    ) -> Expr {
        if *want == Type::Unknown {
            return t;
        }
        if t.ty == *want || t.ty == Type::Unknown && !matches!(t.kind, ExprKind::Input(_)) {
            return t;
        }
        if self.infer(&t, want) {
            return Expr {
                ty: want.clone(),
                ..t
            };
        }
        // An address literal is a host prefix where a prefix is wanted.
        if let (Type::Cidr, ExprKind::Lit(Value::Ip(ip))) = (want, &t.kind) {
            let c = Cidr::containing(*ip, crate::types::max_len(ip));
            return lit(Value::Cidr(c), Type::Cidr, t.span);
        }
        if t.ty == Type::Unknown {
            return t;
        }
        if code == "E0041" && !what.is_empty() {
            self.error(
                Diagnostic::error(code, what.to_string(), t.span)
                    .with_label(format!("this is {}", t.ty)),
            );
        } else {
            self.mismatch(t.span, &t.ty, other, want, Some(&t));
        }
        Expr {
            ty: want.clone(),
            ..t
        }
    }

    /// Reports that `span` (of type `found`) meets an injected variable
    /// `input` whose type `want` was fixed elsewhere: a conflict on the
    /// variable, shown with the place that fixed its type.
    fn mismatch_with(
        &mut self,
        span: Span,
        found: &Type,
        other: Option<(Span, &Type)>,
        want: &Type,
        input: Option<u32>,
    ) {
        if let Some(id) = input {
            let st: &InputState = &self.inputs[id as usize];
            if let Some(fixed) = st.fixed_at {
                let how = if st.declared { "declared" } else { "inferred" };
                let mut d = Diagnostic::error(
                    "E0031",
                    format!("conflicting types for `{}`", st.path),
                    span,
                )
                .with_label(format!("`{}` is compared with {found} here", st.path))
                .with_secondary(fixed, format!("{how} as {want} here"));
                if let Some((os, _)) = other {
                    if os != fixed {
                        d = d.with_secondary(os, format!("`{}` is {want}", st.path));
                    }
                }
                self.error(d.with_help("an injected variable has one type; declare it with `input` to make the intent clear"));
                return;
            }
        }
        self.mismatch(span, found, other, want, None);
    }

    /// Reports a type mismatch, as a conflict on an injected variable when
    /// one side is an inferred input.
    fn mismatch(
        &mut self,
        span: Span,
        found: &Type,
        other: Option<(Span, &Type)>,
        want: &Type,
        e: Option<&Expr>,
    ) {
        if let Some(Expr {
            kind: ExprKind::Input(id),
            ..
        }) = e
        {
            let st: &InputState = &self.inputs[*id as usize];
            if let Some(fixed) = st.fixed_at {
                let how = if st.declared { "declared" } else { "inferred" };
                let d = Diagnostic::error("E0031", format!("conflicting types for `{}`", st.path), span)
                    .with_label(format!("used as {want} here"))
                    .with_secondary(fixed, format!("{how} as {found} here"))
                    .with_help("an injected variable has one type; declare it with `input` to make the intent clear");
                self.error(d);
                return;
            }
        }
        let mut d = Diagnostic::error(
            "E0030",
            format!("mismatched types: expected {want}, found {found}"),
            span,
        )
        .with_label(format!("this is {found}"));
        if let Some((os, ot)) = other {
            d = d.with_secondary(os, format!("this is {ot}"));
        }
        self.error(d);
    }

    /// Types an operand that must be a DNS name (rewrite targets, CNAME data).
    pub(super) fn name_operand(&mut self, e: &'a ast::Expr, what: &str) -> Expr {
        self.coerce_with(
            e,
            &Type::Name,
            None,
            "E0041",
            &format!("{what} must be a DNS name"),
        )
    }

    /// Types an expression with no expectation.
    pub(super) fn expr(&mut self, e: &'a ast::Expr) -> Expr {
        let span = e.span;
        let mk = |kind, ty| Expr { kind, ty, span };
        match &e.kind {
            ast::ExprKind::Int(v) => lit(Value::Int(*v), Type::Int, span),
            ast::ExprKind::Str(s) => lit(Value::Str(s.as_ref().into()), Type::String, span),
            ast::ExprKind::Bool(b) => lit(Value::Bool(*b), Type::Bool, span),
            ast::ExprKind::Ip(ip) => lit(Value::Ip(*ip), Type::Ip, span),
            ast::ExprKind::Cidr(c) => lit(Value::Cidr(*c), Type::Cidr, span),
            ast::ExprKind::Error => lit(Value::Bool(false), Type::Unknown, span),
            ast::ExprKind::Var(path) => self.var(path, span),
            ast::ExprKind::Ident(name) => self.ident(name, span),
            ast::ExprKind::List(items) => self.list(items, span),
            ast::ExprKind::Call(call) => self.call(&call.func, &call.args, span),
            ast::ExprKind::Unary(UnOp::Not, a) => {
                let a = self.cond(a);
                mk(ExprKind::Not(Box::new(a)), Type::Bool)
            }
            ast::ExprKind::Unary(UnOp::Neg, a) => {
                let a = self.coerce(a, &Type::Int, None);
                mk(ExprKind::Neg(Box::new(a)), Type::Int)
            }
            ast::ExprKind::Binary(op, a, b) => self.binary(*op, a, b, span),
        }
    }

    fn var(&mut self, path: &str, span: Span) -> Expr {
        if path == crate::lexer::ERROR_PATH {
            return lit(Value::Bool(false), Type::Unknown, span);
        }
        if !path.contains('.') && self.lookup_local(path).is_some() {
            self.diags.push(
                Diagnostic::warning("W0004", format!("this reads the injected variable `{path}`, not the local `{path}`"), span)
                    .with_label("an injected variable")
                    .with_help(format!("to read the local bound with `let {path} = ...`, write `{path}` without braces")),
            );
        }
        if let Some(f) = Field::from_path(path) {
            return Expr {
                kind: ExprKind::Field(f),
                ty: f.info().ty.clone(),
                span,
            };
        }
        let root = path.split('.').next().unwrap_or("");
        let declared = self.input_ids.contains_key(path);
        let near_root = ROOTS
            .iter()
            .any(|r| *r != root && edit_distance(root, r) <= 2 && root.len() > 2);
        if ROOTS.contains(&root) || (near_root && !declared) {
            let mut d = Diagnostic::error("E0020", format!("unknown context path `{path}`"), span)
                .with_label("no such path");
            d = match closest(path, field_paths()) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!(
                    "`{root}.` paths are: {}",
                    field_paths()
                        .filter(|p| p.starts_with(root))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            if !ROOTS.contains(&root) {
                // Suggest within the root the writer most likely meant.
                let meant = ROOTS
                    .iter()
                    .min_by_key(|r| edit_distance(root, r))
                    .copied()
                    .unwrap_or("client");
                let rest = path.split_once('.').map_or("", |(_, rest)| rest);
                let fixed = format!("{meant}.{rest}");
                let suggestion = closest(&fixed, field_paths().filter(|p| p.starts_with(meant)))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{meant}.*"));
                d.help = Some(format!(
                    "did you mean `{suggestion}`? (to use an injected variable named like this, declare it: `input {path} : string`)"
                ));
            }
            self.error(d);
            return lit(Value::Bool(false), Type::Unknown, span);
        }
        let id = match self.input_ids.get(path) {
            Some(&id) => id,
            None => {
                let id = self.inputs.len() as u32;
                self.inputs.push(InputState {
                    path: path.to_string(),
                    ty: None,
                    fixed_at: None,
                    declared: false,
                    first_use: span,
                });
                self.input_ids.insert(path.to_string(), id);
                id
            }
        };
        let ty = self.inputs[id as usize].ty.clone().unwrap_or(Type::Unknown);
        Expr {
            kind: ExprKind::Input(id),
            ty,
            span,
        }
    }

    fn ident(&mut self, name: &'a str, span: Span) -> Expr {
        if let Some((slot, ty)) = self.lookup_local(name) {
            return Expr {
                kind: ExprKind::Local(slot),
                ty,
                span,
            };
        }
        if let Some(c) = self.consts.get_mut(name) {
            c.used = true;
            let decl: &'a ast::ConstDecl = c.decl;
            // The const's value, typed where it is used; the span points at the use.
            let t = self.expr_value(&decl.value);
            return Expr { span, ..t };
        }
        if let Some(f) = self.flex_set(name) {
            return self.flex_default(f, span);
        }
        if let Some(q) = qtype_from_str(name)
            .filter(|_| QTYPES.iter().any(|(m, _)| *m == name) || name.starts_with("TYPE"))
        {
            return lit(Value::Qtype(q), Type::Qtype, span);
        }
        let mut known: Vec<String> = self
            .scopes
            .iter()
            .flatten()
            .map(|l| l.name.clone())
            .collect();
        known.extend(self.consts.keys().map(|k| k.to_string()));
        known.extend(self.sets.keys().map(|k| k.to_string()));
        let mut d = Diagnostic::error("E0021", format!("unknown name `{name}`"), span)
            .with_label("not defined");
        if let Some(s) = closest(name, known.iter().map(String::as_str)) {
            d = d.with_help(format!("did you mean `{s}`?"));
        } else if Field::from_path(name).is_none() && name.contains('_')
            || name.chars().all(|c| c.is_ascii_lowercase())
        {
            d = d.with_help(format!("to read a variable, write `{{{name}}}`; to define a name, use `let`, `const` or `set`"));
        }
        self.error(d);
        lit(Value::Bool(false), Type::Unknown, span)
    }

    fn flex_set(&mut self, name: &str) -> Option<Flex<'a>> {
        let s = self.sets.get_mut(name)?;
        s.used = true;
        match &s.decl.value.kind {
            ast::ExprKind::List(items) => Some(Flex::List(items, items.as_ptr() as usize)),
            _ => None,
        }
    }

    /// A list in value position: elements must share one type; string
    /// literals follow the first typed element.
    fn list(&mut self, items: &'a [ast::Expr], span: Span) -> Expr {
        let mut typed: Vec<Option<Expr>> = Vec::with_capacity(items.len());
        let mut elem: Option<(Type, Span)> = None;
        for i in items {
            if self.flex(i).is_some() {
                typed.push(None);
                continue;
            }
            let t = self.expr(i);
            if elem.is_none() && t.ty != Type::Unknown {
                elem = Some((t.ty.clone(), i.span));
            }
            typed.push(Some(t));
        }
        let (ety, espan) = elem.unwrap_or((Type::String, span));
        let mut out = Vec::with_capacity(items.len());
        for (i, t) in items.iter().zip(typed) {
            let t = match t {
                Some(t) => {
                    if self.infer(&t, &ety) {
                        Expr {
                            ty: ety.clone(),
                            ..t
                        }
                    } else {
                        t
                    }
                }
                None => match self.flex(i) {
                    Some(Flex::Str(s, sp)) => match convert_str(s, &ety) {
                        Ok(v) => lit(v, ety.clone(), sp),
                        Err(ConvError::Mismatch) => lit(Value::Str(s.into()), Type::String, sp),
                        Err(_) => self.coerce(i, &ety, Some((espan, &ety))),
                    },
                    _ => self.expr_value(i),
                },
            };
            if t.ty != ety && t.ty != Type::Unknown {
                self.error(
                    Diagnostic::error("E0036", "list elements have different types", i.span)
                        .with_label(format!("this is {}", t.ty))
                        .with_secondary(espan, format!("this is {ety}, so every element must be")),
                );
            }
            out.push(t);
        }
        let ty = Type::List(Box::new(ety));
        if out.iter().all(|e| matches!(e.kind, ExprKind::Lit(_))) {
            let vals: Vec<Value> = out
                .into_iter()
                .filter_map(|e| match e.kind {
                    ExprKind::Lit(v) => Some(v),
                    _ => None,
                })
                .collect();
            return lit(Value::List(vals.into()), ty, span);
        }
        Expr {
            kind: ExprKind::List(out),
            ty,
            span,
        }
    }

    fn call(&mut self, f: &'a ast::Ident, args: &'a [ast::Expr], span: Span) -> Expr {
        let func = match f.name.as_str() {
            "hash" => Func::Hash,
            "lower" => Func::Lower,
            "len" => Func::Len,
            other => {
                let mut d =
                    Diagnostic::error("E0024", format!("unknown function `{other}`"), f.span)
                        .with_label("not a function");
                d = match closest(other, ["hash", "lower", "len"]) {
                    Some(s) => d.with_help(format!("did you mean `{s}`?")),
                    None => d.with_help("the functions are hash(x), lower(s) and len(x)"),
                };
                self.error(d);
                for a in args {
                    let _ = self.expr_value(a);
                }
                return lit(Value::Bool(false), Type::Unknown, span);
            }
        };
        if args.len() != 1 {
            self.error(
                Diagnostic::error(
                    "E0025",
                    format!("`{}` takes 1 argument, found {}", f.name, args.len()),
                    span,
                )
                .with_label("wrong number of arguments"),
            );
            return lit(Value::Bool(false), Type::Unknown, span);
        }
        let a = self.expr_value(&args[0]);
        let ty = match func {
            Func::Hash => Type::Int,
            Func::Len => {
                let inferred = self.infer(&a, &Type::String);
                if !inferred
                    && !matches!(
                        a.ty,
                        Type::String | Type::Name | Type::List(_) | Type::Unknown
                    )
                {
                    self.bad_operand("len", &a, "a string, name or list");
                }
                Type::Int
            }
            Func::Lower => {
                if self.infer(&a, &Type::String) {
                    Type::String
                } else if matches!(a.ty, Type::String | Type::Name | Type::Unknown) {
                    a.ty.clone()
                } else {
                    self.bad_operand("lower", &a, "a string or name");
                    Type::String
                }
            }
        };
        let a = Expr {
            ty: if matches!(a.kind, ExprKind::Input(_)) && a.ty == Type::Unknown {
                self.input_ty(&a)
            } else {
                a.ty.clone()
            },
            ..a
        };
        Expr {
            kind: ExprKind::Call(func, vec![a]),
            ty,
            span,
        }
    }

    fn input_ty(&self, e: &Expr) -> Type {
        match e.kind {
            ExprKind::Input(id) => self.inputs[id as usize].ty.clone().unwrap_or(Type::Unknown),
            _ => e.ty.clone(),
        }
    }

    fn bad_operand(&mut self, op: &str, e: &Expr, wanted: &str) {
        self.error(
            Diagnostic::error(
                "E0035",
                format!("`{op}` is not defined for {}", e.ty),
                e.span,
            )
            .with_label(format!("this is {}, `{op}` needs {wanted}", e.ty)),
        );
    }

    fn binary(&mut self, op: BinOp, a: &'a ast::Expr, b: &'a ast::Expr, span: Span) -> Expr {
        let mk = |kind, ty| Expr { kind, ty, span };
        match op {
            BinOp::Or | BinOp::And => {
                let (x, y) = (self.cond(a), self.cond(b));
                let k = if op == BinOp::Or {
                    ExprKind::Or(x.into(), y.into())
                } else {
                    ExprKind::And(x.into(), y.into())
                };
                mk(k, Type::Bool)
            }
            BinOp::Eq | BinOp::Ne => {
                let (x, y) = self.same_type(a, b);
                let cop = if op == BinOp::Eq {
                    CmpOp::Eq
                } else {
                    CmpOp::Ne
                };
                mk(ExprKind::Cmp(cop, x.into(), y.into()), Type::Bool)
            }
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let x = self.int_operand(a, op, b.span);
                let y = self.int_operand(b, op, a.span);
                let cop = match op {
                    BinOp::Lt => CmpOp::Lt,
                    BinOp::Le => CmpOp::Le,
                    BinOp::Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                mk(ExprKind::Cmp(cop, x.into(), y.into()), Type::Bool)
            }
            BinOp::In | BinOp::NotIn => self.membership(a, b, op == BinOp::NotIn, span),
            BinOp::Matches => {
                let x = self.text_operand(a, "matches");
                let re = match self.flex(b) {
                    Some(Flex::Str(pat, pspan)) => self.regex(pat, pspan),
                    _ => {
                        self.error(
                            Diagnostic::error(
                                "E0037",
                                "the pattern of `matches` must be a string literal",
                                b.span,
                            )
                            .with_label("not a string literal")
                            .with_help("patterns are compiled once, when the policy is checked"),
                        );
                        0
                    }
                };
                mk(ExprKind::Matches(x.into(), re), Type::Bool)
            }
            BinOp::StartsWith | BinOp::EndsWith => {
                let x = self.text_operand(a, op.as_str());
                let want = if x.ty == Type::Name {
                    Type::Name
                } else {
                    Type::String
                };
                let y = self.coerce(b, &want, Some((a.span, &want)));
                let k = if op == BinOp::StartsWith {
                    ExprKind::StartsWith(x.into(), y.into())
                } else {
                    ExprKind::EndsWith(x.into(), y.into())
                };
                mk(k, Type::Bool)
            }
            BinOp::Add if self.is_stringish(a) || self.is_stringish(b) => {
                let x = self.coerce(a, &Type::String, Some((b.span, &Type::String)));
                let y = self.coerce(b, &Type::String, Some((a.span, &Type::String)));
                mk(ExprKind::Concat(x.into(), y.into()), Type::String)
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                let x = self.int_operand(a, op, b.span);
                let y = self.int_operand(b, op, a.span);
                if matches!(op, BinOp::Div | BinOp::Rem)
                    && matches!(y.kind, ExprKind::Lit(Value::Int(0)))
                {
                    self.diags.push(
                        Diagnostic::warning(
                            "W0001",
                            format!("`{}` by zero is always 0", op.as_str()),
                            b.span,
                        )
                        .with_label("this is zero")
                        .with_help("policies never trap: division and remainder by zero give 0"),
                    );
                }
                let aop = match op {
                    BinOp::Add => ArithOp::Add,
                    BinOp::Sub => ArithOp::Sub,
                    BinOp::Mul => ArithOp::Mul,
                    BinOp::Div => ArithOp::Div,
                    _ => ArithOp::Rem,
                };
                mk(ExprKind::Arith(aop, x.into(), y.into()), Type::Int)
            }
        }
    }

    /// Whether an operand of `+` makes it string concatenation.
    fn is_stringish(&mut self, e: &'a ast::Expr) -> bool {
        match &e.kind {
            ast::ExprKind::Str(_) => true,
            ast::ExprKind::Var(p) => {
                Field::from_path(p).is_some_and(|f| f.info().ty == Type::String)
                    || self
                        .input_ids
                        .get(p.as_ref())
                        .and_then(|&i| self.inputs[i as usize].ty.clone())
                        == Some(Type::String)
            }
            ast::ExprKind::Ident(n) => {
                matches!(self.lookup_local(n), Some((_, Type::String)))
                    || self
                        .consts
                        .get(n.as_ref())
                        .is_some_and(|c| matches!(c.decl.value.kind, ast::ExprKind::Str(_)))
            }
            ast::ExprKind::Call(call) => call.func.name == "lower",
            ast::ExprKind::Binary(BinOp::Add, a, b) => self.is_stringish(a) || self.is_stringish(b),
            _ => false,
        }
    }

    fn int_operand(&mut self, e: &'a ast::Expr, op: BinOp, other: Span) -> Expr {
        let t = match self.flex(e) {
            Some(f) => self.flex_default(f, e.span),
            None => self.expr(e),
        };
        if t.ty == Type::Int || t.ty == Type::Unknown && !matches!(t.kind, ExprKind::Input(_)) {
            return t;
        }
        if self.infer(&t, &Type::Int) {
            return Expr { ty: Type::Int, ..t };
        }
        if t.ty == Type::Unknown {
            return t;
        }
        if let ExprKind::Input(_) = t.kind {
            self.mismatch(
                t.span,
                &t.ty.clone(),
                Some((other, &Type::Int)),
                &Type::Int,
                Some(&t),
            );
        } else {
            self.error(
                Diagnostic::error(
                    "E0035",
                    format!("`{}` is not defined for {}", op.as_str(), t.ty),
                    t.span,
                )
                .with_label(format!("this is {}", t.ty))
                .with_secondary(other, "the other operand")
                .with_help(if t.ty == Type::String && matches!(op, BinOp::Add) {
                    "`+` adds ints or joins strings, not both".to_string()
                } else {
                    format!("`{}` works on ints", op.as_str())
                }),
            );
        }
        Expr { ty: Type::Int, ..t }
    }

    /// Left side of matches / starts_with / ends_with: a string or name.
    fn text_operand(&mut self, e: &'a ast::Expr, op: &str) -> Expr {
        let t = self.expr_value(e);
        if matches!(t.ty, Type::String | Type::Name) || self.infer(&t, &Type::String) {
            let ty = if t.ty == Type::Unknown {
                Type::String
            } else {
                t.ty.clone()
            };
            return Expr { ty, ..t };
        }
        if t.ty != Type::Unknown {
            self.bad_operand(op, &t, "a string or name");
        }
        t
    }

    fn regex(&mut self, pat: &str, span: Span) -> u32 {
        if let Some(&id) = self.regex_cache.get(pat) {
            return id;
        }
        match regex::RegexBuilder::new(pat).size_limit(1 << 20).build() {
            Ok(re) => {
                let id = self.regexes.len() as u32;
                self.regexes.push(re);
                self.regex_cache.insert(pat.to_string(), id);
                id
            }
            Err(e) => {
                let msg = e.to_string();
                let last = msg
                    .lines()
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or("invalid")
                    .trim()
                    .to_string();
                self.error(
                    Diagnostic::error("E0037", "invalid regular expression", span)
                        .with_label(last.trim_start_matches("error: ").to_string())
                        .with_help("the syntax is that of Rust's `regex` crate"),
                );
                0
            }
        }
    }

    /// `a == b` / `a != b`: both sides one type; a literal follows the other side.
    fn same_type(&mut self, a: &'a ast::Expr, b: &'a ast::Expr) -> (Expr, Expr) {
        let (fa, fb) = (self.flex(a), self.flex(b));
        match (fa, fb) {
            (Some(_), None) => {
                let y = self.expr(b);
                if y.ty == Type::Unknown && matches!(y.kind, ExprKind::Input(_)) {
                    let x = self.expr_value(a);
                    let y =
                        self.expect(y, &x.ty.clone(), Some((a.span, &x.ty.clone())), "E0030", "");
                    return (x, y);
                }
                if let ExprKind::Input(id) = y.kind {
                    self.other_input = Some(id);
                }
                let x = self.coerce(a, &y.ty.clone(), Some((b.span, &y.ty.clone())));
                self.other_input = None;
                (x, y)
            }
            (None, Some(_)) => {
                let (y, x) = self.same_type(b, a);
                (x, y)
            }
            _ => {
                let x = self.expr_value(a);
                let y = self.expr_value(b);
                match (&x.kind, &x.ty, &y.kind, &y.ty) {
                    (ExprKind::Input(i), Type::Unknown, ExprKind::Input(j), Type::Unknown) => {
                        self.pending_eq.push((*i, *j, x.span.to(y.span)));
                        (x, y)
                    }
                    (_, Type::Unknown, _, _) => {
                        let want = y.ty.clone();
                        let x = self.expect(x, &want, Some((y.span, &want)), "E0030", "");
                        (x, y)
                    }
                    _ => {
                        let want = x.ty.clone();
                        let y = self.expect(y, &want, Some((x.span, &want)), "E0030", "");
                        (x, y)
                    }
                }
            }
        }
    }

    /// `needle in haystack` / `not in`.
    fn membership(&mut self, a: &'a ast::Expr, b: &'a ast::Expr, negate: bool, span: Span) -> Expr {
        let mk = |kind| Expr {
            kind,
            ty: Type::Bool,
            span,
        };
        match self.flex(b) {
            Some(Flex::List(items, key)) => {
                let mut needle = self.expr_value(a);
                if needle.ty == Type::Unknown && matches!(needle.kind, ExprKind::Input(_)) {
                    // A wildcard member says "names"; otherwise the first literal decides.
                    let wildcard = items.iter().any(|i| {
                        matches!(&i.kind, ast::ExprKind::Str(s) if &**s == "*" || s.starts_with("*."))
                    });
                    let guess = if wildcard {
                        Some(Type::Name)
                    } else {
                        items.iter().find_map(|i| match &i.kind {
                            ast::ExprKind::Int(_) => Some(Type::Int),
                            ast::ExprKind::Ip(_) | ast::ExprKind::Cidr(_) => Some(Type::Ip),
                            ast::ExprKind::Bool(_) => Some(Type::Bool),
                            ast::ExprKind::Str(_) => Some(Type::String),
                            ast::ExprKind::Ident(n) if qtype_from_str(n).is_some() => {
                                Some(Type::Qtype)
                            }
                            _ => None,
                        })
                    };
                    if let Some(g) = guess {
                        self.infer(&needle, &g);
                        needle.ty = g;
                    }
                }
                if matches!(needle.ty, Type::List(_)) {
                    self.bad_operand("in", &needle, "a single value on its left");
                }
                if needle.ty == Type::Unknown {
                    // Already reported (or to be reported as E0034): no
                    // cascade, but the list's own errors still count.
                    for i in items.iter().filter(|i| !is_literal(i)) {
                        let _ = self.expr_value(i);
                    }
                    return mk(ExprKind::Lit(Value::Bool(false)));
                }
                if items.iter().all(is_literal) {
                    let set = self.const_set(items, key, &needle.ty, a.span);
                    return mk(ExprKind::InSet {
                        needle: needle.into(),
                        set,
                        negate,
                    });
                }
                let elem = needle.ty.clone();
                let hay: Vec<Expr> = items
                    .iter()
                    .map(|i| self.coerce(i, &elem, Some((a.span, &elem))))
                    .collect();
                let hay = Expr {
                    kind: ExprKind::List(hay),
                    ty: Type::List(Box::new(elem)),
                    span: b.span,
                };
                mk(ExprKind::InExpr {
                    needle: needle.into(),
                    haystack: hay.into(),
                    negate,
                })
            }
            Some(Flex::Str(..)) => {
                let _ = self.expr_value(a);
                self.error(
                    Diagnostic::error("E0038", "the right side of `in` is a string", b.span)
                        .with_label("not a list, set or prefix")
                        .with_help("to compare with one value use `==`; to test several, use a list: `in [\"a\", \"b\"]`"),
                );
                mk(ExprKind::Lit(Value::Bool(false)))
            }
            None => {
                let hay = self.expr(b);
                match &hay.ty {
                    Type::Cidr => {
                        let mut needle = self.expr_value(a);
                        if self.infer(&needle, &Type::Ip) {
                            needle.ty = Type::Ip;
                        }
                        if !matches!(needle.ty, Type::Ip | Type::Cidr | Type::Unknown) {
                            self.mismatch(
                                needle.span,
                                &needle.ty.clone(),
                                Some((b.span, &Type::Cidr)),
                                &Type::Ip,
                                Some(&needle),
                            );
                        }
                        if let ExprKind::Lit(Value::Cidr(c)) = hay.kind {
                            let id = self.const_sets.len() as u32;
                            self.const_sets.push(ConstSet::Cidrs(vec![c]));
                            return mk(ExprKind::InSet {
                                needle: needle.into(),
                                set: id,
                                negate,
                            });
                        }
                        mk(ExprKind::InExpr {
                            needle: needle.into(),
                            haystack: hay.into(),
                            negate,
                        })
                    }
                    Type::List(elem) => {
                        let elem = (**elem).clone();
                        let needle = self.coerce(a, &elem, Some((b.span, &elem)));
                        mk(ExprKind::InExpr {
                            needle: needle.into(),
                            haystack: hay.into(),
                            negate,
                        })
                    }
                    Type::Unknown => {
                        let _ = self.expr_value(a);
                        mk(ExprKind::InExpr {
                            needle: Box::new(lit(Value::Bool(false), Type::Unknown, a.span)),
                            haystack: hay.into(),
                            negate,
                        })
                    }
                    other => {
                        let other = other.clone();
                        let _ = self.expr_value(a);
                        self.error(
                            Diagnostic::error(
                                "E0038",
                                format!("the right side of `in` is {other}"),
                                b.span,
                            )
                            .with_label("not a list, set or prefix")
                            .with_help("`in` tests membership in a list, a set, or a CIDR prefix"),
                        );
                        mk(ExprKind::Lit(Value::Bool(false)))
                    }
                }
            }
        }
    }

    /// Builds (or reuses) the constant set for `items` looked up by values of type `t`.
    fn const_set(
        &mut self,
        items: &'a [ast::Expr],
        key: usize,
        t: &Type,
        needle_span: Span,
    ) -> u32 {
        let cache_key = (key, t.to_string());
        if let Some(&id) = self.set_cache.get(&cache_key) {
            return id;
        }
        let mut names = NameSet::default();
        let mut cidrs = Vec::new();
        let mut values = HashSet::new();
        for i in items {
            let Some(elem) = self.const_elem(i, t, needle_span) else {
                continue;
            };
            match (t, elem) {
                (Type::Name, Elem::Value(Value::Name(n))) => {
                    names.exact.insert(n);
                }
                (Type::Name, Elem::Wildcard(s)) => {
                    names.wildcards.insert(s.into());
                }
                (Type::Ip | Type::Cidr, Elem::Value(Value::Cidr(c))) => cidrs.push(c),
                (_, Elem::Value(v)) => {
                    values.insert(v);
                }
                (_, Elem::Wildcard(_)) => {}
            }
        }
        if *t == Type::String {
            let wild = items
                .iter()
                .find(|i| matches!(&i.kind, ast::ExprKind::Str(s) if s.starts_with("*.")));
            if let Some(w) = wild {
                self.diags.push(
                    Diagnostic::warning("W0003", "wildcard in a set looked up by strings", w.span)
                        .with_label("this matches only the literal text `*.`...")
                        .with_secondary(needle_span, "this is a string, not a name")
                        .with_help("a wildcard means \"any subdomain\" only where names are looked up (`{query.name}`, or a variable declared `: name`)"),
                );
            }
        }
        let set = match t {
            Type::Name => ConstSet::Names(names),
            Type::Ip | Type::Cidr => ConstSet::Cidrs(cidrs),
            _ => ConstSet::Values(values),
        };
        let id = self.const_sets.len() as u32;
        self.const_sets.push(set);
        self.set_cache.insert(cache_key, id);
        id
    }

    /// One literal set member, converted for lookups by values of type `t`
    /// (addresses become host prefixes in prefix sets).
    fn const_elem(&mut self, e: &'a ast::Expr, t: &Type, needle_span: Span) -> Option<Elem> {
        let want = if *t == Type::Ip {
            Type::Cidr
        } else {
            t.clone()
        };
        let bad = |ck: &mut Self, found: &str| {
            ck.error(
                Diagnostic::error(
                    "E0030",
                    format!("mismatched types: this set is looked up by {t} values, found {found}"),
                    e.span,
                )
                .with_label(format!("this is {found}"))
                .with_secondary(needle_span, format!("this is {t}")),
            );
            None
        };
        match &e.kind {
            ast::ExprKind::Str(s) => {
                if *t == Type::Name && (&**s == "*" || s.starts_with("*.")) {
                    let rest = s.strip_prefix("*.").unwrap_or("");
                    return match canonical_name(rest) {
                        Ok(n) => Some(Elem::Wildcard(n)),
                        Err(msg) => {
                            self.error(
                                Diagnostic::error(
                                    "E0033",
                                    format!("`{s}` is not a valid name pattern"),
                                    e.span,
                                )
                                .with_label(msg),
                            );
                            None
                        }
                    };
                }
                match convert_str(s, &want) {
                    Ok(v) => Some(Elem::Value(v)),
                    Err(ConvError::Mismatch) => bad(self, "string"),
                    Err(ConvError::Wildcard) => None,
                    Err(ConvError::Invalid(msg)) => {
                        self.error(
                            Diagnostic::error(
                                "E0033",
                                format!("`{s}` is not a valid {want}"),
                                e.span,
                            )
                            .with_label(msg)
                            .with_secondary(
                                needle_span,
                                format!("this is {t}, so the set holds {want} values"),
                            ),
                        );
                        None
                    }
                }
            }
            ast::ExprKind::Int(v) if *t == Type::Int => Some(Elem::Value(Value::Int(*v))),
            ast::ExprKind::Bool(v) if *t == Type::Bool => Some(Elem::Value(Value::Bool(*v))),
            ast::ExprKind::Cidr(c) if want == Type::Cidr => Some(Elem::Value(Value::Cidr(*c))),
            ast::ExprKind::Ip(ip) if want == Type::Cidr => Some(Elem::Value(Value::Cidr(
                Cidr::containing(*ip, crate::types::max_len(ip)),
            ))),
            ast::ExprKind::Ident(n) if *t == Type::Qtype => {
                qtype_from_str(n).map(|q| Elem::Value(Value::Qtype(q)))
            }
            ast::ExprKind::Error => None,
            ast::ExprKind::Int(_) => bad(self, "int"),
            ast::ExprKind::Bool(_) => bad(self, "bool"),
            ast::ExprKind::Cidr(_) => bad(self, "cidr"),
            ast::ExprKind::Ip(_) => bad(self, "ip"),
            ast::ExprKind::Ident(_) => bad(self, "qtype"),
            ast::ExprKind::List(_) => bad(self, "a list"),
            _ => None,
        }
    }
}
