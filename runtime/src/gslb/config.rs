//! The `[gslb]` and `[pools.NAME]` sections of the server config, and
//! their checks: a bad pool refuses the config with a message naming the
//! pool and member, never a silent skip.

use super::health::Probe;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// `[gslb]`: settings for every answer pool.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GslbSection {
    /// Cap on the TTL of answers from a pool with health checks, so
    /// resolvers' caches follow a failover within this many seconds.
    pub max_ttl: u32,
}

impl Default for GslbSection {
    fn default() -> Self {
        GslbSection { max_ttl: 30 }
    }
}

/// `[pools.NAME]`: one answer pool.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The members, in order (`pick all` answers in this order).
    pub members: Vec<MemberConfig>,
    /// Probe timing for the members that have a `check`.
    #[serde(default)]
    pub health: HealthConfig,
    /// When no member is healthy: `"all"` (answer as if all were, the
    /// default: a wrong guess beats no answer) or the name of a backup pool.
    #[serde(default = "all")]
    pub fallback: String,
}

fn all() -> String {
    "all".into()
}

/// One member of a pool.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// An IPv4 or IPv6 address (A/AAAA answers)...
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// ...or a DNS name (a CNAME answer).
    #[serde(default)]
    pub name: Option<String>,
    /// Share for `pick weighted`, weight for `pick sticky` (default 1).
    #[serde(default = "one")]
    pub weight: u32,
    /// Order for `pick failover`: lower first (default 1).
    #[serde(default = "one")]
    pub priority: u32,
    /// ISO 3166-2 region (`US-CA`) or country (`US`), for `pick nearest`.
    #[serde(default)]
    pub region: Option<String>,
    /// `[latitude, longitude]` in degrees, for `pick nearest`.
    #[serde(default)]
    pub location: Option<[f64; 2]>,
    /// The health check: `tcp://HOST:PORT`, `http://HOST:PORT/PATH` or
    /// `dns://HOST:PORT/NAME`. Without one the member is always healthy.
    #[serde(default)]
    pub check: Option<String>,
}

fn one() -> u32 {
    1
}

/// Probe timing and expectations (`[pools.NAME.health]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Seconds between probes of one member.
    pub interval: f64,
    /// Seconds a probe may take.
    pub timeout: f64,
    /// Consecutive successes that bring a member back.
    pub rise: u32,
    /// Consecutive failures that take a member out.
    pub fall: u32,
    /// HTTP checks: the status that counts as healthy.
    pub expect_status: u16,
    /// DNS checks: the RCODE that counts as healthy (`NOERROR`, `NXDOMAIN`...).
    pub expect_rcode: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: 1.0,
            timeout: 0.5,
            rise: 2,
            fall: 2,
            expect_status: 200,
            expect_rcode: "NOERROR".into(),
        }
    }
}

/// A pool that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("[pools.{pool}]: {reason}")]
pub struct PoolConfigError {
    /// The pool.
    pub pool: String,
    /// What is wrong.
    pub reason: String,
}

/// Checks every pool; the first problem is the error.
pub fn validate(pools: &BTreeMap<String, PoolConfig>) -> Result<(), PoolConfigError> {
    for (name, p) in pools {
        let bad = |reason: String| PoolConfigError {
            pool: name.clone(),
            reason,
        };
        if name.is_empty() || name.contains('.') || name.contains(char::is_whitespace) {
            return Err(bad("a pool name has no dots or spaces".into()));
        }
        if p.members.is_empty() {
            return Err(bad("a pool needs at least one member".into()));
        }
        let h = &p.health;
        if !(h.interval.is_finite() && h.interval >= 0.05 && h.interval <= 3600.0) {
            return Err(bad(format!(
                "health.interval {} is not 0.05 to 3600 seconds",
                h.interval
            )));
        }
        if !(h.timeout.is_finite() && h.timeout > 0.0 && h.timeout <= h.interval.max(0.05) * 10.0) {
            return Err(bad(format!(
                "health.timeout {} is not a positive number of seconds",
                h.timeout
            )));
        }
        if h.rise == 0 || h.fall == 0 {
            return Err(bad("health.rise and health.fall are at least 1".into()));
        }
        if super::health::rcode_from_name(&h.expect_rcode).is_none() {
            return Err(bad(format!(
                "health.expect_rcode `{}` is not an RCODE",
                h.expect_rcode
            )));
        }
        if p.fallback != "all" && (p.fallback == *name || !pools.contains_key(&p.fallback)) {
            return Err(bad(format!(
                "fallback `{}` is neither \"all\" nor another pool",
                p.fallback
            )));
        }
        for (i, m) in p.members.iter().enumerate() {
            let at = |reason: String| bad(format!("member {}: {reason}", i + 1));
            match (&m.address, &m.name) {
                (Some(_), None) => {}
                (None, Some(n)) => {
                    dnspolicy_compiler::ir::types::canonical_name(n)
                        .map_err(|e| at(format!("name `{n}`: {e}")))?;
                }
                _ => return Err(at("give exactly one of `address` and `name`".into())),
            }
            if let Some([la, lo]) = m.location {
                if !(-90.0..=90.0).contains(&la) || !(-180.0..=180.0).contains(&lo) {
                    return Err(at(format!(
                        "location [{la}, {lo}] is not [latitude, longitude]"
                    )));
                }
            }
            if let Some(c) = &m.check {
                Probe::parse(c).map_err(|e| at(format!("check `{c}`: {e}")))?;
            }
        }
    }
    Ok(())
}
