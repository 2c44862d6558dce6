//! `dnspolicy test [PATH...]`: policy unit tests. A `*.test.toml` file
//! names a policy and its cases; each case is a query context (the flags of
//! `eval`, as keys) and the verdict expected. Every case runs on the
//! interpreter, the JIT and the WASM module; a backend that disagrees with
//! the interpreter is a failure of its own. Failures print the
//! interpreter's `--explain` trace.

use crate::eval_cmd::build_context;
use crate::{Backend, ColorChoice, EvalArgs};
use anyhow::{anyhow, Context as _};
use dnspolicy_compiler::backend::interp;
use dnspolicy_compiler::{check, JitPolicy, Verdict};
use dnspolicy_runtime::plugin::host::Limits;
use dnspolicy_runtime::plugin::wasm::WasmPlugin;
use serde::Deserialize;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Output formats of `dnspolicy test`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    /// One line per case, traces for failures.
    Human,
    /// One JSON document.
    Json,
    /// JUnit XML (one testsuite per file).
    Junit,
}

/// A test file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// The policy, relative to the test file (default: `NAME.dsl` for
    /// `NAME.test.toml`).
    policy: Option<PathBuf>,
    /// For `answer` cases: the zone the server loads (relative to the
    /// test file; default: the embedded example zone).
    zone: Option<PathBuf>,
    /// For `answer` cases: GeoIP sources (default: the embedded region map).
    #[serde(default)]
    geoip: Vec<PathBuf>,
    #[serde(rename = "case", default)]
    cases: Vec<Case>,
}

/// One case: the context (like `eval`'s flags) and what it must decide.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    query: Option<String>,
    #[serde(rename = "type")]
    qtype: Option<String>,
    transport: Option<String>,
    client: Option<String>,
    ecs: Option<String>,
    region: Option<String>,
    country: Option<String>,
    city: Option<String>,
    asn: Option<i64>,
    time: Option<i64>,
    /// An HTTP request line (`"GET /api?region=cn-sh"`), as `eval --http`.
    http: Option<String>,
    /// Its headers (`["X-User-Tier: premium"]`), as `eval --header`.
    #[serde(default)]
    headers: Vec<String>,
    /// Injected variables (and context paths), as `eval --vars` takes them.
    vars: Option<toml::Value>,
    /// The verdict as `eval` prints it: a table for actions
    /// (`{ action = "rewrite", target = "…", ttl = 300 }`), a plain value
    /// for value verdicts.
    expect: Option<toml::Value>,
    /// `false`: no rule decides.
    decides: Option<bool>,
    /// The deciding rule's name.
    rule: Option<String>,
    /// The DNS response, through the server's own path.
    answer: Option<crate::test_answer::AnswerExpect>,
}

/// What one case came to.
struct Outcome {
    file: String,
    name: String,
    failures: Vec<String>,
    notes: Vec<String>,
    trace: Option<String>,
}

/// Finds `*.test.toml` files under the paths (files are taken as given).
fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            let entries =
                std::fs::read_dir(&p).with_context(|| format!("cannot read {}", p.display()))?;
            for e in entries {
                stack.push(e?.path());
            }
        } else if paths.contains(&p) || p.to_string_lossy().ends_with(".test.toml") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn toml_to_json(v: &toml::Value) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// Runs the tests. Exit 0 when every case passes, 1 when one fails or a
/// policy does not check, 2 on usage or I/O errors (as `check`).
pub fn run(paths: &[PathBuf], format: TestFormat) -> ExitCode {
    match run_inner(paths, format) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(paths: &[PathBuf], format: TestFormat) -> anyhow::Result<ExitCode> {
    let files = collect(paths)?;
    if files.is_empty() {
        return Err(anyhow!("no *.test.toml files under the paths given"));
    }
    let mut outcomes = Vec::new();
    for f in &files {
        outcomes.extend(run_file(f)?);
    }
    let failed = outcomes.iter().filter(|o| !o.failures.is_empty()).count();
    match format {
        TestFormat::Human => print_human(&outcomes, failed),
        TestFormat::Json => print_json(&outcomes, failed),
        TestFormat::Junit => print_junit(&outcomes),
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_file(path: &Path) -> anyhow::Result<Vec<Outcome>> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {label}"))?;
    let t: TestFile = toml::from_str(&text).with_context(|| format!("{label}: not a test file"))?;
    let policy_path = match &t.policy {
        Some(p) => path.parent().unwrap_or(Path::new(".")).join(p),
        None => {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            path.with_file_name(name.trim_end_matches(".test.toml").to_string() + ".dsl")
        }
    };
    let policy_label = policy_path.display().to_string();
    let src = std::fs::read_to_string(&policy_path)
        .with_context(|| format!("{label}: cannot read the policy {policy_label}"))?;
    let checked = check(&src);
    let Some(policy) = checked.policy else {
        return Ok(vec![Outcome {
            file: label,
            name: "(policy checks)".into(),
            failures: vec![format!(
                "{policy_label} does not check: run `dnspolicy check {policy_label}`"
            )],
            notes: Vec::new(),
            trace: None,
        }]);
    };
    if t.cases.is_empty() {
        return Err(anyhow!("{label}: no [[case]]"));
    }
    let names: Vec<String> = policy.rules.iter().map(|r| r.name.clone()).collect();
    // The JIT takes its own copy of the checked policy.
    let Some(for_jit) = check(&src).policy else {
        return Err(anyhow!("{policy_label}: checks once but not twice"));
    };
    // Each copy has its own file-backed sets: read them into both.
    for p in [&policy, &for_jit] {
        dnspolicy_runtime::plugin::live::load_all(p, &policy_path)
            .map_err(|e| anyhow!("{label}: {e}"))?;
    }
    let jit = JitPolicy::compile(for_jit, false)
        .map_err(|e| anyhow!("{policy_label}: the JIT refuses it: {e}"))?;
    let wasm = match dnspolicy_compiler::backend::wasm::emit(&policy) {
        Ok(bytes) => Some(
            WasmPlugin::load("test", &bytes, &policy_path, Limits::default(), &Json::Null)
                .with_context(|| format!("{policy_label}: the compiled module does not load"))?,
        ),
        Err(u) => {
            let why = u.diagnostic().message;
            eprintln!("note: {policy_label}: not lowered to WASM ({why}); cases run on the interpreter and the JIT");
            None
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let server = if t.cases.iter().any(|c| c.answer.is_some()) {
        let zone = t.zone.as_ref().map(|z| dir.join(z));
        let geoip: Vec<PathBuf> = t.geoip.iter().map(|g| dir.join(g)).collect();
        Some(crate::test_answer::AnswerServer::new(
            &policy_path,
            zone.as_deref(),
            &geoip,
        )?)
    } else {
        None
    };
    let mut out = Vec::new();
    for case in &t.cases {
        let mut o = Outcome {
            file: label.clone(),
            name: case.name.clone(),
            failures: Vec::new(),
            notes: Vec::new(),
            trace: None,
        };
        let args = EvalArgs {
            file: policy_path.clone(),
            vars: case.vars.as_ref().map(|v| toml_to_json(v).to_string()),
            vars_file: None,
            query: case.query.clone(),
            qtype: case.qtype.clone(),
            client: case.client.clone(),
            ecs: case.ecs.clone(),
            region: case.region.clone(),
            country: case.country.clone(),
            city: case.city.clone(),
            asn: case.asn,
            transport: case.transport.clone(),
            http: case.http.clone(),
            headers: case.headers.clone(),
            // A fixed time unless the case sets one: tests must not depend
            // on when they run.
            time: Some(case.time.unwrap_or(0)),
            explain: false,
            backend: Backend::Interp,
            color: ColorChoice::Never,
        };
        let ctx = match build_context(&args, &policy) {
            Ok(c) => c,
            Err(e) => {
                o.failures.push(format!("bad case: {e:#}"));
                out.push(o);
                continue;
            }
        };
        if let (Some(want), Some(server)) = (&case.answer, &server) {
            answer_case(case, want, server, &mut o);
        }
        let reference = policy.eval(&ctx);
        let show = |v: &Option<Verdict>| v.as_ref().map_or(Json::Null, Verdict::to_json);
        let got = show(&reference.verdict);
        let got_rule = reference.rule.and_then(|i| names.get(i)).cloned();
        match (&case.expect, case.decides) {
            (Some(want), _) => {
                let want = toml_to_json(want);
                if got != want {
                    o.failures.push(format!("expected {want}, got {got}"));
                }
            }
            (None, Some(false)) => {
                if !got.is_null() {
                    o.failures.push(format!("expected no decision, got {got}"));
                }
            }
            (None, _) if case.answer.is_some() => {}
            (None, _) => o
                .failures
                .push("the case needs `expect = …`, `decides = false` or `answer = …`".into()),
        }
        if let Some(want) = &case.rule {
            if got_rule.as_deref() != Some(want.as_str()) {
                o.failures.push(format!(
                    "expected rule {want} to decide, got {}",
                    got_rule.as_deref().unwrap_or("none")
                ));
            }
        }
        // The other backends must agree with the interpreter.
        let j = jit.eval(&ctx);
        let jv = j.verdict.map(|v| v.to_json()).unwrap_or(Json::Null);
        let jr = j.rule.and_then(|i| names.get(i)).cloned();
        if jv != got || jr != got_rule {
            o.failures.push(format!(
                "backends disagree: interpreter {got} (rule {}), jit {jv} (rule {})",
                got_rule.as_deref().unwrap_or("none"),
                jr.as_deref().unwrap_or("none")
            ));
        }
        match &wasm {
            Some(w) => match w.eval_context(&ctx) {
                Ok((wv, wr)) => {
                    let wv = show(&wv);
                    let wr = wr.and_then(|i| names.get(i)).cloned();
                    if wv != got || wr != got_rule {
                        o.failures.push(format!(
                            "backends disagree: interpreter {got} (rule {}), wasm {wv} (rule {})",
                            got_rule.as_deref().unwrap_or("none"),
                            wr.as_deref().unwrap_or("none")
                        ));
                    }
                }
                Err(e) => o.failures.push(format!("wasm: {e}")),
            },
            None => o.notes.push("wasm: not lowered".into()),
        }
        if !o.failures.is_empty() {
            let traced = policy.eval_traced(&ctx);
            o.trace = Some(interp::explain(&policy, &traced, &src, &policy_label));
        }
        out.push(o);
    }
    Ok(out)
}

/// Runs an `answer` case through the server path. Eval-only overrides
/// (region, country, city, asn, vars, time) cannot apply there: a case
/// that mixes them with `answer` is refused rather than half-honoured.
fn answer_case(
    case: &Case,
    want: &crate::test_answer::AnswerExpect,
    server: &crate::test_answer::AnswerServer,
    o: &mut Outcome,
) {
    let eval_only = case.region.is_some()
        || case.country.is_some()
        || case.city.is_some()
        || case.asn.is_some()
        || case.vars.is_some()
        || case.time.is_some();
    if eval_only {
        o.failures.push(
            "bad case: `answer` runs the query through the server (GeoIP from the file's `geoip`); \
             region, country, city, asn, vars and time apply to `expect` only"
                .into(),
        );
        return;
    }
    let Some(q) = case.query.as_deref() else {
        o.failures.push("bad case: `answer` needs `query`".into());
        return;
    };
    match server.check(
        q,
        case.qtype.as_deref(),
        case.transport.as_deref(),
        case.client.as_deref(),
        case.ecs.as_deref(),
        want,
    ) {
        Ok(f) => o
            .failures
            .extend(f.into_iter().map(|f| format!("answer: {f}"))),
        Err(e) => o.failures.push(format!("bad case: {e:#}")),
    }
}

fn print_human(outcomes: &[Outcome], failed: usize) {
    for o in outcomes {
        if o.failures.is_empty() {
            let note = if o.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", o.notes.join("; "))
            };
            crate::output::outln(&format!("ok    {}: {}{note}", o.file, o.name));
        } else {
            crate::output::outln(&format!("FAIL  {}: {}", o.file, o.name));
            for f in &o.failures {
                crate::output::outln(&format!("      {f}"));
            }
            if let Some(t) = &o.trace {
                for line in t.lines() {
                    crate::output::outln(&format!("      | {line}"));
                }
            }
        }
    }
    crate::output::outln(&format!(
        "{} cases: {} passed, {failed} failed",
        outcomes.len(),
        outcomes.len() - failed
    ));
}

fn print_json(outcomes: &[Outcome], failed: usize) {
    let cases: Vec<Json> = outcomes
        .iter()
        .map(|o| {
            serde_json::json!({
                "file": o.file,
                "name": o.name,
                "passed": o.failures.is_empty(),
                "failures": o.failures,
                "notes": o.notes,
                "trace": o.trace,
            })
        })
        .collect();
    crate::output::outln(
        &serde_json::json!({ "cases": cases, "passed": outcomes.len() - failed, "failed": failed })
            .to_string(),
    );
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn print_junit(outcomes: &[Outcome]) {
    let mut files: Vec<&str> = outcomes.iter().map(|o| o.file.as_str()).collect();
    files.dedup();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for f in files {
        let cases: Vec<&Outcome> = outcomes.iter().filter(|o| o.file == f).collect();
        let failed = cases.iter().filter(|o| !o.failures.is_empty()).count();
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\">\n",
            xml(f),
            cases.len()
        ));
        for o in cases {
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(f),
                xml(&o.name)
            ));
            if o.failures.is_empty() {
                x.push_str("/>\n");
            } else {
                x.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    xml(&o.failures.join("; ")),
                    xml(o.trace.as_deref().unwrap_or(""))
                ));
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>");
    crate::output::outln(&x);
}
