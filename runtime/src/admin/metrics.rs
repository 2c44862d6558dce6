//! Counters and the latency histogram, kept in atomics (no locks on the
//! query path) and rendered in the Prometheus text format by the admin
//! endpoint. Every series is prefixed `dnspolicy_`.
//!
//! [`Metrics`] is sharded: each UDP worker counts into its own cache line
//! ([`Metrics::shard`]), so workers on different cores never write to the
//! same line; TCP and upstream work share shard 0. A scrape sums them.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Verdict labels, indexed by [`verdict_index`].
pub const VERDICTS: &[&str] = &[
    "answer",
    "rewrite",
    "forward",
    "pool",
    "nxdomain",
    "nodata",
    "refuse",
    "servfail",
    "drop",
    "truncate",
    "value",
    "default_zone",
    "default_forward",
    "default_refuse",
];

/// Upper bounds (seconds) of the latency histogram buckets.
pub const BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5,
];

/// One shard of the server's counters.
#[derive(Debug)]
pub struct Counters {
    /// Queries received over UDP.
    pub queries_udp: AtomicU64,
    /// Queries received over TCP.
    pub queries_tcp: AtomicU64,
    /// Packets that were not valid DNS queries.
    pub malformed: AtomicU64,
    /// Responses by RCODE (index = rcode, 0..=23).
    pub rcodes: [AtomicU64; 24],
    /// Responses dropped on purpose (the `drop` verdict).
    pub dropped: AtomicU64,
    /// Decisions by verdict kind ([`VERDICTS`]).
    pub verdicts: [AtomicU64; VERDICTS.len()],
    /// Reads of missing values in policies.
    pub missing_reads: AtomicU64,
    /// Upstream exchanges that succeeded.
    pub upstream_ok: AtomicU64,
    /// Upstream exchanges that failed (timeout, error).
    pub upstream_failed: AtomicU64,
    /// Latency histogram: one counter per bucket, then +Inf.
    pub latency: [AtomicU64; 17],
    /// Sum of latencies in nanoseconds.
    pub latency_sum_ns: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            queries_udp: AtomicU64::new(0),
            queries_tcp: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            rcodes: std::array::from_fn(|_| AtomicU64::new(0)),
            dropped: AtomicU64::new(0),
            verdicts: std::array::from_fn(|_| AtomicU64::new(0)),
            missing_reads: AtomicU64::new(0),
            upstream_ok: AtomicU64::new(0),
            upstream_failed: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            latency_sum_ns: AtomicU64::new(0),
        }
    }
}

/// The index of a verdict label in [`VERDICTS`].
pub fn verdict_index(label: &str) -> usize {
    VERDICTS
        .iter()
        .position(|v| *v == label)
        .unwrap_or(VERDICTS.len() - 1)
}

/// A shard on its own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(Counters);

/// The server's counters: shard 0 for TCP and upstream work, one per UDP
/// worker. Dereferences to shard 0.
#[derive(Debug)]
pub struct Metrics {
    shards: Box<[Padded]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(1)
    }
}

impl std::ops::Deref for Metrics {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.shards[0].0
    }
}

impl Metrics {
    /// Counters for `workers` UDP workers (and shard 0).
    pub fn new(workers: usize) -> Metrics {
        Metrics {
            shards: (0..=workers).map(|_| Padded::default()).collect(),
        }
    }

    /// The shard of UDP worker `worker` (shard 0 for anyone else).
    pub fn shard(&self, worker: Option<usize>) -> &Counters {
        let i = worker.map_or(0, |w| w + 1);
        &self.shards.get(i).unwrap_or(&self.shards[0]).0
    }

    /// Every shard summed, for a scrape.
    pub fn total(&self) -> Counters {
        let t = Counters::default();
        let add = |a: &AtomicU64, b: &AtomicU64| {
            a.fetch_add(b.load(Relaxed), Relaxed);
        };
        for Padded(c) in self.shards.iter() {
            add(&t.queries_udp, &c.queries_udp);
            add(&t.queries_tcp, &c.queries_tcp);
            add(&t.malformed, &c.malformed);
            add(&t.dropped, &c.dropped);
            add(&t.missing_reads, &c.missing_reads);
            add(&t.upstream_ok, &c.upstream_ok);
            add(&t.upstream_failed, &c.upstream_failed);
            add(&t.latency_sum_ns, &c.latency_sum_ns);
            for (a, b) in t.rcodes.iter().zip(&c.rcodes) {
                add(a, b);
            }
            for (a, b) in t.verdicts.iter().zip(&c.verdicts) {
                add(a, b);
            }
            for (a, b) in t.latency.iter().zip(&c.latency) {
                add(a, b);
            }
        }
        t
    }

    /// Appends the server-wide series (all shards) in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        self.total().render(out);
    }
}

impl Counters {
    /// Records a query's latency.
    pub fn observe(&self, d: std::time::Duration) {
        self.observe_n(d, 1);
    }

    /// Records the latency of `n` queries answered together.
    pub fn observe_n(&self, d: std::time::Duration, n: u64) {
        if n == 0 {
            return;
        }
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.latency[i].fetch_add(n, Relaxed);
        self.latency_sum_ns
            .fetch_add(d.as_nanos() as u64 * n, Relaxed);
    }

    /// Counts a response code.
    pub fn rcode(&self, rcode: u16) {
        if let Some(c) = self.rcodes.get(usize::from(rcode)) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Appends the server-wide series in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP dnspolicy_queries_total Queries received, by transport."
        );
        let _ = writeln!(out, "# TYPE dnspolicy_queries_total counter");
        let _ = writeln!(
            out,
            "dnspolicy_queries_total{{transport=\"udp\"}} {}",
            self.queries_udp.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "dnspolicy_queries_total{{transport=\"tcp\"}} {}",
            self.queries_tcp.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP dnspolicy_malformed_total Packets that were not valid DNS queries."
        );
        let _ = writeln!(out, "# TYPE dnspolicy_malformed_total counter");
        let _ = writeln!(
            out,
            "dnspolicy_malformed_total {}",
            self.malformed.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP dnspolicy_responses_total Responses sent, by RCODE."
        );
        let _ = writeln!(out, "# TYPE dnspolicy_responses_total counter");
        for (i, c) in self.rcodes.iter().enumerate() {
            let v = c.load(Relaxed);
            if v > 0 || i <= 5 {
                let name = rcode_name(i);
                let _ = writeln!(out, "dnspolicy_responses_total{{rcode=\"{name}\"}} {v}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP dnspolicy_dropped_total Queries dropped by a `drop` verdict."
        );
        let _ = writeln!(out, "# TYPE dnspolicy_dropped_total counter");
        let _ = writeln!(
            out,
            "dnspolicy_dropped_total {}",
            self.dropped.load(Relaxed)
        );
        let _ = writeln!(out, "# HELP dnspolicy_verdicts_total Decisions, by verdict (default_* when no plugin decided).");
        let _ = writeln!(out, "# TYPE dnspolicy_verdicts_total counter");
        for (name, c) in VERDICTS.iter().zip(&self.verdicts) {
            let _ = writeln!(
                out,
                "dnspolicy_verdicts_total{{verdict=\"{name}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP dnspolicy_missing_reads_total Reads of missing context values by policies."
        );
        let _ = writeln!(out, "# TYPE dnspolicy_missing_reads_total counter");
        let _ = writeln!(
            out,
            "dnspolicy_missing_reads_total {}",
            self.missing_reads.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP dnspolicy_upstream_exchanges_total Exchanges with upstream servers, by result."
        );
        let _ = writeln!(out, "# TYPE dnspolicy_upstream_exchanges_total counter");
        let _ = writeln!(
            out,
            "dnspolicy_upstream_exchanges_total{{result=\"ok\"}} {}",
            self.upstream_ok.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "dnspolicy_upstream_exchanges_total{{result=\"failed\"}} {}",
            self.upstream_failed.load(Relaxed)
        );
        let _ = writeln!(out, "# HELP dnspolicy_query_duration_seconds Time from receiving a query to sending its response.");
        let _ = writeln!(out, "# TYPE dnspolicy_query_duration_seconds histogram");
        let mut cum = 0;
        for (i, c) in self.latency.iter().enumerate() {
            cum += c.load(Relaxed);
            let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "dnspolicy_query_duration_seconds_bucket{{le=\"{le}\"}} {cum}"
            );
        }
        let _ = writeln!(
            out,
            "dnspolicy_query_duration_seconds_sum {}",
            self.latency_sum_ns.load(Relaxed) as f64 / 1e9
        );
        let _ = writeln!(out, "dnspolicy_query_duration_seconds_count {cum}");
    }
}

/// The mnemonic of a response code (RFC 6895 registry).
pub fn rcode_name(code: usize) -> String {
    const NAMES: &[&str] = &[
        "NOERROR",
        "FORMERR",
        "SERVFAIL",
        "NXDOMAIN",
        "NOTIMP",
        "REFUSED",
        "YXDOMAIN",
        "YXRRSET",
        "NXRRSET",
        "NOTAUTH",
        "NOTZONE",
        "DSOTYPENI",
    ];
    match code {
        16 => "BADVERS".into(),
        c => NAMES
            .get(c)
            .map_or_else(|| format!("RCODE{c}"), |n| (*n).to_string()),
    }
}

/// Appends one counter with its HELP and TYPE lines: each series is its
/// label set as written inside the braces (`action="drop"`), or `""` for
/// none, and its value.
pub fn counter(out: &mut String, name: &str, help: &str, series: &[(&str, u64)]) {
    family(out, "counter", name, help, series);
}

/// A gauge family, written like [`counter`].
pub fn gauge(out: &mut String, name: &str, help: &str, series: &[(&str, u64)]) {
    family(out, "gauge", name, help, series);
}

fn family(out: &mut String, kind: &str, name: &str, help: &str, series: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in series {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Escapes a label value for the Prometheus text format.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
