//! Where a plugin set comes from when it is not a local directory: an OCI
//! registry ([`oci`]) or an etcd cluster shared by a fleet of edges
//! ([`etcd`]). A source is fetched into a local cache directory,
//! verified, and loaded through the same reload path as a directory
//! (whole set or nothing); the last good set keeps serving otherwise.
//!
//! Depends on [`crate::plugin`] (what a plugin file is) and the server's
//! reload; the query path never sees it.

pub mod etcd;
pub mod oci;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;

/// What the server says about its source (metrics, logs).
#[derive(Debug, Default)]
pub struct SourceStatus {
    /// The reference being served (`oci://…`), empty without a source.
    pub reference: Mutex<String>,
    /// The digest of the set in service.
    pub digest: Mutex<String>,
    /// Whether the set in service came from the local cache because the
    /// registry could not be reached at start.
    pub offline: AtomicBool,
    /// Sets fetched and swapped in.
    pub updates: AtomicU64,
    /// Fetches or loads that failed (the last good set kept serving).
    pub failures: AtomicU64,
    /// The last failure, for `/metrics` readers and logs.
    pub last_error: Mutex<Option<String>>,
    /// The fleet version in service (`etcd://` sources; 0: none yet).
    pub version: AtomicU64,
    /// When the source was last heard from (Unix milliseconds; 0: never).
    pub last_sync_ms: AtomicU64,
    /// Watch streams that broke and were opened again.
    pub reconnects: AtomicU64,
    /// The fleet's reports as this edge last read them (status page).
    pub fleet: Mutex<Vec<etcd::fleet::NodeStatus>>,
}

impl SourceStatus {
    /// Notes that the source answered just now.
    pub fn synced(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_sync_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Now, as RFC 3339 in UTC (`2026-12-02T11:20:00Z`).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
