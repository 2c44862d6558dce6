//! Byte-offset spans. Line and column exist only when rendering (see
//! [`crate::diagnostics::LineIndex`]), so the front end never pays for them.

use std::ops::Range;

/// A half-open byte range `[start, end)` in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Span {
    /// First byte of the span.
    pub start: u32,
    /// One past the last byte of the span.
    pub end: u32,
}

impl Span {
    /// A span from `start` to `end` (byte offsets).
    pub fn new(start: u32, end: u32) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// The span as a `usize` range, for slicing the source.
    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    /// The text this span covers in `src` (empty if out of bounds).
    pub fn text(self, src: &str) -> &str {
        src.get(self.range()).unwrap_or("")
    }
}

impl From<Range<usize>> for Span {
    fn from(r: Range<usize>) -> Self {
        // Sources are capped at u32::MAX bytes by `parse`, so this cannot truncate.
        Span::new(r.start as u32, r.end as u32)
    }
}
