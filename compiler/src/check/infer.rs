//! Inference and coercion: injected variables take their type from their
//! first typed use; a value is checked (or converted) against the type its
//! place demands, and a mismatch is explained.

use super::*;

impl<'a> Checker<'a> {
    /// If `e` is an injected variable whose type is not yet known, fixes it
    /// to `t` and returns true.
    pub(super) fn infer(&mut self, e: &Expr, t: &Type) -> bool {
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
        e: &ast::Expr,
        want: &Type,
        other: Option<(Span, &Type)>,
    ) -> Expr {
        self.coerce_with(e, want, other, "E0033", "")
    }

    /// Like [`Checker::coerce`], with the code and message used when a
    /// literal does not convert.
    pub(super) fn coerce_with(
        &mut self,
        e: &ast::Expr,
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
    pub(super) fn expect(
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
            let c = Cidr::containing(*ip, crate::ir::types::max_len(ip));
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
    pub(super) fn mismatch_with(
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
    pub(super) fn mismatch(
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
}
