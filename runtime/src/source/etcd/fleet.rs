//! The fleet's key layout in etcd and the operations on it: push (whole
//! set, one transaction, compare-and-set on the head), rollback, promote,
//! and the status records edges leave. `docs/fleet.md` documents it:
//!
//! ```text
//! /dnspolicy/sets/NAME/head                 rollout state (JSON Head)
//! /dnspolicy/sets/NAME/versions/0000000012  version 12's manifest (JSON)
//! /dnspolicy/sets/NAME/blobs/SHA256/00000   file contents, ≤ 1 MiB chunks
//! /dnspolicy/status/NAME/NODE               an edge's ACK/NACK, under its lease
//! /dnspolicy/nodes/NAME/NODE                the edge's last report, kept (who is gone)
//! ```
//!
//! Blobs are content-addressed and written before the transaction that
//! makes a version visible (head + manifest), so a set of any size is
//! published atomically and an unchanged file is never sent twice.

use super::client::{Compare, Etcd, EtcdError, Op};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// File contents are stored in chunks of this size: etcd refuses requests
/// over 1.5 MiB by default.
pub const CHUNK: usize = 1 << 20;
/// Versions kept for rollback unless `--keep` says otherwise.
pub const DEFAULT_KEEP: u64 = 10;

/// A fleet operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// etcd could not be reached or refused.
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    /// A compare-and-set lost: someone else pushed first.
    #[error("{0}")]
    Conflict(String),
    /// What was asked does not make sense in the current state.
    #[error("{0}")]
    Refused(String),
    /// Stored data that does not parse or does not match its hash.
    #[error("{0}")]
    Corrupt(String),
    /// Another source of the files (a registry) could not be reached.
    #[error("{0}")]
    Source(String),
}

/// One file of a version.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// The file name in the plugin directory.
    pub name: String,
    /// `sha256:` and the hex digest of its contents.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// How many chunks hold it.
    pub chunks: u32,
}

/// A version's manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The set's name.
    pub set: String,
    /// The version (1, 2, …).
    pub version: u64,
    /// Who pushed it.
    pub author: String,
    /// Why.
    pub message: String,
    /// When (RFC 3339).
    pub time: String,
    /// The files, by name (empty when `oci` names them).
    pub files: Vec<FileEntry>,
    /// The files are an OCI artifact, pulled by digest from a registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<super::oci_ref::OciPointer>,
}

/// The rollout state of a set.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Head {
    /// The newest version.
    pub version: u64,
    /// The version every node not in the canary runs.
    pub stable: u64,
    /// Nodes that run `version` before the others.
    #[serde(default)]
    pub canary: Vec<String>,
    /// Or a share of nodes (by a hash of their name), 0–100.
    #[serde(default)]
    pub canary_percent: u8,
    /// When the head last changed (RFC 3339).
    #[serde(default)]
    pub time: String,
}

impl Head {
    /// Whether a rollout is staged (some nodes run `version`, the others
    /// `stable`).
    pub fn in_canary(&self) -> bool {
        self.version != self.stable
    }

    /// Whether `node` is in the canary.
    pub fn is_canary(&self, node: &str) -> bool {
        self.canary.iter().any(|n| n == node)
            || (self.canary_percent > 0 && node_bucket(node) < u32::from(self.canary_percent))
    }

    /// The version `node` should run.
    pub fn target_for(&self, node: &str) -> u64 {
        if self.in_canary() && !self.is_canary(node) {
            self.stable
        } else {
            self.version
        }
    }
}

/// A node's bucket in 0..100 for percentage canaries (stable per name).
pub fn node_bucket(node: &str) -> u32 {
    let h = Sha256::digest(node.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % 100
}

/// An edge's report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's name.
    pub node: String,
    /// The version it serves (0: none yet).
    pub version: u64,
    /// The version it was asked to run.
    pub target: u64,
    /// The etcd revision of the head it last acted on.
    pub revision: i64,
    /// `ok` (serving `target`), `refused` (NACK: `target` did not load,
    /// `version` keeps serving), `offline` (serving from disk).
    pub state: String,
    /// What went wrong with `target`, for a NACK.
    #[serde(default)]
    pub error: Option<String>,
    /// When (RFC 3339).
    pub time: String,
    /// The dnspolicy version.
    pub software: String,
}

/// Keys of set `name`.
pub struct Keys {
    set: String,
}

impl Keys {
    /// The keys of set `set`.
    pub fn new(set: &str) -> Keys {
        Keys {
            set: set.to_string(),
        }
    }
    /// The rollout state.
    pub fn head(&self) -> Vec<u8> {
        format!("/dnspolicy/sets/{}/head", self.set).into_bytes()
    }
    /// Where manifests live.
    pub fn versions(&self) -> Vec<u8> {
        format!("/dnspolicy/sets/{}/versions/", self.set).into_bytes()
    }
    /// Version `v`'s manifest.
    pub fn version(&self, v: u64) -> Vec<u8> {
        format!("/dnspolicy/sets/{}/versions/{v:010}", self.set).into_bytes()
    }
    /// Where blobs live.
    pub fn blobs(&self) -> Vec<u8> {
        format!("/dnspolicy/sets/{}/blobs/", self.set).into_bytes()
    }
    /// Chunk `i` of the blob `sha` (`sha256:…`).
    pub fn chunk(&self, sha: &str, i: u32) -> Vec<u8> {
        format!("/dnspolicy/sets/{}/blobs/{}/{i:05}", self.set, hex_of(sha)).into_bytes()
    }
    /// The chunks of blob `sha`.
    pub fn blob(&self, sha: &str) -> Vec<u8> {
        format!("/dnspolicy/sets/{}/blobs/{}/", self.set, hex_of(sha)).into_bytes()
    }
    /// Where edges report.
    pub fn statuses(&self) -> Vec<u8> {
        format!("/dnspolicy/status/{}/", self.set).into_bytes()
    }
    /// `node`'s report (under its lease).
    pub fn status(&self, node: &str) -> Vec<u8> {
        format!("/dnspolicy/status/{}/{node}", self.set).into_bytes()
    }
    /// Where last reports are kept.
    pub fn nodes(&self) -> Vec<u8> {
        format!("/dnspolicy/nodes/{}/", self.set).into_bytes()
    }
    /// `node`'s last report (no lease).
    pub fn node(&self, node: &str) -> Vec<u8> {
        format!("/dnspolicy/nodes/{}/{node}", self.set).into_bytes()
    }
}

fn hex_of(sha: &str) -> &str {
    sha.strip_prefix("sha256:").unwrap_or(sha)
}

/// `sha256:` and the hex digest of `data`.
pub fn sha256(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A set name: letters, digits, `-`, `_`, `.` (it is part of keys).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s != "."
        && s != ".."
}

/// What `push` is asked to do besides writing the files.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Refuse unless the set is at this version now (0: the set is new).
    pub if_version: Option<u64>,
    /// Who.
    pub author: String,
    /// Why.
    pub message: String,
    /// Stage the version on these nodes first.
    pub canary: Vec<String>,
    /// Or on this share of nodes.
    pub canary_percent: u8,
    /// Versions kept for rollback.
    pub keep: u64,
    /// The time to record (RFC 3339).
    pub time: String,
    /// The files are this OCI artifact (`files` is then empty).
    pub oci: Option<super::oci_ref::OciPointer>,
}

/// A pushed version.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// Its number.
    pub version: u64,
    /// The etcd revision that made it visible.
    pub revision: i64,
    /// Bytes sent for blobs that were not there yet.
    pub uploaded: u64,
}

/// The head of a set and its mod revision (0 when the set is new).
pub async fn head(etcd: &Etcd, keys: &Keys) -> Result<(Option<Head>, i64), FleetError> {
    let (kv, _) = etcd.get(&keys.head()).await?;
    match kv {
        None => Ok((None, 0)),
        Some(kv) => {
            let h: Head = serde_json::from_slice(&kv.value)
                .map_err(|e| FleetError::Corrupt(format!("the set's head: {e}")))?;
            Ok((Some(h), kv.mod_revision))
        }
    }
}

/// Version `v`'s manifest.
pub async fn manifest(etcd: &Etcd, keys: &Keys, v: u64) -> Result<Manifest, FleetError> {
    let (kv, _) = etcd.get(&keys.version(v)).await?;
    let kv = kv.ok_or_else(|| {
        FleetError::Refused(format!(
            "version {v} is not kept (only the last versions are; see `dnspolicy status`)"
        ))
    })?;
    serde_json::from_slice(&kv.value)
        .map_err(|e| FleetError::Corrupt(format!("version {v}'s manifest: {e}")))
}

/// Every kept version's manifest, oldest first.
pub async fn manifests(etcd: &Etcd, keys: &Keys) -> Result<Vec<(Manifest, i64)>, FleetError> {
    let (kvs, _) = etcd.prefix(&keys.versions(), false).await?;
    kvs.into_iter()
        .map(|kv| {
            serde_json::from_slice(&kv.value)
                .map(|m| (m, kv.mod_revision))
                .map_err(|e| FleetError::Corrupt(format!("a manifest: {e}")))
        })
        .collect()
}

/// Reads a file of a manifest back, every chunk, checked against its hash.
pub async fn read_file(etcd: &Etcd, keys: &Keys, f: &FileEntry) -> Result<Vec<u8>, FleetError> {
    // The size is etcd's word: a reservation, capped, not a promise.
    let mut data = Vec::with_capacity((f.size as usize).min(64 << 20));
    for i in 0..f.chunks {
        let (kv, _) = etcd.get(&keys.chunk(&f.sha256, i)).await?;
        let kv = kv.ok_or_else(|| {
            FleetError::Corrupt(format!("{}: chunk {i} of {} is missing", f.name, f.sha256))
        })?;
        data.extend_from_slice(&kv.value);
    }
    let got = sha256(&data);
    if got != f.sha256 {
        return Err(FleetError::Corrupt(format!(
            "{}: content is {got}, the manifest says {}",
            f.name, f.sha256
        )));
    }
    Ok(data)
}

/// Writes the blobs of `files` that are not there yet; bytes sent.
async fn upload(
    etcd: &Etcd,
    keys: &Keys,
    files: &[(String, Vec<u8>)],
) -> Result<(Vec<FileEntry>, u64), FleetError> {
    let mut entries = Vec::new();
    let mut sent = 0u64;
    for (name, data) in files {
        let sha = sha256(data);
        let chunks = data.len().div_ceil(CHUNK).max(1) as u32;
        if etcd.count(&keys.blob(&sha)).await? != i64::from(chunks) {
            for (i, part) in data.chunks(CHUNK).enumerate() {
                etcd.put(&keys.chunk(&sha, i as u32), part, 0).await?;
            }
            if data.is_empty() {
                etcd.put(&keys.chunk(&sha, 0), b"", 0).await?;
            }
            sent += data.len() as u64;
        }
        entries.push(FileEntry {
            name: name.clone(),
            sha256: sha,
            size: data.len() as u64,
            chunks,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((entries, sent))
}

/// Publishes `files` as the next version of the set: blobs first, then one
/// transaction that writes the manifest and the head if the head is still
/// what was read (a concurrent push makes this one retry, or fail with
/// `--if-version`). Versions older than `keep` are deleted in the same
/// transaction.
pub async fn push(
    etcd: &Etcd,
    set: &str,
    files: &[(String, Vec<u8>)],
    opts: &PushOptions,
) -> Result<Pushed, FleetError> {
    let keys = Keys::new(set);
    let keep = opts.keep.max(1);
    let mut uploaded = 0;
    for _attempt in 0..8 {
        // Again on every attempt: another push's garbage collection may
        // have taken a blob this one found and reused.
        let (entries, sent) = upload(etcd, &keys, files).await?;
        uploaded += sent;
        let (old, rev) = head(etcd, &keys).await?;
        let current = old.as_ref().map_or(0, |h| h.version);
        if let Some(want) = opts.if_version {
            if want != current {
                return Err(FleetError::Conflict(format!(
                    "set {set} is at version {current}, not {want}: not pushed (pull the latest and push again)"
                )));
            }
        }
        let version = current + 1;
        let staged = !opts.canary.is_empty() || opts.canary_percent > 0;
        let stable = match (&old, staged) {
            (_, false) => version,
            (Some(h), true) => h.stable,
            // Nothing to keep running outside the canary: everyone gets it.
            (None, true) => version,
        };
        let h = Head {
            version,
            stable,
            canary: if staged {
                opts.canary.clone()
            } else {
                Vec::new()
            },
            canary_percent: if staged { opts.canary_percent } else { 0 },
            time: opts.time.clone(),
        };
        let m = Manifest {
            set: set.to_string(),
            version,
            author: opts.author.clone(),
            message: opts.message.clone(),
            time: opts.time.clone(),
            files: entries.clone(),
            oci: opts.oci.clone(),
        };
        let mut ops = vec![
            Op::Put(keys.version(version), json_bytes(&m)),
            Op::Put(keys.head(), json_bytes(&h)),
        ];
        // Keep `keep` versions, and always the stable one a canary
        // falls back to.
        let oldest_kept = version.saturating_sub(keep - 1).min(stable).max(1);
        if oldest_kept > 1 {
            ops.push(Op::DeleteRange(keys.version(0), keys.version(oldest_kept)));
        }
        // The head is what was read, and every blob is still there (etcd
        // takes 128 comparisons per transaction: the first 100 files).
        let mut guard = vec![Compare::ModRevision(keys.head(), rev)];
        guard.extend(
            entries
                .iter()
                .take(100)
                .map(|f| Compare::Exists(keys.chunk(&f.sha256, 0))),
        );
        let (ok, revision) = etcd.txn(&guard, &ops).await?;
        if ok {
            return Ok(Pushed {
                version,
                revision,
                uploaded,
            });
        }
        let (_, now) = head(etcd, &keys).await?;
        if now != rev && opts.if_version.is_some() {
            return Err(FleetError::Conflict(format!(
                "set {set} moved past version {current} while pushing (another push won): not pushed"
            )));
        }
        // Else the head moved (retry on top of it) or a blob went (upload
        // it again).
    }
    Err(FleetError::Conflict(format!(
        "set {set}: gave up after 8 concurrent pushes won the race"
    )))
}

/// Deletes blobs no kept manifest names, written before the oldest kept
/// manifest (a blob newer than that may belong to a push in flight).
pub async fn collect_garbage(etcd: &Etcd, set: &str) -> Result<usize, FleetError> {
    let keys = Keys::new(set);
    let kept = manifests(etcd, &keys).await?;
    let Some(oldest) = kept.iter().map(|(_, r)| *r).min() else {
        return Ok(0);
    };
    let used: std::collections::HashSet<String> = kept
        .iter()
        .flat_map(|(m, _)| m.files.iter().map(|f| hex_of(&f.sha256).to_string()))
        .collect();
    let (kvs, _) = etcd.prefix(&keys.blobs(), true).await?;
    let base = keys.blobs().len();
    let mut doomed = std::collections::BTreeSet::new();
    for kv in &kvs {
        let rest = String::from_utf8_lossy(&kv.key[base..]).into_owned();
        let Some((hex, _)) = rest.split_once('/') else {
            continue;
        };
        if !used.contains(hex) && kv.mod_revision < oldest {
            doomed.insert(hex.to_string());
        }
    }
    for hex in &doomed {
        etcd.delete_prefix(&keys.blob(hex)).await?;
    }
    Ok(doomed.len())
}

/// Makes the staged version the stable one, if every named canary runs it
/// (a NACK, or a canary that has not applied it yet, stops the rollout).
pub async fn promote(etcd: &Etcd, set: &str, time: &str) -> Result<u64, FleetError> {
    let keys = Keys::new(set);
    let (h, rev) = head(etcd, &keys).await?;
    let mut h = h.ok_or_else(|| FleetError::Refused(format!("set {set} has no version")))?;
    if !h.in_canary() {
        return Err(FleetError::Refused(format!(
            "set {set}: version {} is already everywhere; nothing to promote",
            h.version
        )));
    }
    let statuses = statuses(etcd, &keys).await?;
    let mut blocking = Vec::new();
    let canaries: Vec<&NodeStatus> = statuses.iter().filter(|s| h.is_canary(&s.node)).collect();
    for name in &h.canary {
        if !statuses.iter().any(|s| &s.node == name) {
            blocking.push(format!("canary {name} is not reporting"));
        }
    }
    for s in &canaries {
        if s.target == h.version && s.state == "refused" {
            blocking.push(format!(
                "canary {} refused version {}: {}",
                s.node,
                h.version,
                s.error.as_deref().unwrap_or("no detail")
            ));
        } else if s.version != h.version {
            blocking.push(format!(
                "canary {} has not applied version {} yet (serves {})",
                s.node, h.version, s.version
            ));
        }
    }
    if canaries.is_empty() && blocking.is_empty() {
        blocking.push("no node of the canary is reporting".into());
    }
    if !blocking.is_empty() {
        return Err(FleetError::Refused(format!(
            "not promoted:\n  {}",
            blocking.join("\n  ")
        )));
    }
    h.stable = h.version;
    h.canary.clear();
    h.canary_percent = 0;
    h.time = time.to_string();
    let (ok, _) = etcd
        .txn(
            &[Compare::ModRevision(keys.head(), rev)],
            &[Op::Put(keys.head(), json_bytes(&h))],
        )
        .await?;
    if !ok {
        return Err(FleetError::Conflict(format!(
            "set {set} changed while promoting: not promoted"
        )));
    }
    Ok(h.version)
}

/// Every live edge's report (their leases keep them).
pub async fn statuses(etcd: &Etcd, keys: &Keys) -> Result<Vec<NodeStatus>, FleetError> {
    let (kvs, _) = etcd.prefix(&keys.statuses(), false).await?;
    Ok(kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect())
}

/// The fleet as `dnspolicy status` shows it: every live edge's report,
/// then the edges whose lease is gone with `state: "gone"`, by name.
pub async fn fleet_view(etcd: &Etcd, keys: &Keys) -> Result<Vec<NodeStatus>, FleetError> {
    let mut nodes = statuses(etcd, keys).await?;
    for mut s in last_reports(etcd, keys).await? {
        if !nodes.iter().any(|n| n.node == s.node) {
            s.state = "gone".into();
            nodes.push(s);
        }
    }
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(nodes)
}

/// Every edge that ever reported: its last report.
pub async fn last_reports(etcd: &Etcd, keys: &Keys) -> Result<Vec<NodeStatus>, FleetError> {
    let (kvs, _) = etcd.prefix(&keys.nodes(), false).await?;
    Ok(kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect())
}

fn json_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_targets() {
        let h = Head {
            version: 5,
            stable: 4,
            canary: vec!["edge-1".into()],
            ..Head::default()
        };
        assert_eq!(h.target_for("edge-1"), 5);
        assert_eq!(h.target_for("edge-2"), 4);
        let all = Head {
            version: 5,
            stable: 5,
            ..Head::default()
        };
        assert_eq!(all.target_for("edge-2"), 5);
        let pct = Head {
            version: 7,
            stable: 6,
            canary_percent: 50,
            ..Head::default()
        };
        let n = (0..1000)
            .filter(|i| pct.target_for(&format!("edge-{i}")) == 7)
            .count();
        assert!(
            (400..600).contains(&n),
            "{n} of 1000 nodes in a 50 % canary"
        );
    }

    #[test]
    fn names_and_keys() {
        assert!(valid_name("edge-eu.v1"));
        assert!(!valid_name("a/b") && !valid_name("") && !valid_name(".."));
        let k = Keys::new("s");
        assert_eq!(
            k.version(12),
            b"/dnspolicy/sets/s/versions/0000000012".to_vec()
        );
        assert_eq!(
            k.chunk("sha256:ab", 3),
            b"/dnspolicy/sets/s/blobs/ab/00003".to_vec()
        );
        assert!(k.version(9) < k.version(10), "versions sort by number");
    }
}
