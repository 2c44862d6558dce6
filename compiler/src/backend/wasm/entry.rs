//! The module's entry points: the ABI exports (`dnspolicy_abi_version`,
//! `alloc`, `init`, `process`, `destroy`) and the getters that fetch a
//! context field or injected variable once per evaluation. `process` is the
//! rule index inside the module: it merges the candidate rule lists of the
//! query name and calls the rules in priority order.

use super::*;

impl Emitter<'_> {
    // ---- exports -------------------------------------------------------

    pub(super) fn abi_fn(&mut self) -> (u32, Function) {
        let t = self.ty(&[], &[ValType::I32]);
        let mut b = Body::new(0);
        b.i(I::I32Const(abi::ABI_VERSION));
        (t, b.finish())
    }

    pub(super) fn alloc_fn(&mut self) -> (u32, Function) {
        let t = self.ty(&[ValType::I32], &[ValType::I32]);
        let mut b = Body::new(1);
        let p = b.local(ValType::I32);
        let end = b.local(ValType::I32);
        b.i(I::GlobalGet(G_HEAP)).i(I::LocalSet(p));
        b.i(I::LocalGet(p))
            .i(I::LocalGet(0))
            .i(I::I32Const(7))
            .i(I::I32Add)
            .i(I::I32Const(-8))
            .i(I::I32And)
            .i(I::I32Add)
            .i(I::LocalSet(end));
        grow_to(&mut b, end, |b| {
            b.i(I::I32Const(0)).i(I::Return);
        });
        b.i(I::LocalGet(end)).i(I::GlobalSet(G_HEAP));
        b.i(I::LocalGet(end)).i(I::GlobalSet(G_SP));
        b.i(I::LocalGet(p));
        (t, b.finish())
    }

    pub(super) fn init_fn(&mut self) -> (u32, Function) {
        let t = self.ty(&[ValType::I32, ValType::I32], &[ValType::I32]);
        let mut b = Body::new(2);
        b.i(I::I32Const(0));
        (t, b.finish())
    }

    pub(super) fn destroy_fn(&mut self) -> (u32, Function) {
        let t = self.ty(&[], &[]);
        (t, Body::new(0).finish())
    }

    pub(super) fn process_fn(
        &mut self,
        getters: &[u32],
        vtab: u32,
        (always_ptr, always_n): (u32, u32),
        lists: u32,
        (rule_ty, rule_shape, rule_k): (u32, u32, u32),
    ) -> (u32, Function) {
        let t = self.ty(&[ValType::I32, ValType::I32], &[ValType::I32]);
        let mut b = Body::new(2);
        let (nl, name, rest_p, rest_n, strict, j, best, bi, v, r, dot) = (
            b.local(ValType::I32),
            b.local(ValType::I64),
            b.local(ValType::I32),
            b.local(ValType::I32),
            b.local(ValType::I32),
            b.local(ValType::I32),
            b.local(ValType::I32),
            b.local(ValType::I32),
            b.local(ValType::I32),
            b.local(ValType::I32),
            b.local(ValType::I32),
        );
        // A new evaluation: scratch from the top of the heap, nothing cached.
        b.i(I::GlobalGet(G_HEAP)).i(I::GlobalSet(G_SP));
        for id in getters {
            let g = &self.getters[id];
            b.i(I::I32Const(0)).i(I::GlobalSet(g.state));
        }
        // lists[0] = the rules that always run.
        b.i(I::I32Const(lists as i32))
            .i(I::I32Const(always_ptr as i32))
            .i(I::I32Store(mem(0, 2)))
            .i(I::I32Const(lists as i32))
            .i(I::I32Const((always_ptr + 4 * always_n) as i32))
            .i(I::I32Store(mem(4, 2)))
            .i(I::I32Const(1))
            .i(I::LocalSet(nl));
        let qn = &self.getters[&(Field::QueryName as u32)];
        let (qn_func, qn_state) = (qn.func, qn.state);
        let tbl = (self.tbl as i32, self.tbl_mask as i32);
        // push(kind, ptr, len): a lookup that hits adds its rule list.
        let push = |b: &mut Body, kind: i32, p: u32, n: u32| {
            b.i(I::I32Const(tbl.0))
                .i(I::I32Const(tbl.1))
                .i(I::I32Const(kind))
                .i(I::LocalGet(p))
                .i(I::LocalGet(n))
                .i(I::Call(helper(H::TblFind)))
                .i(I::LocalTee(v));
            b.if_(BlockType::Empty);
            // lists[nl] = (list ptr, list end)
            b.i(I::I32Const(lists as i32))
                .i(I::LocalGet(nl))
                .i(I::I32Const(8))
                .i(I::I32Mul)
                .i(I::I32Add)
                .i(I::LocalTee(j))
                .i(I::LocalGet(v))
                .i(I::I32Load(mem(16, 2)))
                .i(I::I32Store(mem(0, 2)))
                .i(I::LocalGet(j))
                .i(I::LocalGet(v))
                .i(I::I32Load(mem(16, 2)))
                .i(I::LocalGet(v))
                .i(I::I32Load(mem(20, 2)))
                .i(I::I32Const(4))
                .i(I::I32Mul)
                .i(I::I32Add)
                .i(I::I32Store(mem(4, 2)))
                .i(I::LocalGet(nl))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalSet(nl));
            // Past the bound, later lists overwrite the last (names have at
            // most 127 labels, so 3 lists per label never reach it).
            b.i(I::LocalGet(nl))
                .i(I::I32Const(MAX_LISTS as i32 - 1))
                .i(I::I32GtU);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(MAX_LISTS as i32 - 1)).i(I::LocalSet(nl));
            b.end();
            b.end();
        };
        if !self.p.index.entries().0.is_empty() {
            b.i(I::Call(qn_func)).i(I::LocalSet(name));
            b.i(I::GlobalGet(qn_state)).i(I::I32Const(1)).i(I::I32Eq);
            b.if_(BlockType::Empty);
            b.i(I::LocalGet(name))
                .i(I::I64Const(32))
                .i(I::I64ShrU)
                .i(I::I32WrapI64)
                .i(I::LocalSet(rest_p))
                .i(I::LocalGet(name))
                .i(I::I32WrapI64)
                .i(I::LocalSet(rest_n));
            push(&mut b, 1, rest_p, rest_n);
            let done = b.block(BlockType::Empty);
            let walk = b.loop_();
            push(&mut b, 2, rest_p, rest_n);
            b.i(I::LocalGet(strict));
            b.if_(BlockType::Empty);
            push(&mut b, 3, rest_p, rest_n);
            b.end();
            b.i(I::LocalGet(rest_n)).i(I::I32Eqz);
            b.br_if(done);
            // rest = after the first '.', or "".
            b.i(I::I32Const(0)).i(I::LocalSet(dot));
            let found = b.block(BlockType::Empty);
            let scan = b.loop_();
            b.i(I::LocalGet(dot)).i(I::LocalGet(rest_n)).i(I::I32GeU);
            b.br_if(found);
            b.i(I::LocalGet(rest_p))
                .i(I::LocalGet(dot))
                .i(I::I32Add)
                .i(I::I32Load8U(mem(0, 0)))
                .i(I::I32Const(i32::from(b'.')))
                .i(I::I32Eq);
            b.br_if(found);
            b.i(I::LocalGet(dot))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalSet(dot));
            b.br(scan);
            b.end();
            b.end();
            b.i(I::LocalGet(dot)).i(I::LocalGet(rest_n)).i(I::I32GeU);
            b.if_(BlockType::Empty);
            b.i(I::LocalGet(rest_p))
                .i(I::LocalGet(rest_n))
                .i(I::I32Add)
                .i(I::LocalSet(rest_p))
                .i(I::I32Const(0))
                .i(I::LocalSet(rest_n));
            b.i(I::Else);
            b.i(I::LocalGet(rest_p))
                .i(I::LocalGet(dot))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::I32Add)
                .i(I::LocalSet(rest_p))
                .i(I::LocalGet(rest_n))
                .i(I::LocalGet(dot))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::I32Sub)
                .i(I::LocalSet(rest_n));
            b.end();
            b.i(I::I32Const(1)).i(I::LocalSet(strict));
            b.br(walk);
            b.end();
            b.end();
            b.end();
        }
        // Merge the sorted lists: the smallest rule index first, each once.
        let next = b.loop_();
        b.i(I::I32Const(-1)).i(I::LocalSet(best));
        b.i(I::I32Const(-1)).i(I::LocalSet(bi));
        for pass in 0..2 {
            b.i(I::I32Const(0)).i(I::LocalSet(j));
            let over = b.block(BlockType::Empty);
            let each = b.loop_();
            b.i(I::LocalGet(j)).i(I::LocalGet(nl)).i(I::I32GeU);
            b.br_if(over);
            // v = &lists[j]
            b.i(I::I32Const(lists as i32))
                .i(I::LocalGet(j))
                .i(I::I32Const(8))
                .i(I::I32Mul)
                .i(I::I32Add)
                .i(I::LocalSet(v));
            b.i(I::LocalGet(v))
                .i(I::I32Load(mem(0, 2)))
                .i(I::LocalGet(v))
                .i(I::I32Load(mem(4, 2)))
                .i(I::I32LtU);
            b.if_(BlockType::Empty);
            if pass == 0 {
                b.i(I::LocalGet(v))
                    .i(I::I32Load(mem(0, 2)))
                    .i(I::I32Load(mem(0, 2)))
                    .i(I::LocalTee(r))
                    .i(I::LocalGet(best))
                    .i(I::I32LtU);
                b.if_(BlockType::Empty);
                b.i(I::LocalGet(r)).i(I::LocalSet(best));
                b.i(I::LocalGet(j)).i(I::LocalSet(bi));
                b.end();
            } else {
                b.i(I::LocalGet(v))
                    .i(I::I32Load(mem(0, 2)))
                    .i(I::I32Load(mem(0, 2)))
                    .i(I::LocalGet(best))
                    .i(I::I32Eq);
                b.if_(BlockType::Empty);
                b.i(I::LocalGet(v))
                    .i(I::LocalGet(v))
                    .i(I::I32Load(mem(0, 2)))
                    .i(I::I32Const(4))
                    .i(I::I32Add)
                    .i(I::I32Store(mem(0, 2)));
                b.end();
            }
            b.end();
            b.i(I::LocalGet(j))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalSet(j));
            b.br(each);
            b.end();
            b.end();
            if pass == 0 {
                // Every list is done: no rule decided.
                b.i(I::LocalGet(bi)).i(I::I32Const(-1)).i(I::I32Eq);
                b.if_(BlockType::Empty);
                b.i(I::I32Const(0)).i(I::Return);
                b.end();
            }
        }
        // The rule's constants, then its shape's function.
        for table in [rule_k, rule_shape] {
            b.i(I::I32Const(table as i32))
                .i(I::LocalGet(best))
                .i(I::I32Const(4))
                .i(I::I32Mul)
                .i(I::I32Add)
                .i(I::I32Load(mem(0, 2)));
        }
        b.i(I::CallIndirect {
            type_index: rule_ty,
            table_index: 0,
        });
        b.i(I::LocalTee(r)).i(I::I32Const(0)).i(I::I32GeS);
        b.if_(BlockType::Empty);
        b.i(I::I32Const(vtab as i32))
            .i(I::LocalGet(r))
            .i(I::I32Const(8))
            .i(I::I32Mul)
            .i(I::I32Add)
            .i(I::LocalTee(v))
            .i(I::I32Load(mem(0, 2)))
            .i(I::LocalGet(v))
            .i(I::I32Load(mem(4, 2)))
            .i(I::LocalGet(best))
            .i(I::Call(F_SET_VERDICT));
        // The host refused the verdict: a plugin error, not a decision.
        b.i(I::I32Const(0)).i(I::I32LtS);
        b.if_(BlockType::Empty);
        b.i(I::I32Const(-1)).i(I::Return);
        b.end();
        b.i(I::I32Const(1)).i(I::Return);
        b.end();
        b.i(I::LocalGet(r)).i(I::I32Const(-2)).i(I::I32Eq);
        b.if_(BlockType::Empty);
        b.i(I::I32Const(1)).i(I::Return);
        b.end();
        b.i(I::LocalGet(r)).i(I::I32Const(-3)).i(I::I32Eq);
        b.if_(BlockType::Empty);
        b.i(I::I32Const(-1)).i(I::Return);
        b.end();
        b.br(next);
        b.end();
        b.i(I::I32Const(0));
        (t, b.finish())
    }

    // ---- getters -------------------------------------------------------

    pub(super) fn getter_fn(&mut self, id: u32) -> (u32, Function) {
        let g = &self.getters[&id];
        let (state, val, ty) = (g.state, g.val, g.ty.clone());
        let vt = repr(&ty).unwrap_or(ValType::I32);
        let t = self.ty(&[], &[vt]);
        let mut b = Body::new(0);
        let len = b.local(ValType::I32);
        let cap = b.local(ValType::I32);
        b.i(I::GlobalGet(state)).i(I::I32Eqz);
        b.if_(BlockType::Empty);
        let done = b.block(BlockType::Empty);
        if abi::type_code(&ty).is_none() {
            b.i(I::I32Const(2)).i(I::GlobalSet(state));
            b.br(done);
        }
        let retry = b.loop_();
        // cap = memory end - sp
        b.i(I::MemorySize(0))
            .i(I::I32Const(16))
            .i(I::I32Shl)
            .i(I::GlobalGet(G_SP))
            .i(I::I32Sub)
            .i(I::LocalSet(cap));
        b.i(I::I32Const(id as i32))
            .i(I::GlobalGet(G_SP))
            .i(I::LocalGet(cap))
            .i(I::Call(F_GET_FIELD))
            .i(I::LocalTee(len))
            .i(I::I32Const(0))
            .i(I::I32LtS);
        b.if_(BlockType::Empty);
        b.i(I::I32Const(2)).i(I::GlobalSet(state));
        b.br(done);
        b.end();
        b.i(I::LocalGet(len)).i(I::LocalGet(cap)).i(I::I32GtU);
        b.if_(BlockType::Empty);
        b.i(I::LocalGet(len))
            .i(I::LocalGet(cap))
            .i(I::I32Sub)
            .i(I::I32Const(16))
            .i(I::I32ShrU)
            .i(I::I32Const(1))
            .i(I::I32Add)
            .i(I::MemoryGrow(0))
            .i(I::I32Const(-1))
            .i(I::I32Eq);
        b.if_(BlockType::Empty);
        b.i(I::I32Const(2)).i(I::GlobalSet(state));
        b.br(done);
        b.end();
        b.br(retry);
        b.end();
        b.end();
        // Decode.
        match ty {
            Type::Bool => {
                b.i(I::GlobalGet(G_SP)).i(I::I32Load8U(mem(0, 0)));
            }
            Type::Int | Type::Qtype => {
                b.i(I::GlobalGet(G_SP)).i(I::I64Load(mem(0, 0)));
            }
            Type::String | Type::Name => {
                b.i(I::GlobalGet(G_SP))
                    .i(I::I64ExtendI32U)
                    .i(I::I64Const(32))
                    .i(I::I64Shl)
                    .i(I::LocalGet(len))
                    .i(I::I64ExtendI32U)
                    .i(I::I64Or);
            }
            _ => {
                b.i(I::GlobalGet(G_SP));
            }
        }
        b.i(I::GlobalSet(val));
        b.i(I::I32Const(1)).i(I::GlobalSet(state));
        b.i(I::GlobalGet(G_SP))
            .i(I::LocalGet(len))
            .i(I::I32Const(7))
            .i(I::I32Add)
            .i(I::I32Const(-8))
            .i(I::I32And)
            .i(I::I32Add)
            .i(I::GlobalSet(G_SP));
        b.end();
        b.end();
        b.i(I::GlobalGet(val));
        (t, b.finish())
    }
}
