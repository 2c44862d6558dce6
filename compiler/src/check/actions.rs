//! Actions: what a `then` does. Record data against its type, TTLs,
//! rewrite targets, forward pools and answer pools.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn action(&mut self, a: &ast::Action) -> Action {
        let door = match &a.kind {
            ActionKind::Value(_) | ActionKind::Pass => None,
            ActionKind::Route { .. } | ActionKind::Respond { .. } | ActionKind::Redirect { .. } => {
                Some(ir::Front::Http)
            }
            _ => Some(ir::Front::Dns),
        };
        if let Some(door) = door {
            let word = crate::syntax::format::action_word(&a.kind);
            self.front_use(door, a.span, &format!("`then {word}`"));
        }
        match &a.kind {
            ActionKind::Value(e) => Action::Value(self.expr_value(e)),
            ActionKind::Answer { rtype, data, ttl } => {
                let code = match qtype_from_str(&rtype.name) {
                    Some(c) => c,
                    None => {
                        let mut d = Diagnostic::error(
                            "E0042",
                            format!("unknown record type `{}`", rtype.name),
                            rtype.span,
                        )
                        .with_label("not a record type");
                        if let Some(s) =
                            closest(&rtype.name.to_ascii_uppercase(), QTYPES.iter().map(|q| q.0))
                        {
                            d = d.with_help(format!("did you mean `{s}`?"));
                        }
                        self.error(d);
                        0
                    }
                };
                let data = data
                    .iter()
                    .map(|d| self.record_data(code, &rtype.name, d))
                    .collect();
                Action::Answer {
                    rtype: code,
                    data,
                    ttl: self.ttl(ttl.as_ref()),
                }
            }
            ActionKind::Rewrite { target, ttl } => {
                let target = self.name_operand(target, "a rewrite target");
                Action::Rewrite {
                    target,
                    ttl: self.ttl(ttl.as_ref()),
                }
            }
            ActionKind::Forward(pool) => {
                // A bare word that names nothing is the pool's name: `forward backup`.
                if let ast::ExprKind::Ident(n) = &pool.kind {
                    if !self.is_bound(n) {
                        return Action::Forward(lit(
                            Value::Str(n.as_ref().into()),
                            Type::String,
                            pool.span,
                        ));
                    }
                }
                Action::Forward(self.coerce(pool, &Type::String, None))
            }
            ActionKind::Pool {
                name,
                pick,
                key,
                count,
                ttl,
            } => self.pool_action(
                name,
                pick.as_ref(),
                key.as_deref(),
                count.as_deref(),
                ttl.as_deref(),
            ),
            ActionKind::Nxdomain => Action::Nxdomain,
            ActionKind::Nodata => Action::Nodata,
            ActionKind::Refuse => Action::Refuse,
            ActionKind::Servfail => Action::Servfail,
            ActionKind::Drop => Action::Drop,
            ActionKind::Truncate => Action::Truncate,
            ActionKind::Pass => Action::Pass,
            ActionKind::Route { pool, edits } => self.route_action(pool, edits),
            ActionKind::Respond { status, body } => {
                let status = self.http_status(
                    status,
                    200..=599,
                    "`respond` takes a status from 200 to 599",
                );
                let body = match body {
                    Some(b) => self.http_text(b, "a body").unwrap_or_default(),
                    None => String::new(),
                };
                Action::Respond {
                    status,
                    body: body.into(),
                }
            }
            ActionKind::Redirect { status, url } => {
                let status = self.http_status(status, 301..=308, "");
                let location = self.http_text(url, "a URL").unwrap_or_default();
                if location.is_empty() || location.chars().any(|c| c.is_control() || c == ' ') {
                    self.error(
                        Diagnostic::error("E0048", "invalid redirect URL", url.span)
                            .with_label("a URL or path, without spaces or control characters"),
                    );
                }
                Action::Redirect {
                    status,
                    location: location.into(),
                }
            }
        }
    }

    /// `then route POOL [set_header NAME VALUE | remove_header NAME]...`:
    /// all constants, so the verdict is static data in every backend.
    fn route_action(&mut self, pool: &ast::Expr, edits: &[ast::HeaderEdit]) -> Action {
        // A bare word that names nothing is the pool's name: `route api`.
        let pool_name = match &pool.kind {
            ast::ExprKind::Ident(n) if !self.is_bound(n) => Some(n.to_string()),
            _ => self.http_text(pool, "a pool name"),
        };
        if pool_name.as_deref() == Some("") {
            self.error(
                Diagnostic::error("E0048", "empty pool name", pool.span)
                    .with_label("the name of an HTTP pool (`[http.pools.NAME]`)"),
            );
        }
        let mut headers = Vec::new();
        for e in edits {
            let (name, value) = match e {
                ast::HeaderEdit::Set { name, value } => {
                    let v = self.http_text(value, "a header value").unwrap_or_default();
                    if v.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                        self.error(
                            Diagnostic::error("E0048", "invalid header value", value.span)
                                .with_label(
                                    "no control characters (CR, LF, NUL, ...) in a header value",
                                ),
                        );
                    }
                    (name, Some(v.into()))
                }
                ast::HeaderEdit::Remove(name) => (name, None),
            };
            let n = self.http_text(name, "a header name").unwrap_or_default();
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if n.is_empty() || !n.bytes().all(token) {
                self.error(
                    Diagnostic::error("E0048", format!("invalid header name `{n}`"), name.span)
                        .with_label("letters, digits and !#$%&'*+-.^_`|~ (RFC 9110 token)"),
                );
            } else if ["content-length", "host"]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&n))
            {
                self.error(
                    Diagnostic::error("E0048", format!("`{n}` cannot be edited"), name.span)
                        .with_label("the proxy frames the body and keeps the host the policy saw"),
                );
            } else if is_hop_by_hop(&n) {
                self.error(
                    Diagnostic::error("E0048", format!("`{n}` is a hop-by-hop header"), name.span)
                        .with_label("the proxy sets it per connection")
                        .with_help("hop-by-hop headers (Connection, Keep-Alive, TE, Transfer-Encoding, Upgrade, ...) are not forwarded"),
                );
            }
            headers.push(crate::ir::value::HeaderOp {
                name: n.into(),
                value,
            });
        }
        Action::Route {
            pool: pool_name.unwrap_or_default().into(),
            headers: headers.into(),
        }
    }

    /// A constant string operand of an HTTP verdict (E0048 otherwise).
    fn http_text(&mut self, e: &ast::Expr, what: &str) -> Option<String> {
        match self.coerce(e, &Type::String, None).kind {
            ExprKind::Lit(Value::Str(s)) => Some(s.to_string()),
            _ => {
                self.error(
                    Diagnostic::error("E0048", format!("{what} must be a constant"), e.span)
                        .with_label("a string literal or a const")
                        .with_help("HTTP verdicts are static data, like `then pool`"),
                );
                None
            }
        }
    }

    /// A constant status code in `range` (E0048 otherwise).
    fn http_status(
        &mut self,
        e: &ast::Expr,
        range: std::ops::RangeInclusive<i64>,
        label: &str,
    ) -> u16 {
        let redirect = *range.start() == 301;
        match self.coerce(e, &Type::Int, None).kind {
            ExprKind::Lit(Value::Int(n))
                if range.contains(&n)
                    && (!redirect || matches!(n, 301 | 302 | 303 | 307 | 308)) =>
            {
                n as u16
            }
            ExprKind::Lit(Value::Int(n)) => {
                let label = if redirect {
                    "a redirect is 301, 302, 303, 307 or 308"
                } else {
                    label
                };
                self.error(
                    Diagnostic::error("E0048", format!("status {n} is out of range"), e.span)
                        .with_label(label),
                );
                if redirect {
                    302
                } else {
                    500
                }
            }
            _ => {
                self.error(
                    Diagnostic::error("E0048", "a status must be a constant", e.span)
                        .with_label("an integer literal or a const"),
                );
                if redirect {
                    302
                } else {
                    500
                }
            }
        }
    }

    /// `then pool NAME [PICK [KEY]] [count N] [ttl N]`: the pick word is
    /// known, a key goes with `sticky` only (and `sticky` needs one), count
    /// and TTL are constants (the verdict stays static for the backends).
    fn pool_action(
        &mut self,
        name: &ast::Ident,
        pick: Option<&ast::Ident>,
        key: Option<&ast::Expr>,
        count: Option<&ast::Expr>,
        ttl: Option<&ast::Expr>,
    ) -> Action {
        let words = || Pick::ALL.iter().map(|p| p.as_str());
        let chosen = match pick {
            None => Pick::All,
            Some(p) => match Pick::from_name(&p.name) {
                Some(k) => k,
                None => {
                    let mut d =
                        Diagnostic::error("E0045", format!("unknown pick `{}`", p.name), p.span)
                            .with_label("not a way to pick pool members");
                    d = match closest(&p.name, words()) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help(format!(
                            "picks are: {}",
                            words().collect::<Vec<_>>().join(", ")
                        )),
                    };
                    self.error(d);
                    // Whatever was meant, its key is not a second error.
                    if key.is_some() {
                        Pick::Sticky
                    } else {
                        Pick::All
                    }
                }
            },
        };
        let key = match (chosen, key) {
            (Pick::Sticky, Some(k)) => {
                let e = self.expr_value(k);
                Some(Expr {
                    span: e.span,
                    kind: ExprKind::Call(Func::Hash, vec![e]),
                    ty: Type::Int,
                })
            }
            (Pick::Sticky, None) => {
                let at = pick.map_or(name.span, |p| p.span);
                self.error(
                    Diagnostic::error("E0045", "`sticky` needs a key", at)
                        .with_label("what should stay on the same members?")
                        .with_help("e.g. `then pool web sticky {client.subnet}`"),
                );
                None
            }
            (other, Some(k)) => {
                self.error(
                    Diagnostic::error(
                        "E0045",
                        format!("`{}` takes no key", other.as_str()),
                        k.span,
                    )
                    .with_label("only `sticky` has a key")
                    .with_help("to answer with several members, write `count N`"),
                );
                None
            }
            (_, None) => None,
        };
        let count = match count {
            None if chosen == Pick::All => 0,
            None => 1,
            Some(c) => match self.coerce(c, &Type::Int, None).kind {
                ExprKind::Lit(Value::Int(n)) if (1..=64).contains(&n) => n as u32,
                ExprKind::Lit(Value::Int(n)) => {
                    self.error(
                        Diagnostic::error("E0045", format!("count {n} is out of range"), c.span)
                            .with_label("a pool answers with 1 to 64 members"),
                    );
                    1
                }
                _ => {
                    self.error(
                        Diagnostic::error("E0045", "`count` must be a constant", c.span)
                            .with_label("a literal or a const"),
                    );
                    1
                }
            },
        };
        let t = self.ttl(ttl);
        let ttl = match t.kind {
            ExprKind::Lit(Value::Int(v)) => u32::try_from(v).unwrap_or(0),
            _ => {
                self.error(
                    Diagnostic::error("E0045", "a pool's `ttl` must be a constant", t.span)
                        .with_label("a literal or a const"),
                );
                0
            }
        };
        Action::Pool {
            pool: name.name.as_str().into(),
            pick: chosen,
            key,
            count,
            ttl,
        }
    }

    fn ttl(&mut self, ttl: Option<&ast::Expr>) -> Expr {
        let Some(e) = ttl else {
            return lit(Value::Int(DEFAULT_TTL), Type::Int, Span::default());
        };
        let t = self.coerce(e, &Type::Int, None);
        if let ExprKind::Lit(Value::Int(v)) = t.kind {
            if !(0..=i64::from(i32::MAX)).contains(&v) {
                self.error(
                    Diagnostic::error("E0043", format!("TTL {v} is out of range"), e.span)
                        .with_label("TTLs are 0 to 2147483647 seconds (RFC 2181)"),
                );
            }
        }
        t
    }

    /// Record data for `answer TYPE ...`, checked against the type.
    fn record_data(&mut self, rtype: u16, mnemonic: &str, d: &ast::Expr) -> Expr {
        match rtype {
            1 | 28 => {
                let want_v4 = rtype == 1;
                let e = self.coerce_with(
                    d,
                    &Type::Ip,
                    None,
                    "E0041",
                    &format!("answer {mnemonic} needs an IP address"),
                );
                if let ExprKind::Lit(Value::Ip(ip)) = &e.kind {
                    if ip.is_ipv4() != want_v4 {
                        let fam = if want_v4 { "IPv4" } else { "IPv6" };
                        self.error(
                            Diagnostic::error(
                                "E0041",
                                format!("`{ip}` is not an {fam} address"),
                                d.span,
                            )
                            .with_label(format!("answer {mnemonic} needs an {fam} address"))
                            .with_help(if want_v4 {
                                "use `answer AAAA` for IPv6 addresses"
                            } else {
                                "use `answer A` for IPv4 addresses"
                            }),
                        );
                    }
                }
                e
            }
            0 => self.expr_value(d),
            // CNAME, NS, PTR, DNAME: a name.
            2 | 5 | 12 | 39 => self.name_operand(d, &format!("answer {mnemonic} data")),
            _ => {
                let e = self.coerce_with(
                    d,
                    &Type::String,
                    None,
                    "E0041",
                    &format!("answer {mnemonic} needs text data"),
                );
                if let ExprKind::Lit(Value::Str(s)) = &e.kind {
                    if let Some(problem) = rdata_problem(rtype, s) {
                        self.error(
                            Diagnostic::error(
                                "E0041",
                                format!("invalid {mnemonic} record data"),
                                d.span,
                            )
                            .with_label(problem),
                        );
                    }
                }
                e
            }
        }
    }
}

/// Hop-by-hop header fields (RFC 9110 §7.6.1, plus the old `Proxy-Connection`
/// and `Keep-Alive`): a proxy removes them, so a policy cannot set them.
pub fn is_hop_by_hop(name: &str) -> bool {
    const HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}
