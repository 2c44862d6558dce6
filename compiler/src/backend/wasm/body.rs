//! The function builder: a WASM function body with structured-control
//! label bookkeeping, and the small instruction sequences every lowering
//! step uses (memory arguments, packed strings, growing memory).

use super::*;

pub(super) fn mem(offset: u64, align: u32) -> MemArg {
    MemArg {
        offset,
        align,
        target: wasm_encoder::MemArgTarget::Memory(0),
        ordering: None,
    }
}

/// A function body with structured-control label bookkeeping.
pub(super) struct Body {
    pub(super) insns: Vec<I<'static>>,
    pub(super) params: u32,
    pub(super) locals: Vec<ValType>,
    pub(super) depth: u32,
}

impl Body {
    pub(super) fn new(params: u32) -> Body {
        Body {
            insns: Vec::new(),
            params,
            locals: Vec::new(),
            depth: 0,
        }
    }
    pub(super) fn i(&mut self, i: I<'static>) -> &mut Self {
        self.insns.push(i);
        self
    }
    pub(super) fn local(&mut self, t: ValType) -> u32 {
        self.locals.push(t);
        self.params + self.locals.len() as u32 - 1
    }
    pub(super) fn open(&mut self, i: I<'static>) -> u32 {
        self.insns.push(i);
        self.depth += 1;
        self.depth
    }
    pub(super) fn block(&mut self, bt: BlockType) -> u32 {
        self.open(I::Block(bt))
    }
    pub(super) fn if_(&mut self, bt: BlockType) -> u32 {
        self.open(I::If(bt))
    }
    pub(super) fn loop_(&mut self) -> u32 {
        self.open(I::Loop(BlockType::Empty))
    }
    pub(super) fn end(&mut self) {
        self.insns.push(I::End);
        self.depth -= 1;
    }
    pub(super) fn br(&mut self, label: u32) {
        let d = self.depth - label;
        self.insns.push(I::Br(d));
    }
    pub(super) fn br_if(&mut self, label: u32) {
        let d = self.depth - label;
        self.insns.push(I::BrIf(d));
    }
    pub(super) fn finish(mut self) -> Function {
        self.insns.push(I::End);
        let mut f = Function::new(self.locals.iter().map(|t| (1, *t)));
        for i in &self.insns {
            f.instruction(i);
        }
        f
    }
}

/// Grows memory so that address `end` (a local) is inside it; runs `fail`
/// when the memory cannot grow.
pub(super) fn grow_to(b: &mut Body, end: u32, fail: impl FnOnce(&mut Body)) {
    b.i(I::LocalGet(end))
        .i(I::MemorySize(0))
        .i(I::I32Const(16))
        .i(I::I32Shl)
        .i(I::I32GtU);
    b.if_(BlockType::Empty);
    b.i(I::LocalGet(end))
        .i(I::MemorySize(0))
        .i(I::I32Const(16))
        .i(I::I32Shl)
        .i(I::I32Sub)
        .i(I::I32Const(16))
        .i(I::I32ShrU)
        .i(I::I32Const(1))
        .i(I::I32Add)
        .i(I::MemoryGrow(0))
        .i(I::I32Const(-1))
        .i(I::I32Eq);
    b.if_(BlockType::Empty);
    fail(b);
    b.end();
    b.end();
}

/// Pushes the (ptr, len) of a packed string local.
pub(super) fn unpack(b: &mut Body, s: u32) {
    b.i(I::LocalGet(s))
        .i(I::I64Const(32))
        .i(I::I64ShrU)
        .i(I::I32WrapI64)
        .i(I::LocalGet(s))
        .i(I::I32WrapI64);
}

pub(super) fn packed(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

pub(super) fn repr(t: &Type) -> Option<ValType> {
    Some(match t {
        Type::Bool | Type::Ip | Type::Cidr => ValType::I32,
        Type::Int | Type::Qtype | Type::String | Type::Name => ValType::I64,
        _ => return None,
    })
}

/// Pushes the pointer half of a packed string parameter/local.
pub(super) fn ptr(b: &mut Body, s: u32) {
    b.i(I::LocalGet(s))
        .i(I::I64Const(32))
        .i(I::I64ShrU)
        .i(I::I32WrapI64);
}
