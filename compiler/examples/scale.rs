//! Front-end scale check: generates a policy of N rules (default 100 000),
//! then reports lex+parse+check time and the process's peak memory.
//!
//! `cargo run --release -p dnspolicy-compiler --example scale -- 100000`

include!("../benches/support/gen_policy.rs");

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let src = generate_policy(n);
    let before = peak_rss_kib().unwrap_or(0);
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let checked = dnspolicy_compiler::check(&src);
        times.push(t.elapsed());
        assert!(
            checked.policy.is_some(),
            "{:?}",
            &checked.diagnostics[..checked.diagnostics.len().min(3)]
        );
    }
    times.sort();
    let peak = peak_rss_kib().unwrap_or(0);
    println!(
        "rules={n} source={:.1} MiB  lex+parse+check median={:.0} ms (min {:.0} ms, 5 runs)  peak RSS={:.0} MiB (source and generator alone: {:.0} MiB)",
        src.len() as f64 / 1048576.0,
        times[2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
    );
}
