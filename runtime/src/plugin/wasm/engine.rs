//! The wasmtime side of loading: one engine for every plugin (with its
//! epoch ticker), compilation cached by content, and the ABI check of a
//! module's imports and exports against [`dnspolicy_compiler::abi`].

use super::*;

/// wasmtime's value type of an ABI type.
fn val(t: Ty) -> ValType {
    match t {
        Ty::I32 => ValType::I32,
        Ty::I64 => ValType::I64,
    }
}

pub(super) fn func_type(engine: &Engine, f: &AbiFunc) -> FuncType {
    FuncType::new(
        engine,
        f.params.iter().map(|t| val(*t)),
        f.results.iter().map(|t| val(*t)),
    )
}

pub(super) fn show_type(ty: &FuncType) -> String {
    let list = |ts: &mut dyn Iterator<Item = ValType>| {
        ts.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "({}) -> ({})",
        list(&mut ty.params()),
        list(&mut ty.results())
    )
}

pub(super) fn same_type(ty: &FuncType, f: &AbiFunc) -> bool {
    ty.params().len() == f.params.len()
        && ty.results().len() == f.results.len()
        && ty.params().zip(f.params).all(|(a, b)| a.matches(&val(*b)))
        && ty
            .results()
            .zip(f.results)
            .all(|(a, b)| a.matches(&val(*b)))
}

/// WASI `errno` for a call the host does not offer.
pub(super) const ERRNO_NOSYS: i32 = 52;

/// Whether an import is a WASI function off the allow-list that a real
/// toolchain may pull in (wasi-libc's `pread`, `readlink`, sockets...): it
/// is linked to a stub returning ENOSYS ([`stub_unlisted_wasi`]) instead
/// of refusing a module that may never call it.
pub(super) fn unlisted_wasi(module: &str, name: &str, ty: &ExternType) -> bool {
    module == abi::WASI_MODULE
        && abi::import(module, name).is_none()
        && matches!(ty, ExternType::Func(f)
            if f.results().len() == 1 && f.results().all(|r| r.matches(&ValType::I32)))
}

/// Links every unlisted WASI import of `module` ([`unlisted_wasi`]) to a
/// function that returns ENOSYS (52) and says so in the log; returns
/// their names.
pub(super) fn stub_unlisted_wasi(
    linker: &mut Linker<Host>,
    module: &Module,
) -> Result<Vec<String>, WasmError> {
    let mut names = Vec::new();
    for imp in module.imports() {
        let (m, n) = (imp.module(), imp.name());
        let ty = imp.ty();
        if !unlisted_wasi(m, n, &ty) {
            continue;
        }
        let ExternType::Func(f) = ty else { continue };
        let name = n.to_string();
        let note = format!("WASI `{name}` is outside the allow-list: it returns ENOSYS (52)");
        linker
            .func_new(m, n, f, move |mut c, _args, results| {
                if let Some(call) = c.data_mut().call.as_mut() {
                    call.note("wasm", "warn", &note);
                }
                if let Some(r) = results.first_mut() {
                    *r = Val::I32(ERRNO_NOSYS);
                }
                Ok(())
            })
            .map_err(|e| WasmError::Abi(format!("{e:#}")))?;
        names.push(name);
    }
    Ok(names)
}

/// The engine every plugin shares, with its epoch ticker.
pub(super) fn engine() -> Result<&'static Engine, WasmError> {
    static ENGINE: OnceLock<Result<Engine, WasmError>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut cfg = Config::new();
            cfg.epoch_interruption(true);
            cfg.max_wasm_stack(MAX_WASM_STACK);
            // One memory per instance, so the memory cap is the instance's cap.
            cfg.wasm_multi_memory(false);
            let engine = Engine::new(&cfg).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
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
                .map_err(|e| WasmError::Engine(format!("no epoch ticker thread: {e}")))?;
            Ok(engine)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Compiles `bytes` (binary or text), reusing an earlier compilation of the
/// same content: a reload that leaves a module unchanged costs no compile.
pub(super) fn compile(bytes: &[u8]) -> Result<Module, WasmError> {
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
                .map_err(|e| WasmError::Compile(wat_error(&e)))?
                .into_owned(),
        )
    };
    let module = Module::new(engine, &wasm).map_err(|e| WasmError::Compile(format!("{e:#}")))?;
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
pub(super) fn wat_error(e: &wat::Error) -> String {
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
pub fn check_abi(module: &Module) -> Result<(), WasmError> {
    for imp in module.imports() {
        let (m, n) = (imp.module(), imp.name());
        if unlisted_wasi(m, n, &imp.ty()) {
            continue;
        }
        let Some(abi) = abi::import(m, n) else {
            return Err(WasmError::Abi(format!(
                "import `{m}.{n}` is not part of the plugin ABI (module `{IMPORT_MODULE}`) or the WASI allow-list"
            )));
        };
        match imp.ty() {
            ExternType::Func(ty) if same_type(&ty, abi) => {}
            ExternType::Func(ty) => {
                return Err(WasmError::Abi(format!(
                    "import `{m}.{n}` has type {}; the ABI's is {}",
                    show_type(&ty),
                    abi.signature()
                )))
            }
            _ => {
                return Err(WasmError::Abi(format!(
                    "import `{m}.{n}` must be a function"
                )))
            }
        }
    }
    match module.get_export(abi::MEMORY_EXPORT) {
        Some(ExternType::Memory(m)) if !m.is_64() => {}
        Some(_) => {
            return Err(WasmError::Abi(
                "export `memory` must be a 32-bit linear memory".into(),
            ))
        }
        None => return Err(WasmError::Abi("missing export `memory`".into())),
    }
    for abi in EXPORTS {
        match module.get_export(abi.name) {
            Some(ExternType::Func(ty)) if same_type(&ty, abi) => {}
            Some(ExternType::Func(ty)) => {
                return Err(WasmError::Abi(format!(
                    "export `{}` has type {}; the ABI's is {}",
                    abi.name,
                    show_type(&ty),
                    abi.signature()
                )))
            }
            Some(_) => {
                return Err(WasmError::Abi(format!(
                    "export `{}` must be a function",
                    abi.name
                )))
            }
            None => return Err(WasmError::Abi(format!("missing export `{}`", abi.name))),
        }
    }
    Ok(())
}

/// Compiles a module and checks it against the ABI, without running it
/// (`dnspolicy check`).
pub fn check_module(bytes: &[u8], max: usize) -> Result<(), WasmError> {
    if bytes.len() > max {
        return Err(WasmError::TooLarge {
            size: bytes.len() as u64,
            max,
        });
    }
    check_abi(&compile(bytes)?)
}

/// The linker with every host function of the ABI.
pub(super) fn linker() -> Result<Linker<Host>, WasmError> {
    let engine = engine()?;
    let mut l = Linker::new(engine);
    define_host(&mut l).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
    define_wasi(&mut l, engine).map_err(|e| WasmError::Engine(format!("{e:#}")))?;
    Ok(l)
}
