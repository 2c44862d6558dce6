//! `[http]`: the HTTP front door's listener, limits, variable bindings and
//! upstream pools (`docs/http.md`).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[http]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Where the proxy listens (`--http-listen`); `None`: no HTTP front door.
    pub listen: Option<SocketAddr>,
    /// A directory whose policies all serve HTTP (`--http-plugin-dir`);
    /// HTTP policies may also live in the main plugin directory.
    pub plugin_dir: Option<PathBuf>,
    /// The pool for requests no policy decides; without one they get 404.
    pub default_pool: Option<String>,
    /// Injected variables bound to request parts:
    /// `"user.tier" = "header:X-User-Tier"` (also `query:NAME`,
    /// `cookie:NAME`, `method`, `host`, `path`).
    pub bind: BTreeMap<String, String>,
    /// Peers whose `X-Forwarded-For` is believed (CIDR prefixes); from any
    /// other peer, `client.ip` is the connection's address.
    pub trusted_proxies: Vec<String>,
    /// Time a client has to send a request's headers, and the longest a
    /// kept-alive connection may sit idle (ms).
    pub header_timeout_ms: u64,
    /// Time for the upstream to accept and send its response headers (ms).
    pub upstream_timeout_ms: u64,
    /// Time a request body may take to arrive, and a response body to be
    /// sent (ms): a client that trickles bytes cannot hold a connection.
    pub body_timeout_ms: u64,
    /// Largest request head (request line and headers), bytes; larger is 431.
    pub max_header_bytes: usize,
    /// Most header fields in a request; more is 431.
    pub max_headers: usize,
    /// HTTP connections at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Proxy threads, each with its own event loop and upstream
    /// connections; 0 = one per DNS worker (one per CPU by default).
    pub workers: usize,
    /// Upstream pools by name (`route NAME`).
    pub pools: BTreeMap<String, PoolConfig>,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: None,
            plugin_dir: None,
            default_pool: None,
            bind: BTreeMap::new(),
            trusted_proxies: Vec::new(),
            header_timeout_ms: 10_000,
            upstream_timeout_ms: 10_000,
            body_timeout_ms: 60_000,
            max_header_bytes: 16 * 1024,
            max_headers: 64,
            max_connections: 4096,
            workers: 0,
            pools: BTreeMap::new(),
        }
    }
}

impl HttpSection {
    /// Whether the HTTP front door is configured (a listener or pools).
    pub fn enabled(&self) -> bool {
        self.listen.is_some() || !self.pools.is_empty()
    }
}

/// `[http.pools.NAME]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// Upstream servers, `HOST:PORT` (addresses).
    pub members: Vec<SocketAddr>,
    /// How a member is picked among the usable ones.
    #[serde(default)]
    pub balance: Balance,
    /// Active health checks; without, members are healthy unless ejected.
    pub health: Option<HealthConfig>,
    /// Passive ejection on connect errors and 5xx.
    #[serde(default)]
    pub eject: EjectConfig,
}

/// How a pool picks a member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Each in turn.
    #[default]
    RoundRobin,
    /// The one with the fewest requests in flight (ties in turn).
    LeastRequests,
}

/// `[http.pools.NAME.health]`: an HTTP GET every `interval_ms`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// The path asked for; a 2xx or 3xx answer is a pass.
    pub path: String,
    /// Between checks (ms).
    pub interval_ms: u64,
    /// For one check (ms).
    pub timeout_ms: u64,
    /// Passes in a row that make a down member healthy.
    pub rise: u32,
    /// Failures in a row that take a member out.
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: "/".into(),
            interval_ms: 2000,
            timeout_ms: 1000,
            rise: 2,
            fall: 2,
        }
    }
}

/// `[http.pools.NAME.eject]`: passive ejection.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EjectConfig {
    /// Connect errors, timeouts or 5xx answers in a row that eject a
    /// member; 0 turns passive ejection off.
    pub failures: u32,
    /// How long an ejected member stays out (ms).
    pub duration_ms: u64,
}

impl Default for EjectConfig {
    fn default() -> Self {
        EjectConfig {
            failures: 3,
            duration_ms: 10_000,
        }
    }
}
