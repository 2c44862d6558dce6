//! Runs the semantics cases in `tests/cases/`: each `# eval: CTX => VERDICT`
//! line is one evaluation by the reference interpreter.

use dnspolicy_compiler::{check, Context};
use serde_json::Value as Json;

#[test]
fn semantics_cases() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut failures = Vec::new();
    let mut evals = 0;
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
            let got = policy
                .eval(&ctx)
                .verdict
                .map_or(Json::Null, |v| v.to_json());
            evals += 1;
            if got != want {
                failures.push(format!("{name}: {ctx_json} => expected {want}, got {got}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(evals >= 50, "only {evals} evaluations ran");
}
