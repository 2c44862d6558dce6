//! Membership: `in` / `not in` over lists, declared sets and prefixes, and
//! the constant sets built for them at compile time.

use super::*;

/// A set element: a value, or a `*.suffix` wildcard for name sets.
pub(super) enum Elem {
    Value(Value),
    Wildcard(String),
}

impl<'a> Checker<'a> {
    /// A list in value position: elements must share one type; string
    /// literals follow the first typed element.
    pub(super) fn list(&mut self, items: &[ast::Expr], span: Span) -> Expr {
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

    /// `needle in haystack` / `not in`.
    pub(super) fn membership(
        &mut self,
        a: &ast::Expr,
        b: &ast::Expr,
        negate: bool,
        span: Span,
    ) -> Expr {
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
            Some(Flex::Live(name, path)) => {
                // A string literal on the left is a name, as in a name set.
                let mut needle = match self.flex(a) {
                    Some(Flex::Str(_, _)) => self.coerce(a, &Type::Name, None),
                    _ => self.expr_value(a),
                };
                if needle.ty == Type::Unknown && matches!(needle.kind, ExprKind::Input(_)) {
                    self.infer(&needle, &Type::Name);
                    needle.ty = Type::Name;
                }
                match needle.ty {
                    Type::Name | Type::Ip | Type::Cidr => {}
                    Type::Unknown => return mk(ExprKind::Lit(Value::Bool(false))),
                    ref other => {
                        let other = other.clone();
                        self.error(
                            Diagnostic::error(
                                "E0038",
                                format!("the file-backed set `{name}` holds names and prefixes, not {other}"),
                                a.span,
                            )
                            .with_label(format!("this is {other}"))
                            .with_help("look up a name (`{query.name}`, or a variable declared `: name`), an address or a prefix"),
                        );
                        return mk(ExprKind::Lit(Value::Bool(false)));
                    }
                }
                let set = self.live_slot(name, path);
                mk(ExprKind::InSet {
                    needle: needle.into(),
                    set,
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

    /// The slot of a file-backed set, made on its first use: one shared
    /// set for every lookup, whatever the needle's type.
    fn live_slot(&mut self, name: &str, path: &str) -> u32 {
        if let Some(&id) = self.live_slots.get(name) {
            return id;
        }
        let l = std::sync::Arc::new(crate::ir::live::LiveSet::new(name, path));
        let id = self.const_sets.len() as u32;
        self.const_sets.push(ConstSet::Live(l.clone()));
        self.live_sets.push(l);
        self.live_slots.insert(name.to_string(), id);
        id
    }

    /// Builds (or reuses) the constant set for `items` looked up by values of type `t`.
    pub(super) fn const_set(
        &mut self,
        items: &[ast::Expr],
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
        let mut values = std::collections::HashSet::new();
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
    pub(super) fn const_elem(
        &mut self,
        e: &ast::Expr,
        t: &Type,
        needle_span: Span,
    ) -> Option<Elem> {
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
                                .with_label(msg.to_string()),
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
                Cidr::containing(*ip, crate::ir::types::max_len(ip)),
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
