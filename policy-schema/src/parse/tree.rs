//! The parsed document as the walk needs it: keys, values and tables with the byte spans
//! toml_edit would give them, strings borrowed from the text where no escape forces a copy.
//! Built by `events` (fast path) or converted from a toml_edit document by `convert`
//! (fallback); both must yield the same tree for the same text.

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::ops::Range;

pub(crate) type Span = Range<usize>;

/// A value and the span of its text (`"x"`, `[1, 2]`, `{ a = 1 }`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Value<'t> {
    pub span: Span,
    pub kind: ValueKind<'t>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ValueKind<'t> {
    String(Cow<'t, str>),
    Integer(i64),
    /// Only ever reported as a wrong type: the value itself is never needed.
    Float,
    Boolean(bool),
    Datetime,
    Array(Vec<Value<'t>>),
    /// Boxed: rare in policy files, and a list of 10,000 strings should not be sized
    /// for tables.
    InlineTable(Box<Table<'t>>),
}

/// What a key of a table holds: a plain value, a `[table]` or a `[[table]]` list.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Item<'t> {
    Value(Value<'t>),
    Table(Table<'t>),
    ArrayOfTables(Vec<Table<'t>>),
}

/// One key of a table, with the span of the key as written (its first definition).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry<'t> {
    pub key: Cow<'t, str>,
    pub key_span: Span,
    pub item: Item<'t>,
}

/// Entries in file order. Tables are small (a host has six keys) so lookups scan; a table
/// that grows large (a `[zones]` with many names) gets a hash index so that building it
/// stays linear.
#[derive(Clone, Debug, Default)]
pub(crate) struct Table<'t> {
    /// The `[header]`, the `{ … }` of an inline table, or the first key of a dotted one.
    pub span: Option<Span>,
    entries: Vec<Entry<'t>>,
    index: Option<Box<HashMap<String, usize>>>,
    /// Created by a dotted key (`defaults.cipher = …`): only the fast builder reads it.
    pub(super) dotted: bool,
}

/// Tables with more entries than this get a hash index.
const INDEX_FROM: usize = 16;

impl PartialEq for Table<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.span == other.span && self.entries == other.entries
    }
}

impl<'t> Table<'t> {
    pub fn new(span: Option<Span>) -> Self {
        Table {
            span,
            entries: Vec::new(),
            index: None,
            dotted: false,
        }
    }

    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|e| e.key == key),
        }
    }

    pub fn entry(&self, key: &str) -> Option<&Entry<'t>> {
        self.position(key).map(|i| &self.entries[i])
    }

    pub fn entry_mut(&mut self, key: &str) -> Option<&mut Entry<'t>> {
        self.position(key).map(|i| &mut self.entries[i])
    }

    pub fn get(&self, key: &str) -> Option<&Item<'t>> {
        self.entry(key).map(|e| &e.item)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry<'t>> {
        self.entries.iter()
    }

    /// Append a key the caller knows is new.
    pub fn push(&mut self, entry: Entry<'t>) -> &mut Entry<'t> {
        debug_assert!(!self.contains_key(&entry.key), "{} twice", entry.key);
        if let Some(index) = &mut self.index {
            index.insert(entry.key.to_string(), self.entries.len());
        }
        self.entries.push(entry);
        if self.index.is_none() && self.entries.len() > INDEX_FROM {
            let keys = self.entries.iter().enumerate();
            self.index = Some(Box::new(
                keys.map(|(i, e)| (e.key.to_string(), i)).collect(),
            ));
        }
        self.entries.last_mut().expect("just pushed")
    }
}

/// Dropped from a list, not by recursion: however deep a tree a file builds (toml_edit's
/// conversion has no limit of its own on dotted keys), dropping it needs a fixed amount
/// of stack. Tables of plain values (almost all of them) drop as usual.
impl Drop for Table<'_> {
    fn drop(&mut self) {
        let flat = |e: &Entry| match &e.item {
            Item::Value(v) => v.as_array().is_none_or(|a| a.iter().all(Value::is_scalar)),
            _ => false,
        };
        if self.entries.iter().all(flat) {
            return;
        }
        let mut entries = std::mem::take(&mut self.entries);
        let mut values: Vec<Value> = Vec::new();
        loop {
            // Each table taken apart here has no entries left when it drops.
            while let Some(e) = entries.pop() {
                match e.item {
                    Item::Table(mut t) => entries.append(&mut t.entries),
                    Item::ArrayOfTables(ts) => ts
                        .into_iter()
                        .for_each(|mut t| entries.append(&mut t.entries)),
                    Item::Value(v) => values.push(v),
                }
            }
            let Some(v) = values.pop() else { break };
            match v.kind {
                ValueKind::Array(a) => values.extend(a),
                ValueKind::InlineTable(mut t) => entries.append(&mut t.entries),
                _ => {}
            }
        }
    }
}

impl<'t> Item<'t> {
    /// A `[table]` or an inline table.
    pub fn as_table_like(&self) -> Option<&Table<'t>> {
        match self {
            Item::Table(t) => Some(t),
            Item::Value(v) => v.as_inline_table(),
            Item::ArrayOfTables(_) => None,
        }
    }

    pub fn as_value(&self) -> Option<&Value<'t>> {
        match self {
            Item::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        self.as_value().and_then(Value::as_str)
    }

    /// As toml_edit's `Item::span`: an array of tables spans its first to last header.
    pub fn span(&self) -> Option<Span> {
        match self {
            Item::Value(v) => Some(v.span.clone()),
            Item::Table(t) => t.span.clone(),
            Item::ArrayOfTables(a) => {
                let first = a.first()?.span.as_ref()?;
                let last = a.last()?.span.as_ref()?;
                Some(first.start..last.end)
            }
        }
    }
}

impl<'t> Value<'t> {
    /// Neither an array nor an inline table.
    fn is_scalar(&self) -> bool {
        !matches!(self.kind, ValueKind::Array(_) | ValueKind::InlineTable(_))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_integer(&self) -> Option<i64> {
        match self.kind {
            ValueKind::Integer(i) => Some(i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.kind {
            ValueKind::Boolean(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value<'t>]> {
        match &self.kind {
            ValueKind::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_inline_table(&self) -> Option<&Table<'t>> {
        match &self.kind {
            ValueKind::InlineTable(t) => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree nested 300,000 deep (tables, arrays and inline tables) drops on a thread
    /// with a 256 KiB stack: a recursive drop would abort the process here.
    #[test]
    fn a_deep_tree_drops_on_a_small_stack() {
        const DEPTH: usize = 300_000;
        let build = || {
            let mut t = Table::new(None);
            for i in 0..DEPTH {
                let item = match i % 3 {
                    0 => Item::Table(t),
                    1 => Item::ArrayOfTables(vec![t]),
                    _ => Item::Value(Value {
                        span: 0..0,
                        kind: ValueKind::Array(vec![Value {
                            span: 0..0,
                            kind: ValueKind::InlineTable(Box::new(t)),
                        }]),
                    }),
                };
                t = Table::new(None);
                t.push(Entry {
                    key: Cow::Borrowed("a"),
                    key_span: 0..0,
                    item,
                });
            }
            t
        };
        let tree = build();
        let dropper = std::thread::Builder::new().stack_size(256 * 1024);
        dropper.spawn(move || drop(tree)).unwrap().join().unwrap();
    }
}
