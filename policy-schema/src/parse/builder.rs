//! The tree-building rules both fast paths share: toml_edit's `parser::document` for spans
//! and key order, restricted to the shapes policy files use. Single-key `[table]` and
//! `[[table]]` headers, keys defined once, dotted keys that only create tables; anything
//! else — a key seen twice (other than a `[[table]]` again), a dotted header, a dotted key
//! in an inline table — makes it decline, and the caller leaves the text to toml_edit.

use std::borrow::Cow;

use super::tree::{Entry, Item, Span, Table, Value, ValueKind};

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

pub(super) struct Builder<'t> {
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
    pub declined: bool,
}

impl Default for Builder<'_> {
    fn default() -> Self {
        Builder::new()
    }
}

impl<'t> Builder<'t> {
    pub fn new() -> Self {
        Builder {
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

    /// The root once every event is in.
    pub fn finish(mut self) -> Option<Table<'t>> {
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

    pub fn decline(&mut self) {
        self.declined = true;
    }

    /// The `[` or `[[` of a header.
    pub fn header_open(&mut self, start: usize) {
        self.header_start = Some(start);
    }

    /// A header's key is read (`end` is past its `]`): start its table, once the previous
    /// one is finished.
    pub fn header_close(&mut self, end: usize, is_array: bool) {
        let Some(start) = self.header_start.take() else {
            return self.decline();
        };
        if self.keys.len() != 1 || !self.stack.is_empty() {
            return self.decline();
        }
        let key = self.keys.pop().expect("one key");
        let span = start..end;
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

    /// A simple key (one part of a dotted key) as decoded.
    pub fn key(&mut self, span: Span, name: Cow<'t, str>) {
        self.keys.push(Key { name, span });
    }

    /// A `[` of an array value (`inline`: a `{` of an inline table) at `start`.
    pub fn open(&mut self, start: usize, inline: bool) {
        let open = if inline {
            Open::Inline(Table::new(None))
        } else {
            Open::Array(Vec::new())
        };
        self.stack.push(Frame {
            start,
            path_end: self.keys.len(),
            key_from: self.key_from,
            open,
        });
        self.key_from = self.keys.len();
    }

    /// The `]` (or `}`) that closes the innermost array (inline table), ending at `end`.
    pub fn close(&mut self, end: usize, array: bool) {
        let Some(frame) = self.stack.pop() else {
            return self.decline();
        };
        self.key_from = frame.key_from;
        let kind = match frame.open {
            Open::Array(values) if array => ValueKind::Array(values),
            Open::Inline(mut t) if !array => {
                t.span = Some(frame.start..end);
                ValueKind::InlineTable(Box::new(t))
            }
            _ => return self.decline(),
        };
        let value = Value {
            span: frame.start..end,
            kind,
        };
        self.value(value, frame.path_end);
    }

    /// A string, integer or boolean value.
    pub fn scalar(&mut self, span: Span, kind: ValueKind<'t>) {
        self.value(Value { span, kind }, self.keys.len());
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
