//! The HTTP front door: a reverse proxy (hyper 1, HTTP/1.1 and h2c) whose
//! routing is decided by HTTP policies — the same language, checker and
//! compiled backends as DNS, in the same chain, swapped by the same
//! reloads. `config` is `[http]`, `pool` the upstream pools with their
//! health, `proxy` the listener and hyper's way through (HTTP/2, bodies),
//! `h1` and `h1_upstream` the HTTP/1.1 fast path for requests without a
//! body, `route` the policy decision both share.
//!
//! Depends on `plugin` (the chain), `server::Shared` and `geo`; the DNS
//! path never calls into it.

mod chunked;
pub mod config;
mod h1;
mod h1_upstream;
pub mod pool;
pub mod proxy;
mod route;
pub mod upstream;

use bytes::Bytes;
use dnspolicy_compiler::ir::http::HttpPart;
use dnspolicy_compiler::Cidr;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::connect::HttpConnector;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// An error while a body streams (hyper's, or a body that stopped).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Bodies through the proxy: the client's or upstream's streamed, or a
/// local answer. A body cut short is an error (hyper then aborts the
/// exchange), never a clean end the other side would take as complete.
pub type Body = BoxBody<Bytes, BodyError>;

/// The health checks' client: pooled keep-alive HTTP/1.1 connections.
pub type Client = hyper_util::client::legacy::Client<HttpConnector, Body>;

/// A client for health checks (requests go through [`upstream`]).
pub fn new_client(c: &config::HttpSection) -> Client {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_millis(c.upstream_timeout_ms)));
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector)
}

/// Reads one per-member series value.
type MemberValue = fn(&pool::Pool, &pool::Member) -> u64;

/// Local answers by reason, for `/metrics`.
#[derive(Default)]
pub struct HttpStats {
    /// Requests received.
    pub requests: AtomicU64,
    /// Answered by a `respond` verdict.
    pub responded: AtomicU64,
    /// Answered by a `redirect` verdict.
    pub redirected: AtomicU64,
    /// No policy decided and no default pool (404).
    pub unrouted: AtomicU64,
    /// A route to a pool the config does not have (502).
    pub unknown_pool: AtomicU64,
    /// Refused as malformed or smuggling-prone (400).
    pub refused: AtomicU64,
    /// Upstream connect errors or bad responses (502).
    pub upstream_errors: AtomicU64,
    /// Upstream timeouts (504).
    pub upstream_timeouts: AtomicU64,
    /// Responses relayed from upstreams, by status class 1xx..5xx.
    pub relayed: [AtomicU64; 5],
}

/// Everything the HTTP front door shares.
pub struct HttpState {
    /// Upstream pools by name.
    pub pools: BTreeMap<String, Arc<pool::Pool>>,
    /// The health checks' client (each proxy thread has its own).
    pub client: Client,
    /// Injected variables bound to request parts (`[http.bind]`).
    pub bindings: Vec<(String, HttpPart)>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted: Vec<Cidr>,
    /// `[http]` as configured.
    pub config: config::HttpSection,
    /// Counters.
    pub stats: HttpStats,
    /// `{server.node}` as the policies read it (made on first use, not per
    /// request).
    pub node: std::sync::OnceLock<dnspolicy_compiler::Value>,
}

impl HttpState {
    /// Checks `[http]` and builds the pools and the client.
    pub fn new(c: &config::HttpSection) -> Result<HttpState, String> {
        let mut pools = BTreeMap::new();
        for (name, p) in &c.pools {
            pools.insert(name.clone(), Arc::new(pool::Pool::new(name, p)?));
        }
        if let Some(d) = &c.default_pool {
            if !pools.contains_key(d) {
                return Err(format!(
                    "[http] default_pool `{d}` is not a pool in [http.pools]"
                ));
            }
        }
        let bindings = c
            .bind
            .iter()
            .map(|(var, spec)| {
                HttpPart::from_binding(spec)
                    .map(|p| (var.clone(), p))
                    .map_err(|e| format!("[http.bind] {var}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let trusted = c
            .trusted_proxies
            .iter()
            .map(|t| {
                t.parse::<Cidr>()
                    .or_else(|_| t.parse::<IpAddr>().map(|ip| Cidr::containing(ip, 128)))
                    .map_err(|_| {
                        format!("[http] trusted_proxies: `{t}` is not an address or prefix")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if c.max_headers == 0 || c.max_header_bytes < 1024 {
            return Err(
                "[http] max_headers must be above 0 and max_header_bytes at least 1024".into(),
            );
        }
        let client = new_client(c);
        Ok(HttpState {
            pools,
            client,
            bindings,
            trusted,
            config: c.clone(),
            stats: HttpStats::default(),
            node: std::sync::OnceLock::new(),
        })
    }

    /// The number of proxy threads: `[http] workers`, else one per
    /// DNS worker.
    pub fn threads(&self, dns_workers: usize) -> usize {
        if self.config.workers > 0 {
            self.config.workers
        } else {
            dns_workers.max(1)
        }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(&ip))
    }

    /// Starts the health checks of every pool; they stop with the handles.
    pub fn start_checks(&self) -> Vec<pool::AbortOnDrop> {
        self.pools
            .values()
            .flat_map(|p| p.start_checks(&self.client))
            .collect()
    }

    /// The Prometheus series of the HTTP front door.
    pub fn render_metrics(&self, out: &mut String) {
        let s = &self.stats;
        let _ = writeln!(out, "# HELP dnspolicy_http_requests_total HTTP requests received.\n# TYPE dnspolicy_http_requests_total counter\ndnspolicy_http_requests_total {}", s.requests.load(Relaxed));
        let _ = writeln!(out, "# HELP dnspolicy_http_local_responses_total HTTP requests answered by the proxy itself, by reason.\n# TYPE dnspolicy_http_local_responses_total counter");
        for (reason, c) in [
            ("respond", &s.responded),
            ("redirect", &s.redirected),
            ("no_route", &s.unrouted),
            ("unknown_pool", &s.unknown_pool),
            ("bad_request", &s.refused),
            ("upstream_error", &s.upstream_errors),
            ("upstream_timeout", &s.upstream_timeouts),
        ] {
            let _ = writeln!(
                out,
                "dnspolicy_http_local_responses_total{{reason=\"{reason}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP dnspolicy_http_upstream_responses_total Responses relayed from upstreams, by status class.\n# TYPE dnspolicy_http_upstream_responses_total counter");
        for (i, c) in s.relayed.iter().enumerate() {
            let _ = writeln!(
                out,
                "dnspolicy_http_upstream_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Relaxed)
            );
        }
        // One series per pool member.
        let per_member: [(&str, &str, &str, MemberValue); 4] = [
            (
                "pool_requests_total",
                "counter",
                "Requests sent to each pool member.",
                |_, m| m.requests.load(Relaxed),
            ),
            (
                "pool_errors_total",
                "counter",
                "Connect errors, timeouts and 5xx answers per pool member.",
                |_, m| m.errors.load(Relaxed),
            ),
            (
                "pool_ejections_total",
                "counter",
                "Passive ejections per pool member.",
                |_, m| m.ejections.load(Relaxed),
            ),
            (
                "pool_member_up",
                "gauge",
                "Whether a member gets requests now (health check passed, not ejected).",
                |p, m| u64::from(p.usable(m)),
            ),
        ];
        for (name, kind, help, value) in per_member {
            let _ = writeln!(
                out,
                "# HELP dnspolicy_http_{name} {help}\n# TYPE dnspolicy_http_{name} {kind}"
            );
            for p in self.pools.values() {
                for m in &p.members {
                    let _ = writeln!(
                        out,
                        "dnspolicy_http_{name}{{pool=\"{}\",member=\"{}\"}} {}",
                        p.name,
                        m.addr,
                        value(p, m)
                    );
                }
            }
        }
        let _ = writeln!(out, "# HELP dnspolicy_http_pool_responses_total Upstream answers relayed per pool, by status class.\n# TYPE dnspolicy_http_pool_responses_total counter");
        for p in self.pools.values() {
            for (i, c) in p.responses.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "dnspolicy_http_pool_responses_total{{pool=\"{}\",class=\"{}xx\"}} {}",
                    p.name,
                    i + 1,
                    c.load(Relaxed)
                );
            }
        }
        let _ = writeln!(out, "# HELP dnspolicy_http_pool_unavailable_total Requests routed to a pool with no usable member (503).\n# TYPE dnspolicy_http_pool_unavailable_total counter");
        for p in self.pools.values() {
            let _ = writeln!(
                out,
                "dnspolicy_http_pool_unavailable_total{{pool=\"{}\"}} {}",
                p.name,
                p.unavailable.load(Relaxed)
            );
        }
    }
}
