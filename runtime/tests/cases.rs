//! The semantics cases in `compiler/tests/cases/`, on every backend: each
//! `# eval: CTX => VERDICT` line is evaluated by the reference interpreter,
//! by the Cranelift JIT, and by the policy compiled to WASM and run in
//! wasmtime through the plugin host, and all three must print VERDICT.
//!
//! A file whose constructs the WASM target does not lower says so in a
//! `# wasm: not lowered: WHAT` line; the emitter must then refuse it naming
//! WHAT (E0053), and must accept every other file.

use dnspolicy_compiler::{check, Context, JitPolicy};
use dnspolicy_runtime::plugin::host::Limits;
use dnspolicy_runtime::plugin::wasm::WasmPlugin;
use serde_json::Value as Json;
use std::path::Path;

#[test]
fn semantics_cases_on_every_backend() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../compiler/tests/cases");
    let mut failures = Vec::new();
    let mut evals = [0usize; 3];
    // Cases of files the WASM target does not lower yet.
    let mut not_on_wasm = 0;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dsl"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "expected the case files");
    for path in paths {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let src = std::fs::read_to_string(&path).expect("readable");
        let checked = check(&src);
        let Some(policy) = checked.policy else {
            failures.push(format!("{name}: does not check: {:?}", checked.diagnostics));
            continue;
        };
        let not_lowered = src
            .lines()
            .find_map(|l| l.strip_prefix("# wasm: not lowered: "));
        let wasm = match (
            dnspolicy_compiler::backend::wasm::emit(&policy),
            not_lowered,
        ) {
            (Ok(bytes), None) => Some(
                WasmPlugin::load(&name, &bytes, &path, Limits::default(), &Json::Null)
                    .unwrap_or_else(|e| panic!("{name}: the compiled module does not load: {e}")),
            ),
            (Err(u), Some(what)) => {
                assert!(
                    u.to_string().contains(what),
                    "{name}: says `{what}` is not lowered, the emitter says: {u}"
                );
                None
            }
            (Ok(_), Some(what)) => panic!("{name}: says `{what}` is not lowered, but it is"),
            (Err(u), None) => panic!("{name}: the WASM target refuses it: {u}"),
        };
        let src_policy = check(&src).policy.expect("checked above");
        let jit = JitPolicy::compile(src_policy, false).expect("the JIT compiles every case");
        for line in src.lines().filter_map(|l| l.strip_prefix("# eval: ")) {
            let (ctx, want) = line.split_once(" => ").expect("`CTX => VERDICT`");
            let ctx_json: Json = serde_json::from_str(ctx).expect("context JSON");
            let want: Json = serde_json::from_str(want).expect("verdict JSON");
            let ctx = match Context::from_json(&policy, &ctx_json) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("{name}: {line}: {e}"));
                    continue;
                }
            };
            let mut check_one = |backend: &str, got: Json, n: usize| {
                evals[n] += 1;
                if got != want {
                    failures.push(format!(
                        "{name} on {backend}: {ctx_json} => expected {want}, got {got}"
                    ));
                }
            };
            let interp = policy.eval(&ctx).verdict;
            check_one("interp", interp.map_or(Json::Null, |v| v.to_json()), 0);
            let jitted = jit.eval(&ctx).verdict;
            check_one("jit", jitted.map_or(Json::Null, |v| v.to_json()), 1);
            if wasm.is_none() {
                not_on_wasm += 1;
            }
            if let Some(plugin) = &wasm {
                let got = match plugin.eval_context(&ctx) {
                    Ok((v, _)) => v.map_or(Json::Null, |v| v.to_json()),
                    Err(e) => Json::String(format!("error: {e}")),
                };
                check_one("wasm", got, 2);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let [interp, jit, wasm] = evals;
    assert!(interp >= 50, "only {interp} evaluations ran");
    assert_eq!(jit, interp, "the JIT ran every case");
    assert_eq!(
        wasm + not_on_wasm,
        interp,
        "the WASM backend ran every case of every file it lowers"
    );
    assert!(
        not_on_wasm * 5 <= interp,
        "{not_on_wasm} of {interp} cases skip WASM: keep not-lowered constructs in small files"
    );
}
