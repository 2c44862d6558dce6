//! The plugin-directory watcher behind `--enable-hot-reload` (and the HTTP
//! plugin directory beside it): changes are debounced into one reload.

use crate::server::Shared;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// There is no directory to watch.
    #[error("--enable-hot-reload needs --plugin-dir")]
    NoDirectory,
    /// The OS watcher refused.
    #[error("cannot watch the plugin directory: {0}")]
    Notify(#[from] notify::Error),
    /// The reload thread did not start.
    #[error("cannot start the reload thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Watches the plugin directory and reloads after changes settle.
/// Returns the watcher, which must be kept alive.
pub fn watch(shared: Arc<Shared>) -> Result<notify::RecommendedWatcher, WatchError> {
    use notify::Watcher;
    let dir = shared.plugin_dir.clone().ok_or(WatchError::NoDirectory)?;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if ev.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    // HTTP policies of `--http-plugin-dir` reload in the same swap.
    if let Some(h) = &shared.http_plugin_dir {
        watcher.watch(h, notify::RecursiveMode::NonRecursive)?;
    }
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
        })?;
    Ok(watcher)
}
