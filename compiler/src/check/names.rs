//! Names: context paths, injected variables, locals, constants and sets,
//! with "did you mean" help; and calls of the built-in functions.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn var(&mut self, path: &str, span: Span) -> Expr {
        if path == crate::syntax::lexer::ERROR_PATH {
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
            if path.starts_with("query.") || f == Field::ClientRate {
                self.front_use(ir::Front::Dns, span, &format!("`{{{path}}}`"));
            }
            return Expr {
                kind: ExprKind::Field(f),
                ty: f.info().ty.clone(),
                span,
            };
        }
        let root = path.split('.').next().unwrap_or("");
        if root == "pool" {
            self.front_use(ir::Front::Dns, span, &format!("`{{{path}}}`"));
            return self.pool_path(path, span);
        }
        if root == "http" {
            return self.http_path(path, span);
        }
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

    /// `{pool.NAME.healthy}`: the number of healthy members of answer pool
    /// NAME, an int the server supplies like an injected variable (so every
    /// backend reads it the way it reads `input`s). Other `pool.` paths are
    /// E0020.
    fn pool_path(&mut self, path: &str, span: Span) -> Expr {
        let name = path
            .strip_prefix("pool.")
            .and_then(|r| r.strip_suffix(".healthy"))
            .filter(|n| !n.is_empty() && !n.contains('.'));
        if name.is_none() {
            self.error(
                Diagnostic::error("E0020", format!("unknown context path `{path}`"), span)
                    .with_label("no such path")
                    .with_help("`pool.` paths are `pool.NAME.healthy`: how many members of answer pool NAME are healthy"),
            );
            return lit(Value::Bool(false), Type::Unknown, span);
        }
        self.supplied_input(path.to_string(), Type::Int, span)
    }

    /// `{http.method}`, `{http.host}`, `{http.path}`, `{http.header.NAME}`
    /// (case-insensitive: kept lowercase), `{http.query.NAME}` and
    /// `{http.cookie.NAME}`: strings the HTTP front door supplies like
    /// injected variables, so every backend reads them the way it reads
    /// `input`s. Other `http.` paths are E0020.
    fn http_path(&mut self, path: &str, span: Span) -> Expr {
        // One reading of `http.` paths: the one the server uses.
        let canonical = crate::ir::http::HttpPart::from_path(path).map(|p| p.path());
        let Some(canonical) = canonical else {
            let mut d = Diagnostic::error("E0020", format!("unknown context path `{path}`"), span)
                .with_label("no such path");
            d = match closest(path, ["http.method", "http.host", "http.path"]) {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(
                    "`http.` paths are `http.method`, `http.host`, `http.path`, `http.header.NAME`, `http.query.NAME` and `http.cookie.NAME`",
                ),
            };
            self.error(d);
            return lit(Value::Bool(false), Type::Unknown, span);
        };
        self.front_use(ir::Front::Http, span, &format!("`{{{path}}}`"));
        self.supplied_input(canonical, Type::String, span)
    }

    /// A path the server supplies like an injected variable, with a fixed
    /// type (`pool.NAME.healthy`, `http.*`): one input per path.
    fn supplied_input(&mut self, path: String, ty: Type, span: Span) -> Expr {
        let id = match self.input_ids.get(&path) {
            Some(&id) => id,
            None => {
                let id = self.inputs.len() as u32;
                self.inputs.push(InputState {
                    path: path.clone(),
                    ty: Some(ty.clone()),
                    fixed_at: Some(span),
                    declared: true,
                    first_use: span,
                });
                self.input_ids.insert(path, id);
                id
            }
        };
        Expr {
            kind: ExprKind::Input(id),
            ty,
            span,
        }
    }

    pub(super) fn ident(&mut self, name: &str, span: Span) -> Expr {
        if let Some((slot, ty)) = self.lookup_local(name) {
            return Expr {
                kind: ExprKind::Local(slot),
                ty,
                span,
            };
        }
        if let Some(c) = self.consts.get_mut(name) {
            c.used = true;
            let decl: &ast::ConstDecl = c.decl;
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

    pub(super) fn flex_set(&mut self, name: &str) -> Option<Flex<'a>> {
        let s = self.sets.get_mut(name)?;
        s.used = true;
        match &s.decl.value.kind {
            ast::ExprKind::List(items) => {
                Some(Flex::List(items, super::literals::list_key(&s.decl.value)))
            }
            _ => {
                super::literals::file_path(&s.decl.value).map(|p| Flex::Live(&s.decl.name.name, p))
            }
        }
    }

    pub(super) fn call(&mut self, f: &ast::Ident, args: &[ast::Expr], span: Span) -> Expr {
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
}
