//! Policies in the dnspolicy language as plugins.

use super::{Decision, Plugin, PluginError};
use crate::dns::query::QueryCtx;
use dnspolicy_compiler::{check, Policy, Verdict};
use std::path::Path;

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
