//! WASM plugins served for real: the WAT and C geo redirect examples answer
//! like the Lua one; faulty modules fail one call each (counted, instance
//! rebuilt) or are refused at load, and the server keeps answering.

use dnspolicy_e2e::*;
use hickory_proto::rr::RecordType;
use std::path::{Path, PathBuf};

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/plugins/wasm")
        .join(path)
}

/// Builds the C example with Debian's clang and lld (`.ci/run` installs them).
fn build_c_example(out: &Path) {
    let status = std::process::Command::new("clang")
        .args([
            "--target=wasm32",
            "-nostdlib",
            "-O2",
            "-Wl,--no-entry",
            "-o",
        ])
        .arg(out)
        .arg(example("geo_redirect.c"))
        .status()
        .expect("clang (Debian packages clang and lld) builds the C example");
    assert!(status.success(), "clang failed on geo_redirect.c");
}

async fn assert_geo_redirect(s: &TestServer) {
    assert_geo_split(s.dns).await;
    let r = tcp(s.dns, &query("img.example.com.", RecordType::A)).await;
    assert_eq!(
        answers(&r),
        vec!["CNAME cdn-global.example.com.", "192.0.2.20"]
    );
}

#[tokio::test]
async fn wat_geo_redirect_answers_like_the_lua_example() {
    let wat = std::fs::read_to_string(example("geo_redirect.wat")).expect("example");
    let mut c = config();
    c.plugin_dir = Some(plugin_dir("wasm-wat-geo", &[("geo_redirect.wat", &wat)]));
    let s = start(c).await;
    assert_geo_redirect(&s).await;
    let (_, body) = http_get(s.admin, "/plugins").await;
    assert!(body.contains("\"kind\":\"wasm\""), "{body}");
}

#[tokio::test]
async fn c_geo_redirect_answers_like_the_lua_example() {
    let dir = temp_dir("wasm-c-geo");
    build_c_example(&dir.join("geo_redirect.wasm"));
    let mut c = config();
    c.plugin_dir = Some(dir);
    let s = start(c).await;
    assert_geo_redirect(&s).await;
}

/// `dnspolicy compile --target wasm` output is a plugin like any other:
/// the served example policy, compiled, answers as the policy does, with
/// the ECS scope of a client-dependent answer and per-rule metrics.
#[tokio::test]
async fn compiled_dsl_module_is_served() {
    let src = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/serve/plugins/geo_redirect.dsl"),
    )
    .expect("example");
    let policy = dnspolicy_compiler::check(&src).policy.expect("checks");
    let wasm = dnspolicy_compiler::backend::wasm::emit(&policy).expect("compiles");
    let dir = temp_dir("wasm-compiled");
    std::fs::write(dir.join("geo_redirect.wasm"), &wasm).expect("module");
    let mut c = config();
    c.plugin_dir = Some(dir);
    let s = start(c).await;
    assert_geo_split(s.dns).await;
    // Another name: no rule decides, the zone answers.
    let r = udp(s.dns, &query("cdn-bj.example.com.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["192.0.2.10"]);
    let (_, metrics) = http_get(s.admin, "/metrics").await;
    assert!(
        metrics.contains(
            "dnspolicy_rule_queries_total{id=\"geo_redirect.wasm:geo_redirect\",plugin=\"geo_redirect.wasm\",rule=\"geo_redirect\"} 2"
        ),
        "{}",
        metrics.lines().filter(|l| l.contains("rule_queries")).collect::<Vec<_>>().join("\n")
    );
}

/// A module with the ABI's exports around a `process` body.
fn module(imports: &str, body: &str, extra: &str) -> String {
    format!(
        r#"(module
  {imports}
  (memory (export "memory") 1)
  (data (i32.const 16) "/etc/passwd")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "dnspolicy_abi_version") (result i32) i32.const 1)
  (func (export "alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "init") (param i32 i32) (result i32) i32.const 0)
  (func (export "destroy"))
  (func (export "process") (param $ctx i32) (param $len i32) (result i32)
    {body})
  {extra})"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_modules_fail_alone_and_are_counted() {
    let geo = r#"(import "dnspolicy" "geo_region" (func $geo_region (param i32 i32 i32 i32) (result i32)))"#;
    let path_open = r#"(import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#;
    let exit = r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#;
    // (file, module, failure reason per call)
    let faults: Vec<(&str, String, &str)> = vec![
        ("loop.wat", module("", "(loop $l (br $l)) i32.const 0", ""), "budget"),
        (
            "grow.wat",
            module(
                "",
                "(loop $l (br_if $l (i32.ge_s (memory.grow (i32.const 4)) (i32.const 0)))) i32.const 0",
                "",
            ),
            "memory",
        ),
        ("unreachable.wat", module("", "unreachable", ""), "trap"),
        (
            "recursion.wat",
            module("", "(call $deep) i32.const 0", "(func $deep (call $deep))"),
            "trap",
        ),
        (
            "bad_pointer.wat",
            module(
                geo,
                "(drop (call $geo_region (i32.const 0) (i32.const 0) (i32.const -16) (i32.const 64))) i32.const 1",
                "",
            ),
            "error",
        ),
        (
            // No directory is preopened: the call fails with EBADF (8), and
            // the module reports that as its error (-8).
            "path_open.wat",
            module(
                path_open,
                "(i32.sub (i32.const 0) (call $path_open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 11) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 64)))",
                "",
            ),
            "error",
        ),
        (
            "exit.wat",
            module(exit, "(call $exit (i32.const 3)) i32.const 0", ""),
            "error",
        ),
    ];
    let mut files: Vec<(String, String)> = Vec::new();
    for (i, (file, wat, _)) in faults.iter().enumerate() {
        files.push((file.to_string(), wat.clone()));
        files.push((
            file.replace(".wat", ".yaml"),
            format!(
                "priority: {}\nlimits:\n  memory: 1048576\n  deadline_ms: 20\n",
                100 + i
            ),
        ));
    }
    // Refused at load, each naming what is wrong.
    let refused: Vec<(&str, String, &str)> = vec![
        (
            "no_process.wat",
            module("", "i32.const 0", "").replace("(export \"process\")", ""),
            "missing export `process`",
        ),
        (
            "bad_signature.wat",
            module(
                r#"(import "dnspolicy" "get_qtype" (func $t (param i32) (result i32)))"#,
                "i32.const 0",
                "",
            ),
            "import `dnspolicy.get_qtype` has type (i32) -> (i32); the ABI's is () -> (i32)",
        ),
        // A WASI function off the allow-list that returns an errno loads
        // (ENOSYS at run time: wasm_kits.rs); one that does not is refused.
        (
            "sock_accept.wat",
            module(
                r#"(import "wasi_snapshot_preview1" "sock_accept" (func $a (param i32 i32 i32)))"#,
                "i32.const 0",
                "",
            ),
            "import `wasi_snapshot_preview1.sock_accept` is not part of the plugin ABI",
        ),
        (
            "env_system.wat",
            module(
                r#"(import "env" "system" (func $s (param i32) (result i32)))"#,
                "i32.const 0",
                "",
            ),
            "import `env.system` is not part of the plugin ABI",
        ),
        (
            "start_loop.wat",
            module(
                "",
                "i32.const 0",
                "(func $spin (loop $l (br $l))) (start $spin)",
            ),
            "instantiate: deadline exceeded",
        ),
        (
            "two_memories.wat",
            module("", "i32.const 0", "(memory $second 1)"),
            "multiple memories",
        ),
        (
            "abi_v2.wat",
            module("", "i32.const 0", "")
                .replace("(result i32) i32.const 1)", "(result i32) i32.const 2)"),
            "dnspolicy_abi_version() is 2",
        ),
    ];
    for (file, wat, _) in &refused {
        files.push((file.to_string(), wat.clone()));
    }
    // 1 024 iovecs of 64 KiB of newlines in one fd_write: bounded work
    // (64 KiB per call, lines rate-limited), the call returns, the query
    // goes on to the next plugin.
    files.push((
        "flood.wat".into(),
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 3)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "dnspolicy_abi_version") (result i32) i32.const 1)
  (func (export "alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "init") (param i32 i32) (result i32) i32.const 0)
  (func (export "destroy"))
  (func (export "process") (param i32 i32) (result i32) (local $i i32)
    (memory.fill (i32.const 65536) (i32.const 10) (i32.const 65536))
    (loop $l
      (i32.store (i32.add (i32.const 4096) (i32.mul (local.get $i) (i32.const 8))) (i32.const 65536))
      (i32.store (i32.add (i32.const 4100) (i32.mul (local.get $i) (i32.const 8))) (i32.const 65536))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1024))))
    (drop (call $fd_write (i32.const 1) (i32.const 4096) (i32.const 1024) (i32.const 0)))
    i32.const 0))"#
            .into(),
    ));
    files.push((
        "zz_ok.lua".into(),
        "function apply(ctx) ctx:set_answer(\"192.0.2.1\", \"A\", 5) end\n".into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = plugin_dir("wasm-faults", &refs);
    // A 50 MB module: refused by size before it is read.
    let mut big = b"\0asm\x01\0\0\0".to_vec();
    big.resize(50 << 20, 0);
    std::fs::write(dir.join("big.wasm"), big).expect("big module");
    let mut c = config();
    c.plugin_dir = Some(dir);
    // Refused modules are part of the test: start without them.
    c.serve.on_plugin_error = dnspolicy_runtime::config::OnPluginError::Skip;
    let s = start(c).await;

    // Every faulty plugin fails on every query; the last plugin answers.
    for round in 1..=2 {
        let r = udp(s.dns, &query("www.example.com.", RecordType::A)).await;
        assert_eq!(answers(&r), vec!["192.0.2.1"], "round {round}");
        let (_, metrics) = http_get(s.admin, "/metrics").await;
        for (file, _, reason) in &faults {
            // Round 2 counts again: the instance was rebuilt after the fault.
            let line = format!(
                "dnspolicy_plugin_failures_total{{plugin=\"{file}\",reason=\"{reason}\"}} {round}"
            );
            assert!(
                metrics.contains(&line),
                "missing `{line}` in:\n{}",
                metrics
                    .lines()
                    .filter(|l| l.contains("failures"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        for file in refused.iter().map(|r| r.0).chain(["big.wasm"]) {
            let line = format!("dnspolicy_plugin_load_failed{{plugin=\"{file}\"}} 1");
            assert!(metrics.contains(&line), "missing `{line}`");
        }
    }
    let (_, plugins) = http_get(s.admin, "/plugins").await;
    for (file, _, why) in &refused {
        let why = why.replace('"', "\\\"");
        assert!(
            plugins.contains(&why),
            "{file}: expected `{why}` in /plugins:\n{plugins}"
        );
    }
    assert!(
        plugins.contains("module is 52428800 bytes; the limit is 16777216"),
        "{plugins}"
    );
    // TCP too, after all of that.
    let r = tcp(s.dns, &query("www.example.com.", RecordType::A)).await;
    assert_eq!(answers(&r), vec!["192.0.2.1"]);
}
