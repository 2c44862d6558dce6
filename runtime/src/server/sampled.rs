//! What happens to a sampled query once it is decided: a decision log line,
//! an OpenTelemetry trace, and a sample in the per-plugin and per-rule
//! decision-time histograms. Unsampled queries cost three counter
//! increments and nothing else.

use super::Shared;
use crate::admin::metrics::BUCKETS;
use crate::dns::query::QueryCtx;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// Every N-th query of a worker is timed for the decision histograms.
pub const TIMED_EVERY: u64 = 64;
/// Series kept at most per histogram family (then `rule="(other)"`).
const MAX_SERIES: usize = 4096;

/// A sampled query: when its decision started and what it is sampled for.
#[derive(Clone, Copy, Debug)]
pub struct Sampled {
    t0: Instant,
    wall: Option<SystemTime>,
    log: bool,
    /// Started before the decision (not made after it for a `log` rule).
    measured: bool,
}

impl Sampled {
    /// Made after the decision (a `log` rule, unsampled): no time to tell.
    fn unmeasured(&self) -> bool {
        !self.measured
    }
}

/// Worker counters for the three samplings.
#[derive(Debug, Default)]
pub struct Counters {
    logged: u64,
    traced: u64,
    timed: u64,
}

impl Sampled {
    /// Whether (and for what) this query is sampled.
    pub fn of(shared: &Shared, c: &mut Counters) -> Option<Sampled> {
        let log = shared
            .decisions
            .as_ref()
            .is_some_and(|d| d.sampled(&mut c.logged));
        let trace = crate::observe::otel::sampled(&mut c.traced);
        c.timed = c.timed.wrapping_add(1);
        let timed = c.timed.is_multiple_of(TIMED_EVERY);
        (log || trace || timed).then(|| Sampled {
            t0: Instant::now(),
            wall: trace.then(SystemTime::now),
            log,
            measured: true,
        })
    }
}

type RuleHists = HashMap<String, HashMap<String, Arc<Hist>>>;

/// Decision-time histograms: per plugin, and per rule of a plugin.
#[derive(Debug, Default)]
pub struct DecideTimes {
    by_plugin: Mutex<HashMap<String, Arc<Hist>>>,
    /// Plugin → rule → histogram (nested so a lookup borrows both names),
    /// and how many rule series there are.
    by_rule: Mutex<(RuleHists, usize)>,
}

/// One histogram: bucket counts (then +Inf), the sum in nanoseconds.
#[derive(Debug)]
pub struct Hist {
    buckets: [AtomicU64; 17],
    sum_ns: AtomicU64,
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Hist {
    fn observe(&self, secs: f64) {
        let i = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add((secs * 1e9) as u64, Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        use std::fmt::Write as _;
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.buckets[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
        }
        cum += self.buckets[BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cum}");
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_ns.load(Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {cum}");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DecideTimes {
    /// Adds a sample; allocates only for a plugin or rule not seen before
    /// (lookups borrow the names, past the series cap too, so a steady
    /// state allocates nothing).
    fn observe(&self, plugin: &str, rule: Option<&str>, secs: f64) {
        {
            let mut m = lock(&self.by_plugin);
            let key = if m.contains_key(plugin) || m.len() < MAX_SERIES {
                plugin
            } else {
                "(other)"
            };
            match m.get(key) {
                Some(h) => h.observe(secs),
                None => {
                    m.entry(key.to_string()).or_default().observe(secs);
                }
            }
        }
        if let Some(r) = rule {
            let mut guard = lock(&self.by_rule);
            let (m, series) = &mut *guard;
            if let Some(h) = m.get(plugin).and_then(|rules| rules.get(r)) {
                h.observe(secs);
                return;
            }
            let r = if *series < MAX_SERIES { r } else { "(other)" };
            if let Some(h) = m.get(plugin).and_then(|rules| rules.get(r)) {
                h.observe(secs);
                return;
            }
            *series += 1;
            m.entry(plugin.to_string())
                .or_default()
                .entry(r.to_string())
                .or_default()
                .observe(secs);
        }
    }

    /// The Prometheus text of both families. The maps are locked only to
    /// copy their handles: a scrape never holds up sampled queries while
    /// it formats.
    pub fn write(&self, out: &mut String) {
        use crate::admin::metrics::label;
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP dnspolicy_plugin_decide_seconds Time from the start of the chain to this plugin's decision, for 1 in {TIMED_EVERY} queries.\n# TYPE dnspolicy_plugin_decide_seconds histogram"
        );
        let mut plugins: Vec<(String, Arc<Hist>)> = lock(&self.by_plugin)
            .iter()
            .map(|(p, h)| (p.clone(), h.clone()))
            .collect();
        plugins.sort_by(|a, b| a.0.cmp(&b.0));
        for (p, h) in plugins {
            h.write(
                out,
                "dnspolicy_plugin_decide_seconds",
                &format!("plugin=\"{}\"", label(&p)),
            );
        }
        let _ = writeln!(
            out,
            "# HELP dnspolicy_rule_decide_seconds Time from the start of the chain to this rule's decision, for 1 in {TIMED_EVERY} queries.\n# TYPE dnspolicy_rule_decide_seconds histogram"
        );
        let mut rules: Vec<(String, String, Arc<Hist>)> = lock(&self.by_rule)
            .0
            .iter()
            .flat_map(|(p, rs)| {
                rs.iter()
                    .map(move |(r, h)| (p.clone(), r.clone(), h.clone()))
            })
            .collect();
        rules.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        for (p, r, h) in rules {
            h.write(
                out,
                "dnspolicy_rule_decide_seconds",
                &format!("plugin=\"{}\",rule=\"{}\"", label(&p), label(&r)),
            );
        }
    }
}

/// Handles a sampled decision: the plugin at `at` (index, rule) or none,
/// and the verdict's kind.
pub(super) fn note(
    shared: &Shared,
    chain: &crate::plugin::Chain,
    ctx: &QueryCtx<'_>,
    s: Option<Sampled>,
    at: Option<(usize, Option<usize>)>,
    verdict: &str,
) {
    let loaded = at.and_then(|(i, _)| chain.plugins.get(i));
    // Looked up only where it matters: with a decision log.
    let marked = shared.decisions.is_some()
        && match (loaded, at.and_then(|(_, r)| r)) {
            (Some(l), Some(r)) => l.plugin.logged_rules().get(r).copied().unwrap_or(false),
            _ => false,
        };
    let s = match s {
        Some(s) => s,
        // A rule marked `log` is logged unsampled (its time unmeasured).
        None if marked => Sampled {
            t0: Instant::now(),
            wall: None,
            log: true,
            measured: false,
        },
        None => return,
    };
    let took = s.t0.elapsed();
    let plugin = loaded
        .and_then(|l| l.path.file_name())
        .and_then(|n| n.to_str());
    let rule = match (loaded, at.and_then(|(_, r)| r)) {
        (Some(l), Some(r)) => l.plugin.rule_names().get(r),
        _ => None,
    };
    let version = loaded.map_or("", |l| l.version.as_str());
    let f = ctx.facts;
    if let (Some(p), false) = (plugin, s.unmeasured()) {
        shared.decide_times.observe(p, rule, took.as_secs_f64());
    }
    // One entry for the log and the trace.
    let entry = crate::observe::decisions::Entry {
        client: f.client,
        qname: f.qname,
        qtype: f.qtype,
        transport: f.transport,
        plugin,
        version,
        rule,
        verdict,
        fields: ctx.fields_read(),
        ecs_scope: f.ecs_echo(ctx.ecs_scope()).map(|e| e.2),
        micros: (!s.unmeasured()).then(|| u64::try_from(took.as_micros()).unwrap_or(u64::MAX)),
        marked,
        generation: chain.generation,
    };
    if let (true, Some(log)) = (s.log || marked, &shared.decisions) {
        log.record(&entry);
    }
    if let Some(start) = s.wall {
        crate::observe::otel::query(start, took, &entry);
    }
}
