//! SIGHUP reloads the plugin directory, as daemons do.

use crate::server::Shared;
use std::sync::Arc;

/// Reloads on every SIGHUP, for as long as the runtime runs. A reload runs
/// off the async workers (it compiles); a refused one is logged and
/// counted like any other.
#[cfg(unix)]
pub fn reload_on_sighup(shared: Arc<Shared>) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let s = shared.clone();
            let _ = tokio::task::spawn_blocking(move || s.reload()).await;
        }
    });
    Ok(())
}

/// No SIGHUP off Unix: reload with `POST /reload` or the watcher.
#[cfg(not(unix))]
pub fn reload_on_sighup(_shared: Arc<Shared>) -> std::io::Result<()> {
    Ok(())
}
