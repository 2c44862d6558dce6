//! The Cranelift JIT against the reference interpreter: generated
//! well-typed programs and contexts (the generator shared with the
//! interpreter's and the WASM backend's property tests); the JIT must give
//! the interpreter's verdict and deciding rule on every one.
//!
//! More cases: `PROPTEST_CASES=20000 cargo test --release -p
//! dnspolicy-compiler --test jit_differential`.

#[path = "support/programs.rs"]
mod programs;

use dnspolicy_compiler::backend::jit::Planner;
use dnspolicy_compiler::JitPolicy;
use dnspolicy_compiler::{check, check_for_serving, check_for_serving_with, Context};
use programs::{context, program};
use proptest::prelude::*;

fn agree(src: &str, contexts: &[serde_json::Value]) -> Result<(), TestCaseError> {
    let policy = check(src).policy.expect("valid");
    let reference = check(src).policy.expect("valid");
    let jit = JitPolicy::compile(policy, false).map_err(|e| TestCaseError::fail(e.to_string()))?;
    // What a server builds: checked without the syntax tree, each rule
    // planned as the checker hands it over and its syntax freed, the
    // interpreted rules apart. (`compile_for_serving`, which plans a
    // checked policy the same way, is covered by the tests below.)
    let streamed = streamed(src).map_err(TestCaseError::fail)?;
    prop_assert_eq!(streamed.stats(), jit.stats(), "streamed: stats of\n{}", src);
    prop_assert_eq!(
        streamed.policy().index.entries(),
        reference.index.entries(),
        "streamed: index of\n{}",
        src
    );
    prop_assert_eq!(
        sorted_prefixes(&streamed),
        sorted_prefixes(&jit),
        "streamed: prefix keys of\n{}",
        src
    );
    for c in contexts {
        let ctx =
            Context::from_json(&reference, c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = reference.eval(&ctx);
        let got = jit.eval(&ctx);
        prop_assert_eq!(
            got.verdict.as_ref().map(|v| v.to_json()),
            want.verdict.as_ref().map(|v| v.to_json()),
            "verdict of\n{}\non {}",
            src,
            c
        );
        prop_assert_eq!(got.rule, want.rule, "deciding rule of\n{}\non {}", src, c);
        let planned = streamed.eval(&ctx);
        prop_assert_eq!(
            planned.verdict.as_ref().map(|v| v.to_json()),
            want.verdict.as_ref().map(|v| v.to_json()),
            "streamed: verdict of\n{}\non {}",
            src,
            c
        );
        prop_assert_eq!(
            planned.rule,
            want.rule,
            "streamed: rule of\n{}\non {}",
            src,
            c
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn jit_gives_the_interpreters_verdict(
        src in program(),
        ctxs in proptest::collection::vec(context(), 1..8),
    ) {
        agree(&src, &ctxs)?;
    }
}

fn run(src: &str, ctxs: &[&str]) {
    let ctxs: Vec<serde_json::Value> = ctxs
        .iter()
        .map(|c| serde_json::from_str(c).expect("json"))
        .collect();
    if let Err(e) = agree(src, &ctxs) {
        panic!("{e}");
    }
}

/// Corners kept as regression cases (some found by the property test).
#[test]
fn regression_cases() {
    // Division overflow wraps, division by zero is 0 (the machine traps on both).
    run(
        "input user.n : int\nthen ((-9223372036854775807 - 1) / {user.n}) + (7 % {user.n})",
        &[r#"{"user.n": 0}"#, r#"{"user.n": -1}"#, r#"{"user.n": 3}"#],
    );
    // A rule the JIT leaves to the interpreter (a list value built at run
    // time)
    // between compiled ones: its IR outlives the release of theirs.
    let mixed = "rule a when {query.name} == \"a.example\" { then 1 }\n\
                 rule b when {client.region} == \"XX\" { then [{client.country}, \"XX\"] }\n\
                 rule c when {query.name} == \"c.example\" { then 3 }";
    let stats = JitPolicy::compile(check(mixed).policy.expect("valid"), false)
        .expect("compiles")
        .stats();
    assert_eq!((stats.interpreted, stats.constant), (1, 2), "{stats:?}");
    run(
        mixed,
        &[
            r#"{"query.name": "a.example"}"#,
            r#"{"query.name": "b.example", "client.region": "XX", "client.country": "NL"}"#,
            r#"{"query.name": "b.example", "client.region": "NL", "client.country": "NL"}"#,
            r#"{"query.name": "c.example", "client.region": "NL"}"#,
        ],
    );
    // Rules sharing one compiled shape keep their own constants.
    run(
        "rule a { if {client.region} == \"CN-BJ\" { then 1 } }\n\
         rule b { if {client.region} == \"US-CA\" { then 2 } }\n\
         rule c { if {client.region} == \"CN-SH\" { then 3 } }",
        &[
            r#"{"client.region": "CN-SH"}"#,
            r#"{"client.region": "US-CA"}"#,
            r#"{"client.region": "CN-BJ"}"#,
            r#"{"client.region": "XX"}"#,
        ],
    );
    // Two run-time strings that equal no literal compare by value.
    run(
        "input user.a : string\ninput user.b : string\nif {user.a} == {user.b} { then 1 } else { then 2 }",
        &[
            r#"{"user.a": "x", "user.b": "x"}"#,
            r#"{"user.a": "x", "user.b": "y"}"#,
            r#"{"user.a": "x"}"#,
        ],
    );
    // Concatenation and lower() are interned per evaluation.
    run(
        "input user.a : string\nif lower({user.a} + \"-X\") == \"cn-x\" { then {user.a} + \"!\" }",
        &[r#"{"user.a": "CN"}"#, r#"{"user.a": "US"}"#, r#"{}"#],
    );
    // A guard the index proves is skipped; one it does not is tested.
    run(
        "rule a when {query.name} ends_with \"example.com\" { then 1 }\n\
         rule b priority 5 when {query.name} == \"x.test\" && {query.type} == AAAA { then 2 }\n\
         rule c priority -1 { then 3 }",
        &[
            r#"{"query.name": "www.example.com"}"#,
            r#"{"query.name": "x.test", "query.type": "A"}"#,
            r#"{"query.name": "x.test", "query.type": "AAAA"}"#,
            r#"{}"#,
        ],
    );
    // A list value other than the right side of `in`: that rule falls back
    // to the interpreter, in its place.
    run(
        "input user.l : [string]\nrule a priority 2 { if len({user.l}) > 1 { then 1 } }\nrule b { then 2 }",
        &[r#"{"user.l": ["a", "b"]}"#, r#"{"user.l": []}"#, r#"{}"#],
    );
}

/// Compiled code is freed with its policy: compiling and dropping 1 000
/// policies leaves the resident set where it was after the first 100.
#[test]
fn dropped_policies_free_their_code() {
    fn rss_kb() -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: u64 = s
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("rss pages");
        pages * 4
    }
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/geo.dsl"))
        .expect("geo.dsl");
    let once = || {
        let p = check(&src).policy.expect("valid");
        let jit = JitPolicy::compile(p, false).expect("compiles");
        assert!(jit.stats().functions > 0);
        drop(jit);
    };
    for _ in 0..100 {
        once();
    }
    let before = rss_kb();
    for _ in 0..1000 {
        once();
    }
    let after = rss_kb();
    // Each policy maps at least a page of code: 1 000 leaked would be
    // ≥ 4 000 kB. The other tests of this binary run beside this one in
    // the same process and grow its heap too (a CI run saw +2 156 kB with
    // no leak), hence 3 MiB.
    assert!(
        after < before + 3072,
        "RSS grew from {before} kB to {after} kB over 1 000 compile/drop cycles"
    );
}

/// The policy as `serve` compiles it: each rule planned (and its syntax
/// freed) as soon as the checker has typed it, the index built from the
/// plans.
fn streamed(src: &str) -> Result<JitPolicy, String> {
    let mut planner = Planner::for_serving();
    let checked = check_for_serving_with(src, &mut |r, sets| planner.rule(r, sets));
    let policy = checked.policy.ok_or("does not check")?;
    JitPolicy::compile_planned(policy, planner).map_err(|e| e.to_string())
}

fn sorted_prefixes(j: &JitPolicy) -> (Vec<String>, Vec<String>) {
    let (mut a, mut b): (Vec<String>, Vec<String>) = {
        let (a, b) = j.policy().index.prefix_keys();
        (
            a.iter().map(|c| c.to_string()).collect(),
            b.iter().map(|c| c.to_string()).collect(),
        )
    };
    a.sort();
    b.sort();
    (a, b)
}

/// Rules whose types wait on a later rule (an injected variable linked to
/// another and fixed further down), the implicit rule of bare statements
/// and priorities that reorder the rules: the checker hands over only the
/// settled rules as it goes, the rest are planned once all are checked,
/// and every rule still decides where the interpreter says.
#[test]
fn streamed_planning_waits_for_inference_and_keeps_the_order() {
    let src = r#"
rule linked priority 5 when {user.a} == {user.b} { then "linked" }
rule named when {query.name} ends_with "x.example" { then answer A 192.0.2.9 }
rule fixes when {user.a} > 3 { then "big" }
rule first priority 9 when {query.name} == "p.example" { then "p" }
rule same_shape when {user.a} > 100 { then "huge" }
if {user.n} == 1 { then "bare" }
"#;
    let reference = check(src).policy.expect("valid");
    let mut planner = Planner::for_serving();
    let mut handed = Vec::new();
    let checked = check_for_serving_with(src, &mut |r, sets| {
        handed.push(r.name.clone());
        planner.rule(r, sets)
    });
    // `linked` waits for `fixes` to type `user.a`; `main` is made at the end.
    assert_eq!(handed, ["named", "fixes", "first", "same_shape"]);
    let streamed =
        JitPolicy::compile_planned(checked.policy.expect("valid"), planner).expect("compiles");
    let released = JitPolicy::compile_for_serving(check_for_serving(src).policy.expect("valid"))
        .expect("compiles");
    assert_eq!(streamed.stats(), released.stats());
    assert_eq!(streamed.policy().index.entries(), reference.index.entries());
    for c in [
        serde_json::json!({ "user.a": 5, "user.b": 5, "user.n": 0, "query.name": "q.example" }),
        serde_json::json!({ "user.a": 5, "user.b": 6, "user.n": 0, "query.name": "q.example" }),
        serde_json::json!({ "user.a": 500, "user.b": 6, "user.n": 0, "query.name": "q.example" }),
        serde_json::json!({ "user.a": 1, "user.b": 6, "user.n": 0, "query.name": "www.x.example" }),
        serde_json::json!({ "user.a": 9, "user.b": 9, "user.n": 0, "query.name": "p.example" }),
        serde_json::json!({ "user.a": 1, "user.b": 2, "user.n": 1, "query.name": "q.example" }),
        serde_json::json!({ "user.a": 1, "user.b": 2, "user.n": 0, "query.name": "q.example" }),
    ] {
        let ctx = Context::from_json(&reference, &c).expect("context");
        let want = reference.eval(&ctx);
        let got = streamed.eval(&ctx);
        assert_eq!(
            got.verdict.as_ref().map(|v| v.to_json()),
            want.verdict.as_ref().map(|v| v.to_json()),
            "{c}"
        );
        assert_eq!(got.rule, want.rule, "{c}");
    }
}

/// `is_pass` tells a `pass` verdict from the others by its place in the
/// verdict table (a server does not read the verdict to know whether the
/// next plugin runs), and reads a verdict made at run time.
#[test]
fn is_pass_by_place_and_by_value() {
    use std::borrow::Cow;
    let src = "rule p when {query.name} ends_with \"p.example\" { then pass }\n\
               rule a when {query.name} ends_with \"a.example\" { then answer A 192.0.2.1 }\n\
               rule d when {query.name} ends_with \"d.example\" { then lower({query.name}) }";
    let reference = check(src).policy.expect("valid");
    let jit = JitPolicy::compile_for_serving(check_for_serving(src).policy.expect("valid"))
        .expect("compiles");
    // (name, pass?, from the table?)
    for (name, want) in [
        ("www.p.example", Some((true, true))),
        ("www.a.example", Some((false, true))),
        ("www.d.example", Some((false, false))),
        ("www.other.example", None),
    ] {
        let c = serde_json::json!({ "query.name": name });
        let ctx = Context::from_json(&reference, &c).expect("context");
        let mut p = jit.prepare(&ctx);
        let out = jit.eval_prepared(&mut p, &ctx);
        let got = out
            .verdict
            .as_ref()
            .map(|v| (jit.is_pass(v), matches!(v, Cow::Borrowed(_))));
        assert_eq!(got, want, "{name}: {:?}", out.verdict);
    }
}

/// Serving frees each rule's syntax once it is checked, so a later rule's
/// inline list may be allocated where an earlier one's was: each list must
/// still get its own set (sets are cached by where the list is written).
#[test]
fn every_inline_list_is_its_own_set_when_served() {
    let n = 300;
    let mut src = String::from("set shared = [\"s.example\"]\n");
    for i in 0..n {
        src.push_str(&format!(
            "rule r{i} when {{query.name}} in [\"n{i}.example\", \"m{i}.example\"] or {{query.name}} in shared {{ then answer A 10.0.{}.{} }}\n",
            i / 256,
            i % 256
        ));
    }
    let reference = check(&src).policy.expect("valid");
    let served = check_for_serving(&src).policy.expect("valid");
    // One set per inline list and one for the named set, used by every rule.
    assert_eq!(served.sets.len(), n + 1);
    let jit = JitPolicy::compile_for_serving(served).expect("compiles");
    for i in (0..n).step_by(7) {
        for name in [format!("n{i}.example"), format!("m{i}.example")] {
            let c = serde_json::json!({ "query.name": name });
            let ctx = Context::from_json(&reference, &c).expect("context");
            let out = jit.eval(&ctx);
            assert_eq!(
                out.verdict.as_ref().map(|v| v.to_json()),
                reference.eval(&ctx).verdict.as_ref().map(|v| v.to_json()),
                "{name}"
            );
            // Every rule has priority 0: the index is the source order.
            assert_eq!(out.rule, Some(i), "{name}");
        }
    }
    let c = serde_json::json!({ "query.name": "s.example" });
    let ctx = Context::from_json(&reference, &c).expect("context");
    assert_eq!(jit.eval(&ctx).rule, Some(0));
}
