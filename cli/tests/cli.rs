//! The `dnspolicy` binary, run as a user would: the acceptance commands of
//! the examples, exit codes, summaries, and both diagnostic formats.

use serde_json::Value as Json;
use std::path::PathBuf;
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn dnspolicy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dnspolicy"))
        .args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .output()
        .expect("run dnspolicy")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The verdict: the last line of stdout, as JSON.
fn verdict(args: &[&str]) -> Json {
    let o = dnspolicy(args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    let out = stdout(&o);
    let last = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("{args:?}: no output"));
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{args:?}: last line {last:?}: {e}"))
}

fn temp_file(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dnspolicy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let p = dir.join(name);
    std::fs::write(&p, content).expect("write temp file");
    p
}

#[test]
fn seed_example_verdicts() {
    let seed = "examples/seed.dsl";
    assert_eq!(
        verdict(&[
            "eval",
            seed,
            "--vars",
            r#"{"user":{"age":20},"order":{"total":150}}"#
        ]),
        "VIP"
    );
    assert_eq!(
        verdict(&[
            "eval",
            seed,
            "--vars",
            r#"{"user":{"age":10,"tier":"gold"},"order":{"total":1}}"#
        ]),
        "GOLD_VIP"
    );
    let o = dnspolicy(&[
        "eval",
        seed,
        "--vars",
        r#"{"user":{"age":10,"tier":"silver"},"order":{"total":1}}"#,
    ]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim_end(), "null");
    // Dotted keys work too.
    assert_eq!(
        verdict(&[
            "eval",
            seed,
            "--vars",
            r#"{"user.age":20,"order.total":100}"#
        ]),
        "VIP"
    );
}

#[test]
fn design_card_evaluates_like_the_brace_form() {
    let card = "examples/design-card.dsl";
    assert_eq!(
        verdict(&["eval", card, "--vars", r#"{"user":{"age":20}}"#]),
        "VIP"
    );
    assert_eq!(
        verdict(&["eval", card, "--vars", r#"{"user":{"age":18}}"#]),
        Json::Null
    );
}

#[test]
fn geo_example() {
    let o = dnspolicy(&["check", "examples/geo.dsl"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end(), "ok: 3 rules, 3 sets");
    let bj = verdict(&[
        "eval",
        "examples/geo.dsl",
        "--query",
        "www.example.com",
        "--region",
        "CN-BJ",
    ]);
    assert_eq!(
        bj,
        serde_json::json!({"action":"rewrite","target":"cdn-bj.example.com","ttl":300})
    );
    let us = verdict(&[
        "eval",
        "examples/geo.dsl",
        "--query",
        "www.example.com",
        "--region",
        "US-CA",
    ]);
    assert_eq!(us["target"], "cdn-global.example.com");
    let ecs = verdict(&[
        "eval",
        "examples/geo.dsl",
        "--query",
        "WWW.example.com.",
        "--ecs",
        "198.51.100.0/24",
    ]);
    assert_eq!(ecs["target"], "cdn-bj.example.com");
    assert_eq!(
        verdict(&["eval", "examples/geo.dsl", "--query", "a.tracker.example"]),
        serde_json::json!({"action":"nxdomain"})
    );
}

#[test]
fn explain_names_the_rule_and_conditions() {
    let o = dnspolicy(&[
        "eval",
        "examples/geo.dsl",
        "--query",
        "www.example.com",
        "--region",
        "CN-BJ",
        "--explain",
    ]);
    let out = stdout(&o);
    assert!(out.contains("rule geo_redirect, priority 100"), "{out}");
    assert!(
        out.contains("when {query.name} in cdn_names  => true"),
        "{out}"
    );
    assert!(out.contains("=> true"), "{out}");
    assert!(
        out.contains("decided by: then rewrite \"cdn-bj.example.com\" ttl TTL"),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("{\"action\":\"rewrite\"")),
        "{out}"
    );
}

#[test]
fn every_example_checks() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dsl"))
        .map(|p| {
            p.strip_prefix(root())
                .expect("under root")
                .display()
                .to_string()
        })
        .collect();
    files.sort();
    assert!(files.len() >= 5);
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let o = dnspolicy(&args);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).lines().last().is_some_and(
        |l| l.starts_with("ok: ") && l.ends_with(&format!("in {} files", files.len()))
    ));
}

/// Every example under examples/ (and the served one): compiled to WASM,
/// validated by wabt's `wasm-validate`, and `eval --backend wasm` and
/// `--backend jit` agree with `--backend interp` on a spread of queries.
#[test]
fn compiled_backends_agree_with_the_interpreter_on_every_example() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dsl"))
        .collect();
    files.push(root().join("examples/serve/plugins/geo_redirect.dsl"));
    files.sort();
    let contexts: &[&[&str]] = &[
        &[],
        &["--query", "www.example.com", "--region", "CN-BJ"],
        &["--query", "www.example.com", "--ecs", "10.1.2.0/24"],
        &["--query", "img.example.com", "--client", "203.0.113.9"],
        &["--query", "ads.example.net"],
        &["--query", "a.ads.example.net", "--type", "TXT"],
        &["--query", "good.ads.example.net"],
        &["--query", "x.tracker.example"],
        &[
            "--query",
            "api.example.com",
            "--client",
            "10.1.2.3",
            "--vars",
            r#"{"user":{"canary_percent":50}}"#,
        ],
        &["--query", "x.internal.example.com", "--time", "10000"],
        &["--query", "y.test", "--asn", "64497"],
        &["--query", "y.test", "--country", "HK", "--type", "ANY"],
        &[
            "--vars",
            r#"{"user":{"age":20,"tier":"gold"},"order":{"total":150}}"#,
        ],
        &["--vars", r#"{"user":{"age":10,"tier":"gold"}}"#],
    ];
    let out = std::env::temp_dir().join(format!("dnspolicy-cli-{}-x.wasm", std::process::id()));
    for f in &files {
        let file = f.to_str().expect("utf-8");
        let o = dnspolicy(&[
            "compile",
            file,
            "--target",
            "wasm",
            "-o",
            out.to_str().expect("utf-8"),
        ]);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        let v = Command::new("wasm-validate")
            .arg(&out)
            .output()
            .expect("wasm-validate (Debian package wabt)");
        assert!(
            v.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
        for ctx in contexts {
            let mut args = vec!["eval", file];
            args.extend_from_slice(ctx);
            let with = |backend: &'static str| {
                let mut a = args.clone();
                a.extend(["--backend", backend]);
                dnspolicy(&a)
            };
            let want = with("interp");
            for backend in ["jit", "wasm"] {
                let got = with(backend);
                if !want.status.success() {
                    // A context this policy does not declare (e.g. --vars of
                    // another example's inputs): every backend refuses it.
                    assert_eq!(want.status.code(), got.status.code(), "{file} {ctx:?}");
                    continue;
                }
                assert!(
                    got.status.success(),
                    "{backend} {file} {ctx:?}: {}",
                    stderr(&got)
                );
                assert_eq!(
                    stdout(&got).lines().last(),
                    stdout(&want).lines().last(),
                    "{backend} {file} {ctx:?}"
                );
            }
        }
    }
    let clif = dnspolicy(&["compile", "examples/geo.dsl", "--target", "clif"]);
    assert!(clif.status.success(), "{}", stderr(&clif));
    assert!(
        stdout(&clif).starts_with(
            "; 3 rules: 1 constant verdicts, 2 compiled in 2 functions, 0 interpreted"
        ) && stdout(&clif).contains("function u0:0(i64, i64) -> i64"),
        "{}",
        stdout(&clif)
    );
    let wat = dnspolicy(&["compile", "examples/geo.dsl", "--target", "wat"]);
    assert!(wat.status.success());
    let text = stdout(&wat);
    assert!(
        text.starts_with("(module") && text.contains("(import \"dnspolicy\" \"get_field\""),
        "{text}"
    );
    // What the target cannot lower yet is E0053, with its place.
    let not_lowered = |file: &str, src: &str, what: &str| {
        let f = temp_file(file, src);
        let o = dnspolicy(&[
            "compile",
            f.to_str().expect("utf-8"),
            "--target",
            "wasm",
            "-o",
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(o.status.code(), Some(1), "{file}");
        let err = stderr(&o);
        assert!(
            err.contains("E0053")
                && err.contains(&format!("{what} is not supported by the wasm target yet")),
            "{err}"
        );
        f
    };
    not_lowered(
        "concat.dsl",
        "then {client.region} + \"-x\"\n",
        "string concatenation",
    );
    let list = not_lowered("list.dsl", "then [1, 2]\n", "a list verdict");
    // The JIT leaves such a rule to the interpreter: same verdict.
    let o = dnspolicy(&["eval", list.to_str().expect("utf-8")]);
    assert_eq!(stdout(&o).lines().last(), Some("[1,2]"), "{}", stderr(&o));
}

#[test]
fn check_errors_exit_1_with_summary_and_rendered_diagnostics() {
    let f = temp_file(
        "bad.dsl",
        "if {client.regoin} == \"CN-BJ\" { then \"bj\" }\nthen answer A \"not-an-ip\"\n",
    );
    let o = dnspolicy(&["check", f.to_str().expect("utf-8"), "--color", "never"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o).trim_end(), "2 errors");
    let err = stderr(&o);
    assert!(
        err.contains("[E0020] Error: unknown context path `client.regoin`"),
        "{err}"
    );
    assert!(err.contains("did you mean `client.region`?"), "{err}");
    assert!(err.contains("[E0041]"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no colour when not a terminal: {err}"
    );
    let o = dnspolicy(&["check", f.to_str().expect("utf-8"), "--color", "always"]);
    assert!(stderr(&o).contains('\u{1b}'), "colour when asked");
}

#[test]
fn check_json_format() {
    let f = temp_file(
        "bad2.dsl",
        "rule r {\n  if {client.asn} == \"x\" { then refuse }\n}\n",
    );
    let o = dnspolicy(&["check", "--format", "json", f.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let lines: Vec<Json> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 1);
    let d = &lines[0];
    assert_eq!(d["code"], "E0030");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["file"], f.to_str().expect("utf-8"));
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(2), Some(22))
    );
    assert_eq!(
        (d["end_line"].as_u64(), d["end_column"].as_u64()),
        (Some(2), Some(25))
    );
    assert_eq!(
        (d["start"].as_u64(), d["end"].as_u64()),
        (Some(30), Some(33))
    );
    assert_eq!(d["related"][0]["message"], "this is int");
    assert_eq!(
        stderr(&o).trim_end(),
        "1 error",
        "the summary stays off stdout in JSON mode"
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    let o = dnspolicy(&["check", "does/not/exist.dsl"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read does/not/exist.dsl"));
    assert_eq!(dnspolicy(&["check"]).status.code(), Some(2));
    assert_eq!(
        dnspolicy(&["eval", "examples/seed.dsl", "--vars", "{not json"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        dnspolicy(&["eval", "examples/geo.dsl", "--client", "nope"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(dnspolicy(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn eval_of_a_broken_policy_exits_1() {
    let f = temp_file("broken.dsl", "then {user.x} +\n");
    let o = dnspolicy(&["eval", f.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).is_empty());
}

#[test]
fn mistyped_variable_is_missing_with_a_warning() {
    let o = dnspolicy(&[
        "eval",
        "examples/seed.dsl",
        "--vars",
        r#"{"user":{"age":"20"},"order":{"total":150}}"#,
    ]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim_end(), "null");
    assert!(
        stderr(&o).contains("`user.age` is \"20\", which is not of type int; treated as missing"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_documents_the_commands() {
    let o = dnspolicy(&["--help"]);
    let out = stdout(&o);
    for word in ["check", "eval"] {
        assert!(out.contains(word), "{out}");
    }
    let o = dnspolicy(&["eval", "--help"]);
    for flag in [
        "--vars",
        "--vars-file",
        "--query",
        "--type",
        "--client",
        "--ecs",
        "--region",
        "--country",
        "--explain",
    ] {
        assert!(stdout(&o).contains(flag), "{flag}");
    }
}

#[test]
fn check_wasm_plugins_against_the_abi() {
    let o = dnspolicy(&["check", "examples/plugins/wasm/geo_redirect.wat"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim_end(),
        "ok: WASM plugin matches ABI version 1"
    );
    let cases = [
        (
            "system.wat",
            r#"(module (import "env" "system" (func (param i32) (result i32))) (memory (export "memory") 1))"#,
            "import `env.system` is not part of the plugin ABI",
        ),
        (
            "noexport.wat",
            r#"(module (memory (export "memory") 1) (func (export "dnspolicy_abi_version") (result i32) i32.const 1))"#,
            "missing export `alloc`",
        ),
        (
            "nomemory.wat",
            r#"(module (func (export "dnspolicy_abi_version") (result i32) i32.const 1))"#,
            "missing export `memory`",
        ),
        (
            "garbage.wasm",
            "garbage",
            "not a WASM binary (no \\0asm header), and not valid WAT text",
        ),
    ];
    for (file, text, why) in cases {
        let p = temp_file(file, text);
        let o = dnspolicy(&["check", "--format", "json", p.to_str().expect("utf-8")]);
        assert_eq!(o.status.code(), Some(1), "{file}");
        let d: Json =
            serde_json::from_str(stdout(&o).lines().next().expect("a diagnostic")).expect("JSON");
        assert_eq!(d["code"], "E0052", "{file}");
        assert!(
            d["message"].as_str().is_some_and(|m| m.contains(why)),
            "{file}: {d}"
        );
    }
}

#[test]
fn check_lua_plugins() {
    let o = dnspolicy(&["check", "examples/plugins/dns/geo_redirect.lua"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end(), "ok: Lua plugin defines apply");
    let bad = temp_file("bad.lua", "function apply(ctx)\n  if x then\nend\n");
    let o = dnspolicy(&["check", "--format", "json", bad.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let d: Json =
        serde_json::from_str(stdout(&o).lines().next().expect("a diagnostic")).expect("JSON");
    assert_eq!(d["code"], "E0050");
    assert!(
        d["message"]
            .as_str()
            .is_some_and(|m| m.contains("'end' expected")),
        "{d}"
    );
    let none = temp_file("noapply.lua", "x = 1\n");
    let o = dnspolicy(&["check", none.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("does not define `apply(ctx)`"),
        "{}",
        stderr(&o)
    );
    // Top-level code runs in the sandbox: no io.
    let esc = temp_file(
        "escape.lua",
        "io.open('/etc/passwd')\nfunction apply(ctx) end\n",
    );
    assert_eq!(
        dnspolicy(&["check", esc.to_str().expect("utf-8")])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn check_plugin_metadata_against_the_schema() {
    let bad = temp_file(
        "schema-bad.yaml",
        "priority: high\nlimits:\n  memory: 5\n  colour: red\n",
    );
    let o = dnspolicy(&["check", "--format", "json", bad.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let d: Json =
        serde_json::from_str(stdout(&o).lines().next().expect("a diagnostic")).expect("JSON");
    assert_eq!(d["code"], "E0051");
    let msg = d["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("/priority") && msg.contains("/limits/memory") && msg.contains("colour"),
        "{msg}"
    );
    let good = temp_file(
        "schema-good.yaml",
        "version: \"1.2\"\npriority: 5\nconfig:\n  any: thing\n",
    );
    let o = dnspolicy(&["check", good.to_str().expect("utf-8")]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim_end(), "ok: plugin metadata");
    // A plugin's metadata is checked with the plugin.
    let p = temp_file("withmeta.dsl", "then refuse\n");
    std::fs::write(p.with_extension("yaml"), "priority: [1]\n").expect("write yaml");
    assert_eq!(
        dnspolicy(&["check", p.to_str().expect("utf-8")])
            .status
            .code(),
        Some(1)
    );
}

// `dnspolicy test`: the examples' tests pass on all three backends, and a
// wrong expectation fails with the interpreter's trace, in every format.

#[test]
fn every_example_policy_has_tests_and_they_pass() {
    let o = dnspolicy(&["test", "examples/"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains(", 0 failed"), "{out}");
    for policy in [
        "examples/seed.dsl",
        "examples/design-card.dsl",
        "examples/geo.dsl",
        "examples/blocklist.dsl",
        "examples/canary.dsl",
        "examples/serve/plugins/geo_redirect.dsl",
        "examples/http/routes.dsl",
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
    let out = stdout(&o);
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
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("JSON");
    assert_eq!(v["failed"], 1);
    assert_eq!(v["cases"][0]["passed"], false);
    assert!(v["cases"][0]["trace"]
        .as_str()
        .is_some_and(|t| t.contains("geo_redirect")));

    let o = dnspolicy(&["test", d, "--format", "junit"]);
    let x = stdout(&o);
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

#[test]
fn fmt_rewrites_checks_and_leaves_broken_files_alone() {
    let dir = std::env::temp_dir().join(format!("dnspolicy-fmt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let messy = dir.join("messy.dsl");
    let broken = dir.join("broken.dsl");
    std::fs::write(&messy, "rule a {then nxdomain}   # gone\n").expect("write");
    std::fs::write(&broken, "rule {\n").expect("write");
    let m = messy.to_str().expect("utf-8");
    let o = dnspolicy(&["fmt", "--check", m]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("would reformat"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read_to_string(&messy).expect("read"),
        "rule a {then nxdomain}   # gone\n",
        "--check changes nothing"
    );
    let o = dnspolicy(&["fmt", m]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&messy).expect("read"),
        "rule a {\n    then nxdomain  # gone\n}\n"
    );
    assert_eq!(dnspolicy(&["fmt", "--check", m]).status.code(), Some(0));
    let b = broken.to_str().expect("utf-8");
    let o = dnspolicy(&["fmt", b]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("does not parse"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&broken).expect("read"),
        "rule {\n",
        "left alone"
    );
    // The examples are in the canonical layout (but the two kept verbatim
    // from the original design, in the angle spelling).
    let mut files: Vec<String> = std::fs::read_dir(root().join("examples"))
        .expect("examples")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dsl"))
        .filter(|p| !p.ends_with("seed.dsl") && !p.ends_with("design-card.dsl"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    let mut args = vec!["fmt", "--check"];
    args.extend(files.iter().map(String::as_str));
    let o = dnspolicy(&args);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn answer_expectations_check_the_dns_response() {
    let dir = std::env::temp_dir().join(format!("dnspolicy-answer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("p.dsl"),
        "rule w when {query.name} == \"w.example.com\" { then answer A 192.0.2.7 ttl 30 }\n",
    )
    .expect("policy");
    let case = |body: &str| {
        std::fs::write(
            dir.join("p.test.toml"),
            format!("[[case]]\nname = \"c\"\nquery = \"w.example.com\"\n{body}\n"),
        )
        .expect("test");
        dnspolicy(&["test", dir.join("p.test.toml").to_str().expect("utf-8")])
    };
    let o = case(
        r#"answer = { rcode = "NOERROR", records = ["w.example.com. 30 IN A 192.0.2.7"], ecs_scope = 0 }
ecs = "198.51.100.0/24""#,
    );
    assert!(o.status.success(), "{}", stdout(&o));
    let o = case(r#"answer = { records = ["w.example.com. 30 IN A 192.0.2.8"] }"#);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("answer: expected records"),
        "{}",
        stdout(&o)
    );
    let o = case("answer = { rcode = \"NOERROR\" }\nregion = \"CN-BJ\"");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("apply to `expect` only"),
        "{}",
        stdout(&o)
    );
    let o = case("answer = { rcode = \"NOERROR\" }\ntype = \"AAAA\"");
    assert_eq!(
        o.status.code(),
        Some(0),
        "an A answer to AAAA is NODATA, NOERROR: {}",
        stdout(&o)
    );
}
