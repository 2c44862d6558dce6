//! Expression typing: the entry points the statement checker calls, and
//! the dispatch over expression kinds to the modules that type each.

use super::*;

impl<'a> Checker<'a> {
    /// Types a value position (`let`, `then VALUE`): literals keep their natural type.
    pub(super) fn expr_value(&mut self, e: &ast::Expr) -> Expr {
        match self.flex(e) {
            Some(f) => self.flex_default(f, e.span),
            None => self.expr(e),
        }
    }

    /// Types `e` as a condition.
    pub(super) fn cond(&mut self, e: &ast::Expr) -> Expr {
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

    /// Types an operand that must be a DNS name (rewrite targets, CNAME data).
    pub(super) fn name_operand(&mut self, e: &ast::Expr, what: &str) -> Expr {
        self.coerce_with(
            e,
            &Type::Name,
            None,
            "E0041",
            &format!("{what} must be a DNS name"),
        )
    }

    /// Types an expression with no expectation.
    pub(super) fn expr(&mut self, e: &ast::Expr) -> Expr {
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
}
