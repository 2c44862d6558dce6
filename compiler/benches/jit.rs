//! The JIT against the interpreter: the geo example (one query, context
//! prepared once, and prepare + evaluate), rule-count scaling with random
//! queries, and compile time of a 100 000-rule policy.
//!
//!   cargo bench -p dnspolicy-compiler --bench jit

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dnspolicy_compiler::JitPolicy;
use dnspolicy_compiler::{Context, Field, Value};
use std::hint::black_box;

include!("support/gen_policy.rs");

fn geo_context() -> Context {
    let mut ctx = Context::default();
    ctx.set(Field::QueryName, Value::Name("www.example.com".into()));
    ctx.set(Field::QueryType, Value::Qtype(1));
    ctx.set(Field::ClientRegion, Value::Str("CN-BJ".into()));
    ctx.set(
        Field::ClientIp,
        Value::Ip("198.51.100.7".parse().expect("ip")),
    );
    ctx.set(
        Field::ClientSubnet,
        Value::Cidr("198.51.100.0/24".parse().expect("cidr")),
    );
    ctx
}

fn geo(c: &mut Criterion) {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/geo.dsl"))
        .expect("geo.dsl");
    let policy = dnspolicy_compiler::compile(&src).expect("checks");
    let jit =
        JitPolicy::compile(dnspolicy_compiler::compile(&src).expect("checks"), false).expect("jit");
    let ctx = geo_context();
    assert_eq!(
        jit.eval(&ctx).verdict.map(|v| v.to_json()),
        policy.eval(&ctx).verdict.map(|v| v.to_json())
    );
    let mut g = c.benchmark_group("geo_eval");
    g.bench_function("interp", |b| b.iter(|| policy.eval(black_box(&ctx))));
    let mut prepared = jit.prepare(&ctx);
    g.bench_function("jit_prepared", |b| {
        b.iter(|| {
            let out = jit.eval_prepared(black_box(&mut prepared), &ctx);
            black_box(out.rule)
        })
    });
    g.bench_function("jit_prepare_and_eval", |b| {
        b.iter(|| {
            jit.refill(black_box(&ctx), &mut prepared);
            let out = jit.eval_prepared(&mut prepared, &ctx);
            black_box(out.rule)
        })
    });
    g.finish();
}

/// Queries that hit each rule shape of the generated policy, and misses.
fn queries(n: usize) -> Vec<Context> {
    let mut out = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..1024 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x as usize) % n;
        let name = match (x >> 32) % 4 {
            0 => format!("s{i}.example.com"),
            1 => format!("name{i}.example.org"),
            2 => format!("h.b{i}.example.net"),
            _ => format!("miss{i}.example.info"),
        };
        let mut c = geo_context();
        c.set(Field::QueryName, Value::Name(name.into()));
        c.set(
            Field::ClientSubnet,
            Value::Cidr(
                format!("10.{}.{}.0/24", (i / 256) % 256, i % 256)
                    .parse()
                    .expect("cidr"),
            ),
        );
        out.push(c);
    }
    out
}

fn scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("scale_eval");
    for n in [10usize, 10_000, 100_000] {
        let src = generate_policy(n);
        let policy = dnspolicy_compiler::compile(&src).expect("checks");
        let jit = JitPolicy::compile(dnspolicy_compiler::compile(&src).expect("checks"), false)
            .expect("jit");
        let qs = queries(n);
        for q in qs.iter().take(64) {
            assert_eq!(
                jit.eval(q).verdict.map(|v| v.to_json()),
                policy.eval(q).verdict.map(|v| v.to_json())
            );
        }
        let mut i = 0;
        let mut p = jit.prepare(&qs[0]);
        g.bench_with_input(BenchmarkId::new("jit", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % qs.len();
                jit.refill(&qs[i], &mut p);
                black_box(jit.eval_prepared(&mut p, &qs[i]).rule)
            })
        });
        g.bench_with_input(BenchmarkId::new("interp", n), &n, |b, _| {
            b.iter(|| {
                i = (i + 1) % qs.len();
                black_box(policy.eval(&qs[i]).rule)
            })
        });
    }
    g.finish();
}

fn compile_time(c: &mut Criterion) {
    let src = generate_policy(100_000);
    let mut g = c.benchmark_group("compile_100k");
    g.sample_size(10);
    g.bench_function("check", |b| {
        b.iter(|| dnspolicy_compiler::compile(black_box(&src)).expect("checks"))
    });
    g.bench_function("check_index_jit", |b| {
        b.iter(|| {
            let p = dnspolicy_compiler::compile(black_box(&src)).expect("checks");
            JitPolicy::compile(p, false).expect("jit")
        })
    });
    g.finish();
    let p = dnspolicy_compiler::compile(&src).expect("checks");
    let s = JitPolicy::compile(p, false).expect("jit").stats();
    eprintln!("100 000 rules: {s:?}");
}

criterion_group!(benches, geo, scale, compile_time);
criterion_main!(benches);
