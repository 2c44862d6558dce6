//! Literals whose type comes from where they are used: a string literal
//! becomes a name, address, prefix or record type when the other side
//! demands it ("literals follow the other side").

use super::*;

/// A literal whose type is decided by where it is used.
#[derive(Clone, Copy)]
pub(super) enum Flex<'a> {
    Str(&'a str, Span),
    /// List items; the key identifies the list for set caching.
    List(&'a [ast::Expr], usize),
    /// A file-backed set: its name and path.
    Live(&'a str, &'a str),
}

/// What identifies a list for set caching: where it starts in the source.
/// Not its address: serving frees each rule's syntax once it is checked,
/// and a later rule's list could be allocated where an earlier one was.
pub(super) fn list_key(list: &ast::Expr) -> usize {
    list.span.start as usize
}

/// The path of `file("PATH")`, the value of a file-backed set.
pub(super) fn file_path(e: &ast::Expr) -> Option<&str> {
    match &e.kind {
        ast::ExprKind::Call(c) if c.func.name.as_str() == "file" => match c.args.as_slice() {
            [ast::Expr {
                kind: ast::ExprKind::Str(p),
                ..
            }] => Some(p),
            _ => None,
        },
        _ => None,
    }
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

pub(super) enum ConvError {
    Mismatch,
    Wildcard,
    Invalid(String),
}

/// Converts a string literal to `t`.
pub(super) fn convert_str(s: &str, t: &Type) -> Result<Value, ConvError> {
    match t {
        Type::String => Ok(Value::Str(s.into())),
        Type::Name => {
            if s == "*" || s.starts_with("*.") {
                return Err(ConvError::Wildcard);
            }
            canonical_name(s)
                .map(|n| Value::Name(n.into()))
                .map_err(|e| ConvError::Invalid(e.to_string()))
        }
        Type::Ip => s
            .parse::<IpAddr>()
            .map(Value::Ip)
            .map_err(|_| ConvError::Invalid(format!("`{s}` is not an IP address"))),
        Type::Cidr => parse_cidr_or_host(s)
            .map(Value::Cidr)
            .map_err(|e| ConvError::Invalid(e.to_string())),
        Type::Qtype => qtype_from_str(s)
            .map(Value::Qtype)
            .ok_or_else(|| ConvError::Invalid(format!("`{s}` is not a record type"))),
        _ => Err(ConvError::Mismatch),
    }
}

/// A prefix, or an address as its host prefix (`/32`, `/128`).
pub(super) fn parse_cidr_or_host(s: &str) -> Result<Cidr, CidrError> {
    if s.contains('/') {
        s.parse()
    } else {
        let ip: IpAddr = s
            .parse()
            .map_err(|_| CidrError::NotAnAddress(s.to_string()))?;
        Ok(Cidr::containing(ip, crate::ir::types::max_len(&ip)))
    }
}

impl<'a> Checker<'a> {
    pub(super) fn flex<'e>(&mut self, e: &'e ast::Expr) -> Option<Flex<'e>>
    where
        'a: 'e,
    {
        match &e.kind {
            ast::ExprKind::Str(s) => Some(Flex::Str(s, e.span)),
            ast::ExprKind::List(items) => Some(Flex::List(items, list_key(e))),
            ast::ExprKind::Ident(n) if self.lookup_local(n).is_none() => {
                if let Some(c) = self.consts.get_mut(n.as_ref()) {
                    c.used = true;
                    let v = &c.decl.value;
                    return match &v.kind {
                        ast::ExprKind::Str(s) => Some(Flex::Str(s, e.span)),
                        ast::ExprKind::List(items) => Some(Flex::List(items, list_key(v))),
                        _ => None,
                    };
                }
                if let Some(s) = self.sets.get_mut(n.as_ref()) {
                    s.used = true;
                    if let ast::ExprKind::List(items) = &s.decl.value.kind {
                        return Some(Flex::List(items, list_key(&s.decl.value)));
                    }
                    if let Some(p) = file_path(&s.decl.value) {
                        return Some(Flex::Live(&s.decl.name.name, p));
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// The natural type of a flexible literal with no other side to follow.
    pub(super) fn flex_default(&mut self, f: Flex<'_>, span: Span) -> Expr {
        match f {
            Flex::Str(s, sp) => lit(Value::Str(s.into()), Type::String, sp),
            Flex::List(items, _) => self.list(items, span),
            Flex::Live(name, _) => {
                self.error(
                    Diagnostic::error(
                        "E0038",
                        format!("the file-backed set `{name}` is only a place to look things up"),
                        span,
                    )
                    .with_label("used as a value")
                    .with_help(format!("test membership: `{{query.name}} in {name}`")),
                );
                lit(Value::Bool(false), Type::Unknown, span)
            }
        }
    }
}
