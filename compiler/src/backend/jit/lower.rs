//! Lowering: one rule shape to Cranelift IR, one `translate`-style method
//! per construct, following the interpreter's missing-value rule (a read of
//! a missing slot branches to the enclosing "missing" block).

#![deny(unsafe_code)]

use super::*;

pub(super) struct Lower<'a, 'b> {
    pub(super) b: FunctionBuilder<'b>,
    pub(super) helpers: &'a [FuncRef],
    pub(super) vals: CVal,
    pub(super) present: CVal,
    pub(super) env: CVal,
    pub(super) read: CVal,
    pub(super) k: CVal,
    pub(super) next_k: u32,
    pub(super) locals: HashMap<u32, (Variable, Variable)>,
    pub(super) end: Block,
}

impl Lower<'_, '_> {
    pub(super) fn konst(&mut self) -> CVal {
        let off = (self.next_k * 8) as i32;
        self.next_k += 1;
        self.b.ins().load(I64, MemFlagsData::trusted(), self.k, off)
    }

    pub(super) fn call(&mut self, h: usize, args: &[CVal]) -> CVal {
        let mut all = vec![self.env];
        all.extend_from_slice(args);
        let inst = self.b.ins().call(self.helpers[h], &all);
        self.b.inst_results(inst)[0]
    }

    pub(super) fn bool(&mut self, c: CVal) -> CVal {
        self.b.ins().uextend(I64, c)
    }

    /// Jumps to `miss` when `present` is zero, else continues.
    pub(super) fn miss_if_absent(&mut self, present: CVal, miss: Block) {
        let cont = self.b.create_block();
        self.b.ins().brif(present, cont, &[], miss, &[]);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
    }

    pub(super) fn slot(&mut self, slot: u32, miss: Block) -> CVal {
        // What the decision depended on: marked before the presence test,
        // since a missing value is a dependency too.
        let one = self.b.ins().iconst(cranelift_codegen::ir::types::I8, 1);
        self.b
            .ins()
            .store(MemFlagsData::trusted(), one, self.read, slot as i32);
        let p = self
            .b
            .ins()
            .uload8(I64, MemFlagsData::trusted(), self.present, slot as i32);
        self.miss_if_absent(p, miss);
        self.b
            .ins()
            .load(I64, MemFlagsData::trusted(), self.vals, (slot * 8) as i32)
    }

    /// `f` with a "missing" label: its value, or 0 when missing.
    pub(super) fn guarded(&mut self, f: impl FnOnce(&mut Self, Block) -> CVal) -> CVal {
        let out = self.b.create_block();
        self.b.append_block_param(out, I64);
        let miss = self.b.create_block();
        let v = f(self, miss);
        self.b.ins().jump(out, &[BlockArg::Value(v)]);
        self.b.switch_to_block(miss);
        self.b.seal_block(miss);
        let z = self.b.ins().iconst(I64, 0);
        self.b.ins().jump(out, &[BlockArg::Value(z)]);
        self.b.switch_to_block(out);
        self.b.seal_block(out);
        self.b.block_params(out)[0]
    }

    pub(super) fn maybe_guarded(
        &mut self,
        e: &Expr,
        f: impl FnOnce(&mut Self, Block) -> CVal,
    ) -> CVal {
        if e.any_child_can_be_missing() {
            self.guarded(f)
        } else {
            let dummy = self.end;
            f(self, dummy)
        }
    }

    pub(super) fn cond(&mut self, e: &Expr) -> CVal {
        if e.can_be_missing() {
            self.guarded(|s, miss| s.value(e, miss))
        } else {
            let end = self.end;
            self.value(e, end)
        }
    }

    pub(super) fn value(&mut self, e: &Expr, miss: Block) -> CVal {
        match &e.kind {
            ExprKind::Lit(_) => self.konst(),
            ExprKind::Field(f) => self.slot(*f as u32, miss),
            ExprKind::Input(i) => self.slot(FIELD_COUNT as u32 + i, miss),
            ExprKind::Local(l) => {
                let (val, present) = self.local(*l);
                let p = self.b.use_var(present);
                self.miss_if_absent(p, miss);
                self.b.use_var(val)
            }
            ExprKind::Not(a) => {
                let c = self.cond(a);
                let r = self.b.ins().icmp_imm_s(IntCC::Equal, c, 0);
                self.bool(r)
            }
            ExprKind::And(x, y) | ExprKind::Or(x, y) => {
                let and = matches!(e.kind, ExprKind::And(..));
                let out = self.b.create_block();
                self.b.append_block_param(out, I64);
                let rhs = self.b.create_block();
                let a = self.cond(x);
                if and {
                    self.b.ins().brif(a, rhs, &[], out, &[BlockArg::Value(a)]);
                } else {
                    self.b.ins().brif(a, out, &[BlockArg::Value(a)], rhs, &[]);
                }
                self.b.switch_to_block(rhs);
                self.b.seal_block(rhs);
                let c = self.cond(y);
                self.b.ins().jump(out, &[BlockArg::Value(c)]);
                self.b.switch_to_block(out);
                self.b.seal_block(out);
                self.b.block_params(out)[0]
            }
            ExprKind::Neg(a) => {
                let v = self.value(a, miss);
                self.b.ins().ineg(v)
            }
            ExprKind::Cmp(op, x, y) => {
                let (op, int) = (*op, x.ty == Type::Int);
                self.maybe_guarded(e, |s, m| {
                    let a = s.value(x, m);
                    let b = s.value(y, m);
                    let cc = match (op, int) {
                        (CmpOp::Eq, _) => IntCC::Equal,
                        (CmpOp::Ne, _) => IntCC::NotEqual,
                        (_, false) => return s.b.ins().iconst(I64, 0),
                        (CmpOp::Lt, _) => IntCC::SignedLessThan,
                        (CmpOp::Le, _) => IntCC::SignedLessThanOrEqual,
                        (CmpOp::Gt, _) => IntCC::SignedGreaterThan,
                        (CmpOp::Ge, _) => IntCC::SignedGreaterThanOrEqual,
                    };
                    let r = s.b.ins().icmp(cc, a, b);
                    s.bool(r)
                })
            }
            ExprKind::InSet { needle, negate, .. } => {
                let negate = *negate;
                let code = type_code(&needle.ty).unwrap_or(-1);
                let set = self.konst();
                self.maybe_guarded(e, |s, m| {
                    let v = s.value(needle, m);
                    let c = s.b.ins().iconst(I64, code);
                    let r = s.call(H_IN_SET, &[set, c, v]);
                    if negate {
                        let z = s.b.ins().icmp_imm_s(IntCC::Equal, r, 0);
                        s.bool(z)
                    } else {
                        r
                    }
                })
            }
            ExprKind::InExpr {
                needle,
                haystack,
                negate,
            } => {
                let negate = *negate;
                self.maybe_guarded(e, |s, m| {
                    let n = s.value(needle, m);
                    let found = match &haystack.kind {
                        ExprKind::List(items) => {
                            // Every element is evaluated: one missing makes
                            // the list missing.
                            let mut acc = s.b.ins().iconst(I64, 0);
                            for it in items {
                                let v = s.value(it, m);
                                if it.ty == needle.ty {
                                    let eq = s.b.ins().icmp(IntCC::Equal, n, v);
                                    let eq = s.bool(eq);
                                    acc = s.b.ins().bor(acc, eq);
                                }
                            }
                            acc
                        }
                        ExprKind::Lit(Value::List(items)) => {
                            let mut acc = s.b.ins().iconst(I64, 0);
                            for it in items.iter() {
                                let v = s.konst();
                                if it.ty() == needle.ty {
                                    let eq = s.b.ins().icmp(IntCC::Equal, n, v);
                                    let eq = s.bool(eq);
                                    acc = s.b.ins().bor(acc, eq);
                                }
                            }
                            acc
                        }
                        _ => {
                            let h = s.value(haystack, m);
                            s.call(H_IN_CIDR, &[n, h])
                        }
                    };
                    if negate {
                        let z = s.b.ins().icmp_imm_s(IntCC::Equal, found, 0);
                        s.bool(z)
                    } else {
                        found
                    }
                })
            }
            ExprKind::Matches(x, _) => {
                let re = self.konst();
                self.maybe_guarded(e, |s, m| {
                    let v = s.value(x, m);
                    s.call(H_MATCHES, &[re, v])
                })
            }
            ExprKind::StartsWith(x, y) | ExprKind::EndsWith(x, y) => {
                let h = if matches!(e.kind, ExprKind::StartsWith(..)) {
                    H_STARTS
                } else {
                    H_ENDS
                };
                self.maybe_guarded(e, |s, m| {
                    let a = s.value(x, m);
                    let b = s.value(y, m);
                    s.call(h, &[a, b])
                })
            }
            ExprKind::Arith(op, x, y) => {
                let a = self.value(x, miss);
                let b = self.value(y, miss);
                match op {
                    ArithOp::Add => self.b.ins().iadd(a, b),
                    ArithOp::Sub => self.b.ins().isub(a, b),
                    ArithOp::Mul => self.b.ins().imul(a, b),
                    ArithOp::Div | ArithOp::Rem => self.divide(*op, a, b),
                }
            }
            ExprKind::Concat(x, y) => {
                let (xc, yc) = (
                    type_code(&x.ty).unwrap_or(-1),
                    type_code(&y.ty).unwrap_or(-1),
                );
                let a = self.value(x, miss);
                let b = self.value(y, miss);
                let (xc, yc) = (self.b.ins().iconst(I64, xc), self.b.ins().iconst(I64, yc));
                self.call(H_CONCAT, &[xc, a, yc, b])
            }
            ExprKind::Call(f, args) => {
                let x = &args[0];
                let v = self.value(x, miss);
                match (f, &x.ty) {
                    (Func::Lower, Type::String) => self.call(H_LOWER, &[v]),
                    (Func::Lower, _) => v,
                    (Func::Len, _) => self.call(H_LEN, &[v]),
                    (Func::Hash, t) => {
                        let c = self.b.ins().iconst(I64, type_code(t).unwrap_or(-1));
                        self.call(H_HASH, &[c, v])
                    }
                }
            }
            // The plan refuses lists elsewhere; never reached.
            ExprKind::List(_) => self.b.ins().iconst(I64, 0),
        }
    }

    /// `/` and `%` as the language defines them: 0 for a zero divisor, and
    /// MIN / -1 wraps (MIN % -1 is 0), where the machine would trap.
    pub(super) fn divide(&mut self, op: ArithOp, a: CVal, b: CVal) -> CVal {
        let out = self.b.create_block();
        self.b.append_block_param(out, I64);
        let (nonzero, normal) = (self.b.create_block(), self.b.create_block());
        let zero = self.b.ins().iconst(I64, 0);
        self.b
            .ins()
            .brif(b, nonzero, &[], out, &[BlockArg::Value(zero)]);
        self.b.switch_to_block(nonzero);
        self.b.seal_block(nonzero);
        let minus1 = self.b.ins().icmp_imm_s(IntCC::Equal, b, -1);
        let special = if op == ArithOp::Div {
            self.b.ins().ineg(a)
        } else {
            self.b.ins().iconst(I64, 0)
        };
        self.b
            .ins()
            .brif(minus1, out, &[BlockArg::Value(special)], normal, &[]);
        self.b.switch_to_block(normal);
        self.b.seal_block(normal);
        let r = if op == ArithOp::Div {
            self.b.ins().sdiv(a, b)
        } else {
            self.b.ins().srem(a, b)
        };
        self.b.ins().jump(out, &[BlockArg::Value(r)]);
        self.b.switch_to_block(out);
        self.b.seal_block(out);
        self.b.block_params(out)[0]
    }

    pub(super) fn local(&mut self, l: u32) -> (Variable, Variable) {
        if let Some(v) = self.locals.get(&l) {
            return *v;
        }
        let val = self.b.declare_var(I64);
        let present = self.b.declare_var(I64);
        let z = self.b.ins().iconst(I64, 0);
        self.b.def_var(val, z);
        self.b.def_var(present, z);
        self.locals.insert(l, (val, present));
        (val, present)
    }

    pub(super) fn stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            match s {
                Stmt::If {
                    cond,
                    then_body,
                    else_body,
                } => {
                    let c = self.cond(cond);
                    let (t, f, join) = (
                        self.b.create_block(),
                        self.b.create_block(),
                        self.b.create_block(),
                    );
                    self.b.ins().brif(c, t, &[], f, &[]);
                    self.b.switch_to_block(t);
                    self.b.seal_block(t);
                    self.stmts(then_body);
                    self.b.ins().jump(join, &[]);
                    self.b.switch_to_block(f);
                    self.b.seal_block(f);
                    self.stmts(else_body);
                    self.b.ins().jump(join, &[]);
                    self.b.switch_to_block(join);
                    self.b.seal_block(join);
                }
                Stmt::Let { local, value } => {
                    let (val, present) = self.local(*local);
                    let done = self.b.create_block();
                    let miss = self.b.create_block();
                    let v = self.value(value, miss);
                    self.b.def_var(val, v);
                    let one = self.b.ins().iconst(I64, 1);
                    self.b.def_var(present, one);
                    self.b.ins().jump(done, &[]);
                    self.b.switch_to_block(miss);
                    self.b.seal_block(miss);
                    let z = self.b.ins().iconst(I64, 0);
                    self.b.def_var(present, z);
                    self.b.ins().jump(done, &[]);
                    self.b.switch_to_block(done);
                    self.b.seal_block(done);
                }
                Stmt::Then { action, .. } => {
                    self.then(action);
                    // Code after a `then` is unreachable (the checker says
                    // so); give it a block of its own.
                    let dead = self.b.create_block();
                    self.b.switch_to_block(dead);
                    self.b.seal_block(dead);
                }
            }
        }
    }

    pub(super) fn then(&mut self, a: &Action) {
        if let Action::Value(e) = a {
            if !matches!(e.kind, ExprKind::Lit(_)) {
                let end = self.end;
                let v = self.value(e, end);
                let c = self.b.ins().iconst(I64, type_code(&e.ty).unwrap_or(-1));
                let r = self.call(H_SET_VALUE, &[c, v]);
                self.b.ins().return_(&[r]);
                return;
            }
        }
        if let Some((_, Some(key))) = a.keyed_pool() {
            let id = self.konst();
            let end = self.end;
            let k = self.value(key, end);
            let r = self.call(H_SET_KEY, &[id, k]);
            self.b.ins().return_(&[r]);
            return;
        }
        match a.static_verdict() {
            Ok(Some(_)) => {
                let id = self.konst();
                self.b.ins().return_(&[id]);
            }
            _ => {
                let end = self.end;
                self.b.ins().jump(end, &[]);
            }
        }
    }
}

pub(super) fn isa_module() -> Result<JITModule, JitError> {
    let mut flags = settings::builder();
    flags.set("opt_level", "speed").map_err(err)?;
    flags.set("use_colocated_libcalls", "false").map_err(err)?;
    flags.set("is_pic", "false").map_err(err)?;
    let isa = cranelift_native::builder()
        .map_err(err)?
        .finish(settings::Flags::new(flags))
        .map_err(err)?;
    let mut jb = JITBuilder::with_isa(isa, default_libcall_names());
    for (name, ptr, _) in helpers() {
        jb.symbol(name, ptr);
    }
    Ok(JITModule::new(jb))
}
