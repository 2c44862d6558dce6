//! Per-call cost of each plugin kind, in process (no sockets): a no-op
//! plugin (the host's own overhead) and the geo redirect example written as
//! a compiled DSL policy, a Lua script and a WAT module, on the same
//! query and region table.
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
    for (group, noop) in [("plugin_call_noop", true), ("plugin_call_geo", false)] {
        let mut g = c.benchmark_group(group);
        for (kind, p) in plugins(noop) {
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
