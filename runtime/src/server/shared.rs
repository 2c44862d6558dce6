//! What every worker shares: the plugin chain (swapped whole on reload),
//! the zone, GeoIP, upstream pools, counters and limits; built once from
//! the configuration.

use super::*;
use crate::config::OnPluginError;

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
}

/// Upstream exchanges in flight at most (each holds a task and a socket).
pub const MAX_UPSTREAM_IN_FLIGHT: usize = 1024;
/// TCP connections at most.
pub const MAX_TCP_CONNECTIONS: usize = 512;

impl Shared {
    /// Builds the shared state from a config: zone, GeoIP and plugins (the
    /// embedded examples where the config names none).
    pub fn from_config(config: &Config) -> Result<Shared, ServeError> {
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
        let chain = load_chain(config.plugin_dir.as_deref())?;
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
        })
    }
}

/// Loads the plugin chain from a directory, or the embedded example.
pub fn load_chain(dir: Option<&Path>) -> Result<Chain, ServeError> {
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
