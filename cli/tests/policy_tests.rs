//! `dnspolicy test`: the examples' tests pass on all three backends, and a
//! wrong expectation fails with the interpreter's trace, in every format.

use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dnspolicy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run dnspolicy")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_example_policy_has_tests_and_they_pass() {
    let o = dnspolicy(&["test", "examples/"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", text(&o.stderr));
    assert!(out.contains(", 0 failed"), "{out}");
    for policy in [
        "examples/seed.dsl",
        "examples/design-card.dsl",
        "examples/geo.dsl",
        "examples/blocklist.dsl",
        "examples/canary.dsl",
        "examples/serve/plugins/geo_redirect.dsl",
    ] {
        let test = policy.replace(".dsl", ".test.toml");
        assert!(root().join(&test).exists(), "{policy} has no {test}");
        assert!(out.contains(&format!("ok    {test}:")), "{test} ran: {out}");
    }
    // Every case ran on the WASM module too, unless the policy is not lowered.
    let not_lowered = out.matches("wasm: not lowered").count();
    let cases = out.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(cases >= 25, "{cases} cases");
    assert!(not_lowered < cases, "most cases run on WASM: {out}");
}

#[test]
fn a_wrong_expectation_fails_with_the_trace() {
    let dir = std::env::temp_dir().join(format!("dnspolicy-test-cmd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(root().join("examples/geo.dsl"), dir.join("geo.dsl")).expect("copy");
    std::fs::write(
        dir.join("geo.test.toml"),
        "[[case]]\nname = \"wrong on purpose\"\nquery = \"www.example.com\"\nregion = \"CN-BJ\"\n\
         expect = { action = \"rewrite\", target = \"cdn-global.example.com\", ttl = 300 }\n\n\
         [[case]]\nname = \"right\"\nquery = \"ads.example.net\"\nexpect = { action = \"nxdomain\" }\n",
    )
    .expect("write");
    let d = dir.to_str().expect("utf-8");
    let o = dnspolicy(&["test", d]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("FAIL") && out.contains("wrong on purpose"),
        "{out}"
    );
    assert!(
        out.contains(
            "expected {\"action\":\"rewrite\",\"target\":\"cdn-global.example.com\",\"ttl\":300}"
        ),
        "{out}"
    );
    // The interpreter's explain trace: the rule that decided, and why.
    assert!(out.contains("| ") && out.contains("geo_redirect"), "{out}");
    assert!(out.contains("2 cases: 1 passed, 1 failed"), "{out}");

    let o = dnspolicy(&["test", d, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(text(&o.stdout).trim()).expect("JSON");
    assert_eq!(v["failed"], 1);
    assert_eq!(v["cases"][0]["passed"], false);
    assert!(v["cases"][0]["trace"]
        .as_str()
        .is_some_and(|t| t.contains("geo_redirect")));

    let o = dnspolicy(&["test", d, "--format", "junit"]);
    let x = text(&o.stdout);
    assert!(
        x.contains("<testsuite ") && x.contains("failures=\"1\""),
        "{x}"
    );
    assert!(x.contains("<failure message="), "{x}");
    assert_eq!(o.status.code(), Some(1));

    // No tests at all is a usage error.
    let o = dnspolicy(&["test", "grammar/"]);
    assert_eq!(o.status.code(), Some(2));
}
