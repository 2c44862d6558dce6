//! Answer pools (GSLB): named groups of members (addresses or names) with
//! weights, priorities, places and health checks, from which `then pool
//! NAME PICK` answers. The policy's verdict names the pool and the pick;
//! this module picks among the members healthy at that moment, so the
//! compiled policy stays static data and the health state is shared by all
//! workers (one atomic per member).
//!
//! Here: [`Pools`] and [`Pools::answer`] (verdict to records); the
//! [`config`] sections; the [`health`] checks; the [`pick`] algorithms.
//! Depends on [`crate::geo`] for `nearest`; the server owns a [`Pools`].

pub mod config;
pub mod health;
pub mod pick;
#[cfg(test)]
mod tests;

use config::{HealthConfig, PoolConfig};
use dnspolicy_compiler::ir::value::Pick;
use dnspolicy_compiler::{Value, Verdict};
use health::Probe;
use pick::{ClientPlace, Picks};
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// What a member answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An A or AAAA record.
    Ip(IpAddr),
    /// A CNAME to this canonical name.
    Name(String),
}

/// One member and its live state.
#[derive(Debug)]
pub struct Member {
    /// What it answers with.
    pub target: Target,
    /// The address or name as text (metrics, logs).
    pub label: String,
    /// Weight (`weighted`, `sticky`).
    pub weight: u32,
    /// Priority (`failover`, lower first).
    pub priority: u32,
    /// Region or country (`nearest`).
    pub region: Option<String>,
    /// Coordinates in degrees (`nearest`).
    pub location: Option<(f64, f64)>,
    /// Stable per-member seed for rendezvous hashing (from the label, so
    /// the same on every node and after restarts).
    pub seed: u64,
    /// The health check, if any.
    pub probe: Option<Probe>,
    /// Healthy now. Members start healthy (as in HAProxy): a restart does
    /// not empty the answers while the first probes run.
    pub healthy: AtomicBool,
    /// Probes that passed.
    pub checks_ok: AtomicU64,
    /// Probes that failed.
    pub checks_failed: AtomicU64,
    /// Up/down changes.
    pub transitions: AtomicU64,
}

/// One pool.
#[derive(Debug)]
pub struct Pool {
    /// Its name.
    pub name: String,
    /// Its members in configured order.
    pub members: Vec<Member>,
    /// Probe timing.
    pub health: HealthConfig,
    /// The backup pool's index, when `fallback` names one.
    pub backup: Option<usize>,
    /// Whether any member is health-checked (its answers' TTLs are capped).
    pub checked: bool,
    /// Answers given from the fallback because no member was healthy
    /// (rare, so one shared counter; answers in general are counted per
    /// worker as `pool` verdicts).
    pub fallbacks: AtomicU64,
}

impl Pool {
    /// Members healthy now.
    pub fn healthy(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.healthy.load(Relaxed))
            .count()
    }
}

/// Every answer pool of the server, and the TTL cap.
#[derive(Debug, Default)]
pub struct Pools {
    /// The pools, by index.
    pub pools: Vec<Pool>,
    /// Names, sorted, to indexes.
    by_name: BTreeMap<String, usize>,
    /// `[gslb] max_ttl`.
    pub max_ttl: u32,
    /// Pool verdicts naming a pool that is not configured.
    pub unknown: AtomicU64,
}

/// Stable 64-bit hash of text (FNV-1a, then the finaliser).
fn seed_of(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    pick::fmix64(h)
}

impl Pools {
    /// Builds the pools of a checked config ([`config::validate`]).
    pub fn new(
        cfg: &BTreeMap<String, PoolConfig>,
        max_ttl: u32,
    ) -> Result<Pools, config::PoolConfigError> {
        config::validate(cfg)?;
        let by_name: BTreeMap<String, usize> = cfg
            .keys()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let pools = cfg
            .iter()
            .map(|(name, p)| {
                let members: Vec<Member> = p
                    .members
                    .iter()
                    .map(|m| {
                        let target = match (&m.address, &m.name) {
                            (Some(ip), _) => Target::Ip(*ip),
                            (None, Some(n)) => Target::Name(
                                dnspolicy_compiler::ir::types::canonical_name(n)
                                    .unwrap_or_default(),
                            ),
                            (None, None) => Target::Name(String::new()),
                        };
                        let label = match &target {
                            Target::Ip(ip) => ip.to_string(),
                            Target::Name(n) => n.clone(),
                        };
                        Member {
                            seed: seed_of(&label),
                            label,
                            target,
                            weight: m.weight,
                            priority: m.priority,
                            region: m.region.clone(),
                            location: m.location.map(|[a, b]| (a, b)),
                            probe: m.check.as_deref().and_then(|c| Probe::parse(c).ok()),
                            healthy: AtomicBool::new(true),
                            checks_ok: AtomicU64::new(0),
                            checks_failed: AtomicU64::new(0),
                            transitions: AtomicU64::new(0),
                        }
                    })
                    .collect();
                Pool {
                    name: name.clone(),
                    checked: members.iter().any(|m| m.probe.is_some()),
                    members,
                    health: p.health.clone(),
                    backup: by_name.get(&p.fallback).copied(),
                    fallbacks: AtomicU64::new(0),
                }
            })
            .collect();
        Ok(Pools {
            pools,
            by_name,
            max_ttl,
            unknown: AtomicU64::new(0),
        })
    }

    /// The pool called `name`.
    pub fn get(&self, name: &str) -> Option<&Pool> {
        self.by_name.get(name).map(|&i| &self.pools[i])
    }

    /// `{pool.NAME.healthy}`: how many members of `NAME` are healthy.
    pub fn healthy(&self, name: &str) -> Option<i64> {
        self.get(name).map(|p| p.healthy() as i64)
    }

    /// Whether any pool is configured.
    pub fn is_empty(&self) -> bool {
        self.pools.is_empty()
    }

    /// Turns a `pool` verdict into the verdict the server answers with for
    /// a question of type `qtype` ([`Pools::pick`] as a [`Verdict`]).
    /// `None`: the pool is not configured.
    pub fn answer(
        &self,
        v: &Verdict,
        qtype: u16,
        place: &mut dyn FnMut() -> Place,
    ) -> Option<Verdict> {
        self.pick(v, qtype, place).map(Picked::into_verdict)
    }

    /// Picks for a `pool` verdict and a question of type `qtype`: the
    /// picked members' addresses of that family, a CNAME target (a picked
    /// name member), or NODATA when the pool has nothing of the asked type.
    /// `place` is asked only by `nearest` (GeoIP). Nothing is allocated
    /// for pools of up to 16 members. `None`: the pool is not configured.
    pub fn pick(
        &self,
        v: &Verdict,
        qtype: u16,
        place: &mut dyn FnMut() -> Place,
    ) -> Option<Picked<'_>> {
        let Verdict::Pool {
            pool,
            pick: how,
            count,
            ttl,
            key,
        } = v
        else {
            return None;
        };
        let Some(mut p) = self.get(pool) else {
            self.unknown.fetch_add(1, Relaxed);
            return None;
        };
        let want_v6 = qtype == 28;
        let fits = |m: &Member| match &m.target {
            Target::Ip(ip) => ip.is_ipv6() == want_v6 && matches!(qtype, 1 | 28 | 255),
            Target::Name(_) => true,
        };
        if !p.members.iter().any(fits) {
            // Nothing of the asked type (an AAAA question to IPv4 members).
            return Some(Picked::Nodata);
        }
        let mut cands: SmallVec<[&Member; 16]> = SmallVec::new();
        // A pool with no healthy member: its backup pool (at most once per
        // pool, so no cycle), else every member of the last pool tried.
        let mut tried = 0;
        loop {
            cands.clear();
            cands.extend(
                p.members
                    .iter()
                    .filter(|m| fits(m) && m.healthy.load(Relaxed)),
            );
            if !cands.is_empty() || tried > self.pools.len() {
                break;
            }
            tried += 1;
            p.fallbacks.fetch_add(1, Relaxed);
            match p.backup {
                Some(b) => p = &self.pools[b],
                None => {
                    cands.extend(p.members.iter().filter(|m| fits(m)));
                    break;
                }
            }
        }
        let ttl = if p.checked {
            (*ttl).min(self.max_ttl)
        } else {
            *ttl
        };
        if cands.is_empty() {
            return Some(Picked::Nodata);
        }
        let (loc, region, country);
        let client = if *how == Pick::Nearest {
            (loc, region, country) = place();
            ClientPlace {
                location: loc,
                region: &region,
                country: &country,
            }
        } else {
            ClientPlace::default()
        };
        let mut picked = Picks::new();
        pick::pick(*how, &cands, *count, *key, &client, &mut picked);
        if let Some(Target::Name(n)) = picked.first().map(|&i| &cands[i].target) {
            return Some(Picked::Name { target: n, ttl });
        }
        let ips = picked
            .iter()
            .filter_map(|&i| match cands[i].target {
                Target::Ip(ip) => Some(ip),
                Target::Name(_) => None,
            })
            .collect();
        Some(Picked::Addrs {
            rtype: if want_v6 { 28 } else { 1 },
            ips,
            ttl,
        })
    }
}

/// Where the client is, as `nearest` asks for it: coordinates in degrees,
/// region and country (GeoIP of the ECS address or the source).
pub type Place = (Option<(f64, f64)>, Arc<str>, Arc<str>);

/// What [`Pools::pick`] chose.
// The addresses stay on the stack for one query: boxing them would
// allocate on every pool answer.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Picked<'p> {
    /// A/AAAA records.
    Addrs {
        /// 1 (A) or 28 (AAAA).
        rtype: u16,
        /// The addresses, best first.
        ips: SmallVec<[IpAddr; 16]>,
        /// Their TTL (capped when the pool is health-checked).
        ttl: u32,
    },
    /// A CNAME to a name member.
    Name {
        /// The canonical target.
        target: &'p str,
        /// Its TTL.
        ttl: u32,
    },
    /// Nothing of the asked type.
    Nodata,
}

impl Picked<'_> {
    /// The same as a verdict (for paths that build a full response).
    pub fn into_verdict(self) -> Verdict {
        match self {
            Picked::Addrs { rtype, ips, ttl } => Verdict::Answer {
                rtype,
                data: ips.into_iter().map(Value::Ip).collect(),
                ttl,
            },
            Picked::Name { target, ttl } => Verdict::Rewrite {
                target: target.to_string(),
                ttl,
            },
            Picked::Nodata => Verdict::Nodata,
        }
    }
}
