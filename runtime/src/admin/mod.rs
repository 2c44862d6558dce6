//! The admin HTTP endpoint: Prometheus `/metrics`, `/healthz`, `/readyz`,
//! `/plugins` (JSON: name, kind, version, state, priority, per-rule counts),
//! the status page (`/`, `/ui`, `/status.json`: [`status`]) and
//! `POST /reload`; [`mod@metrics`] holds the query-path counters.
//!
//! Reads the server's shared state; the query path never waits on it.

pub mod metrics;
pub mod status;

use crate::admin::metrics::{counter, gauge, label};
use crate::server::Shared;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves admin requests until `stop` is cancelled.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let shared = shared.clone();
                async move {
                    let mutating = req.method() != Method::GET && req.method() != Method::HEAD;
                    if let Some(denied) = authorize(&shared, &req, mutating) {
                        return Ok::<_, Infallible>(denied);
                    }
                    if req.method() == Method::POST && req.uri().path() == "/reload" {
                        // Building a chain can take a second: not on this thread.
                        let r = tokio::task::spawn_blocking(move || shared.reload()).await;
                        return Ok::<_, Infallible>(reload_response(r.unwrap_or_else(|e| {
                            Err(crate::reload::ReloadError::Panicked(e.to_string()))
                        })));
                    }
                    Ok::<_, Infallible>(route(&shared, req.method(), req.uri().path()))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}

/// `None` when the request may go on; otherwise the 401 to send. With a
/// token set, calls that change state need `Authorization: Bearer TOKEN`;
/// reads too unless `[admin] open_reads` (the default) leaves them open.
/// Without a token the endpoint is on loopback (start-up refuses anything
/// else), and every call is allowed.
fn authorize<B>(
    shared: &Shared,
    req: &Request<B>,
    mutating: bool,
) -> Option<Response<Full<Bytes>>> {
    let token = shared.admin_token.as_deref()?;
    if !mutating && shared.admin_open_reads {
        return None;
    }
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
        return None;
    }
    tracing::warn!(
        method = %req.method(),
        path = req.uri().path(),
        "admin call refused: missing or wrong bearer token"
    );
    let mut r = respond(
        StatusCode::UNAUTHORIZED,
        "text/plain",
        "unauthorized: this call needs `Authorization: Bearer TOKEN` ([admin] token_file or DNSPOLICY_ADMIN_TOKEN)\n".into(),
    );
    if let Ok(v) = "Bearer realm=\"dnspolicy\"".parse() {
        r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
    }
    Some(r)
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn reload_response(
    r: Result<crate::reload::Reloaded, crate::reload::ReloadError>,
) -> Response<Full<Bytes>> {
    match r {
        Ok(r) => respond(
            StatusCode::OK,
            "application/json",
            serde_json::json!({ "result": "ok", "plugins": r.plugins, "took_ms": r.took.as_millis() as u64 })
                .to_string(),
        ),
        Err(e) => respond(
            StatusCode::CONFLICT,
            "application/json",
            serde_json::json!({ "result": "failed", "error": e.to_string() }).to_string(),
        ),
    }
}

fn route(shared: &Shared, method: &Method, path: &str) -> Response<Full<Bytes>> {
    match (method, path) {
        (&Method::GET, "/metrics") => {
            respond(StatusCode::OK, "text/plain; version=0.0.4", metrics(shared))
        }
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => {
            // Liveness is /healthz; readiness says whether every plugin is
            // serving the version on disk.
            let mut problems = shared.chain.load().problems();
            let fleet = fleet_readiness(shared);
            if let Some((blocking, why)) = &fleet {
                if *blocking {
                    problems.push(why.clone());
                }
            }
            if problems.is_empty() {
                let note = fleet.map(|(_, why)| format!("{why}\n")).unwrap_or_default();
                respond(StatusCode::OK, "text/plain", format!("ready\n{note}"))
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready:\n{}\n", problems.join("\n")),
                )
            }
        }
        (&Method::GET, "/plugins") => respond(StatusCode::OK, "application/json", plugins(shared)),
        (&Method::GET, "/" | "/ui") => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            status::PAGE.to_string(),
        ),
        (&Method::GET, "/status.json") => {
            respond(StatusCode::OK, "application/json", status::json(shared))
        }
        (
            _,
            "/metrics" | "/healthz" | "/readyz" | "/plugins" | "/reload" | "/" | "/ui"
            | "/status.json",
        ) => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".into(),
        ),
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /ui, /metrics, /healthz, /readyz, /plugins, /status.json\n".into(),
        ),
    }
}

fn file_name(p: &std::path::Path, fallback: &str) -> String {
    p.file_name()
        .and_then(|n| n.to_str())
        .map_or_else(|| fallback.to_string(), str::to_string)
}

/// The series of the access checks and the logs.
fn observed(shared: &Shared, out: &mut String) {
    let a = &shared.access;
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    counter(
        out,
        "dnspolicy_acl_refused_total",
        "Queries from sources outside the DNS ACL, answered REFUSED.",
        &[("", n(&a.acl_refused))],
    );
    counter(
        out,
        "dnspolicy_rate_limited_total",
        "Queries over the per-prefix rate limit, by action.",
        &[
            ("action=\"drop\"", n(&a.rate_dropped)),
            ("action=\"slip\"", n(&a.rate_slipped)),
        ],
    );
    counter(
        out,
        "dnspolicy_tcp_refused_total",
        "TCP connections closed on accept, by limit.",
        &[
            ("limit=\"per_source\"", n(&a.tcp_source_limit)),
            ("limit=\"server\"", n(&a.tcp_server_limit)),
        ],
    );
    counter(
        out,
        "dnspolicy_tsig_badkey_total",
        "Queries signed with an unknown TSIG key (NOTAUTH, BADKEY).",
        &[("", n(&a.tsig_badkey))],
    );
    if let Some(t) = &shared.dnstap {
        counter(
            out,
            "dnspolicy_dnstap_messages_total",
            "dnstap messages, by result (dropped: the queue was full; unwritten: queued while no reader was connected or after the file failed).",
            &[
                ("result=\"queued\"", n(&t.queued)),
                ("result=\"dropped\"", n(&t.dropped)),
                ("result=\"unwritten\"", t.unwritten()),
            ],
        );
    }
    if let Some(d) = &shared.decisions {
        counter(
            out,
            "dnspolicy_decision_log_lines_total",
            "Decision log lines, by result (dropped: the queue was full).",
            &[
                ("result=\"written\"", n(&d.written)),
                ("result=\"dropped\"", n(&d.dropped)),
            ],
        );
    }
}

fn refs(v: &[(String, u64)]) -> Vec<(&str, u64)> {
    v.iter().map(|(l, c)| (l.as_str(), *c)).collect()
}

/// The series of the answer pools: members' health, probes, answers.
fn pools(shared: &Shared, out: &mut String) {
    let p = &shared.pools;
    if p.is_empty() {
        return;
    }
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    let member = |pool: &str, m: &crate::gslb::Member| {
        format!(
            "pool=\"{}\",member=\"{}\"",
            metrics::label(pool),
            metrics::label(&m.label)
        )
    };
    let up: Vec<(String, u64)> = p
        .pools
        .iter()
        .flat_map(|pool| {
            pool.members
                .iter()
                .map(|m| (member(&pool.name, m), u64::from(m.healthy.load(Relaxed))))
        })
        .collect();
    gauge(
        out,
        "dnspolicy_pool_member_up",
        "Whether a pool member is healthy (1) or out (0).",
        &refs(&up),
    );
    let mut checks = Vec::new();
    let mut changes = Vec::new();
    let mut answers = Vec::new();
    for pool in &p.pools {
        for m in pool.members.iter().filter(|m| m.probe.is_some()) {
            let l = member(&pool.name, m);
            checks.push((format!("{l},result=\"ok\""), n(&m.checks_ok)));
            checks.push((format!("{l},result=\"failed\""), n(&m.checks_failed)));
            changes.push((l, n(&m.transitions)));
        }
        answers.push((
            format!("pool=\"{}\"", metrics::label(&pool.name)),
            n(&pool.fallbacks),
        ));
    }
    counter(
        out,
        "dnspolicy_pool_checks_total",
        "Health probes of pool members, by result.",
        &refs(&checks),
    );
    counter(
        out,
        "dnspolicy_pool_member_changes_total",
        "Times a pool member went down or came back.",
        &refs(&changes),
    );
    counter(
        out,
        "dnspolicy_pool_fallback_answers_total",
        "Pool answers given while no member was healthy (from the fallback).",
        &refs(&answers),
    );
    counter(
        out,
        "dnspolicy_pool_unknown_total",
        "`pool` verdicts naming a pool the config does not have (answered SERVFAIL).",
        &[("", n(&p.unknown))],
    );
}

/// What `/readyz` says about an etcd source: (whether it keeps the server
/// from being ready, the line). Offline or out of touch is said but not
/// blocking (the last good set serves); no version at all is blocking.
fn fleet_readiness(shared: &Shared) -> Option<(bool, String)> {
    let s = &shared.source;
    let reference = s
        .reference
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if !reference.starts_with("etcd://") {
        return None;
    }
    let v = s.version.load(Relaxed);
    if v == 0 {
        return Some((true, format!("{reference}: no version of the set yet")));
    }
    if s.offline.load(Relaxed) {
        return Some((
            false,
            format!("offline: etcd unreachable, serving persisted version {v} of {reference}"),
        ));
    }
    let age = sync_age(s);
    if age > 10.0 {
        return Some((
            false,
            format!("out of touch: etcd last answered {age:.0} s ago; serving version {v} of {reference}"),
        ));
    }
    Some((false, format!("in sync: version {v} of {reference}")))
}

/// Seconds since the source last answered.
fn sync_age(s: &crate::source::SourceStatus) -> f64 {
    let last = s.last_sync_ms.load(Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    if last == 0 {
        f64::INFINITY
    } else {
        now.saturating_sub(last) as f64 / 1000.0
    }
}

/// The series of a plugin source (`--source oci://…`).
fn source(shared: &Shared, out: &mut String) {
    let s = &shared.source;
    let lock = |m: &std::sync::Mutex<String>| {
        m.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    };
    let reference = lock(&s.reference);
    if reference.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP dnspolicy_source_info The plugin set in service: its source and digest; offline=\"true\" when it came from the cache because the registry was unreachable."
    );
    let _ = writeln!(out, "# TYPE dnspolicy_source_info gauge");
    let _ = writeln!(
        out,
        "dnspolicy_source_info{{source=\"{}\",digest=\"{}\",offline=\"{}\"}} 1",
        metrics::label(&reference),
        metrics::label(&lock(&s.digest)),
        s.offline.load(Relaxed)
    );
    counter(
        out,
        "dnspolicy_source_updates_total",
        "New sets from the source swapped into service.",
        &[("", s.updates.load(Relaxed))],
    );
    counter(
        out,
        "dnspolicy_source_failures_total",
        "Source fetches or loads that failed (the last good set kept serving).",
        &[("", s.failures.load(Relaxed))],
    );
    if !reference.starts_with("etcd://") {
        return;
    }
    gauge(
        out,
        "dnspolicy_fleet_applied_version",
        "The fleet set version this edge serves (0: none yet).",
        &[("", s.version.load(Relaxed))],
    );
    let age = sync_age(s);
    let _ = writeln!(
        out,
        "# HELP dnspolicy_fleet_seconds_since_sync Seconds since etcd last answered this edge (watch, lease renewal); -1: never.\n# TYPE dnspolicy_fleet_seconds_since_sync gauge\ndnspolicy_fleet_seconds_since_sync {:.3}",
        if age.is_finite() { age } else { -1.0 }
    );
    gauge(
        out,
        "dnspolicy_fleet_offline",
        "1 while the edge serves its persisted set because etcd was unreachable at start.",
        &[("", u64::from(s.offline.load(Relaxed)))],
    );
    counter(
        out,
        "dnspolicy_fleet_sync_errors_total",
        "etcd reads, watches or set loads that failed (the version in service kept serving).",
        &[("", s.failures.load(Relaxed))],
    );
    counter(
        out,
        "dnspolicy_fleet_watch_reconnects_total",
        "Watch streams opened again after a break (member down, compaction).",
        &[("", s.reconnects.load(Relaxed))],
    );
}

/// The file-backed sets of the chain's policies.
fn live_sets(shared: &Shared, out: &mut String) {
    let chain = shared.chain.load();
    let mut members = Vec::new();
    let mut reloads = Vec::new();
    for p in &chain.plugins {
        for s in p.plugin.live_sets() {
            let l = format!(
                "plugin=\"{}\",set=\"{}\"",
                label(p.plugin.name()),
                label(&s.set)
            );
            members.push((l.clone(), s.members as u64));
            reloads.push((format!("{l},result=\"ok\""), s.reloads));
            reloads.push((format!("{l},result=\"refused\""), s.errors));
        }
    }
    gauge(
        out,
        "dnspolicy_live_set_members",
        "Members of each file-backed set now.",
        &refs(&members),
    );
    counter(
        out,
        "dnspolicy_live_set_reloads_total",
        "Changed set files taken (ok) or refused, keeping the previous members (refused).",
        &refs(&reloads),
    );
}

/// The Prometheus exposition.
pub fn metrics(shared: &Shared) -> String {
    let mut out = String::with_capacity(8192);
    shared.metrics.render(&mut out);
    if let Some(h) = &shared.http {
        h.render_metrics(&mut out);
    }
    observed(shared, &mut out);
    pools(shared, &mut out);
    source(shared, &mut out);
    shared.decide_times.write(&mut out);
    live_sets(shared, &mut out);
    let chain = shared.chain.load();
    let _ = writeln!(
        out,
        "# HELP dnspolicy_plugins Plugins in the chain, by state."
    );
    let _ = writeln!(out, "# TYPE dnspolicy_plugins gauge");
    let _ = writeln!(
        out,
        "dnspolicy_plugins{{state=\"loaded\"}} {}",
        chain.plugins.len()
    );
    let _ = writeln!(
        out,
        "dnspolicy_plugins{{state=\"failed\"}} {}",
        chain.failed.len()
    );
    let _ = writeln!(
        out,
        "# HELP dnspolicy_plugin_load_failed Plugin files that failed to load or were refused (see /plugins for why)."
    );
    let _ = writeln!(out, "# TYPE dnspolicy_plugin_load_failed gauge");
    for f in &chain.failed {
        let file = file_name(&f.path, "plugin");
        let _ = writeln!(
            out,
            "dnspolicy_plugin_load_failed{{plugin=\"{}\"}} 1",
            label(&file)
        );
    }
    let _ = writeln!(
        out,
        "# HELP dnspolicy_plugin_stale Plugins serving their last good version because the file's new version failed to load."
    );
    let _ = writeln!(out, "# TYPE dnspolicy_plugin_stale gauge");
    for f in &chain.stale {
        let file = file_name(&f.path, "plugin");
        let _ = writeln!(
            out,
            "dnspolicy_plugin_stale{{plugin=\"{}\"}} 1",
            label(&file)
        );
    }
    let r = &shared.reloads;
    let _ = writeln!(
        out,
        "# HELP dnspolicy_plugin_reload_total Plugin chain reloads, by result."
    );
    let _ = writeln!(out, "# TYPE dnspolicy_plugin_reload_total counter");
    let _ = writeln!(
        out,
        "dnspolicy_plugin_reload_total{{result=\"ok\"}} {}",
        r.ok.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "dnspolicy_plugin_reload_total{{result=\"failed\"}} {}",
        r.failed.load(Relaxed)
    );
    let _ = writeln!(out, "# HELP dnspolicy_plugin_load_duration_seconds How long the last reload took to build its chain.");
    let _ = writeln!(out, "# TYPE dnspolicy_plugin_load_duration_seconds gauge");
    let _ = writeln!(
        out,
        "dnspolicy_plugin_load_duration_seconds {}",
        r.last_duration_us.load(Relaxed) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "# HELP dnspolicy_plugin_queries_total Queries each plugin decided."
    );
    let _ = writeln!(out, "# TYPE dnspolicy_plugin_queries_total counter");
    for p in &chain.plugins {
        let file = file_name(&p.path, p.plugin.name());
        let _ = writeln!(
            out,
            "dnspolicy_plugin_queries_total{{plugin=\"{}\",kind=\"{}\"}} {}",
            label(&file),
            p.plugin.kind(),
            p.stats.decided()
        );
    }
    let _ = writeln!(
        out,
        "# HELP dnspolicy_plugin_failures_total Plugin calls that failed (script error, instruction budget, memory cap, trap, capability not granted)."
    );
    let _ = writeln!(out, "# TYPE dnspolicy_plugin_failures_total counter");
    for p in &chain.plugins {
        let file = file_name(&p.path, p.plugin.name());
        for (reason, n) in p.plugin.failures() {
            let _ = writeln!(
                out,
                "dnspolicy_plugin_failures_total{{plugin=\"{}\",reason=\"{reason}\"}} {n}",
                label(&file)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP dnspolicy_rule_queries_total Queries each rule decided (id = file:rule)."
    );
    let _ = writeln!(out, "# TYPE dnspolicy_rule_queries_total counter");
    for p in &chain.plugins {
        let file = file_name(&p.path, p.plugin.name());
        for (name, c) in p.plugin.rule_names().iter().zip(p.stats.rules()) {
            let _ = writeln!(
                out,
                "dnspolicy_rule_queries_total{{id=\"{}:{}\",plugin=\"{}\",rule=\"{}\"}} {}",
                label(&file),
                label(name),
                label(&file),
                label(name),
                c
            );
        }
    }
    out
}

/// The `/plugins` document.
pub fn plugins(shared: &Shared) -> String {
    let chain = shared.chain.load();
    let mut list = Vec::new();
    for p in &chain.plugins {
        let rules: serde_json::Map<String, serde_json::Value> = p
            .plugin
            .rule_names()
            .iter()
            .zip(p.stats.rules())
            .map(|(n, c)| (n.to_string(), serde_json::json!(c)))
            .collect();
        let mut entry = serde_json::json!({
            "name": p.plugin.name(),
            "kind": p.plugin.kind(),
            "version": p.version,
            "state": "loaded",
            "priority": p.priority,
            "file": file_name(&p.path, "embedded"),
            "queries": p.stats.decided(),
            "rules": rules,
            "front": if p.http { "http" } else { "dns" },
        });
        // Serving its last good version: the file on disk failed to load.
        if let Some(st) = chain.stale.iter().find(|f| f.path == p.path) {
            entry["state"] = "stale".into();
            entry["error"] = st.error.clone().into();
        }
        // A policy's rules as the JIT made them: native code, constant
        // verdicts (no code), or left to the interpreter.
        if let Some(s) = p.plugin.compiled() {
            entry["native"] = serde_json::json!({
                "compiled": s.compiled,
                "constant": s.constant,
                "interpreted": s.interpreted,
                "functions": s.functions,
            });
        }
        let live: Vec<serde_json::Value> = p
            .plugin
            .live_sets()
            .into_iter()
            .map(|s| {
                serde_json::json!({
                    "set": s.set,
                    "file": s.file.display().to_string(),
                    "members": s.members,
                    "reloads": s.reloads,
                    "errors": s.errors,
                    "last_error": s.last_error,
                })
            })
            .collect();
        if !live.is_empty() {
            entry["live_sets"] = live.into();
        }
        list.push(entry);
    }
    for f in &chain.failed {
        let kind = match f.path.extension().and_then(|e| e.to_str()) {
            Some("dsl") => "dsl",
            Some("lua") => "lua",
            _ => "wasm",
        };
        list.push(serde_json::json!({
            "name": f.path.file_stem().and_then(|s| s.to_str()).unwrap_or(""),
            "kind": kind,
            "version": "",
            "state": "failed",
            "file": file_name(&f.path, ""),
            "error": f.error,
        }));
    }
    // A refused reload leaves the old plugins listed; say why beside them.
    let last_error = shared
        .reloads
        .last_error
        .lock()
        .ok()
        .and_then(|e| e.clone());
    if let Some(err) = last_error {
        for entry in &mut list {
            entry["last_reload_error"] = serde_json::Value::String(err.clone());
        }
    }
    serde_json::Value::Array(list).to_string()
}
