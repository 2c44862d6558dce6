//! Who may ask, and how much: the DNS access list ([`acl`]), the
//! per-source-prefix query rate limit ([`rate`]) and the per-source TCP
//! connection limit ([`conns`]), with the counters of what they turned
//! away. Checked first on the query path, before any parsing.
//!
//! Depends on nothing else in the runtime.

pub mod acl;
pub mod conns;
pub mod rate;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What the access checks turned away. Written only for queries that are
/// refused, so one set of counters for all workers is enough.
#[derive(Debug, Default)]
pub struct AccessCounters {
    /// Queries from a source outside the ACL (answered REFUSED).
    pub acl_refused: AtomicU64,
    /// Queries over the rate limit that got no answer.
    pub rate_dropped: AtomicU64,
    /// Queries over the rate limit answered truncated (`slip`).
    pub rate_slipped: AtomicU64,
    /// TCP connections closed at once: the source had too many open.
    pub tcp_source_limit: AtomicU64,
    /// TCP connections closed at once: the server had too many open.
    pub tcp_server_limit: AtomicU64,
    /// Queries signed with a TSIG key this server does not have (NOTAUTH).
    pub tsig_badkey: AtomicU64,
}

impl AccessCounters {
    /// Appends the series in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP dnspolicy_acl_refused_total Queries from sources outside the DNS ACL, answered REFUSED.");
        let _ = writeln!(out, "# TYPE dnspolicy_acl_refused_total counter");
        let _ = writeln!(
            out,
            "dnspolicy_acl_refused_total {}",
            self.acl_refused.load(Relaxed)
        );
        let _ = writeln!(out, "# HELP dnspolicy_rate_limited_total Queries over the per-prefix rate limit, by action.");
        let _ = writeln!(out, "# TYPE dnspolicy_rate_limited_total counter");
        let _ = writeln!(
            out,
            "dnspolicy_rate_limited_total{{action=\"drop\"}} {}",
            self.rate_dropped.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "dnspolicy_rate_limited_total{{action=\"slip\"}} {}",
            self.rate_slipped.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP dnspolicy_tcp_refused_total TCP connections closed on accept, by limit."
        );
        let _ = writeln!(out, "# TYPE dnspolicy_tcp_refused_total counter");
        let _ = writeln!(
            out,
            "dnspolicy_tcp_refused_total{{limit=\"per_source\"}} {}",
            self.tcp_source_limit.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "dnspolicy_tcp_refused_total{{limit=\"server\"}} {}",
            self.tcp_server_limit.load(Relaxed)
        );
        let _ = writeln!(out, "# HELP dnspolicy_tsig_badkey_total Queries signed with an unknown TSIG key (NOTAUTH, BADKEY).");
        let _ = writeln!(out, "# TYPE dnspolicy_tsig_badkey_total counter");
        let _ = writeln!(
            out,
            "dnspolicy_tsig_badkey_total {}",
            self.tsig_badkey.load(Relaxed)
        );
    }
}
