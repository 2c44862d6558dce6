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
    /// Admin HTTP address (`/metrics`, `/healthz`, `/plugins`).
    pub admin: Option<SocketAddr>,
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
    /// Read the common query straight from the datagram and write its
    /// answer without hickory's `Message` (the default). `false` sends
    /// every query through hickory: for debugging, and for the test that
    /// holds the two paths to the same answers.
    pub fast_path: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 5353))],
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 9153))),
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

impl Config {
    /// Reads a TOML config file.
    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Io(path.to_path_buf(), e))?;
        toml::from_str(&text).map_err(|e| ConfigError::Toml(path.to_path_buf(), e.to_string()))
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
