//! Per-call cost of each plugin kind, in process (no sockets): a no-op
//! plugin (the host's own overhead) and the geo redirect example written as
//! a compiled DSL policy, a Lua script and a WAT module, on the same
//! query and region table; and the geo redirect of each plugin kit (Rust
//! SDK, freestanding C, C and C++ with wasi-libc, Zig, AssemblyScript), built from source here
//! when its toolchain is installed (`scripts/test` installs them), with
//! module sizes printed.
//!
//!   cargo bench -p dnspolicy-runtime --bench plugins

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use dnspolicy_runtime::dns::query::{QueryCtx, QueryFacts};
use dnspolicy_runtime::geo::Geo;
use dnspolicy_runtime::plugin::host::Limits;
use dnspolicy_runtime::plugin::lua::LuaPlugin;
use dnspolicy_runtime::plugin::wasm::WasmPlugin;
use dnspolicy_runtime::plugin::{DslPlugin, Plugin};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).expect(rel)
}

const NOOP_WAT: &str = r#"(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "dnspolicy_abi_version") (result i32) i32.const 1)
  (func (export "alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "init") (param i32 i32) (result i32) i32.const 0)
  (func (export "destroy"))
  (func (export "process") (param i32 i32) (result i32) i32.const 0))"#;

fn plugins(noop: bool) -> Vec<(&'static str, Box<dyn Plugin>)> {
    let null = serde_json::Value::Null;
    let (dsl, lua, wat) = if noop {
        (
            "if {query.name} == \"never.test\" { then refuse }".to_string(),
            "function apply(ctx) end\n".to_string(),
            NOOP_WAT.to_string(),
        )
    } else {
        (
            read("examples/serve/plugins/geo_redirect.dsl"),
            read("examples/plugins/dns/geo_redirect.lua"),
            read("examples/plugins/wasm/geo_redirect.wat"),
        )
    };
    vec![
        (
            "dsl",
            Box::new(DslPlugin::compile("p", &dsl, Path::new("p.dsl")).expect("dsl")),
        ),
        (
            "lua",
            Box::new(
                LuaPlugin::load("p", &lua, Path::new("p.lua"), Limits::default(), &null)
                    .expect("lua"),
            ),
        ),
        (
            "wasm",
            Box::new(
                WasmPlugin::load(
                    "p",
                    wat.as_bytes(),
                    Path::new("p.wat"),
                    Limits::default(),
                    &null,
                )
                .expect("wasm"),
            ),
        ),
    ]
}

/// The kits' geo modules, built from source: (name, module bytes). A
/// missing toolchain leaves its entry out, with a note.
fn kit_modules() -> Vec<(&'static str, Vec<u8>)> {
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("dnspolicy-bench-kits-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let wasm_dir = root().join("examples/plugins/wasm");
    // Each kit's own build.sh (the documented build line), writing $OUT.
    let kit = |name: &str, out: &str| {
        Command::new("bash")
            .arg(wasm_dir.join(name).join("build.sh"))
            .env("OUT", dir.join(out))
            .env("ZIGLANG_PATH", root().join("target/tools/ziglang"))
            .status()
    };
    let builds: Vec<(
        &'static str,
        &str,
        std::io::Result<std::process::ExitStatus>,
    )> = vec![
        (
            "wasm-rust",
            "rust_geo.wasm",
            kit("rust-geo", "rust_geo.wasm"),
        ),
        (
            "wasm-c",
            "c.wasm",
            Command::new("clang")
                .args([
                    "--target=wasm32",
                    "-nostdlib",
                    "-O2",
                    "-Wl,--no-entry",
                    "-o",
                ])
                .arg(dir.join("c.wasm"))
                .arg(wasm_dir.join("geo_redirect.c"))
                .status(),
        ),
        ("wasm-c-wasi", "c_wasi.wasm", kit("c-wasi", "c_wasi.wasm")),
        ("wasm-zig", "zig.wasm", kit("zig-geo", "zig.wasm")),
        ("wasm-as", "as.wasm", kit("as-geo", "as.wasm")),
        ("wasm-cpp-wasi", "cpp.wasm", kit("cpp-wasi", "cpp.wasm")),
    ];
    let mut out = Vec::new();
    for (name, file, status) in builds {
        match status {
            Ok(s) if s.success() => {
                let bytes = std::fs::read(dir.join(file)).expect("module");
                eprintln!("{name}: {} bytes", bytes.len());
                out.push((name, bytes));
            }
            _ => eprintln!("{name}: not built (toolchain missing?), left out"),
        }
    }
    let wat = read("examples/plugins/wasm/geo_redirect.wat");
    eprintln!(
        "wasm (WAT): {} bytes as a binary",
        wat::parse_str(&wat).map_or(0, |b| b.len())
    );
    out
}

fn bench(c: &mut Criterion) {
    let geo = Arc::new(Geo::open(&[root().join("examples/geo/regions.csv")]).expect("geo"));
    let facts = QueryFacts {
        ecs_ignored: None,
        client: "198.51.100.7".parse().expect("ip"),
        ecs: None,
        qname: "www.example.com",
        qtype: 1,
        qclass: "IN",
        transport: "udp",
        dnssec_ok: false,
        recursion_desired: true,
        rate: 0,
    };
    let null = serde_json::Value::Null;
    let kits: Vec<(&'static str, Box<dyn Plugin>)> = kit_modules()
        .into_iter()
        .map(|(name, bytes)| {
            let p = WasmPlugin::load(
                name,
                &bytes,
                Path::new("kit.wasm"),
                Limits::default(),
                &null,
            )
            .expect(name);
            (name, Box::new(p) as Box<dyn Plugin>)
        })
        .collect();
    let mut kits = Some(kits);
    for (group, noop) in [("plugin_call_noop", true), ("plugin_call_geo", false)] {
        let mut g = c.benchmark_group(group);
        let mut all = plugins(noop);
        if !noop {
            all.extend(kits.take().unwrap_or_default());
        }
        for (kind, p) in all {
            g.bench_function(kind, |b| {
                b.iter(|| {
                    let mut ctx = QueryCtx::new(&facts, &geo, "127.0.0.1:53", "node");
                    black_box(p.apply(&mut ctx))
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
