//! Policies in the dnspolicy language as plugins: compiled to native code
//! (Cranelift) when they load, evaluated per query from the query's own
//! data through per-worker slot buffers, so a query allocates nothing. A
//! rule the JIT does not lower runs in the interpreter, in its place.

use super::pool::WorkerSlots;
use super::{Decision, Plugin, PluginError};
use crate::dns::query::QueryCtx;
use dnspolicy_compiler::backend::jit::{JitStats, Planner, Prepared};
use dnspolicy_compiler::ir::http::{HttpInputs, HttpPart, RequestParts};
use dnspolicy_compiler::ir::Front;
use dnspolicy_compiler::{check_for_serving_with, Context, JitPolicy, Verdict};
use std::path::Path;

/// A dnspolicy policy as a plugin.
pub struct DslPlugin {
    name: String,
    jit: JitPolicy,
    rules: super::RuleNames,
    /// Per rule: marked `log` (always in the decision log).
    logged: Vec<bool>,
    fields: u32,
    scratch: WorkerSlots<Prepared>,
    /// The watcher of its set files, stopped when the plugin goes.
    live: Option<super::live::Watch>,
    /// What it reads of an HTTP request, worked out on the first request
    /// (the server's bindings are fixed for its life).
    http_inputs: std::sync::OnceLock<Result<HttpInputs, String>>,
    /// Evaluation scratch for HTTP requests, which run on any task: taken
    /// and put back, so steady traffic allocates none.
    http_scratch: std::sync::Mutex<Vec<Prepared>>,
}

impl DslPlugin {
    /// Checks and compiles `src`; `path` is used in diagnostics. A policy
    /// that does not check, or that Cranelift refuses, does not load.
    pub fn compile(
        name: &str,
        src: impl Into<String>,
        path: &Path,
    ) -> Result<DslPlugin, PluginError> {
        let t0 = std::time::Instant::now();
        let src: String = src.into();
        // Each rule is planned as soon as it is checked, and its syntax
        // freed: a 100 000-rule policy's typed rules (~70 MB) never exist
        // all at once beside the serving generation.
        let mut planner = Planner::for_serving();
        let checked = check_for_serving_with(&src, &mut |r, sets| planner.rule(r, sets));
        let checked_at = t0.elapsed();
        let Some(mut policy) = checked.policy else {
            let file = path.display().to_string();
            let diagnostics =
                dnspolicy_compiler::diagnostics::render(&checked.diagnostics, &file, &src, false);
            return Err(PluginError::Check {
                path: path.to_path_buf(),
                diagnostics,
            });
        };
        // Only diagnostics read the text: a 100 000-rule file is ~10 MB that
        // a reload would otherwise hold beside both generations.
        drop(src);
        let live = super::live::load_all(&policy, path)?;
        // Into one block reserved at its exact size, each IR name freed as
        // soon as it is copied (a 100 000-rule policy's names are ~1 MB
        // there against ~3 MB as strings); the freed names' pages go back
        // when the reload trims the heap.
        let bytes = policy.rules.iter().map(|r| r.name.len()).sum();
        let mut rules = super::RuleNames::with_capacity(policy.rules.len(), bytes);
        for r in &mut policy.rules {
            rules.push(&std::mem::take(&mut r.name));
        }
        let logged: Vec<bool> = policy.rules.iter().map(|r| r.log).collect();
        let jit =
            JitPolicy::compile_planned(policy, planner).map_err(|e| PluginError::Compile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let fields = jit.fields_used();
        tracing::info!(
            rules = rules.len(),
            check_ms = checked_at.as_millis() as u64,
            compile_ms = (t0.elapsed() - checked_at).as_millis() as u64,
            "policy compiled"
        );
        Ok(DslPlugin {
            name: name.to_string(),
            jit,
            rules,
            logged,
            fields,
            scratch: WorkerSlots::new(),
            live: super::live::watch(live),
            http_inputs: std::sync::OnceLock::new(),
            http_scratch: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// What the JIT made of the rules (compiled, constant, interpreted).
    pub fn stats(&self) -> JitStats {
        self.jit.stats()
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

    fn apply<'s>(&'s self, ctx: &mut QueryCtx<'_>) -> Decision<'s> {
        if self.jit.policy().front == Front::Http {
            return Decision::Pass;
        }
        let mut claim = self.scratch.claim(ctx.worker());
        let Ok(p) = claim.get_or_try_init(|| Ok::<_, ()>(Prepared::default())) else {
            return Decision::Pass;
        };
        let out = self.jit.eval_source(p, &mut ctx.slots());
        ctx.note_fields_read(out.fields_read);
        ctx.note_missing(out.missing_reads);
        match out.verdict {
            None => Decision::Pass,
            Some(v) if self.jit.is_pass(&v) => Decision::Pass,
            Some(verdict) => Decision::Decide {
                verdict,
                rule: out.rule,
            },
        }
    }

    fn prefetches(&self) -> bool {
        // From ~1 000 name keys the index's slots (64 KB and up) no longer
        // fit the first cache level, and with the constants, verdicts and
        // counters of as many rules the lookups start to miss further out.
        // Measured at 10 000 keys (1 MB of slots): 0.96x the static
        // answer's rate with the hints, ~0.85x without.
        self.jit.policy().front != Front::Http && self.jit.policy().index.name_keys() >= 1024
    }

    fn prefetch_name(&self, qname: &str) {
        self.jit.prefetch_name(qname);
    }

    fn prefetch_rule(&self, qname: &str) -> Option<u32> {
        self.jit.prefetch_rule(qname)
    }

    fn prefetch_verdict(&self, rule: u32) {
        self.jit.prefetch_verdict(rule);
    }

    fn destroy(&mut self) {}

    fn rule_names(&self) -> &super::RuleNames {
        &self.rules
    }

    fn logged_rules(&self) -> &[bool] {
        &self.logged
    }

    fn fields_used(&self) -> u32 {
        self.fields
    }

    fn live_sets(&self) -> Vec<super::live::Status> {
        self.live.as_ref().map(|w| w.status()).unwrap_or_default()
    }

    fn compiled(&self) -> Option<JitStats> {
        Some(self.stats())
    }

    fn front(&self) -> Front {
        self.jit.policy().front
    }

    fn decide_http(
        &self,
        req: &dyn RequestParts,
        base: &mut Context,
        bindings: &[(String, HttpPart)],
    ) -> Option<(Verdict, Option<usize>)> {
        let inputs = self
            .http_inputs
            .get_or_init(|| HttpInputs::new(self.jit.policy(), bindings));
        let inputs = match inputs {
            Ok(i) => i,
            Err(e) => {
                // Fail closed: a guard this policy cannot evaluate must not
                // let the request through to a later policy.
                tracing::warn!(plugin = %self.name, error = %e, "HTTP bindings do not fit the policy");
                return Some((
                    Verdict::Respond {
                        status: 500,
                        body: "the policy's [http.bind] does not fit it\n".into(),
                    },
                    None,
                ));
            }
        };
        let ctx = base;
        inputs.fill(ctx, req);
        let taken = self
            .http_scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let mut p = taken.unwrap_or_default();
        self.jit.refill(ctx, &mut p);
        let out = self.jit.eval_prepared(&mut p, ctx);
        let decided = out.verdict.map(|v| (v.into_owned(), out.rule));
        let mut pool = self
            .http_scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pool.len() < 64 {
            pool.push(p);
        }
        match decided {
            Some((Verdict::Pass, _)) | None => None,
            d => d,
        }
    }
}
