//! Fastest path: a byte scanner for the plain TOML that policy files (and the tools that
//! generate them) write, feeding the same `builder` as the toml_parser path. It reads each
//! byte once, with no token list, no events and no string decoding: toml_parser's lexer,
//! parser and decoder were most of what was left of a 10,000-host load.
//!
//! The subset: one expression per line; bare keys (`A-Za-z0-9_-`), not dotted; `[name]`
//! and `[[name]]` headers; basic strings of printable ASCII without escapes; decimal
//! integers without sign, underscores or leading zeros; `true`, `false`; arrays of those;
//! `#` comments of printable ASCII; LF or CRLF line ends. Every such text means the same to
//! any TOML parser. At the first byte outside the subset the scanner gives up and the
//! caller runs the toml_parser path, so the scanner never has to judge anything subtle.

use std::borrow::Cow;

use super::builder::Builder;
use super::tree::{Table, ValueKind};

/// Arrays nested deeper than this go to the general path (which enforces toml_edit's limit).
const MAX_DEPTH: usize = 16;

/// The root table, or `None` when the text is not (all) in the subset or the builder
/// declines it.
pub(crate) fn document(text: &str) -> Option<Table<'_>> {
    let mut s = Scanner::new(text);
    s.lines_until(text.len())?;
    s.finish()
}

/// One piece of the text for [`segments`]: `start..end` begins at a line start; `skip_body`
/// keeps only its first line (a header), the rest being known to hold only key-values of
/// that header's table.
pub(crate) struct Segment {
    pub start: usize,
    pub end: usize,
    pub skip_body: bool,
}

/// As [`document`], piece by piece; a skipped body leaves its table empty. Each piece must
/// be read from a line start at the top level to its end (no value running on past it), so
/// a `[` line inside a multi-line array cannot pass for a header. Also returns the offsets
/// of the headers read, in order.
pub(crate) fn segments<'t>(text: &'t str, segs: &[Segment]) -> Option<(Table<'t>, Vec<usize>)> {
    let mut s = Scanner::new(text);
    for seg in segs {
        if s.pos != seg.start || seg.end > text.len() {
            return None;
        }
        if seg.skip_body {
            s.skip_ws();
            (s.peek() == Some(b'[')).then_some(())?;
            s.header()?;
            s.line_end()?;
            (s.pos <= seg.end).then_some(())?;
            s.pos = seg.end;
        } else {
            s.lines_until(seg.end)?;
        }
    }
    (s.pos == text.len()).then_some(())?;
    let headers = std::mem::take(&mut s.headers);
    Some((s.finish()?, headers))
}

struct Scanner<'t> {
    text: &'t str,
    bytes: &'t [u8],
    pos: usize,
    depth: usize,
    b: Builder<'t>,
    /// Offset of each `[` of a header, in order.
    headers: Vec<usize>,
}

/// Bytes that may follow an unquoted value (`1`, `true`) in the subset.
fn ends_atom(b: Option<&u8>) -> bool {
    matches!(b, None | Some(b' ' | b'\t' | b',' | b']' | b'\n' | b'\r'))
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str) -> Self {
        Scanner {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            depth: 0,
            b: Builder::new(),
            headers: Vec::new(),
        }
    }

    fn finish(self) -> Option<Table<'t>> {
        if self.b.declined {
            return None;
        }
        self.b.finish()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// Lines (a multi-line array is one) up to exactly `end`, a line start or the text's end.
    fn lines_until(&mut self, end: usize) -> Option<()> {
        while self.pos < end {
            self.skip_ws();
            match self.peek() {
                None => break,
                Some(b'\n' | b'\r' | b'#') => {}
                Some(b'[') => self.header()?,
                Some(_) => self.key_value()?,
            }
            self.line_end()?;
        }
        (self.pos == end).then_some(())
    }

    /// Optional whitespace and comment, then a line end or the end of the text.
    fn line_end(&mut self) -> Option<()> {
        self.skip_ws();
        if self.peek() == Some(b'#') {
            self.comment()?;
        }
        self.newline()
    }

    fn newline(&mut self) -> Option<()> {
        match self.peek() {
            None => Some(()),
            Some(b'\n') => {
                self.pos += 1;
                Some(())
            }
            Some(b'\r') if self.bytes.get(self.pos + 1) == Some(&b'\n') => {
                self.pos += 2;
                Some(())
            }
            _ => None,
        }
    }

    /// `#` up to the line end, printable ASCII or tab only.
    fn comment(&mut self) -> Option<()> {
        self.pos += 1;
        while let Some(c) = self.peek() {
            match c {
                b'\n' | b'\r' => break,
                b'\t' | b' '..=b'~' => self.pos += 1,
                _ => return None,
            }
        }
        Some(())
    }

    fn bare_key(&mut self) -> Option<()> {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-')
        ) {
            self.pos += 1;
        }
        if self.pos == start {
            return None;
        }
        let name = Cow::Borrowed(&self.text[start..self.pos]);
        self.b.key(start..self.pos, name);
        Some(())
    }

    /// `[name]` or `[[name]]`, spaces allowed inside the brackets.
    fn header(&mut self) -> Option<()> {
        let start = self.pos;
        self.headers.push(start);
        let array = self.bytes[start..].starts_with(b"[[");
        self.pos += if array { 2 } else { 1 };
        self.b.header_open(start);
        self.skip_ws();
        self.bare_key()?;
        self.skip_ws();
        let close: &[u8] = if array { b"]]" } else { b"]" };
        if !self.bytes[self.pos..].starts_with(close) {
            return None;
        }
        self.pos += close.len();
        self.b.header_close(self.pos, array);
        Some(())
    }

    fn key_value(&mut self) -> Option<()> {
        self.bare_key()?;
        self.skip_ws();
        if self.peek() != Some(b'=') {
            return None;
        }
        self.pos += 1;
        self.skip_ws();
        self.value()
    }

    fn value(&mut self) -> Option<()> {
        let start = self.pos;
        let kind = match self.peek()? {
            b'"' => ValueKind::String(Cow::Borrowed(self.string()?)),
            b'[' => return self.array(),
            b't' if self.bytes[start..].starts_with(b"true") => {
                self.pos += 4;
                ValueKind::Boolean(true)
            }
            b'f' if self.bytes[start..].starts_with(b"false") => {
                self.pos += 5;
                ValueKind::Boolean(false)
            }
            b'0'..=b'9' => ValueKind::Integer(self.integer()?),
            _ => return None,
        };
        if !matches!(kind, ValueKind::String(_)) && !ends_atom(self.bytes.get(self.pos)) {
            return None;
        }
        self.b.scalar(start..self.pos, kind);
        Some(())
    }

    /// A one-line basic string with nothing to decode; its contents.
    fn string(&mut self) -> Option<&'t str> {
        if self.bytes[self.pos..].starts_with(b"\"\"\"") {
            return None;
        }
        let start = self.pos + 1;
        let len = self.bytes[start..]
            .iter()
            .position(|&c| !matches!(c, b' '..=b'~') || c == b'"' || c == b'\\')?;
        if self.bytes[start + len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        Some(&self.text[start..start + len])
    }

    /// `0` or a digit string not starting with 0 that fits an i64.
    fn integer(&mut self) -> Option<i64> {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        let digits = &self.text[start..self.pos];
        if digits.len() > 1 && digits.starts_with('0') {
            return None;
        }
        digits.parse().ok()
    }

    /// `[` values `]`, with line ends, comments and a trailing comma allowed inside.
    fn array(&mut self) -> Option<()> {
        if self.depth == MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        self.b.open(self.pos, false);
        self.pos += 1;
        loop {
            self.array_space()?;
            if self.peek() == Some(b']') {
                break;
            }
            self.value()?;
            self.array_space()?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => break,
                _ => return None,
            }
        }
        self.pos += 1;
        self.b.close(self.pos, true);
        self.depth -= 1;
        Some(())
    }

    /// Whitespace, comments and line ends between array elements.
    fn array_space(&mut self) -> Option<()> {
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'#') => self.comment()?,
                Some(b'\n' | b'\r') => self.newline()?,
                _ => return Some(()),
            }
        }
    }
}
