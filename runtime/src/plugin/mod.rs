//! The plugin contract and the plugin chain.
//!
//! Every plugin, whatever it is written in, has one lifecycle: `init(config)`
//! once per load, `apply(ctx)` per query, `destroy()` once on unload. Compiled
//! DSL policies are the first kind ([`DslPlugin`]); Lua and WASM plugins
//! implement the same trait.
//!
//! Here: the trait and [`Decision`]; the [`chain`] of loaded plugins;
//! [`load`]ing a file with its [`metadata`]; [`host`], the per-call view of
//! a query that Lua and WASM decide through (one API, two languages);
//! [`pool`], the instances those two keep; the kinds ([`dsl`], [`lua`],
//! [`wasm`]); and [`check`], what `dnspolicy check` says of plugin files.
//!
//! Depends on [`crate::dns`] (the query context, answers) and
//! [`crate::geo`]; never on the server, reload or admin.

pub mod chain;
pub mod check;
pub mod dsl;
pub mod host;
pub mod live;
pub mod load;
pub mod lua;
pub mod metadata;
pub mod names;
pub mod pool;
pub mod stats;
pub mod wasm;

pub use chain::{Chain, Failed, Loaded};
pub use dsl::DslPlugin;
pub use load::{is_plugin_file, load_file, read_module};
pub use metadata::{parse_metadata, Metadata, METADATA_SCHEMA};
pub use names::RuleNames;
pub use stats::PluginStats;

use crate::dns::query::QueryCtx;
use dnspolicy_compiler::Verdict;
use std::borrow::Cow;
use std::path::PathBuf;

/// What a plugin decided for one query. A compiled policy's verdicts are
/// borrowed from its table (`'a` is the plugin's life): deciding copies
/// nothing, and the server knows a verdict it has answered before by its
/// address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<'a> {
    /// No decision: the next plugin gets the query.
    Pass,
    /// This verdict answers the query. `rule` names what decided, for
    /// metrics and logs (a rule name, or the plugin's own label).
    Decide {
        /// What to do.
        verdict: Cow<'a, Verdict>,
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
    /// The policy checks but Cranelift refused to compile it (a bug, and
    /// reported as such; the previous version keeps serving on reload).
    #[error("{path}: cannot compile: {reason}")]
    Compile {
        /// The file.
        path: PathBuf,
        /// Cranelift's message.
        reason: String,
    },
    /// The metadata file is invalid.
    #[error("{}: invalid metadata: {source}", path.display())]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong.
        source: metadata::MetadataError,
    },
    /// A Lua script that cannot be a plugin: it does not load, its
    /// top-level code or `init` fails, or it defines no `apply`.
    #[error("{}: {source}", path.display())]
    Lua {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: lua::LuaError,
    },
    /// A WASM module that cannot be a plugin: it does not compile, breaks
    /// the ABI, or fails to start.
    #[error("{}: {source}", path.display())]
    Wasm {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the import, export or step.
        source: wasm::WasmError,
    },
    /// A policy's file-backed set (`set x = file("...")`) cannot be read
    /// or has a bad line.
    #[error("{}: set `{set}`: {reason}", path.display())]
    LiveSet {
        /// The data file.
        path: PathBuf,
        /// The set's name.
        set: String,
        /// What is wrong (`line N: ...` for a bad line).
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
    fn apply<'s>(&'s self, ctx: &mut QueryCtx<'_>) -> Decision<'s>;
    /// Whether the prefetch hints below are worth their cost: the data a
    /// lookup reads is far bigger than the caches.
    fn prefetches(&self) -> bool {
        false
    }
    /// Hints before a batch of queries is decided, each step run over the
    /// whole batch before the next (see
    /// `dnspolicy_compiler::JitPolicy::prefetch_name`): start loading what
    /// looking `qname` up reads first. No effect on decisions.
    fn prefetch_name(&self, _qname: &str) {}
    /// Second step: the rule `qname` likely leads to, its data loading.
    fn prefetch_rule(&self, _qname: &str) -> Option<u32> {
        None
    }
    /// Third step: start loading what rule `rule` decides.
    fn prefetch_verdict(&self, _rule: u32) {}
    /// Called once when the plugin is unloaded.
    fn destroy(&mut self);
    /// Names of the plugin's rules, for per-rule metrics (may be empty).
    fn rule_names(&self) -> &RuleNames {
        &names::NO_RULES
    }
    /// Per rule (as [`Plugin::rule_names`]): marked `log`, so its
    /// decisions always go to the decision log (may be empty).
    fn logged_rules(&self) -> &[bool] {
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
    /// For a policy compiled to native code: how many rules are compiled,
    /// constant or left to the interpreter (shown by `/plugins`).
    fn compiled(&self) -> Option<dnspolicy_compiler::backend::jit::JitStats> {
        None
    }
    /// A policy's file-backed sets (`set x = file("...")`) and their state
    /// (shown by `/plugins` and `/metrics`).
    fn live_sets(&self) -> Vec<live::Status> {
        Vec::new()
    }
    /// The front door the plugin is written for: DSL policies say so by
    /// what they read and decide (`http.*`, `route`); Lua and WASM plugins
    /// serve DNS.
    fn front(&self) -> dnspolicy_compiler::ir::Front {
        dnspolicy_compiler::ir::Front::Dns
    }
    /// Decides for one HTTP request: `base` holds the client's fields, the
    /// plugin adds (overwrites) what it reads of `req` (its `http.*` paths and the
    /// variables `bindings` ties to request parts). `None`: no rule decided.
    fn decide_http(
        &self,
        _req: &dyn dnspolicy_compiler::ir::http::RequestParts,
        _base: &mut dnspolicy_compiler::Context,
        _bindings: &[(String, dnspolicy_compiler::ir::http::HttpPart)],
    ) -> Option<(dnspolicy_compiler::Verdict, Option<usize>)> {
        None
    }
}
