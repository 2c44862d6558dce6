//! The chain: loaded plugins in the order they run, their counters and
//! lifecycle states, the files that failed to load, and the plugins that
//! kept their last good version because their new one failed.
//!
//! Plugins are shared between chains (`Arc<Loaded>`): a reload reuses every
//! plugin whose file and metadata did not change, and keeps a plugin's last
//! good version when its new one fails (per-plugin mode), so one broken
//! file never blocks the others and an unchanged 100 000-rule policy is
//! neither recompiled nor held twice.

use super::load::{is_plugin_file, load_file, source_hash};
use super::stats::PluginStats;
use super::{Decision, Plugin};
use crate::dns::query::QueryCtx;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    /// A hash of the file and its metadata as loaded (0: not from a file).
    pub source: u64,
    /// Serves the HTTP front door (an HTTP policy, or any policy from the
    /// HTTP plugin directory); DNS queries never reach it.
    pub http: bool,
    /// The plugin asked for the batch prefetch steps
    /// ([`Plugin::prefetches`], asked once at load, not per batch).
    pub prefetch: bool,
}

impl Loaded {
    /// A plugin entering a chain, compiled and initialised.
    pub fn new(
        plugin: Box<dyn Plugin>,
        priority: i64,
        version: String,
        path: PathBuf,
        source: u64,
    ) -> Loaded {
        let http = plugin.front() == dnspolicy_compiler::ir::Front::Http;
        let stats = PluginStats::new(plugin.rule_names().len());
        let prefetch = plugin.prefetches();
        Loaded {
            plugin,
            priority,
            version,
            path,
            stats,
            // A plugin enters the chain compiled and initialised: the table's
            // Registered → Loaded step (its unit test keeps it allowed).
            state: crate::reload::lifecycle::State::Registered
                .on(crate::reload::lifecycle::Event::Load)
                .unwrap_or(crate::reload::lifecycle::State::Loaded),
            source,
            http,
            prefetch,
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
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

/// How a reload treats a file that fails to load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadMode {
    /// Each plugin on its own (the default): a plugin whose new version
    /// fails keeps its last good one (reported stale) and a new file that
    /// fails stays out, while the other changes go live in the same swap.
    #[default]
    Plugin,
    /// All or nothing: any failure refuses the whole new set (fleets that
    /// roll out sets as a unit).
    Set,
}

/// The plugins in the order they run.
pub struct Chain {
    /// Loaded plugins, highest priority first.
    pub plugins: Vec<Arc<Loaded>>,
    /// Files that failed to load (and have no last good version serving).
    pub failed: Vec<Failed>,
    /// Plugins serving their last good version because the file's new
    /// version failed to load: the file and why.
    pub stale: Vec<Failed>,
    /// Union of the fields every plugin reads.
    pub fields: u32,
    /// Whether a plugin gains from [`Chain::prefetch`] (a rule index far
    /// bigger than the caches).
    pub prefetch: bool,
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
            stale: Vec::new(),
            fields: 0,
            prefetch: false,
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
        let loaded = Loaded::new(plugin, priority, version, path, 0);
        self.push_loaded(Arc::new(loaded));
    }

    fn push_loaded(&mut self, loaded: Arc<Loaded>) {
        if !loaded.http {
            self.fields |= loaded.plugin.fields_used();
            self.prefetch |= loaded.prefetch;
        }
        self.plugins.push(loaded);
    }

    /// Whether any plugin serves HTTP requests.
    pub fn has_http(&self) -> bool {
        self.plugins.iter().any(|p| p.http)
    }

    /// Adds another chain's plugins (the HTTP directory beside the
    /// embedded example).
    pub fn extend(&mut self, other: Chain) {
        for l in other.plugins {
            self.push_loaded(l);
        }
        self.failed.extend(other.failed);
        self.stale.extend(other.stale);
        self.sort();
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
        Chain::reload_dir(dir, None, ReloadMode::Plugin)
    }

    /// The next chain for `dir`, made from `old` where possible: a plugin
    /// whose file and metadata are unchanged is reused as it is; a changed
    /// one is loaded again, and if that fails keeps its old version
    /// (stale) in [`ReloadMode::Plugin`]. The caller refuses the result in
    /// [`ReloadMode::Set`] when anything failed.
    pub fn reload_dir(dir: &Path, old: Option<&Chain>, mode: ReloadMode) -> std::io::Result<Chain> {
        Chain::reload_dirs(&[(dir, false)], old, mode)
    }

    /// [`Chain::reload_dir`] over several directories; those marked `true`
    /// hold policies that all serve HTTP (`--http-plugin-dir`): a policy
    /// there that is written for DNS does not load.
    pub fn reload_dirs(
        dirs: &[(&Path, bool)],
        old: Option<&Chain>,
        mode: ReloadMode,
    ) -> std::io::Result<Chain> {
        let list = |d: &Path| -> std::io::Result<Vec<PathBuf>> {
            let mut files: Vec<PathBuf> = std::fs::read_dir(d)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && is_plugin_file(p))
                .collect();
            files.sort();
            Ok(files)
        };
        let mut files: Vec<(PathBuf, bool)> = Vec::new();
        for (d, http) in dirs {
            files.extend(list(d)?.into_iter().map(|p| (p, *http)));
        }
        let previous: HashMap<&Path, &Arc<Loaded>> = old
            .map(|c| c.plugins.iter().map(|l| (l.path.as_path(), l)).collect())
            .unwrap_or_default();
        let mut c = Chain::default();
        for (path, http_only) in files {
            let hash = source_hash(&path);
            let before = previous.get(path.as_path());
            if let (Some(l), Some(h)) = (before, hash) {
                if l.source == h && h != 0 {
                    c.push_loaded(Arc::clone(l));
                    continue;
                }
            }
            let loaded = load_file(&path).and_then(|(plugin, meta)| {
                if http_only && plugin.front() == dnspolicy_compiler::ir::Front::Dns {
                    return Err(super::PluginError::Compile {
                        path: path.clone(),
                        reason: "a DNS policy (it reads `query.*` or gives DNS verdicts) in the HTTP plugin directory".into(),
                    });
                }
                Ok((plugin, meta))
            });
            match loaded {
                Ok((plugin, meta)) => {
                    let mut loaded = Loaded::new(
                        plugin,
                        meta.priority,
                        meta.version.unwrap_or_default(),
                        path,
                        hash.unwrap_or(0),
                    );
                    loaded.http |= http_only;
                    c.push_loaded(Arc::new(loaded));
                }
                Err(e) => {
                    tracing::error!(plugin = %path.display(), error = %e, "plugin failed to load");
                    let failed = Failed {
                        path,
                        error: e.to_string(),
                    };
                    match (before, mode) {
                        (Some(l), ReloadMode::Plugin) => {
                            tracing::warn!(plugin = %failed.path.display(), "keeping the last good version");
                            c.push_loaded(Arc::clone(l));
                            c.stale.push(failed);
                        }
                        _ => c.failed.push(failed),
                    }
                }
            }
        }
        c.sort();
        Ok(c)
    }

    /// What is wrong with this chain, for `/readyz` and logs: failed and
    /// stale plugins with their errors (empty when all is well).
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .failed
            .iter()
            .map(|f| format!("failed: {}: {}", f.path.display(), first_line(&f.error)))
            .collect();
        out.extend(self.stale.iter().map(|f| {
            format!(
                "stale (last good version serving): {}: {}",
                f.path.display(),
                first_line(&f.error)
            )
        }));
        out
    }

    /// Before a batch of queries is decided: the prefetch steps of each
    /// DNS plugin over all their question names (see
    /// [`Plugin::prefetch_name`]), and the line of the rule's counter this
    /// thread will bump. `rules` is scratch, as long as `names`.
    pub fn prefetch(&self, names: &[String], rules: &mut [Option<u32>]) {
        for p in self.plugins.iter().filter(|p| !p.http && p.prefetch) {
            for name in names {
                p.plugin.prefetch_name(name);
            }
            for (name, rule) in names.iter().zip(rules.iter_mut()) {
                *rule = p.plugin.prefetch_rule(name);
            }
            for &rule in rules.iter().take(names.len()).flatten() {
                p.plugin.prefetch_verdict(rule);
                p.stats.prefetch(rule);
            }
        }
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
            if p.http {
                continue;
            }
            let d = p.plugin.apply(ctx);
            match &d {
                Decision::Pass => {}
                Decision::Decide { rule, .. } => {
                    p.stats.count(*rule);
                    return Some((i, d));
                }
                Decision::Records(_) => {
                    p.stats.count(None);
                    return Some((i, d));
                }
            }
        }
        None
    }
}
