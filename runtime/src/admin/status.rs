//! The status page (`/` and `/ui`) and its data (`/status.json`): live QPS
//! and latency (p50/p99) for the last five minutes, responses by rcode,
//! the plugin table with per-rule hits, and the reload history. One HTML
//! file with its script inline (no build step, no external assets), polling
//! the JSON once a second.
//!
//! A sampler task reads the counters once a second and keeps the last 300
//! samples; the query path does nothing for it.

use crate::admin::metrics::{rcode_name, Metrics, BUCKETS};
use crate::server::Shared;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The page.
pub const PAGE: &str = include_str!("status.html");

/// Samples kept: five minutes at one a second.
pub const KEEP: usize = 300;

/// One second of traffic.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    /// Unix time (seconds).
    pub t: u64,
    /// Queries per second.
    pub qps: f64,
    /// Median latency (ms): the upper bound of its histogram bucket.
    pub p50_ms: f64,
    /// 99th percentile latency (ms), likewise.
    pub p99_ms: f64,
}

/// The sampler's memory.
#[derive(Debug, Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
    last: Mutex<Option<(Instant, u64, Vec<u64>)>>,
}

/// The upper bound (ms) of the bucket holding quantile `q` of `counts`.
fn quantile_ms(counts: &[u64], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let want = (q * total as f64).ceil() as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= want {
            let bound = BUCKETS.get(i).or(BUCKETS.last()).copied().unwrap_or(0.0);
            return bound * 1000.0;
        }
    }
    BUCKETS.last().copied().unwrap_or(0.0) * 1000.0
}

impl History {
    /// Takes one sample from the counters (the sampler calls it each second).
    pub fn tick(&self, metrics: &Metrics) {
        let t = metrics.total();
        let queries = t.queries_udp.load(Relaxed) + t.queries_tcp.load(Relaxed);
        let latency: Vec<u64> = t.latency.iter().map(|c| c.load(Relaxed)).collect();
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((then, q0, l0)) = last.as_ref() {
            let secs = now.duration_since(*then).as_secs_f64().max(0.001);
            let delta: Vec<u64> = latency
                .iter()
                .zip(l0)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect();
            let sample = Sample {
                t: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                qps: queries.saturating_sub(*q0) as f64 / secs,
                p50_ms: quantile_ms(&delta, 0.5),
                p99_ms: quantile_ms(&delta, 0.99),
            };
            let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            if s.len() == KEEP {
                s.pop_front();
            }
            s.push_back(sample);
        }
        *last = Some((now, queries, latency));
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.iter().copied().collect()
    }
}

/// Samples the counters once a second until `stop`.
pub async fn sample(shared: Arc<Shared>, stop: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => shared.status.tick(&shared.metrics),
        }
    }
}

/// `/status.json`.
pub fn json(shared: &Shared) -> String {
    let t = shared.metrics.total();
    let rcodes: serde_json::Map<String, serde_json::Value> = t
        .rcodes
        .iter()
        .enumerate()
        .filter(|(i, c)| *i <= 5 || c.load(Relaxed) > 0)
        .map(|(i, c)| (rcode_name(i), c.load(Relaxed).into()))
        .collect();
    let plugins: serde_json::Value =
        serde_json::from_str(&crate::admin::plugins(shared)).unwrap_or_default();
    let reloads = shared.reloads.history();
    let src = &shared.source;
    let reference = src
        .reference
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let fleet = reference.starts_with("etcd://").then(|| {
        serde_json::json!({
            "source": reference,
            "version": src.version.load(Relaxed),
            "offline": src.offline.load(Relaxed),
            "nodes": *src.fleet.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
        })
    });
    let http = shared.http.as_ref().map(|h| {
        let pools: Vec<serde_json::Value> = h
            .pools
            .values()
            .flat_map(|p| {
                p.members.iter().map(move |m| {
                    serde_json::json!({
                        "pool": p.name,
                        "member": m.addr.to_string(),
                        "up": p.usable(m),
                        "requests": m.requests.load(Relaxed),
                        "errors": m.errors.load(Relaxed),
                        "ejections": m.ejections.load(Relaxed),
                    })
                })
            })
            .collect();
        serde_json::json!({
            "requests": h.stats.requests.load(Relaxed),
            "pools": pools,
        })
    });
    serde_json::json!({
        "fleet": fleet,
        "http": http,
        "node": shared.node,
        "version": env!("CARGO_PKG_VERSION"),
        "queries": t.queries_udp.load(Relaxed) + t.queries_tcp.load(Relaxed),
        "samples": shared.status.samples(),
        "rcodes": rcodes,
        "plugins": plugins,
        "reloads": reloads,
        "ready": shared.chain.load().problems().is_empty(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_bucket_bounds() {
        let mut counts = vec![0u64; BUCKETS.len() + 1];
        counts[0] = 98; // ≤ 25 µs
        counts[5] = 2; // ≤ 1 ms
        assert_eq!(quantile_ms(&counts, 0.5), 0.025);
        assert_eq!(quantile_ms(&counts, 0.99), 1.0);
        assert_eq!(quantile_ms(&[0; 17], 0.5), 0.0);
        let h = History::default();
        let m = Metrics::new(1);
        h.tick(&m);
        m.queries_udp.fetch_add(500, Relaxed);
        h.tick(&m);
        let s = h.samples();
        assert_eq!(s.len(), 1);
        assert!(s[0].qps > 0.0);
    }
}
