//! The module's runtime library: helper functions written in WASM (byte
//! and name comparison, CIDR containment, wrapping division, `hash()` bit
//! for bit, UTF-8 length, the lookup table's probe), emitted once per
//! module right after the imports, in [`HELPERS`] order.

use super::*;

#[derive(Clone, Copy)]
#[repr(u32)]
pub(super) enum H {
    MemEq,
    StrEq,
    NamePrefix,
    NameSuffix,
    StrPrefix,
    StrSuffix,
    CidrContains,
    CidrCovers,
    CidrListHasIp,
    CidrListCovers,
    Div,
    Rem,
    FnvByte,
    FnvBytes,
    Finish,
    HashMem,
    HashIpBlob,
    HashCidrBlob,
    HashI64,
    HashBool,
    HashQtype,
    Utf8Len,
    Hash32,
    TblFind,
    NameSetHas,
}
/// Every helper, in function-index order.
pub(super) const HELPERS: [H; 25] = [
    H::MemEq,
    H::StrEq,
    H::NamePrefix,
    H::NameSuffix,
    H::StrPrefix,
    H::StrSuffix,
    H::CidrContains,
    H::CidrCovers,
    H::CidrListHasIp,
    H::CidrListCovers,
    H::Div,
    H::Rem,
    H::FnvByte,
    H::FnvBytes,
    H::Finish,
    H::HashMem,
    H::HashIpBlob,
    H::HashCidrBlob,
    H::HashI64,
    H::HashBool,
    H::HashQtype,
    H::Utf8Len,
    H::Hash32,
    H::TblFind,
    H::NameSetHas,
];
pub(super) const N_HELPERS: u32 = HELPERS.len() as u32;

pub(super) fn helper(h: H) -> u32 {
    N_IMPORTS + h as u32
}

impl Emitter<'_> {
    pub(super) fn helper_fn(&mut self, h: u32) -> (u32, Function) {
        use ValType::{I32, I64};
        let which = HELPERS[h as usize];
        let (params, results): (&[ValType], &[ValType]) = match which {
            H::MemEq => (&[I32, I32, I32], &[I32]),
            H::StrEq | H::NamePrefix | H::NameSuffix | H::StrPrefix | H::StrSuffix => {
                (&[I64, I64], &[I32])
            }
            H::CidrContains | H::CidrCovers => (&[I32, I32], &[I32]),
            H::CidrListHasIp | H::CidrListCovers => (&[I32, I32, I32], &[I32]),
            H::Div | H::Rem => (&[I64, I64], &[I64]),
            H::FnvByte => (&[I64, I32], &[I64]),
            H::FnvBytes => (&[I64, I32, I32], &[I64]),
            H::Finish => (&[I64], &[I64]),
            H::HashMem => (&[I32, I32, I32], &[I64]),
            H::HashIpBlob | H::HashCidrBlob | H::HashBool => (&[I32], &[I64]),
            H::HashI64 | H::HashQtype => (&[I64], &[I64]),
            H::Utf8Len => (&[I64], &[I64]),
            H::Hash32 => (&[I32, I32, I32], &[I32]),
            H::TblFind => (&[I32, I32, I32, I32, I32], &[I32]),
            H::NameSetHas => (&[I32, I32, I32, I64], &[I32]),
        };
        let t = self.ty(params, results);
        let mut b = Body::new(params.len() as u32);
        helper_body(which, &mut b);
        (t, b.finish())
    }
}

pub(super) const FNV_OFFSET: i64 = 0xcbf2_9ce4_8422_2325_u64 as i64;
pub(super) const FNV_PRIME: i64 = 0x0000_0100_0000_01b3;

/// The bodies of the helper functions (parameters are locals 0..).
pub(super) fn helper_body(h: H, b: &mut Body) {
    match h {
        H::MemEq => {
            // (p, q, n) -> bytes equal
            let i = b.local(ValType::I32);
            let out = b.block(BlockType::Empty);
            let top = b.loop_();
            b.i(I::LocalGet(i)).i(I::LocalGet(2)).i(I::I32GeU);
            b.br_if(out);
            b.i(I::LocalGet(0))
                .i(I::LocalGet(i))
                .i(I::I32Add)
                .i(I::I32Load8U(mem(0, 0)))
                .i(I::LocalGet(1))
                .i(I::LocalGet(i))
                .i(I::I32Add)
                .i(I::I32Load8U(mem(0, 0)))
                .i(I::I32Ne);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(0)).i(I::Return);
            b.end();
            b.i(I::LocalGet(i))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalSet(i));
            b.br(top);
            b.end();
            b.end();
            b.i(I::I32Const(1));
        }
        H::StrEq => {
            // lengths equal && bytes equal
            b.i(I::LocalGet(0))
                .i(I::I32WrapI64)
                .i(I::LocalGet(1))
                .i(I::I32WrapI64)
                .i(I::I32Ne);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(0)).i(I::Return);
            b.end();
            ptr(b, 0);
            ptr(b, 1);
            b.i(I::LocalGet(0))
                .i(I::I32WrapI64)
                .i(I::Call(helper(H::MemEq)));
        }
        H::NamePrefix | H::NameSuffix | H::StrPrefix | H::StrSuffix => {
            let name = matches!(h, H::NamePrefix | H::NameSuffix);
            let suffix = matches!(h, H::NameSuffix | H::StrSuffix);
            let (al, bl) = (b.local(ValType::I32), b.local(ValType::I32));
            b.i(I::LocalGet(0)).i(I::I32WrapI64).i(I::LocalSet(al));
            b.i(I::LocalGet(1)).i(I::I32WrapI64).i(I::LocalSet(bl));
            if name {
                // The empty name (the root) is a prefix/suffix of every name.
                b.i(I::LocalGet(bl)).i(I::I32Eqz);
                b.if_(BlockType::Empty);
                b.i(I::I32Const(1)).i(I::Return);
                b.end();
            }
            b.i(I::LocalGet(al)).i(I::LocalGet(bl)).i(I::I32LtU);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(0)).i(I::Return);
            b.end();
            // where the part compared starts in a
            ptr(b, 0);
            if suffix {
                b.i(I::LocalGet(al))
                    .i(I::LocalGet(bl))
                    .i(I::I32Sub)
                    .i(I::I32Add);
            }
            ptr(b, 1);
            b.i(I::LocalGet(bl)).i(I::Call(helper(H::MemEq)));
            if name {
                // ... and a label boundary, unless the lengths are equal.
                b.if_(BlockType::Result(ValType::I32));
                b.i(I::LocalGet(al)).i(I::LocalGet(bl)).i(I::I32Eq);
                b.if_(BlockType::Result(ValType::I32));
                b.i(I::I32Const(1));
                b.i(I::Else);
                ptr(b, 0);
                if suffix {
                    b.i(I::LocalGet(al))
                        .i(I::LocalGet(bl))
                        .i(I::I32Sub)
                        .i(I::I32Const(1))
                        .i(I::I32Sub)
                        .i(I::I32Add);
                } else {
                    b.i(I::LocalGet(bl)).i(I::I32Add);
                }
                b.i(I::I32Load8U(mem(0, 0)))
                    .i(I::I32Const(i32::from(b'.')))
                    .i(I::I32Eq);
                b.end();
                b.i(I::Else);
                b.i(I::I32Const(0));
                b.end();
            }
        }
        H::CidrContains => {
            // (cidr blob, ip blob): same family, the first len bits equal
            let (len, full) = (b.local(ValType::I32), b.local(ValType::I32));
            b.i(I::LocalGet(0))
                .i(I::I32Load8U(mem(0, 0)))
                .i(I::LocalGet(1))
                .i(I::I32Load8U(mem(0, 0)))
                .i(I::I32Ne);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(0)).i(I::Return);
            b.end();
            b.i(I::LocalGet(0))
                .i(I::I32Load8U(mem(17, 0)))
                .i(I::LocalSet(len));
            b.i(I::LocalGet(len))
                .i(I::I32Const(3))
                .i(I::I32ShrU)
                .i(I::LocalSet(full));
            b.i(I::LocalGet(0))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalGet(1))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalGet(full))
                .i(I::Call(helper(H::MemEq)))
                .i(I::I32Eqz);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(0)).i(I::Return);
            b.end();
            b.i(I::LocalGet(len))
                .i(I::I32Const(7))
                .i(I::I32And)
                .i(I::I32Eqz);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(1)).i(I::Return);
            b.end();
            // (ip byte & mask) == cidr byte, mask = 0xff << (8 - len % 8)
            b.i(I::LocalGet(1))
                .i(I::LocalGet(full))
                .i(I::I32Add)
                .i(I::I32Load8U(mem(1, 0)))
                .i(I::I32Const(0xff))
                .i(I::I32Const(8))
                .i(I::LocalGet(len))
                .i(I::I32Const(7))
                .i(I::I32And)
                .i(I::I32Sub)
                .i(I::I32Shl)
                .i(I::I32And)
                .i(I::I32Const(0xff))
                .i(I::I32And)
                .i(I::LocalGet(0))
                .i(I::LocalGet(full))
                .i(I::I32Add)
                .i(I::I32Load8U(mem(1, 0)))
                .i(I::I32Eq);
        }
        H::CidrCovers => {
            // (outer, inner): inner.len >= outer.len && outer contains inner.addr
            b.i(I::LocalGet(1))
                .i(I::I32Load8U(mem(17, 0)))
                .i(I::LocalGet(0))
                .i(I::I32Load8U(mem(17, 0)))
                .i(I::I32LtU);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(0)).i(I::Return);
            b.end();
            b.i(I::LocalGet(0))
                .i(I::LocalGet(1))
                .i(I::Call(helper(H::CidrContains)));
        }
        H::CidrListHasIp | H::CidrListCovers => {
            // (array of cidr blobs, count, needle)
            let i = b.local(ValType::I32);
            let out = b.block(BlockType::Empty);
            let top = b.loop_();
            b.i(I::LocalGet(i)).i(I::LocalGet(1)).i(I::I32GeU);
            b.br_if(out);
            b.i(I::LocalGet(0))
                .i(I::LocalGet(i))
                .i(I::I32Const(18))
                .i(I::I32Mul)
                .i(I::I32Add)
                .i(I::LocalGet(2))
                .i(I::Call(helper(if matches!(h, H::CidrListHasIp) {
                    H::CidrContains
                } else {
                    H::CidrCovers
                })));
            b.if_(BlockType::Empty);
            b.i(I::I32Const(1)).i(I::Return);
            b.end();
            b.i(I::LocalGet(i))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalSet(i));
            b.br(top);
            b.end();
            b.end();
            b.i(I::I32Const(0));
        }
        H::Div | H::Rem => {
            // 0 for a zero divisor; MIN / -1 wraps (and MIN % -1 is 0).
            b.i(I::LocalGet(1)).i(I::I64Eqz);
            b.if_(BlockType::Empty);
            b.i(I::I64Const(0)).i(I::Return);
            b.end();
            b.i(I::LocalGet(1)).i(I::I64Const(-1)).i(I::I64Eq);
            b.if_(BlockType::Empty);
            if matches!(h, H::Div) {
                b.i(I::I64Const(0))
                    .i(I::LocalGet(0))
                    .i(I::I64Sub)
                    .i(I::Return);
            } else {
                b.i(I::I64Const(0)).i(I::Return);
            }
            b.end();
            b.i(I::LocalGet(0))
                .i(I::LocalGet(1))
                .i(if matches!(h, H::Div) {
                    I::I64DivS
                } else {
                    I::I64RemS
                });
        }
        H::FnvByte => {
            b.i(I::LocalGet(0))
                .i(I::LocalGet(1))
                .i(I::I64ExtendI32U)
                .i(I::I64Xor)
                .i(I::I64Const(FNV_PRIME))
                .i(I::I64Mul);
        }
        H::FnvBytes => {
            let i = b.local(ValType::I32);
            let out = b.block(BlockType::Empty);
            let top = b.loop_();
            b.i(I::LocalGet(i)).i(I::LocalGet(2)).i(I::I32GeU);
            b.br_if(out);
            b.i(I::LocalGet(0))
                .i(I::LocalGet(1))
                .i(I::LocalGet(i))
                .i(I::I32Add)
                .i(I::I32Load8U(mem(0, 0)))
                .i(I::Call(helper(H::FnvByte)))
                .i(I::LocalSet(0));
            b.i(I::LocalGet(i))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalSet(i));
            b.br(top);
            b.end();
            b.end();
            b.i(I::LocalGet(0));
        }
        H::Finish => {
            // fmix64, then >> 1 so the result is never negative
            for (shift, mul) in [
                (33, Some(0xff51_afd7_ed55_8ccd_u64)),
                (33, Some(0xc4ce_b9fe_1a85_ec53_u64)),
                (33, None),
            ] {
                b.i(I::LocalGet(0))
                    .i(I::LocalGet(0))
                    .i(I::I64Const(shift))
                    .i(I::I64ShrU)
                    .i(I::I64Xor);
                if let Some(m) = mul {
                    b.i(I::I64Const(m as i64)).i(I::I64Mul);
                }
                b.i(I::LocalSet(0));
            }
            b.i(I::LocalGet(0)).i(I::I64Const(1)).i(I::I64ShrU);
        }
        H::HashMem => {
            // (tag, p, n)
            b.i(I::I64Const(FNV_OFFSET))
                .i(I::LocalGet(0))
                .i(I::Call(helper(H::FnvByte)))
                .i(I::LocalGet(1))
                .i(I::LocalGet(2))
                .i(I::Call(helper(H::FnvBytes)))
                .i(I::Call(helper(H::Finish)));
        }
        H::HashIpBlob | H::HashCidrBlob => {
            let cidr = matches!(h, H::HashCidrBlob);
            b.i(I::I64Const(FNV_OFFSET))
                .i(I::I32Const(if cidr { 6 } else { 5 }))
                .i(I::Call(helper(H::FnvByte)))
                .i(I::LocalGet(0))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::I32Const(4))
                .i(I::I32Const(16))
                .i(I::LocalGet(0))
                .i(I::I32Load8U(mem(0, 0)))
                .i(I::I32Const(4))
                .i(I::I32Eq)
                .i(I::Select)
                .i(I::Call(helper(H::FnvBytes)));
            if cidr {
                b.i(I::LocalGet(0))
                    .i(I::I32Load8U(mem(17, 0)))
                    .i(I::Call(helper(H::FnvByte)));
            }
            b.i(I::Call(helper(H::Finish)));
        }
        // A scalar is hashed from its bytes, stored at TEMP: tag 2 and 8
        // bytes for an int, tag 1 and 1 byte for a bool.
        H::HashI64 | H::HashBool => {
            let (store, tag, n) = match h {
                H::HashI64 => (I::I64Store(mem(0, 0)), 2, 8),
                _ => (I::I32Store8(mem(0, 0)), 1, 1),
            };
            b.i(I::I32Const(TEMP as i32))
                .i(I::LocalGet(0))
                .i(store)
                .i(I::I32Const(tag))
                .i(I::I32Const(TEMP as i32))
                .i(I::I32Const(n))
                .i(I::Call(helper(H::HashMem)));
        }
        H::HashQtype => {
            // two bytes, big-endian
            b.i(I::I32Const(TEMP as i32))
                .i(I::LocalGet(0))
                .i(I::I64Const(8))
                .i(I::I64ShrU)
                .i(I::I32WrapI64)
                .i(I::I32Store8(mem(0, 0)))
                .i(I::I32Const(TEMP as i32))
                .i(I::LocalGet(0))
                .i(I::I32WrapI64)
                .i(I::I32Store8(mem(1, 0)))
                .i(I::I32Const(7))
                .i(I::I32Const(TEMP as i32))
                .i(I::I32Const(2))
                .i(I::Call(helper(H::HashMem)));
        }
        H::Utf8Len => {
            // characters: bytes that are not UTF-8 continuation bytes
            let (i, n, c) = (
                b.local(ValType::I32),
                b.local(ValType::I32),
                b.local(ValType::I64),
            );
            b.i(I::LocalGet(0)).i(I::I32WrapI64).i(I::LocalSet(n));
            let out = b.block(BlockType::Empty);
            let top = b.loop_();
            b.i(I::LocalGet(i)).i(I::LocalGet(n)).i(I::I32GeU);
            b.br_if(out);
            ptr(b, 0);
            b.i(I::LocalGet(i))
                .i(I::I32Add)
                .i(I::I32Load8U(mem(0, 0)))
                .i(I::I32Const(0xc0))
                .i(I::I32And)
                .i(I::I32Const(0x80))
                .i(I::I32Ne)
                .i(I::I64ExtendI32U)
                .i(I::LocalGet(c))
                .i(I::I64Add)
                .i(I::LocalSet(c));
            b.i(I::LocalGet(i))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalSet(i));
            b.br(top);
            b.end();
            b.end();
            b.i(I::LocalGet(c));
        }
        H::Hash32 => {
            // (kind, p, n): FNV-1a 32
            let (hh, i) = (b.local(ValType::I32), b.local(ValType::I32));
            b.i(I::I32Const(0x811c_9dc5_u32 as i32))
                .i(I::LocalGet(0))
                .i(I::I32Xor)
                .i(I::I32Const(16_777_619))
                .i(I::I32Mul)
                .i(I::LocalSet(hh));
            let out = b.block(BlockType::Empty);
            let top = b.loop_();
            b.i(I::LocalGet(i)).i(I::LocalGet(2)).i(I::I32GeU);
            b.br_if(out);
            b.i(I::LocalGet(hh))
                .i(I::LocalGet(1))
                .i(I::LocalGet(i))
                .i(I::I32Add)
                .i(I::I32Load8U(mem(0, 0)))
                .i(I::I32Xor)
                .i(I::I32Const(16_777_619))
                .i(I::I32Mul)
                .i(I::LocalSet(hh));
            b.i(I::LocalGet(i))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalSet(i));
            b.br(top);
            b.end();
            b.end();
            b.i(I::LocalGet(hh));
        }
        H::TblFind => {
            // (tbl, mask, kind, p, n) -> slot address, or 0
            let (hh, i, s) = (
                b.local(ValType::I32),
                b.local(ValType::I32),
                b.local(ValType::I32),
            );
            b.i(I::LocalGet(2))
                .i(I::LocalGet(3))
                .i(I::LocalGet(4))
                .i(I::Call(helper(H::Hash32)))
                .i(I::LocalTee(hh))
                .i(I::LocalGet(1))
                .i(I::I32And)
                .i(I::LocalSet(i));
            let top = b.loop_();
            b.i(I::LocalGet(0))
                .i(I::LocalGet(i))
                .i(I::I32Const(SLOT as i32))
                .i(I::I32Mul)
                .i(I::I32Add)
                .i(I::LocalTee(s))
                .i(I::I32Load(mem(4, 2)))
                .i(I::I32Eqz);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(0)).i(I::Return);
            b.end();
            b.i(I::LocalGet(s))
                .i(I::I32Load(mem(0, 2)))
                .i(I::LocalGet(hh))
                .i(I::I32Eq)
                .i(I::LocalGet(s))
                .i(I::I32Load(mem(4, 2)))
                .i(I::LocalGet(2))
                .i(I::I32Eq)
                .i(I::I32And)
                .i(I::LocalGet(s))
                .i(I::I32Load(mem(12, 2)))
                .i(I::LocalGet(4))
                .i(I::I32Eq)
                .i(I::I32And);
            b.if_(BlockType::Empty);
            b.i(I::LocalGet(s))
                .i(I::I32Load(mem(8, 2)))
                .i(I::LocalGet(3))
                .i(I::LocalGet(4))
                .i(I::Call(helper(H::MemEq)));
            b.if_(BlockType::Empty);
            b.i(I::LocalGet(s)).i(I::Return);
            b.end();
            b.end();
            b.i(I::LocalGet(i))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalGet(1))
                .i(I::I32And)
                .i(I::LocalSet(i));
            b.br(top);
            b.end();
            b.i(I::I32Const(0));
        }
        H::NameSetHas => {
            // (tbl, mask, kind, name): exact member, or below a wildcard
            let (p, n) = (b.local(ValType::I32), b.local(ValType::I32));
            let call = |b: &mut Body, kind_plus: i32| {
                b.i(I::LocalGet(0))
                    .i(I::LocalGet(1))
                    .i(I::LocalGet(2))
                    .i(I::I32Const(kind_plus))
                    .i(I::I32Add)
                    .i(I::LocalGet(p))
                    .i(I::LocalGet(n))
                    .i(I::Call(helper(H::TblFind)));
            };
            ptr(b, 3);
            b.i(I::LocalSet(p));
            b.i(I::LocalGet(3)).i(I::I32WrapI64).i(I::LocalSet(n));
            call(b, 0);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(1)).i(I::Return);
            b.end();
            // The root has no strict suffix.
            b.i(I::LocalGet(n)).i(I::I32Eqz);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(0)).i(I::Return);
            b.end();
            // strict suffixes: after each '.', then the root
            let out = b.block(BlockType::Empty);
            let top = b.loop_();
            b.i(I::LocalGet(n)).i(I::I32Eqz);
            b.br_if(out);
            b.i(I::LocalGet(p))
                .i(I::I32Load8U(mem(0, 0)))
                .i(I::I32Const(i32::from(b'.')))
                .i(I::I32Eq);
            b.i(I::LocalGet(p))
                .i(I::I32Const(1))
                .i(I::I32Add)
                .i(I::LocalSet(p));
            b.i(I::LocalGet(n))
                .i(I::I32Const(1))
                .i(I::I32Sub)
                .i(I::LocalSet(n));
            b.if_(BlockType::Empty);
            call(b, 1);
            b.if_(BlockType::Empty);
            b.i(I::I32Const(1)).i(I::Return);
            b.end();
            b.end();
            b.br(top);
            b.end();
            b.end();
            // the root: every name is below it
            call(b, 1);
            b.i(I::I32Const(0)).i(I::I32Ne);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_list_is_in_function_index_order() {
        for (i, h) in HELPERS.iter().enumerate() {
            assert_eq!(*h as usize, i);
        }
    }
}
