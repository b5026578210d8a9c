//! Fallback: a toml_edit document as the walk's [`Table`]. Used when the fast builder
//! declines a text (a syntax error, or a construct it leaves to toml_edit), so that every
//! file toml_edit accepts is read exactly as toml_edit reads it.

use std::borrow::Cow;

use toml_edit::{Document, Key};

use super::tree::{Entry, Item, Table, Value, ValueKind};

/// The root table of a parsed document.
pub(crate) fn root<'d>(doc: &'d Document<&str>) -> Table<'d> {
    table(doc.as_table())
}

/// toml_edit's parser gives every key and value a span ("all keys have spans"); the
/// default only stands in for a hand-built document, which never reaches here.
fn key_span(key: Option<&Key>) -> std::ops::Range<usize> {
    key.and_then(Key::span).unwrap_or_default()
}

fn table<'d>(t: &'d toml_edit::Table) -> Table<'d> {
    let mut out = Table::new(t.span());
    for (k, item) in t.iter() {
        out.push(Entry {
            key: Cow::Borrowed(k),
            key_span: key_span(t.key(k)),
            item: self::item(item),
        });
    }
    out
}

fn inline_table<'d>(t: &'d toml_edit::InlineTable) -> Table<'d> {
    let mut out = Table::new(t.span());
    for (k, v) in t.iter() {
        out.push(Entry {
            key: Cow::Borrowed(k),
            key_span: key_span(t.key(k)),
            item: Item::Value(value(v)),
        });
    }
    out
}

fn item<'d>(item: &'d toml_edit::Item) -> Item<'d> {
    match item {
        toml_edit::Item::Value(v) => Item::Value(value(v)),
        toml_edit::Item::Table(t) => Item::Table(table(t)),
        toml_edit::Item::ArrayOfTables(a) => Item::ArrayOfTables(a.iter().map(table).collect()),
        // `Table::iter` skips removed keys, the only place `None` lives.
        toml_edit::Item::None => unreachable!("a parsed document holds no Item::None"),
    }
}

fn value<'d>(v: &'d toml_edit::Value) -> Value<'d> {
    use toml_edit::Value as V;
    let kind = match v {
        V::String(s) => ValueKind::String(Cow::Borrowed(s.value())),
        V::Integer(i) => ValueKind::Integer(*i.value()),
        V::Float(_) => ValueKind::Float,
        V::Boolean(b) => ValueKind::Boolean(*b.value()),
        V::Datetime(_) => ValueKind::Datetime,
        V::Array(a) => ValueKind::Array(a.iter().map(value).collect()),
        V::InlineTable(t) => ValueKind::InlineTable(Box::new(inline_table(t))),
    };
    Value {
        span: v.span().unwrap_or_default(),
        kind,
    }
}
