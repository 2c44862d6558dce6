//! `serve --source etcd://HOST:PORT[,HOST:PORT]/NAME --node NODE`: the
//! edge's side of the fleet.
//!
//! At start the edge serves its persisted set (the last version that
//! loaded here, kept on disk with its manifest and checked file by file),
//! or, on a first start, the version the head names for it. Then it
//! watches the head from the revision it read: every change names a
//! target version for this node (canary or stable); the version's files
//! are read, checked against their hashes, written aside and swapped in
//! through the directory reload path (whole set or nothing). It reports
//! under a lease at `/dnspolicy/status/NAME/NODE`: `ok` with the version,
//! or `refused` with the error while the previous version keeps serving.
//!
//! A broken watch is opened again on the next member with backoff, from
//! the last revision seen (no version missed or replayed); a compacted
//! revision makes it read the head again. With etcd unreachable the edge
//! keeps serving and says so (`/readyz`, metrics), and converges when a
//! member answers again.

use super::client::{Etcd, EtcdError, WatchEvent};
use super::fleet::{self, FleetError, Head, Keys, Manifest, NodeStatus};
use crate::server::Shared;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long an edge's report outlives it (seconds).
const LEASE_TTL: i64 = 20;
/// How often the lease is renewed.
const KEEPALIVE: Duration = Duration::from_secs(3);
/// Longest wait between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// An etcd source of plugins.
#[derive(Clone, Debug)]
pub struct EtcdSource {
    /// The source as given (`etcd://…/NAME`).
    pub spec: String,
    /// The client URLs.
    pub endpoints: String,
    /// The set's name.
    pub set: String,
    /// This edge's name.
    pub node: String,
    /// Where this set's versions are persisted.
    pub state: PathBuf,
}

/// The default state directory: `$XDG_STATE_HOME/dnspolicy/etcd`, else
/// `~/.local/state/…`, else the temp dir.
pub fn default_state() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("dnspolicy/etcd")
}

/// What the edge starts with.
#[derive(Debug)]
pub struct Initial {
    /// The directory to load.
    pub dir: PathBuf,
    /// Its version (0: the set has none yet; the directory is empty).
    pub version: u64,
    /// Whether etcd could not be reached (served from disk).
    pub offline: bool,
}

impl EtcdSource {
    /// Parses `etcd://HOST:PORT[,HOST:PORT…]/NAME`; `state_root` holds the
    /// persisted sets (one directory per set).
    pub fn parse(spec: &str, node: &str, state_root: &Path) -> Result<EtcdSource, FleetError> {
        let bad = |why: &str| {
            FleetError::Refused(format!(
                "source `{spec}`: {why} (etcd://HOST:PORT[,HOST:PORT]/NAME)"
            ))
        };
        let rest = spec
            .strip_prefix("etcd://")
            .ok_or_else(|| bad("not etcd://"))?;
        let (hosts, set) = rest.rsplit_once('/').ok_or_else(|| bad("no set name"))?;
        if hosts.is_empty() {
            return Err(bad("no etcd member"));
        }
        if !fleet::valid_name(set) {
            return Err(bad("the set name is letters, digits, `-`, `_` and `.`"));
        }
        if !fleet::valid_name(node) {
            return Err(FleetError::Refused(format!(
                "node name `{node}`: letters, digits, `-`, `_` and `.` (--node)"
            )));
        }
        Ok(EtcdSource {
            spec: spec.to_string(),
            endpoints: hosts.to_string(),
            set: set.to_string(),
            node: node.to_string(),
            state: state_root.join(set),
        })
    }

    fn version_dir(&self, v: u64) -> PathBuf {
        self.state.join(format!("v{v:010}"))
    }

    fn current_file(&self) -> PathBuf {
        self.state.join("current")
    }

    /// The persisted version, if its files are all there and intact.
    pub fn persisted(&self) -> Option<(u64, PathBuf)> {
        let v: u64 = std::fs::read_to_string(self.current_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let dir = self.version_dir(v);
        match verify_dir(&dir) {
            Ok(()) => Some((v, dir)),
            Err(e) => {
                tracing::warn!(set = %self.set, version = v, error = %e, "the persisted set is damaged; not used");
                None
            }
        }
    }

    fn persist(&self, v: u64) -> std::io::Result<()> {
        let tmp = self.state.join(".current.tmp");
        std::fs::write(&tmp, format!("{v}\n"))?;
        std::fs::rename(&tmp, self.current_file())?;
        // Keep the version in service and the two before it.
        if let Ok(rd) = std::fs::read_dir(&self.state) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(n) = name.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()) {
                    if n + 2 < v || n > v + 1000 {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        Ok(())
    }

    /// Version `v` on disk: read from etcd unless already there intact.
    async fn fetch(&self, etcd: &Etcd, keys: &Keys, v: u64) -> Result<PathBuf, FleetError> {
        let dir = self.version_dir(v);
        if verify_dir(&dir).is_ok() {
            return Ok(dir);
        }
        let mut m = fleet::manifest(etcd, keys, v).await?;
        let mut files = Vec::new();
        if let Some(p) = &m.oci {
            // Pulled by digest, every blob verified; the entries let a
            // restart check the files offline.
            let (pulled, entries) = super::oci_ref::pull(p).await?;
            files = pulled;
            m.files = entries;
        } else {
            for f in &m.files {
                files.push((f.name.clone(), fleet::read_file(etcd, keys, f).await?));
            }
        }
        write_dir(&self.state, &dir, &m, &files)
            .map_err(|e| FleetError::Refused(format!("{}: {e}", dir.display())))?;
        Ok(dir)
    }

    /// What to serve at start: the persisted set when there is one (the
    /// watch then moves it to the head's version, through the reload path
    /// that refuses a bad one), else the head's version for this node,
    /// else (a set with no version yet) an empty directory.
    pub async fn initial(&self) -> Result<Initial, FleetError> {
        std::fs::create_dir_all(&self.state)
            .map_err(|e| FleetError::Refused(format!("{}: {e}", self.state.display())))?;
        let persisted = self.persisted();
        let etcd = Etcd::new(&self.endpoints)?;
        let keys = Keys::new(&self.set);
        let head = fleet::head(&etcd, &keys).await;
        match (head, persisted) {
            (Ok(_), Some((version, dir))) => Ok(Initial {
                dir,
                version,
                offline: false,
            }),
            (Ok((Some(h), _)), None) => {
                let v = h.target_for(&self.node);
                let dir = self.fetch(&etcd, &keys, v).await?;
                Ok(Initial {
                    dir,
                    version: v,
                    offline: false,
                })
            }
            (Ok((None, _)), None) => {
                let dir = self.state.join("empty");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| FleetError::Refused(format!("{}: {e}", dir.display())))?;
                tracing::warn!(set = %self.set, "the set has no version yet: serving no plugins until one is pushed");
                Ok(Initial {
                    dir,
                    version: 0,
                    offline: false,
                })
            }
            (Err(e), Some((version, dir))) => {
                // Unreachable, or a head that does not parse: the
                // persisted set serves; the watch says what is wrong.
                let offline = matches!(e, FleetError::Etcd(_));
                tracing::warn!(set = %self.set, version, error = %e, "serving the persisted set");
                Ok(Initial {
                    dir,
                    version,
                    offline,
                })
            }
            (Err(e), _) => Err(e),
        }
    }
}

/// Writes a version's files and manifest aside, then renames the directory
/// into place: a crash never leaves half a version under its name.
fn write_dir(
    state: &Path,
    dir: &Path,
    m: &Manifest,
    files: &[(String, Vec<u8>)],
) -> std::io::Result<()> {
    let tmp = state.join(format!(".tmp-{}-{}", std::process::id(), m.version));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    for (name, data) in files {
        if name.contains('/') || name.starts_with('.') {
            return Err(std::io::Error::other(format!("file name `{name}` refused")));
        }
        std::fs::write(tmp.join(name), data)?;
    }
    std::fs::write(
        tmp.join("manifest.json"),
        serde_json::to_vec_pretty(m).unwrap_or_default(),
    )?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir)
}

/// Checks a persisted version: every file its manifest names, by hash.
pub fn verify_dir(dir: &Path) -> Result<(), String> {
    let raw = std::fs::read(dir.join("manifest.json")).map_err(|e| format!("manifest: {e}"))?;
    let m: Manifest = serde_json::from_slice(&raw).map_err(|e| format!("manifest: {e}"))?;
    for f in &m.files {
        let data = std::fs::read(dir.join(&f.name)).map_err(|e| format!("{}: {e}", f.name))?;
        if fleet::sha256(&data) != f.sha256 {
            return Err(format!("{}: content does not match its hash", f.name));
        }
    }
    Ok(())
}

/// The edge's state while it follows the set.
struct Edge {
    shared: Arc<Shared>,
    src: EtcdSource,
    etcd: Etcd,
    keys: Keys,
    applied: u64,
    /// The version that failed to load here (not tried again until the
    /// head names another).
    refused: Option<(u64, String)>,
    target: u64,
    revision: i64,
    lease: i64,
    /// The target could not be fetched (etcd or the registry away): the
    /// watch is left so the sync runs again, with backoff.
    retry: bool,
    /// The current watch delivered something (the backoff starts over).
    delivered: bool,
}

impl Edge {
    fn status(&self) -> NodeStatus {
        let (state, error) = match &self.refused {
            Some((v, e)) if *v == self.target => ("refused", Some(e.clone())),
            _ if self.shared.source.offline.load(Relaxed) => ("offline", None),
            _ if self.applied == self.target => ("ok", None),
            _ => ("applying", None),
        };
        NodeStatus {
            node: self.src.node.clone(),
            version: self.applied,
            target: self.target,
            revision: self.revision,
            state: state.to_string(),
            error,
            time: crate::source::now_rfc3339(),
            software: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Writes this edge's report: under the lease (gone when the edge is),
    /// and a copy without it (who was here).
    async fn report(&mut self) -> Result<(), EtcdError> {
        let s = serde_json::to_vec(&self.status()).unwrap_or_default();
        for _ in 0..2 {
            if self.lease == 0 {
                self.lease = self.etcd.lease_grant(LEASE_TTL).await?;
            }
            match self
                .etcd
                .put(&self.keys.status(&self.src.node), &s, self.lease)
                .await
            {
                Ok(_) => {
                    self.etcd
                        .put(&self.keys.node(&self.src.node), &s, 0)
                        .await?;
                    return Ok(());
                }
                Err(EtcdError::Refused(m)) if m.contains("lease") => self.lease = 0,
                Err(e) => return Err(e),
            }
        }
        Err(EtcdError::Refused("the lease could not be renewed".into()))
    }

    async fn keepalive(&mut self) -> Result<(), EtcdError> {
        if self.lease == 0 || self.etcd.lease_keepalive(self.lease).await? == 0 {
            // Expired while etcd was away: a new lease, the report again.
            self.lease = 0;
            self.report().await?;
        }
        self.shared.source.synced();
        // The status page shows the fleet: read at the lease's pace.
        if let Ok(nodes) = fleet::fleet_view(&self.etcd, &self.keys).await {
            *lock(&self.shared.source.fleet) = nodes;
        }
        Ok(())
    }

    /// Moves to the version `h` names for this node.
    async fn apply(&mut self, h: &Head) {
        self.target = h.target_for(&self.src.node);
        let t = self.target;
        if t == 0 || t == self.applied || self.refused.as_ref().is_some_and(|(v, _)| *v == t) {
            return;
        }
        let dir = match self.src.fetch(&self.etcd, &self.keys, t).await {
            Ok(d) => d,
            Err(e @ (FleetError::Etcd(_) | FleetError::Source(_))) => {
                // Not this version's fault: tried again on the next sync.
                self.retry = true;
                self.failed(&format!(
                    "version {t}: {e}; version {} keeps serving",
                    self.applied
                ));
                return;
            }
            Err(e) => {
                self.nack(t, e.to_string());
                return;
            }
        };
        let s = self.shared.clone();
        let swapped = tokio::task::spawn_blocking(move || s.reload_from_dir(&dir)).await;
        match swapped {
            Ok(Ok(r)) => {
                tracing::info!(source = %self.src.spec, version = t, plugins = r.plugins, "new version in service");
                if let Err(e) = self.src.persist(t) {
                    tracing::warn!(error = %e, "version {t} not persisted: a restart without etcd serves an older one");
                }
                self.applied = t;
                self.refused = None;
                let st = &self.shared.source;
                st.version.store(t, Relaxed);
                *lock(&st.digest) = format!("version {t}");
                st.updates.fetch_add(1, Relaxed);
            }
            Ok(Err(e)) => self.nack(t, e.to_string()),
            Err(e) => self.nack(t, format!("the load panicked: {e}")),
        }
    }

    fn nack(&mut self, v: u64, why: String) {
        self.failed(&format!(
            "version {v} refused: {why}; version {} keeps serving",
            self.applied
        ));
        self.refused = Some((v, why));
    }

    fn failed(&self, why: &str) {
        tracing::error!(source = %self.src.spec, "{why}");
        self.shared.source.failures.fetch_add(1, Relaxed);
        *lock(&self.shared.source.last_error) = Some(why.to_string());
    }

    /// Reads the head, applies it, reports: the revision to watch from.
    async fn sync(&mut self) -> Result<i64, FleetError> {
        self.retry = false;
        let (kv, read_at) = self.etcd.get(&self.keys.head()).await?;
        self.shared.source.synced();
        if self.shared.source.offline.swap(false, Relaxed) {
            tracing::info!(source = %self.src.spec, "etcd reachable again");
        }
        match kv {
            Some(kv) => self.take_head(&kv.value, kv.mod_revision).await?,
            None => self.report().await?,
        }
        Ok(read_at)
    }

    /// Applies a head value read at `revision`, reports, and breaks off
    /// (an error) when its version could not be fetched yet, so the sync
    /// runs again with backoff.
    async fn take_head(&mut self, value: &[u8], revision: i64) -> Result<(), FleetError> {
        self.revision = revision;
        match serde_json::from_slice::<Head>(value) {
            Ok(h) => self.apply(&h).await,
            Err(e) => self.failed(&format!("the set's head does not parse: {e}")),
        }
        self.report().await?;
        if self.retry {
            return Err(FleetError::Source(format!(
                "version {} could not be fetched yet",
                self.target
            )));
        }
        Ok(())
    }

    /// Follows the watch until it breaks (an error) or is compacted (Ok).
    async fn watch(&mut self, from: i64, stop: &CancellationToken) -> Result<(), FleetError> {
        let mut w = self.etcd.watch(&self.keys.head(), from).await?;
        let mut tick = tokio::time::interval(KEEPALIVE);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tick.tick() => {
                    self.keepalive().await?;
                    // The renewal had to go to another member: the one the
                    // watch is on may be cut off without a reset.
                    if self.etcd.current() != w.member {
                        return Err(FleetError::Etcd(EtcdError::Unreachable(format!(
                            "{} no longer answers; watching on another member",
                            w.member
                        ))));
                    }
                }
                evs = w.next() => {
                    for ev in evs? {
                        match ev {
                            WatchEvent::Created(_) => {
                                self.delivered = true;
                                self.shared.source.synced();
                            }
                            WatchEvent::Compacted(at) => {
                                tracing::warn!(source = %self.src.spec, compacted = at, "watch revision compacted: reading the head again");
                                return Ok(());
                            }
                            WatchEvent::Changed(None, at) => {
                                self.revision = at;
                                self.failed("the set's head was deleted; the version in service stays");
                            }
                            WatchEvent::Changed(Some(kv), at) => {
                                self.shared.source.synced();
                                self.take_head(&kv.value, at).await?;
                            }
                        }
                    }
                }
            }
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Follows the set until `stop`: sync, watch, and on any break a backoff
/// and the next member. On `stop`, revokes the lease so the fleet sees
/// this edge go at once.
pub async fn follow(
    shared: Arc<Shared>,
    src: EtcdSource,
    initial: &Initial,
    stop: CancellationToken,
) {
    let etcd = match Etcd::new(&src.endpoints) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(source = %src.spec, error = %e, "cannot follow the set");
            return;
        }
    };
    // A first start loads through the server's start-up, which may have
    // let failed plugins through (`--allow-partial`): that is a NACK, and
    // such a set is not the last good one.
    let failed: Vec<String> = shared
        .chain
        .load()
        .failed
        .iter()
        .map(|f| f.error.clone())
        .collect();
    let refused =
        (initial.version > 0 && !failed.is_empty()).then(|| (initial.version, failed.join("; ")));
    if initial.version > 0 && refused.is_none() {
        if let Err(e) = src.persist(initial.version) {
            tracing::warn!(error = %e, "the set in service is not persisted");
        }
    }
    let mut edge = Edge {
        shared,
        keys: Keys::new(&src.set),
        src,
        etcd,
        applied: if refused.is_some() {
            0
        } else {
            initial.version
        },
        refused,
        target: initial.version,
        revision: 0,
        lease: 0,
        retry: false,
        delivered: false,
    };
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    while !stop.is_cancelled() {
        if !first {
            edge.shared.source.reconnects.fetch_add(1, Relaxed);
        }
        first = false;
        edge.delivered = false;
        let result = match edge.sync().await {
            Ok(at) => edge.watch(at + 1, &stop).await,
            Err(e) => Err(e),
        };
        // Only a watch that worked starts the backoff over: one that
        // breaks as it opens must not loop ten times a second.
        if edge.delivered {
            backoff = Duration::from_millis(100);
        }
        if let Err(e) = result {
            tracing::warn!(source = %edge.src.spec, error = %e, "etcd: will retry in {backoff:?}");
            *lock(&edge.shared.source.last_error) = Some(e.to_string());
            edge.shared.source.failures.fetch_add(1, Relaxed);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    if edge.lease != 0 {
        let _ =
            tokio::time::timeout(Duration::from_secs(1), edge.etcd.lease_revoke(edge.lease)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s = EtcdSource::parse(
            "etcd://127.0.0.1:2379,127.0.0.1:22379/edge",
            "n1",
            Path::new("/s"),
        )
        .expect("parses");
        assert_eq!(s.endpoints, "127.0.0.1:2379,127.0.0.1:22379");
        assert_eq!(s.set, "edge");
        assert_eq!(s.state, Path::new("/s/edge"));
        assert!(EtcdSource::parse("etcd://127.0.0.1:2379", "n1", Path::new("/s")).is_err());
        assert!(EtcdSource::parse("etcd:///x", "n1", Path::new("/s")).is_err());
        assert!(EtcdSource::parse("etcd://h:1/x", "bad/node", Path::new("/s")).is_err());
    }
}
