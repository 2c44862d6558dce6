//! Operators: arithmetic, comparison, logic, string and name tests
//! (`starts_with`, `ends_with`, `matches`), each with its operand rules.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn input_ty(&self, e: &Expr) -> Type {
        match e.kind {
            ExprKind::Input(id) => self.inputs[id as usize].ty.clone().unwrap_or(Type::Unknown),
            _ => e.ty.clone(),
        }
    }

    pub(super) fn bad_operand(&mut self, op: &str, e: &Expr, wanted: &str) {
        self.error(
            Diagnostic::error(
                "E0035",
                format!("`{op}` is not defined for {}", e.ty),
                e.span,
            )
            .with_label(format!("this is {}, `{op}` needs {wanted}", e.ty)),
        );
    }

    pub(super) fn binary(&mut self, op: BinOp, a: &ast::Expr, b: &ast::Expr, span: Span) -> Expr {
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
    pub(super) fn is_stringish(&mut self, e: &ast::Expr) -> bool {
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

    pub(super) fn int_operand(&mut self, e: &ast::Expr, op: BinOp, other: Span) -> Expr {
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
    pub(super) fn text_operand(&mut self, e: &ast::Expr, op: &str) -> Expr {
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

    pub(super) fn regex(&mut self, pat: &str, span: Span) -> u32 {
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
    pub(super) fn same_type(&mut self, a: &ast::Expr, b: &ast::Expr) -> (Expr, Expr) {
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
}
