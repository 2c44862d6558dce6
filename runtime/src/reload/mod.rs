//! Reloading the plugin chain while the server answers.
//!
//! A reload builds the new chain off the query path, then swaps it in with
//! one atomic pointer store. Queries in flight finish on the chain they
//! started with; a plugin that left the chain gets `destroy` when the last
//! of them is done. Plugins whose file and metadata did not change are
//! reused as they are (no recompile, no second copy in memory).
//!
//! Per plugin (the default, `reload.atomic = "plugin"`): a changed file
//! that fails keeps its last good version serving (reported *stale*), a new
//! file that fails stays out, and every other change goes live in the same
//! swap. All or nothing (`reload.atomic = "set"`): any failure refuses the
//! whole new chain and the old one keeps serving. Either way the problems
//! are reported (log, `/metrics`, `/plugins`, `/readyz`) and `POST /reload`
//! answers 409.
//!
//! Triggers: `POST /reload` on the admin endpoint, SIGHUP ([`signal`]), and
//! with `--enable-hot-reload` a watcher on the plugin directory
//! ([`watcher`]; debounced, so an editor's or `cp`'s several writes become
//! one reload). [`lifecycle`] is the plugin state table every load and
//! unload steps through.
//!
//! Depends on the plugin loader and the server's shared state (it swaps
//! the chain there); the query path never waits on it.

pub mod lifecycle;
pub mod signal;
pub mod watcher;

pub use watcher::watch;

use crate::plugin::chain::ReloadMode;
use crate::plugin::Chain;
use crate::server::Shared;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Reload counters.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Reloads that went live.
    pub ok: AtomicU64,
    /// Reloads refused (the old chain kept serving).
    pub failed: AtomicU64,
    /// Duration of the last reload attempt, in microseconds.
    pub last_duration_us: AtomicU64,
    /// Why the last reload failed (cleared by a successful one).
    pub last_error: Mutex<Option<String>>,
    /// The last reloads, oldest first ([`RELOAD_HISTORY`] at most).
    history: Mutex<std::collections::VecDeque<ReloadEvent>>,
    /// Serialises reloads.
    lock: Mutex<()>,
}

/// Reloads the status page lists.
pub const RELOAD_HISTORY: usize = 20;

/// One reload, for the status page.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReloadEvent {
    /// Unix time (seconds).
    pub time: f64,
    /// Whether every plugin loaded.
    pub ok: bool,
    /// Plugins serving after it (when it went live).
    pub plugins: Option<usize>,
    /// How long it took.
    pub took_ms: u64,
    /// What failed.
    pub error: Option<String>,
}

impl ReloadStats {
    /// The last reloads, oldest first.
    pub fn history(&self) -> Vec<ReloadEvent> {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        h.iter().cloned().collect()
    }

    fn remember(&self, e: ReloadEvent) {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() == RELOAD_HISTORY {
            h.pop_front();
        }
        h.push_back(e);
    }
}

/// A reload that did not go live: the old chain keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The server runs the embedded example, which has no directory.
    #[error("no --plugin-dir: the embedded example is not reloadable")]
    NoDirectory,
    /// The plugin directory cannot be listed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Plugins that failed to load, each with its error.
    #[error("{}", .0.join("\n"))]
    Plugins(Vec<String>),
    /// Another reload panicked while holding the reload lock.
    #[error("reload lock poisoned")]
    Poisoned,
    /// The reload itself panicked (a bug); nothing was swapped.
    #[error("the reload panicked: {0}")]
    Panicked(String),
}

/// The outcome of a reload.
#[derive(Debug)]
pub struct Reloaded {
    /// Plugins in the new chain.
    pub plugins: usize,
    /// How long building it took.
    pub took: Duration,
}

impl Shared {
    /// Rebuilds the chain from the plugin directory and swaps it in.
    pub fn reload(&self) -> Result<Reloaded, ReloadError> {
        let dir = self
            .source_dir
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .or_else(|| self.plugin_dir.clone());
        self.reload_with(dir.as_deref(), self.reload_mode)
    }

    /// Loads the set in `dir` (a source's new version) whole, or refuses it
    /// and keeps the chain in service; on success later reloads read `dir`.
    pub fn reload_from_dir(&self, dir: &std::path::Path) -> Result<Reloaded, ReloadError> {
        let r = self.reload_with(Some(dir), ReloadMode::Set)?;
        *self
            .source_dir
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dir.to_path_buf());
        Ok(r)
    }

    fn reload_with(
        &self,
        dir: Option<&std::path::Path>,
        mode: ReloadMode,
    ) -> Result<Reloaded, ReloadError> {
        let _one_at_a_time = self
            .reloads
            .lock
            .lock()
            .map_err(|_| ReloadError::Poisoned)?;
        let start = Instant::now();
        // The parent of this reload's plugin.load/init/swap spans (traces).
        let span = tracing::info_span!("plugin.reload", mode = ?mode);
        let result = span.in_scope(|| self.build_and_swap(dir, mode));
        let took = start.elapsed();
        self.reloads
            .last_duration_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
        self.reloads.remember(ReloadEvent {
            time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            ok: result.is_ok(),
            plugins: result.as_ref().ok().copied(),
            took_ms: took.as_millis() as u64,
            error: result.as_ref().err().map(ToString::to_string),
        });
        match &result {
            Ok(n) => {
                self.reloads.ok.fetch_add(1, Ordering::Relaxed);
                *self
                    .reloads
                    .last_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                tracing::info!(
                    plugins = n,
                    took_ms = took.as_millis() as u64,
                    "plugin chain reloaded"
                );
            }
            Err(err) => {
                self.reloads.failed.fetch_add(1, Ordering::Relaxed);
                *self
                    .reloads
                    .last_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(err.to_string());
                tracing::error!(error = %err, "reload: not every plugin loaded; what failed keeps its last good version, or stays out");
            }
        }
        result.map(|plugins| Reloaded { plugins, took })
    }

    fn build_and_swap(
        &self,
        dir: Option<&std::path::Path>,
        mode: ReloadMode,
    ) -> Result<usize, ReloadError> {
        let dir = dir.ok_or(ReloadError::NoDirectory)?;
        let current = self.chain.load_full();
        let mut dirs = vec![(dir, false)];
        if let Some(h) = &self.http_plugin_dir {
            dirs.push((h.as_path(), true));
        }
        let chain =
            Chain::reload_dirs(&dirs, Some(&current), mode).map_err(|source| ReloadError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        drop(current);
        trim_heap();
        let problems: Vec<String> = chain
            .failed
            .iter()
            .chain(&chain.stale)
            .map(|f| f.error.clone())
            .collect();
        if !problems.is_empty() && mode == ReloadMode::Set {
            return Err(ReloadError::Plugins(problems));
        }
        let n = chain.plugins.len();
        let _span = tracing::info_span!("plugin.swap", plugins = n).entered();
        // One atomic store: a query sees the old chain or the new one, whole.
        let old = self.chain.swap(Arc::new(chain));
        retire(old);
        if problems.is_empty() {
            Ok(n)
        } else {
            // The good changes are live; what failed is reported.
            Err(ReloadError::Plugins(problems))
        }
    }
}

/// Returns freed heap pages to the system (glibc keeps them otherwise):
/// after a chain is built (compiling leaves a lot of freed memory) and
/// after one is retired.
#[allow(unsafe_code)]
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; it
    // has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Drops an old chain off the query path: waits (bounded) until the queries
/// still holding it are done, so its plugins' `destroy` never runs on a DNS
/// worker thread.
fn retire(old: Arc<Chain>) {
    let spawned = std::thread::Builder::new()
        .name("dnspolicy-retire".into())
        .spawn(move || {
            let until = Instant::now() + Duration::from_secs(60);
            while Arc::strong_count(&old) > 1 && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(old);
            // The old chain's memory goes back to the system, so RSS
            // follows what is serving across many reloads.
            trim_heap();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a thread to retire the old chain");
    }
}
