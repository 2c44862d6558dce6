//! `--explain`: an interpreter [`Trace`] as the report people read (rules
//! tried, guards and conditions with their values, the `then` that
//! decided), with `file:line:col` positions and source snippets. The trace
//! is the data; this is its one rendering.

use super::{Evaluation, Step, Trace};
use crate::diagnostics::LineIndex;
use crate::ir::Policy;
use crate::syntax::span::Span;

/// Renders the trace of `eval` (made by [`Policy::eval_traced`]) over
/// `src`, named `file` in positions. Ends with `no rule decided` when
/// nothing decided and a note on missing values read. Empty when the
/// evaluation was not traced.
pub fn explain(policy: &Policy, eval: &Evaluation, src: &str, file: &str) -> String {
    let Some(trace) = &eval.trace else {
        return String::new();
    };
    let mut out = steps(policy, trace, src, file);
    if eval.verdict.is_none() {
        out.push_str("no rule decided\n");
    }
    if eval.missing_reads > 0 {
        out.push_str(&format!(
            "({} read(s) of missing values, which compare false)\n",
            eval.missing_reads
        ));
    }
    out
}

/// One line per step of the trace.
fn steps(policy: &Policy, trace: &Trace, src: &str, file: &str) -> String {
    let idx = LineIndex::new(src);
    let at = |s: Span| {
        let (l, c) = idx.line_col(s.start);
        format!("{file}:{l}:{c}")
    };
    let mut out = String::new();
    for s in &trace.steps {
        match s {
            Step::IndexSkipped(n) => {
                let rules = if *n == 1 { "rule" } else { "rules" };
                out.push_str(&format!(
                    "({n} {rules} skipped by the rule index: their indexed condition cannot hold)\n"
                ));
            }
            Step::Rule(i) => {
                let r = &policy.rules[*i];
                let kind = if r.implicit { " (bare statements)" } else { "" };
                out.push_str(&format!(
                    "rule {}{kind}, priority {}, at {}\n",
                    r.name,
                    r.priority,
                    at(r.span)
                ));
            }
            Step::Guard { span, result } => {
                out.push_str(&format!(
                    "  when {}  => {result}  ({})\n",
                    snippet(src, *span),
                    at(*span)
                ));
            }
            Step::Cond { span, result } => {
                out.push_str(&format!(
                    "  if {}  => {result}  ({})\n",
                    snippet(src, *span),
                    at(*span)
                ));
            }
            Step::Decided { span } => {
                out.push_str(&format!(
                    "  decided by: {}  ({})\n",
                    snippet(src, *span),
                    at(*span)
                ));
            }
            Step::MissingValue { span } => {
                out.push_str(&format!(
                    "  {}  ({}): cannot decide (a value it needs is missing, or a TTL or address is out of range); the rule passes\n",
                    snippet(src, *span),
                    at(*span)
                ));
            }
        }
    }
    out
}

/// The source of `span` on one line, cut to 72 characters.
fn snippet(src: &str, span: Span) -> String {
    let text: String = span
        .text(src)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if text.chars().count() > 72 {
        format!("{}...", text.chars().take(69).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use crate::{compile, Context, Field, Value};

    #[test]
    fn explains_the_deciding_rule() {
        let src = "rule r priority 5 when {query.type} == \"A\" { then nxdomain }\n";
        let p = compile(src).unwrap();
        let mut ctx = Context::default();
        ctx.set(Field::QueryType, Value::Qtype(1));
        let text = super::explain(&p, &p.eval_traced(&ctx), src, "f.dsl");
        assert_eq!(
            text,
            "rule r, priority 5, at f.dsl:1:1\n  when {query.type} == \"A\"  => true  (f.dsl:1:24)\n  decided by: then nxdomain  (f.dsl:1:46)\n"
        );
        let none = super::explain(&p, &p.eval_traced(&Context::default()), src, "f.dsl");
        assert!(
            none.ends_with("no rule decided\n(1 read(s) of missing values, which compare false)\n"),
            "{none}"
        );
    }
}
