//! WASM plugins on wasmtime, behind the [`Plugin`] trait.
//!
//! The ABI (version 1) is written down in `grammar/WASM-ABI.md`; this file
//! is its host side. In short: a module exports `memory`,
//! `dnspolicy_abi_version() -> i32` (1), `alloc`, `init`, `process` and
//! `destroy`; it imports host functions from the module `"dnspolicy"`
//! (mirroring the Lua `ctx` API) and, so that ordinary WASI toolchains'
//! output loads, the harmless part of `wasi_snapshot_preview1`. Anything
//! else is refused at load with the import's name.
//!
//! Modules are compiled once (cached by content) and instantiated per
//! concurrent caller from an [`InstancePre`]: a pool of instances, each used
//! by one query at a time. Every call runs under a wall-clock deadline
//! (epoch interruption, one tick per millisecond) and every instance under
//! a memory cap; a trap, the deadline or the cap aborts that call only, is
//! counted, and the instance is thrown away and rebuilt on the next call.

use crate::host::{Call, Failures, Limits, LogGate};
use crate::plugin::{Decision, Plugin, PluginError};
use crate::query::QueryCtx;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::{
    Caller, Config, Engine, ExternType, FuncType, InstancePre, Linker, Memory, Module,
    ResourceLimiter, Store, TypedFunc, Val, ValType,
};

/// The ABI version this host speaks (`dnspolicy_abi_version()`).
pub const ABI_VERSION: i32 = 1;
/// The host's import module.
pub const IMPORT_MODULE: &str = "dnspolicy";
/// The WASI module whose harmless part is offered.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";
/// Largest module accepted by default (bytes of `.wasm`, or of `.wat`
/// text); `limits.module_bytes` raises it for a plugin.
pub const MAX_MODULE_BYTES: usize = 16 << 20;
/// Bytes the host asks `alloc` for, once per instance, to pass the query.
pub const CTX_CAP: usize = 16 + 1024;
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

/// A value type of the ABI tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// `i32`
    I32,
    /// `i64`
    I64,
}

impl Ty {
    fn val(self) -> ValType {
        match self {
            Ty::I32 => ValType::I32,
            Ty::I64 => ValType::I64,
        }
    }
}

/// One function of the ABI: its module, name and signature.
#[derive(Debug)]
pub struct AbiFunc {
    /// Import module (or "" for an export).
    pub module: &'static str,
    /// Function name.
    pub name: &'static str,
    /// Parameter types.
    pub params: &'static [Ty],
    /// Result types.
    pub results: &'static [Ty],
}

use Ty::{I32, I64};

macro_rules! f {
    ($m:expr, $n:expr, [$($p:expr),*], [$($r:expr),*]) => {
        AbiFunc { module: $m, name: $n, params: &[$($p),*], results: &[$($r),*] }
    };
}

/// The exports every plugin module must have (besides `memory`).
pub const EXPORTS: &[AbiFunc] = &[
    f!("", "dnspolicy_abi_version", [], [I32]),
    f!("", "alloc", [I32], [I32]),
    f!("", "init", [I32, I32], [I32]),
    f!("", "process", [I32, I32], [I32]),
    f!("", "destroy", [], []),
];

/// The host functions of module `"dnspolicy"`.
pub const HOST_IMPORTS: &[AbiFunc] = &[
    f!(IMPORT_MODULE, "get_qname", [I32, I32], [I32]),
    f!(IMPORT_MODULE, "get_qtype", [], [I32]),
    f!(IMPORT_MODULE, "get_client_ip", [I32, I32], [I32]),
    f!(IMPORT_MODULE, "get_source_ip", [I32, I32], [I32]),
    f!(IMPORT_MODULE, "get_ecs", [I32, I32], [I32]),
    f!(IMPORT_MODULE, "geo_region", [I32, I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "geo_country", [I32, I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "geo_city", [I32, I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "geo_asn", [I32, I32], [I64]),
    f!(IMPORT_MODULE, "set_answer", [I32, I32, I32, I32], [I32]),
    f!(
        IMPORT_MODULE,
        "add_record",
        [I32, I32, I32, I32, I32, I32],
        [I32]
    ),
    f!(IMPORT_MODULE, "set_rcode", [I32], [I32]),
    f!(IMPORT_MODULE, "drop", [], [I32]),
    f!(IMPORT_MODULE, "truncate", [], [I32]),
    f!(IMPORT_MODULE, "forward", [I32, I32], [I32]),
    f!(IMPORT_MODULE, "log", [I32, I32, I32], []),
    f!(IMPORT_MODULE, "get_var", [I32, I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "set_verdict", [I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "regex_match", [I32, I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "get_field", [I32, I32, I32], [I32]),
    f!(IMPORT_MODULE, "set_value", [I32, I32, I32, I32], [I32]),
];

/// What a WASI function of the allow-list does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wasi {
    /// Returns `errno` and does nothing else.
    Errno(i32),
    FdWrite,
    FdRead,
    FdFdstatGet,
    ClockTimeGet,
    ClockResGet,
    RandomGet,
    ProcExit,
    /// `args_sizes_get` / `environ_sizes_get`: zero entries, zero bytes.
    SizesEmpty,
}

const ERRNO_BADF: i32 = 8;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOTSUP: i32 = 58;
const ERRNO_SPIPE: i32 = 70;

/// The part of `wasi_snapshot_preview1` a plugin may import. Files: no
/// directory is preopened, so every path call fails with EBADF; sockets and
/// `proc_raise` are not on the list at all.
const WASI: &[(AbiFunc, Wasi)] = &[
    (
        f!(WASI_MODULE, "fd_write", [I32, I32, I32, I32], [I32]),
        Wasi::FdWrite,
    ),
    (
        f!(WASI_MODULE, "fd_read", [I32, I32, I32, I32], [I32]),
        Wasi::FdRead,
    ),
    (
        f!(WASI_MODULE, "fd_close", [I32], [I32]),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(WASI_MODULE, "fd_seek", [I32, I64, I32, I32], [I32]),
        Wasi::Errno(ERRNO_SPIPE),
    ),
    (
        f!(WASI_MODULE, "fd_tell", [I32, I32], [I32]),
        Wasi::Errno(ERRNO_SPIPE),
    ),
    (
        f!(WASI_MODULE, "fd_sync", [I32], [I32]),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(WASI_MODULE, "fd_fdstat_get", [I32, I32], [I32]),
        Wasi::FdFdstatGet,
    ),
    (
        f!(WASI_MODULE, "fd_fdstat_set_flags", [I32, I32], [I32]),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(WASI_MODULE, "fd_filestat_get", [I32, I32], [I32]),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(WASI_MODULE, "fd_prestat_get", [I32, I32], [I32]),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(WASI_MODULE, "fd_prestat_dir_name", [I32, I32, I32], [I32]),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(WASI_MODULE, "fd_readdir", [I32, I32, I32, I64, I32], [I32]),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(
            WASI_MODULE,
            "path_open",
            [I32, I32, I32, I32, I32, I64, I64, I32, I32],
            [I32]
        ),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(
            WASI_MODULE,
            "path_filestat_get",
            [I32, I32, I32, I32, I32],
            [I32]
        ),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(WASI_MODULE, "path_create_directory", [I32, I32, I32], [I32]),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(WASI_MODULE, "path_remove_directory", [I32, I32, I32], [I32]),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(WASI_MODULE, "path_unlink_file", [I32, I32, I32], [I32]),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(
            WASI_MODULE,
            "path_rename",
            [I32, I32, I32, I32, I32, I32],
            [I32]
        ),
        Wasi::Errno(ERRNO_BADF),
    ),
    (
        f!(WASI_MODULE, "clock_time_get", [I32, I64, I32], [I32]),
        Wasi::ClockTimeGet,
    ),
    (
        f!(WASI_MODULE, "clock_res_get", [I32, I32], [I32]),
        Wasi::ClockResGet,
    ),
    (
        f!(WASI_MODULE, "random_get", [I32, I32], [I32]),
        Wasi::RandomGet,
    ),
    (f!(WASI_MODULE, "proc_exit", [I32], []), Wasi::ProcExit),
    (f!(WASI_MODULE, "sched_yield", [], [I32]), Wasi::Errno(0)),
    (
        f!(WASI_MODULE, "poll_oneoff", [I32, I32, I32, I32], [I32]),
        Wasi::Errno(ERRNO_NOTSUP),
    ),
    (
        f!(WASI_MODULE, "args_sizes_get", [I32, I32], [I32]),
        Wasi::SizesEmpty,
    ),
    (
        f!(WASI_MODULE, "args_get", [I32, I32], [I32]),
        Wasi::Errno(0),
    ),
    (
        f!(WASI_MODULE, "environ_sizes_get", [I32, I32], [I32]),
        Wasi::SizesEmpty,
    ),
    (
        f!(WASI_MODULE, "environ_get", [I32, I32], [I32]),
        Wasi::Errno(0),
    ),
];

fn func_type(engine: &Engine, f: &AbiFunc) -> FuncType {
    FuncType::new(
        engine,
        f.params.iter().map(|t| t.val()),
        f.results.iter().map(|t| t.val()),
    )
}

fn show(params: &[Ty], results: &[Ty]) -> String {
    let list = |ts: &[Ty]| {
        ts.iter()
            .map(|t| match t {
                Ty::I32 => "i32",
                Ty::I64 => "i64",
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

fn show_type(ty: &FuncType) -> String {
    let list = |ts: &mut dyn Iterator<Item = ValType>| {
        ts.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "({}) -> ({})",
        list(&mut ty.params()),
        list(&mut ty.results())
    )
}

fn same_type(ty: &FuncType, f: &AbiFunc) -> bool {
    ty.params().len() == f.params.len()
        && ty.results().len() == f.results.len()
        && ty.params().zip(f.params).all(|(a, b)| a.matches(&b.val()))
        && ty
            .results()
            .zip(f.results)
            .all(|(a, b)| a.matches(&b.val()))
}

/// The engine every plugin shares, with its epoch ticker.
fn engine() -> Result<&'static Engine, String> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut cfg = Config::new();
            cfg.epoch_interruption(true);
            cfg.max_wasm_stack(MAX_WASM_STACK);
            // One memory per instance, so the memory cap is the instance's cap.
            cfg.wasm_multi_memory(false);
            let engine = Engine::new(&cfg).map_err(|e| e.to_string())?;
            let ticker = engine.weak();
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    match ticker.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => return,
                    }
                })
                .map_err(|e| e.to_string())?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Compiles `bytes` (binary or text), reusing an earlier compilation of the
/// same content: a reload that leaves a module unchanged costs no compile.
fn compile(bytes: &[u8]) -> Result<Module, String> {
    type Cache = HashMap<u64, Vec<(Arc<[u8]>, Module)>>;
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    let engine = engine()?;
    let key = {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(bytes)
    };
    let cache = CACHE.get_or_init(Default::default);
    if let Some(m) = cache.lock().ok().and_then(|c| {
        c.get(&key)?
            .iter()
            .find(|(b, _)| &**b == bytes)
            .map(|(_, m)| m.clone())
    }) {
        return Ok(m);
    }
    let wasm = if bytes.starts_with(b"\0asm") {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        std::borrow::Cow::Owned(
            wat::parse_bytes(bytes)
                .map_err(|e| wat_error(&e))?
                .into_owned(),
        )
    };
    let module = Module::new(engine, &wasm).map_err(|e| format!("{e:#}"))?;
    if let Ok(mut c) = cache.lock() {
        // Old versions of reloaded plugins pile up; start over past a bound.
        if c.values().map(Vec::len).sum::<usize>() >= 64 {
            c.clear();
        }
        c.entry(key)
            .or_default()
            .push((bytes.into(), module.clone()));
    }
    Ok(module)
}

/// A WAT error on one line: the message and where (`line:column`).
fn wat_error(e: &wat::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines();
    let msg = lines.next().unwrap_or("invalid text");
    let at = lines
        .next()
        .and_then(|l| l.split("<anon>:").nth(1))
        .map(|at| format!(" at line:column {at}"))
        .unwrap_or_default();
    format!("not a WASM binary (no \\0asm header), and not valid WAT text: {msg}{at}")
}

/// Checks a compiled module against the ABI: every import is a host
/// function or on the WASI allow-list with the right type, and every
/// export is there with the right type. The error names the item.
pub fn check_abi(module: &Module) -> Result<(), String> {
    for imp in module.imports() {
        let (m, n) = (imp.module(), imp.name());
        let Some(abi) = HOST_IMPORTS
            .iter()
            .chain(WASI.iter().map(|(f, _)| f))
            .find(|f| f.module == m && f.name == n)
        else {
            return Err(format!(
                "import `{m}.{n}` is not part of the plugin ABI (module `{IMPORT_MODULE}`) or the WASI allow-list"
            ));
        };
        match imp.ty() {
            ExternType::Func(ty) if same_type(&ty, abi) => {}
            ExternType::Func(ty) => {
                return Err(format!(
                    "import `{m}.{n}` has type {}; the ABI's is {}",
                    show_type(&ty),
                    show(abi.params, abi.results)
                ))
            }
            _ => return Err(format!("import `{m}.{n}` must be a function")),
        }
    }
    match module.get_export("memory") {
        Some(ExternType::Memory(m)) if !m.is_64() => {}
        Some(_) => return Err("export `memory` must be a 32-bit linear memory".into()),
        None => return Err("missing export `memory`".into()),
    }
    for abi in EXPORTS {
        match module.get_export(abi.name) {
            Some(ExternType::Func(ty)) if same_type(&ty, abi) => {}
            Some(ExternType::Func(ty)) => {
                return Err(format!(
                    "export `{}` has type {}; the ABI's is {}",
                    abi.name,
                    show_type(&ty),
                    show(abi.params, abi.results)
                ))
            }
            Some(_) => return Err(format!("export `{}` must be a function", abi.name)),
            None => return Err(format!("missing export `{}`", abi.name)),
        }
    }
    Ok(())
}

/// Compiles a module and checks it against the ABI, without running it
/// (`dnspolicy check`).
pub fn check_module(bytes: &[u8], max: usize) -> Result<(), String> {
    if bytes.len() > max {
        return Err(format!(
            "module is {} bytes; the limit is {max}",
            bytes.len()
        ));
    }
    check_abi(&compile(bytes)?)
}

/// `proc_exit(code)`: ends the call that made it.
#[derive(Debug)]
struct Exit(i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "proc_exit({})", self.0)
    }
}

impl std::error::Error for Exit {}

/// Where a plugin's stdout/stderr lines go: the server log, through the
/// plugin's rate limit.
struct LogSink {
    plugin: Arc<str>,
    gate: Arc<LogGate>,
}

impl LogSink {
    fn line(&self, fd: i32, text: &[u8]) {
        if !self.gate.allow() {
            return;
        }
        let text = String::from_utf8_lossy(&text[..text.len().min(512)]);
        let plugin = &*self.plugin;
        if fd == 2 {
            tracing::warn!(%plugin, "wasm stderr: {text}");
        } else {
            tracing::info!(%plugin, "wasm stdout: {text}");
        }
    }
}

/// The store's data: the current call, the memory, the limits.
struct Host {
    call: Option<Call>,
    memory: Option<Memory>,
    mem_cap: usize,
    /// The last call or step hit the memory cap.
    over_cap: bool,
    log: Arc<LogSink>,
    out: [Vec<u8>; 2],
    rng: u64,
    regexes: HashMap<Vec<u8>, Option<regex::bytes::Regex>>,
    verdicts: HashMap<Vec<u8>, dnspolicy_compiler::Verdict>,
}

impl ResourceLimiter for Host {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.mem_cap {
            self.over_cap = true;
            return Err(wasmtime::Error::msg(format!(
                "memory cap of {} bytes reached",
                self.mem_cap
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }
}

impl Host {
    fn write_out(&mut self, fd: i32, bytes: &[u8]) {
        let buf = &mut self.out[usize::from(fd == 2)];
        buf.extend_from_slice(bytes);
        // One pass over the buffer, one drain: linear in what was written.
        let mut start = 0;
        while let Some(i) = buf[start..].iter().position(|&b| b == b'\n') {
            self.log.line(fd, &buf[start..start + i]);
            start += i + 1;
        }
        buf.drain(..start);
        // A line without an end is flushed once it is long.
        if buf.len() > 512 {
            let line = std::mem::take(buf);
            self.log.line(fd, &line);
        }
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: WASI random_get is for hash seeds and jitter, not keys.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

type Cx<'a> = Caller<'a, Host>;

fn oob(ptr: i32, len: i32) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "out-of-bounds pointer passed to the host: {} bytes at {}",
        len as u32, ptr as u32
    ))
}

fn range(c: &Cx<'_>, ptr: i32, len: i32) -> wasmtime::Result<std::ops::Range<usize>> {
    let mem = c.data().memory.ok_or_else(|| oob(ptr, len))?;
    let (start, n) = (ptr as u32 as usize, len as u32 as usize);
    let end = start.checked_add(n).ok_or_else(|| oob(ptr, len))?;
    if end > mem.data_size(c) {
        return Err(oob(ptr, len));
    }
    Ok(start..end)
}

/// Bytes of the module's memory; a bad pointer or an argument over
/// [`MAX_ARG_BYTES`] aborts the call.
fn read(c: &mut Cx<'_>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    read_max(c, ptr, len, MAX_ARG_BYTES)
}

fn read_max(c: &mut Cx<'_>, ptr: i32, len: i32, max: usize) -> wasmtime::Result<Vec<u8>> {
    if len as u32 as usize > max {
        return Err(wasmtime::Error::msg(format!(
            "argument of {} bytes passed to the host; the limit is {max}",
            len as u32
        )));
    }
    let r = range(c, ptr, len)?;
    let mem = c.data().memory.ok_or_else(|| oob(ptr, len))?;
    Ok(mem.data(&*c)[r].to_vec())
}

/// Text from the module's memory; `None` when it is not UTF-8.
fn read_str(c: &mut Cx<'_>, ptr: i32, len: i32) -> wasmtime::Result<Option<String>> {
    Ok(String::from_utf8(read(c, ptr, len)?).ok())
}

/// Writes `bytes` at `ptr` when they fit in `cap`; returns their length
/// either way, so a module can retry with a larger buffer.
fn write(c: &mut Cx<'_>, ptr: i32, cap: i32, bytes: &[u8]) -> wasmtime::Result<i32> {
    let r = range(c, ptr, cap)?;
    if bytes.len() <= r.len() {
        let mem = c.data().memory.ok_or_else(|| oob(ptr, cap))?;
        mem.data_mut(&mut *c)[r.start..r.start + bytes.len()].copy_from_slice(bytes);
    }
    Ok(bytes.len() as i32)
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The address argument of the geo calls: length 0 is the client.
fn ip_arg(c: &mut Cx<'_>, ptr: i32, len: i32) -> wasmtime::Result<Option<Option<IpAddr>>> {
    Ok(match len {
        0 => Some(None),
        4 => {
            let b: [u8; 4] = read(c, ptr, 4)?.try_into().map_err(|_| oob(ptr, 4))?;
            Some(Some(IpAddr::from(b)))
        }
        16 => {
            let b: [u8; 16] = read(c, ptr, 16)?.try_into().map_err(|_| oob(ptr, 16))?;
            Some(Some(IpAddr::from(b)))
        }
        _ => None,
    })
}

fn no_call() -> wasmtime::Error {
    wasmtime::Error::msg("host function called outside `process`")
}

/// Runs `f` on the current call; `None` outside `process` (in `init`).
fn with_call<R>(c: &mut Cx<'_>, f: impl FnOnce(&mut Call) -> R) -> wasmtime::Result<R> {
    c.data_mut().call.as_mut().map(f).ok_or_else(no_call)
}

/// A host-side refusal of an argument: `-1`, and a note in the log.
fn refused(c: &mut Cx<'_>, what: &str, e: String) -> i32 {
    if let Some(call) = c.data_mut().call.as_mut() {
        call.log("wasm", "debug", &format!("{what}: {e}"));
    }
    -1
}

fn geo_text(
    c: &mut Cx<'_>,
    ip: (i32, i32),
    buf: (i32, i32),
    pick: fn(&crate::geo::GeoInfo) -> String,
) -> wasmtime::Result<i32> {
    let Some(ip) = ip_arg(c, ip.0, ip.1)? else {
        return Ok(-1);
    };
    let info = with_call(c, |call| call.geo_of(ip))?;
    write(c, buf.0, buf.1, pick(&info).as_bytes())
}

fn define_host(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    let m = IMPORT_MODULE;
    linker.func_wrap(m, "get_qname", |mut c: Cx<'_>, buf: i32, cap: i32| {
        let q = with_call(&mut c, |call| call.qname.clone())?;
        write(&mut c, buf, cap, q.as_bytes())
    })?;
    linker.func_wrap(m, "get_qtype", |mut c: Cx<'_>| {
        with_call(&mut c, |call| i32::from(call.qtype))
    })?;
    linker.func_wrap(m, "get_client_ip", |mut c: Cx<'_>, buf: i32, cap: i32| {
        let ip = with_call(&mut c, Call::client_ip)?;
        write(&mut c, buf, cap, &ip_bytes(ip))
    })?;
    linker.func_wrap(m, "get_source_ip", |mut c: Cx<'_>, buf: i32, cap: i32| {
        let ip = with_call(&mut c, |call| call.client)?;
        write(&mut c, buf, cap, &ip_bytes(ip))
    })?;
    linker.func_wrap(
        m,
        "get_ecs",
        |mut c: Cx<'_>, buf: i32, cap: i32| match with_call(&mut c, Call::ecs)? {
            Some((ip, len)) => {
                let mut b = ip_bytes(ip);
                b.push(len);
                write(&mut c, buf, cap, &b)
            }
            None => Ok(0),
        },
    )?;
    linker.func_wrap(
        m,
        "geo_region",
        |mut c: Cx<'_>, ip: i32, ip_len: i32, buf: i32, cap: i32| {
            geo_text(&mut c, (ip, ip_len), (buf, cap), |g| g.region.to_string())
        },
    )?;
    linker.func_wrap(
        m,
        "geo_country",
        |mut c: Cx<'_>, ip: i32, ip_len: i32, buf: i32, cap: i32| {
            geo_text(&mut c, (ip, ip_len), (buf, cap), |g| g.country.to_string())
        },
    )?;
    linker.func_wrap(
        m,
        "geo_city",
        |mut c: Cx<'_>, ip: i32, ip_len: i32, buf: i32, cap: i32| {
            geo_text(&mut c, (ip, ip_len), (buf, cap), |g| g.city.to_string())
        },
    )?;
    linker.func_wrap(m, "geo_asn", |mut c: Cx<'_>, ip: i32, ip_len: i32| {
        let Some(ip) = ip_arg(&mut c, ip, ip_len)? else {
            return Ok(-1i64);
        };
        with_call(&mut c, |call| call.geo_of(ip).asn)
    })?;
    linker.func_wrap(
        m,
        "set_answer",
        |mut c: Cx<'_>, ptr: i32, len: i32, rtype: i32, ttl: i32| {
            let Some(target) = read_str(&mut c, ptr, len)? else {
                return Ok(refused(&mut c, "set_answer", "target is not UTF-8".into()));
            };
            let rtype = u16::try_from(rtype).ok().filter(|&t| t != 0);
            let Ok(ttl) = u32::try_from(ttl) else {
                return Ok(refused(
                    &mut c,
                    "set_answer",
                    format!("TTL {ttl} is negative"),
                ));
            };
            match with_call(&mut c, |call| call.set_answer(&target, rtype, ttl))? {
                Ok(()) => Ok(0),
                Err(e) => Ok(refused(&mut c, "set_answer", e)),
            }
        },
    )?;
    linker.func_wrap(
        m,
        "add_record",
        |mut c: Cx<'_>, np: i32, nl: i32, rtype: i32, dp: i32, dl: i32, ttl: i32| {
            let (Some(name), Some(data)) = (read_str(&mut c, np, nl)?, read_str(&mut c, dp, dl)?)
            else {
                return Ok(refused(&mut c, "add_record", "text is not UTF-8".into()));
            };
            let (Ok(rtype), Ok(ttl)) = (u16::try_from(rtype), u32::try_from(ttl)) else {
                return Ok(refused(
                    &mut c,
                    "add_record",
                    format!("bad type {rtype} or TTL {ttl}"),
                ));
            };
            match with_call(&mut c, |call| call.add_record(&name, rtype, &data, ttl))? {
                Ok(()) => Ok(0),
                Err(e) => Ok(refused(&mut c, "add_record", e)),
            }
        },
    )?;
    linker.func_wrap(m, "set_rcode", |mut c: Cx<'_>, rcode: i32| {
        let name = match rcode {
            0 => "NOERROR",
            2 => "SERVFAIL",
            3 => "NXDOMAIN",
            5 => "REFUSED",
            _ => return Ok(refused(&mut c, "set_rcode", format!("rcode {rcode}"))),
        };
        with_call(&mut c, |call| call.set_rcode(name).map_or(-1, |()| 0))
    })?;
    linker.func_wrap(m, "drop", |mut c: Cx<'_>| {
        with_call(&mut c, |call| {
            call.drop_query();
            0i32
        })
    })?;
    linker.func_wrap(m, "truncate", |mut c: Cx<'_>| {
        with_call(&mut c, |call| {
            call.truncate();
            0i32
        })
    })?;
    linker.func_wrap(m, "forward", |mut c: Cx<'_>, ptr: i32, len: i32| {
        let Some(pool) = read_str(&mut c, ptr, len)? else {
            return Ok(refused(&mut c, "forward", "pool is not UTF-8".into()));
        };
        with_call(&mut c, |call| {
            call.forward(&pool);
            0i32
        })
    })?;
    linker.func_wrap(m, "log", |mut c: Cx<'_>, level: i32, ptr: i32, len: i32| {
        let msg = read(&mut c, ptr, len.min(4096))?;
        let msg = String::from_utf8_lossy(&msg);
        let level = match level {
            0 => "debug",
            2 => "warn",
            3 => "error",
            _ => "info",
        };
        match c.data_mut().call.as_mut() {
            Some(call) => call.log("wasm", level, &msg),
            None => {
                let gate = c.data().log.clone();
                gate.line(1, msg.as_bytes());
            }
        }
        Ok(())
    })?;
    linker.func_wrap(
        m,
        "get_var",
        |mut c: Cx<'_>, ptr: i32, len: i32, _buf: i32, _cap: i32| {
            // The pointer is still checked: a bad one is a bug to report.
            read(&mut c, ptr, len)?;
            // No injected variables reach the server yet: every one is missing.
            Ok(-1i32)
        },
    )?;
    linker.func_wrap(
        m,
        "set_verdict",
        |mut c: Cx<'_>, ptr: i32, len: i32, rule: i32| {
            let text = read(&mut c, ptr, len)?;
            // Compiled policies hand over the same few verdicts again and
            // again: parse each text once per instance.
            let cached = c.data().verdicts.get(&text).cloned();
            let verdict = cached.or_else(|| {
                let v = serde_json::from_slice(&text)
                    .ok()
                    .and_then(|j| dnspolicy_compiler::Verdict::from_json(&j))?;
                let host = c.data_mut();
                if host.verdicts.len() >= 256 {
                    host.verdicts.clear();
                }
                host.verdicts.insert(text.clone(), v.clone());
                Some(v)
            });
            let Some(verdict) = verdict else {
                let shown: String = String::from_utf8_lossy(&text).chars().take(200).collect();
                return Ok(refused(
                    &mut c,
                    "set_verdict",
                    format!("not a verdict: {shown}"),
                ));
            };
            let rule = usize::try_from(rule).ok();
            with_call(&mut c, |call| {
                call.set_verdict(verdict, rule);
                0i32
            })
        },
    )?;
    linker.func_wrap(
        m,
        "get_field",
        |mut c: Cx<'_>, id: i32, buf: i32, cap: i32| {
            let Ok(id) = u32::try_from(id) else {
                return Ok(-1);
            };
            match with_call(&mut c, |call| call.field(id))? {
                Some(bytes) => write(&mut c, buf, cap, bytes.bytes()),
                None => Ok(-1),
            }
        },
    )?;
    linker.func_wrap(
        m,
        "set_value",
        |mut c: Cx<'_>, code: i32, ptr: i32, len: i32, rule: i32| {
            let bytes = read(&mut c, ptr, len)?;
            let Some(v) = dnspolicy_compiler::wasm::decode_value(code, &bytes) else {
                return Ok(refused(
                    &mut c,
                    "set_value",
                    format!("not a value of type {code}"),
                ));
            };
            let rule = usize::try_from(rule).ok();
            with_call(&mut c, |call| {
                call.set_verdict(dnspolicy_compiler::Verdict::Value(v), rule);
                0i32
            })
        },
    )?;
    linker.func_wrap(
        m,
        "regex_match",
        |mut c: Cx<'_>, pp: i32, pl: i32, sp: i32, sl: i32| {
            let pattern = read_max(&mut c, pp, pl, MAX_PATTERN_BYTES)?;
            let subject = read(&mut c, sp, sl)?;
            let host = c.data_mut();
            if !host.regexes.contains_key(&pattern) {
                if host.regexes.len() >= 64 {
                    host.regexes.clear();
                }
                let re = std::str::from_utf8(&pattern).ok().and_then(|p| {
                    regex::bytes::RegexBuilder::new(p)
                        .size_limit(1 << 20)
                        .dfa_size_limit(1 << 20)
                        .build()
                        .ok()
                });
                host.regexes.insert(pattern.clone(), re);
            }
            Ok(match host.regexes.get(&pattern) {
                Some(Some(re)) => i32::from(re.is_match(&subject)),
                _ => -1,
            })
        },
    )?;
    Ok(())
}

fn wasi_call(c: &mut Cx<'_>, what: Wasi, args: &[Val]) -> wasmtime::Result<Option<i32>> {
    let a = |i: usize| args.get(i).and_then(Val::i32).unwrap_or(0);
    Ok(Some(match what {
        Wasi::Errno(e) => e,
        Wasi::ProcExit => return Err(wasmtime::Error::new(Exit(a(0)))),
        Wasi::FdWrite => {
            let (fd, iovs, n, out) = (a(0), a(1), a(2), a(3));
            if fd != 1 && fd != 2 {
                return Ok(Some(ERRNO_BADF));
            }
            if !(0..=1024).contains(&n) {
                return Ok(Some(ERRNO_INVAL));
            }
            let table = read(c, iovs, n * 8)?;
            let mut total = 0u32;
            let mut budget = MAX_WRITE_BYTES;
            for iov in table.chunks_exact(8) {
                let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                // Reported as written either way; past the budget it is dropped.
                range(c, ptr, len)?;
                total = total.saturating_add(len as u32);
                let take = (len as u32 as usize).min(budget);
                if take > 0 {
                    let bytes = read(c, ptr, take as i32)?;
                    budget -= take;
                    c.data_mut().write_out(fd, &bytes);
                }
            }
            write(c, out, 4, &total.to_le_bytes())?;
            0
        }
        Wasi::FdRead => {
            if a(0) != 0 {
                return Ok(Some(ERRNO_BADF));
            }
            // stdin is empty.
            write(c, a(3), 4, &0u32.to_le_bytes())?;
            0
        }
        Wasi::FdFdstatGet => {
            if !(0..=2).contains(&a(0)) {
                return Ok(Some(ERRNO_BADF));
            }
            // A character device, no flags; rights: fd_read or fd_write.
            let mut stat = [0u8; 24];
            stat[0] = 2;
            let rights: u64 = if a(0) == 0 { 1 << 1 } else { 1 << 6 };
            stat[8..16].copy_from_slice(&rights.to_le_bytes());
            write(c, a(1), 24, &stat)?;
            0
        }
        Wasi::ClockTimeGet => {
            let ns: u64 = match a(0) {
                0 => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
                1..=3 => {
                    static START: OnceLock<std::time::Instant> = OnceLock::new();
                    START
                        .get_or_init(std::time::Instant::now)
                        .elapsed()
                        .as_nanos() as u64
                }
                _ => return Ok(Some(ERRNO_INVAL)),
            };
            write(c, a(2), 8, &ns.to_le_bytes())?;
            0
        }
        Wasi::ClockResGet => {
            write(c, a(1), 8, &1000u64.to_le_bytes())?;
            0
        }
        Wasi::RandomGet => {
            let (ptr, len) = (a(0), a(1));
            if len as u32 as usize > MAX_ARG_BYTES {
                return Ok(Some(ERRNO_INVAL));
            }
            let r = range(c, ptr, len)?;
            let mut bytes = vec![0u8; r.len()];
            for chunk in bytes.chunks_mut(8) {
                let v = c.data_mut().next_random().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            write(c, ptr, len, &bytes)?;
            0
        }
        Wasi::SizesEmpty => {
            write(c, a(0), 4, &0u32.to_le_bytes())?;
            write(c, a(1), 4, &0u32.to_le_bytes())?;
            0
        }
    }))
}

fn define_wasi(linker: &mut Linker<Host>, engine: &Engine) -> wasmtime::Result<()> {
    for (abi, what) in WASI {
        let what = *what;
        linker.func_new(
            abi.module,
            abi.name,
            func_type(engine, abi),
            move |mut c, args, results| {
                if let Some(errno) = wasi_call(&mut c, what, args)? {
                    if let Some(r) = results.first_mut() {
                        *r = Val::I32(errno);
                    }
                }
                Ok(())
            },
        )?;
    }
    Ok(())
}

/// The linker with every host function of the ABI.
fn linker() -> Result<Linker<Host>, String> {
    let engine = engine()?;
    let mut l = Linker::new(engine);
    define_host(&mut l).map_err(|e| e.to_string())?;
    define_wasi(&mut l, engine).map_err(|e| e.to_string())?;
    Ok(l)
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
    pool: Mutex<Vec<Instance>>,
    failures: Failures,
    log: Arc<LogSink>,
    rules: Vec<String>,
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
        let refuse = |reason: String| PluginError::Module {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() > limits.module_bytes {
            return Err(refuse(format!(
                "module is {} bytes; the limit is {}",
                bytes.len(),
                limits.module_bytes
            )));
        }
        let module = compile(bytes).map_err(refuse)?;
        check_abi(&module).map_err(refuse)?;
        let pre = linker()
            .and_then(|l| l.instantiate_pre(&module).map_err(|e| format!("{e:#}")))
            .map_err(refuse)?;
        let sections = custom_sections(bytes);
        let rules = sections
            .get("dnspolicy.rules")
            .map(|s| {
                String::from_utf8_lossy(s)
                    .lines()
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let fields = sections
            .get("dnspolicy.fields")
            .and_then(|s| std::str::from_utf8(s).ok()?.trim().parse::<u32>().ok());
        let inputs: Vec<(String, dnspolicy_compiler::Type)> = sections
            .get("dnspolicy.inputs")
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
        let p = WasmPlugin {
            name: label.clone(),
            pre,
            limits,
            config: serde_json::to_vec(config).unwrap_or_else(|_| b"null".to_vec()),
            pool: Mutex::new(Vec::new()),
            failures: Failures::default(),
            log: Arc::new(LogSink {
                plugin: label,
                gate: LogGate::new(),
            }),
            rules,
            fields: fields.unwrap_or(0),
            compiled: fields.is_some(),
            inputs: inputs.into(),
        };
        let first = p.instantiate().map_err(refuse)?;
        p.give_back(first);
        Ok(p)
    }

    fn ticks(&self) -> u64 {
        self.limits.deadline.as_millis() as u64 + 1
    }

    /// A new instance, ready for `process`.
    fn instantiate(&self) -> Result<Instance, String> {
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
            format!("{step}: {}", describe(&e, store.data().over_cap))
        };
        store.set_epoch_deadline(self.ticks());
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| what("instantiate", e, &store))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or("missing export `memory`")?;
        store.data_mut().memory = Some(memory);
        if let Ok(init) = instance.get_typed_func::<(), ()>(&mut store, "_initialize") {
            store.set_epoch_deadline(self.ticks());
            init.call(&mut store, ())
                .map_err(|e| what("_initialize", e, &store))?;
        }
        let typed = |store: &mut Store<Host>, name: &str| {
            instance
                .get_func(&mut *store, name)
                .ok_or_else(|| format!("missing export `{name}`"))
        };
        let version = typed(&mut store, "dnspolicy_abi_version")?
            .typed::<(), i32>(&store)
            .map_err(|e| e.to_string())?;
        store.set_epoch_deadline(self.ticks());
        let v = version
            .call(&mut store, ())
            .map_err(|e| what("dnspolicy_abi_version", e, &store))?;
        if v != ABI_VERSION {
            return Err(format!(
                "dnspolicy_abi_version() is {v}; this host speaks version {ABI_VERSION}"
            ));
        }
        let alloc = typed(&mut store, "alloc")?
            .typed::<i32, i32>(&store)
            .map_err(|e| e.to_string())?;
        let init = typed(&mut store, "init")?
            .typed::<(i32, i32), i32>(&store)
            .map_err(|e| e.to_string())?;
        let place = |store: &mut Store<Host>, len: usize| -> Result<i32, String> {
            store.set_epoch_deadline(self.ticks());
            let ptr = alloc
                .call(&mut *store, len as i32)
                .map_err(|e| what("alloc", e, store))?;
            let end = (ptr as u32 as usize).checked_add(len);
            if ptr == 0 || end.is_none_or(|end| end > memory.data_size(&*store)) {
                return Err(format!("alloc({len}) returned {ptr}, outside memory"));
            }
            Ok(ptr)
        };
        let cfg_ptr = place(&mut store, self.config.len())?;
        memory
            .write(&mut store, cfg_ptr as usize, &self.config)
            .map_err(|e| e.to_string())?;
        store.set_epoch_deadline(self.ticks());
        let rc = init
            .call(&mut store, (cfg_ptr, self.config.len() as i32))
            .map_err(|e| what("init", e, &store))?;
        if rc != 0 {
            return Err(format!("init returned {rc}"));
        }
        let ctx_ptr = place(&mut store, CTX_CAP)?;
        let process = typed(&mut store, "process")?
            .typed::<(i32, i32), i32>(&store)
            .map_err(|e| e.to_string())?;
        let destroy = typed(&mut store, "destroy")?
            .typed::<(), ()>(&store)
            .map_err(|e| e.to_string())?;
        Ok(Instance {
            store,
            process,
            destroy,
            ctx_ptr,
        })
    }

    fn take(&self) -> Result<Instance, String> {
        if let Some(i) = self.pool.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(i);
        }
        self.instantiate()
    }

    fn give_back(&self, mut inst: Instance) {
        inst.store.data_mut().over_cap = false;
        if let Ok(mut p) = self.pool.lock() {
            p.push(inst);
        }
    }

    fn failed(&self, counter: &AtomicU64, what: &str) -> Decision {
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(plugin = %self.name, error = %what, "wasm process failed");
        self.limits.on_failure()
    }
}

impl WasmPlugin {
    /// Makes one more instance and pools it (instantiate, `_initialize`,
    /// ABI version, `init`, query buffer): what a new concurrent caller or
    /// a rebuild after a trap costs. For benchmarks and warm-up.
    pub fn add_instance(&self) -> Result<(), String> {
        let i = self.instantiate()?;
        self.give_back(i);
        Ok(())
    }

    /// Drops the pooled instances (they are rebuilt on demand).
    pub fn drain_pool(&self) {
        if let Ok(mut p) = self.pool.lock() {
            p.clear();
        }
    }

    /// Evaluates a compiled policy module on a context, as `dnspolicy eval
    /// --backend wasm` does: the verdict as the module set it (`None`: no
    /// rule decided) and the deciding rule's index.
    pub fn eval_context(
        &self,
        ctx: &dnspolicy_compiler::Context,
    ) -> Result<(Option<dnspolicy_compiler::Verdict>, Option<usize>), String> {
        let mut call = Call::from_context(ctx, self.name.clone(), self.log.gate.clone());
        call.inputs = self.inputs.clone();
        let facts = crate::query::QueryFacts {
            client: call.client,
            ecs: None,
            qname: call.qname.clone(),
            qtype: call.qtype,
            qclass: "IN",
            transport: "udp",
            dnssec_ok: false,
            recursion_desired: false,
        };
        let (inst, r, call) = self.run(&facts, call)?;
        match r {
            Ok(0) => {
                self.give_back(inst);
                Ok((None, None))
            }
            Ok(1) => {
                self.give_back(inst);
                Ok(call.verdict.map_or((None, None), |(v, r)| (Some(v), r)))
            }
            Ok(rc) => Err(format!("process returned {rc}")),
            Err(e) => Err(describe(&e, inst.store.data().over_cap)),
        }
    }
}

impl WasmPlugin {
    /// One `process` call: an instance from the pool, the query written into
    /// its buffer, `call` in its store for the host functions, and back.
    /// The caller decides whether the instance returns to the pool.
    fn run(
        &self,
        facts: &crate::query::QueryFacts,
        call: Call,
    ) -> Result<(Instance, wasmtime::Result<i32>, Call), String> {
        let mut inst = self.take()?;
        let memory = inst.store.data().memory.ok_or("no memory")?;
        // Written in place: the buffer was checked to lie in memory when
        // the instance was made, and memory never shrinks.
        let at = inst.ctx_ptr as usize;
        let len = memory
            .data_mut(&mut inst.store)
            .get_mut(at..at + CTX_CAP)
            .map(|dst| encode_ctx_into(facts, dst))
            .ok_or("context buffer outside memory")?;
        inst.store.data_mut().call = Some(call);
        inst.store.set_epoch_deadline(self.ticks());
        let r = inst
            .process
            .call(&mut inst.store, (inst.ctx_ptr, len as i32));
        let call = inst.store.data_mut().call.take().ok_or("lost the call")?;
        Ok((inst, r, call))
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

/// Writes the query into `dst` (at least [`CTX_CAP`] bytes) as `process`
/// sees it; returns the length written.
fn encode_ctx_into(facts: &crate::query::QueryFacts, dst: &mut [u8]) -> usize {
    let qname = facts.qname.as_bytes();
    let qname = &qname[..qname
        .len()
        .min(CTX_CAP - 16)
        .min(dst.len().saturating_sub(16))];
    let class: u16 = match facts.qclass {
        "IN" => 1,
        "CH" => 3,
        "HS" => 4,
        "NONE" => 254,
        "ANY" => 255,
        _ => 0,
    };
    let flags = u8::from(facts.recursion_desired)
        | u8::from(facts.dnssec_ok) << 1
        | u8::from(facts.ecs.is_some()) << 2;
    let mut head = [0u8; 16];
    head[0..4].copy_from_slice(&(ABI_VERSION as u32).to_le_bytes());
    head[4..6].copy_from_slice(&facts.qtype.to_le_bytes());
    head[6..8].copy_from_slice(&class.to_le_bytes());
    head[8] = u8::from(facts.transport == "tcp");
    head[9] = flags;
    head[10..12].copy_from_slice(&(qname.len() as u16).to_le_bytes());
    let Some(h) = dst.get_mut(..16) else {
        return 0;
    };
    h.copy_from_slice(&head);
    dst[16..16 + qname.len()].copy_from_slice(qname);
    16 + qname.len()
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

    fn apply(&self, ctx: &mut QueryCtx<'_>) -> Decision {
        let mut call = Call::new(ctx, self.name.clone(), self.log.gate.clone());
        if self.compiled {
            ctx.fill(self.fields);
            call.policy = Some(Box::new(ctx.policy_ctx().clone()));
            call.inputs = self.inputs.clone();
        }
        let (inst, r, mut call) = match self.run(ctx.facts, call) {
            Ok(x) => x,
            Err(e) => return self.failed(&self.failures.error, &e),
        };
        ctx.note_fields_read(call.read);
        match r {
            Ok(0) => {
                self.give_back(inst);
                Decision::Pass
            }
            Ok(1) => {
                self.give_back(inst);
                call.finish()
            }
            Ok(rc) => {
                self.give_back(inst);
                self.failed(&self.failures.error, &format!("process returned {rc}"))
            }
            // The instance is not given back: the next call gets a new one.
            Err(e) => match e.downcast_ref::<Exit>() {
                Some(Exit(0)) => call.finish(),
                Some(Exit(code)) => {
                    self.failed(&self.failures.error, &format!("proc_exit({code})"))
                }
                None => {
                    let over_cap = inst.store.data().over_cap;
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
        let instances = self.pool.get_mut().map(std::mem::take).unwrap_or_default();
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

    fn rule_names(&self) -> &[String] {
        &self.rules
    }

    fn failures(&self) -> Vec<(&'static str, u64)> {
        self.failures.report(true)
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

    #[test]
    fn linker_types_match_the_abi_tables() {
        let engine = engine().expect("engine");
        let linker = linker().expect("linker");
        let mut store = Store::new(
            engine,
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
        );
        for abi in HOST_IMPORTS.iter().chain(WASI.iter().map(|(f, _)| f)) {
            let Ok(wasmtime::Extern::Func(f)) = linker.get(&mut store, abi.module, abi.name) else {
                panic!("{}.{} is not defined", abi.module, abi.name);
            };
            assert!(
                same_type(&f.ty(&store), abi),
                "{}.{}: {} vs {}",
                abi.module,
                abi.name,
                show_type(&f.ty(&store)),
                show(abi.params, abi.results)
            );
        }
    }
}
