//! The WASM backend against the reference interpreter: generated
//! well-typed programs (the generator the interpreter's own property test
//! uses), each compiled by `dnspolicy_compiler::backend::wasm::emit`, validated, run
//! in wasmtime through the plugin host, and evaluated on generated
//! contexts. The verdict and the deciding rule must be the interpreter's.
//!
//! More cases: `PROPTEST_CASES=5000 cargo test -p dnspolicy-runtime --test
//! wasm_differential --release`.

#[path = "../../compiler/tests/support/programs.rs"]
mod programs;

use dnspolicy_compiler::{check, Context};
use dnspolicy_runtime::plugin::host::Limits;
use dnspolicy_runtime::plugin::wasm::WasmPlugin;
use programs::{context, program};
use proptest::prelude::*;
use std::path::Path;

fn module_of(src: &str) -> WasmPlugin {
    let policy = check(src)
        .policy
        .expect("the generator writes valid programs");
    let wasm = dnspolicy_compiler::backend::wasm::emit(&policy)
        .unwrap_or_else(|u| panic!("{u} at {:?} in\n{src}", u.span));
    dnspolicy_compiler::backend::wasm::validate(&wasm).expect("the module validates");
    WasmPlugin::load(
        "diff",
        &wasm,
        Path::new("diff.wasm"),
        Limits::default(),
        &serde_json::Value::Null,
    )
    .expect("the module loads as a plugin")
}

fn agree(src: &str, contexts: &[serde_json::Value]) -> Result<(), TestCaseError> {
    let policy = check(src).policy.expect("valid");
    let plugin = module_of(src);
    for c in contexts {
        let ctx = Context::from_json(&policy, c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = policy.eval(&ctx);
        let (verdict, rule) = plugin
            .eval_context(&ctx)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            verdict.as_ref().map(|v| v.to_json()),
            want.verdict.as_ref().map(|v| v.to_json()),
            "verdict of\n{}\non {}",
            src,
            c
        );
        prop_assert_eq!(rule, want.rule, "deciding rule of\n{}\non {}", src, c);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn wasm_gives_the_interpreters_verdict(
        src in program(),
        ctxs in proptest::collection::vec(context(), 1..8),
    ) {
        agree(&src, &ctxs)?;
    }
}

/// Corners found while building the backend, kept as regression cases.
#[test]
fn regression_cases() {
    let cases: &[(&str, &[&str])] = &[
        // Division overflow wraps; division by zero is 0.
        (
            "input user.n : int\nthen ((-9223372036854775807 - 1) / -1) + (7 / {user.n}) + (7 % 0)",
            &[r#"{"user.n": 0}"#, r#"{"user.n": -1}"#],
        ),
        // A wildcard covers names strictly below it, not the suffix itself;
        // the root name is below no wildcard.
        (
            "set s = [\"*.example.net\", \"x.test\"]\nif {query.name} in s { then 1 } else { then 2 }",
            &[
                r#"{"query.name": "example.net"}"#,
                r#"{"query.name": "a.b.example.net"}"#,
                r#"{"query.name": "."}"#,
                r#"{"query.name": "x.test"}"#,
                r#"{}"#,
            ],
        ),
        // A missing list element makes `in` false, even after a match.
        (
            "input user.r : string\nif \"a\" in [\"a\", {user.r}] { then 1 } else { then 2 }",
            &[r#"{}"#, r#"{"user.r": "b"}"#],
        ),
        // `!=` with a missing side is false, and `not in` with a missing needle too.
        (
            "set n = [\"a.test\"]\nif {client.region} != \"CN\" || {query.name} not in n { then 1 } else { then 2 }",
            &[
                r#"{}"#,
                r#"{"client.region": "CN"}"#,
                r#"{"query.name": "b.test"}"#,
            ],
        ),
        // Partial-byte prefixes, both families, and no v4-mapped matching.
        (
            "set nets = [10.0.0.0/15, 2001:db8:8000::/33]\nif {client.ip} in nets { then 1 } else { then 2 }",
            &[
                r#"{"client.ip": "10.0.255.1"}"#,
                r#"{"client.ip": "10.1.255.1"}"#,
                r#"{"client.ip": "10.2.0.1"}"#,
                r#"{"client.ip": "::ffff:10.1.0.1"}"#,
                r#"{"client.ip": "2001:db8:8000::1"}"#,
                r#"{"client.ip": "2001:db8:7fff::1"}"#,
            ],
        ),
        // A `then` whose value is missing cannot decide: its rule ends
        // and the next rule runs.
        (
            "input user.r : string\nrule a { then {user.r} }\nrule b priority -1 { then 2 }",
            &[r#"{}"#, r#"{"user.r": "x"}"#],
        ),
        // Unicode length counts characters; hash is bit for bit.
        (
            "then hash({client.city}) % 1000 + len({client.city})",
            &[r#"{"client.city": "Zürich"}"#, r#"{"client.city": ""}"#],
        ),
        // The name index finds exact, suffix and wildcard keys and keeps
        // priority order.
        (
            "rule a when {query.name} == \"www.example.com\" { then 1 }\n\
             rule b priority 5 when {query.name} ends_with \"example.com\" { then 2 }\n\
             rule c { if {query.name} in [\"*.tracker.test\", \"ads.test\"] { then 3 } }\n\
             rule d priority -5 { then 4 }",
            &[
                r#"{"query.name": "www.example.com"}"#,
                r#"{"query.name": "example.com"}"#,
                r#"{"query.name": "a.b.tracker.test"}"#,
                r#"{"query.name": "tracker.test"}"#,
                r#"{"query.name": "ads.test"}"#,
                r#"{}"#,
            ],
        ),
    ];
    for (src, ctxs) in cases {
        let ctxs: Vec<serde_json::Value> = ctxs
            .iter()
            .map(|c| serde_json::from_str(c).expect("json"))
            .collect();
        if let Err(e) = agree(src, &ctxs) {
            panic!("{e}");
        }
    }
}
