//! Where a plugin set comes from when it is not a local directory: an OCI
//! registry ([`oci`]). A source is fetched into a local cache directory,
//! verified, and loaded through the same reload path as a directory
//! (whole set or nothing); the last good set keeps serving otherwise.
//!
//! Depends on [`crate::plugin`] (what a plugin file is) and the server's
//! reload; the query path never sees it.

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
}
