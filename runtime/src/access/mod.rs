//! Who may ask, and how much: the DNS access list ([`acl`]), the
//! per-source-prefix query rate limit ([`rate`]) and the per-source TCP
//! connection limit ([`conns`]), with the counters of what they turned
//! away. Checked first on the query path, before any parsing.
//!
//! Depends on nothing else in the runtime.

pub mod acl;
pub mod conns;
pub mod rate;

use std::sync::atomic::AtomicU64;

/// What the access checks turned away (rendered by `admin`). Written only
/// for queries that are refused, so one set of counters for all workers is
/// enough.
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
