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

mod body;
mod entry;
mod layout;
mod rules;
mod runtime;
mod text;

pub use text::{to_wat, validate, ModuleError};

use crate::abi;
use crate::ir::context::{Field, FIELDS};
use crate::ir::types::Type;
use crate::ir::value::{Value, Verdict};
use crate::ir::{Action, ArithOp, CmpOp, ConstSet, Expr, ExprKind, Func, Policy, Rule, Stmt};
use crate::syntax::span::Span;
use body::*;
use layout::*;
use runtime::*;
use std::collections::HashMap;
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

impl Unsupported {
    /// The diagnostic (E0053) that reports it at its place.
    pub fn diagnostic(&self) -> crate::Diagnostic {
        crate::Diagnostic::error("E0053", self.to_string(), self.span).with_label(
            "the wasm target cannot lower this yet; `dnspolicy serve` runs the policy as it is",
        )
    }
}

impl From<crate::ir::NotStatic> for Unsupported {
    fn from(n: crate::ir::NotStatic) -> Unsupported {
        Unsupported {
            span: n.span,
            what: n.what.to_string(),
        }
    }
}

/// The host functions a compiled policy imports, in function-index order
/// (their signatures come from [`abi::HOST_IMPORTS`]).
const IMPORTS: [&str; 4] = ["get_field", "set_verdict", "set_value", "regex_match"];
const F_GET_FIELD: u32 = 0;
const F_SET_VERDICT: u32 = 1;
const F_SET_VALUE: u32 = 2;
const F_REGEX: u32 = 3;
const N_IMPORTS: u32 = IMPORTS.len() as u32;

/// The encoder's value types of an ABI signature.
fn val_types(ts: &[abi::Ty]) -> Vec<ValType> {
    ts.iter()
        .map(|t| match t {
            abi::Ty::I32 => ValType::I32,
            abi::Ty::I64 => ValType::I64,
        })
        .collect()
}

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
            ids.push((abi::INPUT_BASE + i as u32, input.ty.clone()));
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
        let import_types: Vec<u32> = IMPORTS
            .iter()
            .map(|name| {
                let f = abi::host(name);
                self.ty(&val_types(f.params), &val_types(f.results))
            })
            .collect();
        for (params, results) in &self.types {
            types
                .ty()
                .function(params.iter().copied(), results.iter().copied());
        }
        m.section(&types);
        let mut imports = ImportSection::new();
        for (name, t) in IMPORTS.iter().zip(import_types) {
            imports.import(abi::IMPORT_MODULE, name, EntityType::Function(t));
        }
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
        ex.export(abi::MEMORY_EXPORT, ExportKind::Memory, 0);
        for (k, f) in abi::EXPORTS.iter().enumerate() {
            ex.export(f.name, ExportKind::Func, first_export + k as u32);
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
        m.section(&custom(abi::SECTION_RULES, rules.join("\n").into_bytes()));
        let inputs: Vec<serde_json::Value> = self
            .p
            .inputs
            .iter()
            .map(|i| serde_json::json!({"path": i.path, "type": i.ty.to_string()}))
            .collect();
        m.section(&custom(
            abi::SECTION_INPUTS,
            serde_json::Value::Array(inputs).to_string().into_bytes(),
        ));
        m.section(&custom(abi::SECTION_FIELDS, mask.to_string().into_bytes()));
        Ok(m.finish())
    }
}
