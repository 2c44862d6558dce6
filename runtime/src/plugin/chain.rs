//! The chain: loaded plugins in the order they run, their counters and
//! lifecycle states, and the files that failed to load.

use super::load::{is_plugin_file, load_file};
use super::{Decision, Plugin};
use crate::dns::query::QueryCtx;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Per-plugin counters.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Queries this plugin decided.
    pub decided: AtomicU64,
    /// Decisions per rule, indexed like [`Plugin::rule_names`].
    pub rules: Vec<AtomicU64>,
}

/// A loaded plugin in the chain.
pub struct Loaded {
    /// The plugin.
    pub plugin: Box<dyn Plugin>,
    /// From metadata or default.
    pub priority: i64,
    /// From metadata.
    pub version: String,
    /// Where it came from.
    pub path: PathBuf,
    /// Counters.
    pub stats: PluginStats,
    /// Where it is in its life (see [`crate::reload::lifecycle`]).
    pub state: crate::reload::lifecycle::State,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // The last query holding the old chain is done: destroy, once.
        if let Ok(next) = self.state.on(crate::reload::lifecycle::Event::Unload) {
            if self.state == crate::reload::lifecycle::State::Loaded {
                let _span = tracing::info_span!("plugin.destroy", plugin = %self.plugin.name(), version = %self.version).entered();
                self.plugin.destroy();
            }
            self.state = next;
        }
    }
}

/// A plugin file that failed to load (shown by `/plugins`).
#[derive(Debug, Clone)]
pub struct Failed {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: String,
}

/// The plugins in the order they run.
pub struct Chain {
    /// Loaded plugins, highest priority first.
    pub plugins: Vec<Loaded>,
    /// Files that failed to load.
    pub failed: Vec<Failed>,
    /// Union of the fields every plugin reads.
    pub fields: u32,
    /// Distinct for every chain made: what the server's per-worker caches
    /// of answers are valid for.
    pub generation: u64,
}

impl Default for Chain {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Chain {
            plugins: Vec::new(),
            failed: Vec::new(),
            fields: 0,
            generation: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl Chain {
    /// Builds a chain from plugins already made (the embedded default, tests).
    pub fn from_plugins(plugins: Vec<(Box<dyn Plugin>, i64, PathBuf)>) -> Chain {
        let mut c = Chain::default();
        for (plugin, priority, path) in plugins {
            c.push(plugin, priority, String::new(), path);
        }
        c.sort();
        c
    }

    fn push(&mut self, plugin: Box<dyn Plugin>, priority: i64, version: String, path: PathBuf) {
        self.fields |= plugin.fields_used();
        let rules = plugin
            .rule_names()
            .iter()
            .map(|_| AtomicU64::new(0))
            .collect();
        self.plugins.push(Loaded {
            plugin,
            priority,
            version,
            path,
            stats: PluginStats {
                decided: AtomicU64::new(0),
                rules,
            },
            // A plugin enters the chain compiled and initialised: the table's
            // Registered → Loaded step (its unit test keeps it allowed).
            state: crate::reload::lifecycle::State::Registered
                .on(crate::reload::lifecycle::Event::Load)
                .unwrap_or(crate::reload::lifecycle::State::Loaded),
        });
    }

    fn sort(&mut self) {
        self.plugins.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then_with(|| a.path.cmp(&b.path))
        });
    }

    /// Loads every plugin in `dir`. A file that fails is recorded in
    /// [`Chain::failed`] and skipped; the others load. An empty directory is
    /// a valid, empty chain.
    pub fn load_dir(dir: &Path) -> std::io::Result<Chain> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_plugin_file(p))
            .collect();
        files.sort();
        let mut c = Chain::default();
        for path in files {
            match load_file(&path) {
                Ok((plugin, meta)) => {
                    c.push(
                        plugin,
                        meta.priority,
                        meta.version.unwrap_or_default(),
                        path,
                    );
                }
                Err(e) => {
                    tracing::error!(plugin = %path.display(), error = %e, "plugin failed to load");
                    c.failed.push(Failed {
                        path,
                        error: e.to_string(),
                    });
                }
            }
        }
        c.sort();
        Ok(c)
    }

    /// Runs the chain from plugin `start` on (0 for a new query; later
    /// after a decision that does not apply, such as `truncate` over TCP):
    /// the first plugin that decides wins.
    pub fn decide_from(
        &self,
        start: usize,
        ctx: &mut QueryCtx<'_>,
    ) -> Option<(usize, Decision<'_>)> {
        for (i, p) in self.plugins.iter().enumerate().skip(start) {
            let d = p.plugin.apply(ctx);
            match &d {
                Decision::Pass => {}
                Decision::Decide { rule, .. } => {
                    p.stats.decided.fetch_add(1, Ordering::Relaxed);
                    if let Some(counter) = rule.and_then(|r| p.stats.rules.get(r)) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    return Some((i, d));
                }
                Decision::Records(_) => {
                    p.stats.decided.fetch_add(1, Ordering::Relaxed);
                    return Some((i, d));
                }
            }
        }
        None
    }
}
