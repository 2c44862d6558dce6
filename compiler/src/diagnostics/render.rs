//! Rendering: diagnostics for people (ariadne, with source excerpts) and
//! for tools (one JSON object per line). Line and column exist only here.

use super::{Diagnostic, Severity};
use crate::syntax::span::Span;
use ariadne::{Color, Config, IndexType, Label as ALabel, Report, ReportKind, Source};
use serde::Serialize;

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
}
