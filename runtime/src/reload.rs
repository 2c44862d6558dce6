//! Reloading the plugin chain while the server answers.
//!
//! A reload builds the whole new chain off the query path (every plugin
//! compiled, checked and `init`ed), then swaps it in with one atomic
//! pointer store. Queries in flight finish on the chain they started with;
//! the old plugins get `destroy` when the last of them is done. If any file
//! of the directory fails to load, nothing changes: the old chain keeps
//! serving and the error is reported (log, `/metrics`, `/plugins`).
//!
//! Triggers: `POST /reload` on the admin endpoint, SIGHUP, and with
//! `--enable-hot-reload` a watcher on the plugin directory (debounced, so
//! an editor's or `cp`'s several writes become one reload).

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
    /// Serialises reloads.
    lock: Mutex<()>,
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
    pub fn reload(&self) -> Result<Reloaded, String> {
        let _one_at_a_time = self
            .reloads
            .lock
            .lock()
            .map_err(|_| "reload lock poisoned".to_string())?;
        let start = Instant::now();
        let result = self.build_and_swap();
        let took = start.elapsed();
        self.reloads
            .last_duration_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
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
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(err.clone());
                tracing::error!(error = %err, "reload refused; the previous plugins keep serving");
            }
        }
        result.map(|plugins| Reloaded { plugins, took })
    }

    fn build_and_swap(&self) -> Result<usize, String> {
        let dir = self
            .plugin_dir
            .as_deref()
            .ok_or("no --plugin-dir: the embedded example is not reloadable")?;
        let chain =
            Chain::load_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if !chain.failed.is_empty() {
            let why: Vec<String> = chain.failed.iter().map(|f| f.error.clone()).collect();
            return Err(why.join("\n"));
        }
        let n = chain.plugins.len();
        let _span = tracing::info_span!("plugin.swap", plugins = n).entered();
        // One atomic store: a query sees the old chain or the new one, whole.
        let old = self.chain.swap(Arc::new(chain));
        retire(old);
        Ok(n)
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
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a thread to retire the old chain");
    }
}

/// Watches the plugin directory and reloads after changes settle.
/// Returns the watcher, which must be kept alive.
pub fn watch(shared: Arc<Shared>) -> Result<notify::RecommendedWatcher, String> {
    use notify::Watcher;
    let dir = shared
        .plugin_dir
        .clone()
        .ok_or("--enable-hot-reload needs --plugin-dir")?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            let _ = tx.send(());
        }
    })
    .map_err(|e| e.to_string())?;
    watcher
        .watch(&dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("dnspolicy-reload".into())
        .spawn(move || {
            // Debounce: wait until the directory has been quiet for 150 ms,
            // but never more than 2 s while changes keep coming.
            while rx.recv().is_ok() {
                let first = Instant::now();
                while first.elapsed() < Duration::from_secs(2)
                    && rx.recv_timeout(Duration::from_millis(150)).is_ok()
                {}
                let s = shared.clone();
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || s.reload()))
                    .is_err()
                {
                    tracing::error!("reload panicked; the previous plugins keep serving");
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(watcher)
}
