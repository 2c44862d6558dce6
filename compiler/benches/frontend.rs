//! Front-end throughput: lex + parse + check of generated policies.
//! Peak memory is measured by `cargo run --release -p dnspolicy-compiler
//! --example scale` (criterion measures time only).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

include!("support/gen_policy.rs");

fn frontend(c: &mut Criterion) {
    let mut g = c.benchmark_group("lex_parse_check");
    g.sample_size(10);
    for n in [1_000usize, 10_000, 100_000] {
        let src = generate_policy(n);
        g.throughput(Throughput::Bytes(src.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &src, |b, src| {
            b.iter(|| {
                let checked = dnspolicy_compiler::check(black_box(src));
                assert!(checked.policy.is_some());
                checked
            })
        });
    }
    g.finish();

    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/geo.dsl"))
        .expect("geo.dsl");
    let policy = dnspolicy_compiler::compile(&src).expect("geo.dsl checks");
    let mut ctx = dnspolicy_compiler::Context::default();
    ctx.set(
        dnspolicy_compiler::Field::QueryName,
        dnspolicy_compiler::Value::Name("www.example.com".into()),
    );
    ctx.set(
        dnspolicy_compiler::Field::ClientRegion,
        dnspolicy_compiler::Value::Str("CN-BJ".into()),
    );
    c.bench_function("interp_eval_geo", |b| {
        b.iter(|| policy.eval(black_box(&ctx)))
    });
}

criterion_group!(benches, frontend);
criterion_main!(benches);
