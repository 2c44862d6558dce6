//! `dnspolicy serve`: configuration from file and flags, then the runtime.

use dnspolicy_runtime::{Config, Server, Shared};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// Flags of `dnspolicy serve`. Each overrides the config file's value.
#[derive(clap::Args, Debug)]
#[command(after_help = "EXAMPLES:\n  \
    dnspolicy serve                                   # the embedded example on 127.0.0.1:5353\n  \
    dig @127.0.0.1 -p 5353 www.example.com +subnet=198.51.100.7/24   # a Beijing client\n  \
    dnspolicy serve --plugin-dir=./plugins/dns --enable-hot-reload\n  \
    dnspolicy serve --geoip GeoIP2-City.mmdb --geoip GeoLite2-ASN.mmdb --upstream 9.9.9.9 --upstream canary=10.0.0.53:53\n\n\
    Without --plugin-dir, --zone or --geoip, the embedded examples are used for that part:\n\
    examples/serve/plugins/geo_redirect.dsl, examples/serve/example.zone, examples/geo/regions.csv.")]
pub struct ServeArgs {
    /// TOML configuration file (see examples/dnspolicy.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// DNS listen address, UDP and TCP (repeatable; default 127.0.0.1:5353).
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// Admin HTTP address for /metrics, /healthz, /plugins (default 127.0.0.1:9153).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
    /// Turn the admin endpoint off.
    #[arg(long, conflicts_with = "admin")]
    pub no_admin: bool,
    /// Run the HTTP front door (the strategy router) on this address:
    /// HTTP policies route requests to `[http.pools.NAME]` (docs/http.md).
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<SocketAddr>,
    /// A directory whose policies all serve the HTTP front door (HTTP
    /// policies may also live in --plugin-dir).
    #[arg(long, value_name = "DIR")]
    pub http_plugin_dir: Option<PathBuf>,
    /// Directory of plugins (*.dsl, *.lua, *.wasm, *.wat, each with an optional NAME.yaml).
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Local zone in master-file format.
    #[arg(long, value_name = "FILE")]
    pub zone: Option<PathBuf>,
    /// GeoIP source: a MaxMind .mmdb or a `cidr,country,region` .csv (repeatable; first wins per field).
    #[arg(long, value_name = "FILE")]
    pub geoip: Vec<PathBuf>,
    /// Upstream server: `ADDR[:PORT]` for pool `default`, or `POOL=ADDR[:PORT]` (repeatable).
    #[arg(long, value_name = "[POOL=]ADDR")]
    pub upstream: Vec<String>,
    /// Reload plugins when the plugin directory changes.
    #[arg(long)]
    pub enable_hot_reload: bool,
    /// UDP sockets / worker threads (0 = one per CPU).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// This node's name (`server.node`).
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Start even if plugins fail to load (they are reported in /plugins
    /// and /readyz is 503). Without it, a plugin that fails stops `serve`
    /// (exit 2): a blocklist that does not load must not fail open.
    #[arg(long)]
    pub allow_partial: bool,
    /// Sources that get answers, as ADDR or ADDR/LEN (repeatable; replaces
    /// `[server] acl`). Default: loopback and the private ranges; others
    /// get REFUSED.
    #[arg(long, value_name = "CIDR")]
    pub acl: Vec<String>,
    /// This server's NSID (RFC 5001), returned to queries that ask for it.
    #[arg(long, value_name = "ID")]
    pub nsid: Option<String>,
    /// dnstap query log: `file:PATH` or `unix:PATH` (a Frame Streams
    /// reader such as fstrm_capture); read with `dnstap-ldns -r`.
    #[arg(long, value_name = "file:PATH|unix:PATH")]
    pub dnstap: Option<String>,
    /// Sampled decision log (JSON lines): `stdout` or a file.
    #[arg(long, value_name = "stdout|FILE")]
    pub decision_log: Option<String>,
    /// Share of queries the decision log records, in (0, 1] (default 0.01).
    #[arg(long, value_name = "RATE")]
    pub decision_sample: Option<f64>,
    /// OpenTelemetry traces over OTLP/HTTP (protobuf) to this collector:
    /// `http://HOST:4318` (`/v1/traces` is added) or a full URL. Spans for
    /// plugin load/init/swap/destroy and for sampled queries.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
    /// Share of queries traced, in (0, 1] (default 0.01).
    #[arg(long, value_name = "RATE")]
    pub otlp_sample: Option<f64>,
    /// Plugins from an OCI registry instead of a directory:
    /// `oci://HOST:PORT/REPO@sha256:…` (pinned) or `oci://HOST:PORT/REPO:TAG`
    /// (followed: polled, new versions swapped in whole; docs/oci.md); or a
    /// fleet's set in etcd, `etcd://HOST:PORT[,HOST:PORT]/NAME` (watched,
    /// acknowledged as `--node`; docs/fleet.md).
    #[arg(
        long,
        value_name = "oci://REF|etcd://HOSTS/NAME",
        conflicts_with = "plugin_dir"
    )]
    pub source: Option<String>,
    /// Allow plain HTTP to the registry of the source (loopback registries).
    #[arg(long)]
    pub insecure: bool,
    /// Seconds between checks of a followed tag (default 30).
    #[arg(long, value_name = "SECS")]
    pub source_poll: Option<f64>,
    /// Where pulled sets are cached by digest (default
    /// ~/.cache/dnspolicy/oci), or, for etcd, where the last good version
    /// is persisted (default ~/.local/state/dnspolicy/etcd): a restart with
    /// the registry or etcd down serves the last good set from here.
    #[arg(long, value_name = "DIR")]
    pub source_cache: Option<PathBuf>,
}

/// Where the plugin set comes from when not a directory.
enum Source {
    Oci(dnspolicy_runtime::source::oci::watch::OciSource),
    Etcd(dnspolicy_runtime::source::etcd::watch::EtcdSource),
}

fn plugin_source(args: &ServeArgs, cfg: &Config) -> anyhow::Result<Option<Source>> {
    use dnspolicy_runtime::source::etcd::watch::{default_state, EtcdSource};
    use dnspolicy_runtime::source::oci::watch::{default_cache, OciSource};
    let file = &cfg.source;
    let Some(spec) = args.source.as_ref().or(file.url.as_ref()) else {
        return Ok(None);
    };
    if args.source.is_none() && args.plugin_dir.is_some() {
        // --plugin-dir on the command line wins over the file's source.
        return Ok(None);
    }
    if spec.starts_with("etcd://") {
        let state = args
            .source_cache
            .clone()
            .or_else(|| file.cache.clone())
            .unwrap_or_else(default_state);
        return Ok(Some(Source::Etcd(EtcdSource::parse(
            spec, &cfg.node, &state,
        )?)));
    }
    if !spec.starts_with("oci://") {
        anyhow::bail!(
            "source `{spec}`: oci://HOST:PORT/REPO@sha256:…, oci://…:TAG or etcd://HOST:PORT[,HOST:PORT]/NAME"
        );
    }
    dnspolicy_runtime::source::oci::parse_ref(spec)?;
    let poll = args.source_poll.unwrap_or(file.poll);
    if !(poll.is_finite() && poll >= 0.1) {
        anyhow::bail!("source poll {poll}: at least 0.1 seconds");
    }
    Ok(Some(Source::Oci(OciSource {
        spec: spec.clone(),
        insecure: args.insecure || file.insecure,
        poll: std::time::Duration::from_secs_f64(poll),
        cache: args
            .source_cache
            .clone()
            .or_else(|| file.cache.clone())
            .unwrap_or_else(default_cache),
    })))
}

fn config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut c = match &args.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    if !args.listen.is_empty() {
        c.listen = args.listen.clone();
    }
    if let Some(a) = args.admin {
        c.admin.listen = Some(a);
    }
    if args.no_admin {
        c.admin.listen = None;
    }
    if let Some(a) = args.http_listen {
        c.http.listen = Some(a);
    }
    if let Some(d) = &args.http_plugin_dir {
        c.http.plugin_dir = Some(d.clone());
    }
    if !args.acl.is_empty() {
        c.server.acl = args.acl.clone();
    }
    if let Some(n) = &args.nsid {
        c.server.nsid = Some(n.clone());
    }
    if let Some(d) = &args.dnstap {
        c.dnstap = Some(d.clone());
    }
    if let Some(d) = &args.decision_log {
        c.decisions.target = Some(d.clone());
    }
    if let Some(r) = args.decision_sample {
        c.decisions.sample = r;
    }
    if let Some(e) = &args.otlp_endpoint {
        c.otlp.endpoint = Some(e.clone());
    }
    if let Some(r) = args.otlp_sample {
        c.otlp.sample = r;
    }
    if let Some(d) = &args.plugin_dir {
        c.plugin_dir = Some(d.clone());
    }
    if let Some(z) = &args.zone {
        c.zone = Some(z.clone());
    }
    if !args.geoip.is_empty() {
        c.geoip = args.geoip.clone();
    }
    for u in &args.upstream {
        c.add_upstream(u)?;
    }
    if let Some(w) = args.workers {
        c.workers = w;
    }
    if let Some(n) = &args.node {
        c.node = n.clone();
    }
    c.hot_reload |= args.enable_hot_reload;
    if args.allow_partial {
        c.serve.on_plugin_error = dnspolicy_runtime::config::OnPluginError::Skip;
    }
    Ok(c)
}

/// Runs the server until SIGINT or SIGTERM. Exit 0 after a clean shutdown,
/// 2 when the configuration or a socket is unusable.
pub fn run(args: ServeArgs) -> ExitCode {
    let mut cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Before the runtime: the exporter's blocking HTTP client must not be
    // made (or dropped) inside it.
    if let Some(e) = &cfg.otlp.endpoint {
        if let Err(e) = dnspolicy_runtime::observe::otel::start(e, cfg.otlp.sample, &cfg.node) {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        use tracing_subscriber::Layer as _;
        // RUST_LOG filters the log lines only: the lifecycle spans (info)
        // are traced whatever it says.
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_filter(
                        tracing_subscriber::EnvFilter::try_from_default_env()
                            .unwrap_or_else(|_| "info".into()),
                    ),
            )
            .with(
                dnspolicy_runtime::observe::otel::layer()
                    .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
            )
            .try_init();
    }
    let source = match plugin_source(&args, &cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.worker_count())
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(async move {
        let mut first = None;
        let mut fleet_start = None;
        match &source {
            Some(Source::Oci(src)) => match src.initial().await {
                Ok((dir, digest, offline)) => {
                    tracing::info!(source = %src.spec, digest = %digest, offline, "plugin set fetched");
                    cfg.plugin_dir = Some(dir);
                    first = Some((src.spec.clone(), digest, offline));
                }
                Err(e) => {
                    eprintln!("error: --source {}: {e} (and no cached set to serve)", src.spec);
                    return ExitCode::from(2);
                }
            },
            Some(Source::Etcd(src)) => match src.initial().await {
                Ok(i) => {
                    tracing::info!(source = %src.spec, node = %src.node, version = i.version, offline = i.offline, "fleet set ready");
                    cfg.plugin_dir = Some(i.dir.clone());
                    first = Some((src.spec.clone(), format!("version {}", i.version), i.offline));
                    fleet_start = Some(i);
                }
                Err(e) => {
                    eprintln!("error: --source {}: {e} (and no persisted set to serve)", src.spec);
                    return ExitCode::from(2);
                }
            },
            None => {}
        }
        let shared = match Shared::from_config(&cfg) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        if let Some((spec, digest, offline)) = &first {
            *shared.source.reference.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = spec.clone();
            *shared.source.digest.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = digest.clone();
            shared.source.offline.store(*offline, std::sync::atomic::Ordering::Relaxed);
        }
        {
            let chain = shared.chain.load();
            for f in &chain.failed {
                eprintln!(
                    "warning: plugin {} not loaded: {}",
                    f.path.display(),
                    f.error
                );
            }
            tracing::info!(
                plugins = chain.plugins.len(),
                failed = chain.failed.len(),
                "plugin chain ready"
            );
        }
        let server = match Server::bind(&cfg, shared) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let dns: Vec<String> = server.dns_addrs().iter().map(ToString::to_string).collect();
        let admin = server
            .admin_addr()
            .map_or_else(|| "off".to_string(), |a| a.to_string());
        // One line on stdout that scripts and tests can wait for.
        match server.http_addr() {
            Some(h) => crate::output::outln(&format!(
                "listening dns={} admin={admin} http={h}",
                dns.join(",")
            )),
            None => crate::output::outln(&format!("listening dns={} admin={admin}", dns.join(","))),
        }
        if let Err(e) = dnspolicy_runtime::reload::signal::reload_on_sighup(server.shared()) {
            tracing::warn!(error = %e, "SIGHUP will not reload: cannot install the handler");
        }
        let stop = CancellationToken::new();
        let mut fleet = None;
        match (source, first) {
            (Some(Source::Oci(src)), Some((_, digest, _))) => {
                tokio::spawn(dnspolicy_runtime::source::oci::watch::follow(
                    server.shared(),
                    src,
                    digest,
                    stop.clone(),
                ));
            }
            (Some(Source::Etcd(src)), _) => {
                if let Some(i) = fleet_start {
                    server.shared().source.version.store(i.version, std::sync::atomic::Ordering::Relaxed);
                    let (shared, stop) = (server.shared(), stop.clone());
                    fleet = Some(tokio::spawn(async move {
                        dnspolicy_runtime::source::etcd::watch::follow(shared, src, &i, stop).await;
                    }));
                }
            }
            _ => {}
        }
        let signal_stop = stop.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            signal_stop.cancel();
        });
        let served = server.run(stop).await;
        if let Some(f) = fleet {
            // Its lease revoked: the fleet sees this edge leave at once.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), f).await;
        }
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    });
    // Outside the runtime: the exporter's blocking client flushes here.
    drop(rt);
    dnspolicy_runtime::observe::otel::shutdown();
    code
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
