//! The plugin contract and the plugin chain.
//!
//! Every plugin, whatever it is written in, has one lifecycle: `init(config)`
//! once per load, `apply(ctx)` per query, `destroy()` once on unload. Compiled
//! DSL policies are the first kind ([`DslPlugin`]); Lua and WASM plugins
//! implement the same trait.

use crate::query::QueryCtx;
use dnspolicy_compiler::{check, Policy, Verdict};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a plugin decided for one query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No decision: the next plugin gets the query.
    Pass,
    /// This verdict answers the query. `rule` names what decided, for
    /// metrics and logs (a rule name, or the plugin's own label).
    Decide {
        /// What to do.
        verdict: Verdict,
        /// Index into [`Plugin::rule_names`] of the deciding rule.
        rule: Option<usize>,
    },
    /// Answer with exactly these records (a script's `add_record`).
    Records(Vec<hickory_proto::rr::Record>),
}

/// A plugin failed to load or initialise.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The source does not compile or check; the text holds the rendered diagnostics.
    #[error("{path} does not check:\n{diagnostics}")]
    Check {
        /// The file.
        path: PathBuf,
        /// Rendered diagnostics.
        diagnostics: String,
    },
    /// The metadata file is invalid.
    #[error("{path}: invalid metadata: {reason}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A WASM module that cannot be a plugin: it does not compile, breaks
    /// the ABI, or fails to start.
    #[error("{path}: {reason}")]
    Module {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the import, export or step.
        reason: String,
    },
}

/// The plugin contract. `init` and `destroy` are called once per load and
/// unload of the plugin; a plugin that keeps several interpreter states
/// (Lua) runs the script's own `init` in each state it makes.
pub trait Plugin: Send + Sync {
    /// The plugin's name (its file name without extension, or from metadata).
    fn name(&self) -> &str;
    /// `dsl`, `lua` or `wasm`.
    fn kind(&self) -> &'static str;
    /// Called once after loading, with the `config` of the metadata file
    /// (`null` when absent).
    fn init(&mut self, config: &serde_json::Value) -> Result<(), PluginError>;
    /// Decides for one query.
    fn apply(&self, ctx: &mut QueryCtx<'_>) -> Decision;
    /// Called once when the plugin is unloaded.
    fn destroy(&mut self);
    /// Names of the plugin's rules, for per-rule metrics (may be empty).
    fn rule_names(&self) -> &[String] {
        &[]
    }
    /// Failures so far, by reason (`error`, `budget`, `memory`), for
    /// `/metrics`. Plugins that cannot fail report none.
    fn failures(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Context fields the plugin reads (bits of [`dnspolicy_compiler::Field`]);
    /// the server fills only what some plugin needs. All by default.
    fn fields_used(&self) -> u32 {
        u32::MAX
    }
}

/// A compiled dnspolicy policy as a plugin.
pub struct DslPlugin {
    name: String,
    policy: Policy,
    rules: Vec<String>,
    fields: u32,
}

impl DslPlugin {
    /// Compiles `src`; `path` is used in diagnostics.
    pub fn compile(name: &str, src: &str, path: &Path) -> Result<DslPlugin, PluginError> {
        let checked = check(src);
        let Some(policy) = checked.policy else {
            let file = path.display().to_string();
            let diagnostics =
                dnspolicy_compiler::diagnostics::render(&checked.diagnostics, &file, src, false);
            return Err(PluginError::Check {
                path: path.to_path_buf(),
                diagnostics,
            });
        };
        let rules = policy.rules.iter().map(|r| r.name.clone()).collect();
        let fields = policy.fields_used();
        Ok(DslPlugin {
            name: name.to_string(),
            policy,
            rules,
            fields,
        })
    }
}

impl Plugin for DslPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "dsl"
    }

    fn init(&mut self, _config: &serde_json::Value) -> Result<(), PluginError> {
        Ok(())
    }

    fn apply(&self, ctx: &mut QueryCtx<'_>) -> Decision {
        ctx.fill(self.fields);
        let eval = self.policy.eval(ctx.policy_ctx());
        ctx.note_fields_read(eval.fields_read);
        ctx.note_missing(eval.missing_reads);
        match eval.verdict {
            None | Some(Verdict::Pass) => Decision::Pass,
            Some(verdict) => Decision::Decide {
                verdict,
                rule: eval.rule,
            },
        }
    }

    fn destroy(&mut self) {}

    fn rule_names(&self) -> &[String] {
        &self.rules
    }

    fn fields_used(&self) -> u32 {
        self.fields
    }
}

/// The metadata file beside a plugin (`NAME.yaml`). Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Display name (default: the file name without extension).
    pub name: Option<String>,
    /// Version string, shown in `/plugins`.
    pub version: Option<String>,
    /// `dsl`, `lua` or `wasm` (default: from the extension).
    pub kind: Option<String>,
    /// Higher runs first (default 0; ties by file name).
    #[serde(default)]
    pub priority: i64,
    /// Handed to `init`.
    #[serde(default)]
    pub config: serde_json::Value,
    /// Resource limits (used by the Lua and WASM hosts).
    #[serde(default)]
    pub limits: serde_json::Value,
    /// Other plugins this one needs.
    #[serde(default)]
    pub requires: Vec<String>,
}

/// The JSON Schema of plugin metadata (`runtime/schema/plugin.schema.json`).
pub const METADATA_SCHEMA: &str = include_str!("../schema/plugin.schema.json");

fn metadata_validator() -> Option<&'static jsonschema::Validator> {
    static V: std::sync::OnceLock<Option<jsonschema::Validator>> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let schema: serde_json::Value = serde_json::from_str(METADATA_SCHEMA).ok()?;
        jsonschema::validator_for(&schema).ok()
    })
    .as_ref()
}

/// Parses a metadata file (YAML) and validates it against the shipped JSON
/// Schema. Errors name the offending field by its path, e.g.
/// `/limits/memory: 5 is less than the minimum of 1048576`.
pub fn parse_metadata(text: &str) -> Result<Metadata, String> {
    let value: serde_json::Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let value = if value.is_null() {
        serde_json::json!({})
    } else {
        value
    };
    let validator = metadata_validator().ok_or("the metadata schema does not load")?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| {
            let path = e.instance_path().to_string();
            format!("{}: {e}", if path.is_empty() { "/" } else { &path })
        })
        .collect();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

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
    /// Where it is in its life (see [`crate::lifecycle`]).
    pub state: crate::lifecycle::State,
}

impl Drop for Loaded {
    fn drop(&mut self) {
        // The last query holding the old chain is done: destroy, once.
        if let Ok(next) = self.state.on(crate::lifecycle::Event::Unload) {
            if self.state == crate::lifecycle::State::Loaded {
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
#[derive(Default)]
pub struct Chain {
    /// Loaded plugins, highest priority first.
    pub plugins: Vec<Loaded>,
    /// Files that failed to load.
    pub failed: Vec<Failed>,
    /// Union of the fields every plugin reads.
    pub fields: u32,
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
            state: crate::lifecycle::State::Registered
                .on(crate::lifecycle::Event::Load)
                .unwrap_or(crate::lifecycle::State::Loaded),
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
    pub fn decide_from(&self, start: usize, ctx: &mut QueryCtx<'_>) -> Option<(usize, Decision)> {
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

/// Whether `p` is a plugin file: a known extension, not hidden, not an
/// editor's temporary (`.swp`, `~`, `#...#`, `.tmp`).
pub fn is_plugin_file(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.starts_with('#') || name.ends_with('~') {
        return false;
    }
    matches!(
        p.extension().and_then(|e| e.to_str()),
        Some("dsl" | "lua" | "wasm" | "wat")
    )
}

/// Loads one plugin file with its metadata, and runs `init`.
pub fn load_file(path: &Path) -> Result<(Box<dyn Plugin>, Metadata), PluginError> {
    let meta_path = path.with_extension("yaml");
    let meta: Metadata = match std::fs::read_to_string(&meta_path) {
        Ok(text) => parse_metadata(&text).map_err(|reason| PluginError::Metadata {
            path: meta_path.clone(),
            reason,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Metadata::default(),
        Err(e) => return Err(PluginError::Io(meta_path, e)),
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plugin");
    let name = meta.name.clone().unwrap_or_else(|| stem.to_string());
    let version = meta.version.clone().unwrap_or_default();
    let _span = tracing::info_span!("plugin.load", plugin = %name, version = %version).entered();
    let mut plugin: Box<dyn Plugin> = match path.extension().and_then(|e| e.to_str()) {
        Some("dsl") => {
            let src = std::fs::read_to_string(path)
                .map_err(|e| PluginError::Io(path.to_path_buf(), e))?;
            Box::new(DslPlugin::compile(&name, &src, path)?)
        }
        Some("lua") => {
            let src = std::fs::read_to_string(path)
                .map_err(|e| PluginError::Io(path.to_path_buf(), e))?;
            let limits = crate::lua::Limits::from_metadata(&meta.limits).map_err(|reason| {
                PluginError::Metadata {
                    path: meta_path.clone(),
                    reason,
                }
            })?;
            Box::new(crate::lua::LuaPlugin::load(
                &name,
                &src,
                path,
                limits,
                &meta.config,
            )?)
        }
        _ => {
            let limits = crate::host::Limits::from_metadata(&meta.limits).map_err(|reason| {
                PluginError::Metadata {
                    path: meta_path.clone(),
                    reason,
                }
            })?;
            let bytes = read_module(path, limits.module_bytes)?;
            Box::new(crate::wasm::WasmPlugin::load(
                &name,
                &bytes,
                path,
                limits,
                &meta.config,
            )?)
        }
    };
    {
        let _init = tracing::info_span!("plugin.init", plugin = %name).entered();
        plugin.init(&meta.config)?;
    }
    Ok((plugin, meta))
}

/// Reads a module file, refusing one over `max` bytes before reading it.
pub fn read_module(path: &Path, max: usize) -> Result<Vec<u8>, PluginError> {
    let io = |e| PluginError::Io(path.to_path_buf(), e);
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > max as u64 {
        return Err(PluginError::Module {
            path: path.to_path_buf(),
            reason: format!(
                "module is {size} bytes; the limit is {max} (`limits.module_bytes` in its metadata)"
            ),
        });
    }
    std::fs::read(path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_files() {
        for ok in ["a.dsl", "b.lua", "c.wasm", "d.wat"] {
            assert!(is_plugin_file(Path::new(ok)), "{ok}");
        }
        for no in [
            ".hidden.dsl",
            "a.dsl~",
            "#a.dsl#",
            "a.dsl.swp",
            "a.yaml",
            "a.tmp",
            "README",
        ] {
            assert!(!is_plugin_file(Path::new(no)), "{no}");
        }
    }
}
