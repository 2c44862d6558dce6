//! `dnspolicy eval FILE ...`: one evaluation with the reference interpreter
//! or a compiled backend: `--backend jit` (the default: native code from
//! Cranelift) or `--backend wasm` (the policy compiled to WASM in wasmtime).
//! `--explain` traces the interpreter, whose semantics the others follow.
//! Context rules and the explain report are the compiler's; the WASM run
//! is the runtime's plugin host. This file reads flags and prints.

use crate::output::{print_human, use_color};
use crate::EvalArgs;
use anyhow::{anyhow, Context as _};
use dnspolicy_compiler::backend::interp::{self, default_subnet};
use dnspolicy_compiler::ir::context::ContextError;
use dnspolicy_compiler::ir::http::{HttpInputs, RequestParts};
use dnspolicy_compiler::ir::types::{canonical_name, qtype_from_str};
use dnspolicy_compiler::{check, Cidr, Context, Field, JitPolicy, Policy, Value};
use dnspolicy_runtime::plugin::host::Limits;
use dnspolicy_runtime::plugin::wasm::WasmPlugin;
use serde_json::Value as Json;
use std::borrow::Cow;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

/// Runs one evaluation. Exit 0 with a verdict (or `null`), 1 when the
/// policy does not check, 2 on usage or I/O errors.
pub fn run(args: &EvalArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let src = std::fs::read_to_string(&args.file).with_context(|| format!("cannot read {name}"))?;
    let checked = check(&src);
    let color = use_color(args.color);
    print_human(&checked.diagnostics, &name, &src, color);
    let Some(policy) = checked.policy else {
        eprintln!("{}", crate::output::plural(checked.error_count(), "error"));
        return Ok(ExitCode::from(1));
    };
    // File-backed sets are read once, beside the policy.
    dnspolicy_runtime::plugin::live::load_all(&policy, &args.file)?;
    let ctx = build_context(args, &policy)?;
    let verdict = match (args.backend, args.explain) {
        (crate::Backend::Jit, false) => {
            let jit = JitPolicy::compile(policy, false)?;
            jit.eval(&ctx).verdict.map(|v| v.into_owned())
        }
        (crate::Backend::Wasm, false) => {
            let wasm = match dnspolicy_compiler::backend::wasm::emit(&policy) {
                Ok(w) => w,
                Err(u) => {
                    print_human(&[u.diagnostic()], &name, &src, color);
                    return Ok(ExitCode::from(1));
                }
            };
            let plugin = WasmPlugin::load(
                "eval",
                &wasm,
                Path::new(&name),
                Limits::default(),
                &Json::Null,
            )
            .context("the compiled module does not load")?;
            plugin.eval_context(&ctx)?.0
        }
        // The interpreter; `--explain` always traces it, whose semantics
        // the other backends follow.
        (_, explain) => {
            let eval = if explain {
                policy.eval_traced(&ctx)
            } else {
                policy.eval(&ctx)
            };
            crate::output::out(&interp::explain(&policy, &eval, &src, &name));
            eval.verdict
        }
    };
    let out = verdict.as_ref().map_or(Json::Null, |v| v.to_json());
    crate::output::outln(&out.to_string());
    Ok(ExitCode::SUCCESS)
}

/// The context from the flags, then `--vars` (the compiler's JSON context
/// rules). A value that does not convert is missing, with a warning; keys
/// the policy does not know are ignored, so one variables file serves
/// several policies.
pub(crate) fn build_context(args: &EvalArgs, policy: &Policy) -> anyhow::Result<Context> {
    let mut ctx = Context::default();
    if let Some(q) = &args.query {
        let n = canonical_name(q).context("--query")?;
        ctx.set(Field::QueryName, Value::Name(n.into()));
        let t = args.qtype.as_deref().unwrap_or("A");
        let code =
            qtype_from_str(t).ok_or_else(|| anyhow!("--type: `{t}` is not a record type"))?;
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
            .map_err(|_| anyhow!("--client: `{c}` is not an IP address"))?;
        ctx.set(Field::ClientIp, Value::Ip(ip));
        ctx.set(Field::ClientSubnet, Value::Cidr(default_subnet(ip)));
    }
    if let Some(e) = &args.ecs {
        let c: Cidr = e.parse().context("--ecs")?;
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

    if let Some(line) = &args.http {
        let req = EvalRequest::parse(line, &args.headers)?;
        HttpInputs::new(policy, &[])
            .map_err(|e| anyhow!(e))?
            .fill(&mut ctx, &req);
    }

    let vars_text = match (&args.vars, &args.vars_file) {
        (Some(v), _) => Some(v.clone()),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        ),
        (None, None) => None,
    };
    if let Some(text) = vars_text {
        let json: Json = serde_json::from_str(&text).context("--vars is not valid JSON")?;
        for problem in ctx.merge_json(policy, &json).context("--vars")? {
            match problem {
                ContextError::Unknown(_) => {}
                p => eprintln!("warning: {p}; treated as missing"),
            }
        }
    }
    Ok(ctx)
}

/// The request of `--http 'GET /path?query'` and its `--header`s.
struct EvalRequest {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
}

impl EvalRequest {
    fn parse(line: &str, headers: &[String]) -> anyhow::Result<EvalRequest> {
        let mut words = line.split_whitespace();
        let (method, target) = match (words.next(), words.next()) {
            (Some(t), None) if t.starts_with('/') => ("GET", t),
            (Some(m), Some(t)) => (m, t),
            _ => {
                anyhow::bail!("--http: expected `METHOD /path?query`, e.g. 'GET /api?region=cn-sh'")
            }
        };
        if !target.starts_with('/') {
            anyhow::bail!("--http: the target `{target}` does not start with `/`");
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q.to_string())),
            None => (target, None),
        };
        let headers = headers
            .iter()
            .map(|h| {
                let (n, v) = h
                    .split_once(':')
                    .ok_or_else(|| anyhow!("--header: expected `NAME: VALUE`, got `{h}`"))?;
                Ok((n.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(EvalRequest {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            query,
            headers,
        })
    }
}

impl RequestParts for EvalRequest {
    fn method(&self) -> &str {
        &self.method
    }
    fn host(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == "host")
            .map(|(_, v)| v.as_str())
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    fn header(&self, lower_name: &str) -> Option<Cow<'_, str>> {
        let sep = if lower_name == "cookie" { "; " } else { ", " };
        let all: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == lower_name)
            .map(|(_, v)| v.as_str())
            .collect();
        (!all.is_empty()).then(|| Cow::Owned(all.join(sep)))
    }
}
