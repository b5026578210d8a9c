//! The collector every stage writes its findings into: byte offsets while working, turned
//! into 1-based line:column positions (and sorted) once at the end.

use crate::diagnostic::{Diagnostic, Severity};

/// Diagnostics of one file, located by byte offset into its text.
pub(crate) struct Report<'t> {
    file: &'t str,
    text: &'t str,
    /// Built on the first position asked for: a clean file never needs it.
    lines: std::cell::OnceCell<LineIndex>,
    items: Vec<(Severity, usize, String)>,
    errors: usize,
}

impl<'t> Report<'t> {
    pub fn new(file: &'t str, text: &'t str) -> Self {
        Report {
            file,
            text,
            lines: std::cell::OnceCell::new(),
            items: Vec::new(),
            errors: 0,
        }
    }

    pub fn error(&mut self, at: usize, message: impl Into<String>) {
        self.errors += 1;
        self.items.push((Severity::Error, at, message.into()));
    }

    pub fn warn(&mut self, at: usize, message: impl Into<String>) {
        self.items.push((Severity::Warning, at, message.into()));
    }

    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// The source text of a span, on one line and shortened, as the user wrote it.
    pub fn raw(&self, span: Option<std::ops::Range<usize>>) -> String {
        let Some(span) = span else {
            return String::from("(value)");
        };
        let s = self.text.get(span).unwrap_or("(value)").trim();
        let first = s.lines().next().unwrap_or("");
        let mut out = crate::text::shown(first);
        if first.len() < s.len() && !out.ends_with('…') {
            out.push('…');
        }
        out
    }

    /// `file:line:col` of an offset, for messages that name a second place.
    pub fn pos(&self, at: usize) -> String {
        let (line, col) = self.lines().locate(self.text, at);
        format!("{}:{line}:{col}", self.file)
    }

    fn lines(&self) -> &LineIndex {
        self.lines.get_or_init(|| LineIndex::new(self.text))
    }

    /// Located diagnostics: errors first, then warnings, each group in file order.
    pub fn finish(mut self) -> Vec<Diagnostic> {
        if self.items.is_empty() {
            return Vec::new();
        }
        // A stable sort keeps the emission order of messages at the same position.
        self.items.sort_by_key(|(sev, at, _)| (*sev, *at));
        let items = std::mem::take(&mut self.items);
        let (file, lines) = (self.file, self.lines());
        items
            .into_iter()
            .map(|(severity, at, message)| {
                let (line, col) = lines.locate(self.text, at);
                Diagnostic {
                    severity,
                    file: file.to_string(),
                    line,
                    col,
                    message,
                }
            })
            .collect()
    }
}

/// Byte offsets of line starts, for offset → (line, column) in O(log n).
pub(crate) struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    /// 1-based line and column; the column counts characters, not bytes, as editors do.
    pub fn locate(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= offset);
        let start = self.starts[line - 1];
        (line, text[start..offset].chars().count() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_lines_and_character_columns() {
        let text = "a = 1\nbé = \"x\"\n\nz";
        let idx = LineIndex::new(text);
        assert_eq!(idx.locate(text, 0), (1, 1));
        assert_eq!(idx.locate(text, 4), (1, 5));
        assert_eq!(idx.locate(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(idx.locate(text, 12), (2, 6));
        assert_eq!(idx.locate(text, 16), (3, 1));
        assert_eq!(idx.locate(text, 17), (4, 1));
        assert_eq!(idx.locate(text, 99), (4, 2));
        // Inside a multi-byte character: the character's own column.
        assert_eq!(idx.locate(text, 8), (2, 2));
    }

    #[test]
    fn sorts_errors_before_warnings_in_file_order() {
        let text = "a\nb\nc\n";
        let mut r = Report::new("f", text);
        r.warn(0, "w1");
        r.error(4, "e2");
        r.error(2, "e1");
        let out: Vec<String> = r.finish().iter().map(|d| d.to_string()).collect();
        assert_eq!(
            out,
            ["f:2:1: error: e1", "f:3:1: error: e2", "f:1:1: warning: w1"]
        );
        assert_eq!(Report::new("f", text).pos(2), "f:2:1");
    }
}
