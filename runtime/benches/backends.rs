//! The three policy backends side by side on the same contexts: the
//! reference interpreter, the Cranelift JIT, and the WASM module in
//! wasmtime (through the plugin host, as `dnspolicy serve` runs it); plus
//! the WASM module's size, compile time and instantiation time at 100 000
//! rules.
//!
//!   cargo bench -p dnspolicy-runtime --bench backends

#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dnspolicy_compiler::JitPolicy;
use dnspolicy_compiler::{Context, Field, Policy, Value};
use dnspolicy_runtime::plugin::host::Limits;
use dnspolicy_runtime::plugin::wasm::WasmPlugin;
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

include!("../../compiler/benches/support/gen_policy.rs");

fn context(name: &str, i: usize) -> Context {
    let mut ctx = Context::default();
    ctx.set(Field::QueryName, Value::Name(name.into()));
    ctx.set(Field::QueryType, Value::Qtype(1));
    ctx.set(Field::ClientRegion, Value::Str("CN-BJ".into()));
    ctx.set(
        Field::ClientIp,
        Value::Ip("198.51.100.7".parse().expect("ip")),
    );
    ctx.set(
        Field::ClientSubnet,
        Value::Cidr(
            format!("10.{}.{}.0/24", (i / 256) % 256, i % 256)
                .parse()
                .expect("cidr"),
        ),
    );
    ctx
}

fn wasm_of(policy: &Policy) -> (Vec<u8>, WasmPlugin) {
    let wasm = dnspolicy_compiler::backend::wasm::emit(policy).expect("wasm");
    let plugin = WasmPlugin::load(
        "bench",
        &wasm,
        Path::new("bench.wasm"),
        Limits::default(),
        &serde_json::Value::Null,
    )
    .expect("loads");
    (wasm, plugin)
}

fn side_by_side(c: &mut Criterion, group: &str, src: &str, ctxs: &[Context]) {
    let policy = dnspolicy_compiler::compile(src).expect("checks");
    let jit =
        JitPolicy::compile(dnspolicy_compiler::compile(src).expect("checks"), false).expect("jit");
    let (_, wasm) = wasm_of(&policy);
    for q in ctxs.iter().take(64) {
        let want = policy.eval(q).verdict.map(|v| v.to_json());
        assert_eq!(jit.eval(q).verdict.map(|v| v.to_json()), want);
        assert_eq!(
            wasm.eval_context(q).expect("runs").0.map(|v| v.to_json()),
            want
        );
    }
    let mut g = c.benchmark_group(group);
    let mut i = 0;
    g.bench_function("interp", |b| {
        b.iter(|| {
            i = (i + 1) % ctxs.len();
            black_box(policy.eval(&ctxs[i]).rule)
        })
    });
    let mut p = jit.prepare(&ctxs[0]);
    g.bench_function("jit", |b| {
        b.iter(|| {
            i = (i + 1) % ctxs.len();
            jit.refill(&ctxs[i], &mut p);
            black_box(jit.eval_prepared(&mut p, &ctxs[i]).rule)
        })
    });
    g.bench_function("wasm", |b| {
        b.iter(|| {
            i = (i + 1) % ctxs.len();
            black_box(wasm.eval_context(&ctxs[i]).expect("runs").1)
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    let geo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/geo.dsl"))
        .expect("geo.dsl");
    side_by_side(c, "geo_backends", &geo, &[context("www.example.com", 0)]);

    let n = 10_000;
    let src = generate_policy(n);
    let ctxs: Vec<Context> = (0..1024)
        .map(|k| {
            let i = (k * 7919) % n;
            let name = match k % 4 {
                0 => format!("s{i}.example.com"),
                1 => format!("name{i}.example.org"),
                2 => format!("h.b{i}.example.net"),
                _ => format!("miss{i}.example.info"),
            };
            context(&name, i)
        })
        .collect();
    side_by_side(c, "rules_10k_backends", &src, &ctxs);

    // 100 000 rules: module size, compile + first instance, more instances.
    let src = generate_policy(100_000);
    let policy = dnspolicy_compiler::compile(&src).expect("checks");
    let t = Instant::now();
    let wasm = dnspolicy_compiler::backend::wasm::emit(&policy).expect("wasm");
    let emit = t.elapsed();
    let t = Instant::now();
    // Its data (names, the index) outgrows the default 16 MiB memory cap.
    let plugin = WasmPlugin::load(
        "big",
        &wasm,
        Path::new("big.wasm"),
        Limits {
            memory: 1 << 30,
            module_bytes: 256 << 20,
            ..Limits::default()
        },
        &serde_json::Value::Null,
    )
    .unwrap_or_else(|e| {
        panic!(
            "the 100 000-rule module ({} bytes) does not load: {e}",
            wasm.len()
        )
    });
    let load = t.elapsed();
    eprintln!(
        "100 000 rules: module {} bytes; emit {:.3} s; wasmtime compile + first instance {:.3} s",
        wasm.len(),
        emit.as_secs_f64(),
        load.as_secs_f64()
    );
    let mut g = c.benchmark_group("instantiate");
    g.bench_with_input(BenchmarkId::new("compiled_module", 100_000), &(), |b, _| {
        b.iter(|| {
            plugin.add_instance().expect("instance");
            plugin.drain_pool();
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
