//! The WASM backend: a checked policy as a stand-alone plugin module (ABI
//! version 1, `grammar/WASM-ABI.md`), built with `wasm-encoder`.
//!
//! The module is an ordinary plugin: it exports `memory`,
//! `dnspolicy_abi_version`, `alloc`, `init`, `process` and `destroy`, and
//! imports only host functions of module `"dnspolicy"` (`get_field`,
//! `set_verdict`, `set_value`, `regex_match`); no WASI. Everything else is
//! in the module: constants (strings, names, addresses, prefixes) and the
//! verdict table in a data segment, the rule index and the name sets in
//! one open-addressing hash table, and the rules behind a `call_indirect`
//! table. Rules that differ only in their constants share one function (a
//! *shape*): it reads literals, set and regex addresses and verdict
//! indexes from the rule's constant block, whose address it is passed, so a
//! policy of 100 000 generated rules is a handful of functions.
//!
//! `process` walks the candidate rules the name index gives (a k-way merge
//! of sorted rule lists: the rules that always run, and the lists of the
//! query name, its suffixes and wildcard parents), in priority order, and
//! stops at the first that decides. A rule function returns a verdict
//! index (the host gets the verdict's JSON from the table), `-1` for no
//! decision, or `-2` when it handed a run-time value to `set_value`.
//!
//! Values in code: bool as `i32`; int and qtype as `i64`; string and name
//! as `i64` holding `ptr << 32 | len`; ip and cidr as an `i32` pointer to
//! a blob (family 4/6, 16 address bytes, then the prefix length for cidr).
//! Missing values follow the interpreter: code that reads one branches to
//! the enclosing "missing" label (a comparison becomes false, a `then`
//! ends its rule). Context fields and injected variables come from the
//! host once per evaluation (`get_field`) and are cached in globals.
//!
//! Not lowered yet (the compiler says so, naming the construct): string
//! concatenation, `lower()` of a string, lists other than the right side
//! of `in`, `hash`/`len` of a list, list verdicts, and `answer`/`rewrite`/
//! `forward` with a run-time operand.

use crate::context::{Field, FIELDS};
use crate::ir::{Action, ArithOp, CmpOp, ConstSet, Expr, ExprKind, Func, Policy, Rule, Stmt};
use crate::span::Span;
use crate::types::{Cidr, Type};
use crate::value::{Value, Verdict};
use std::collections::HashMap;
use std::net::IpAddr;
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, CustomSection, DataSection, ElementSection, Elements,
    EntityType, ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType,
    ImportSection, Instruction as I, MemArg, MemorySection, MemoryType, Module, RefType,
    TableSection, TableType, TypeSection, ValType,
};

/// A construct the WASM backend does not lower yet.
#[derive(Debug, Clone)]
pub struct Unsupported {
    /// Where it is written.
    pub span: Span,
    /// What it is.
    pub what: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is not supported by the wasm target yet", self.what)
    }
}

/// The type codes of `get_field` / `set_value` encodings.
pub fn type_code(t: &Type) -> Option<i32> {
    Some(match t {
        Type::Bool => 0,
        Type::Int => 1,
        Type::String => 2,
        Type::Name => 3,
        Type::Ip => 4,
        Type::Cidr => 5,
        Type::Qtype => 6,
        _ => return None,
    })
}

/// A value in the binary form `get_field` returns and `set_value` takes:
/// bool 1 byte; int and qtype 8 bytes little-endian; string and name their
/// UTF-8 bytes; ip 17 bytes (family 4 or 6, 16 address bytes, IPv4 in the
/// first 4); cidr 18 bytes (the ip form, then the prefix length). Lists
/// have no encoding.
pub fn encode_value(v: &Value) -> Option<Vec<u8>> {
    Some(match v {
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Int(i) => i.to_le_bytes().to_vec(),
        Value::Qtype(q) => i64::from(*q).to_le_bytes().to_vec(),
        Value::Str(s) | Value::Name(s) => s.as_bytes().to_vec(),
        Value::Ip(ip) => ip_blob(ip).to_vec(),
        Value::Cidr(c) => cidr_blob(c).to_vec(),
        Value::List(_) => return None,
    })
}

/// Reads a value back from [`encode_value`]'s form, given its type code.
pub fn decode_value(code: i32, b: &[u8]) -> Option<Value> {
    let ip = |b: &[u8]| -> Option<IpAddr> {
        match b.first()? {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(b.get(1..5)?).ok()?)),
            6 => Some(IpAddr::from(<[u8; 16]>::try_from(b.get(1..17)?).ok()?)),
            _ => None,
        }
    };
    let int = |b: &[u8]| Some(i64::from_le_bytes(b.try_into().ok()?));
    Some(match code {
        0 => Value::Bool(*b.first()? != 0),
        1 => Value::Int(int(b)?),
        2 => Value::Str(std::str::from_utf8(b).ok()?.into()),
        3 => Value::Name(std::str::from_utf8(b).ok()?.into()),
        4 if b.len() == 17 => Value::Ip(ip(b)?),
        5 if b.len() == 18 => {
            // A prefix must be one: length in range, no host bits.
            let (addr, len) = (ip(b)?, b[17]);
            let c = Cidr::containing(addr, len);
            if c.len != len || c.addr != addr {
                return None;
            }
            Value::Cidr(c)
        }
        6 => Value::Qtype(u16::try_from(int(b)?).ok()?),
        _ => return None,
    })
}

fn ip_blob(ip: &IpAddr) -> [u8; 17] {
    let mut b = [0u8; 17];
    match ip {
        IpAddr::V4(a) => {
            b[0] = 4;
            b[1..5].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            b[0] = 6;
            b[1..17].copy_from_slice(&a.octets());
        }
    }
    b
}

fn cidr_blob(c: &Cidr) -> [u8; 18] {
    let mut b = [0u8; 18];
    b[..17].copy_from_slice(&ip_blob(&c.addr));
    b[17] = c.len;
    b
}

/// The hash of the module's lookup table (FNV-1a 32 over the kind, then
/// the key's bytes); the module computes the same.
fn hash32(kind: u32, bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    h ^= kind;
    h = h.wrapping_mul(16_777_619);
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// The ID `get_field` takes for a context field (its slot) and for an
/// injected variable (1000 + its index in the `dnspolicy.inputs` section).
pub const INPUT_BASE: u32 = 1000;

// Memory layout.
const TEMP: u32 = 16; // scratch for hashing and set_value (16 bytes)
const DATA_BASE: u32 = 1024;
const SLOT: u32 = 24;
const MAX_LISTS: u32 = 400; // 1 + 3 per label, labels <= 128

// Function indices: the imports, then the helpers in this order.
const F_GET_FIELD: u32 = 0;
const F_SET_VERDICT: u32 = 1;
const F_SET_VALUE: u32 = 2;
const F_REGEX: u32 = 3;
const N_IMPORTS: u32 = 4;

#[derive(Clone, Copy)]
#[repr(u32)]
enum H {
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
const HELPERS: [H; 25] = [
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
const N_HELPERS: u32 = HELPERS.len() as u32;

fn helper(h: H) -> u32 {
    N_IMPORTS + h as u32
}

fn mem(offset: u64, align: u32) -> MemArg {
    MemArg {
        offset,
        align,
        target: wasm_encoder::MemArgTarget::Memory(0),
        ordering: None,
    }
}

/// A function body with structured-control label bookkeeping.
struct Body {
    insns: Vec<I<'static>>,
    params: u32,
    locals: Vec<ValType>,
    depth: u32,
}

impl Body {
    fn new(params: u32) -> Body {
        Body {
            insns: Vec::new(),
            params,
            locals: Vec::new(),
            depth: 0,
        }
    }
    fn i(&mut self, i: I<'static>) -> &mut Self {
        self.insns.push(i);
        self
    }
    fn local(&mut self, t: ValType) -> u32 {
        self.locals.push(t);
        self.params + self.locals.len() as u32 - 1
    }
    fn open(&mut self, i: I<'static>) -> u32 {
        self.insns.push(i);
        self.depth += 1;
        self.depth
    }
    fn block(&mut self, bt: BlockType) -> u32 {
        self.open(I::Block(bt))
    }
    fn if_(&mut self, bt: BlockType) -> u32 {
        self.open(I::If(bt))
    }
    fn loop_(&mut self) -> u32 {
        self.open(I::Loop(BlockType::Empty))
    }
    fn end(&mut self) {
        self.insns.push(I::End);
        self.depth -= 1;
    }
    fn br(&mut self, label: u32) {
        let d = self.depth - label;
        self.insns.push(I::Br(d));
    }
    fn br_if(&mut self, label: u32) {
        let d = self.depth - label;
        self.insns.push(I::BrIf(d));
    }
    fn finish(mut self) -> Function {
        self.insns.push(I::End);
        let mut f = Function::new(self.locals.iter().map(|t| (1, *t)));
        for i in &self.insns {
            f.instruction(i);
        }
        f
    }
}

/// Constants in the data segment, deduplicated.
struct Data {
    bytes: Vec<u8>,
    seen: HashMap<Vec<u8>, u32>,
}

impl Data {
    fn put(&mut self, b: &[u8], align: usize) -> u32 {
        if let Some(&a) = self.seen.get(b) {
            return a;
        }
        while !self.bytes.len().is_multiple_of(align) {
            self.bytes.push(0);
        }
        let addr = DATA_BASE + self.bytes.len() as u32;
        self.bytes.extend_from_slice(b);
        self.seen.insert(b.to_vec(), addr);
        addr
    }
    fn text(&mut self, s: &str) -> (u32, u32) {
        (self.put(s.as_bytes(), 1), s.len() as u32)
    }
}

fn packed(ptr: u32, len: u32) -> i64 {
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

fn repr(t: &Type) -> Option<ValType> {
    Some(match t {
        Type::Bool | Type::Ip | Type::Cidr => ValType::I32,
        Type::Int | Type::Qtype | Type::String | Type::Name => ValType::I64,
        _ => return None,
    })
}

/// A context field or injected variable the module reads, with its cache.
struct Getter {
    func: u32,
    state: u32,
    val: u32,
    ty: Type,
}

struct Emitter<'p> {
    p: &'p Policy,
    data: Data,
    types: Vec<(Vec<ValType>, Vec<ValType>)>,
    getters: HashMap<u32, Getter>,
    verdicts: Vec<(u32, u32)>,
    verdict_ids: HashMap<String, u32>,
    tbl: u32,
    tbl_mask: u32,
    /// Per name set: the table kind of its exact members (wildcards: +1).
    set_kind: HashMap<u32, u32>,
    /// Per cidr set: (blob array, count).
    cidr_sets: HashMap<u32, (u32, u32)>,
    regex_text: Vec<(u32, u32)>,
    rule: usize,
    /// The constants the rule being lowered reads (its `k` block).
    k: Vec<i64>,
}

const G_HEAP: u32 = 0;
const G_SP: u32 = 1;

/// Lowers a checked policy to a WASM plugin module.
pub fn emit(p: &Policy) -> Result<Vec<u8>, Unsupported> {
    let mut e = Emitter {
        p,
        data: Data {
            bytes: Vec::new(),
            seen: HashMap::new(),
        },
        types: Vec::new(),
        getters: HashMap::new(),
        verdicts: Vec::new(),
        verdict_ids: HashMap::new(),
        tbl: 0,
        tbl_mask: 0,
        set_kind: HashMap::new(),
        cidr_sets: HashMap::new(),
        regex_text: Vec::new(),
        rule: 0,
        k: Vec::new(),
    };
    e.module()
}

impl Emitter<'_> {
    fn ty(&mut self, params: &[ValType], results: &[ValType]) -> u32 {
        let key = (params.to_vec(), results.to_vec());
        if let Some(i) = self.types.iter().position(|t| *t == key) {
            return i as u32;
        }
        self.types.push(key);
        self.types.len() as u32 - 1
    }

    /// Builds the lookup table: the rule index (kinds 1-3) and every name
    /// set (kinds 16 + 2k exact, 17 + 2k wildcard).
    fn table(&mut self) {
        let mut keys: Vec<(u32, String, u32, u32)> = Vec::new();
        let (entries, _) = self.p.index.entries();
        for (kind, key, rules) in entries {
            let bytes: Vec<u8> = rules.iter().flat_map(|r| r.to_le_bytes()).collect();
            let list = self.data.put(&bytes, 4);
            keys.push((u32::from(kind), key.to_string(), list, rules.len() as u32));
        }
        for (k, set) in self.p.sets.iter().enumerate() {
            let k = k as u32;
            match set {
                ConstSet::Names(ns) => {
                    let kind = 16 + 2 * k;
                    self.set_kind.insert(k, kind);
                    let mut exact: Vec<&str> = ns.exact.iter().map(|s| &**s).collect();
                    exact.sort_unstable();
                    let mut wild: Vec<&str> = ns.wildcards.iter().map(|s| &**s).collect();
                    wild.sort_unstable();
                    keys.extend(exact.into_iter().map(|n| (kind, n.to_string(), 0, 0)));
                    keys.extend(wild.into_iter().map(|n| (kind + 1, n.to_string(), 0, 0)));
                }
                ConstSet::Cidrs(cs) => {
                    let bytes: Vec<u8> = cs.iter().flat_map(cidr_blob).collect();
                    let at = self.data.put(&bytes, 4);
                    self.cidr_sets.insert(k, (at, cs.len() as u32));
                }
                ConstSet::Values(_) => {}
            }
        }
        let cap = (keys.len() * 2).max(8).next_power_of_two() as u32;
        let mut slots = vec![0u8; (cap * SLOT) as usize];
        for (kind, key, list, n) in keys {
            let (ptr, len) = self.data.text(&key);
            let h = hash32(kind, key.as_bytes());
            let mut i = h & (cap - 1);
            loop {
                let s = (i * SLOT) as usize;
                if slots[s + 4..s + 8] == [0; 4] {
                    for (j, v) in [h, kind, ptr, len, list, n].into_iter().enumerate() {
                        slots[s + 4 * j..s + 4 * j + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    break;
                }
                i = (i + 1) & (cap - 1);
            }
        }
        // Distinct content, so never deduplicated into another constant.
        self.tbl = self.data.put(&slots, 8);
        self.data.seen.remove(&slots);
        self.tbl_mask = cap - 1;
    }

    fn verdict(&mut self, v: &Verdict) -> u32 {
        let json = v.to_json().to_string();
        if let Some(&id) = self.verdict_ids.get(&json) {
            return id;
        }
        let (ptr, len) = self.data.text(&json);
        self.verdicts.push((ptr, len));
        let id = self.verdicts.len() as u32 - 1;
        self.verdict_ids.insert(json, id);
        id
    }

    fn module(&mut self) -> Result<Vec<u8>, Unsupported> {
        self.table();
        for re in &self.p.regexes {
            let t = self.data.text(re.as_str());
            self.regex_text.push(t);
        }
        // Getters: every field the policy reads, then every input.
        let mut ids: Vec<(u32, Type)> = Vec::new();
        let mask = self.p.fields_used() | (1 << Field::QueryName as u32);
        for f in FIELDS {
            if mask & (1 << f.field as u32) != 0 {
                ids.push((f.field as u32, f.ty.clone()));
            }
        }
        for (i, input) in self.p.inputs.iter().enumerate() {
            ids.push((INPUT_BASE + i as u32, input.ty.clone()));
        }
        let first_getter = N_IMPORTS + N_HELPERS;
        let mut globals: Vec<(ValType, bool)> = vec![(ValType::I32, true), (ValType::I32, true)];
        let mut getter_order = Vec::new();
        for (n, (id, ty)) in ids.into_iter().enumerate() {
            // A variable whose type has no value form is always missing.
            let val_ty = repr(&ty).unwrap_or(ValType::I32);
            globals.push((ValType::I32, true));
            globals.push((val_ty, true));
            let g = Getter {
                func: first_getter + n as u32,
                state: globals.len() as u32 - 2,
                val: globals.len() as u32 - 1,
                ty,
            };
            getter_order.push(id);
            self.getters.insert(id, g);
        }
        let first_rule = first_getter + getter_order.len() as u32;
        let nrules = self.p.rules.len() as u32;

        let mut bodies: Vec<(u32, Function)> = Vec::new();
        for h in 0..N_HELPERS {
            bodies.push(self.helper_fn(h));
        }
        for id in &getter_order {
            bodies.push(self.getter_fn(*id));
        }
        // Rules that differ only in their constants share one function
        // (a shape): the body reads them from the rule's block `k`.
        let rule_ty = self.ty(&[ValType::I32], &[ValType::I32]);
        let mut shapes: HashMap<Vec<u8>, u32> = HashMap::new();
        let mut rule_shape: Vec<u8> = Vec::with_capacity(4 * nrules as usize);
        let mut rule_k: Vec<u8> = Vec::with_capacity(4 * nrules as usize);
        let mut nshapes = 0u32;
        for (i, r) in self.p.rules.iter().enumerate() {
            self.rule = i;
            self.k.clear();
            let f = self.rule_fn(r)?;
            let mut key = Vec::new();
            wasm_encoder::Encode::encode(&f, &mut key);
            let shape = *shapes.entry(key).or_insert_with(|| {
                bodies.push((rule_ty, f));
                nshapes += 1;
                nshapes - 1
            });
            let block: Vec<u8> = self.k.iter().flat_map(|v| v.to_le_bytes()).collect();
            let at = self.data.put(&block, 8);
            rule_shape.extend_from_slice(&shape.to_le_bytes());
            rule_k.extend_from_slice(&at.to_le_bytes());
        }
        let first_export = first_rule + nshapes;
        let rule_shape = self.data.put(&rule_shape, 4);
        let rule_k = self.data.put(&rule_k, 4);
        // Static verdicts are all known now: their table.
        let vt: Vec<u8> = self
            .verdicts
            .iter()
            .flat_map(|(p, l)| p.to_le_bytes().into_iter().chain(l.to_le_bytes()))
            .collect();
        let vtab = if vt.is_empty() {
            0
        } else {
            self.data.put(&vt, 4)
        };
        // The module looks names up; rules indexed by a prefix always run.
        let always: Vec<u8> = self
            .p
            .index
            .always_without_prefixes()
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        let always_ptr = if always.is_empty() {
            0
        } else {
            let a = self.data.put(&always, 4);
            self.data.seen.remove(&always);
            a
        };
        let always_n = always.len() as u32 / 4;
        let lists = (DATA_BASE + self.data.bytes.len() as u32 + 7) & !7;
        let heap = lists + MAX_LISTS * 8;
        let exports_start = bodies.len();
        bodies.push(self.abi_fn());
        bodies.push(self.alloc_fn());
        bodies.push(self.init_fn());
        bodies.push(self.process_fn(
            &getter_order,
            vtab,
            (always_ptr, always_n),
            lists,
            (rule_ty, rule_shape, rule_k),
        ));
        bodies.push(self.destroy_fn());
        debug_assert_eq!(N_IMPORTS + exports_start as u32, first_export);

        let mut m = Module::new();
        let mut types = TypeSection::new();
        // Import types first so the table of types is final before encoding.
        let t_get = self.ty(&[ValType::I32; 3], &[ValType::I32]);
        let t_set_verdict = self.ty(&[ValType::I32; 3], &[ValType::I32]);
        let t_set_value = self.ty(&[ValType::I32; 4], &[ValType::I32]);
        let t_regex = self.ty(&[ValType::I32; 4], &[ValType::I32]);
        for (params, results) in &self.types {
            types
                .ty()
                .function(params.iter().copied(), results.iter().copied());
        }
        m.section(&types);
        let mut imports = ImportSection::new();
        imports.import("dnspolicy", "get_field", EntityType::Function(t_get));
        imports.import(
            "dnspolicy",
            "set_verdict",
            EntityType::Function(t_set_verdict),
        );
        imports.import("dnspolicy", "set_value", EntityType::Function(t_set_value));
        imports.import("dnspolicy", "regex_match", EntityType::Function(t_regex));
        m.section(&imports);
        let mut funcs = FunctionSection::new();
        for (t, _) in &bodies {
            funcs.function(*t);
        }
        m.section(&funcs);
        let mut tables = TableSection::new();
        tables.table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: u64::from(nshapes),
            maximum: Some(u64::from(nshapes)),
            shared: false,
        });
        m.section(&tables);
        let pages = u64::from(heap).div_ceil(65536) + 2;
        let mut mems = MemorySection::new();
        mems.memory(MemoryType {
            minimum: pages,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        m.section(&mems);
        let mut gs = GlobalSection::new();
        for (i, (t, mutable)) in globals.iter().enumerate() {
            let init = match (i as u32, t) {
                (G_HEAP, _) | (G_SP, _) => ConstExpr::i32_const(heap as i32),
                (_, ValType::I64) => ConstExpr::i64_const(0),
                _ => ConstExpr::i32_const(0),
            };
            gs.global(
                GlobalType {
                    val_type: *t,
                    mutable: *mutable,
                    shared: false,
                },
                &init,
            );
        }
        m.section(&gs);
        let mut ex = ExportSection::new();
        ex.export("memory", ExportKind::Memory, 0);
        for (k, name) in [
            "dnspolicy_abi_version",
            "alloc",
            "init",
            "process",
            "destroy",
        ]
        .iter()
        .enumerate()
        {
            ex.export(name, ExportKind::Func, first_export + k as u32);
        }
        m.section(&ex);
        if nshapes > 0 {
            let mut el = ElementSection::new();
            let fns: Vec<u32> = (first_rule..first_rule + nshapes).collect();
            el.active(
                None,
                &ConstExpr::i32_const(0),
                Elements::Functions(fns.into()),
            );
            m.section(&el);
        }
        let mut code = CodeSection::new();
        for (_, f) in &bodies {
            code.function(f);
        }
        m.section(&code);
        let mut data = DataSection::new();
        data.active(
            0,
            &ConstExpr::i32_const(DATA_BASE as i32),
            self.data.bytes.iter().copied(),
        );
        m.section(&data);
        let rules: Vec<&str> = self.p.rules.iter().map(|r| r.name.as_str()).collect();
        let custom = |name: &'static str, data: Vec<u8>| CustomSection {
            name: name.into(),
            data: data.into(),
        };
        m.section(&custom("dnspolicy.rules", rules.join("\n").into_bytes()));
        let inputs: Vec<serde_json::Value> = self
            .p
            .inputs
            .iter()
            .map(|i| serde_json::json!({"path": i.path, "type": i.ty.to_string()}))
            .collect();
        m.section(&custom(
            "dnspolicy.inputs",
            serde_json::Value::Array(inputs).to_string().into_bytes(),
        ));
        m.section(&custom("dnspolicy.fields", mask.to_string().into_bytes()));
        Ok(m.finish())
    }

    // ---- exports -------------------------------------------------------

    fn abi_fn(&mut self) -> (u32, Function) {
        let t = self.ty(&[], &[ValType::I32]);
        let mut b = Body::new(0);
        b.i(I::I32Const(1));
        (t, b.finish())
    }

    fn alloc_fn(&mut self) -> (u32, Function) {
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

    fn init_fn(&mut self) -> (u32, Function) {
        let t = self.ty(&[ValType::I32, ValType::I32], &[ValType::I32]);
        let mut b = Body::new(2);
        b.i(I::I32Const(0));
        (t, b.finish())
    }

    fn destroy_fn(&mut self) -> (u32, Function) {
        let t = self.ty(&[], &[]);
        (t, Body::new(0).finish())
    }

    fn process_fn(
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

    fn getter_fn(&mut self, id: u32) -> (u32, Function) {
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
        if type_code(&ty).is_none() {
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

    // ---- rules ---------------------------------------------------------

    fn rule_fn(&mut self, r: &Rule) -> Result<Function, Unsupported> {
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

    fn stmts(
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

    fn then(
        &mut self,
        b: &mut Body,
        a: &Action,
        end: u32,
        locals: &mut HashMap<u32, (u32, u32)>,
    ) -> Result<(), Unsupported> {
        if let Action::Value(e) = a {
            if !matches!(e.kind, ExprKind::Lit(_)) {
                // A run-time value: encoded at TEMP (scalars) or in place.
                let code = type_code(&e.ty).ok_or_else(|| unsupported(e, "a list verdict"))?;
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
        match static_verdict(a) {
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
    fn cond(
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
    fn guarded(
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
    fn value(
        &mut self,
        b: &mut Body,
        e: &Expr,
        miss: u32,
        locals: &mut HashMap<u32, (u32, u32)>,
    ) -> Result<(), Unsupported> {
        match &e.kind {
            ExprKind::Lit(v) => self.lit(b, v, e)?,
            ExprKind::Field(f) => self.read(b, *f as u32, miss),
            ExprKind::Input(i) => self.read(b, INPUT_BASE + i, miss),
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
                    (Func::Hash, t) if type_code(t).is_some() => {
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
    fn maybe_guarded(
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

    fn read(&mut self, b: &mut Body, id: u32, miss: u32) {
        let g = &self.getters[&id];
        b.i(I::Call(g.func))
            .i(I::GlobalGet(g.state))
            .i(I::I32Const(2))
            .i(I::I32Eq);
        b.br_if(miss);
    }

    /// Pushes constant `v` of the rule being lowered: a load from its
    /// block (parameter 0), so rules differing only in constants share code.
    fn konst(&mut self, b: &mut Body, v: i64, i32_repr: bool) {
        let at = 8 * self.k.len() as u64;
        self.k.push(v);
        b.i(I::LocalGet(0)).i(I::I64Load(mem(at, 3)));
        if i32_repr {
            b.i(I::I32WrapI64);
        }
    }

    fn lit(&mut self, b: &mut Body, v: &Value, e: &Expr) -> Result<(), Unsupported> {
        match v {
            Value::Bool(x) => self.konst(b, i64::from(*x), true),
            Value::Int(i) => self.konst(b, *i, false),
            Value::Qtype(q) => self.konst(b, i64::from(*q), false),
            Value::Str(s) | Value::Name(s) => {
                let (p, n) = self.data.text(s);
                self.konst(b, packed(p, n), false);
            }
            Value::Ip(ip) => {
                let at = self.data.put(&ip_blob(ip), 1);
                self.konst(b, i64::from(at), true);
            }
            Value::Cidr(c) => {
                let at = self.data.put(&cidr_blob(c), 1);
                self.konst(b, i64::from(at), true);
            }
            Value::List(_) => return Err(unsupported(e, "a list outside `in`")),
        }
        Ok(())
    }

    fn in_set(
        &mut self,
        b: &mut Body,
        needle: &Expr,
        set: u32,
        miss: u32,
        locals: &mut HashMap<u32, (u32, u32)>,
    ) -> Result<(), Unsupported> {
        match (&self.p.sets[set as usize], &needle.ty) {
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

    fn in_expr(
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

    // ---- helpers -------------------------------------------------------

    fn helper_fn(&mut self, h: u32) -> (u32, Function) {
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

/// Grows memory so that address `end` (a local) is inside it; runs `fail`
/// when the memory cannot grow.
fn grow_to(b: &mut Body, end: u32, fail: impl FnOnce(&mut Body)) {
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
fn unpack(b: &mut Body, s: u32) {
    b.i(I::LocalGet(s))
        .i(I::I64Const(32))
        .i(I::I64ShrU)
        .i(I::I32WrapI64)
        .i(I::LocalGet(s))
        .i(I::I32WrapI64);
}

fn unsupported(e: &Expr, what: &str) -> Unsupported {
    Unsupported {
        span: e.span,
        what: what.to_string(),
    }
}

/// Compares the two values on the stack, of type `t`, leaving an i32.
fn compare(b: &mut Body, op: CmpOp, t: &Type, e: &Expr) -> Result<(), Unsupported> {
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

/// A `then` whose operands are all literals, decided at compile time as
/// the interpreter would decide it; `None`: it can never decide.
pub(crate) fn static_verdict(a: &Action) -> Result<Option<Verdict>, Unsupported> {
    let lit = |e: &Expr| match &e.kind {
        ExprKind::Lit(Value::List(_)) => Err(unsupported(e, "a list verdict")),
        ExprKind::Lit(v) => Ok(v.clone()),
        _ => Err(unsupported(
            e,
            "a `then` with a run-time operand (other than a value)",
        )),
    };
    let ttl = |e: &Expr| -> Result<Option<u32>, Unsupported> {
        Ok(match lit(e)? {
            Value::Int(t) if (0..=i64::from(i32::MAX)).contains(&t) => Some(t as u32),
            _ => None,
        })
    };
    Ok(Some(match a {
        Action::Value(e) => Verdict::Value(lit(e)?),
        Action::Answer {
            rtype,
            data,
            ttl: t,
        } => {
            let mut out = Vec::new();
            for d in data {
                let v = lit(d)?;
                let fits = match (rtype, &v) {
                    (1, Value::Ip(ip)) => ip.is_ipv4(),
                    (28, Value::Ip(ip)) => ip.is_ipv6(),
                    _ => true,
                };
                if !fits {
                    return Ok(None);
                }
                out.push(v);
            }
            let Some(ttl) = ttl(t)? else { return Ok(None) };
            Verdict::Answer {
                rtype: *rtype,
                data: out,
                ttl,
            }
        }
        Action::Rewrite { target, ttl: t } => match lit(target)? {
            Value::Name(n) => {
                let Some(ttl) = ttl(t)? else { return Ok(None) };
                Verdict::Rewrite {
                    target: n.to_string(),
                    ttl,
                }
            }
            _ => return Ok(None),
        },
        Action::Forward(p) => Verdict::Forward {
            pool: lit(p)?.to_string(),
        },
        Action::Nxdomain => Verdict::Nxdomain,
        Action::Nodata => Verdict::Nodata,
        Action::Refuse => Verdict::Refuse,
        Action::Servfail => Verdict::Servfail,
        Action::Drop => Verdict::Drop,
        Action::Truncate => Verdict::Truncate,
        Action::Pass => Verdict::Pass,
    }))
}

const FNV_OFFSET: i64 = 0xcbf2_9ce4_8422_2325_u64 as i64;
const FNV_PRIME: i64 = 0x0000_0100_0000_01b3;

/// The bodies of the helper functions (parameters are locals 0..).
fn helper_body(h: H, b: &mut Body) {
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

/// Pushes the pointer half of a packed string parameter/local.
fn ptr(b: &mut Body, s: u32) {
    b.i(I::LocalGet(s))
        .i(I::I64Const(32))
        .i(I::I64ShrU)
        .i(I::I32WrapI64);
}

/// Validates a module with `wasmparser` (the features wasmtime enables by
/// default).
pub fn validate(wasm: &[u8]) -> Result<(), String> {
    wasmparser::Validator::new()
        .validate_all(wasm)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The module as text, for inspection (`compile --target wat`).
pub fn to_wat(wasm: &[u8]) -> Result<String, String> {
    wasmprinter::print_bytes(wasm).map_err(|e| e.to_string())
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
