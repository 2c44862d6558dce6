//! Diagnostics as plain data, and the one module that renders them: with
//! ariadne for a terminal, or as JSON lines for editors and scripts.

use crate::span::Span;
use ariadne::{Color, Config, IndexType, Label as ALabel, Report, ReportKind, Source};
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
];

/// Line/column lookup for one source text. Lines and columns are 1-based;
/// columns count Unicode scalar values.
pub struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes the line starts of `src`.
    pub fn new(src: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { src, starts }
    }

    /// `(line, column)` of byte offset `at`, both 1-based.
    pub fn line_col(&self, at: u32) -> (usize, usize) {
        let at = (at as usize).min(self.src.len());
        let line = self.starts.partition_point(|&s| s <= at) - 1;
        let start = self.starts[line];
        let col = self
            .src
            .get(start..at)
            .map_or(at - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Renders diagnostics for a terminal with ariadne. `color` should be true
/// only when the output is a TTY.
pub fn render(diags: &[Diagnostic], file: &str, src: &str, color: bool) -> String {
    let mut out = Vec::new();
    for d in diags {
        let kind = match d.severity {
            Severity::Error => ReportKind::Error,
            Severity::Warning => ReportKind::Warning,
        };
        let primary_color = match d.severity {
            Severity::Error => Color::Red,
            Severity::Warning => Color::Yellow,
        };
        let clamp = |s: Span| -> std::ops::Range<usize> {
            let start = (s.start as usize).min(src.len());
            let end = (s.end as usize).clamp(start, src.len());
            start..end
        };
        let mut report = Report::build(kind, (file, clamp(d.primary.span)))
            .with_config(
                Config::default()
                    .with_color(color)
                    .with_index_type(IndexType::Byte)
                    .with_compact(false),
            )
            .with_code(d.code)
            .with_message(&d.message)
            .with_label({
                let l = ALabel::new((file, clamp(d.primary.span)))
                    .with_color(primary_color)
                    .with_order(0);
                if d.primary.message.is_empty() {
                    l
                } else {
                    l.with_message(&d.primary.message)
                }
            });
        for (i, s) in d.secondary.iter().enumerate() {
            report = report.with_label(
                ALabel::new((file, clamp(s.span)))
                    .with_message(&s.message)
                    .with_color(Color::Blue)
                    .with_order(i as i32 + 1),
            );
        }
        if let Some(h) = &d.help {
            report = report.with_help(h);
        }
        // Writing to a Vec cannot fail.
        let _ = report.finish().write((file, Source::from(src)), &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Serialize)]
struct JsonRange {
    start: u32,
    end: u32,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    #[serde(flatten)]
    range: JsonRange,
    message: &'a str,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    file: &'a str,
    code: &'a str,
    severity: Severity,
    message: &'a str,
    #[serde(flatten)]
    range: JsonRange,
    label: &'a str,
    related: Vec<JsonLabel<'a>>,
    help: Option<&'a str>,
}

/// Renders each diagnostic as one JSON object per line (JSON Lines):
/// `file`, `code`, `severity`, `message`, byte range `start`/`end`,
/// 1-based `line`/`column`/`end_line`/`end_column`, the primary `label`,
/// `related` spans with messages, and `help`.
pub fn render_json(diags: &[Diagnostic], file: &str, src: &str) -> String {
    let idx = LineIndex::new(src);
    let range = |s: Span| {
        let (line, column) = idx.line_col(s.start);
        let (end_line, end_column) = idx.line_col(s.end);
        JsonRange {
            start: s.start,
            end: s.end,
            line,
            column,
            end_line,
            end_column,
        }
    };
    let mut out = String::new();
    for d in diags {
        let j = JsonDiagnostic {
            file,
            code: d.code,
            severity: d.severity,
            message: &d.message,
            range: range(d.primary.span),
            label: &d.primary.message,
            related: d
                .secondary
                .iter()
                .map(|l| JsonLabel {
                    range: range(l.span),
                    message: &l.message,
                })
                .collect(),
            help: d.help.as_deref(),
        };
        // Serialising plain structs of strings and integers cannot fail.
        if let Ok(line) = serde_json::to_string(&j) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

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
    fn line_columns() {
        let idx = LineIndex::new("ab\ncdé\nf");
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(3), (2, 1));
        assert_eq!(idx.line_col(7), (2, 4));
        assert_eq!(idx.line_col(8), (3, 1));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            closest("client.regoin", ["client.region", "client.ip"]),
            Some("client.region")
        );
        assert_eq!(closest("zzz", ["client.region"]), None);
    }
}
