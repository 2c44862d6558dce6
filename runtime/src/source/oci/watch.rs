//! `serve --source oci://HOST:PORT/REPO@sha256:…|:TAG`: the set is pulled
//! into a cache by digest (verified, written whole before it is marked
//! complete), loaded like a plugin directory, and, for a tag, polled: a new
//! digest is pulled and swapped in through the reload path, whole set or
//! nothing. When the registry is down or a set fails, the last good set
//! keeps serving and the failure is logged and counted. A restart with the
//! registry unreachable serves the last good set of that reference from
//! the cache (after checking every file against its manifest again).

use super::artifact::{layers_of, verify};
use super::{parse_ref, OciError, Registry};
use crate::server::Shared;
use oci_client::Reference;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// An OCI source of plugins.
#[derive(Clone, Debug)]
pub struct OciSource {
    /// The reference as given.
    pub spec: String,
    /// Plain HTTP allowed.
    pub insecure: bool,
    /// How often a tag is checked.
    pub poll: Duration,
    /// Where pulled sets are kept, by digest.
    pub cache: PathBuf,
}

/// The default cache: `$XDG_CACHE_HOME/dnspolicy/oci`, else `~/.cache/…`,
/// else the temp dir.
pub fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("dnspolicy/oci")
}

impl OciSource {
    fn reference(&self) -> Result<Reference, OciError> {
        parse_ref(&self.spec)
    }

    fn set_dir(&self, digest: &str) -> PathBuf {
        self.cache.join(digest.replace(':', "-"))
    }

    fn last_good_file(&self) -> PathBuf {
        let key: String = self
            .spec
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.cache.join("refs").join(key)
    }

    /// Whether a tag is followed (a digest never changes).
    pub fn follows_tag(&self) -> bool {
        self.reference()
            .map(|r| r.digest().is_none())
            .unwrap_or(false)
    }

    /// The set `digest` from the cache, or pulled (verified) into it.
    async fn fetch_digest(
        &self,
        reg: &Registry,
        r: &Reference,
        digest: &str,
    ) -> Result<PathBuf, OciError> {
        let dir = self.set_dir(digest);
        if verify_dir(&dir, digest).is_ok() {
            return Ok(dir);
        }
        let pinned = Reference::with_digest(
            r.registry().to_string(),
            r.repository().to_string(),
            digest.to_string(),
        );
        let pulled = reg.pull(&pinned).await?;
        // Written aside, then renamed: a crash never leaves half a set
        // under a digest's name.
        let tmp = self.cache.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            digest.replace(':', "-")
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        pulled.write_to(&tmp)?;
        std::fs::write(tmp.join("manifest.json"), &pulled.manifest)
            .map_err(|e| OciError::Io(tmp.display().to_string(), e))?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| OciError::Io(dir.display().to_string(), e))?;
        Ok(dir)
    }

    /// The current set of the reference: (directory, digest).
    pub async fn fetch(&self) -> Result<(PathBuf, String), OciError> {
        let r = self.reference()?;
        let reg = Registry::new(&r, self.insecure);
        let digest = reg.resolve(&r).await?;
        let dir = self.fetch_digest(&reg, &r, &digest).await?;
        Ok((dir, digest))
    }

    /// At start: the current set, else (registry unreachable) the last good
    /// one from the cache; `true` when it came from the cache that way.
    pub async fn initial(&self) -> Result<(PathBuf, String, bool), OciError> {
        std::fs::create_dir_all(self.cache.join("refs"))
            .map_err(|e| OciError::Io(self.cache.display().to_string(), e))?;
        match self.fetch().await {
            Ok((dir, digest)) => {
                self.remember(&digest);
                Ok((dir, digest, false))
            }
            Err(e) => {
                let last = std::fs::read_to_string(self.last_good_file()).unwrap_or_default();
                let last = last.trim();
                let pinned = self
                    .reference()
                    .ok()
                    .and_then(|r| r.digest().map(str::to_string));
                let want = pinned.as_deref().unwrap_or(last);
                if !want.is_empty() && verify_dir(&self.set_dir(want), want).is_ok() {
                    tracing::warn!(source = %self.spec, error = %e, digest = want, "registry unreachable: serving the cached set");
                    return Ok((self.set_dir(want), want.to_string(), true));
                }
                Err(e)
            }
        }
    }

    fn remember(&self, digest: &str) {
        let _ = std::fs::write(self.last_good_file(), digest);
    }
}

/// Checks a cached set: its manifest has `digest`, and every file its
/// manifest names is there with its digest.
pub fn verify_dir(dir: &Path, digest: &str) -> Result<(), OciError> {
    let manifest = std::fs::read(dir.join("manifest.json"))
        .map_err(|e| OciError::Io(dir.display().to_string(), e))?;
    verify("the cached manifest", digest, &manifest)?;
    let (_, layers) = layers_of(&manifest)?;
    for l in layers {
        let p = dir.join(&l.name);
        let data = std::fs::read(&p).map_err(|e| OciError::Io(p.display().to_string(), e))?;
        verify(&l.name, &l.digest, &data)?;
    }
    Ok(())
}

/// Follows a tag: every `poll`, the tag's digest; a new one is pulled and
/// swapped in (whole set), a failure leaves the last good set serving.
pub async fn follow(
    shared: Arc<Shared>,
    src: OciSource,
    mut current: String,
    stop: CancellationToken,
) {
    if !src.follows_tag() {
        return;
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(src.poll) => {}
        }
        match src.fetch().await {
            Ok((_, d)) if d == current => {}
            Ok((dir, d)) => {
                let s = shared.clone();
                let swapped = tokio::task::spawn_blocking(move || s.reload_from_dir(&dir)).await;
                match swapped {
                    Ok(Ok(r)) => {
                        tracing::info!(source = %src.spec, digest = %d, plugins = r.plugins, "new set in service");
                        src.remember(&d);
                        *lock(&shared.source.digest) = d.clone();
                        shared.source.offline.store(false, Relaxed);
                        shared.source.updates.fetch_add(1, Relaxed);
                        current = d;
                    }
                    Ok(Err(e)) => failed(
                        &shared,
                        &src,
                        &format!("set {d} refused: {e}; {current} keeps serving"),
                    ),
                    Err(e) => failed(&shared, &src, &format!("set {d}: the load panicked: {e}")),
                }
            }
            Err(e) => failed(&shared, &src, &format!("{e}; {current} keeps serving")),
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn failed(shared: &Shared, src: &OciSource, why: &str) {
    tracing::error!(source = %src.spec, "{why}");
    shared.source.failures.fetch_add(1, Relaxed);
    *lock(&shared.source.last_error) = Some(why.to_string());
}
