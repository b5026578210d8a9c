//! Fast path: TOML text → [`Table`] straight from toml_parser's events, the lexer and
//! parser toml_edit itself runs, without toml_edit's formatting-preserving document (half
//! of a 10,000-host reload went into building it).
//!
//! The builder follows toml_edit's `parser::document` for spans and key order, but only
//! for the shapes policy files use: single-key `[table]` and `[[table]]` headers, keys
//! defined once, dotted keys that only create tables. Anything else — any parse error, a
//! key seen twice (other than a `[[table]]` again), a dotted header or a dotted key in an
//! inline table, a float or a date — makes it decline, and the caller parses with toml_edit,
//! which then decides, reports or accepts exactly as before.

use std::borrow::Cow;

use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::parser::{parse_document, EventReceiver, RecursionGuard, ValidateWhitespace};
use toml_parser::{ErrorSink, ParseError, Raw, Source, Span as TokenSpan};

use super::tree::{Entry, Item, Span, Table, Value, ValueKind};

/// toml_edit's nesting limit (`parser::LIMIT`); deeper documents are its error to report.
const LIMIT: u32 = 80;

/// The root table, or `None` when toml_edit must decide.
pub(crate) fn document(text: &str) -> Option<Table<'_>> {
    let source = Source::new(text);
    let tokens = source.lex().into_vec();
    let mut builder = Builder::new(source);
    let mut failed = Failed(false);
    {
        let mut ws = ValidateWhitespace::new(&mut builder, source);
        let mut guard = RecursionGuard::new(&mut ws, LIMIT);
        parse_document(&tokens, &mut guard, &mut failed);
    }
    if failed.0 || builder.declined {
        return None;
    }
    builder.finish()
}

/// Notes that the text has an error, without keeping it: toml_edit words the message.
struct Failed(bool);

impl ErrorSink for Failed {
    fn report_error(&mut self, _: ParseError) {
        self.0 = true;
    }
}

struct Key<'t> {
    name: Cow<'t, str>,
    span: Span,
}

/// The `[name]` or `[[name]]` whose key-values are being read.
struct Header<'t> {
    key: Key<'t>,
    is_array: bool,
}

/// An array or inline table being read. `path_end` closes its own key path in
/// `Builder::keys` (from the enclosing frame's `key_from`); `key_from` starts the paths
/// of the keys inside it.
struct Frame<'t> {
    start: usize,
    path_end: usize,
    key_from: usize,
    open: Open<'t>,
}

enum Open<'t> {
    Array(Vec<Value<'t>>),
    Inline(Table<'t>),
}

struct Builder<'t> {
    source: Source<'t>,
    /// The root once the first header ends its key-values.
    root: Option<Table<'t>>,
    /// The table key-values go to outside any inline table: the root's, then a header's.
    current: Table<'t>,
    header: Option<Header<'t>>,
    /// Offset of the `[` of a header being read.
    header_start: Option<usize>,
    /// Simple keys read and not yet used, innermost last.
    keys: Vec<Key<'t>>,
    /// Where the current key path starts in `keys`.
    key_from: usize,
    stack: Vec<Frame<'t>>,
    declined: bool,
}

impl<'t> Builder<'t> {
    fn new(source: Source<'t>) -> Self {
        Builder {
            source,
            root: None,
            current: Table::new(None),
            header: None,
            header_start: None,
            keys: Vec::new(),
            key_from: 0,
            stack: Vec::new(),
            declined: false,
        }
    }

    fn raw(&self, span: TokenSpan, encoding: Option<Encoding>) -> Raw<'t> {
        let text = &self.source.input()[span.start()..span.end()];
        Raw::new_unchecked(text, encoding, span)
    }

    /// The root once every event is in.
    fn finish(mut self) -> Option<Table<'t>> {
        if !self.stack.is_empty() || self.header_start.is_some() || !self.keys.is_empty() {
            return None;
        }
        self.finish_table();
        if self.declined {
            return None;
        }
        self.root
    }

    /// End the key-values of the root or of the current header (toml_edit's `finish_table`).
    fn finish_table(&mut self) {
        let table = std::mem::take(&mut self.current);
        let Some(header) = self.header.take() else {
            let mut root = table;
            root.span = Some(0..0);
            self.root = Some(root);
            return;
        };
        let Some(root) = self.root.as_mut() else {
            return self.decline();
        };
        let item = if header.is_array {
            match root.entry_mut(&header.key.name).map(|e| &mut e.item) {
                Some(Item::ArrayOfTables(list)) => return list.push(table),
                Some(_) => return self.decline(),
                None => Item::ArrayOfTables(vec![table]),
            }
        } else if root.contains_key(&header.key.name) {
            return self.decline();
        } else {
            Item::Table(table)
        };
        root.push(Entry {
            key: header.key.name,
            key_span: header.key.span,
            item,
        });
    }

    fn decline(&mut self) {
        self.declined = true;
    }

    /// A header's key is read: start its table, once the previous one is finished.
    fn open_header(&mut self, close: TokenSpan, is_array: bool) {
        let Some(start) = self.header_start.take() else {
            return self.decline();
        };
        if self.keys.len() != 1 || !self.stack.is_empty() {
            return self.decline();
        }
        let key = self.keys.pop().expect("one key");
        let span = start..close.end();
        self.finish_table();
        let redefined = self.root.as_ref().and_then(|r| r.get(&key.name));
        if !is_array && redefined.is_some() {
            return self.decline();
        }
        self.current = Table::new(Some(span));
        self.header = Some(Header { key, is_array });
    }

    /// A complete value: into the enclosing array, or under the key path just read
    /// (`keys[key_from..path_end]`, which must be the last keys read).
    fn value(&mut self, value: Value<'t>, path_end: usize) {
        let in_document = self.stack.is_empty();
        let target = match self.stack.last_mut() {
            Some(Frame {
                open: Open::Array(values),
                ..
            }) => return values.push(value),
            Some(Frame {
                open: Open::Inline(t),
                ..
            }) => t,
            None => &mut self.current,
        };
        let from = self.key_from;
        if path_end != self.keys.len() || path_end <= from {
            return self.declined = true;
        }
        let leaf = self.keys.pop().expect("non-empty path");
        let ok = if path_end - from == 1 {
            insert(target, leaf, value)
        } else if in_document {
            let path: Vec<Key<'t>> = self.keys.drain(from..).collect();
            insert_dotted(target, path, leaf, value)
        } else {
            // toml_edit treats dotted keys in inline tables by rules of their own.
            false
        };
        if !ok {
            self.decline();
        }
    }

    fn open(&mut self, span: TokenSpan, open: Open<'t>) {
        self.stack.push(Frame {
            start: span.start(),
            path_end: self.keys.len(),
            key_from: self.key_from,
            open,
        });
        self.key_from = self.keys.len();
    }

    fn close(&mut self, span: TokenSpan, array: bool) {
        let Some(frame) = self.stack.pop() else {
            return self.decline();
        };
        self.key_from = frame.key_from;
        let kind = match frame.open {
            Open::Array(values) if array => ValueKind::Array(values),
            Open::Inline(mut t) if !array => {
                t.span = Some(frame.start..span.end());
                ValueKind::InlineTable(Box::new(t))
            }
            _ => return self.decline(),
        };
        let value = Value {
            span: frame.start..span.end(),
            kind,
        };
        self.value(value, frame.path_end);
    }

    fn scalar(&mut self, span: TokenSpan, encoding: Option<Encoding>, error: &mut dyn ErrorSink) {
        let raw = self.raw(span, encoding);
        let mut text = Cow::Borrowed("");
        let kind = match raw.decode_scalar(&mut text, error) {
            ScalarKind::String => ValueKind::String(text),
            ScalarKind::Boolean(b) => ValueKind::Boolean(b),
            ScalarKind::Integer(radix) => match i64::from_str_radix(&text, radix.value()) {
                Ok(i) => ValueKind::Integer(i),
                // toml_edit reports "integer number overflowed".
                Err(_) => return self.decline(),
            },
            // Never valid in a policy; toml_edit checks their syntax and words the type.
            ScalarKind::Float | ScalarKind::DateTime => return self.decline(),
        };
        let value = Value {
            span: span.start()..span.end(),
            kind,
        };
        self.value(value, self.keys.len());
    }
}

/// Put `value` at `leaf` of `table`; false if the key exists (toml_edit's to report).
fn insert<'t>(table: &mut Table<'t>, leaf: Key<'t>, value: Value<'t>) -> bool {
    if table.contains_key(&leaf.name) {
        return false;
    }
    table.push(Entry {
        key: leaf.name,
        key_span: leaf.span,
        item: Item::Value(value),
    });
    true
}

/// Put `value` at `path.leaf` under `table`, creating the dotted tables on the way; false
/// when a key on the way already holds anything but a dotted table, or the leaf exists.
fn insert_dotted<'t>(
    mut table: &mut Table<'t>,
    path: Vec<Key<'t>>,
    leaf: Key<'t>,
    value: Value<'t>,
) -> bool {
    for k in path {
        if !table.contains_key(&k.name) {
            let mut t = Table::new(Some(k.span.clone()));
            t.dotted = true;
            let entry = table.push(Entry {
                key: k.name,
                key_span: k.span,
                item: Item::Table(t),
            });
            let Item::Table(t) = &mut entry.item else {
                unreachable!("just pushed a table")
            };
            table = t;
            continue;
        }
        table = match table.entry_mut(&k.name).map(|e| &mut e.item) {
            Some(Item::Table(t)) if t.dotted => t,
            _ => return false,
        };
    }
    insert(table, leaf, value)
}

impl<'t> EventReceiver for Builder<'t> {
    fn std_table_open(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.header_start = Some(span.start());
    }
    fn std_table_close(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.open_header(span, false);
    }
    fn array_table_open(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.header_start = Some(span.start());
    }
    fn array_table_close(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.open_header(span, true);
    }
    fn inline_table_open(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) -> bool {
        self.open(span, Open::Inline(Table::new(None)));
        true
    }
    fn inline_table_close(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.close(span, false);
    }
    fn array_open(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) -> bool {
        self.open(span, Open::Array(Vec::new()));
        true
    }
    fn array_close(&mut self, span: TokenSpan, _: &mut dyn ErrorSink) {
        self.close(span, true);
    }
    fn simple_key(&mut self, span: TokenSpan, kind: Option<Encoding>, error: &mut dyn ErrorSink) {
        let mut name = Cow::Borrowed("");
        self.raw(span, kind).decode_key(&mut name, error);
        let span = span.start()..span.end();
        self.keys.push(Key { name, span });
    }
    fn scalar(&mut self, span: TokenSpan, kind: Option<Encoding>, error: &mut dyn ErrorSink) {
        Builder::scalar(self, span, kind, error);
    }
    fn error(&mut self, _: TokenSpan, _: &mut dyn ErrorSink) {
        self.decline();
    }
}
