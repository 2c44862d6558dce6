//! WASM plugins on wasmtime, behind the [`Plugin`] trait.
//!
//! The ABI (version 1) is written down in `grammar/WASM-ABI.md`; this file
//! is its host side. In short: a module exports `memory`,
//! `dnspolicy_abi_version() -> i32` (1), `alloc`, `init`, `process` and
//! `destroy`; it imports host functions from the module `"dnspolicy"`
//! (mirroring the Lua `ctx` API) and, so that ordinary WASI toolchains'
//! output loads, the harmless part of `wasi_snapshot_preview1`; any other
//! WASI function (returning an errno) is linked to a stub that returns
//! ENOSYS, and anything else is refused at load with the import's name.
//!
//! Modules are compiled once (cached by content) and instantiated per
//! concurrent caller from an [`InstancePre`]: a pool of instances, each used
//! by one query at a time. Every call runs under a wall-clock deadline
//! (epoch interruption, one tick per millisecond) and every instance under
//! a memory cap; a trap, the deadline or the cap aborts that call only, is
//! counted, and the instance is thrown away and rebuilt on the next call.
//!
//! Files: `engine` (the shared engine, compilation cache, the ABI check),
//! `host_api` (the `dnspolicy` imports), `wasi` (the WASI allow-list),
//! `store` (per-instance state, the memory cap, the log sink). The ABI
//! table itself is [`dnspolicy_compiler::abi`].

mod engine;
mod host_api;
mod store;
mod wasi;

pub use engine::{check_abi, check_module};

use crate::dns::query::QueryCtx;
use crate::plugin::host::{Call, Failures, Limits, LogGate};
use crate::plugin::pool::WorkerSlots;
use crate::plugin::{Decision, Plugin, PluginError};
use dnspolicy_compiler::abi::{
    self, AbiFunc, Header, Ty, ABI_VERSION, EXPORTS, IMPORT_MODULE, WASI_IMPORTS,
};
use engine::*;
use host_api::*;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use store::*;
use wasi::*;
use wasmtime::{
    Caller, Config, Engine, ExternType, FuncType, InstancePre, Linker, Memory, Module,
    ResourceLimiter, Store, TypedFunc, Val, ValType,
};

/// Largest module accepted by default (bytes of `.wasm`, or of `.wat`
/// text); `limits.module_bytes` raises it for a plugin.
pub const MAX_MODULE_BYTES: usize = 16 << 20;

/// This server's own cap on module size (`[limits] wasm_module_bytes`;
/// 0: none): a plugin's metadata cannot raise its limit above it, so one
/// edge can refuse what another takes.
static EDGE_CAP: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Sets this server's cap on module size (0: none).
pub fn set_edge_cap(bytes: usize) {
    EDGE_CAP.store(bytes, std::sync::atomic::Ordering::Relaxed);
}
/// Native stack a call may use.
const MAX_WASM_STACK: usize = 256 << 10;
/// Table elements an instance may hold.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Bytes a host call reads from a module's memory at most (a longer
/// argument is a misbehaving module: the call is aborted).
const MAX_ARG_BYTES: usize = 64 << 10;
/// Bytes of a regex pattern.
const MAX_PATTERN_BYTES: usize = 4 << 10;
/// Bytes one `fd_write` call may write; the rest is dropped.
const MAX_WRITE_BYTES: usize = 64 << 10;

/// A WASM module that cannot be a plugin, or a call that failed outside
/// the module (the module's own traps are counted, not errors).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WasmError {
    /// The engine did not start (a host fault, not the module's).
    #[error("the WASM engine is unavailable: {0}")]
    Engine(String),
    /// Neither a WASM binary nor valid WAT, or wasmtime refused to compile it.
    #[error("{0}")]
    Compile(String),
    /// An import or export that breaks the ABI, named.
    #[error("{0}")]
    Abi(String),
    /// Over the size limit.
    #[error("module is {size} bytes; the limit is {max} (`limits.module_bytes` in its metadata)")]
    TooLarge {
        /// The module's size.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// Over this server's cap (`[limits] wasm_module_bytes`).
    #[error(
        "module is {size} bytes; this server takes at most {max} (`[limits] wasm_module_bytes`)"
    )]
    OverEdgeCap {
        /// The module's size.
        size: u64,
        /// The cap.
        max: usize,
    },
    /// Making an instance failed: a step trapped, ran out of time or
    /// memory, or broke the protocol (`init` returned non-zero, ...).
    #[error("{0}")]
    Instance(String),
    /// `process` failed when run for `eval` (not as a plugin).
    #[error("{0}")]
    Call(String),
}

/// One instance with its store, used by one call at a time.
struct Instance {
    store: Store<Host>,
    process: TypedFunc<(i32, i32), i32>,
    destroy: TypedFunc<(), ()>,
    ctx_ptr: i32,
}

/// A WASM module as a plugin.
pub struct WasmPlugin {
    name: Arc<str>,
    pre: InstancePre<Host>,
    limits: Limits,
    config: Vec<u8>,
    pool: WorkerSlots<Instance>,
    failures: Failures,
    log: Arc<LogSink>,
    rules: super::RuleNames,
    /// Context fields a compiled policy reads (`dnspolicy.fields`).
    fields: u32,
    /// Whether the module is a compiled policy (it reads fields).
    compiled: bool,
    inputs: Arc<[(String, dnspolicy_compiler::Type)]>,
}

impl WasmPlugin {
    /// Compiles `bytes` (`.wasm`, or `.wat` text), checks it against the
    /// ABI and makes a first instance (start function, `_initialize` if the
    /// module is a WASI reactor, `init(config)`), so a module that cannot
    /// serve fails here rather than on the first query.
    pub fn load(
        name: &str,
        bytes: &[u8],
        path: &Path,
        limits: Limits,
        config: &serde_json::Value,
    ) -> Result<WasmPlugin, PluginError> {
        let refuse = |source: WasmError| PluginError::Wasm {
            path: path.to_path_buf(),
            source,
        };
        let cap = EDGE_CAP.load(std::sync::atomic::Ordering::Relaxed);
        if cap > 0 && bytes.len() > cap {
            return Err(refuse(WasmError::OverEdgeCap {
                size: bytes.len() as u64,
                max: cap,
            }));
        }
        if bytes.len() > limits.module_bytes {
            return Err(refuse(WasmError::TooLarge {
                size: bytes.len() as u64,
                max: limits.module_bytes,
            }));
        }
        let module = compile(bytes).map_err(refuse)?;
        check_abi(&module).map_err(refuse)?;
        let pre = linker()
            .and_then(|mut l| {
                let stubs = stub_unlisted_wasi(&mut l, &module)?;
                if !stubs.is_empty() {
                    tracing::warn!(
                        plugin = name,
                        imports = %stubs.join(", "),
                        "WASI imports outside the allow-list: calls return ENOSYS"
                    );
                }
                l.instantiate_pre(&module)
                    .map_err(|e| WasmError::Abi(format!("{e:#}")))
            })
            .map_err(refuse)?;
        let sections = custom_sections(bytes);
        let rules = sections
            .get(abi::SECTION_RULES)
            .map(|s| String::from_utf8_lossy(s).lines().collect())
            .unwrap_or_default();
        let fields = sections
            .get(abi::SECTION_FIELDS)
            .and_then(|s| std::str::from_utf8(s).ok()?.trim().parse::<u32>().ok());
        let inputs: Vec<(String, dnspolicy_compiler::Type)> = sections
            .get(abi::SECTION_INPUTS)
            .and_then(|s| serde_json::from_slice::<Vec<serde_json::Value>>(s).ok())
            .unwrap_or_default()
            .iter()
            .map(|i| {
                let path = i["path"].as_str().unwrap_or_default().to_string();
                // A type without a value form: the variable is always missing.
                let ty = i["type"]
                    .as_str()
                    .and_then(dnspolicy_compiler::Type::from_name)
                    .unwrap_or(dnspolicy_compiler::Type::List(Box::new(
                        dnspolicy_compiler::Type::Unknown,
                    )));
                (path, ty)
            })
            .collect();
        let label: Arc<str> = name.into();
        let grants = limits.grants;
        let p = WasmPlugin {
            name: label.clone(),
            pre,
            limits,
            config: serde_json::to_vec(config).unwrap_or_else(|_| b"null".to_vec()),
            pool: WorkerSlots::new(),
            failures: Failures::default(),
            log: Arc::new(LogSink {
                plugin: label,
                gate: LogGate::granting(grants),
            }),
            rules,
            fields: fields.unwrap_or(0),
            compiled: fields.is_some(),
            inputs: inputs.into(),
        };
        let first = p.instantiate().map_err(refuse)?;
        p.pool.claim(None).set(first);
        Ok(p)
    }

    fn ticks(&self) -> u64 {
        self.limits.deadline.as_millis() as u64 + 1
    }

    /// A new instance, ready for `process`.
    fn instantiate(&self) -> Result<Instance, WasmError> {
        let engine = engine()?;
        let mut store = Store::new(
            engine,
            Host {
                call: None,
                memory: None,
                mem_cap: self.limits.memory,
                over_cap: false,
                log: self.log.clone(),
                out: [Vec::new(), Vec::new()],
                rng: std::hash::BuildHasher::hash_one(
                    &std::collections::hash_map::RandomState::new(),
                    0u8,
                ),
                regexes: HashMap::new(),
                verdicts: HashMap::new(),
            },
        );
        store.limiter(|h| h as &mut dyn ResourceLimiter);
        store.epoch_deadline_trap();
        let what = |step: &str, e: wasmtime::Error, store: &Store<Host>| {
            WasmError::Instance(format!("{step}: {}", describe(&e, store.data().over_cap)))
        };
        let broken = |msg: String| WasmError::Instance(msg);
        store.set_epoch_deadline(self.ticks());
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| what("instantiate", e, &store))?;
        let memory = instance
            .get_memory(&mut store, abi::MEMORY_EXPORT)
            .ok_or_else(|| broken("missing export `memory`".into()))?;
        store.data_mut().memory = Some(memory);
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            store.set_epoch_deadline(self.ticks());
            init.call(&mut store, ())
                .map_err(|e| what("_initialize", e, &store))?;
        }
        let typed = |store: &mut Store<Host>, name: &str| {
            instance
                .get_func(&mut *store, name)
                .ok_or_else(|| broken(format!("missing export `{name}`")))
        };
        let version = typed(&mut store, "dnspolicy_abi_version")?
            .typed::<(), i32>(&store)
            .map_err(|e| broken(e.to_string()))?;
        store.set_epoch_deadline(self.ticks());
        let v = version
            .call(&mut store, ())
            .map_err(|e| what("dnspolicy_abi_version", e, &store))?;
        if v != ABI_VERSION {
            return Err(broken(format!(
                "dnspolicy_abi_version() is {v}; this host speaks version {ABI_VERSION}"
            )));
        }
        let alloc = typed(&mut store, "alloc")?
            .typed::<i32, i32>(&store)
            .map_err(|e| broken(e.to_string()))?;
        let init = typed(&mut store, "init")?
            .typed::<(i32, i32), i32>(&store)
            .map_err(|e| broken(e.to_string()))?;
        let place = |store: &mut Store<Host>, len: usize| -> Result<i32, WasmError> {
            store.set_epoch_deadline(self.ticks());
            let ptr = alloc
                .call(&mut *store, len as i32)
                .map_err(|e| what("alloc", e, store))?;
            let end = (ptr as u32 as usize).checked_add(len);
            if ptr == 0 || end.is_none_or(|end| end > memory.data_size(&*store)) {
                return Err(broken(format!(
                    "alloc({len}) returned {ptr}, outside memory"
                )));
            }
            Ok(ptr)
        };
        let cfg_ptr = place(&mut store, self.config.len())?;
        memory
            .write(&mut store, cfg_ptr as usize, &self.config)
            .map_err(|e| broken(e.to_string()))?;
        store.set_epoch_deadline(self.ticks());
        let rc = init
            .call(&mut store, (cfg_ptr, self.config.len() as i32))
            .map_err(|e| what("init", e, &store))?;
        if rc != 0 {
            return Err(broken(format!("init returned {rc}")));
        }
        let ctx_ptr = place(&mut store, Header::CAP)?;
        let process = typed(&mut store, "process")?
            .typed::<(i32, i32), i32>(&store)
            .map_err(|e| broken(e.to_string()))?;
        let destroy = typed(&mut store, "destroy")?
            .typed::<(), ()>(&store)
            .map_err(|e| broken(e.to_string()))?;
        Ok(Instance {
            store,
            process,
            destroy,
            ctx_ptr,
        })
    }

    fn failed(&self, counter: &AtomicU64, what: &str) -> Decision<'static> {
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(plugin = %self.name, error = %what, "wasm process failed");
        self.limits.on_failure()
    }
}

impl WasmPlugin {
    /// Makes one more instance and pools it (instantiate, `_initialize`,
    /// ABI version, `init`, query buffer): what a new concurrent caller or
    /// a rebuild after a trap costs. For benchmarks and warm-up.
    pub fn add_instance(&self) -> Result<(), WasmError> {
        let i = self.instantiate()?;
        self.pool.claim(None).set(i);
        Ok(())
    }

    /// Drops the idle instances (they are rebuilt on demand).
    pub fn drain_pool(&self) {
        self.pool.clear();
    }

    /// Evaluates a compiled policy module on a context, as `dnspolicy eval
    /// --backend wasm` does: the verdict as the module set it (`None`: no
    /// rule decided) and the deciding rule's index.
    pub fn eval_context(
        &self,
        ctx: &dnspolicy_compiler::Context,
    ) -> Result<(Option<dnspolicy_compiler::Verdict>, Option<usize>), WasmError> {
        let mut call = Call::from_context(ctx, self.name.clone(), self.log.gate.clone());
        call.inputs = self.inputs.clone();
        let qname = call.qname.clone();
        let facts = crate::dns::query::QueryFacts {
            client: call.client,
            ecs: None,
            ecs_ignored: None,
            qname: &qname,
            qtype: call.qtype,
            qclass: "IN",
            transport: "udp",
            dnssec_ok: false,
            recursion_desired: false,
            rate: 0,
        };
        let mut claim = self.pool.claim(None);
        let inst = claim.get_or_try_init(|| self.instantiate())?;
        let (r, call) = self.run(inst, &facts, call)?;
        let over_cap = std::mem::take(&mut inst.store.data_mut().over_cap);
        match r {
            Ok(0) => Ok((None, None)),
            Ok(1) => Ok(call.verdict.map_or((None, None), |(v, r)| (Some(v), r))),
            Ok(rc) => Err(WasmError::Call(format!("process returned {rc}"))),
            Err(e) => {
                claim.discard();
                Err(WasmError::Call(describe(&e, over_cap)))
            }
        }
    }
}

impl WasmPlugin {
    /// One `process` call on `inst`: the query written into its buffer,
    /// `call` in its store for the host functions, and back. The caller
    /// decides whether the instance is kept.
    fn run(
        &self,
        inst: &mut Instance,
        facts: &crate::dns::query::QueryFacts<'_>,
        call: Call,
    ) -> Result<(wasmtime::Result<i32>, Call), WasmError> {
        let lost = |what: &str| WasmError::Call(what.to_string());
        let memory = inst.store.data().memory.ok_or_else(|| lost("no memory"))?;
        // Written in place: the buffer was checked to lie in memory when
        // the instance was made, and memory never shrinks.
        let at = inst.ctx_ptr as usize;
        let len = memory
            .data_mut(&mut inst.store)
            .get_mut(at..at + Header::CAP)
            .map(|dst| header(facts).write(facts.qname.as_bytes(), dst))
            .ok_or_else(|| lost("context buffer outside memory"))?;
        inst.store.data_mut().call = Some(call);
        inst.store.set_epoch_deadline(self.ticks());
        let r = inst
            .process
            .call(&mut inst.store, (inst.ctx_ptr, len as i32));
        let call = inst
            .store
            .data_mut()
            .call
            .take()
            .ok_or_else(|| lost("lost the call"))?;
        Ok((r, call))
    }
}

/// Says what ended a call, in words.
fn describe(e: &wasmtime::Error, over_cap: bool) -> String {
    if over_cap {
        return format!("memory cap reached ({e})");
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        if *trap == wasmtime::Trap::Interrupt {
            return "deadline exceeded".into();
        }
        return format!("trap: {trap}");
    }
    format!("{e}")
}

/// The header `process` reads for this query.
fn header(facts: &crate::dns::query::QueryFacts<'_>) -> Header {
    let flags = if facts.recursion_desired {
        Header::RD
    } else {
        0
    } | if facts.dnssec_ok { Header::DO } else { 0 }
        | if facts.ecs.is_some() { Header::ECS } else { 0 };
    Header {
        qtype: facts.qtype,
        qclass: Header::class_code(facts.qclass),
        tcp: facts.transport == "tcp",
        flags,
    }
}

/// The `dnspolicy.*` custom sections: rule names (`dnspolicy.rules`, one
/// per line, for per-rule metrics) and, in compiled policies, the fields
/// read (`dnspolicy.fields`) and injected variables (`dnspolicy.inputs`).
fn custom_sections(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let wasm = if bytes.starts_with(b"\0asm") {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        match wat::parse_bytes(bytes) {
            Ok(w) => std::borrow::Cow::Owned(w.into_owned()),
            Err(_) => return out,
        }
    };
    for payload in wasmtime::wasmparser::Parser::new(0).parse_all(&wasm) {
        if let Ok(wasmtime::wasmparser::Payload::CustomSection(s)) = payload {
            if s.name().starts_with("dnspolicy.") {
                out.insert(s.name().to_string(), s.data().to_vec());
            }
        }
    }
    out
}

impl Plugin for WasmPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "wasm"
    }

    fn init(&mut self, _config: &serde_json::Value) -> Result<(), PluginError> {
        // `init(config)` already ran in the first instance (and runs in each new one).
        Ok(())
    }

    fn apply<'s>(&'s self, ctx: &mut QueryCtx<'_>) -> Decision<'s> {
        let mut call = Call::new(ctx, self.name.clone(), self.log.gate.clone());
        if self.compiled {
            ctx.fill(self.fields);
            call.policy = Some(Box::new(ctx.policy_ctx().clone()));
            call.inputs = self.inputs.clone();
        }
        let mut claim = self.pool.claim(ctx.worker());
        let inst = match claim.get_or_try_init(|| self.instantiate()) {
            Ok(i) => i,
            Err(e) => return self.failed(&self.failures.error, &e.to_string()),
        };
        let (r, mut call) = match self.run(inst, ctx.facts, call) {
            Ok(x) => x,
            Err(e) => {
                claim.discard();
                return self.failed(&self.failures.error, &e.to_string());
            }
        };
        let over_cap = std::mem::take(&mut inst.store.data_mut().over_cap);
        ctx.note_fields_read(call.read);
        if r.is_err() {
            // A trapped instance is thrown away: the next call gets a new one.
            claim.discard();
        }
        match r {
            Ok(0) => Decision::Pass,
            Ok(1) => call.finish(),
            Ok(rc) => self.failed(&self.failures.error, &format!("process returned {rc}")),
            Err(e) => match e.downcast_ref::<Exit>() {
                Some(Exit(0)) => call.finish(),
                Some(Exit(code)) => {
                    self.failed(&self.failures.error, &format!("proc_exit({code})"))
                }
                None => {
                    let counter = match (over_cap, e.downcast_ref::<wasmtime::Trap>()) {
                        (true, _) => &self.failures.memory,
                        (_, Some(wasmtime::Trap::Interrupt)) => &self.failures.budget,
                        (_, Some(_)) => &self.failures.trap,
                        _ => &self.failures.error,
                    };
                    self.failed(counter, &describe(&e, over_cap))
                }
            },
        }
    }

    fn destroy(&mut self) {
        let instances = self.pool.drain_mut();
        for mut i in instances {
            i.store.set_epoch_deadline(self.ticks());
            if let Err(e) = i.destroy.call(&mut i.store, ()) {
                tracing::warn!(plugin = %self.name, error = %e, "destroy failed");
            }
        }
        let dropped = self.log.gate.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(plugin = %self.name, dropped, "wasm output lines dropped by the rate limit");
        }
    }

    fn rule_names(&self) -> &super::RuleNames {
        &self.rules
    }

    fn failures(&self) -> Vec<(&'static str, u64)> {
        let mut r = self.failures.report(true);
        r.push((
            "capability",
            self.log
                .gate
                .denied
                .load(std::sync::atomic::Ordering::Relaxed),
        ));
        r
    }

    fn fields_used(&self) -> u32 {
        // A compiled policy gets the fields it declares, filled before the
        // call; anything else a module reads comes through host calls.
        self.fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn store() -> Store<Host> {
        Store::new(
            engine().expect("engine"),
            Host {
                call: None,
                memory: None,
                mem_cap: 1 << 20,
                over_cap: false,
                log: Arc::new(LogSink {
                    plugin: "t".into(),
                    gate: LogGate::new(),
                }),
                out: [Vec::new(), Vec::new()],
                rng: 1,
                regexes: HashMap::new(),
                verdicts: HashMap::new(),
            },
        )
    }

    /// The linker defines exactly the ABI table (host functions and the
    /// WASI allow-list), each with the table's signature.
    #[test]
    fn linker_defines_exactly_the_abi_table() {
        let linker = linker().expect("linker");
        let mut store = store();
        let table: BTreeSet<(String, String)> = abi::HOST_IMPORTS
            .iter()
            .chain(WASI_IMPORTS)
            .map(|f| (f.module.to_string(), f.name.to_string()))
            .collect();
        let defined: BTreeSet<(String, String)> = linker
            .iter(&mut store)
            .map(|(m, n, _)| (m.to_string(), n.to_string()))
            .collect();
        assert_eq!(defined, table);
        for f in abi::HOST_IMPORTS.iter().chain(WASI_IMPORTS) {
            let Ok(wasmtime::Extern::Func(func)) = linker.get(&mut store, f.module, f.name) else {
                panic!("{}.{} is not a function", f.module, f.name);
            };
            let ty = func.ty(&store);
            assert!(
                same_type(&ty, f),
                "{}.{}: {} vs {}",
                f.module,
                f.name,
                show_type(&ty),
                f.signature()
            );
        }
    }

    /// Every module the emitter makes imports only from the table and
    /// exports what the table says: the host accepts it as it is.
    #[test]
    fn emitted_modules_import_only_from_the_table() {
        let src =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/geo.dsl"))
                .expect("examples/geo.dsl");
        let policy = dnspolicy_compiler::compile(&src).expect("checks");
        let bytes = dnspolicy_compiler::backend::wasm::emit(&policy).expect("lowers");
        let module = compile(&bytes).expect("compiles");
        for imp in module.imports() {
            let row = abi::import(imp.module(), imp.name())
                .unwrap_or_else(|| panic!("{}.{} is not in the ABI", imp.module(), imp.name()));
            assert_eq!(row.module, IMPORT_MODULE, "a compiled policy uses no WASI");
        }
        check_abi(&module).expect("the host accepts it");
    }
}
