//! Reloading the plugin chain while the server answers: POST /reload,
//! broken versions that never go live, the directory watcher, and a
//! stream of queries that only ever sees whole versions.

use dnspolicy_e2e::*;
use hickory_proto::rr::RecordType;
use std::time::{Duration, Instant};

const A: &str = "if {query.name} == \"v.test\" { then answer A 192.0.2.1 }";
const B: &str = "if {query.name} == \"v.test\" { then answer A 192.0.2.2 }";
/// A WASM plugin that answers 192.0.2.5 but lacks the `process` export:
/// refused at load, so it must never go live.
const WASM_NO_PROCESS: &str = r#"(module
  (import "dnspolicy" "set_answer" (func $set_answer (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "dnspolicy_abi_version") (result i32) i32.const 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "init") (param i32 i32) (result i32) i32.const 0)
  (func (export "destroy")))"#;

async fn answer(s: &TestServer) -> Vec<String> {
    answers(&udp(s.dns, &query("v.test.", RecordType::A)).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_and_broken_versions() {
    let dir = plugin_dir("reload", &[("p.dsl", A)]);
    let mut c = config();
    c.plugin_dir = Some(dir.clone());
    let s = start(c).await;
    assert_eq!(answer(&s).await, ["192.0.2.1"]);

    std::fs::write(dir.join("p.dsl"), B).expect("write B");
    let (status, body) = http(s.admin, "POST", "/reload").await;
    assert!(status.contains("200"), "{status} {body}");
    assert_eq!(answer(&s).await, ["192.0.2.2"]);

    // Broken versions never go live; B keeps serving.
    let broken: &[(&str, &str)] = &[
        (
            "p.dsl",
            "if {query.name} == \"v.test\" { then answer A 192.0.2.3 ",
        ),
        ("p.dsl", "if {query.name} == 3 { then refuse }"),
        (
            "p.lua",
            "function apply(ctx) ctx:set_answer('192.0.2.4', 'A', 5) end\nwhile true do end\n",
        ),
        // Schema-invalid metadata.
        ("p.yaml", "priority: high\n"),
        ("p.wat", WASM_NO_PROCESS),
    ];
    for (file, text) in broken {
        std::fs::write(dir.join(file), text).expect("write broken");
        let (status, body) = http(s.admin, "POST", "/reload").await;
        assert!(status.contains("409"), "{file}: {status} {body}");
        assert_eq!(
            answer(&s).await,
            ["192.0.2.2"],
            "{file}: the old chain keeps serving"
        );
        let _ = std::fs::remove_file(dir.join("p.lua"));
        let _ = std::fs::remove_file(dir.join("p.yaml"));
        let _ = std::fs::remove_file(dir.join("p.wat"));
        std::fs::write(dir.join("p.dsl"), B).expect("restore");
    }
    let (_, plugins) = http_get(s.admin, "/plugins").await;
    assert!(plugins.contains("last_reload_error"), "{plugins}");
    let (_, metrics) = http_get(s.admin, "/metrics").await;
    assert!(
        metrics.contains("dnspolicy_plugin_reload_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dnspolicy_plugin_reload_total{result=\"failed\"} 5"),
        "{metrics}"
    );
    // A good reload clears the error.
    let (status, _) = http(s.admin, "POST", "/reload").await;
    assert!(status.contains("200"));
    let (_, plugins) = http_get(s.admin, "/plugins").await;
    assert!(!plugins.contains("last_reload_error"), "{plugins}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_picks_up_a_new_lua_plugin_within_a_second() {
    let dir = plugin_dir("watch", &[]);
    let mut c = config();
    c.plugin_dir = Some(dir.clone());
    c.hot_reload = true;
    let s = start(c).await;
    let r = udp(s.dns, &query("new.test.", RecordType::A)).await;
    assert!(r.answers.is_empty());
    std::fs::write(
        dir.join("new.lua"),
        "function apply(ctx) ctx:set_answer('192.0.2.9', 'A', 5) end\n",
    )
    .expect("write");
    let t0 = Instant::now();
    loop {
        let r = udp(s.dns, &query("new.test.", RecordType::A)).await;
        if answers(&r) == ["192.0.2.9"] {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(1), "not live within 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_see_whole_versions_during_reloads() {
    let dir = plugin_dir("stream", &[("p.dsl", A)]);
    let mut c = config();
    c.plugin_dir = Some(dir.clone());
    let s = start(c).await;
    let dns = s.dns;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let answered = std::sync::Arc::new(AtomicU64::new(0));
    let (flag, count) = (stop.clone(), answered.clone());
    // A bounded stream of queries while versions change underneath.
    let stream = tokio::spawn(async move {
        let mut seen = std::collections::BTreeMap::new();
        let mut n = 0;
        while !flag.load(Relaxed) && n < 20_000 {
            let r = udp(dns, &query("v.test.", RecordType::A)).await;
            *seen.entry(answers(&r).join(",")).or_insert(0) += 1;
            count.fetch_add(1, Relaxed);
            n += 1;
        }
        seen
    });
    // Each version stays until the stream has been answered by it twice
    // (bounded), so both good versions are certainly served.
    let served_twice = |from: u64| {
        let answered = answered.clone();
        async move {
            let t0 = Instant::now();
            while answered.load(Relaxed) < from + 2 && t0.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    };
    served_twice(0).await;
    // 52 rewrites: A, B and two broken versions (a syntax error, a WASM
    // module without `process`), 13 each.
    for i in 0..52 {
        match i % 4 {
            0 => std::fs::write(dir.join("p.dsl"), B),
            1 => std::fs::write(
                dir.join("p.dsl"),
                "if {query.name} == \"v.test\" { then answer A 192.0.2.3 ",
            ),
            2 => std::fs::write(dir.join("p.dsl"), A),
            _ => std::fs::write(dir.join("p.wat"), WASM_NO_PROCESS),
        }
        .expect("write");
        let _ = http(s.admin, "POST", "/reload").await;
        let _ = std::fs::remove_file(dir.join("p.wat"));
        served_twice(answered.load(Relaxed)).await;
    }
    stop.store(true, Relaxed);
    let seen = stream.await.expect("stream");
    let total: u32 = seen.values().sum();
    assert!(total > 200, "{seen:?}");
    for k in seen.keys() {
        assert!(
            k == "192.0.2.1" || k == "192.0.2.2",
            "only whole versions A or B answer: {seen:?}"
        );
    }
    assert!(
        seen.contains_key("192.0.2.1") && seen.contains_key("192.0.2.2"),
        "both versions were served: {seen:?}"
    );
    let (_, metrics) = http_get(s.admin, "/metrics").await;
    assert!(
        metrics.contains("dnspolicy_plugin_reload_total{result=\"ok\"} 26"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dnspolicy_plugin_reload_total{result=\"failed\"} 26"),
        "{metrics}"
    );
}

/// A query that started on the old chain finishes on it, after the swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_query_finishes_on_the_old_chain() {
    // The old version says when it has started, then takes its time.
    let slow = "function apply(ctx)\n  ctx:log('info', 'in-flight query started')\n  local t = os.clock()\n  while os.clock() - t < 0.4 do end\n  ctx:set_answer('192.0.2.1', 'A', 5)\nend\n";
    let dir = plugin_dir(
        "inflight",
        &[
            ("p.lua", slow),
            (
                "p.yaml",
                "limits:\n  instructions: 1000000000\n  deadline_ms: 2000\n",
            ),
        ],
    );
    let mut c = config();
    c.plugin_dir = Some(dir.clone());
    c.workers = 2;
    let tap = log_tap();
    let s = start(c).await;
    let dns = s.dns;
    let in_flight =
        tokio::spawn(async move { answers(&udp(dns, &query("v.test.", RecordType::A)).await) });
    // The signal comes from inside the old version's `apply`.
    let started = tokio::task::spawn_blocking(move || {
        tap.wait_for("in-flight query started", Duration::from_secs(5))
    });
    assert!(
        started.await.expect("wait"),
        "the slow plugin never started"
    );
    std::fs::write(
        dir.join("p.lua"),
        "function apply(ctx) ctx:set_answer('192.0.2.2', 'A', 5) end\n",
    )
    .expect("write B");
    let (status, body) = http(s.admin, "POST", "/reload").await;
    assert!(status.contains("200"), "{status} {body}");
    // The new chain is live while the old query is still running...
    assert_eq!(answer(&s).await, ["192.0.2.2"]);
    // ...and the old query completes with the old version's answer.
    assert_eq!(in_flight.await.expect("query"), ["192.0.2.1"]);
}
