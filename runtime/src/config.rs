//! Server configuration: a TOML file, flags on top, and the embedded
//! default that makes `dnspolicy serve` work from any directory.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The example policy served when no plugin directory is given.
pub const DEFAULT_POLICY: &str = include_str!("../../examples/serve/plugins/geo_redirect.dsl");
/// The example zone served when no zone file is given.
pub const DEFAULT_ZONE: &str = include_str!("../../examples/serve/example.zone");
/// The example region map used when no GeoIP source is given.
pub const DEFAULT_REGIONS: &str = include_str!("../../examples/geo/regions.csv");

/// A configuration error.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The TOML is invalid.
    #[error("{0}: {1}")]
    Toml(PathBuf, String),
    /// A value is invalid.
    #[error("{0}")]
    Invalid(String),
}

/// Everything `serve` needs. Paths left `None` use the embedded examples.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// DNS listen addresses (UDP and TCP).
    pub listen: Vec<SocketAddr>,
    /// The admin HTTP endpoint (`/metrics`, `/healthz`, `/plugins`,
    /// `POST /reload`): `admin = "ADDR"`, or an `[admin]` table.
    pub admin: AdminSection,
    /// Plugin directory; `None` serves the embedded example policy.
    pub plugin_dir: Option<PathBuf>,
    /// Master-file zone; `None` serves the embedded example zone.
    pub zone: Option<PathBuf>,
    /// GeoIP sources (`.mmdb` or `.csv`), first wins per field; empty
    /// uses the embedded example region map.
    pub geoip: Vec<PathBuf>,
    /// Upstream pools: name → servers. Pool `default` is used when no
    /// plugin decides and for resolving rewrite targets outside the zone.
    pub upstreams: BTreeMap<String, Vec<SocketAddr>>,
    /// UDP sockets (SO_REUSEPORT) and worker threads; 0 = one per CPU.
    pub workers: usize,
    /// This node's name (`server.node`).
    pub node: String,
    /// Upstream timeout per try, in milliseconds.
    pub upstream_timeout_ms: u64,
    /// Watch the plugin directory and reload on change.
    pub hot_reload: bool,
    /// `[serve]`: start-up strictness.
    pub serve: ServeSection,
    /// `[reload]`: how a reload treats a file that fails.
    pub reload: ReloadSection,
    /// `[ecs]`: which client subnets steer answers.
    pub ecs: EcsSection,
    /// `[server]`: who may query (ACL) and the NSID.
    pub server: ServerSection,
    /// `[limits]`: query rate per source prefix, TCP connections per
    /// source, the upstream drain on shutdown.
    pub limits: LimitsSection,
    /// dnstap query log: `file:PATH` or `unix:PATH` (`--dnstap`).
    pub dnstap: Option<String>,
    /// `[decisions]`: the sampled decision log.
    pub decisions: DecisionsSection,
    /// `[otlp]`: OpenTelemetry traces.
    pub otlp: OtlpSection,
    /// Read the common query straight from the datagram and write its
    /// answer without hickory's `Message` (the default). `false` sends
    /// every query through hickory: for debugging, and for the test that
    /// holds the two paths to the same answers.
    pub fast_path: bool,
    /// `[gslb]`: settings for answer pools.
    pub gslb: crate::gslb::config::GslbSection,
    /// `[pools.NAME]`: answer pools for `then pool NAME`.
    pub pools: BTreeMap<String, crate::gslb::config::PoolConfig>,
    /// `[source]`: plugins from an OCI registry instead of `plugin_dir`.
    pub source: SourceSection,
    /// `[http]`: the HTTP front door (`--http-listen`).
    pub http: crate::http::config::HttpSection,
}

/// `[source]` (`docs/oci.md`); the `--source*` flags win.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceSection {
    /// `oci://HOST:PORT/REPO@sha256:…` or `oci://HOST:PORT/REPO:TAG`.
    pub url: Option<String>,
    /// Plain HTTP to the registry.
    pub insecure: bool,
    /// Seconds between checks of a followed tag.
    pub poll: f64,
    /// The cache of pulled sets (default `~/.cache/dnspolicy/oci`).
    pub cache: Option<PathBuf>,
}

impl Default for SourceSection {
    fn default() -> Self {
        SourceSection {
            url: None,
            insecure: false,
            poll: 30.0,
            cache: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            admin: AdminSection::at(SocketAddr::from(([127, 0, 0, 1], 9153))),
            plugin_dir: None,
            zone: None,
            geoip: Vec::new(),
            upstreams: BTreeMap::new(),
            workers: 0,
            node: std::env::var("HOSTNAME").unwrap_or_else(|_| "dnspolicy".into()),
            upstream_timeout_ms: 1500,
            hot_reload: false,
            fast_path: true,
            serve: ServeSection::default(),
            reload: ReloadSection::default(),
            ecs: EcsSection::default(),
            server: ServerSection::default(),
            limits: LimitsSection::default(),
            dnstap: None,
            decisions: DecisionsSection::default(),
            otlp: OtlpSection::default(),
            gslb: crate::gslb::config::GslbSection::default(),
            pools: BTreeMap::new(),
            source: SourceSection::default(),
            http: crate::http::config::HttpSection::default(),
        }
    }
}

/// What `serve` does when a plugin fails to load at start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnPluginError {
    /// Refuse to start (exit 2) and print why: a blocklist that does not
    /// load must not fail open. The default.
    #[default]
    Fail,
    /// Start without it (reported in `/plugins`, `/readyz` is 503).
    Skip,
}

/// `[serve]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSection {
    /// `on_plugin_error = "fail" | "skip"` (`--allow-partial` is `skip`).
    pub on_plugin_error: OnPluginError,
}

/// `[reload]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadSection {
    /// `atomic = "plugin" | "set"`: per-plugin last good version (the
    /// default), or all-or-nothing.
    pub atomic: crate::plugin::chain::ReloadMode,
}

/// What ECS with a private or reserved address does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrivateEcs {
    /// It steers nothing: the source address stands for the client and the
    /// option is echoed with scope 0 (RFC 7871 §11.1, §12). The default.
    #[default]
    Ignore,
    /// Use it like any other subnet (a private network behind its own
    /// resolver).
    Use,
}

/// `[ecs]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EcsSection {
    /// `private = "ignore" | "use"`.
    pub private: PrivateEcs,
}

/// `[server]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// `acl = ["CIDR", ...]`: the sources that get answers (others get
    /// REFUSED); empty means [`crate::access::acl::DEFAULT_ACL`], loopback
    /// and the private ranges.
    pub acl: Vec<String>,
    /// `nsid = "..."`: returned to queries that ask for it (RFC 5001), so
    /// operators can tell anycast nodes apart.
    pub nsid: Option<String>,
}

/// `[otlp]`: traces over OTLP/HTTP (`--otlp-endpoint`, `--otlp-sample`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpSection {
    /// `http://HOST:PORT` (the path `/v1/traces` is added) or a full URL;
    /// `None` (the default) exports nothing.
    pub endpoint: Option<String>,
    /// The share of queries traced, in (0, 1] (default 0.01).
    pub sample: f64,
}

impl Default for OtlpSection {
    fn default() -> Self {
        OtlpSection {
            endpoint: None,
            sample: 0.01,
        }
    }
}

/// `[decisions]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionsSection {
    /// `stdout` or a file (appended to); `None` (the default) logs nothing.
    pub target: Option<String>,
    /// The share of queries logged, in (0, 1] (default 0.01).
    pub sample: f64,
}

impl Default for DecisionsSection {
    fn default() -> Self {
        DecisionsSection {
            target: None,
            sample: 0.01,
        }
    }
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// UDP queries per second one source prefix may send; 0 (the default)
    /// turns the limit off, and `{client.rate}` reads 0.
    pub qps_per_prefix: u32,
    /// IPv4 prefix length queries are counted by (default 24).
    pub ipv4_prefix: u8,
    /// IPv6 prefix length queries are counted by (default 56).
    pub ipv6_prefix: u8,
    /// `action = "drop" | "slip"` over the limit.
    pub action: crate::access::rate::OverLimit,
    /// With `slip`, every N-th query over the limit is answered truncated.
    pub slip: u32,
    /// TCP connections one source address may hold open (0: no limit).
    pub tcp_per_source: usize,
    /// On shutdown, how long upstream exchanges in flight may finish.
    pub drain_ms: u64,
    /// The largest WASM module this server loads, whatever a plugin's
    /// metadata says (0, the default: no cap beyond the plugin's own).
    pub wasm_module_bytes: usize,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            qps_per_prefix: 0,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            action: crate::access::rate::OverLimit::Drop,
            slip: 2,
            tcp_per_source: 64,
            drain_ms: 2000,
            wasm_module_bytes: 0,
        }
    }
}

/// The admin endpoint: where it listens and who may change things.
#[derive(Clone, Debug)]
pub struct AdminSection {
    /// Its address; `None` turns it off.
    pub listen: Option<SocketAddr>,
    /// A file holding the bearer token mutating calls (`POST /reload`)
    /// must carry; `DNSPOLICY_ADMIN_TOKEN` is used when it is not set.
    pub token_file: Option<PathBuf>,
    /// The token itself (never from TOML: set by programs embedding the
    /// server; wins over the file and the environment).
    pub token: Option<String>,
    /// Whether the read-only endpoints (`/metrics`, `/healthz`, `/readyz`,
    /// `/plugins`) answer without the token (default `true`).
    pub open_reads: bool,
}

impl AdminSection {
    /// Listening on `addr`, no token, reads open.
    pub fn at(addr: SocketAddr) -> AdminSection {
        AdminSection {
            listen: Some(addr),
            token_file: None,
            token: None,
            open_reads: true,
        }
    }

    /// Off.
    pub fn off() -> AdminSection {
        AdminSection {
            listen: None,
            ..AdminSection::at(SocketAddr::from(([127, 0, 0, 1], 9153)))
        }
    }

    /// The bearer token: [`AdminSection::token`], else the token file's
    /// first line, else `DNSPOLICY_ADMIN_TOKEN`; `None` when none is set.
    pub fn resolve_token(&self) -> Result<Option<String>, ConfigError> {
        let token = if let Some(t) = &self.token {
            Some(t.clone())
        } else if let Some(p) = &self.token_file {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Io(p.clone(), e))?;
            Some(text.lines().next().unwrap_or("").trim().to_string())
        } else {
            std::env::var("DNSPOLICY_ADMIN_TOKEN").ok()
        };
        match token {
            Some(t) if t.trim().is_empty() => Err(ConfigError::Invalid(
                "the admin token is empty: put a secret in [admin] token_file or DNSPOLICY_ADMIN_TOKEN"
                    .into(),
            )),
            Some(t) => Ok(Some(t.trim().to_string())),
            None => Ok(None),
        }
    }
}

impl<'de> Deserialize<'de> for AdminSection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            listen: Option<SocketAddr>,
            token_file: Option<PathBuf>,
            #[serde(default = "yes")]
            open_reads: bool,
        }
        fn yes() -> bool {
            true
        }
        #[derive(Deserialize)]
        #[serde(
            untagged,
            expecting = "an address (admin = \"127.0.0.1:9153\") or an [admin] table with listen, token_file, open_reads"
        )]
        enum Raw {
            Addr(SocketAddr),
            Table(Table),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Addr(a) => AdminSection::at(a),
            Raw::Table(t) => AdminSection {
                listen: t.listen,
                token_file: t.token_file,
                token: None,
                open_reads: t.open_reads,
            },
        })
    }
}

impl Config {
    /// Reads a TOML config file.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Io(path.to_path_buf(), e))?;
        let mut c: Config = toml::from_str(&text)
            .map_err(|e| ConfigError::Toml(path.to_path_buf(), e.to_string()))?;
        // A relative path is looked up beside the config file first (so
        // `serve --config examples/gslb/dnspolicy.toml` works from any
        // directory), then in the working directory.
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() && dir.join(&*p).exists() {
                *p = dir.join(&*p);
            }
        };
        c.plugin_dir.iter_mut().for_each(rebase);
        c.zone.iter_mut().for_each(rebase);
        c.geoip.iter_mut().for_each(rebase);
        c.admin.token_file.iter_mut().for_each(rebase);
        c.http.plugin_dir.iter_mut().for_each(rebase);
        Ok(c)
    }

    /// Adds an upstream given as `ADDR` (pool `default`) or `POOL=ADDR`;
    /// a missing port means 53.
    pub fn add_upstream(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (pool, addr) = spec.split_once('=').unwrap_or(("default", spec));
        let addr: SocketAddr = addr
            .parse()
            .or_else(|_| {
                addr.parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 53))
            })
            .map_err(|_| {
                ConfigError::Invalid(format!(
                    "--upstream `{spec}`: expected ADDR[:PORT] or POOL=ADDR[:PORT]"
                ))
            })?;
        self.upstreams
            .entry(pool.to_string())
            .or_default()
            .push(addr);
        Ok(())
    }

    /// Number of workers to run.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_examples_are_valid() {
        assert!(dnspolicy_compiler::compile(DEFAULT_POLICY).is_ok());
        assert!(crate::dns::zone::Zone::parse(DEFAULT_ZONE, "embedded").is_ok());
        let t = crate::geo::CsvTable::parse(DEFAULT_REGIONS, std::path::Path::new("regions.csv"))
            .expect("csv");
        assert_eq!(
            t.lookup("198.51.100.7".parse().expect("ip")).map(|r| r.1),
            Some("CN-BJ")
        );
        assert_eq!(
            t.lookup("203.0.113.9".parse().expect("ip")).map(|r| r.1),
            Some("US-CA")
        );
    }

    #[test]
    fn example_config_parses() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/dnspolicy.toml");
        let c = Config::from_file(&p).expect("examples/dnspolicy.toml is valid");
        assert_eq!(c.listen, vec![SocketAddr::from(([127, 0, 0, 1], 5353))]);
        assert_eq!(c.node, "edge-1");
        assert_eq!(
            c.admin.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9153)))
        );
    }

    #[test]
    fn admin_table_and_limits() {
        let c: Config = toml::from_str(
            "[admin]\nlisten = \"0.0.0.0:9153\"\ntoken_file = \"/etc/t\"\nopen_reads = false\n\
             [server]\nacl = [\"127.0.0.1/32\"]\nnsid = \"edge-1\"\n\
             [limits]\nqps_per_prefix = 100\naction = \"slip\"\n",
        )
        .expect("toml");
        assert_eq!(c.admin.listen, Some(SocketAddr::from(([0, 0, 0, 0], 9153))));
        assert!(!c.admin.open_reads);
        assert_eq!(c.server.nsid.as_deref(), Some("edge-1"));
        assert_eq!(c.limits.qps_per_prefix, 100);
        assert_eq!(c.limits.ipv4_prefix, 24);
        let e = toml::from_str::<Config>("admin = 5").expect_err("not an address");
        assert!(e.to_string().contains("[admin] table"), "{e}");
    }

    #[test]
    fn toml_and_upstreams() {
        let c: Config = toml::from_str(
            "listen = [\"127.0.0.1:53\"]\n[upstreams]\ndefault = [\"127.0.0.1:5300\"]\n",
        )
        .expect("toml");
        assert_eq!(c.upstreams["default"].len(), 1);
        let mut c = Config::default();
        c.add_upstream("10.0.0.1").expect("plain address");
        c.add_upstream("canary=127.0.0.1:5301").expect("named pool");
        assert_eq!(c.upstreams["default"][0].port(), 53);
        assert!(c.add_upstream("nope").is_err());
        assert!(toml::from_str::<Config>("bogus = 1").is_err());
    }
}
