//! What every worker shares: the plugin chain (swapped whole on reload),
//! the zone, GeoIP, upstream pools, counters and limits; built once from
//! the configuration.

use super::*;
use crate::access::acl::Acl;
use crate::access::conns::ConnLimit;
use crate::access::rate::RateLimiter;
use crate::access::AccessCounters;
use crate::config::OnPluginError;
use crate::plugin::chain::ReloadMode;

/// Starting the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A socket could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// Configuration, zone, GeoIP or plugin directory problem.
    #[error("{0}")]
    Setup(String),
    /// Plugins that failed to load at start (`serve.on_plugin_error =
    /// "skip"` or `--allow-partial` starts without them instead).
    #[error("{} plugin(s) failed to load (start anyway with --allow-partial):\n{}", .0.len(), .0.join("\n"))]
    Plugins(Vec<String>),
}

/// What every worker shares.
pub struct Shared {
    /// The plugin chain; swapped whole on reload.
    pub chain: ArcSwap<Chain>,
    /// The local zone.
    pub zone: Zone,
    /// GeoIP sources.
    pub geo: Arc<Geo>,
    /// Upstream pools.
    pub upstreams: BTreeMap<String, Vec<SocketAddr>>,
    /// Whether pool `default` exists (recursion offered, RA set).
    pub has_default: bool,
    /// Whether the wire fast path is on (`Config::fast_path`).
    pub fast_path: bool,
    /// Whether ECS with a private address is ignored (`ecs.private`).
    pub ecs_ignore_private: bool,
    /// How reloads treat a file that fails (`reload.atomic`).
    pub reload_mode: crate::plugin::chain::ReloadMode,
    /// Counters.
    pub metrics: Metrics,
    /// `server.node`.
    pub node: String,
    /// Upstream timeout per try.
    pub timeout: Duration,
    /// Where plugins come from (`None`: the embedded example).
    pub plugin_dir: Option<std::path::PathBuf>,
    /// Upstream exchanges allowed in flight at once.
    pub upstream_slots: Arc<tokio::sync::Semaphore>,
    /// TCP connections allowed at once.
    pub tcp_slots: Arc<tokio::sync::Semaphore>,
    /// Reload counters and the last error.
    pub reloads: crate::reload::ReloadStats,
    /// Sources that get answers (`[server] acl`, `--acl`).
    pub acl: Acl,
    /// The per-prefix query rate limit, when one is set.
    pub rate: Option<RateLimiter>,
    /// TCP connections per source.
    pub conns: Arc<ConnLimit>,
    /// What the ACL and the limits turned away.
    pub access: AccessCounters,
    /// The NSID returned to queries that ask for one (`[server] nsid`).
    pub nsid: Option<Vec<u8>>,
    /// The bearer token mutating admin calls need, if one is set.
    pub admin_token: Option<String>,
    /// Whether read-only admin calls need no token.
    pub admin_open_reads: bool,
    /// How long upstream exchanges may finish on shutdown.
    pub drain: Duration,
    /// The dnstap log, when one is configured.
    pub dnstap: Option<crate::observe::dnstap::Dnstap>,
    /// The sampled decision log, when one is configured.
    pub decisions: Option<crate::observe::decisions::DecisionLog>,
    /// The status page's last minutes of traffic.
    pub status: crate::admin::status::History,
    /// Answer pools (`[pools.NAME]`) and their health.
    pub pools: Arc<crate::gslb::Pools>,
    /// The directory a source (`--source oci://…`) last swapped in; reloads
    /// read it instead of `plugin_dir`.
    pub source_dir: std::sync::Mutex<Option<std::path::PathBuf>>,
    /// What the source says (digest in service, failures).
    pub source: crate::source::SourceStatus,
    /// Decision-time histograms per plugin and rule (sampled queries).
    pub decide_times: super::sampled::DecideTimes,
    /// The HTTP plugin directory (`--http-plugin-dir`), reloaded with the other.
    pub http_plugin_dir: Option<std::path::PathBuf>,
    /// The HTTP front door's pools, client and counters, when `[http]` is on.
    pub http: Option<Arc<crate::http::HttpState>>,
}

/// Upstream exchanges in flight at most (each holds a task and a socket).
pub const MAX_UPSTREAM_IN_FLIGHT: usize = 1024;
/// TCP connections at most.
pub const MAX_TCP_CONNECTIONS: usize = 512;

impl Shared {
    /// Builds the shared state from a config: zone, GeoIP and plugins (the
    /// embedded examples where the config names none).
    pub fn from_config(config: &Config) -> Result<Shared, ServeError> {
        crate::plugin::wasm::set_edge_cap(config.limits.wasm_module_bytes);
        let zone = match &config.zone {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ServeError::Setup(format!("cannot read zone {}: {e}", p.display()))
                })?;
                Zone::parse(&text, &p.display().to_string())
                    .map_err(|e| ServeError::Setup(e.to_string()))?
            }
            None => Zone::parse(DEFAULT_ZONE, "embedded example.zone")
                .map_err(|e| ServeError::Setup(e.to_string()))?,
        };
        let geo = if config.geoip.is_empty() {
            let mut g = Geo::empty();
            g.add_csv_text(
                DEFAULT_REGIONS,
                Path::new("embedded examples/geo/regions.csv"),
            )
            .map_err(|e| ServeError::Setup(e.to_string()))?;
            g
        } else {
            Geo::open(&config.geoip).map_err(|e| ServeError::Setup(e.to_string()))?
        };
        let acl = if config.server.acl.is_empty() {
            Acl::default_acl()
        } else {
            Acl::parse(&config.server.acl).map_err(|e| ServeError::Setup(e.to_string()))?
        };
        let admin_token = config
            .admin
            .resolve_token()
            .map_err(|e| ServeError::Setup(e.to_string()))?;
        if let Some(a) = config.admin.listen {
            // A token-less admin port beyond loopback lets anyone on the
            // network reload policies.
            if !a.ip().is_loopback() && admin_token.is_none() {
                return Err(ServeError::Setup(format!(
                    "the admin endpoint would listen on {a}, which is not loopback, without a token: \
                     set [admin] token_file or DNSPOLICY_ADMIN_TOKEN, or listen on 127.0.0.1"
                )));
            }
        }
        let l = &config.limits;
        let rate = (l.qps_per_prefix > 0).then(|| {
            RateLimiter::new(
                l.qps_per_prefix,
                l.ipv4_prefix,
                l.ipv6_prefix,
                l.action,
                l.slip,
            )
        });
        let dnstap = match &config.dnstap {
            Some(t) => {
                let target = crate::observe::dnstap::Target::parse(t).map_err(ServeError::Setup)?;
                Some(
                    crate::observe::dnstap::Dnstap::start(target, &config.node)
                        .map_err(|e| ServeError::Setup(format!("dnstap {t}: {e}")))?,
                )
            }
            None => None,
        };
        let decisions = match &config.decisions.target {
            Some(t) => Some(
                crate::observe::decisions::DecisionLog::start(t, config.decisions.sample)
                    .map_err(|e| ServeError::Setup(format!("decision log {t}: {e}")))?,
            ),
            None => None,
        };
        let pools = crate::gslb::Pools::new(&config.pools, config.gslb.max_ttl)
            .map_err(|e| ServeError::Setup(e.to_string()))?;
        let mut chain = load_chain(config.plugin_dir.as_deref())?;
        if let Some(h) = &config.http.plugin_dir {
            let http = Chain::reload_dirs(&[(h, true)], None, ReloadMode::Plugin).map_err(|e| {
                ServeError::Setup(format!(
                    "cannot read HTTP plugin directory {}: {e}",
                    h.display()
                ))
            })?;
            chain.extend(http);
        }
        let http = if config.http.enabled() || chain.has_http() {
            Some(Arc::new(
                crate::http::HttpState::new(&config.http).map_err(ServeError::Setup)?,
            ))
        } else {
            None
        };
        // Compiling leaves freed memory behind: give it back before serving.
        crate::reload::trim_heap();
        // Strict by default: a policy that does not load must not fail open.
        if !chain.failed.is_empty() && config.serve.on_plugin_error == OnPluginError::Fail {
            let why: Vec<String> = chain.failed.iter().map(|f| f.error.clone()).collect();
            return Err(ServeError::Plugins(why));
        }
        Ok(Shared {
            chain: ArcSwap::from_pointee(chain),
            zone,
            geo: Arc::new(geo),
            upstreams: config.upstreams.clone(),
            has_default: config.upstreams.contains_key("default"),
            fast_path: config.fast_path,
            reload_mode: config.reload.atomic,
            ecs_ignore_private: config.ecs.private == crate::config::PrivateEcs::Ignore,
            metrics: Metrics::new(config.worker_count()),
            node: config.node.clone(),
            timeout: Duration::from_millis(config.upstream_timeout_ms),
            plugin_dir: config.plugin_dir.clone(),
            upstream_slots: Arc::new(tokio::sync::Semaphore::new(MAX_UPSTREAM_IN_FLIGHT)),
            tcp_slots: Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS)),
            reloads: crate::reload::ReloadStats::default(),
            acl,
            rate,
            conns: ConnLimit::new(config.limits.tcp_per_source),
            access: AccessCounters::default(),
            nsid: config.server.nsid.as_ref().map(|n| n.as_bytes().to_vec()),
            admin_token,
            admin_open_reads: config.admin.open_reads,
            drain: Duration::from_millis(config.limits.drain_ms),
            dnstap,
            decisions,
            status: crate::admin::status::History::default(),
            pools: Arc::new(pools),
            source_dir: std::sync::Mutex::new(None),
            source: crate::source::SourceStatus::default(),
            decide_times: super::sampled::DecideTimes::default(),
            http_plugin_dir: config.http.plugin_dir.clone(),
            http,
        })
    }
}

impl Shared {
    /// Waits until no upstream exchange is in flight, or the drain deadline
    /// passes (then says how many were abandoned).
    pub async fn drain_upstreams(&self) {
        let all = u32::try_from(MAX_UPSTREAM_IN_FLIGHT).unwrap_or(u32::MAX);
        let busy = MAX_UPSTREAM_IN_FLIGHT - self.upstream_slots.available_permits();
        if busy == 0 {
            return;
        }
        tracing::info!(in_flight = busy, "waiting for upstream exchanges to finish");
        match tokio::time::timeout(self.drain, self.upstream_slots.acquire_many(all)).await {
            Ok(_) => tracing::info!("upstream exchanges finished"),
            Err(_) => tracing::warn!(
                abandoned = MAX_UPSTREAM_IN_FLIGHT - self.upstream_slots.available_permits(),
                "upstream exchanges still in flight at the drain deadline"
            ),
        }
    }
}

/// Loads the plugin chain from a directory, or the embedded example.
pub fn load_chain(dir: Option<&Path>) -> Result<Chain, ServeError> {
    // The parent of the first plugin.load/init spans (traces).
    let _span = tracing::info_span!("plugin.start").entered();
    match dir {
        Some(d) => Chain::load_dir(d).map_err(|e| {
            ServeError::Setup(format!("cannot read plugin directory {}: {e}", d.display()))
        }),
        None => {
            let p = DslPlugin::compile(
                "geo_redirect",
                DEFAULT_POLICY,
                Path::new("embedded geo_redirect.dsl"),
            )
            .map_err(|e| ServeError::Setup(e.to_string()))?;
            let plugins: Vec<(Box<dyn Plugin>, i64, std::path::PathBuf)> =
                vec![(Box::new(p), 0, "embedded/geo_redirect.dsl".into())];
            Ok(Chain::from_plugins(plugins))
        }
    }
}
