//! Diagnostics as plain data ([`Diagnostic`], every code in [`CODES`]),
//! and [`render`], the one module that talks to a renderer: ariadne for a
//! terminal, JSON lines for editors and scripts.
//!
//! Every layer reports through these types: the front end, the checker,
//! the backends (E0053) and the runtime's plugin checks (E0050–E0052).

mod render;

pub use render::{render, render_json, LineIndex};

use crate::syntax::span::Span;
use serde::Serialize;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The program is rejected.
    Error,
    /// The program is accepted, but probably not what was meant.
    Warning,
}

/// A span with a message, pointing at source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
}

/// One problem found in a source file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code, e.g. `E0030`; see [`CODES`].
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// One-line summary.
    pub message: String,
    /// The main location.
    pub primary: Label,
    /// Related locations (the other operand, the earlier definition, ...).
    pub secondary: Vec<Label>,
    /// How to fix it, when we can tell.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with code `code` at `span`.
    pub fn error(code: &'static str, message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            primary: Label {
                span,
                message: String::new(),
            },
            secondary: Vec::new(),
            help: None,
        }
    }

    /// A warning with code `code` at `span`.
    pub fn warning(code: &'static str, message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message, span)
        }
    }

    /// Sets the message shown at the primary span.
    pub fn with_label(mut self, message: impl Into<String>) -> Self {
        self.primary.message = message.into();
        self
    }

    /// Adds a related span.
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Adds help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Every diagnostic code with a one-line description. Codes are stable: a
/// code is never reused for a different problem.
pub const CODES: &[(&str, &str)] = &[
    ("E0001", "unexpected character"),
    ("E0002", "unterminated string literal"),
    ("E0003", "invalid escape in string literal"),
    ("E0004", "integer literal out of range"),
    ("E0005", "invalid IP address literal"),
    ("E0006", "invalid CIDR literal"),
    ("E0007", "keyword used as a variable name"),
    ("E0010", "unexpected token"),
    ("E0011", "unexpected end of file"),
    ("E0012", "ambiguous angle-bracket spelling"),
    ("E0013", "file too large"),
    ("E0020", "unknown context path"),
    ("E0021", "unknown name"),
    ("E0022", "duplicate definition"),
    ("E0023", "duplicate rule name"),
    ("E0024", "unknown function"),
    ("E0025", "wrong number of arguments"),
    ("E0026", "unknown type name"),
    ("E0027", "input declaration shadows a context path"),
    ("E0030", "mismatched types"),
    ("E0031", "conflicting types for an injected variable"),
    ("E0032", "condition is not a bool"),
    ("E0033", "literal does not convert to the required type"),
    ("E0034", "cannot infer the type of an injected variable"),
    ("E0035", "operator not defined for this type"),
    ("E0036", "list elements of different types"),
    ("E0037", "invalid regular expression"),
    ("E0038", "right side of `in` is not a list or prefix"),
    ("E0039", "wildcard name outside a set"),
    ("E0040", "unreachable statement after `then`"),
    ("E0041", "record data does not fit the record type"),
    ("E0042", "unknown record type"),
    ("E0043", "TTL out of range"),
    ("E0044", "const or set value is not a literal"),
    (
        "E0045",
        "invalid `then pool` (unknown pick, key, count or TTL)",
    ),
    ("E0046", "unknown rule flag (the one flag is `log`)"),
    (
        "E0047",
        "a policy reads or decides for both front doors (DNS and HTTP)",
    ),
    (
        "E0048",
        "invalid HTTP verdict (pool, status, header name or value, URL)",
    ),
    (
        "E0050",
        "Lua plugin does not load (syntax, sandbox, or no `apply`)",
    ),
    (
        "E0051",
        "plugin metadata (NAME.yaml) does not match the schema",
    ),
    (
        "E0052",
        "WASM plugin does not load (compile, ABI imports/exports, size)",
    ),
    ("E0053", "construct not supported by the compile target yet"),
    ("W0001", "division by a literal zero (always 0)"),
    ("W0002", "unused const or set"),
    (
        "W0003",
        "wildcard pattern in a set of strings (matches literally)",
    ),
    (
        "W0004",
        "`{x}` reads an injected variable, not the local `x`",
    ),
    (
        "W0005",
        "a rule that can never decide (an earlier rule always decides first)",
    ),
    (
        "W0006",
        "two rules of the same priority can decide for the same names",
    ),
    ("W0007", "a `when` guard that matches nothing"),
];

/// The closest candidate to `word` by edit distance, if it is close enough
/// to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + 1;
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over Unicode scalar values.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            closest("client.regoin", ["client.region", "client.ip"]),
            Some("client.region")
        );
        assert_eq!(closest("zzz", ["client.region"]), None);
    }
}
