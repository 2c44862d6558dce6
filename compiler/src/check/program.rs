//! The program, item by item: rules and bare statements (the implicit rule
//! `main`) in source order, then duplicate names, inference, rule order.
//! Items may be handed over one at a time, each dropped once it is checked:
//! serving never holds a whole syntax tree (see [`super::check_for_serving`]).

use super::*;

/// What the items checked so far have made.
pub(super) struct Body {
    rules: Vec<(ir::Rule, usize)>,
    /// Where each rule's name is, for E0023 once all are checked (the
    /// names themselves may be gone with the syntax by then).
    name_spans: Vec<Span>,
    /// Bare statements form one implicit rule, in source order, sharing a scope.
    main_body: Vec<Stmt>,
    main_decides: Option<Span>,
    main_span: Option<(Span, usize)>,
    main_unreachable_reported: bool,
    main_scope: usize,
    main_locals: u32,
    /// The next item's place in the source.
    order: usize,
    /// Some item has not checked: rules are no longer handed to a hook.
    failed: bool,
}

impl<'a> Checker<'a> {
    /// Checks a program whose items are all at hand: [`Checker::begin`],
    /// [`Checker::item`] for each of `body` (rules and bare statements;
    /// anything else is skipped), [`Checker::finish`].
    pub(super) fn program<B: std::borrow::Borrow<Item>>(
        &mut self,
        decls: &'a [Item],
        body: impl Iterator<Item = B>,
        rules: usize,
    ) -> Policy {
        let mut b = self.begin(decls, rules);
        for item in body {
            self.item(&mut b, item.borrow(), None);
        }
        self.finish(b)
    }

    /// Declares `decls` (consts, sets, inputs; other items are skipped), so
    /// items may use them before their declaration; `rules` is how many
    /// rules will follow (or a bound on it).
    pub(super) fn begin(&mut self, decls: &'a [Item], rules: usize) -> Body {
        self.declarations(decls);
        self.scopes.push(Vec::new());
        Body {
            // Reserved up front (exactly, or a bound when serving guessed
            // it from the text): grown by doubling, a 100 000-rule
            // policy's list would take a third more.
            rules: Vec::with_capacity(rules + 1),
            name_spans: Vec::with_capacity(rules),
            main_body: Vec::new(),
            main_decides: None,
            main_span: None,
            main_unreachable_reported: false,
            main_scope: self.scopes.len(),
            main_locals: 0,
            order: 0,
            failed: false,
        }
    }

    /// Checks the next item in source order. Nothing of it is kept: it may
    /// be dropped as soon as this returns. A rule whose types are settled
    /// (none waits for inference at [`Checker::finish`]) is handed to
    /// `hook` with the constant sets so far, while no error has been
    /// found; the hook may take its guard and body (see
    /// [`super::check_for_serving_with`]).
    pub(super) fn item(&mut self, b: &mut Body, item: &Item, hook: Option<&mut RuleHook<'_>>) {
        let order = b.order;
        b.order += 1;
        match item {
            Item::Rule(r) => {
                b.name_spans.push(r.name.span);
                // Each rule has its own locals; the implicit rule's scope is set aside.
                let saved_scopes = std::mem::take(&mut self.scopes);
                let saved_next = std::mem::replace(&mut self.next_local, 0);
                self.scopes.push(Vec::new());
                if let Some(f) = r.flag.as_ref().filter(|f| f.name != "log") {
                    self.error(
                        Diagnostic::error(
                            "E0046",
                            format!("unknown rule flag `{}`", f.name),
                            f.span,
                        )
                        .with_label("not a rule flag")
                        .with_help("the one flag is `log` (every decision of the rule goes to the decision log), after the priority: `rule r priority 10 log { ... }`"),
                    );
                }
                let guard = r.guard.as_ref().map(|g| Box::new(self.cond(g)));
                let body = self.block(&r.body.stmts);
                let locals = self.next_local;
                self.scopes = saved_scopes;
                self.next_local = saved_next;
                let mut rule = ir::Rule {
                    name: r.name.name.clone(),
                    priority: r.priority.map_or(0, |p| p.0),
                    guard,
                    body: body.stmts,
                    locals,
                    span: r.span,
                    implicit: false,
                    log: r.flag.as_ref().is_some_and(|f| f.name == "log"),
                };
                // Only while everything so far has checked: a rule with an
                // error in it may hold what no backend expects, and the
                // policy will not load anyway.
                if let Some(hook) = hook.filter(|_| settled(&rule)) {
                    b.failed = b.failed || self.diags.iter().any(Diagnostic::is_error);
                    if !b.failed {
                        hook(&mut rule, &self.const_sets);
                    }
                }
                b.rules.push((rule, order));
            }
            Item::Stmt(s) => {
                if b.main_span.is_none() {
                    b.main_span = Some((s.span, order));
                }
                debug_assert_eq!(self.scopes.len(), b.main_scope);
                if let Some(at) = b.main_decides {
                    if !b.main_unreachable_reported {
                        b.main_unreachable_reported = true;
                        self.unreachable(s.span, at);
                    }
                    let _ = self.stmt(s);
                    return;
                }
                let out = self.stmt(s);
                b.main_decides = out.decides;
                b.main_body.extend(out.stmts);
                b.main_locals = self.next_local;
            }
            Item::Const(_) | Item::Set(_) | Item::Input(_) => {}
        }
    }

    /// Ends the program: duplicate names, the implicit rule, inferred
    /// types, unused declarations, rule order.
    pub(super) fn finish(&mut self, b: Body) -> Policy {
        self.scopes.pop();

        let mut names: HashMap<&str, Span> =
            HashMap::with_capacity_and_hasher(b.rules.len(), Default::default());
        for ((rule, _), &at) in b.rules.iter().zip(&b.name_spans) {
            if let Some(prev) = names.insert(&rule.name, at) {
                self.diags.push(
                    Diagnostic::error("E0023", format!("duplicate rule name `{}`", rule.name), at)
                        .with_label("defined again here")
                        .with_secondary(prev, "first defined here")
                        .with_help("rule names identify rules in metrics and logs; give each rule its own name"),
                );
            }
        }
        let main_taken = names.get("main").copied();
        drop(names);
        let Body {
            mut rules,
            mut main_body,
            main_span,
            main_locals,
            ..
        } = b;

        if let Some((span, order)) = main_span {
            if let Some(prev) = main_taken {
                self.error(
                    Diagnostic::error("E0023", "duplicate rule name `main`", prev)
                        .with_label("a rule named `main` here")
                        .with_secondary(span, "bare statements form the implicit rule `main`")
                        .with_help("rename the rule, or move the bare statements into it"),
                );
            }
            main_body.shrink_to_fit();
            rules.push((
                ir::Rule {
                    name: "main".into(),
                    priority: 0,
                    guard: None,
                    body: main_body,
                    locals: main_locals,
                    span,
                    implicit: true,
                    log: false,
                },
                order,
            ));
        }

        self.finish_inputs();
        for (rule, _) in &mut rules {
            self.zonk_rule(rule);
        }
        self.unused_warnings();

        // Higher priority first; ties keep source order. The source place
        // makes every key distinct, so an unstable sort gives the same
        // order without a stable sort's scratch copy of half the rules.
        rules.sort_unstable_by(|a, b| b.0.priority.cmp(&a.0.priority).then(a.1.cmp(&b.1)));
        let mut ordered: Vec<ir::Rule> = rules.into_iter().map(|r| r.0).collect();
        ordered.shrink_to_fit();
        let sets = std::mem::take(&mut self.const_sets);
        // Without lints (serving) the caller builds the index once the
        // syntax tree is gone.
        let index = if self.lints {
            crate::ir::index::RuleIndex::build(&ordered, &sets)
        } else {
            crate::ir::index::RuleIndex::default()
        };
        let policy = Policy {
            rules: ordered,
            inputs: self
                .inputs
                .iter()
                .map(|i| ir::Input {
                    path: i.path.clone(),
                    ty: i.ty.clone().unwrap_or(Type::Unknown),
                })
                .collect(),
            sets,
            regexes: std::mem::take(&mut self.regexes),
            declared_sets: self.sets.len(),
            index,
            live_sets: std::mem::take(&mut self.live_sets),
            front: match (&self.front_dns, &self.front_http) {
                (Some(_), None) => ir::Front::Dns,
                (None, Some(_)) => ir::Front::Http,
                _ => ir::Front::Any,
            },
        };
        if self.lints {
            self.diags.extend(lint::lints(&policy));
            self.diags.extend(never::lints(&policy));
        }
        policy
    }
}

/// Takes each rule as soon as it is checked: see [`Checker::item`].
pub(crate) type RuleHook<'h> = dyn FnMut(&mut ir::Rule, &[ir::ConstSet]) + 'h;

/// Whether `rule`'s types are final: nothing in it waits for an injected
/// input's type to be inferred from later rules ([`Checker::finish`] fills
/// those in).
fn settled(rule: &ir::Rule) -> bool {
    fn known(t: &Type) -> bool {
        match t {
            Type::Unknown => false,
            Type::List(inner) => known(inner),
            _ => true,
        }
    }
    fn expr(e: &ir::Expr, ok: &mut bool) {
        if !known(&e.ty) {
            *ok = false;
        }
        e.for_each_child(|c| expr(c, ok));
    }
    let mut ok = true;
    if let Some(g) = &rule.guard {
        expr(g, &mut ok);
    }
    ir::for_each_expr(&rule.body, &mut |e| expr(e, &mut ok));
    ok
}
