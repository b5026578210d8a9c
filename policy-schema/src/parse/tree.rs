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
            ..Table::default()
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
