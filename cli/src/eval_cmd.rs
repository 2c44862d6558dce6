//! `dnspolicy eval FILE ...`: one evaluation with the reference interpreter
//! or a compiled backend: `--backend jit` (the default: native code from
//! Cranelift) or `--backend wasm` (the policy compiled to WASM in wasmtime).
//! `--explain` traces the interpreter, whose semantics the others follow.

use crate::output::{print_human, use_color};
use crate::EvalArgs;
use dnspolicy_compiler::context::Field;
use dnspolicy_compiler::diagnostics::LineIndex;
use dnspolicy_compiler::interp::{default_subnet, Step};
use dnspolicy_compiler::types::{canonical_name, qtype_from_str};
use dnspolicy_compiler::{check, Cidr, Context, Policy, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;

/// Runs one evaluation. Exit 0 with a verdict (or `null`), 1 when the
/// policy does not check, 2 on usage or I/O errors.
pub fn run(args: &EvalArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: &EvalArgs) -> Result<ExitCode, String> {
    let name = args.file.display().to_string();
    let src =
        std::fs::read_to_string(&args.file).map_err(|e| format!("cannot read {name}: {e}"))?;
    let checked = check(&src);
    let color = use_color(args.color);
    print_human(&checked.diagnostics, &name, &src, color);
    let Some(policy) = checked.policy else {
        eprintln!("{}", crate::output::plural(checked.error_count(), "error"));
        return Ok(ExitCode::from(1));
    };
    let ctx = build_context(args, &policy)?;
    if args.backend == crate::Backend::Jit && !args.explain {
        let jit = dnspolicy_compiler::jit::JitPolicy::compile(policy, false)
            .map_err(|e| e.to_string())?;
        let out = jit.eval(&ctx);
        let json = out.verdict.as_ref().map_or(Json::Null, |v| v.to_json());
        crate::output::outln(&json.to_string());
        return Ok(ExitCode::SUCCESS);
    }
    if args.backend == crate::Backend::Wasm && !args.explain {
        let verdict = eval_wasm(&policy, &ctx, &src, &name, color)?;
        let Some(verdict) = verdict else {
            return Ok(ExitCode::from(1));
        };
        let out = verdict.as_ref().map_or(Json::Null, |v| v.to_json());
        crate::output::outln(&out.to_string());
        return Ok(ExitCode::SUCCESS);
    }
    let eval = if args.explain {
        policy.eval_traced(&ctx)
    } else {
        policy.eval(&ctx)
    };
    if let Some(trace) = &eval.trace {
        crate::output::out(&explain(&policy, &trace.steps, &src, &name));
        if eval.verdict.is_none() {
            crate::output::outln("no rule decided");
        }
        if eval.missing_reads > 0 {
            crate::output::outln(&format!(
                "({} read(s) of missing values, which compare false)",
                eval.missing_reads
            ));
        }
    }
    let out = eval.verdict.as_ref().map_or(Json::Null, |v| v.to_json());
    crate::output::outln(&out.to_string());
    Ok(ExitCode::SUCCESS)
}

/// Compiles the policy to WASM and runs it in wasmtime through the plugin
/// host. `Ok(None)`: the wasm target cannot lower the policy (reported).
#[allow(clippy::type_complexity)]
fn eval_wasm(
    policy: &Policy,
    ctx: &Context,
    src: &str,
    name: &str,
    color: bool,
) -> Result<Option<Option<dnspolicy_compiler::Verdict>>, String> {
    let wasm = match dnspolicy_compiler::wasm::emit(policy) {
        Ok(w) => w,
        Err(u) => {
            let d = dnspolicy_compiler::Diagnostic::error("E0053", u.to_string(), u.span);
            print_human(&[d], name, src, color);
            return Ok(None);
        }
    };
    let plugin = dnspolicy_runtime::wasm::WasmPlugin::load(
        "eval",
        &wasm,
        std::path::Path::new(name),
        dnspolicy_runtime::host::Limits::default(),
        &Json::Null,
    )
    .map_err(|e| format!("the compiled module does not load: {e}"))?;
    let (verdict, _rule) = plugin.eval_context(ctx)?;
    Ok(Some(verdict))
}

fn build_context(args: &EvalArgs, policy: &Policy) -> Result<Context, String> {
    let mut ctx = Context::default();
    if let Some(q) = &args.query {
        let n = canonical_name(q).map_err(|e| format!("--query: {e}"))?;
        ctx.set(Field::QueryName, Value::Name(n.into()));
        let t = args.qtype.as_deref().unwrap_or("A");
        let code =
            qtype_from_str(t).ok_or_else(|| format!("--type: `{t}` is not a record type"))?;
        ctx.set(Field::QueryType, Value::Qtype(code));
        ctx.set(Field::QueryClass, Value::Str("IN".into()));
        ctx.set(Field::QueryRecursionDesired, Value::Bool(true));
        ctx.set(Field::QueryDnssecOk, Value::Bool(false));
        ctx.set(Field::QueryTransport, Value::Str("udp".into()));
    }
    if let Some(t) = &args.transport {
        ctx.set(Field::QueryTransport, Value::Str(t.as_str().into()));
    }
    if let Some(c) = &args.client {
        let ip: IpAddr = c
            .parse()
            .map_err(|_| format!("--client: `{c}` is not an IP address"))?;
        ctx.set(Field::ClientIp, Value::Ip(ip));
        ctx.set(Field::ClientSubnet, Value::Cidr(default_subnet(ip)));
    }
    if let Some(e) = &args.ecs {
        let c: Cidr = e.parse().map_err(|m| format!("--ecs: {m}"))?;
        ctx.set(Field::ClientSubnet, Value::Cidr(c));
    }
    let strings = [
        (Field::ClientRegion, &args.region),
        (Field::ClientCountry, &args.country),
        (Field::ClientCity, &args.city),
    ];
    for (f, v) in strings {
        if let Some(v) = v {
            ctx.set(f, Value::Str(v.as_str().into()));
        }
    }
    if let Some(a) = args.asn {
        ctx.set(Field::ClientAsn, Value::Int(a));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    ctx.set_time(args.time.unwrap_or(now));

    let vars_text = match (&args.vars, &args.vars_file) {
        (Some(v), _) => Some(v.clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?,
        ),
        (None, None) => None,
    };
    if let Some(text) = vars_text {
        let json: Json =
            serde_json::from_str(&text).map_err(|e| format!("--vars is not valid JSON: {e}"))?;
        let Json::Object(_) = json else {
            return Err("--vars must be a JSON object, e.g. '{\"user\":{\"age\":20}}'".into());
        };
        let mut flat = BTreeMap::new();
        flatten("", &json, &mut flat);
        for input in &policy.inputs {
            let Some(j) = flat.get(input.path.as_str()) else {
                continue;
            };
            match Value::from_json(j, &input.ty) {
                Some(v) => ctx.set_var(&input.path, v),
                None => eprintln!(
                    "warning: variable `{}` is {j}, which is not of type {}; treated as missing",
                    input.path, input.ty
                ),
            }
        }
    }
    Ok(ctx)
}

/// `{"user":{"age":20}}` → `user.age = 20`; dotted keys are kept as written.
fn flatten<'a>(prefix: &str, j: &'a Json, out: &mut BTreeMap<String, &'a Json>) {
    if let Json::Object(map) = j {
        for (k, v) in map {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            flatten(&key, v, out);
        }
    } else if !prefix.is_empty() {
        out.insert(prefix.to_string(), j);
    }
}

fn snippet(src: &str, span: dnspolicy_compiler::Span) -> String {
    let text: String = span
        .text(src)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if text.chars().count() > 72 {
        format!("{}...", text.chars().take(69).collect::<String>())
    } else {
        text
    }
}

/// The `--explain` report: rules tried, guards and conditions with their
/// values, and the `then` that decided.
fn explain(policy: &Policy, steps: &[Step], src: &str, file: &str) -> String {
    let idx = LineIndex::new(src);
    let at = |s: dnspolicy_compiler::Span| {
        let (l, c) = idx.line_col(s.start);
        format!("{file}:{l}:{c}")
    };
    let mut out = String::new();
    for s in steps {
        match s {
            Step::IndexSkipped(n) => {
                let rules = if *n == 1 { "rule" } else { "rules" };
                out.push_str(&format!(
                    "({n} {rules} skipped by the rule index: their indexed condition cannot hold)\n"
                ));
            }
            Step::Rule(i) => {
                let r = &policy.rules[*i];
                let kind = if r.implicit { " (bare statements)" } else { "" };
                out.push_str(&format!(
                    "rule {}{kind}, priority {}, at {}\n",
                    r.name,
                    r.priority,
                    at(r.span)
                ));
            }
            Step::Guard { span, result } => {
                out.push_str(&format!(
                    "  when {}  => {result}  ({})\n",
                    snippet(src, *span),
                    at(*span)
                ));
            }
            Step::Cond { span, result } => {
                out.push_str(&format!(
                    "  if {}  => {result}  ({})\n",
                    snippet(src, *span),
                    at(*span)
                ));
            }
            Step::Decided { span } => {
                out.push_str(&format!(
                    "  decided by: {}  ({})\n",
                    snippet(src, *span),
                    at(*span)
                ));
            }
            Step::MissingValue { span } => {
                out.push_str(&format!(
                    "  {}  ({}): cannot decide (a value it needs is missing, or a TTL or address is out of range); the rule passes\n",
                    snippet(src, *span),
                    at(*span)
                ));
            }
        }
    }
    out
}
