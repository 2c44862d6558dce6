//! Rules to code: one function per rule shape (the rule's constants come
//! from its block), statements, `then`, conditions, values, membership
//! tests and comparisons, following the interpreter's missing-value rule.

use super::*;

impl Emitter<'_> {
    // ---- rules ---------------------------------------------------------

    pub(super) fn rule_fn(&mut self, r: &Rule) -> Result<Function, Unsupported> {
        // Parameter 0: the address of the rule's constants.
        let mut b = Body::new(1);
        let mut locals = HashMap::new();
        let end = b.block(BlockType::Empty);
        if let Some(g) = &r.guard {
            self.cond(&mut b, g, &mut locals)?;
            b.i(I::I32Eqz);
            b.br_if(end);
        }
        self.stmts(&mut b, &r.body, end, &mut locals)?;
        b.end();
        b.i(I::I32Const(-1));
        Ok(b.finish())
    }

    pub(super) fn stmts(
        &mut self,
        b: &mut Body,
        stmts: &[Stmt],
        end: u32,
        locals: &mut HashMap<u32, (u32, u32)>,
    ) -> Result<(), Unsupported> {
        for s in stmts {
            match s {
                Stmt::If {
                    cond,
                    then_body,
                    else_body,
                } => {
                    self.cond(b, cond, locals)?;
                    b.if_(BlockType::Empty);
                    self.stmts(b, then_body, end, locals)?;
                    if !else_body.is_empty() {
                        b.i(I::Else);
                        self.stmts(b, else_body, end, locals)?;
                    }
                    b.end();
                }
                Stmt::Let { local, value } => {
                    let vt =
                        repr(&value.ty).ok_or_else(|| unsupported(value, "a `let` of a list"))?;
                    let (val, present) = *locals
                        .entry(*local)
                        .or_insert_with(|| (b.local(vt), b.local(ValType::I32)));
                    let done = b.block(BlockType::Empty);
                    let miss = b.block(BlockType::Empty);
                    self.value(b, value, miss, locals)?;
                    b.i(I::LocalSet(val))
                        .i(I::I32Const(1))
                        .i(I::LocalSet(present));
                    b.br(done);
                    b.end();
                    b.i(I::I32Const(0)).i(I::LocalSet(present));
                    b.end();
                }
                Stmt::Then { action, .. } => self.then(b, action, end, locals)?,
            }
        }
        Ok(())
    }

    pub(super) fn then(
        &mut self,
        b: &mut Body,
        a: &Action,
        end: u32,
        locals: &mut HashMap<u32, (u32, u32)>,
    ) -> Result<(), Unsupported> {
        if let Action::Value(e) = a {
            if !matches!(e.kind, ExprKind::Lit(_)) {
                // A run-time value: encoded at TEMP (scalars) or in place.
                let code = abi::type_code(&e.ty).ok_or_else(|| unsupported(e, "a list verdict"))?;
                let vt = repr(&e.ty).unwrap_or(ValType::I32);
                let tmp = b.local(vt);
                self.value(b, e, end, locals)?;
                b.i(I::LocalSet(tmp));
                b.i(I::I32Const(code));
                match e.ty {
                    Type::Bool => {
                        b.i(I::I32Const(TEMP as i32))
                            .i(I::LocalGet(tmp))
                            .i(I::I32Store8(mem(0, 0)))
                            .i(I::I32Const(TEMP as i32))
                            .i(I::I32Const(1));
                    }
                    Type::Int | Type::Qtype => {
                        b.i(I::I32Const(TEMP as i32))
                            .i(I::LocalGet(tmp))
                            .i(I::I64Store(mem(0, 0)))
                            .i(I::I32Const(TEMP as i32))
                            .i(I::I32Const(8));
                    }
                    Type::String | Type::Name => {
                        unpack(b, tmp);
                    }
                    Type::Ip => {
                        b.i(I::LocalGet(tmp)).i(I::I32Const(17));
                    }
                    _ => {
                        b.i(I::LocalGet(tmp)).i(I::I32Const(18));
                    }
                }
                self.konst(b, self.rule as i64, true);
                b.i(I::Call(F_SET_VALUE));
                // -1 (refused) is passed on as it is: a plugin error.
                b.i(I::I32Const(0)).i(I::I32LtS);
                b.if_(BlockType::Empty);
                b.i(I::I32Const(-3)).i(I::Return);
                b.end();
                b.i(I::I32Const(-2)).i(I::Return);
                return Ok(());
            }
        }
        if let Some((v, Some(key))) = a.keyed_pool() {
            // The key goes to the host first (`set_value` with the pool-key
            // code), then the static verdict's id is returned as usual.
            let tmp = b.local(ValType::I64);
            self.value(b, key, end, locals)?;
            b.i(I::LocalSet(tmp));
            b.i(I::I32Const(abi::POOL_KEY_CODE))
                .i(I::I32Const(TEMP as i32))
                .i(I::LocalGet(tmp))
                .i(I::I64Store(mem(0, 0)))
                .i(I::I32Const(TEMP as i32))
                .i(I::I32Const(8));
            self.konst(b, self.rule as i64, true);
            b.i(I::Call(F_SET_VALUE));
            b.i(I::I32Const(0)).i(I::I32LtS);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(-3)).i(I::Return);
            b.end();
            let id = self.verdict(&v);
            self.konst(b, i64::from(id), true);
            b.i(I::Return);
            return Ok(());
        }
        match a.static_verdict().map_err(Unsupported::from) {
            Ok(Some(v)) => {
                let id = self.verdict(&v);
                self.konst(b, i64::from(id), true);
                b.i(I::Return);
            }
            // The verdict can never be made (a TTL out of range...): the
            // rule ends without deciding, as in the interpreter.
            Ok(None) => b.br(end),
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// A bool for a condition: missing is false.
    pub(super) fn cond(
        &mut self,
        b: &mut Body,
        e: &Expr,
        locals: &mut HashMap<u32, (u32, u32)>,
    ) -> Result<(), Unsupported> {
        if !e.can_be_missing() {
            return self.value(b, e, 0, locals);
        }
        self.guarded(b, locals, |s, b, miss, locals| s.value(b, e, miss, locals))
    }

    /// Runs `f` with a "missing" label: its i32 result, or 0 when missing.
    pub(super) fn guarded(
        &mut self,
        b: &mut Body,
        locals: &mut HashMap<u32, (u32, u32)>,
        f: impl FnOnce(
            &mut Self,
            &mut Body,
            u32,
            &mut HashMap<u32, (u32, u32)>,
        ) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        let out = b.block(BlockType::Result(ValType::I32));
        let miss = b.block(BlockType::Empty);
        f(self, b, miss, locals)?;
        b.br(out);
        b.end();
        b.i(I::I32Const(0));
        b.end();
        Ok(())
    }

    /// The value of `e` on the stack; branches to `miss` when it is missing.
    pub(super) fn value(
        &mut self,
        b: &mut Body,
        e: &Expr,
        miss: u32,
        locals: &mut HashMap<u32, (u32, u32)>,
    ) -> Result<(), Unsupported> {
        match &e.kind {
            ExprKind::Lit(v) => self.lit(b, v, e)?,
            ExprKind::Field(f) => self.read(b, *f as u32, miss),
            ExprKind::Input(i) => self.read(b, abi::INPUT_BASE + i, miss),
            ExprKind::Local(l) => {
                let vt = repr(&e.ty).ok_or_else(|| unsupported(e, "a list local"))?;
                let (val, present) = *locals
                    .entry(*l)
                    .or_insert_with(|| (b.local(vt), b.local(ValType::I32)));
                b.i(I::LocalGet(present)).i(I::I32Eqz);
                b.br_if(miss);
                b.i(I::LocalGet(val));
            }
            ExprKind::Not(a) => {
                self.cond(b, a, locals)?;
                b.i(I::I32Eqz);
            }
            ExprKind::And(x, y) | ExprKind::Or(x, y) => {
                let and = matches!(e.kind, ExprKind::And(..));
                self.cond(b, x, locals)?;
                b.if_(BlockType::Result(ValType::I32));
                if and {
                    self.cond(b, y, locals)?;
                } else {
                    b.i(I::I32Const(1));
                }
                b.i(I::Else);
                if and {
                    b.i(I::I32Const(0));
                } else {
                    self.cond(b, y, locals)?;
                }
                b.end();
            }
            ExprKind::Neg(a) => {
                b.i(I::I64Const(0));
                self.value(b, a, miss, locals)?;
                b.i(I::I64Sub);
            }
            ExprKind::Cmp(op, x, y) => {
                let op = *op;
                self.maybe_guarded(b, e, locals, |s, b, m, locals| {
                    s.value(b, x, m, locals)?;
                    s.value(b, y, m, locals)?;
                    compare(b, op, &x.ty, e)
                })?;
            }
            ExprKind::InSet {
                needle,
                set,
                negate,
            } => {
                let (set, negate) = (*set, *negate);
                self.maybe_guarded(b, e, locals, |s, b, m, locals| {
                    s.in_set(b, needle, set, m, locals)?;
                    if negate {
                        b.i(I::I32Eqz);
                    }
                    Ok(())
                })?;
            }
            ExprKind::InExpr {
                needle,
                haystack,
                negate,
            } => {
                let negate = *negate;
                self.maybe_guarded(b, e, locals, |s, b, m, locals| {
                    s.in_expr(b, needle, haystack, m, locals)?;
                    if negate {
                        b.i(I::I32Eqz);
                    }
                    Ok(())
                })?;
            }
            ExprKind::Matches(x, re) => {
                let (p, n) = self.regex_text[*re as usize];
                self.maybe_guarded(b, e, locals, |s, b, m, locals| {
                    if !matches!(x.ty, Type::String | Type::Name) {
                        return Err(unsupported(e, "`matches` on a non-string"));
                    }
                    let tmp = b.local(ValType::I64);
                    s.value(b, x, m, locals)?;
                    b.i(I::LocalSet(tmp));
                    s.konst(b, i64::from(p), true);
                    s.konst(b, i64::from(n), true);
                    unpack(b, tmp);
                    b.i(I::Call(F_REGEX)).i(I::I32Const(1)).i(I::I32Eq);
                    Ok(())
                })?;
            }
            ExprKind::StartsWith(x, y) | ExprKind::EndsWith(x, y) => {
                let starts = matches!(e.kind, ExprKind::StartsWith(..));
                self.maybe_guarded(b, e, locals, |s, b, m, locals| {
                    s.value(b, x, m, locals)?;
                    s.value(b, y, m, locals)?;
                    let h = match (&x.ty, &y.ty, starts) {
                        (Type::Name, Type::Name, true) => H::NamePrefix,
                        (Type::Name, Type::Name, false) => H::NameSuffix,
                        (Type::String, Type::String, true) => H::StrPrefix,
                        (Type::String, Type::String, false) => H::StrSuffix,
                        _ => {
                            b.i(I::Drop).i(I::Drop).i(I::I32Const(0));
                            return Ok(());
                        }
                    };
                    b.i(I::Call(helper(h)));
                    Ok(())
                })?;
            }
            ExprKind::Arith(op, x, y) => {
                self.value(b, x, miss, locals)?;
                self.value(b, y, miss, locals)?;
                b.i(match op {
                    ArithOp::Add => I::I64Add,
                    ArithOp::Sub => I::I64Sub,
                    ArithOp::Mul => I::I64Mul,
                    ArithOp::Div => I::Call(helper(H::Div)),
                    ArithOp::Rem => I::Call(helper(H::Rem)),
                });
            }
            ExprKind::Call(f, args) => {
                let Some(x) = args.first() else {
                    return Err(unsupported(e, "a call without arguments"));
                };
                match (f, &x.ty) {
                    (Func::Lower, Type::Name) => self.value(b, x, miss, locals)?,
                    (Func::Len, Type::String | Type::Name) => {
                        self.value(b, x, miss, locals)?;
                        b.i(I::Call(helper(H::Utf8Len)));
                    }
                    (Func::Hash, t) if abi::type_code(t).is_some() => {
                        self.value(b, x, miss, locals)?;
                        match t {
                            Type::Bool => {
                                b.i(I::Call(helper(H::HashBool)));
                            }
                            Type::Int => {
                                b.i(I::Call(helper(H::HashI64)));
                            }
                            Type::Qtype => {
                                b.i(I::Call(helper(H::HashQtype)));
                            }
                            Type::String | Type::Name => {
                                let tmp = b.local(ValType::I64);
                                b.i(I::LocalSet(tmp));
                                b.i(I::I32Const(if *t == Type::String { 3 } else { 4 }));
                                unpack(b, tmp);
                                b.i(I::Call(helper(H::HashMem)));
                            }
                            Type::Ip => {
                                b.i(I::Call(helper(H::HashIpBlob)));
                            }
                            _ => {
                                b.i(I::Call(helper(H::HashCidrBlob)));
                            }
                        }
                    }
                    (Func::Lower, _) => return Err(unsupported(e, "`lower()` of a string")),
                    _ => return Err(unsupported(e, "this function of a list")),
                }
            }
            ExprKind::Concat(..) => return Err(unsupported(e, "string concatenation")),
            ExprKind::List(_) => return Err(unsupported(e, "a list outside `in`")),
        }
        Ok(())
    }

    /// Like [`Self::guarded`] when `e` reads something that can be missing.
    pub(super) fn maybe_guarded(
        &mut self,
        b: &mut Body,
        e: &Expr,
        locals: &mut HashMap<u32, (u32, u32)>,
        f: impl FnOnce(
            &mut Self,
            &mut Body,
            u32,
            &mut HashMap<u32, (u32, u32)>,
        ) -> Result<(), Unsupported>,
    ) -> Result<(), Unsupported> {
        if e.any_child_can_be_missing() {
            self.guarded(b, locals, f)
        } else {
            f(self, b, 0, locals)
        }
    }

    pub(super) fn read(&mut self, b: &mut Body, id: u32, miss: u32) {
        let g = &self.getters[&id];
        b.i(I::Call(g.func))
            .i(I::GlobalGet(g.state))
            .i(I::I32Const(2))
            .i(I::I32Eq);
        b.br_if(miss);
    }

    /// Pushes constant `v` of the rule being lowered: a load from its
    /// block (parameter 0), so rules differing only in constants share code.
    pub(super) fn konst(&mut self, b: &mut Body, v: i64, i32_repr: bool) {
        let at = 8 * self.k.len() as u64;
        self.k.push(v);
        b.i(I::LocalGet(0)).i(I::I64Load(mem(at, 3)));
        if i32_repr {
            b.i(I::I32WrapI64);
        }
    }

    pub(super) fn lit(&mut self, b: &mut Body, v: &Value, e: &Expr) -> Result<(), Unsupported> {
        match v {
            Value::Bool(x) => self.konst(b, i64::from(*x), true),
            Value::Int(i) => self.konst(b, *i, false),
            Value::Qtype(q) => self.konst(b, i64::from(*q), false),
            Value::Str(s) | Value::Name(s) => {
                let (p, n) = self.data.text(s);
                self.konst(b, packed(p, n), false);
            }
            Value::Ip(ip) => {
                let at = self.data.put(&abi::ip_bytes(ip), 1);
                self.konst(b, i64::from(at), true);
            }
            Value::Cidr(c) => {
                let at = self.data.put(&abi::cidr_bytes(c), 1);
                self.konst(b, i64::from(at), true);
            }
            Value::List(_) => return Err(unsupported(e, "a list outside `in`")),
        }
        Ok(())
    }

    pub(super) fn in_set(
        &mut self,
        b: &mut Body,
        needle: &Expr,
        set: u32,
        miss: u32,
        locals: &mut HashMap<u32, (u32, u32)>,
    ) -> Result<(), Unsupported> {
        match (&self.p.sets[set as usize], &needle.ty) {
            (ConstSet::Live(l), _) => {
                return Err(unsupported(
                    needle,
                    &format!("the file-backed set `{}` (its members change at run time; the module has no host lookup for them)", l.name),
                ));
            }
            (ConstSet::Names(_), Type::Name) => {
                let kind = self.set_kind[&set];
                b.i(I::I32Const(self.tbl as i32))
                    .i(I::I32Const(self.tbl_mask as i32));
                self.konst(b, i64::from(kind), true);
                self.value(b, needle, miss, locals)?;
                b.i(I::Call(helper(H::NameSetHas)));
            }
            (ConstSet::Cidrs(_), Type::Ip | Type::Cidr) => {
                let (at, n) = self.cidr_sets[&set];
                self.konst(b, i64::from(at), true);
                self.konst(b, i64::from(n), true);
                self.value(b, needle, miss, locals)?;
                b.i(I::Call(helper(if needle.ty == Type::Ip {
                    H::CidrListHasIp
                } else {
                    H::CidrListCovers
                })));
            }
            (ConstSet::Values(vs), t) => {
                let vt = repr(t).ok_or_else(|| unsupported(needle, "a list in a set"))?;
                let tmp = b.local(vt);
                self.value(b, needle, miss, locals)?;
                b.i(I::LocalSet(tmp));
                let mut members: Vec<&Value> = vs.iter().filter(|v| v.ty() == *t).collect();
                members.sort_by_key(|v| v.to_string());
                b.i(I::I32Const(0));
                for m in members {
                    b.i(I::LocalGet(tmp));
                    self.lit(b, m, needle)?;
                    compare(b, CmpOp::Eq, t, needle)?;
                    b.i(I::I32Or);
                }
            }
            _ => {
                // A value of another type is in no set of this kind.
                self.value(b, needle, miss, locals)?;
                b.i(I::Drop).i(I::I32Const(0));
            }
        }
        Ok(())
    }

    pub(super) fn in_expr(
        &mut self,
        b: &mut Body,
        needle: &Expr,
        hay: &Expr,
        miss: u32,
        locals: &mut HashMap<u32, (u32, u32)>,
    ) -> Result<(), Unsupported> {
        let items: Option<Vec<Expr>> = match &hay.kind {
            ExprKind::List(items) => Some(items.clone()),
            ExprKind::Lit(Value::List(items)) => Some(
                items
                    .iter()
                    .map(|v| Expr {
                        kind: ExprKind::Lit(v.clone()),
                        ty: v.ty(),
                        span: hay.span,
                    })
                    .collect(),
            ),
            _ => None,
        };
        if let Some(items) = items {
            let t = &needle.ty;
            let vt = repr(t).ok_or_else(|| unsupported(needle, "a list in a list"))?;
            let tmp = b.local(vt);
            self.value(b, needle, miss, locals)?;
            b.i(I::LocalSet(tmp));
            // Every element is evaluated: one missing makes the list missing.
            b.i(I::I32Const(0));
            for it in &items {
                if it.ty != *t {
                    self.value(b, it, miss, locals)?;
                    b.i(I::Drop);
                    continue;
                }
                b.i(I::LocalGet(tmp));
                self.value(b, it, miss, locals)?;
                compare(b, CmpOp::Eq, t, needle)?;
                b.i(I::I32Or);
            }
            return Ok(());
        }
        match (&needle.ty, &hay.ty) {
            (Type::Ip | Type::Cidr, Type::Cidr) => {
                let tmp = b.local(ValType::I32);
                self.value(b, needle, miss, locals)?;
                b.i(I::LocalSet(tmp));
                self.value(b, hay, miss, locals)?;
                b.i(I::LocalGet(tmp));
                b.i(I::Call(helper(if needle.ty == Type::Ip {
                    H::CidrContains
                } else {
                    H::CidrCovers
                })));
                Ok(())
            }
            _ => Err(unsupported(hay, "`in` over a run-time list")),
        }
    }
}

pub(super) fn unsupported(e: &Expr, what: &str) -> Unsupported {
    Unsupported {
        span: e.span,
        what: what.to_string(),
    }
}

/// Compares the two values on the stack, of type `t`, leaving an i32.
pub(super) fn compare(b: &mut Body, op: CmpOp, t: &Type, e: &Expr) -> Result<(), Unsupported> {
    let ordered = !matches!(op, CmpOp::Eq | CmpOp::Ne);
    match t {
        Type::Int => {
            b.i(match op {
                CmpOp::Eq => I::I64Eq,
                CmpOp::Ne => I::I64Ne,
                CmpOp::Lt => I::I64LtS,
                CmpOp::Le => I::I64LeS,
                CmpOp::Gt => I::I64GtS,
                CmpOp::Ge => I::I64GeS,
            });
        }
        _ if ordered => {
            // Only ints are ordered; anything else compares false.
            b.i(I::Drop).i(I::Drop).i(I::I32Const(0));
        }
        Type::Qtype => {
            b.i(if op == CmpOp::Eq { I::I64Eq } else { I::I64Ne });
        }
        Type::Bool => {
            b.i(if op == CmpOp::Eq { I::I32Eq } else { I::I32Ne });
        }
        Type::String | Type::Name => {
            b.i(I::Call(helper(H::StrEq)));
            if op == CmpOp::Ne {
                b.i(I::I32Eqz);
            }
        }
        Type::Ip | Type::Cidr => {
            b.i(I::I32Const(if *t == Type::Ip { 17 } else { 18 }))
                .i(I::Call(helper(H::MemEq)));
            if op == CmpOp::Ne {
                b.i(I::I32Eqz);
            }
        }
        _ => return Err(unsupported(e, "comparing lists")),
    }
    Ok(())
}
