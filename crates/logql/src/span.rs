//! Where a piece of the syntax tree came from in the query text.

use std::hash::{Hash, Hasher};
use std::ops::Range;

/// A byte range `start..end` of the query text.
///
/// Spans let an error point at the text it is about, here or in a later stage (the
/// planner points at a bad regular expression through its node's span).
///
/// **Two spans always compare equal** (and hash alike). Spans are where a node was
/// written, not what it means, so the syntax tree's derived `PartialEq` compares
/// structure only: `parse(&expr.to_string()) == Ok(expr)` holds although the printed
/// text puts every node somewhere else. To compare positions, compare
/// [`Span::range`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset just past the last byte.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both `self` and `other`.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    /// The byte range, for slicing the query text or comparing positions.
    pub fn range(self) -> Range<usize> {
        self.start..self.end
    }

    /// The 1-based line and column of `start` in `input`; the column counts
    /// characters (not bytes) from the start of the line. Offsets past the end of the
    /// input, or inside a character, count as the end of the text before them.
    pub fn line_col(self, input: &str) -> (usize, usize) {
        let mut at = self.start.min(input.len());
        while !input.is_char_boundary(at) {
            at -= 1;
        }
        let before = &input[..at];
        let line = 1 + before.matches('\n').count();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = 1 + before[line_start..].chars().count();
        (line, column)
    }
}

impl PartialEq for Span {
    /// Always true: see the type's documentation.
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

impl Eq for Span {}

impl Hash for Span {
    /// Hashes nothing, to agree with `eq`.
    fn hash<H: Hasher>(&self, _: &mut H) {}
}
